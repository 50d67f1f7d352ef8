//! Delivery channels against real counterparts on loopback:
//!
//! - a webhook receiver (a small HTTP/1.1 server) that checks every request
//!   with the recipe of `docs/webhook.md`, written here from the document
//!   and not by calling pinbridge's own `verify_signature`;
//! - an SMTP sink speaking real SMTP: EHLO, STARTTLS upgrading to TLS with a
//!   certificate from a test CA (rcgen), AUTH PLAIN and LOGIN, MAIL, RCPT,
//!   DATA and QUIT, or TLS from the first byte;
//! - the dispatcher falling back from one to the other.
//!
//! Nothing here leaves 127.0.0.1.

use std::collections::HashSet;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

use pinbridge::config::otp::{ChannelKind, EmailSettings, SmtpSecurity, WebhookSettings};
use pinbridge::verify::delivery::webhook::Backoff;
use pinbridge::verify::delivery::{Dispatcher, EmailSender, SetupError, WebhookSender};
use pinbridge::verify::sender::{CodeSender, DeliveryOutcome, DeliveryRequest, SecretCode};

const SECRET: &str = "whsec-0123456789abcdef";
const CODE: &str = "482913";

fn request(channel: ChannelKind) -> DeliveryRequest {
    DeliveryRequest {
        verification_id: "ver-7f3a".into(),
        channel,
        to_phone: Some("+12015550123".into()),
        to_email: Some("alice@example.com".into()),
        participant_name: Some("Alice Example".into()),
        code: SecretCode::new(CODE),
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn expect_delivered(o: DeliveryOutcome) -> String {
    eprintln!("outcome: {o:?}");
    match o {
        DeliveryOutcome::Delivered { detail } => detail,
        DeliveryOutcome::Failed { reason, .. } => panic!("expected delivery, got: {reason}"),
    }
}

fn expect_failed(o: DeliveryOutcome) -> (String, bool) {
    eprintln!("outcome: {o:?}");
    match o {
        DeliveryOutcome::Failed { reason, retryable } => (reason, retryable),
        DeliveryOutcome::Delivered { detail } => panic!("expected failure, got: {detail}"),
    }
}

/// A port nothing listens on.
async fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = l.local_addr().expect("addr").port();
    drop(l);
    port
}

// ======================================================================
// The webhook receiver.

/// The recipe of docs/webhook.md, steps 1–5, as a receiver implements it.
struct Recipe {
    secret: Vec<u8>,
    /// Added to the receiver's clock, to look at a request later.
    clock_offset: i64,
    seen: HashSet<String>,
}

impl Recipe {
    fn new(secret: &str) -> Self {
        Recipe {
            secret: secret.as_bytes().to_vec(),
            clock_offset: 0,
            seen: HashSet::new(),
        }
    }

    /// `Ok` or why the request is refused.
    fn check(
        &mut self,
        timestamp: Option<&str>,
        signature: Option<&str>,
        body: &[u8],
    ) -> Result<(), String> {
        // 2. The timestamp: digits, within 300 s of our clock.
        let ts_text = timestamp.ok_or("no timestamp")?;
        if ts_text.is_empty() || !ts_text.bytes().all(|b| b.is_ascii_digit()) {
            return Err("timestamp is not a number".into());
        }
        let ts: i64 = ts_text.parse().map_err(|_| "timestamp out of range")?;
        let now = unix_now() as i64 + self.clock_offset;
        if (now - ts).abs() > 300 {
            return Err(format!("stale timestamp ({} s off)", now - ts));
        }
        // 3. HMAC-SHA256(secret, timestamp + "." + body), lowercase hex.
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.secret).map_err(|_| "bad key")?;
        mac.update(ts_text.as_bytes());
        mac.update(b".");
        mac.update(body);
        let expected: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let expected = format!("sha256={expected}");
        // 4. Constant-time comparison.
        let got = signature.ok_or("no signature")?;
        if !bool::from(expected.as_bytes().ct_eq(got.as_bytes())) {
            return Err("signature mismatch".into());
        }
        // 5. No signature acted on twice.
        if self.seen.contains(got) {
            return Err("replayed request".into());
        }
        Ok(())
    }
}

#[derive(Clone, Copy, Debug)]
enum Reply {
    Status(u16),
    /// A status with `Retry-After: <secs>`.
    RetryAfter(u16, u64),
    /// A redirect to `Location`: the string is appended to the receiver's
    /// own origin when it starts with `/`, else used as it is.
    Redirect(u16, &'static str),
    /// Read the request and never answer.
    Hang,
}

#[derive(Clone, Debug)]
struct Seen {
    path: String,
    raw: Vec<u8>,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    verdict: Result<(), String>,
    status: Option<u16>,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

struct Receiver {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    recipe: Arc<Mutex<Recipe>>,
}

impl Receiver {
    /// Starts a receiver that answers verified requests with `script` in
    /// turn (then 200), and refused ones with 401 (409 for a replay).
    async fn start(secret: &str, script: Vec<Reply>) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind receiver");
        let addr = listener.local_addr().expect("receiver addr");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let recipe = Arc::new(Mutex::new(Recipe::new(secret)));
        let script = Arc::new(Mutex::new(script.into_iter()));
        let (s, r) = (seen.clone(), recipe.clone());
        tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let (s, r, script) = (s.clone(), r.clone(), script.clone());
                tokio::spawn(async move {
                    let _ = serve_http(sock, addr, s, r, script).await;
                });
            }
        });
        Receiver { addr, seen, recipe }
    }

    fn url(&self) -> String {
        format!("http://{}/sms/send?token=gateway-token-abc", self.addr)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }
}

async fn serve_http(
    sock: TcpStream,
    origin: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    recipe: Arc<Mutex<Recipe>>,
    script: Arc<Mutex<std::vec::IntoIter<Reply>>>,
) -> std::io::Result<()> {
    let mut r = BufReader::new(sock);
    loop {
        // Request line and headers.
        let mut raw = Vec::new();
        let mut request_line = String::new();
        if r.read_line(&mut request_line).await? == 0 {
            return Ok(());
        }
        raw.extend_from_slice(request_line.as_bytes());
        let path = request_line
            .split_whitespace()
            .nth(1)
            .unwrap_or("")
            .to_string();
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            if r.read_line(&mut line).await? == 0 {
                return Ok(());
            }
            raw.extend_from_slice(line.as_bytes());
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                headers.push((k.trim().to_string(), v.trim().to_string()));
            }
            if raw.len() > 64 * 1024 {
                return Ok(());
            }
        }
        let len: usize = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0u8; len.min(1 << 20)];
        r.read_exact(&mut body).await?;
        raw.extend_from_slice(&body);

        // 1.–5. of the recipe, on the bytes as received.
        let h = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        };
        let verdict = recipe.lock().expect("lock").check(
            h("X-Pinbridge-Timestamp"),
            h("X-Pinbridge-Signature"),
            &body,
        );
        let reply = match &verdict {
            Err(e) if e.contains("replayed") => Reply::Status(409),
            Err(_) => Reply::Status(401),
            Ok(()) => script
                .lock()
                .expect("lock")
                .next()
                .unwrap_or(Reply::Status(200)),
        };
        let status = match reply {
            Reply::Status(s) | Reply::RetryAfter(s, _) | Reply::Redirect(s, _) => Some(s),
            Reply::Hang => None,
        };
        if let (Some(200..=299), Some(sig)) = (status, h("X-Pinbridge-Signature")) {
            // 5. Remember what was acted on.
            recipe.lock().expect("lock").seen.insert(sig.to_string());
        }
        seen.lock().expect("lock").push(Seen {
            path,
            raw,
            headers: headers.clone(),
            body,
            verdict,
            status,
        });
        let extra = match reply {
            Reply::RetryAfter(_, secs) => format!("Retry-After: {secs}\r\n"),
            Reply::Redirect(_, loc) if loc.starts_with('/') => {
                format!("Location: http://{origin}{loc}\r\n")
            }
            Reply::Redirect(_, loc) => format!("Location: {loc}\r\n"),
            _ => String::new(),
        };
        match status {
            Some(s) => {
                let resp = format!("HTTP/1.1 {s} Test\r\nContent-Length: 0\r\n{extra}\r\n");
                r.get_mut().write_all(resp.as_bytes()).await?;
            }
            None => {
                // Hold the connection until the client gives up.
                let mut sink = Vec::new();
                let _ = r.read_to_end(&mut sink).await;
                return Ok(());
            }
        }
    }
}

fn webhook_settings(url: String, secret: &str, retries: u32, timeout: Duration) -> WebhookSettings {
    WebhookSettings {
        url,
        secret: secret.into(),
        timeout,
        retries,
    }
}

fn fast(settings: &WebhookSettings) -> WebhookSender {
    WebhookSender::new(settings)
        .expect("webhook sender")
        .with_backoff(Backoff {
            base: Duration::from_millis(20),
            max: Duration::from_millis(100),
        })
}

#[tokio::test]
async fn webhook_delivers_a_request_the_receiver_verifies() {
    let rx = Receiver::start(SECRET, vec![]).await;
    let sender = fast(&webhook_settings(
        rx.url(),
        SECRET,
        3,
        Duration::from_secs(5),
    ));
    let before = unix_now();
    let outcome = sender.send(&request(ChannelKind::Webhook)).await;
    let detail = expect_delivered(outcome.clone());
    assert!(detail.contains("HTTP 200"), "{detail}");
    assert!(detail.contains("after 1 attempt "), "{detail}");
    assert!(
        !detail.contains(CODE) && !detail.contains("gateway-token"),
        "{detail}"
    );

    let seen = rx.seen();
    assert_eq!(seen.len(), 1);
    let s = &seen[0];
    assert_eq!(s.verdict, Ok(()));
    assert_eq!(s.path, "/sms/send?token=gateway-token-abc");
    assert!(s
        .raw
        .starts_with(b"POST /sms/send?token=gateway-token-abc HTTP/1.1\r\n"));
    assert_eq!(s.header("Content-Type"), Some("application/json"));
    assert_eq!(s.header("X-Pinbridge-Attempt"), Some("1"));
    let request_id = s.header("X-Pinbridge-Request-Id").expect("request id");
    assert_eq!(request_id.len(), 32);
    assert!(detail.contains(request_id), "{detail}");

    let body: serde_json::Value = serde_json::from_slice(&s.body).expect("JSON body");
    assert_eq!(body["verification_id"], "ver-7f3a");
    assert_eq!(body["request_id"], request_id);
    assert_eq!(body["attempt"], 1);
    assert_eq!(body["to"], "+12015550123");
    assert_eq!(body["message"], format!("Your pinbridge code is {CODE}"));
    assert_eq!(body["code"], CODE);
    assert_eq!(body["channel"], "sms");
    let ts = body["timestamp"].as_u64().expect("timestamp");
    assert_eq!(
        s.header("X-Pinbridge-Timestamp"),
        Some(ts.to_string().as_str())
    );
    assert!(ts >= before && ts <= unix_now());

    // pinbridge's own helper agrees with the receiver's recipe.
    let check = pinbridge::verify::delivery::webhook::verify_signature(
        SECRET.as_bytes(),
        s.header("X-Pinbridge-Timestamp"),
        s.header("X-Pinbridge-Signature"),
        &s.body,
        unix_now(),
        Duration::from_secs(300),
    );
    assert_eq!(check, Ok(ts));
}

#[tokio::test]
async fn webhook_with_the_wrong_secret_is_refused_by_the_receiver_and_not_retried() {
    let rx = Receiver::start(SECRET, vec![]).await;
    let sender = fast(&webhook_settings(
        rx.url(),
        "not-the-shared-secret",
        3,
        Duration::from_secs(5),
    ));
    let outcome = sender.send(&request(ChannelKind::Webhook)).await;
    let (reason, retryable) = expect_failed(outcome.clone());
    assert!(reason.contains("HTTP 401"), "{reason}");
    assert!(reason.contains("not retried"), "{reason}");
    assert!(!retryable);
    let seen = rx.seen();
    assert_eq!(seen.len(), 1, "a 4xx must not be retried");
    assert_eq!(seen[0].verdict, Err("signature mismatch".to_string()));
}

#[tokio::test]
async fn webhook_500_then_200_is_retried_and_delivered() {
    let rx = Receiver::start(SECRET, vec![Reply::Status(500)]).await;
    let sender = fast(&webhook_settings(
        rx.url(),
        SECRET,
        3,
        Duration::from_secs(5),
    ));
    let outcome = sender.send(&request(ChannelKind::Webhook)).await;
    let detail = expect_delivered(outcome.clone());
    assert!(detail.contains("HTTP 200"), "{detail}");
    assert!(detail.contains("after 2 attempts"), "{detail}");
    let seen = rx.seen();
    assert_eq!(seen.len(), 2);
    assert!(seen.iter().all(|s| s.verdict.is_ok()));
    assert_eq!(seen[0].status, Some(500));
    assert_eq!(seen[1].status, Some(200));
    // One delivery: the same request id; two tries: two signatures.
    assert_eq!(
        seen[0].header("X-Pinbridge-Request-Id"),
        seen[1].header("X-Pinbridge-Request-Id")
    );
    assert_eq!(seen[1].header("X-Pinbridge-Attempt"), Some("2"));
    assert_ne!(
        seen[0].header("X-Pinbridge-Signature"),
        seen[1].header("X-Pinbridge-Signature")
    );
}

#[tokio::test]
async fn webhook_429_with_retry_after_and_503_are_retried() {
    let rx = Receiver::start(SECRET, vec![Reply::RetryAfter(429, 1), Reply::Status(503)]).await;
    let sender = fast(&webhook_settings(
        rx.url(),
        SECRET,
        2,
        Duration::from_secs(5),
    ));
    let t0 = Instant::now();
    let outcome = sender.send(&request(ChannelKind::Webhook)).await;
    let detail = expect_delivered(outcome.clone());
    assert!(detail.contains("after 3 attempts"), "{detail}");
    assert!(
        t0.elapsed() >= Duration::from_secs(1),
        "Retry-After: 1 was not honoured ({:?})",
        t0.elapsed()
    );
    let statuses: Vec<Option<u16>> = rx.seen().iter().map(|s| s.status).collect();
    assert_eq!(statuses, [Some(429), Some(503), Some(200)]);
}

#[tokio::test]
async fn webhook_400_is_not_retried() {
    let rx = Receiver::start(SECRET, vec![Reply::Status(400)]).await;
    let sender = fast(&webhook_settings(
        rx.url(),
        SECRET,
        3,
        Duration::from_secs(5),
    ));
    let outcome = sender.send(&request(ChannelKind::Webhook)).await;
    let (reason, retryable) = expect_failed(outcome.clone());
    assert!(reason.contains("HTTP 400 Bad Request"), "{reason}");
    assert!(reason.contains("attempt 1 of 4"), "{reason}");
    assert!(
        reason.contains(&format!("127.0.0.1:{}", rx.addr.port())),
        "{reason}"
    );
    assert!(!reason.contains("gateway-token"), "{reason}");
    assert!(!retryable);
    assert_eq!(rx.seen().len(), 1);
}

#[tokio::test]
async fn webhook_timeouts_are_retried_then_fail() {
    let rx = Receiver::start(SECRET, vec![Reply::Hang, Reply::Hang, Reply::Hang]).await;
    let sender = fast(&webhook_settings(
        rx.url(),
        SECRET,
        2,
        Duration::from_millis(300),
    ));
    let t0 = Instant::now();
    let outcome = sender.send(&request(ChannelKind::Webhook)).await;
    let (reason, retryable) = expect_failed(outcome.clone());
    assert!(reason.contains("gave no answer within 0.3 s"), "{reason}");
    assert!(reason.contains("gave up after 3 attempts"), "{reason}");
    assert!(retryable, "a timeout may pass: the caller can try later");
    assert_eq!(rx.seen().len(), 3);
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
}

/// Sends raw request bytes and returns the status code answered.
async fn replay(addr: SocketAddr, raw: &[u8]) -> u16 {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(raw).await.expect("write");
    let mut buf = vec![0u8; 256];
    let n = s.read(&mut buf).await.expect("read");
    let head = String::from_utf8_lossy(&buf[..n]);
    head.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn replayed_altered_and_old_requests_are_rejected_by_the_recipe() {
    let rx = Receiver::start(SECRET, vec![]).await;
    let sender = fast(&webhook_settings(
        rx.url(),
        SECRET,
        0,
        Duration::from_secs(5),
    ));
    expect_delivered(sender.send(&request(ChannelKind::Webhook)).await);
    let captured = rx.seen()[0].clone();

    // The same bytes again, at once: the signature was seen.
    assert_eq!(replay(rx.addr, &captured.raw).await, 409);

    // The same bytes with a fresh timestamp header: the signature no longer
    // matches, since the timestamp is signed.
    let old_ts = captured.header("X-Pinbridge-Timestamp").expect("ts");
    let fresh = (unix_now() + 1).to_string();
    let raw = String::from_utf8(captured.raw.clone()).expect("utf-8 request");
    let altered = raw.replace(
        &format!("x-pinbridge-timestamp: {old_ts}"),
        &format!("x-pinbridge-timestamp: {fresh}"),
    );
    assert_ne!(altered, raw, "header not found in the captured request");
    assert_eq!(replay(rx.addr, altered.as_bytes()).await, 401);

    // The same bytes ten minutes later (to a receiver with a fresh memory):
    // too old.
    {
        let mut recipe = rx.recipe.lock().expect("lock");
        recipe.seen.clear();
        recipe.clock_offset = 600;
    }
    assert_eq!(replay(rx.addr, &captured.raw).await, 401);

    let verdicts: Vec<Result<(), String>> = rx.seen().iter().map(|s| s.verdict.clone()).collect();
    assert_eq!(verdicts[0], Ok(()));
    assert_eq!(verdicts[1], Err("replayed request".into()));
    assert_eq!(verdicts[2], Err("signature mismatch".into()));
    assert!(
        matches!(&verdicts[3], Err(e) if e.starts_with("stale timestamp")),
        "{:?}",
        verdicts[3]
    );

    // A sender whose clock is an hour behind is refused too.
    rx.recipe.lock().expect("lock").clock_offset = 0;
    let behind = unix_now() - 3600;
    let late = fast(&webhook_settings(
        rx.url(),
        SECRET,
        2,
        Duration::from_secs(5),
    ))
    .with_clock(Arc::new(move || behind));
    let (reason, retryable) = expect_failed(late.send(&request(ChannelKind::Webhook)).await);
    assert!(reason.contains("HTTP 401"), "{reason}");
    assert!(!retryable);
    let last = rx.seen().pop().expect("request");
    assert!(
        matches!(&last.verdict, Err(e) if e.starts_with("stale timestamp")),
        "{:?}",
        last.verdict
    );
}

#[tokio::test]
async fn redirects_are_followed_only_on_the_same_origin_and_only_307_308() {
    // Elsewhere: another port is another origin.
    let elsewhere = Receiver::start(SECRET, vec![]).await;
    let target: &'static str =
        Box::leak(format!("http://{}/steal", elsewhere.addr).into_boxed_str());
    let rx = Receiver::start(SECRET, vec![Reply::Redirect(307, target)]).await;
    let sender = fast(&webhook_settings(
        rx.url(),
        SECRET,
        3,
        Duration::from_secs(5),
    ));
    let (reason, retryable) = expect_failed(sender.send(&request(ChannelKind::Webhook)).await);
    assert!(reason.contains("HTTP 307"), "{reason}");
    assert!(
        reason.contains(&format!(
            "to 127.0.0.1:{}, which is not followed",
            elsewhere.addr.port()
        )),
        "{reason}"
    );
    assert!(!retryable);
    assert!(elsewhere.seen().is_empty(), "the code went to another host");

    // Same origin, 308: followed with the body and signature intact.
    let rx = Receiver::start(SECRET, vec![Reply::Redirect(308, "/sms/v2")]).await;
    let sender = fast(&webhook_settings(
        rx.url(),
        SECRET,
        3,
        Duration::from_secs(5),
    ));
    let detail = expect_delivered(sender.send(&request(ChannelKind::Webhook)).await);
    assert!(detail.contains("after 1 attempt "), "{detail}");
    let seen = rx.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[1].path, "/sms/v2");
    assert!(seen[1].raw.starts_with(b"POST "));
    assert_eq!(seen[1].body, seen[0].body);
    // Same origin but 302 (which would turn the POST into a GET): refused.
    let rx = Receiver::start(SECRET, vec![Reply::Redirect(302, "/elsewhere")]).await;
    let sender = fast(&webhook_settings(
        rx.url(),
        SECRET,
        3,
        Duration::from_secs(5),
    ));
    let (reason, _) = expect_failed(sender.send(&request(ChannelKind::Webhook)).await);
    assert!(reason.contains("HTTP 302"), "{reason}");
    assert_eq!(rx.seen().len(), 1);
}

#[tokio::test]
async fn webhook_without_a_phone_number_fails_clearly() {
    let rx = Receiver::start(SECRET, vec![]).await;
    let sender = fast(&webhook_settings(
        rx.url(),
        SECRET,
        3,
        Duration::from_secs(5),
    ));
    let mut req = request(ChannelKind::Webhook);
    req.to_phone = None;
    let (reason, retryable) = expect_failed(sender.send(&req).await);
    assert_eq!(reason, "no phone number to send the SMS to");
    assert!(!retryable);
    assert!(rx.seen().is_empty());
}

// ----------------------------------------------------------------------
// Nothing secret in the log.

#[derive(Clone, Default)]
struct LogBuf(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogBuf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn logs_hold_neither_code_nor_secrets() {
    let buf = LogBuf::default();
    let w = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || w.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::TRACE)
        .finish();
    // Current-thread runtime: everything below logs on this thread.
    let _guard = tracing::subscriber::set_default(subscriber);

    let pki = Pki::new();
    let sink = SmtpSink::start(SinkMode::starttls(), pki.clone()).await;
    let rx = Receiver::start(SECRET, vec![Reply::Status(503), Reply::Status(400)]).await;
    let d = Dispatcher::new()
        .with_webhook(Arc::new(fast(&webhook_settings(
            rx.url(),
            SECRET,
            3,
            Duration::from_secs(5),
        ))))
        .with_email(Arc::new(
            EmailSender::new(&sink.settings(SmtpSecurity::StartTls, Some(&pki), SINK_PASS))
                .expect("email sender"),
        ));
    let outcomes = d
        .send_with_fallback(
            &request(ChannelKind::Webhook),
            &[ChannelKind::Webhook, ChannelKind::Email],
        )
        .await;
    assert_eq!(outcomes.len(), 2);
    expect_delivered(outcomes[1].1.clone());

    let log = String::from_utf8_lossy(&buf.0.lock().expect("lock")).into_owned();
    assert!(log.contains("code delivered"), "nothing logged? {log}");
    for secret in [CODE, SECRET, SINK_PASS, "gateway-token"] {
        assert!(!log.contains(secret), "`{secret}` in the log:\n{log}");
    }
    for (_, o) in &outcomes {
        let text = format!("{o:?}");
        assert!(!text.contains(CODE) && !text.contains(SINK_PASS), "{text}");
    }
    assert!(!format!("{:?}", request(ChannelKind::Email)).contains(CODE));
}

// ======================================================================
// The SMTP sink.

/// A test CA and a server certificate it signed for 127.0.0.1/localhost;
/// the CA's PEM is written to a file for `ca_file`.
#[derive(Clone)]
struct Pki {
    ca_file: PathBuf,
    server_config: Arc<tokio_rustls::rustls::ServerConfig>,
}

static NEXT_DIR: AtomicU32 = AtomicU32::new(0);

fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "pinbridge-delivery-{}-{}",
        std::process::id(),
        NEXT_DIR.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

impl Pki {
    fn new() -> Pki {
        use rcgen::{
            BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair,
            KeyUsagePurpose,
        };
        use tokio_rustls::rustls;
        use tokio_rustls::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "pinbridge test CA");
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("CA key"))
            .expect("CA certificate");

        let leaf_key = KeyPair::generate().expect("server key");
        let mut leaf_params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
                .expect("server params");
        leaf_params
            .distinguished_name
            .push(DnType::CommonName, "sink.test");
        let leaf = leaf_params
            .signed_by(&leaf_key, &ca)
            .expect("server certificate");

        let dir = temp_dir();
        let ca_file = dir.join("test-ca.pem");
        let mut f = std::fs::File::create(&ca_file).expect("ca file");
        f.write_all(ca.pem().as_bytes()).expect("write ca file");

        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let server_config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(
                vec![leaf.der().clone(), ca.der().clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
            )
            .expect("server TLS config");
        Pki {
            ca_file,
            server_config: Arc::new(server_config),
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct SinkMode {
    /// TLS from the first byte (port 465 style).
    implicit_tls: bool,
    offer_starttls: bool,
    /// What EHLO lists after AUTH.
    auth: &'static str,
    /// MAIL only after AUTH.
    require_auth: bool,
}

impl SinkMode {
    fn starttls() -> Self {
        SinkMode {
            implicit_tls: false,
            offer_starttls: true,
            auth: "PLAIN LOGIN",
            require_auth: true,
        }
    }
}

const SINK_USER: &str = "pinbridge@example.com";
const SINK_PASS: &str = "correct horse battery";

#[derive(Clone, Debug)]
struct Mail {
    from: String,
    rcpt: Vec<String>,
    data: String,
    tls: bool,
    user: Option<String>,
}

#[derive(Default, Debug)]
struct SinkLog {
    mails: Vec<Mail>,
    /// (mechanism, accepted, over TLS)
    auths: Vec<(String, bool, bool)>,
    /// Commands as received, AUTH data left out.
    commands: Vec<String>,
}

struct SmtpSink {
    addr: SocketAddr,
    log: Arc<Mutex<SinkLog>>,
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

impl SmtpSink {
    async fn start(mode: SinkMode, pki: Pki) -> SmtpSink {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind sink");
        let addr = listener.local_addr().expect("sink addr");
        let log = Arc::new(Mutex::new(SinkLog::default()));
        let l = log.clone();
        let acceptor = tokio_rustls::TlsAcceptor::from(pki.server_config.clone());
        tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let (l, acceptor) = (l.clone(), acceptor.clone());
                tokio::spawn(async move {
                    let io: Box<dyn Io> = if mode.implicit_tls {
                        match acceptor.accept(sock).await {
                            Ok(t) => Box::new(t),
                            Err(_) => return,
                        }
                    } else {
                        Box::new(sock)
                    };
                    let _ = smtp_session(io, mode.implicit_tls, mode, acceptor, l).await;
                });
            }
        });
        SmtpSink { addr, log }
    }

    fn settings(&self, security: SmtpSecurity, pki: Option<&Pki>, password: &str) -> EmailSettings {
        EmailSettings {
            host: "127.0.0.1".into(),
            port: self.addr.port(),
            security,
            username: Some(SINK_USER.into()),
            password: Some(password.into()),
            from: "pinbridge <otp@pinbridge.test>".into(),
            timeout: Duration::from_secs(5),
            ca_file: pki.map(|p| p.ca_file.clone()),
        }
    }

    fn mails(&self) -> Vec<Mail> {
        self.log.lock().expect("lock").mails.clone()
    }

    fn auths(&self) -> Vec<(String, bool, bool)> {
        self.log.lock().expect("lock").auths.clone()
    }

    fn commands(&self) -> Vec<String> {
        self.log.lock().expect("lock").commands.clone()
    }
}

async fn read_line(r: &mut BufReader<Box<dyn Io>>) -> std::io::Result<Option<String>> {
    let mut line = String::new();
    let n = r.read_line(&mut line).await?;
    if n == 0 {
        return Ok(None);
    }
    Ok(Some(line.trim_end_matches(['\r', '\n']).to_string()))
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn unb64(s: &str) -> Option<String> {
    base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .ok()
        .and_then(|v| String::from_utf8(v).ok())
}

/// One SMTP session (RFC 5321, with RFC 3207 STARTTLS and RFC 4954 AUTH):
/// AUTH only over TLS, MAIL only after AUTH.
async fn smtp_session(
    io: Box<dyn Io>,
    mut tls: bool,
    mode: SinkMode,
    acceptor: tokio_rustls::TlsAcceptor,
    log: Arc<Mutex<SinkLog>>,
) -> std::io::Result<()> {
    let mut r = BufReader::new(io);
    r.get_mut()
        .write_all(b"220 sink.test ESMTP pinbridge test sink\r\n")
        .await?;
    let mut user: Option<String> = None;
    let mut from: Option<String> = None;
    let mut rcpt: Vec<String> = Vec::new();
    while let Some(line) = read_line(&mut r).await? {
        let upper = line.to_ascii_uppercase();
        let verb = upper.split_whitespace().next().unwrap_or("").to_string();
        log.lock().expect("lock").commands.push(if verb == "AUTH" {
            format!("AUTH {}", upper.split_whitespace().nth(1).unwrap_or(""))
        } else {
            line.clone()
        });
        let reply: String = match verb.as_str() {
            "EHLO" => {
                let mut s = String::from("250-sink.test greets you\r\n");
                if !tls && mode.offer_starttls {
                    s.push_str("250-STARTTLS\r\n");
                }
                if tls {
                    s.push_str(&format!("250-AUTH {}\r\n", mode.auth));
                }
                s.push_str("250 8BITMIME\r\n");
                s
            }
            "STARTTLS" if tls || !mode.offer_starttls => {
                "502 5.5.1 STARTTLS not offered\r\n".into()
            }
            "STARTTLS" => {
                if !r.buffer().is_empty() {
                    // Commands pipelined before the handshake (CVE-2011-0411).
                    return Ok(());
                }
                r.get_mut()
                    .write_all(b"220 2.0.0 Ready to start TLS\r\n")
                    .await?;
                let plain = r.into_inner();
                let upgraded = acceptor.accept(plain).await?;
                r = BufReader::new(Box::new(upgraded));
                tls = true;
                // RFC 3207: forget everything learnt before TLS.
                user = None;
                from = None;
                rcpt.clear();
                continue;
            }
            "AUTH" if !tls => {
                "538 5.7.11 Encryption required for requested authentication mechanism\r\n".into()
            }
            "AUTH" if user.is_some() => "503 5.5.1 Already authenticated\r\n".into(),
            "AUTH" => {
                let mut words = line.split_whitespace().skip(1);
                let mech = words.next().unwrap_or("").to_ascii_uppercase();
                if !mode.auth.split_whitespace().any(|m| m == mech) {
                    "504 5.5.4 Unrecognized authentication type\r\n".into()
                } else {
                    let creds = match mech.as_str() {
                        "PLAIN" => {
                            let initial = match words.next() {
                                Some(i) => Some(i.to_string()),
                                None => {
                                    r.get_mut().write_all(b"334 \r\n").await?;
                                    read_line(&mut r).await?
                                }
                            };
                            initial.and_then(|i| unb64(&i)).and_then(|p| {
                                let mut parts = p.split('\0');
                                let _authzid = parts.next()?;
                                Some((parts.next()?.to_string(), parts.next()?.to_string()))
                            })
                        }
                        _ => {
                            r.get_mut()
                                .write_all(format!("334 {}\r\n", b64("Username:")).as_bytes())
                                .await?;
                            let u = read_line(&mut r).await?.and_then(|l| unb64(&l));
                            r.get_mut()
                                .write_all(format!("334 {}\r\n", b64("Password:")).as_bytes())
                                .await?;
                            let p = read_line(&mut r).await?.and_then(|l| unb64(&l));
                            u.zip(p)
                        }
                    };
                    let ok = creds
                        .as_ref()
                        .is_some_and(|(u, p)| u == SINK_USER && p == SINK_PASS);
                    log.lock()
                        .expect("lock")
                        .auths
                        .push((mech.clone(), ok, tls));
                    if ok {
                        user = creds.map(|(u, _)| u);
                        "235 2.7.0 Authentication successful\r\n".into()
                    } else {
                        "535 5.7.8 Authentication credentials invalid\r\n".into()
                    }
                }
            }
            "MAIL" if user.is_none() && mode.require_auth => {
                "530 5.7.0 Authentication required\r\n".into()
            }
            "MAIL" => {
                from = line.split_once(':').map(|(_, a)| {
                    a.trim()
                        .trim_start_matches('<')
                        .split('>')
                        .next()
                        .unwrap_or("")
                        .to_string()
                });
                "250 2.1.0 Sender OK\r\n".into()
            }
            "RCPT" if from.is_none() => "503 5.5.1 MAIL first\r\n".into(),
            "RCPT" => {
                if let Some((_, a)) = line.split_once(':') {
                    rcpt.push(
                        a.trim()
                            .trim_start_matches('<')
                            .split('>')
                            .next()
                            .unwrap_or("")
                            .to_string(),
                    );
                }
                "250 2.1.5 Recipient OK\r\n".into()
            }
            "DATA" if rcpt.is_empty() => "503 5.5.1 RCPT first\r\n".into(),
            "DATA" => {
                r.get_mut()
                    .write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                    .await?;
                let mut data = String::new();
                loop {
                    let Some(l) = read_line(&mut r).await? else {
                        return Ok(());
                    };
                    if l == "." {
                        break;
                    }
                    data.push_str(l.strip_prefix('.').unwrap_or(&l));
                    data.push_str("\r\n");
                }
                log.lock().expect("lock").mails.push(Mail {
                    from: from.take().unwrap_or_default(),
                    rcpt: std::mem::take(&mut rcpt),
                    data,
                    tls,
                    user: user.clone(),
                });
                "250 2.0.0 Ok: queued as 4F2A\r\n".into()
            }
            "RSET" => {
                from = None;
                rcpt.clear();
                "250 2.0.0 Ok\r\n".into()
            }
            "NOOP" => "250 2.0.0 Ok\r\n".into(),
            "QUIT" => {
                r.get_mut().write_all(b"221 2.0.0 Bye\r\n").await?;
                return Ok(());
            }
            _ => "500 5.5.2 Command not recognized\r\n".into(),
        };
        r.get_mut().write_all(reply.as_bytes()).await?;
    }
    Ok(())
}

#[tokio::test]
async fn email_over_starttls_with_auth_plain_arrives_with_the_code() {
    let pki = Pki::new();
    let sink = SmtpSink::start(SinkMode::starttls(), pki.clone()).await;
    let sender = EmailSender::new(&sink.settings(SmtpSecurity::StartTls, Some(&pki), SINK_PASS))
        .expect("email sender");
    let outcome = sender.send(&request(ChannelKind::Email)).await;
    let detail = expect_delivered(outcome.clone());
    assert!(detail.contains("over STARTTLS"), "{detail}");
    assert!(detail.contains("250"), "{detail}");
    assert!(detail.contains("queued as 4F2A"), "{detail}");

    let mails = sink.mails();
    assert_eq!(mails.len(), 1);
    let m = &mails[0];
    assert!(m.tls, "the message was sent before TLS");
    assert_eq!(m.user.as_deref(), Some(SINK_USER));
    assert_eq!(m.from, "otp@pinbridge.test");
    assert_eq!(m.rcpt, ["alice@example.com"]);
    assert!(
        m.data.contains(&format!("Your pinbridge code is {CODE}.")),
        "{}",
        m.data
    );
    assert!(m.data.contains("Hello Alice Example,"), "{}", m.data);
    assert!(
        m.data.contains("Subject: Your pinbridge code\r\n"),
        "{}",
        m.data
    );
    assert!(
        m.data.contains("To: \"Alice Example\" <alice@example.com>"),
        "{}",
        m.data
    );
    assert!(m.data.contains("Content-Type: text/plain"), "{}", m.data);
    assert_eq!(sink.auths(), [("PLAIN".to_string(), true, true)]);

    let commands = sink.commands();
    let starttls = commands
        .iter()
        .position(|c| c == "STARTTLS")
        .expect("no STARTTLS");
    let auth = commands
        .iter()
        .position(|c| c.starts_with("AUTH"))
        .expect("no AUTH");
    assert!(starttls < auth, "{commands:?}");
    assert_eq!(commands.last().map(String::as_str), Some("QUIT"));
}

#[tokio::test]
async fn email_auth_login_when_that_is_all_the_server_offers() {
    let pki = Pki::new();
    let mode = SinkMode {
        auth: "LOGIN",
        ..SinkMode::starttls()
    };
    let sink = SmtpSink::start(mode, pki.clone()).await;
    let sender = EmailSender::new(&sink.settings(SmtpSecurity::StartTls, Some(&pki), SINK_PASS))
        .expect("email sender");
    expect_delivered(sender.send(&request(ChannelKind::Email)).await);
    assert_eq!(sink.auths(), [("LOGIN".to_string(), true, true)]);
    assert_eq!(sink.mails().len(), 1);
}

#[tokio::test]
async fn email_fails_when_starttls_is_required_but_not_offered() {
    let pki = Pki::new();
    let mode = SinkMode {
        offer_starttls: false,
        ..SinkMode::starttls()
    };
    let sink = SmtpSink::start(mode, pki.clone()).await;
    let sender = EmailSender::new(&sink.settings(SmtpSecurity::StartTls, Some(&pki), SINK_PASS))
        .expect("email sender");
    let (reason, retryable) = expect_failed(sender.send(&request(ChannelKind::Email)).await);
    assert!(reason.contains("does not offer STARTTLS"), "{reason}");
    assert!(!retryable);
    assert!(sink.auths().is_empty(), "credentials sent in clear");
    assert!(sink.mails().is_empty());
    assert!(
        !sink
            .commands()
            .iter()
            .any(|c| c.starts_with("AUTH") || c.starts_with("MAIL")),
        "{:?}",
        sink.commands()
    );
}

#[tokio::test]
async fn email_with_the_wrong_password_fails_with_535() {
    let pki = Pki::new();
    let sink = SmtpSink::start(SinkMode::starttls(), pki.clone()).await;
    let sender =
        EmailSender::new(&sink.settings(SmtpSecurity::StartTls, Some(&pki), "wrong password"))
            .expect("email sender");
    let (reason, retryable) = expect_failed(sender.send(&request(ChannelKind::Email)).await);
    assert!(reason.contains("535"), "{reason}");
    assert!(reason.contains("refused"), "{reason}");
    assert!(!reason.contains("wrong password"), "{reason}");
    assert!(!retryable);
    assert_eq!(sink.auths(), [("PLAIN".to_string(), false, true)]);
    assert!(sink.mails().is_empty());
}

#[tokio::test]
async fn email_over_implicit_tls() {
    let pki = Pki::new();
    let mode = SinkMode {
        implicit_tls: true,
        offer_starttls: false,
        ..SinkMode::starttls()
    };
    let sink = SmtpSink::start(mode, pki.clone()).await;
    let sender = EmailSender::new(&sink.settings(SmtpSecurity::Tls, Some(&pki), SINK_PASS))
        .expect("email sender");
    let detail = expect_delivered(sender.send(&request(ChannelKind::Email)).await);
    assert!(detail.contains("over TLS"), "{detail}");
    let mails = sink.mails();
    assert_eq!(mails.len(), 1);
    assert!(mails[0].tls);
    assert!(!sink.commands().iter().any(|c| c == "STARTTLS"));
}

#[tokio::test]
async fn email_refuses_a_server_certificate_no_trusted_root_signed() {
    let pki = Pki::new();
    let sink = SmtpSink::start(SinkMode::starttls(), pki.clone()).await;
    // No ca_file: the test CA is not trusted.
    let sender = match EmailSender::new(&sink.settings(SmtpSecurity::StartTls, None, SINK_PASS)) {
        Ok(s) => s,
        // A machine without a system CA store refuses already at set-up,
        // which is a refusal too.
        Err(SetupError::Tls(m)) if m.contains("No CA certificates") => {
            eprintln!("no system roots here: {m}");
            return;
        }
        Err(e) => panic!("{e}"),
    };
    let (reason, retryable) = expect_failed(sender.send(&request(ChannelKind::Email)).await);
    assert!(reason.contains("TLS with 127.0.0.1"), "{reason}");
    assert!(reason.contains("ca_file"), "{reason}");
    assert!(!retryable);
    assert!(sink.auths().is_empty());
    assert!(sink.mails().is_empty());
}

#[tokio::test]
async fn email_to_a_local_relay_in_plain_text() {
    let pki = Pki::new();
    let mode = SinkMode {
        offer_starttls: false,
        require_auth: false,
        ..SinkMode::starttls()
    };
    let sink = SmtpSink::start(mode, pki).await;
    let mut s = sink.settings(SmtpSecurity::None, None, SINK_PASS);
    s.username = None;
    s.password = None;
    let sender = EmailSender::new(&s).expect("email sender");
    let detail = expect_delivered(sender.send(&request(ChannelKind::Email)).await);
    assert!(detail.contains("over plain SMTP (no TLS)"), "{detail}");
    let mails = sink.mails();
    assert_eq!(mails.len(), 1);
    assert!(!mails[0].tls);
    assert_eq!(mails[0].user, None);
    assert!(mails[0].data.contains(CODE));
    assert!(!sink
        .commands()
        .iter()
        .any(|c| c.starts_with("AUTH") || c == "STARTTLS"));
}

#[tokio::test]
async fn email_to_a_stalled_server_times_out() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = listener.accept().await {
            held.push(sock); // accept, never greet
        }
    });
    let s = EmailSettings {
        host: "127.0.0.1".into(),
        port,
        security: SmtpSecurity::None,
        username: None,
        password: None,
        from: "otp@pinbridge.test".into(),
        timeout: Duration::from_millis(200),
        ca_file: None,
    };
    let sender = EmailSender::new(&s).expect("email sender");
    let t0 = Instant::now();
    let (reason, retryable) = expect_failed(sender.send(&request(ChannelKind::Email)).await);
    assert!(reason.contains("did not finish within"), "{reason}");
    assert!(retryable);
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
}

#[tokio::test]
async fn email_without_an_address_fails_clearly() {
    let s = EmailSettings {
        host: "127.0.0.1".into(),
        port: closed_port().await,
        security: SmtpSecurity::None,
        username: None,
        password: None,
        from: "otp@pinbridge.test".into(),
        timeout: Duration::from_secs(1),
        ca_file: None,
    };
    let sender = EmailSender::new(&s).expect("email sender");
    let mut req = request(ChannelKind::Email);
    req.to_email = None;
    assert_eq!(
        sender.send(&req).await,
        DeliveryOutcome::Failed {
            reason: "the participant has no email address".into(),
            retryable: false
        }
    );
    req.to_email = Some("not an address".into());
    let (reason, _) = expect_failed(sender.send(&req).await);
    assert!(
        reason.starts_with("the participant's email address is not valid"),
        "{reason}"
    );
}

// ======================================================================
// The dispatcher.

#[tokio::test]
async fn dispatcher_falls_back_from_a_down_webhook_to_email() {
    let pki = Pki::new();
    let sink = SmtpSink::start(SinkMode::starttls(), pki.clone()).await;
    let down = format!("http://127.0.0.1:{}/sms", closed_port().await);
    let webhook = fast(&webhook_settings(down, SECRET, 1, Duration::from_secs(2)));
    let email = EmailSender::new(&sink.settings(SmtpSecurity::StartTls, Some(&pki), SINK_PASS))
        .expect("email sender");
    let d = Dispatcher::new()
        .with_webhook(Arc::new(webhook))
        .with_email(Arc::new(email))
        .with_fallback(vec![ChannelKind::Email]);

    let req = request(ChannelKind::Webhook);
    let outcomes = d
        .send_with_fallback(
            &req,
            &[ChannelKind::Voice, ChannelKind::Webhook, ChannelKind::Email],
        )
        .await;
    let kinds: Vec<ChannelKind> = outcomes.iter().map(|(k, _)| *k).collect();
    assert_eq!(
        kinds,
        [ChannelKind::Voice, ChannelKind::Webhook, ChannelKind::Email]
    );
    let (reason, retryable) = expect_failed(outcomes[0].1.clone());
    assert_eq!(reason, "channel `voice` is not configured (needs [trunk])");
    assert!(!retryable);
    let (reason, retryable) = expect_failed(outcomes[1].1.clone());
    assert!(reason.contains("cannot be reached"), "{reason}");
    assert!(reason.contains("gave up after 2 attempts"), "{reason}");
    assert!(retryable);
    expect_delivered(outcomes[2].1.clone());
    assert_eq!(sink.mails().len(), 1);

    // As a CodeSender: the request's channel, then the fallback order.
    let one = d.send(&req).await;
    let detail = expect_delivered(one);
    assert!(
        detail.starts_with("email: accepted by 127.0.0.1:"),
        "{detail}"
    );
    assert_eq!(sink.mails().len(), 2);
}

/// A stand-in for the SIP shell's voice channel.
struct FakeVoice(Mutex<Vec<String>>);

impl CodeSender for FakeVoice {
    fn send<'a>(
        &'a self,
        req: &'a DeliveryRequest,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = DeliveryOutcome> + Send + 'a>> {
        self.0
            .lock()
            .expect("lock")
            .push(req.verification_id.clone());
        Box::pin(async {
            DeliveryOutcome::Delivered {
                detail: "answered, code read twice".into(),
            }
        })
    }
}

#[tokio::test]
async fn dispatcher_from_the_config_file_with_an_injected_voice_channel() {
    let pki = Pki::new();
    let sink = SmtpSink::start(SinkMode::starttls(), pki.clone()).await;
    let rx = Receiver::start(SECRET, vec![Reply::Status(400)]).await;
    let toml = format!(
        r#"
[verify]
channels = ["webhook", "email"]

[delivery.webhook]
url = "{url}"
secret = "{SECRET}"
retries = 0

[delivery.email]
host = "127.0.0.1"
port = {port}
username = "{SINK_USER}"
password = "{SINK_PASS}"
from = "otp@pinbridge.test"
ca_file = "{ca}"

[[conference]]
name = "room"
"#,
        url = rx.url(),
        port = sink.addr.port(),
        ca = pki.ca_file.display(),
    );
    let cfg = pinbridge::config::Config::parse(&toml, "delivery.toml", std::path::Path::new("/"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        cfg.otp.email.as_ref().and_then(|e| e.ca_file.clone()),
        Some(pki.ca_file.clone())
    );
    let voice = Arc::new(FakeVoice(Mutex::new(Vec::new())));
    let otp = &cfg.otp;
    let d = Dispatcher::from_settings(otp.webhook.as_ref(), otp.email.as_ref(), otp.log_channel)
        .expect("dispatcher")
        .with_fallback(otp.verify.channels.clone())
        .with_voice(voice.clone());
    assert_eq!(d.fallback(), [ChannelKind::Webhook, ChannelKind::Email]);
    assert!(!d.is_configured(ChannelKind::Log));

    // The webhook answers 400: email takes over.
    let outcomes = d
        .send_with_fallback(
            &request(ChannelKind::Webhook),
            &[ChannelKind::Webhook, ChannelKind::Email],
        )
        .await;
    assert_eq!(outcomes.len(), 2);
    assert!(expect_failed(outcomes[0].1.clone()).0.contains("HTTP 400"));
    expect_delivered(outcomes[1].1.clone());

    // The voice slot is used when asked for first.
    let outcomes = d
        .send_with_fallback(
            &request(ChannelKind::Voice),
            &[ChannelKind::Voice, ChannelKind::Email],
        )
        .await;
    assert_eq!(outcomes.len(), 1);
    assert_eq!(
        outcomes[0],
        (
            ChannelKind::Voice,
            DeliveryOutcome::Delivered {
                detail: "answered, code read twice".into()
            }
        )
    );
    assert_eq!(voice.0.lock().expect("lock").len(), 1);
    assert_eq!(sink.mails().len(), 1);
}
