//! The `email` channel: a plain-text message with the code, sent through
//! the operator's SMTP server (lettre, rustls).
//!
//! Transport security follows `[delivery.email] security`:
//! - `starttls` (port 587): the session starts in clear and must be
//!   upgraded with STARTTLS before anything else is sent; a server that
//!   does not offer STARTTLS fails the delivery — falling back to clear
//!   text would hand the password and the code to whoever sits in between.
//! - `tls` (port 465): TLS from the first byte.
//! - `none`: clear text, for a relay on this machine; with a password it
//!   is refused at start-up unless the host is a loopback address.
//!
//! Servers are verified against the system's trusted roots plus, when
//! `ca_file` is set, the certificates in that PEM file: that is how a relay
//! with a private CA is trusted without turning verification off.
//!
//! `timeout` bounds connecting, and three times it bounds the whole session
//! (lettre's tokio transport puts no limit on reads), so a server that
//! accepts and then stalls cannot hold a verification for ever.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::{Mailbox, Message};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use super::{code_message, masked, SetupError};
use crate::verify::sender::{CodeSender, DeliveryOutcome, DeliveryRequest};
use crate::verify::settings::{EmailSettings, SmtpSecurity};

/// The subject line. The code stays out of it, so it does not show on a
/// locked screen's notification.
pub const SUBJECT: &str = "Your pinbridge code";

/// Sends codes by email.
pub struct EmailSender {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    /// `host:port`, for messages.
    server: String,
    security: SmtpSecurity,
    deadline: Duration,
}

impl fmt::Debug for EmailSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The transport holds the password; show only what is harmless.
        f.debug_struct("EmailSender")
            .field("server", &self.server)
            .field("security", &self.security)
            .field("from", &self.from.email.to_string())
            .finish()
    }
}

impl EmailSender {
    /// Sets up the SMTP transport: reads `ca_file`, builds the TLS
    /// settings, checks the sender address. Nothing is sent yet.
    pub fn new(settings: &EmailSettings) -> Result<Self, SetupError> {
        let from: Mailbox = settings.from.parse().map_err(|e| {
            SetupError::FromAddress(format!("`{}` is not an email address: {e}", settings.from))
        })?;
        if settings.security == SmtpSecurity::None
            && settings.password.is_some()
            && !is_loopback(&settings.host)
        {
            return Err(SetupError::PlainTextPassword {
                host: settings.host.clone(),
            });
        }
        let tls = match settings.security {
            SmtpSecurity::StartTls => Tls::Required(tls_parameters(settings)?),
            SmtpSecurity::Tls => Tls::Wrapper(tls_parameters(settings)?),
            SmtpSecurity::None => Tls::None,
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&settings.host)
            .port(settings.port)
            .tls(tls)
            .timeout(Some(settings.timeout));
        if let (Some(user), Some(pass)) = (&settings.username, &settings.password) {
            builder = builder
                .credentials(Credentials::new(user.clone(), pass.clone()))
                .authentication(vec![Mechanism::Plain, Mechanism::Login]);
        }
        Ok(EmailSender {
            transport: builder.build(),
            from,
            server: format!("{}:{}", settings.host, settings.port),
            security: settings.security,
            deadline: settings.timeout.saturating_mul(3),
        })
    }

    /// Sends one message. The outcome names the server, the security used
    /// and the server's reply; never the code or the password.
    pub async fn deliver(&self, req: &DeliveryRequest) -> DeliveryOutcome {
        let Some(to) = req.to_email.as_deref().filter(|t| !t.trim().is_empty()) else {
            return DeliveryOutcome::Failed {
                reason: "the participant has no email address".into(),
                retryable: false,
            };
        };
        let address: Address = match to.trim().parse() {
            Ok(a) => a,
            Err(e) => {
                return DeliveryOutcome::Failed {
                    reason: format!("the participant's email address is not valid: {e}"),
                    retryable: false,
                }
            }
        };
        let name = req
            .participant_name
            .as_deref()
            .map(clean_name)
            .filter(|n| !n.is_empty());
        let message = Message::builder()
            .from(self.from.clone())
            .to(Mailbox::new(name.clone(), address))
            .subject(SUBJECT)
            .message_id(None)
            .header(ContentType::TEXT_PLAIN)
            .body(message_text(name.as_deref(), req.code.expose()));
        let message = match message {
            Ok(m) => m,
            Err(e) => {
                return DeliveryOutcome::Failed {
                    reason: format!("cannot build the email: {e}"),
                    retryable: false,
                }
            }
        };
        match tokio::time::timeout(self.deadline, self.transport.send(message)).await {
            Err(_) => DeliveryOutcome::Failed {
                reason: format!(
                    "{}: the SMTP session did not finish within {} s",
                    self.server,
                    self.deadline.as_secs_f32()
                ),
                retryable: true,
            },
            Ok(Ok(resp)) => DeliveryOutcome::Delivered {
                detail: format!(
                    "accepted by {} over {}: {} {} (to {})",
                    self.server,
                    security_name(self.security),
                    resp.code(),
                    resp.first_line().unwrap_or("").trim(),
                    masked(to),
                ),
            },
            Ok(Err(e)) => self.failure(&e),
        }
    }

    /// Turns a lettre error into a reason a person can act on, and says
    /// whether trying again later could help.
    fn failure(&self, e: &lettre::transport::smtp::Error) -> DeliveryOutcome {
        let text = tidy(&e.to_string());
        let server = &self.server;
        let (reason, retryable) = if e.is_permanent() {
            (format!("{server} refused: {text}"), false)
        } else if e.is_transient() {
            (format!("{server} refused for now: {text}"), true)
        } else if e.is_timeout() {
            (format!("{server}: timed out: {text}"), true)
        } else if self.security == SmtpSecurity::StartTls && text.contains("STARTTLS") {
            (
                format!(
                    "{server} does not offer STARTTLS, which security = \"starttls\" requires \
                     (nothing was sent)"
                ),
                false,
            )
        } else if e.is_tls() || text.contains("certificate") {
            // A certificate the roots do not vouch for will not fix itself.
            (
                format!(
                    "TLS with {server} failed: {text} (a private CA goes in [delivery.email] ca_file)"
                ),
                false,
            )
        } else if e.is_client() {
            (format!("{server}: {text}"), false)
        } else {
            (format!("{server}: {text}"), true)
        };
        DeliveryOutcome::Failed { reason, retryable }
    }
}

impl CodeSender for EmailSender {
    fn send<'a>(
        &'a self,
        req: &'a DeliveryRequest,
    ) -> Pin<Box<dyn Future<Output = DeliveryOutcome> + Send + 'a>> {
        Box::pin(self.deliver(req))
    }
}

fn tls_parameters(settings: &EmailSettings) -> Result<TlsParameters, SetupError> {
    let mut builder = TlsParameters::builder(settings.host.clone());
    if let Some(path) = &settings.ca_file {
        let ca_err = |reason: String| SetupError::CaFile {
            path: path.clone(),
            reason,
        };
        let pem = std::fs::read(path).map_err(|e| ca_err(format!("cannot read it: {e}")))?;
        if !pem
            .windows(b"-----BEGIN CERTIFICATE-----".len())
            .any(|w| w == b"-----BEGIN CERTIFICATE-----")
        {
            return Err(ca_err(
                "holds no PEM certificate (-----BEGIN CERTIFICATE-----)".into(),
            ));
        }
        let cert = Certificate::from_pem(&pem)
            .map_err(|e| ca_err(format!("not a valid PEM certificate file: {e}")))?;
        builder = builder.add_root_certificate(cert);
    }
    builder
        .build_rustls()
        .map_err(|e| SetupError::Tls(format!("cannot set up TLS for {}: {e}", settings.host)))
}

/// lettre's error text without its repetitions ("Connection error:
/// Connection error: invalid peer certificate") and its "internal client
/// error" label.
fn tidy(text: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for p in text.split(": ") {
        if p != "internal client error" && parts.last() != Some(&p) {
            parts.push(p);
        }
    }
    parts.join(": ")
}

fn security_name(s: SmtpSecurity) -> &'static str {
    match s {
        SmtpSecurity::StartTls => "STARTTLS",
        SmtpSecurity::Tls => "TLS",
        SmtpSecurity::None => "plain SMTP (no TLS)",
    }
}

/// A display name fit for a header and a greeting: no control characters
/// (a newline in a name must not start a new line of the message), at
/// most 64 characters.
fn clean_name(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(64)
        .collect()
}

/// The body of the email.
fn message_text(name: Option<&str>, code: &str) -> String {
    let greeting = match name {
        Some(n) => format!("Hello {n},"),
        None => "Hello,".to_string(),
    };
    format!(
        "{greeting}\r\n\r\n{}.\r\n\r\nKey it in when pinbridge asks for it. It works once and \
         expires in a few minutes.\r\nIf you did not ask for a code, you can ignore this \
         message.\r\n",
        code_message(code)
    )
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .trim_matches(['[', ']'])
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn settings(security: SmtpSecurity, host: &str) -> EmailSettings {
        EmailSettings {
            host: host.into(),
            port: 587,
            security,
            username: Some("pinbridge".into()),
            password: Some("hunter2-password".into()),
            from: "pinbridge <otp@example.com>".into(),
            timeout: Duration::from_secs(5),
            ca_file: None,
        }
    }

    #[test]
    fn names_are_cleaned_for_headers_and_greeting() {
        assert_eq!(clean_name("  Alice\r\nBcc: x@y  "), "Alice Bcc: x@y");
        assert_eq!(clean_name(&"é".repeat(100)).chars().count(), 64);
        let t = message_text(Some("Alice"), "123456");
        assert!(t.starts_with("Hello Alice,\r\n"));
        assert!(t.contains("Your pinbridge code is 123456.\r\n"));
        assert!(message_text(None, "1").starts_with("Hello,\r\n"));
    }

    #[test]
    fn lettre_error_text_is_tidied() {
        assert_eq!(
            tidy("Connection error: Connection error: invalid peer certificate: UnknownIssuer"),
            "Connection error: invalid peer certificate: UnknownIssuer"
        );
        assert_eq!(
            tidy("internal client error: No compatible authentication mechanism was found"),
            "No compatible authentication mechanism was found"
        );
    }

    #[test]
    fn plain_text_password_only_to_loopback() {
        match EmailSender::new(&settings(SmtpSecurity::None, "mail.example.com")) {
            Err(SetupError::PlainTextPassword { host }) => assert_eq!(host, "mail.example.com"),
            other => panic!("{other:?}"),
        }
        assert!(EmailSender::new(&settings(SmtpSecurity::None, "127.0.0.1")).is_ok());
        assert!(EmailSender::new(&settings(SmtpSecurity::None, "localhost")).is_ok());
    }

    #[test]
    fn ca_file_problems_name_the_file() {
        let mut s = settings(SmtpSecurity::StartTls, "mail.example.com");
        s.ca_file = Some(PathBuf::from("/nonexistent/pinbridge-ca.pem"));
        match EmailSender::new(&s) {
            Err(e @ SetupError::CaFile { .. }) => {
                let m = e.to_string();
                assert!(m.contains("/nonexistent/pinbridge-ca.pem"), "{m}");
                assert!(m.contains("cannot read it"), "{m}");
            }
            other => panic!("{other:?}"),
        }
        let dir = std::env::temp_dir().join(format!("pinbridge-email-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let junk = dir.join("junk.pem");
        if let Err(e) = std::fs::write(&junk, "not a certificate\n") {
            panic!("write {}: {e}", junk.display());
        }
        s.ca_file = Some(junk.clone());
        match EmailSender::new(&s) {
            Err(e @ SetupError::CaFile { .. }) => {
                assert!(e.to_string().contains("holds no PEM certificate"), "{e}")
            }
            other => panic!("{other:?}"),
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn debug_hides_the_password() {
        match EmailSender::new(&settings(SmtpSecurity::None, "127.0.0.1")) {
            Ok(s) => {
                let d = format!("{s:?}");
                assert!(!d.contains("hunter2"), "{d}");
                assert!(d.contains("127.0.0.1:587"), "{d}");
            }
            Err(e) => panic!("{e}"),
        }
    }
}
