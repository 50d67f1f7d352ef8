//! What a delivery channel implements: take a code and a destination, get
//! it to the person, say how that went.
//!
//! The plaintext code exists only inside [`SecretCode`], whose `Debug` is
//! redacted, so a `{:?}` of a request in a trace never leaks it.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use super::channel::ChannelKind;

/// A plaintext one-time code. Only [`SecretCode::expose`] reveals it; the
/// `Debug` output is redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretCode(String);

impl SecretCode {
    pub fn new(code: impl Into<String>) -> SecretCode {
        SecretCode(code.into())
    }

    /// The digits, for the one place that needs them: the message to the
    /// participant.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretCode(<redacted>)")
    }
}

/// A code to deliver. Debug is redacted (no code).
#[derive(Debug, Clone)]
pub struct DeliveryRequest {
    pub verification_id: String,
    pub channel: ChannelKind,
    /// E.164, for `webhook`, `sip-message` and `voice`.
    pub to_phone: Option<String>,
    /// For `email`.
    pub to_email: Option<String>,
    /// For a friendlier message ("Hello Alice, ...").
    pub participant_name: Option<String>,
    pub code: SecretCode,
}

/// How one attempt on one channel went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryOutcome {
    /// Accepted by the channel (the gateway answered 2xx, the SMTP server
    /// queued it, the callee heard it...). `detail` is for the audit trail
    /// and must not contain the code.
    Delivered { detail: String },
    /// Not delivered. `retryable` says whether trying the same channel later
    /// could work (a timeout) or not (no such number).
    Failed { reason: String, retryable: bool },
}

impl DeliveryOutcome {
    pub fn is_delivered(&self) -> bool {
        matches!(self, DeliveryOutcome::Delivered { .. })
    }
}

/// Implemented by the delivery channels (and by test doubles).
pub trait CodeSender: Send + Sync {
    fn send<'a>(
        &'a self,
        req: &'a DeliveryRequest,
    ) -> Pin<Box<dyn Future<Output = DeliveryOutcome> + Send + 'a>>;
}

/// A test double: records every request (codes included; tests only)
/// and answers `Delivered`, or `Failed` for the channels told to fail.
#[derive(Debug, Default)]
pub struct RecordingSender {
    sent: std::sync::Mutex<Vec<DeliveryRequest>>,
    failing: std::sync::Mutex<Vec<ChannelKind>>,
}

impl RecordingSender {
    pub fn new() -> RecordingSender {
        RecordingSender::default()
    }

    /// Makes `channel` fail (retryable) from now on.
    pub fn fail(&self, channel: ChannelKind) {
        self.failing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(channel);
    }

    /// Every request so far, in order.
    pub fn sent(&self) -> Vec<DeliveryRequest> {
        self.sent.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The code last sent for a verification.
    pub fn last_code(&self, verification_id: &str) -> Option<String> {
        self.sent()
            .iter()
            .rev()
            .find(|r| r.verification_id == verification_id)
            .map(|r| r.code.expose().to_string())
    }
}

impl CodeSender for RecordingSender {
    fn send<'a>(
        &'a self,
        req: &'a DeliveryRequest,
    ) -> Pin<Box<dyn Future<Output = DeliveryOutcome> + Send + 'a>> {
        Box::pin(async move {
            let failing = self
                .failing
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .contains(&req.channel);
            self.sent
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(req.clone());
            if failing {
                DeliveryOutcome::Failed {
                    reason: format!("{} is failing (test)", req.channel.name()),
                    retryable: true,
                }
            } else {
                DeliveryOutcome::Delivered {
                    detail: "recorded (test)".into(),
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_code() {
        let req = DeliveryRequest {
            verification_id: "VE1".into(),
            channel: ChannelKind::Log,
            to_phone: Some("+12015550123".into()),
            to_email: None,
            participant_name: None,
            code: SecretCode::new("482913"),
        };
        let dbg = format!("{req:?}");
        assert!(!dbg.contains("482913"), "{dbg}");
        assert!(dbg.contains("VE1"));
        assert_eq!(req.code.expose(), "482913");
    }
}
