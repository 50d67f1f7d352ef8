//! The `webhook` channel: the code goes to the operator's SMS gateway as a
//! signed JSON POST, and the gateway texts it.
//!
//! # What the gateway receives
//!
//! ```text
//! POST <url> HTTP/1.1
//! Content-Type: application/json
//! User-Agent: pinbridge/<version>
//! X-Pinbridge-Request-Id: 9f0c4b1e6a2d47f8b3c5e0a1d2f3b4c5
//! X-Pinbridge-Attempt: 1
//! X-Pinbridge-Timestamp: 1767225600
//! X-Pinbridge-Signature: sha256=<64 lowercase hex digits>
//!
//! {"verification_id":"…","request_id":"9f0c…","attempt":1,"to":"+12015550123",
//!  "message":"Your pinbridge code is 123456","code":"123456","channel":"sms",
//!  "timestamp":1767225600}
//! ```
//!
//! `request_id` is the same on every retry of one delivery (use it to send
//! the SMS once even if a retry arrives after a lost answer); `attempt` and
//! `timestamp` change on each try, so each try has its own signature.
//!
//! # Verifying a request (the receiver's recipe)
//!
//! 1. Take the body exactly as received, as bytes, before parsing the JSON.
//! 2. Read `X-Pinbridge-Timestamp`: Unix time in seconds, decimal digits
//!    only. Reject the request if it is missing, not a number, or more than
//!    300 seconds away from your clock (either way).
//! 3. Compute `HMAC-SHA256(key = the shared secret as UTF-8 bytes,
//!    message = timestamp + "." + body)` and write it as lowercase hex.
//! 4. Compare `"sha256=" + hex` with `X-Pinbridge-Signature` in constant
//!    time. Reject the request if they differ.
//! 5. Reject a signature you have already acted on (answered 2xx) in the
//!    last 300 seconds: that is an exact replay inside the window. Keep each
//!    one for 300 seconds after you answer 2xx.
//! 6. Answer 2xx once the SMS is accepted for sending. Answer 5xx or 429
//!    (with `Retry-After` in seconds, if you like) for "try again later";
//!    any other 4xx (bad signature, unknown number) is final.
//!
//! Steps 2 and 4 together are what make a captured request useless later:
//! the timestamp is inside the signed message, so it cannot be refreshed
//! without the secret. [`verify_signature`] is this recipe in Rust;
//! `docs/webhook.md` has it for a shell and for Python.
//!
//! # Retries
//!
//! Connection errors, timeouts, 408, 429 and 5xx are retried up to
//! `retries` times with exponential backoff and jitter ([`Backoff`]); other
//! 4xx are not, since sending the same request again will not change the
//! answer. Redirects are followed only to the same scheme, host and port,
//! and only when they keep the method and body (307, 308): following a
//! redirect elsewhere would hand the code to a host the operator never
//! named.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, KeyInit, Mac};
use rand::RngExt;
use reqwest::header::{HeaderMap, HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use reqwest::{redirect, StatusCode, Url};
use serde::Serialize;
use sha2::Sha256;

use super::{code_message, masked, SetupError};
use crate::verify::sender::{CodeSender, DeliveryOutcome, DeliveryRequest};
use crate::verify::settings::WebhookSettings;

type HmacSha256 = Hmac<Sha256>;

pub const HEADER_TIMESTAMP: &str = "X-Pinbridge-Timestamp";
pub const HEADER_SIGNATURE: &str = "X-Pinbridge-Signature";
pub const HEADER_REQUEST_ID: &str = "X-Pinbridge-Request-Id";
pub const HEADER_ATTEMPT: &str = "X-Pinbridge-Attempt";

/// How far a receiver should let a timestamp be from its own clock.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);

/// The longest `Retry-After` honoured; a longer one waits this long.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);

/// Unix seconds now. Injected so tests can sign in the past.
pub type UnixClock = Arc<dyn Fn() -> u64 + Send + Sync>;

fn system_clock() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Exponential backoff with "equal jitter": before retry `n` (1-based) wait
/// a random time between half and all of `min(max, base * 2^(n-1))`.
/// The jitter keeps many verifications that failed together from hitting a
/// recovering gateway at the same instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base: Duration::from_millis(500),
            max: Duration::from_secs(8),
        }
    }
}

impl Backoff {
    /// The wait before retry `retry` (1 = the first retry), with `jitter`
    /// in `0.0..=1.0` choosing where in the upper half it falls.
    pub fn delay(&self, retry: u32, jitter: f64) -> Duration {
        let exp = retry.saturating_sub(1).min(20);
        let full = self.base.saturating_mul(1u32 << exp).min(self.max);
        let half = full / 2;
        half + half.mul_f64(jitter.clamp(0.0, 1.0))
    }
}

/// Why [`verify_signature`] rejected a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("no X-Pinbridge-Timestamp header")]
    MissingTimestamp,
    #[error("X-Pinbridge-Timestamp is not a Unix time in seconds")]
    BadTimestamp,
    #[error("timestamp is {skew_secs} s away from now (more than {tolerance_secs} s): stale or replayed")]
    Stale { skew_secs: u64, tolerance_secs: u64 },
    #[error("no X-Pinbridge-Signature header")]
    MissingSignature,
    #[error("X-Pinbridge-Signature is not `sha256=` and 64 hex digits")]
    BadSignatureFormat,
    #[error("signature does not match (wrong secret, or the timestamp or body was altered)")]
    Mismatch,
}

/// The signature header value for a body sent at `timestamp`:
/// `sha256=` and the lowercase hex HMAC-SHA256 of `"<timestamp>.<body>"`.
/// `None` only if the HMAC implementation refused the key, which HMAC
/// does for no key length (long keys are hashed first).
pub fn signature(secret: &[u8], timestamp: u64, body: &[u8]) -> Option<String> {
    Some(sign_with(keyed(secret)?, timestamp, body))
}

fn keyed(secret: &[u8]) -> Option<HmacSha256> {
    HmacSha256::new_from_slice(secret).ok()
}

fn sign_with(mut mac: HmacSha256, timestamp: u64, body: &[u8]) -> String {
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex(&mac.finalize().into_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    s
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    s.as_bytes()
        .chunks(2)
        .map(|c| {
            let d = |x: u8| (x as char).to_digit(16);
            Some((d(c[0])? * 16 + d(c[1])?) as u8)
        })
        .collect()
}

/// The receiver's recipe (module docs, steps 2–4) in Rust: checks the
/// timestamp is within `tolerance` of `now` and the signature is the
/// HMAC of `"<timestamp>.<body>"` under `secret`, compared in constant
/// time. Returns the timestamp. Step 5, refusing a signature seen before,
/// needs the receiver's memory and is left to it.
pub fn verify_signature(
    secret: &[u8],
    timestamp_header: Option<&str>,
    signature_header: Option<&str>,
    body: &[u8],
    now: u64,
    tolerance: Duration,
) -> Result<u64, SignatureError> {
    let ts_text = timestamp_header
        .ok_or(SignatureError::MissingTimestamp)?
        .trim();
    if ts_text.is_empty() || !ts_text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SignatureError::BadTimestamp);
    }
    let ts: u64 = ts_text.parse().map_err(|_| SignatureError::BadTimestamp)?;
    let skew = now.abs_diff(ts);
    if skew > tolerance.as_secs() {
        return Err(SignatureError::Stale {
            skew_secs: skew,
            tolerance_secs: tolerance.as_secs(),
        });
    }
    let sig = signature_header
        .ok_or(SignatureError::MissingSignature)?
        .trim();
    let tag = sig
        .strip_prefix("sha256=")
        .filter(|h| h.len() == 64)
        .and_then(unhex)
        .ok_or(SignatureError::BadSignatureFormat)?;
    let mut mac = keyed(secret).ok_or(SignatureError::Mismatch)?;
    mac.update(ts_text.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.verify_slice(&tag)
        .map_err(|_| SignatureError::Mismatch)?;
    Ok(ts)
}

/// The JSON body. Field order is part of no contract: receivers must sign
/// over the bytes they got, never over re-serialised JSON.
#[derive(Serialize)]
struct Payload<'a> {
    verification_id: &'a str,
    request_id: &'a str,
    attempt: u32,
    to: &'a str,
    message: &'a str,
    code: &'a str,
    channel: &'static str,
    timestamp: u64,
}

/// What one HTTP attempt came to.
enum Attempt {
    Delivered(StatusCode),
    /// Worth another try: connection errors, timeouts, 408, 429, 5xx.
    Transient {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// Will not change by retrying.
    Permanent(String),
}

/// Sends codes to the operator's SMS gateway.
pub struct WebhookSender {
    client: reqwest::Client,
    url: Url,
    /// `host:port` of the gateway, for messages; the URL's path and query
    /// may hold a token, so they are never shown.
    origin: String,
    mac: HmacSha256,
    retries: u32,
    timeout: Duration,
    backoff: Backoff,
    clock: UnixClock,
}

impl fmt::Debug for WebhookSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookSender")
            .field("gateway", &self.origin)
            .field("secret", &"<redacted>")
            .field("retries", &self.retries)
            .field("backoff", &self.backoff)
            .finish()
    }
}

impl WebhookSender {
    /// Builds the HTTP client for the gateway: per-attempt timeout, no
    /// redirects off the gateway's origin, rustls with the Mozilla roots.
    pub fn new(settings: &WebhookSettings) -> Result<Self, SetupError> {
        let url = Url::parse(&settings.url)
            .map_err(|e| SetupError::WebhookUrl(format!("not a valid URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(SetupError::WebhookUrl(format!(
                "scheme `{}` is not http or https",
                url.scheme()
            )));
        }
        let host = url
            .host_str()
            .ok_or_else(|| SetupError::WebhookUrl("has no host".into()))?
            .to_string();
        let port = url.port_or_known_default().unwrap_or(0);
        let origin = format!("{host}:{port}");
        if url.scheme() == "http" && !is_loopback(&host) {
            tracing::warn!(
                gateway = %origin,
                "the SMS webhook URL is plain http: codes cross the network unencrypted; use https"
            );
        }

        let (scheme, home_host, home_port) = (url.scheme().to_string(), host, port);
        let policy = redirect::Policy::custom(move |attempt| {
            let same_origin = attempt.url().scheme() == scheme
                && attempt.url().host_str() == Some(home_host.as_str())
                && attempt.url().port_or_known_default() == Some(home_port);
            let keeps_body = matches!(
                attempt.status(),
                StatusCode::TEMPORARY_REDIRECT | StatusCode::PERMANENT_REDIRECT
            );
            if same_origin && keeps_body && attempt.previous().len() < 3 {
                attempt.follow()
            } else {
                attempt.stop()
            }
        });

        let mac = keyed(settings.secret.as_bytes()).ok_or(SetupError::WebhookSecret)?;
        let client = reqwest::Client::builder()
            .user_agent(concat!("pinbridge/", env!("CARGO_PKG_VERSION")))
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout)
            .redirect(policy)
            .build()
            .map_err(|e| SetupError::HttpClient(causes(&e)))?;

        Ok(WebhookSender {
            client,
            url,
            origin,
            mac,
            retries: settings.retries,
            timeout: settings.timeout,
            backoff: Backoff::default(),
            clock: Arc::new(system_clock),
        })
    }

    /// Replaces the backoff schedule (tests use milliseconds).
    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Replaces the clock that stamps requests.
    pub fn with_clock(mut self, clock: UnixClock) -> Self {
        self.clock = clock;
        self
    }

    /// Sends one code, retrying transient failures. The outcome's detail or
    /// reason names the gateway, the HTTP status and the attempt count, and
    /// never the code, the secret or the URL's path.
    pub async fn deliver(&self, req: &DeliveryRequest) -> DeliveryOutcome {
        let Some(to) = req.to_phone.as_deref().filter(|t| !t.is_empty()) else {
            return DeliveryOutcome::Failed {
                reason: "no phone number to send the SMS to".into(),
                retryable: false,
            };
        };
        let request_id = new_request_id();
        let message = code_message(req.code.expose());
        let total = self.retries.saturating_add(1);
        let mut last = String::new();
        for attempt in 1..=total {
            let timestamp = (self.clock)();
            let payload = Payload {
                verification_id: &req.verification_id,
                request_id: &request_id,
                attempt,
                to,
                message: &message,
                code: req.code.expose(),
                channel: "sms",
                timestamp,
            };
            let body = match serde_json::to_vec(&payload) {
                Ok(b) => b,
                Err(e) => {
                    return DeliveryOutcome::Failed {
                        reason: format!("cannot encode the webhook body: {e}"),
                        retryable: false,
                    }
                }
            };
            let signature = sign_with(self.mac.clone(), timestamp, &body);
            match self
                .attempt(&request_id, attempt, timestamp, &signature, body)
                .await
            {
                Attempt::Delivered(status) => {
                    return DeliveryOutcome::Delivered {
                        detail: format!(
                            "HTTP {} from {} after {attempt} attempt{} (request id {request_id}, to {})",
                            status.as_u16(),
                            self.origin,
                            plural(attempt),
                            masked(to),
                        ),
                    }
                }
                Attempt::Permanent(reason) => {
                    return DeliveryOutcome::Failed {
                        reason: format!(
                            "SMS gateway {} {reason} (attempt {attempt} of {total}, not retried; request id {request_id})",
                            self.origin
                        ),
                        retryable: false,
                    }
                }
                Attempt::Transient {
                    reason,
                    retry_after,
                } => {
                    tracing::debug!(
                        verification_id = %req.verification_id,
                        gateway = %self.origin,
                        attempt,
                        "SMS webhook attempt failed: {reason}"
                    );
                    last = reason;
                    if attempt < total {
                        let jitter = rand::rng().random::<f64>();
                        let mut wait = self.backoff.delay(attempt, jitter);
                        if let Some(ra) = retry_after {
                            wait = wait.max(ra.min(MAX_RETRY_AFTER));
                        }
                        tokio::time::sleep(wait).await;
                    }
                }
            }
        }
        DeliveryOutcome::Failed {
            reason: format!(
                "SMS gateway {} {last} (gave up after {total} attempt{}; request id {request_id})",
                self.origin,
                plural(total)
            ),
            retryable: true,
        }
    }

    async fn attempt(
        &self,
        request_id: &str,
        attempt: u32,
        timestamp: u64,
        signature: &str,
        body: Vec<u8>,
    ) -> Attempt {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let pairs = [
            (HEADER_REQUEST_ID, request_id.to_string()),
            (HEADER_ATTEMPT, attempt.to_string()),
            (HEADER_TIMESTAMP, timestamp.to_string()),
            (HEADER_SIGNATURE, signature.to_string()),
        ];
        for (name, value) in pairs {
            // All values are ASCII digits, hex or `sha256=`: always valid.
            if let Ok(v) = HeaderValue::from_str(&value) {
                headers.insert(name, v);
            }
        }
        let sent = self
            .client
            .post(self.url.clone())
            .headers(headers)
            .body(body)
            .send()
            .await;
        let resp = match sent {
            Ok(r) => r,
            Err(e) if e.is_builder() => {
                return Attempt::Permanent(format!("could not be sent a request: {}", causes(&e)))
            }
            Err(e) => {
                let reason = if e.is_timeout() {
                    format!("gave no answer within {} s", self.timeout.as_secs_f32())
                } else if e.is_connect() {
                    format!("cannot be reached: {}", causes(&e))
                } else {
                    format!("broke off the exchange: {}", causes(&e))
                };
                return Attempt::Transient {
                    reason,
                    retry_after: None,
                };
            }
        };
        let status = resp.status();
        if status.is_success() {
            return Attempt::Delivered(status);
        }
        let label = format!(
            "answered HTTP {}{}",
            status.as_u16(),
            status
                .canonical_reason()
                .map(|r| format!(" {r}"))
                .unwrap_or_default()
        );
        if status.is_redirection() {
            let to = resp
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|l| l.to_str().ok())
                .and_then(|l| self.url.join(l).ok())
                .and_then(|u| {
                    let host = u.host_str()?.to_string();
                    Some(format!("{host}:{}", u.port_or_known_default()?))
                })
                .unwrap_or_else(|| "an unreadable Location".into());
            return Attempt::Permanent(format!(
                "{label} to {to}, which is not followed (only 307 and 308 on the same scheme, \
                 host and port are); set [delivery.webhook] url to the final address"
            ));
        }
        if status.is_server_error()
            || status == StatusCode::TOO_MANY_REQUESTS
            || status == StatusCode::REQUEST_TIMEOUT
        {
            let retry_after = resp
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            return Attempt::Transient {
                reason: label,
                retry_after,
            };
        }
        Attempt::Permanent(label)
    }
}

impl CodeSender for WebhookSender {
    fn send<'a>(
        &'a self,
        req: &'a DeliveryRequest,
    ) -> Pin<Box<dyn Future<Output = DeliveryOutcome> + Send + 'a>> {
        Box::pin(self.deliver(req))
    }
}

fn plural(n: u32) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// 128 random bits as hex: unique per delivery, the same on its retries.
fn new_request_id() -> String {
    let bytes: [u8; 16] = rand::rng().random();
    hex(&bytes)
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .trim_matches(['[', ']'])
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The causes of a client error on one line ("tcp connect error:
/// Connection refused (os error 111)"). reqwest's own text is left out: it
/// names the URL, whose path or query may carry a gateway token.
fn causes(e: &reqwest::Error) -> String {
    use std::error::Error as _;
    let mut parts: Vec<String> = Vec::new();
    let mut cur: Option<&(dyn std::error::Error + 'static)> = e.source();
    while let Some(c) = cur {
        let text = c.to_string();
        // hyper-util's wrapper ("client error (Connect)") says nothing its
        // source does not.
        if !text.is_empty() && !text.starts_with("client error (") && !parts.contains(&text) {
            parts.push(text);
        }
        cur = c.source();
    }
    if parts.is_empty() {
        "no further detail".into()
    } else {
        parts.join(": ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef-secret";

    #[test]
    fn signature_is_hmac_of_timestamp_dot_body() {
        // Independent check: HMAC-SHA256 by hand from SHA-256 (RFC 2104).
        use sha2::Digest;
        let body = br#"{"a":1}"#;
        let mut ipad = [0x36u8; 64];
        let mut opad = [0x5cu8; 64];
        for (i, k) in SECRET.iter().enumerate() {
            ipad[i] ^= k;
            opad[i] ^= k;
        }
        let inner = Sha256::new()
            .chain_update(ipad)
            .chain_update(b"1700000000.")
            .chain_update(body)
            .finalize();
        let outer = Sha256::new()
            .chain_update(opad)
            .chain_update(inner)
            .finalize();
        assert_eq!(
            signature(SECRET, 1_700_000_000, body),
            Some(format!("sha256={}", hex(&outer)))
        );
    }

    /// The example in docs/webhook.md, byte for byte: the body pinbridge
    /// writes and the signature a receiver computes from it.
    #[test]
    fn documented_example_is_what_pinbridge_sends() {
        let message = code_message("482913");
        let payload = Payload {
            verification_id: "ver-7f3a",
            request_id: "9f0c4b1e6a2d47f8b3c5e0a1d2f3b4c5",
            attempt: 1,
            to: "+12015550123",
            message: &message,
            code: "482913",
            channel: "sms",
            timestamp: 1_767_225_600,
        };
        let body = serde_json::to_vec(&payload).expect("JSON");
        let documented = r#"{"verification_id":"ver-7f3a","request_id":"9f0c4b1e6a2d47f8b3c5e0a1d2f3b4c5","attempt":1,"to":"+12015550123","message":"Your pinbridge code is 482913","code":"482913","channel":"sms","timestamp":1767225600}"#;
        assert_eq!(String::from_utf8_lossy(&body), documented);
        let doc = include_str!("../../../docs/webhook.md");
        let sig = signature(b"whsec-0123456789abcdef", 1_767_225_600, &body).expect("HMAC");
        assert_eq!(
            sig,
            "sha256=b002ed435f400cecbbd9f1dbab3fded2e82cb05a36d174bf2712641120b8e698"
        );
        assert!(doc.contains(&format!("X-Pinbridge-Signature: {sig}")));
        assert!(doc.contains(documented));
    }

    #[test]
    fn verify_accepts_fresh_and_rejects_stale_altered_or_wrong_key() {
        let body = br#"{"code":"123456"}"#;
        let sig = signature(SECRET, 1000, body).expect("HMAC takes any key");
        let tol = DEFAULT_TOLERANCE;
        assert_eq!(
            verify_signature(SECRET, Some("1000"), Some(&sig), body, 1200, tol),
            Ok(1000)
        );
        assert!(matches!(
            verify_signature(SECRET, Some("1000"), Some(&sig), body, 1301, tol),
            Err(SignatureError::Stale { skew_secs: 301, .. })
        ));
        // A timestamp from the future is as suspect as an old one.
        assert!(matches!(
            verify_signature(SECRET, Some("1000"), Some(&sig), body, 600, tol),
            Err(SignatureError::Stale { .. })
        ));
        // Refreshing the timestamp without the secret breaks the signature.
        assert_eq!(
            verify_signature(SECRET, Some("1001"), Some(&sig), body, 1001, tol),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_signature(SECRET, Some("1000"), Some(&sig), b"{}", 1000, tol),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_signature(
                b"another-secret!!",
                Some("1000"),
                Some(&sig),
                body,
                1000,
                tol
            ),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_signature(SECRET, None, Some(&sig), body, 1000, tol),
            Err(SignatureError::MissingTimestamp)
        );
        assert_eq!(
            verify_signature(SECRET, Some("+1000"), Some(&sig), body, 1000, tol),
            Err(SignatureError::BadTimestamp)
        );
        assert_eq!(
            verify_signature(SECRET, Some("1000"), None, body, 1000, tol),
            Err(SignatureError::MissingSignature)
        );
        assert_eq!(
            verify_signature(SECRET, Some("1000"), Some("sha1=abc"), body, 1000, tol),
            Err(SignatureError::BadSignatureFormat)
        );
        let not_hex = format!("sha256={}", "zz".repeat(32));
        assert_eq!(
            verify_signature(SECRET, Some("1000"), Some(&not_hex), body, 1000, tol),
            Err(SignatureError::BadSignatureFormat)
        );
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_within_the_jitter_band() {
        let b = Backoff {
            base: Duration::from_millis(100),
            max: Duration::from_millis(1000),
        };
        assert_eq!(b.delay(1, 0.0), Duration::from_millis(50));
        assert_eq!(b.delay(1, 1.0), Duration::from_millis(100));
        assert_eq!(b.delay(2, 1.0), Duration::from_millis(200));
        assert_eq!(b.delay(3, 0.5), Duration::from_millis(300));
        assert_eq!(b.delay(5, 1.0), Duration::from_millis(1000));
        assert_eq!(b.delay(u32::MAX, 1.0), Duration::from_millis(1000));
        assert_eq!(b.delay(2, 7.0), Duration::from_millis(200));
    }

    #[test]
    fn rejects_urls_without_http_or_host() {
        let s = |url: &str| WebhookSettings {
            url: url.into(),
            secret: "0123456789abcdef".into(),
            timeout: Duration::from_secs(1),
            retries: 0,
        };
        assert!(matches!(
            WebhookSender::new(&s("ftp://x/")),
            Err(SetupError::WebhookUrl(_))
        ));
        assert!(matches!(
            WebhookSender::new(&s("http://")),
            Err(SetupError::WebhookUrl(_))
        ));
        let ok = WebhookSender::new(&s("https://sms.example.com/send?token=hidden"));
        match ok {
            Ok(w) => {
                let dbg = format!("{w:?}");
                assert!(dbg.contains("sms.example.com:443"), "{dbg}");
                assert!(!dbg.contains("0123456789abcdef"), "{dbg}");
                assert!(!dbg.contains("hidden"), "{dbg}");
            }
            Err(e) => panic!("{e}"),
        }
    }
}
