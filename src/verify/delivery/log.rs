//! The `log` channel: writes the code to pinbridge's own log, so a developer
//! can try the OTP flows without an SMS gateway or a mail server.
//!
//! This is the one place a code is allowed into the log, so it is fenced:
//! it works only when `[delivery.log] enabled = true` (which the config
//! check calls development only), every line it writes starts with
//! `DEVELOPMENT ONLY`, is at WARN so it shows at the default level, and a
//! warning is written once at start-up when it is enabled. A disabled
//! sender refuses every request instead of quietly logging.

use std::future::Future;
use std::pin::Pin;

use super::masked;
use crate::verify::sender::{CodeSender, DeliveryOutcome, DeliveryRequest};

/// The marker that starts every line the log channel writes.
pub const MARKER: &str = "DEVELOPMENT ONLY";

/// Logs codes at WARN, when enabled.
#[derive(Debug)]
pub struct LogSender {
    enabled: bool,
}

impl LogSender {
    /// `enabled` is `OtpSettings::log_channel`. Enabling it logs a warning
    /// right away, so nobody runs it in production unnoticed.
    pub fn new(enabled: bool) -> Self {
        if enabled {
            tracing::warn!(
                "{MARKER}: the `log` delivery channel is enabled: one-time codes will be \
                 written to this log. Disable [delivery.log] in production."
            );
        }
        LogSender { enabled }
    }

    pub fn deliver(&self, req: &DeliveryRequest) -> DeliveryOutcome {
        if !self.enabled {
            return DeliveryOutcome::Failed {
                reason: "the log channel is disabled: it is for development only \
                         ([delivery.log] enabled = true)"
                    .into(),
                retryable: false,
            };
        }
        let to = req
            .to_phone
            .as_deref()
            .or(req.to_email.as_deref())
            .map(masked)
            .unwrap_or_else(|| "nobody".into());
        tracing::warn!(
            target: "pinbridge::dev_code",
            verification_id = %req.verification_id,
            "{MARKER}: one-time code {} for {to} (verification {}); \
             the log channel must not be used in production",
            req.code.expose(),
            req.verification_id,
        );
        DeliveryOutcome::Delivered {
            detail: format!("written to the log for {to} (development only)"),
        }
    }
}

impl CodeSender for LogSender {
    fn send<'a>(
        &'a self,
        req: &'a DeliveryRequest,
    ) -> Pin<Box<dyn Future<Output = DeliveryOutcome> + Send + 'a>> {
        let outcome = self.deliver(req);
        Box::pin(async move { outcome })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::channel::ChannelKind;
    use crate::verify::sender::SecretCode;
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    /// A tracing writer into a shared buffer.
    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            if let Ok(mut v) = self.0.lock() {
                v.extend_from_slice(b);
            }
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn captured(f: impl FnOnce()) -> String {
        let buf = Buf::default();
        let w = buf.clone();
        let sub = tracing_subscriber::fmt()
            .with_writer(move || w.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::TRACE)
            .finish();
        tracing::subscriber::with_default(sub, f);
        let bytes = buf.0.lock().map(|v| v.clone()).unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    fn req() -> DeliveryRequest {
        DeliveryRequest {
            verification_id: "ver-1".into(),
            channel: ChannelKind::Log,
            to_phone: Some("+12015550123".into()),
            to_email: None,
            participant_name: Some("Alice".into()),
            code: SecretCode::new("482913"),
        }
    }

    #[test]
    fn enabled_logs_the_code_loudly_at_warn() {
        let mut outcome = None;
        let log = captured(|| {
            let s = LogSender::new(true);
            outcome = Some(s.deliver(&req()));
        });
        assert!(matches!(outcome, Some(DeliveryOutcome::Delivered { .. })));
        let line = log
            .lines()
            .find(|l| l.contains("482913"))
            .unwrap_or_else(|| panic!("code not logged: {log}"));
        assert!(line.contains("WARN"), "{line}");
        assert!(
            line.contains("DEVELOPMENT ONLY: one-time code 482913"),
            "{line}"
        );
        assert!(line.contains("********23"), "{line}");
        assert!(!line.contains("+12015550123"), "{line}");
        assert!(
            log.lines()
                .any(|l| l.contains("DEVELOPMENT ONLY") && l.contains("enabled")),
            "{log}"
        );
    }

    #[test]
    fn disabled_refuses_and_logs_nothing() {
        let mut outcome = None;
        let log = captured(|| {
            outcome = Some(LogSender::new(false).deliver(&req()));
        });
        match outcome {
            Some(DeliveryOutcome::Failed { reason, retryable }) => {
                assert!(reason.contains("disabled"), "{reason}");
                assert!(reason.contains("development only"), "{reason}");
                assert!(!retryable);
            }
            o => panic!("{o:?}"),
        }
        assert!(!log.contains("482913"), "{log}");
    }
}
