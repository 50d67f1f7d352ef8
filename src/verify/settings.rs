//! The settings the verification features take from the configuration
//! file. `crate::config` parses and validates the file and builds these;
//! this module only says what they are.

use std::path::PathBuf;
use std::time::Duration;

use super::channel::ChannelKind;

#[derive(Debug, Clone)]
pub struct VerifySettings {
    /// Digits per code, 4–10.
    pub code_length: u8,
    pub ttl: Duration,
    /// Wrong checks before `max_attempts_reached`.
    pub max_checks: u32,
    /// Codes sent to one destination per hour.
    pub max_sends_per_hour: u32,
    /// The key of the keyed code hashes (created, mode 0600, on first start).
    pub key_file: PathBuf,
    /// Default channels, tried in order (fallback).
    pub channels: Vec<ChannelKind>,
}

#[derive(Clone)]
pub struct WebhookSettings {
    pub url: String,
    /// HMAC-SHA256 key for the signature header.
    pub secret: String,
    pub timeout: Duration,
    pub retries: u32,
}

impl std::fmt::Debug for WebhookSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry a gateway token in its query: keep only the
        // part before `?`.
        let url = self.url.split('?').next().unwrap_or("");
        f.debug_struct("WebhookSettings")
            .field("url", &url)
            .field("secret", &"<redacted>")
            .field("timeout", &self.timeout)
            .field("retries", &self.retries)
            .finish()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    StartTls,
    /// TLS from the first byte (port 465).
    Tls,
    /// Plain text, for a local relay only.
    None,
}

#[derive(Clone)]
pub struct EmailSettings {
    pub host: String,
    pub port: u16,
    pub security: SmtpSecurity,
    pub username: Option<String>,
    pub password: Option<String>,
    pub from: String,
    pub timeout: Duration,
    /// Extra trusted root certificates (PEM) for the server's TLS, for a
    /// relay with a private CA; the system's roots stay trusted too.
    pub ca_file: Option<PathBuf>,
}

impl std::fmt::Debug for EmailSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmailSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("from", &self.from)
            .field("timeout", &self.timeout)
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

#[derive(Debug, Clone)]
pub struct ParticipantSettings {
    /// Unique login for the web join page and the API (None: derived from
    /// the name when the participant is stored).
    pub username: Option<String>,
    pub name: String,
    /// E.164, normalised at load.
    pub phone: String,
    pub email: Option<String>,
    pub moderator: bool,
    /// Conference names ("*" for all).
    pub conferences: Vec<String>,
    /// Preferred channels (empty: the global order).
    pub channels: Vec<ChannelKind>,
    /// A recording of the participant's name, played after "welcome".
    pub name_prompt: Option<PathBuf>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_debug_hides_the_secret_and_query() {
        let w = WebhookSettings {
            url: "https://gw.example.com/send?token=t0ken".into(),
            secret: "0123456789abcdef".into(),
            timeout: Duration::from_secs(1),
            retries: 1,
        };
        let d = format!("{w:?}");
        assert!(
            !d.contains("0123456789abcdef") && !d.contains("t0ken"),
            "{d}"
        );
        assert!(d.contains("https://gw.example.com/send"), "{d}");
    }
}
