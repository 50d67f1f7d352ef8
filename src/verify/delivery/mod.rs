//! Delivery channels: how a one-time code reaches a participant.
//!
//! Each channel is a [`CodeSender`]: it takes a [`DeliveryRequest`] and
//! answers with a [`DeliveryOutcome`], never with a panic and never with the
//! code in a message. The [`Dispatcher`] holds the channels that are
//! configured and tries them in the fallback order until one delivers,
//! returning what every attempt did so the caller can record it.
//!
//! Channels here:
//! - [`webhook`]: a signed JSON POST to the operator's SMS gateway;
//! - [`email`]: SMTP with STARTTLS (or implicit TLS) and authentication;
//! - [`log`]: the log itself, for development only.
//!
//! `sip-message` and `voice` go through the SIP trunk and live with the SIP
//! shell; they are plugged in as [`Arc<dyn CodeSender>`] slots.
//!
//! Why this is not sans-I/O like the protocol cores: a channel *is* I/O
//! (an HTTP request, an SMTP session). What can be pure is kept pure and
//! tested alone: the webhook signature, the backoff schedule, the message
//! text.

use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use crate::verify::channel::ChannelKind;
use crate::verify::settings::{EmailSettings, WebhookSettings};

use super::sender::{CodeSender, DeliveryOutcome, DeliveryRequest};

pub mod email;
pub mod log;
pub mod webhook;

pub use email::EmailSender;
pub use log::LogSender;
pub use webhook::WebhookSender;

/// A channel that could not be set up from its settings. Returned at
/// start-up, so a bad CA file or URL stops the server with a reason instead
/// of failing the first participant.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("[delivery.webhook] url: {0}")]
    WebhookUrl(String),
    #[error("[delivery.webhook] secret: not usable as an HMAC-SHA256 key")]
    WebhookSecret,
    #[error("[delivery.webhook]: cannot build the HTTP client: {0}")]
    HttpClient(String),
    #[error("[delivery.email] ca_file {path}: {reason}")]
    CaFile { path: PathBuf, reason: String },
    #[error("[delivery.email] from: {0}")]
    FromAddress(String),
    #[error("[delivery.email]: {0}")]
    Tls(String),
    #[error(
        "[delivery.email]: security = \"none\" would send the SMTP password to {host} \
         unencrypted; use \"starttls\" or \"tls\", or a relay on this machine"
    )]
    PlainTextPassword { host: String },
}

/// The message every text channel sends. One place, so SMS and email say
/// the same thing.
pub(crate) fn code_message(code: &str) -> String {
    format!("Your pinbridge code is {code}")
}

/// A destination as it may appear in logs and outcome details: everything
/// but the last two characters hidden (`********12`), like the API shows it.
pub fn masked(destination: &str) -> String {
    let chars: Vec<char> = destination.chars().collect();
    let keep = chars.len().min(2).min(chars.len().saturating_sub(1));
    let tail: String = chars[chars.len() - keep..].iter().collect();
    format!("********{tail}")
}

/// The channels pinbridge can use, and the order it falls back in.
///
/// Built once at start-up from the configuration ([`Dispatcher::from_settings`])
/// plus the SIP-based senders the server injects; shared by every call and
/// API request (it is `Send + Sync`, and each channel keeps its own client).
pub struct Dispatcher {
    webhook: Option<Arc<dyn CodeSender>>,
    email: Option<Arc<dyn CodeSender>>,
    log: Option<Arc<dyn CodeSender>>,
    sip_message: Option<Arc<dyn CodeSender>>,
    voice: Option<Arc<dyn CodeSender>>,
    fallback: Vec<ChannelKind>,
}

impl fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let configured: Vec<&str> = ALL
            .iter()
            .filter(|k| self.slot(**k).is_some())
            .map(|k| k.name())
            .collect();
        f.debug_struct("Dispatcher")
            .field("configured", &configured)
            .field("fallback", &self.fallback)
            .finish()
    }
}

const ALL: [ChannelKind; 5] = [
    ChannelKind::Webhook,
    ChannelKind::SipMessage,
    ChannelKind::Email,
    ChannelKind::Voice,
    ChannelKind::Log,
];

impl Default for Dispatcher {
    fn default() -> Self {
        Dispatcher::new()
    }
}

impl Dispatcher {
    /// A dispatcher with no channel: every attempt fails with "not
    /// configured" until channels are added.
    pub fn new() -> Self {
        Dispatcher {
            webhook: None,
            email: None,
            log: None,
            sip_message: None,
            voice: None,
            fallback: Vec::new(),
        }
    }

    /// The channels `[delivery.*]` configures: webhook and email when their
    /// settings are given, the log when `log` is on. No fallback order (see
    /// [`Dispatcher::with_fallback`]); the trunk's channels are added by the
    /// server with [`Dispatcher::with_sip_message`] and
    /// [`Dispatcher::with_voice`].
    pub fn from_settings(
        webhook: Option<&WebhookSettings>,
        email: Option<&EmailSettings>,
        log: bool,
    ) -> Result<Self, SetupError> {
        let mut d = Dispatcher::new();
        if let Some(w) = webhook {
            d = d.with_webhook(Arc::new(WebhookSender::new(w)?));
        }
        if let Some(e) = email {
            d = d.with_email(Arc::new(EmailSender::new(e)?));
        }
        if log {
            d = d.with_log(Arc::new(LogSender::new(true)));
        }
        Ok(d)
    }

    /// The order [`CodeSender::send`] falls back in after the request's own
    /// channel.
    pub fn with_fallback(mut self, order: Vec<ChannelKind>) -> Self {
        self.fallback = order;
        self
    }

    pub fn with_webhook(mut self, sender: Arc<dyn CodeSender>) -> Self {
        self.webhook = Some(sender);
        self
    }

    pub fn with_email(mut self, sender: Arc<dyn CodeSender>) -> Self {
        self.email = Some(sender);
        self
    }

    pub fn with_log(mut self, sender: Arc<dyn CodeSender>) -> Self {
        self.log = Some(sender);
        self
    }

    /// RFC 3428 MESSAGE through the trunk, implemented by the SIP shell.
    pub fn with_sip_message(mut self, sender: Arc<dyn CodeSender>) -> Self {
        self.sip_message = Some(sender);
        self
    }

    /// A call through the trunk that reads the code, implemented by the SIP
    /// shell.
    pub fn with_voice(mut self, sender: Arc<dyn CodeSender>) -> Self {
        self.voice = Some(sender);
        self
    }

    /// The fallback order set with [`Dispatcher::with_fallback`].
    pub fn fallback(&self) -> &[ChannelKind] {
        &self.fallback
    }

    /// Whether a channel has a sender.
    pub fn is_configured(&self, kind: ChannelKind) -> bool {
        self.slot(kind).is_some()
    }

    fn slot(&self, kind: ChannelKind) -> Option<&Arc<dyn CodeSender>> {
        match kind {
            ChannelKind::Webhook => self.webhook.as_ref(),
            ChannelKind::SipMessage => self.sip_message.as_ref(),
            ChannelKind::Email => self.email.as_ref(),
            ChannelKind::Voice => self.voice.as_ref(),
            ChannelKind::Log => self.log.as_ref(),
        }
    }

    /// Tries the channels of `order` one after the other until one delivers,
    /// and returns what each attempt did, in order. A channel listed twice
    /// is tried once; a channel without a sender gets a `Failed` entry
    /// (not retryable) and the next one is tried. Every channel failing
    /// yields a list with no `Delivered` entry, never a panic.
    pub async fn send_with_fallback(
        &self,
        req: &DeliveryRequest,
        order: &[ChannelKind],
    ) -> Vec<(ChannelKind, DeliveryOutcome)> {
        let mut outcomes: Vec<(ChannelKind, DeliveryOutcome)> = Vec::new();
        for &kind in order {
            if outcomes.iter().any(|(k, _)| *k == kind) {
                continue;
            }
            let outcome = match self.slot(kind) {
                Some(sender) => sender.send(req).await,
                None => DeliveryOutcome::Failed {
                    reason: format!(
                        "channel `{}` is not configured ({})",
                        kind.name(),
                        needs(kind)
                    ),
                    retryable: false,
                },
            };
            match &outcome {
                DeliveryOutcome::Delivered { detail } => tracing::info!(
                    verification_id = %req.verification_id,
                    channel = kind.name(),
                    "code delivered: {detail}"
                ),
                DeliveryOutcome::Failed { reason, retryable } => tracing::warn!(
                    verification_id = %req.verification_id,
                    channel = kind.name(),
                    retryable,
                    "code not delivered: {reason}"
                ),
            }
            let delivered = matches!(outcome, DeliveryOutcome::Delivered { .. });
            outcomes.push((kind, outcome));
            if delivered {
                break;
            }
        }
        outcomes
    }

    /// The request's channel first, then the fallback order.
    pub fn order_for(&self, req: &DeliveryRequest) -> Vec<ChannelKind> {
        let mut order = vec![req.channel];
        for k in &self.fallback {
            if !order.contains(k) {
                order.push(*k);
            }
        }
        order
    }
}

/// What a channel needs in the configuration, for "not configured" reasons.
fn needs(kind: ChannelKind) -> &'static str {
    match kind {
        ChannelKind::Webhook => "needs [delivery.webhook]",
        ChannelKind::Email => "needs [delivery.email]",
        ChannelKind::SipMessage | ChannelKind::Voice => "needs [trunk]",
        ChannelKind::Log => "needs [delivery.log] enabled = true, development only",
    }
}

/// One outcome summarising a fallback run: the delivering channel's detail,
/// or every failure reason joined.
fn summarise(outcomes: &[(ChannelKind, DeliveryOutcome)]) -> DeliveryOutcome {
    if let Some((kind, DeliveryOutcome::Delivered { detail })) = outcomes
        .iter()
        .find(|(_, o)| matches!(o, DeliveryOutcome::Delivered { .. }))
    {
        return DeliveryOutcome::Delivered {
            detail: format!("{}: {detail}", kind.name()),
        };
    }
    if outcomes.is_empty() {
        return DeliveryOutcome::Failed {
            reason: "no delivery channel to try".into(),
            retryable: false,
        };
    }
    let reason = outcomes
        .iter()
        .map(|(k, o)| match o {
            DeliveryOutcome::Failed { reason, .. } => format!("{}: {reason}", k.name()),
            DeliveryOutcome::Delivered { detail } => format!("{}: {detail}", k.name()),
        })
        .collect::<Vec<_>>()
        .join("; ");
    let retryable = outcomes.iter().any(|(_, o)| {
        matches!(
            o,
            DeliveryOutcome::Failed {
                retryable: true,
                ..
            }
        )
    });
    DeliveryOutcome::Failed { reason, retryable }
}

impl CodeSender for Dispatcher {
    /// The request's channel, then the fallback order; one outcome for the
    /// whole run (use [`Dispatcher::send_with_fallback`] for each attempt's).
    fn send<'a>(
        &'a self,
        req: &'a DeliveryRequest,
    ) -> Pin<Box<dyn Future<Output = DeliveryOutcome> + Send + 'a>> {
        Box::pin(async move {
            let order = self.order_for(req);
            summarise(&self.send_with_fallback(req, &order).await)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::sender::SecretCode;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Fixed(DeliveryOutcome, AtomicUsize);

    impl CodeSender for Fixed {
        fn send<'a>(
            &'a self,
            _req: &'a DeliveryRequest,
        ) -> Pin<Box<dyn Future<Output = DeliveryOutcome> + Send + 'a>> {
            self.1.fetch_add(1, Ordering::SeqCst);
            let o = self.0.clone();
            Box::pin(async move { o })
        }
    }

    fn fixed(o: DeliveryOutcome) -> Arc<Fixed> {
        Arc::new(Fixed(o, AtomicUsize::new(0)))
    }

    fn req(channel: ChannelKind) -> DeliveryRequest {
        DeliveryRequest {
            verification_id: "v1".into(),
            channel,
            to_phone: Some("+12015550123".into()),
            to_email: None,
            participant_name: None,
            code: SecretCode::new("123456"),
        }
    }

    fn failed(reason: &str) -> DeliveryOutcome {
        DeliveryOutcome::Failed {
            reason: reason.into(),
            retryable: true,
        }
    }

    fn block_on<F: Future>(f: F) -> F::Output {
        match tokio::runtime::Builder::new_current_thread().build() {
            Ok(rt) => rt.block_on(f),
            Err(e) => panic!("test runtime: {e}"),
        }
    }

    #[test]
    fn masks_all_but_the_last_two() {
        assert_eq!(masked("+12015550123"), "********23");
        assert_eq!(masked("ab"), "********b");
        assert_eq!(masked("a"), "********");
        assert_eq!(masked(""), "********");
        assert_eq!(masked("ünï"), "********nï");
    }

    #[test]
    fn stops_at_the_first_delivery_and_skips_unconfigured() {
        let sms = fixed(failed("gateway down"));
        let voice = fixed(DeliveryOutcome::Delivered {
            detail: "answered".into(),
        });
        let log = fixed(DeliveryOutcome::Delivered {
            detail: "logged".into(),
        });
        let d = Dispatcher::new()
            .with_webhook(sms.clone())
            .with_voice(voice.clone())
            .with_log(log.clone());
        let order = [
            ChannelKind::Webhook,
            ChannelKind::Email,
            ChannelKind::Webhook,
            ChannelKind::Voice,
            ChannelKind::Log,
        ];
        let out = block_on(d.send_with_fallback(&req(ChannelKind::Webhook), &order));
        let kinds: Vec<ChannelKind> = out.iter().map(|(k, _)| *k).collect();
        assert_eq!(
            kinds,
            [ChannelKind::Webhook, ChannelKind::Email, ChannelKind::Voice]
        );
        match &out[1].1 {
            DeliveryOutcome::Failed { reason, retryable } => {
                assert!(reason.contains("`email` is not configured"), "{reason}");
                assert!(reason.contains("[delivery.email]"), "{reason}");
                assert!(!retryable);
            }
            o => panic!("{o:?}"),
        }
        assert_eq!(sms.1.load(Ordering::SeqCst), 1);
        assert_eq!(voice.1.load(Ordering::SeqCst), 1);
        assert_eq!(log.1.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn send_puts_the_request_channel_first_and_summarises() {
        let sms = fixed(failed("gateway down"));
        let log = fixed(DeliveryOutcome::Delivered {
            detail: "logged".into(),
        });
        let d = Dispatcher::new()
            .with_webhook(sms.clone())
            .with_log(log.clone())
            .with_fallback(vec![ChannelKind::Log, ChannelKind::Webhook]);
        let r = req(ChannelKind::Webhook);
        assert_eq!(d.order_for(&r), [ChannelKind::Webhook, ChannelKind::Log]);
        let o = block_on(d.send(&r));
        assert_eq!(
            o,
            DeliveryOutcome::Delivered {
                detail: "log: logged".into()
            }
        );

        let none = Dispatcher::new();
        match block_on(none.send(&r)) {
            DeliveryOutcome::Failed { reason, retryable } => {
                assert!(reason.starts_with("webhook: channel `webhook` is not configured"));
                assert!(!retryable);
            }
            o => panic!("{o:?}"),
        }
    }

    #[test]
    fn summary_of_failures_is_retryable_if_any_was() {
        let o = summarise(&[
            (
                ChannelKind::Webhook,
                DeliveryOutcome::Failed {
                    reason: "HTTP 503".into(),
                    retryable: true,
                },
            ),
            (
                ChannelKind::Email,
                DeliveryOutcome::Failed {
                    reason: "535".into(),
                    retryable: false,
                },
            ),
        ]);
        assert_eq!(
            o,
            DeliveryOutcome::Failed {
                reason: "webhook: HTTP 503; email: 535".into(),
                retryable: true
            }
        );
        assert!(matches!(
            summarise(&[]),
            DeliveryOutcome::Failed {
                retryable: false,
                ..
            }
        ));
    }
}
