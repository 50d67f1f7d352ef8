//! The web join page end to end: pinbridge started in-process with a fake
//! clock, codes delivered by the real webhook channel to a receiver in the
//! test that checks the signature; the join API exercised over real TCP
//! with a hand-written HTTP/1.1 client that keeps the session cookie like a
//! browser; and the page itself driven in headless Chromium over WebDriver
//! (a small client over chromedriver's JSON protocol), from the username to
//! a dial-in code that then admits a SIP call, once.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde_json::{json, Value};

use common::g711;
use common::peers::require_tool;
use common::rtp::{RtpHeader, RtpRecorder};
use common::server::prompt_samples;
use common::ua::{phone_offer, Call, InviteOptions, TestUa};
use pinbridge::config::Config;
use pinbridge::http::join::session::{Session, SessionKeys, Stage, COOKIE};
use pinbridge::http::join::JOIN_ROUTES;
use pinbridge::ivr::prompts::{PromptId, PromptSet};
use pinbridge::server::{self, ServerHandle};
use pinbridge::verify::clock::{Clock, ManualClock, SystemClock};
use pinbridge::verify::delivery::webhook::verify_signature;
use pinbridge::verify::key::ServerKey;
use pinbridge::verify::service::VerifyService;

const T0: i64 = 1_700_000_000_000;
const SECRET: &str = "join-page-webhook-secret";
const API_KEY: &str = "test-api-key-0123456789";
const ALICE: &str = "+12015550123";
const BOB: &str = "+12015550124";
const DAVE: &str = "+12015550199";

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "pinbridge-join-{tag}-{}-{}",
        std::process::id(),
        pinbridge::verify::random::id("").unwrap()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

// ----------------------------------------------------------------------
// The SMS gateway: receives the webhook, checks its signature, keeps the
// codes; answers 400 (final) for the numbers told to fail.

struct Inbox {
    /// (to, code)
    codes: Mutex<Vec<(String, String)>>,
    failing: Mutex<Vec<String>>,
    /// While false, each webhook request is held unanswered (and its code
    /// not yet counted as delivered).
    released: tokio::sync::watch::Sender<bool>,
    /// Webhook requests that have arrived, held or not.
    arrived: std::sync::atomic::AtomicUsize,
}

impl Default for Inbox {
    fn default() -> Self {
        Inbox {
            codes: Mutex::default(),
            failing: Mutex::default(),
            released: tokio::sync::watch::Sender::new(true),
            arrived: std::sync::atomic::AtomicUsize::new(0),
        }
    }
}

struct Gateway {
    url: String,
    inbox: Arc<Inbox>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn receive(State(inbox): State<Arc<Inbox>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    if verify_signature(
        SECRET.as_bytes(),
        h("x-pinbridge-timestamp"),
        h("x-pinbridge-signature"),
        &body,
        now,
        Duration::from_secs(300),
    )
    .is_err()
    {
        return StatusCode::UNAUTHORIZED;
    }
    let Ok(v) = serde_json::from_slice::<Value>(&body) else {
        return StatusCode::BAD_REQUEST;
    };
    let to = v["to"].as_str().unwrap_or("").to_string();
    let code = v["code"].as_str().unwrap_or("").to_string();
    inbox
        .arrived
        .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let mut released = inbox.released.subscribe();
    let _ = released.wait_for(|r| *r).await;
    if inbox.failing.lock().unwrap().contains(&to) {
        return StatusCode::BAD_REQUEST;
    }
    inbox.codes.lock().unwrap().push((to, code));
    StatusCode::OK
}

impl Gateway {
    async fn start() -> Gateway {
        let inbox = Arc::new(Inbox::default());
        let app = axum::Router::new()
            .route("/sms", axum::routing::post(receive))
            .with_state(inbox.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/sms", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Gateway { url, inbox, task }
    }

    fn fail(&self, to: &str) {
        self.inbox.failing.lock().unwrap().push(to.into());
    }

    fn count(&self) -> usize {
        self.inbox.codes.lock().unwrap().len()
    }

    /// Codes texted to `to` so far.
    fn count_for(&self, to: &str) -> usize {
        self.inbox
            .codes
            .lock()
            .unwrap()
            .iter()
            .filter(|(t, _)| t == to)
            .count()
    }

    /// Holds every webhook request unanswered until `release`.
    fn hold(&self) {
        self.inbox.released.send_replace(false);
    }

    fn release(&self) {
        self.inbox.released.send_replace(true);
    }

    fn arrived(&self) -> usize {
        self.inbox.arrived.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The last code texted to `to`, once more than `seen` codes have gone
    /// there (the join page sends in the background: the code may arrive
    /// after the page's answer).
    async fn code_after(&self, to: &str, seen: usize) -> String {
        for _ in 0..750 {
            if self.count_for(to) > seen {
                let codes = self.inbox.codes.lock().unwrap();
                if let Some((_, c)) = codes.iter().rev().find(|(t, _)| t == to) {
                    return c.clone();
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("no new code was texted to {to} (seen {seen})");
    }

    /// The last code texted to `to`, waiting for the first.
    async fn code_for(&self, to: &str) -> String {
        self.code_after(to, 0).await
    }
}

/// The conferences of this test's configuration: a code for any of them
/// may be redeemed here.
fn all_conferences() -> Vec<String> {
    ["board", "sales", "phones"].map(String::from).to_vec()
}

// ----------------------------------------------------------------------
// pinbridge with the join page.

/// Every test sends its requests from 127.0.0.1: the per-client limits
/// are raised out of the way except where a test sets its own.
const ROOMY_LIMITS: &str = "rate_limit_burst = 1000\njoin_rate_limit_burst = 1000";

fn config(dir: &Path, gateway: &Gateway, join_page: bool, http_extra: &str) -> Config {
    let toml = format!(
        r#"
[store]
path = "{d}/pinbridge.db"
[verify]
key_file = "{d}/pinbridge.key"
[http]
listen = "127.0.0.1:0"
api_keys = ["{API_KEY}"]
join_page = {join_page}
cookie_key_file = "{d}/cookie.key"
dialin_code_ttl_secs = 300
{http_extra}
[delivery.webhook]
url = "{url}"
secret = "{SECRET}"
timeout_secs = 5
retries = 0

[[conference]]
name = "board"
numbers = ["4100"]
pin = "1234"
[[conference]]
name = "sales"
numbers = ["4200"]
pin = "5678"
[[conference]]
name = "phones"
numbers = ["4300"]
flow = "otp"

[[participant]]
name = "Alice Example"
username = "alice"
phone = "{ALICE}"
conferences = ["board", "phones"]
[[participant]]
name = "Bob Example"
username = "bob"
phone = "{BOB}"
conferences = ["board", "sales"]
[[participant]]
name = "Carol Example"
username = "carol"
phone = "+12015550125"
conferences = ["phones"]
[[participant]]
name = "Dave Example"
username = "dave"
phone = "{DAVE}"
"#,
        d = dir.display(),
        url = gateway.url,
    );
    let mut c = Config::parse(&toml, "join-test.toml", dir).unwrap_or_else(|e| panic!("{e}"));
    c.sip.listen = "127.0.0.1:0".parse().unwrap();
    c.rtp.ports = (20000, 29999);
    c
}

struct Pinbridge {
    handle: Option<ServerHandle>,
    http: SocketAddr,
    sip: SocketAddr,
    gateway: Gateway,
    dir: PathBuf,
}

impl Pinbridge {
    async fn start(tag: &str, clock: Arc<dyn Clock>) -> Pinbridge {
        Self::start_with(tag, clock, true).await
    }

    async fn start_with(tag: &str, clock: Arc<dyn Clock>, join_page: bool) -> Pinbridge {
        Self::start_limited(tag, clock, join_page, ROOMY_LIMITS).await
    }

    /// With these lines in `[http]` (the limits).
    async fn start_limited(
        tag: &str,
        clock: Arc<dyn Clock>,
        join_page: bool,
        http_extra: &str,
    ) -> Pinbridge {
        common::init_tracing();
        let dir = temp_dir(tag);
        let gateway = Gateway::start().await;
        let config = config(&dir, &gateway, join_page, http_extra);
        let prompts = PromptSet::load(&config.prompt_files).expect("prompts load");
        let handle = server::start_with_clock(config, prompts, clock)
            .await
            .expect("server starts");
        Pinbridge {
            http: handle.http_addr.expect("HTTP is configured"),
            sip: handle.sip_addr,
            handle: Some(handle),
            gateway,
            dir,
        }
    }

    fn verify(&self) -> VerifyService {
        self.handle
            .as_ref()
            .and_then(|h| h.verify.clone())
            .expect("verification service")
    }

    fn browser(&self) -> Browser {
        Browser {
            addr: self.http,
            cookie: None,
        }
    }

    async fn stop(mut self) {
        if let Some(h) = self.handle.take() {
            h.stop().await;
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Drop for Pinbridge {
    fn drop(&mut self) {
        if let Some(h) = &self.handle {
            h.shutdown();
        }
    }
}

// ----------------------------------------------------------------------
// A browser's view of HTTP: raw HTTP/1.1 over TCP, keeping the session
// cookie the way a browser would (set, replaced, removed by Max-Age=0).

#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    text: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn set_cookie(&self) -> Option<&str> {
        self.header("set-cookie")
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.text))
    }

    fn error_code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    fn message(&self) -> String {
        self.json()["error"]["message"]
            .as_str()
            .unwrap_or("")
            .to_string()
    }
}

struct Browser {
    addr: SocketAddr,
    /// The `pb_join=...` pair the browser would send.
    cookie: Option<String>,
}

impl Browser {
    async fn post(&mut self, path: &str, body: Value) -> Reply {
        self.send(
            "POST",
            path,
            Some(&body.to_string()),
            "application/json",
            &[],
        )
        .await
    }

    async fn get(&mut self, path: &str) -> Reply {
        self.send("GET", path, None, "", &[]).await
    }

    async fn send(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&str>,
        content_type: &str,
        extra: &[(&str, &str)],
    ) -> Reply {
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
            self.addr
        );
        if let Some(c) = &self.cookie {
            req.push_str(&format!("Cookie: {c}\r\n"));
        }
        for (n, v) in extra {
            req.push_str(&format!("{n}: {v}\r\n"));
        }
        if let Some(b) = body {
            if !content_type.is_empty() {
                req.push_str(&format!("Content-Type: {content_type}\r\n"));
            }
            req.push_str(&format!("Content-Length: {}\r\n", b.len()));
        }
        req.push_str("\r\n");
        if let Some(b) = body {
            req.push_str(b);
        }
        let reply = raw(self.addr, req.as_bytes()).await;
        if let Some(set) = reply.set_cookie() {
            let pair = set.split(';').next().unwrap_or("").trim().to_string();
            if set.contains("Max-Age=0") {
                self.cookie = None;
            } else {
                self.cookie = Some(pair);
            }
        }
        reply
    }
}

async fn raw(addr: SocketAddr, bytes: &[u8]) -> Reply {
    let r = common::http::exchange(addr, bytes, Duration::from_secs(15)).await;
    Reply {
        status: r.status,
        headers: r.headers,
        text: r.body,
    }
}

fn other_code(code: &str) -> String {
    let mut w: Vec<u8> = code.bytes().collect();
    w[0] = if w[0] == b'9' { b'0' } else { w[0] + 1 };
    String::from_utf8(w).unwrap()
}

// ----------------------------------------------------------------------
// The join API.

#[tokio::test]
async fn from_username_to_a_single_use_dialin_code() {
    let pb = Pinbridge::start("happy", Arc::new(ManualClock::new(T0))).await;
    let mut b = pb.browser();

    let r = b
        .post("/join/api/start", json!({ "username": " Alice " }))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let body = r.json();
    // Nothing about the participant: the same answer for a name nobody has.
    assert_eq!(body, json!({ "code_length": 6, "expires_in": 600 }));
    let set = r.set_cookie().expect("a session cookie").to_string();
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/join", "Max-Age=600"] {
        assert!(set.contains(attr), "{attr} missing: {set}");
    }
    assert!(set.starts_with(&format!("{COOKIE}=")), "{set}");
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert!(r
        .header("content-security-policy")
        .is_some_and(|c| c.contains("default-src 'self'")));

    let code = pb.gateway.code_for(ALICE).await;
    assert_eq!(code.len(), 6);
    assert!(!set.contains(&code), "the cookie never holds the code");
    assert!(!r.text.contains(&code), "nor does the answer");
    assert!(!r.text.contains(ALICE), "the number is masked");

    let r = b.post("/join/api/check", json!({ "code": code })).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let body = r.json();
    assert_eq!(body["verified"], true);
    assert_eq!(body["name"], "Alice Example");
    // "phones" is an otp-only conference: no PIN to put a code in place of.
    assert_eq!(
        body["conferences"],
        json!([{ "name": "board", "number": "4100", "hash": true }])
    );
    let dialin = &body["dialin"];
    assert_eq!(dialin["conference"], "board");
    assert_eq!(dialin["number"], "4100");
    assert_eq!(dialin["expires_in"], 300);
    assert_eq!(dialin["expires_at"], "2023-11-14T22:18:20Z");
    let dialin_code = dialin["code"].as_str().unwrap().to_string();
    assert!(
        dialin_code.len() == 8 && dialin_code.bytes().all(|c| c.is_ascii_digit()),
        "{dialin_code}"
    );
    let set = r.set_cookie().expect("the verified session");
    assert!(!set.contains(&dialin_code) && !set.contains(&code));

    // The session is verified: a code again is refused, another dial-in
    // code for the same conference is fine, another conference is not.
    let r = b.post("/join/api/check", json!({ "code": code })).await;
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (409, "already_verified")
    );
    let r = b
        .post("/join/api/dialin", json!({ "conference": "sales" }))
        .await;
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (422, "unknown_conference")
    );
    let r = b
        .post("/join/api/dialin", json!({ "conference": "board" }))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let second = r.json()["dialin"]["code"].as_str().unwrap().to_string();
    assert_ne!(second, dialin_code);

    // The IVR's side: the second code replaced the first (one live code
    // per participant and conference); it admits once, bound to Alice and
    // the conference.
    let verify = pb.verify();
    assert!(
        verify
            .redeem_dialin(dialin_code, all_conferences())
            .await
            .unwrap()
            .is_none(),
        "replaced by the second"
    );
    let (redeemed, who) = verify
        .redeem_dialin(second.clone(), all_conferences())
        .await
        .unwrap()
        .expect("the code admits once");
    assert_eq!(
        (redeemed.conference.as_str(), who.username.as_str()),
        ("board", "alice")
    );
    assert!(verify
        .redeem_dialin(second, all_conferences())
        .await
        .unwrap()
        .is_none());

    // Start over.
    let r = b.post("/join/api/reset", json!({})).await;
    assert_eq!(r.status, 204);
    assert!(r.set_cookie().unwrap().contains("Max-Age=0"));
    assert!(b.cookie.is_none());
    let r = b
        .post("/join/api/dialin", json!({ "conference": "board" }))
        .await;
    assert_eq!((r.status, r.error_code().as_str()), (401, "no_session"));
    pb.stop().await;
}

#[tokio::test]
async fn several_conferences_the_page_and_its_headers() {
    let pb = Pinbridge::start("several", Arc::new(ManualClock::new(T0))).await;
    let mut b = pb.browser();

    let r = b.get("/").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    let csp = r.header("content-security-policy").unwrap();
    assert!(csp.starts_with("default-src 'self'"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(r.header("referrer-policy"), Some("no-referrer"));
    assert!(r.text.contains("<script src=\"/join/static/join.js\""));
    let r = b.get("/join/static/join.js").await;
    assert_eq!(
        (r.status, r.header("content-type")),
        (200, Some("text/javascript; charset=utf-8"))
    );
    assert!(r.text.contains("/join/api/"));
    let r = b.get("/join/static/join.css").await;
    assert_eq!(
        (r.status, r.header("content-type")),
        (200, Some("text/css; charset=utf-8"))
    );
    // The API beside it still wants its key; unknown paths are JSON 404s.
    let r = b.get("/v1/participants").await;
    assert_eq!((r.status, r.error_code().as_str()), (401, "unauthorized"));
    let r = b.get("/join/nothing").await;
    assert_eq!((r.status, r.error_code().as_str()), (404, "not_found"));

    b.post("/join/api/start", json!({ "username": "bob" }))
        .await;
    let code = pb.gateway.code_for(BOB).await;
    let r = b.post("/join/api/check", json!({ "code": code })).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let body = r.json();
    assert_eq!(
        body["conferences"],
        json!([
            { "name": "board", "number": "4100", "hash": true },
            { "name": "sales", "number": "4200", "hash": true }
        ])
    );
    assert_eq!(body["dialin"], Value::Null, "the participant chooses first");
    let r = b
        .post("/join/api/dialin", json!({ "conference": "sales" }))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let d = r.json()["dialin"].clone();
    assert_eq!(
        (d["conference"].as_str(), d["number"].as_str()),
        (Some("sales"), Some("4200"))
    );
    let (redeemed, who) = pb
        .verify()
        .redeem_dialin(d["code"].as_str().unwrap().into(), all_conferences())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (redeemed.conference.as_str(), who.username.as_str()),
        ("sales", "bob")
    );

    // Verified, but no conference takes a dial-in code.
    let mut c = pb.browser();
    c.post("/join/api/start", json!({ "username": "carol" }))
        .await;
    let code = pb.gateway.code_for("+12015550125").await;
    let r = c.post("/join/api/check", json!({ "code": code })).await;
    assert_eq!((r.status, r.error_code().as_str()), (403, "no_conference"));
    pb.stop().await;
}

#[tokio::test]
async fn wrong_codes_count_down_then_end_the_session() {
    let pb = Pinbridge::start("wrong", Arc::new(ManualClock::new(T0))).await;
    let mut b = pb.browser();
    b.post("/join/api/start", json!({ "username": "alice" }))
        .await;
    let code = pb.gateway.code_for(ALICE).await;
    let wrong = other_code(&code);

    // Not a code at all: said so, and no attempt spent.
    for bad in ["12ab56", "123", "1234567", ""] {
        let r = b.post("/join/api/check", json!({ "code": bad })).await;
        assert_eq!(
            (r.status, r.error_code().as_str()),
            (422, "invalid_code"),
            "{bad}"
        );
        assert_eq!(r.message(), "Enter the 6-digit code from the message.");
    }
    for left in (1..5).rev() {
        let r = b.post("/join/api/check", json!({ "code": wrong })).await;
        assert_eq!((r.status, r.error_code().as_str()), (422, "wrong_code"));
        assert_eq!(r.json()["error"]["attempts_left"], left);
        let s = if left == 1 { "" } else { "s" };
        assert_eq!(
            r.message(),
            format!("That code is not correct. {left} attempt{s} left.")
        );
        assert!(r.set_cookie().is_none(), "the session goes on");
    }
    let kept = b.cookie.clone();
    let r = b.post("/join/api/check", json!({ "code": wrong })).await;
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (403, "too_many_attempts")
    );
    assert!(r.set_cookie().unwrap().contains("Max-Age=0"));
    // The right code, too late, with the old cookie replayed.
    b.cookie = kept;
    let r = b.post("/join/api/check", json!({ "code": code })).await;
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (403, "too_many_attempts")
    );
    // Spaces typed in the code are fine: a new code, "123 456" style.
    let seen = pb.gateway.count_for(ALICE);
    b.post("/join/api/start", json!({ "username": "alice" }))
        .await;
    let code = pb.gateway.code_after(ALICE, seen).await;
    let spaced = format!("{} {}", &code[..3], &code[3..]);
    let r = b.post("/join/api/check", json!({ "code": spaced })).await;
    assert_eq!(r.status, 200, "{}", r.text);
    pb.stop().await;
}

#[tokio::test]
async fn expired_codes_and_sessions() {
    let clock = ManualClock::new(T0);
    let pb = Pinbridge::start("expired", Arc::new(clock.clone())).await;
    let mut b = pb.browser();
    b.post("/join/api/start", json!({ "username": "alice" }))
        .await;
    let code = pb.gateway.code_for(ALICE).await;
    clock.advance_ms(10 * 60 * 1000);
    let r = b.post("/join/api/check", json!({ "code": code })).await;
    assert_eq!((r.status, r.error_code().as_str()), (410, "code_expired"));
    assert_eq!(
        r.message(),
        "The code has expired. Enter your username to get a new one."
    );
    assert!(r.set_cookie().unwrap().contains("Max-Age=0"));

    // A verified session lasts as long as a code would (10 minutes).
    let seen = pb.gateway.count_for(ALICE);
    b.post("/join/api/start", json!({ "username": "alice" }))
        .await;
    let code = pb.gateway.code_after(ALICE, seen).await;
    let r = b.post("/join/api/check", json!({ "code": code })).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let dialin = r.json()["dialin"]["code"].as_str().unwrap().to_string();
    clock.advance_ms(5 * 60 * 1000);
    // The dial-in code lived 5 minutes.
    assert!(pb
        .verify()
        .redeem_dialin(dialin, all_conferences())
        .await
        .unwrap()
        .is_none());
    let r = b
        .post("/join/api/dialin", json!({ "conference": "board" }))
        .await;
    assert_eq!(r.status, 200, "still verified: {}", r.text);
    clock.advance_ms(5 * 60 * 1000);
    let r = b
        .post("/join/api/dialin", json!({ "conference": "board" }))
        .await;
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (401, "session_expired")
    );
    pb.stop().await;
}

#[tokio::test]
async fn missing_tampered_and_forged_cookies_are_refused() {
    let pb = Pinbridge::start("cookies", Arc::new(ManualClock::new(T0))).await;
    let mut b = pb.browser();

    // No cookie at all.
    for (path, body) in [
        ("/join/api/check", json!({ "code": "123456" })),
        ("/join/api/dialin", json!({ "conference": "board" })),
    ] {
        let r = b.post(path, body).await;
        assert_eq!(
            (r.status, r.error_code().as_str()),
            (401, "no_session"),
            "{path}"
        );
        assert_eq!(
            r.message(),
            "Your session was not found. Enter your username to start again."
        );
    }

    b.post("/join/api/start", json!({ "username": "alice" }))
        .await;
    let code = pb.gateway.code_for(ALICE).await;
    let genuine = b.cookie.clone().unwrap();
    let value = genuine
        .strip_prefix(&format!("{COOKIE}="))
        .unwrap()
        .to_string();
    let parts: Vec<&str> = value.split('.').collect();
    assert_eq!(parts.len(), 6, "{value}");

    // A code-stage session cannot ask for a dial-in code.
    let r = b
        .post("/join/api/dialin", json!({ "conference": "board" }))
        .await;
    assert_eq!((r.status, r.error_code().as_str()), (403, "not_verified"));

    let with = |i: usize, new: &str| {
        let mut p = parts.clone();
        p[i] = new;
        format!("{COOKIE}={}", p.join("."))
    };
    let mut flipped_mac = parts[5].to_string();
    let last = flipped_mac.pop().unwrap();
    flipped_mac.push(if last == '0' { '1' } else { '0' });
    let bob_id = pb
        .verify()
        .participant_by_username("bob".into())
        .await
        .unwrap()
        .unwrap()
        .id;
    let tampered = [
        with(1, "v"),                            // promoted to verified
        with(2, &bob_id.to_string()),            // someone else
        with(4, &(T0 + 86_400_000).to_string()), // lives longer
        with(5, &flipped_mac),                   // the MAC itself
        format!("{COOKIE}=garbage"),
        format!("{COOKIE}={}", "9".repeat(5000)),
    ];
    for t in tampered {
        b.cookie = Some(t.clone());
        let r = b.post("/join/api/check", json!({ "code": code })).await;
        assert_eq!(
            (r.status, r.error_code().as_str()),
            (401, "no_session"),
            "{t}"
        );
    }
    // Well formed and verified, but signed with another key.
    let forged = SessionKeys::new(ServerKey::from_bytes([7; 32])).encode(&Session {
        stage: Stage::Verified,
        participant_id: bob_id,
        verification_id: parts[3].to_string(),
        expires_ms: T0 + 600_000,
    });
    b.cookie = Some(format!("{COOKIE}={forged}"));
    let r = b
        .post("/join/api/dialin", json!({ "conference": "board" }))
        .await;
    assert_eq!((r.status, r.error_code().as_str()), (401, "no_session"));

    // None of that spent an attempt: the genuine cookie still works.
    b.cookie = Some(genuine);
    let r = b.post("/join/api/check", json!({ "code": code })).await;
    assert_eq!(r.status, 200, "{}", r.text);
    pb.stop().await;
}

#[tokio::test]
async fn bodies_content_types_and_cross_site_requests() {
    let pb = Pinbridge::start("guards", Arc::new(ManualClock::new(T0))).await;
    let mut b = pb.browser();
    let alice = json!({ "username": "alice" }).to_string();

    let big = json!({ "username": "a".repeat(2000) }).to_string();
    let r = b
        .send(
            "POST",
            "/join/api/start",
            Some(&big),
            "application/json",
            &[],
        )
        .await;
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (413, "payload_too_large")
    );
    // What a cross-site HTML form can send: refused.
    for ct in ["text/plain", "application/x-www-form-urlencoded", ""] {
        let r = b
            .send("POST", "/join/api/start", Some(&alice), ct, &[])
            .await;
        assert_eq!(
            (r.status, r.error_code().as_str()),
            (415, "unsupported_media_type"),
            "{ct:?}"
        );
    }
    let r = b
        .send(
            "POST",
            "/join/api/start",
            Some(&alice),
            "application/json",
            &[("Sec-Fetch-Site", "cross-site")],
        )
        .await;
    assert_eq!((r.status, r.error_code().as_str()), (403, "cross_site"));
    let r = b
        .send(
            "POST",
            "/join/api/start",
            Some("{\"username\": "),
            "application/json",
            &[],
        )
        .await;
    assert_eq!((r.status, r.error_code().as_str()), (400, "invalid_json"));
    for body in [
        json!({ "username": "alice", "extra": 1 }),
        json!({}),
        json!([1]),
    ] {
        let r = b.post("/join/api/start", body.clone()).await;
        assert_eq!(
            (r.status, r.error_code().as_str()),
            (422, "invalid_request"),
            "{body}"
        );
    }
    let r = b.get("/join/api/start").await;
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (405, "method_not_allowed")
    );
    // Every join route is served, without an API key.
    for (method, path) in JOIN_ROUTES {
        let r = if *method == "get" {
            b.get(path).await
        } else {
            b.post(path, json!({})).await
        };
        assert!(
            ![401, 404, 405].contains(&r.status),
            "{method} {path}: {}",
            r.status
        );
    }
    assert_eq!(pb.gateway.count(), 0, "none of that sent a code");
    assert!(b.cookie.is_none());

    // The same request from our own page goes through; reached through a
    // TLS-terminating proxy, the cookie is Secure.
    let r = b
        .send(
            "POST",
            "/join/api/start",
            Some(&alice),
            "application/json",
            &[
                ("Sec-Fetch-Site", "same-origin"),
                ("X-Forwarded-Proto", "https"),
            ],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.set_cookie().unwrap().ends_with("; Secure"));
    let r = b
        .post("/join/api/start", json!({ "username": "alice" }))
        .await;
    assert!(!r.set_cookie().unwrap().contains("Secure"));
    pb.stop().await;
}

/// A start's answer with the parts that must differ between any two
/// sessions (the verification id and the MAC) blanked: what an observer
/// could compare.
fn observable(r: &Reply) -> (u16, String, String) {
    let cookie = r.set_cookie().unwrap_or("").to_string();
    let (pair, attrs) = cookie.split_once(';').unwrap_or((&cookie, ""));
    let value = pair.strip_prefix(&format!("{COOKIE}=")).unwrap_or(pair);
    let parts: Vec<&str> = value.split('.').collect();
    let shape = match parts.as_slice() {
        [v, stage, pid, vid, exp, mac] => {
            assert!(vid.starts_with("VE") && vid.len() == 34, "{vid}");
            assert_eq!(mac.len(), 64);
            format!("{v}.{stage}.{pid}.<id>.{exp}.<mac>;{attrs}")
        }
        _ => format!("{value};{attrs}"),
    };
    (r.status, r.text.clone(), shape)
}

#[tokio::test]
async fn known_and_unknown_usernames_get_the_same_answers() {
    let pb = Pinbridge::start("same", Arc::new(ManualClock::new(T0))).await;

    // A participant and a name nobody has: the same status, body and
    // cookie (but for its id and MAC); only the participant gets a code.
    let mut known = pb.browser();
    let mut unknown = pb.browser();
    let a = known
        .post("/join/api/start", json!({ "username": "alice" }))
        .await;
    let n = unknown
        .post("/join/api/start", json!({ "username": "nobody" }))
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(observable(&a), observable(&n));
    assert!(
        observable(&a).2.starts_with("1.c.0.<id>."),
        "{:?}",
        observable(&a)
    );
    let code = pb.gateway.code_for(ALICE).await;
    assert_eq!(pb.gateway.count(), 1, "nothing was sent for `nobody`");

    // Wrong codes count down alike, to the same end.
    let wrong = other_code(&code);
    for _ in 0..5 {
        let a = known
            .post("/join/api/check", json!({ "code": wrong }))
            .await;
        let n = unknown
            .post("/join/api/check", json!({ "code": wrong }))
            .await;
        assert_eq!((a.status, &a.text), (n.status, &n.text));
        assert_eq!(a.set_cookie(), n.set_cookie());
    }
    assert_eq!(known.cookie, None, "too_many_attempts ends both sessions");
    assert_eq!(unknown.cookie, None);

    // Asked again and again: the same pending verification each time (the
    // participant's code re-sent), then the same send limit.
    let mut last = (None, None);
    for n in 1..=5 {
        let a = known
            .post("/join/api/start", json!({ "username": "bob" }))
            .await;
        let u = unknown
            .post("/join/api/start", json!({ "username": "nobody-else" }))
            .await;
        assert_eq!(observable(&a), observable(&u), "start {n}");
        let id = |b: &Browser| {
            b.cookie
                .clone()
                .map(|c| c.split('.').nth(3).map(str::to_string))
        };
        if n > 1 {
            assert_eq!(id(&known), last.0, "the same verification");
            assert_eq!(id(&unknown), last.1, "the same decoy");
        }
        last = (id(&known), id(&unknown));
    }
    let a = known
        .post("/join/api/start", json!({ "username": "bob" }))
        .await;
    let u = unknown
        .post("/join/api/start", json!({ "username": "nobody-else" }))
        .await;
    assert_eq!((a.status, a.error_code().as_str()), (429, "too_many_sends"));
    assert_eq!(observable(&a), observable(&u));
    assert_eq!(a.header("retry-after"), Some("3600"));
    assert_eq!(a.json()["error"]["code_pending"], true);
    assert_eq!(
        a.message(),
        "Too many codes were asked for with this username. Try again in 1 hour. If you already have a code, you can enter it now."
    );
    assert!(!a.text.contains("24"), "nothing of the phone: {}", a.text);
    // The participant's pending code still works through that answer.
    let code = pb.gateway.code_for(BOB).await;
    let r = known.post("/join/api/check", json!({ "code": code })).await;
    assert_eq!(r.status, 200, "{}", r.text);

    // A participant whose code cannot be delivered: the same answer too
    // (the failure is the server log's business, not the page's).
    pb.gateway.fail(DAVE);
    let mut d = pb.browser();
    let mut x = pb.browser();
    let r = d
        .post("/join/api/start", json!({ "username": "dave" }))
        .await;
    let u = x
        .post("/join/api/start", json!({ "username": "nobody-at-all" }))
        .await;
    assert_eq!(observable(&r), observable(&u));

    // What is not a username at all is said so: a rule, not a secret.
    let mut b = pb.browser();
    for name in ["not a username!", "-dash-first", &"x".repeat(65)] {
        let r = b.post("/join/api/start", json!({ "username": name })).await;
        assert_eq!(
            (r.status, r.error_code().as_str()),
            (422, "invalid_username"),
            "{name}"
        );
        assert!(r.set_cookie().is_none());
    }
    let r = b.post("/join/api/start", json!({ "username": "  " })).await;
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (422, "username_required")
    );
    pb.stop().await;
}

#[tokio::test]
async fn the_answer_does_not_wait_for_the_delivery() {
    let pb = Pinbridge::start("detached", Arc::new(ManualClock::new(T0))).await;
    // The SMS gateway takes the request and sits on it.
    pb.gateway.hold();
    let mut b = pb.browser();
    let r = tokio::time::timeout(
        Duration::from_secs(20),
        b.post("/join/api/start", json!({ "username": "alice" })),
    )
    .await
    .expect("an answer");
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        pb.gateway.count(),
        0,
        "answered before the delivery completed"
    );
    // The delivery goes on in the background and completes.
    pb.gateway.release();
    let code = pb.gateway.code_for(ALICE).await;
    assert!(pb.gateway.arrived() >= 1);
    let r = b.post("/join/api/check", json!({ "code": code })).await;
    assert_eq!(r.status, 200, "{}", r.text);
    pb.stop().await;
}

#[tokio::test]
async fn the_join_api_is_rate_limited_per_client_address() {
    // Three join API requests at once, then one a minute; the rest of the
    // server has its own, roomier limit.
    let pb = Pinbridge::start_limited(
        "ratelimit",
        Arc::new(ManualClock::new(T0)),
        true,
        "join_rate_limit_per_minute = 1\njoin_rate_limit_burst = 3",
    )
    .await;
    let mut b = pb.browser();
    for name in ["alice", "nobody", "bob"] {
        let r = b.post("/join/api/start", json!({ "username": name })).await;
        assert_eq!(r.status, 200, "{name}: {}", r.text);
    }
    let r = b
        .post("/join/api/start", json!({ "username": "carol" }))
        .await;
    assert_eq!((r.status, r.error_code().as_str()), (429, "rate_limited"));
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(r.json()["error"]["retry_after"], retry);
    assert!(r
        .message()
        .starts_with("Too many requests from your address. Try again in "));
    // The page itself still loads.
    assert_eq!(b.get("/").await.status, 200);
    // Another address has its own allowance.
    let body = json!({ "username": "carol" }).to_string();
    let req = format!(
        "POST /join/api/start HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        pb.http,
        body.len()
    );
    let r = common::http::exchange_from(
        "127.0.0.2".parse().unwrap(),
        pb.http,
        req.as_bytes(),
        Duration::from_secs(15),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    pb.stop().await;
}

#[tokio::test]
async fn the_page_is_not_served_when_turned_off() {
    let pb = Pinbridge::start_with("off", Arc::new(ManualClock::new(T0)), false).await;
    let mut b = pb.browser();
    let r = b.get("/").await;
    assert_eq!((r.status, r.error_code().as_str()), (404, "not_found"));
    let r = b
        .post("/join/api/start", json!({ "username": "alice" }))
        .await;
    assert_eq!((r.status, r.error_code().as_str()), (404, "not_found"));
    assert!(
        !pb.dir.join("cookie.key").exists(),
        "no cookie key without the page"
    );
    pb.stop().await;
}

#[tokio::test]
async fn the_cookie_key_is_created_private_and_kept() {
    let pb = Pinbridge::start("key", Arc::new(ManualClock::new(T0))).await;
    let path = pb.dir.join("cookie.key");
    let meta = std::fs::metadata(&path).expect("cookie key created at start");
    assert_eq!(meta.len(), 32);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    }
    pb.stop().await;
}

// ----------------------------------------------------------------------
// The page in headless Chromium, and the phone call the code admits.

/// A WebDriver session on a chromedriver of our own.
struct WebDriver {
    http: reqwest::Client,
    base: String,
    session: String,
    driver: tokio::process::Child,
    profile: PathBuf,
}

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

impl WebDriver {
    async fn start(chromedriver: &Path, chromium: &Path) -> WebDriver {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let driver = tokio::process::Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver starts");
        let http = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{port}");
        let ready = async {
            loop {
                if let Ok(r) = http.get(format!("{base}/status")).send().await {
                    if let Ok(v) = r.json::<Value>().await {
                        if v["value"]["ready"] == true {
                            return;
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(20), ready)
            .await
            .expect("chromedriver ready");
        let profile = temp_dir("chromium-profile");
        let args = [
            "--headless".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--disable-dev-shm-usage".into(),
            format!("--user-data-dir={}", profile.display()),
        ];
        let caps = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": chromium, "args": args }
        }}});
        let r: Value = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .await
            .expect("new session")
            .json()
            .await
            .expect("JSON");
        let session = r["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {r}"))
            .to_string();
        WebDriver {
            http,
            base,
            session,
            driver,
            profile,
        }
    }

    async fn cmd(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let mut req = self.http.request(method, url);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r: Value = req
            .send()
            .await
            .expect("chromedriver answers")
            .json()
            .await
            .expect("JSON");
        if r["value"]["error"].is_string() {
            panic!("WebDriver {path}: {}", r["value"]);
        }
        r["value"].clone()
    }

    async fn goto(&self, url: &str) {
        self.cmd(reqwest::Method::POST, "/url", Some(json!({ "url": url })))
            .await;
    }

    async fn find(&self, css: &str) -> String {
        let v = self
            .cmd(
                reqwest::Method::POST,
                "/element",
                Some(json!({ "using": "css selector", "value": css })),
            )
            .await;
        v[ELEMENT].as_str().expect("element id").to_string()
    }

    async fn type_into(&self, css: &str, text: &str) {
        let e = self.find(css).await;
        self.cmd(
            reqwest::Method::POST,
            &format!("/element/{e}/clear"),
            Some(json!({})),
        )
        .await;
        self.cmd(
            reqwest::Method::POST,
            &format!("/element/{e}/value"),
            Some(json!({ "text": text })),
        )
        .await;
    }

    async fn click(&self, css: &str) {
        let e = self.find(css).await;
        self.cmd(
            reqwest::Method::POST,
            &format!("/element/{e}/click"),
            Some(json!({})),
        )
        .await;
    }

    async fn text(&self, css: &str) -> String {
        let e = self.find(css).await;
        self.cmd(reqwest::Method::GET, &format!("/element/{e}/text"), None)
            .await
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    async fn js(&self, script: &str) -> Value {
        self.cmd(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({ "script": script, "args": [] })),
        )
        .await
    }

    /// Waits until the page shows `id` (a step or the error line).
    async fn wait_shown(&self, id: &str) {
        let script = format!("return !document.getElementById('{id}').hidden;");
        for _ in 0..200 {
            if self.js(&script).await == true {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let error = self.text("#error").await;
        panic!("#{id} never shown (page error: {error:?})");
    }

    /// Waits until the error line says something containing `needle`.
    async fn wait_error(&self, needle: &str) -> String {
        for _ in 0..200 {
            let shown = self
                .js("return !document.getElementById('error').hidden;")
                .await;
            if shown == true {
                let t = self.text("#error").await;
                if t.contains(needle) {
                    return t;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "no error with {needle:?}; it says {:?}",
            self.text("#error").await
        );
    }

    async fn quit(mut self) {
        let _ = self
            .http
            .delete(format!("{}/session/{}", self.base, self.session))
            .send()
            .await;
        let _ = self.driver.kill().await;
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// A caller: the test UA with an RTP socket, keying RFC 4733 events.
struct Caller {
    ua: TestUa,
    call: Call,
    rec: RtpRecorder,
    to: SocketAddr,
    next: RtpHeader,
}

const SSRC: u32 = 0x10C0_0001;

impl Caller {
    async fn dial(sip: SocketAddr, number: &str) -> Caller {
        let mut ua = TestUa::udp(sip).await.unwrap();
        let rec = RtpRecorder::bind().await.unwrap();
        let opts = InviteOptions::new(number).with_sdp(phone_offer(rec.port()));
        let (call, answer) = ua.answered_call(opts, Duration::from_secs(5)).await;
        let to = answer.rtp_addr();
        Caller {
            ua,
            call,
            rec,
            to,
            next: RtpHeader::new(0, 1000, 160_000, SSRC).with_marker(true),
        }
    }

    async fn silence(&mut self, ms: usize) {
        let h = self.next.clone();
        self.next = self
            .rec
            .send_g711(self.to, h, &vec![0i16; ms * 8], Duration::from_millis(20))
            .await
            .unwrap();
    }

    /// RFC 4733 events: 100 ms each, 100 ms of silence between.
    async fn keys(&mut self, keys: &str) {
        for k in keys.chars() {
            let code = "0123456789*#".find(k).expect("a DTMF key") as u8;
            let start_ts = self.next.timestamp;
            for i in 1..=8u16 {
                let end = i > 5;
                let duration = 160 * i.min(5);
                let payload = [
                    code,
                    if end { 0x80 | 10 } else { 10 },
                    (duration >> 8) as u8,
                    duration as u8,
                ];
                let h = RtpHeader::new(101, self.next.sequence, start_ts, SSRC).with_marker(i == 1);
                self.rec.send_rtp(self.to, &h, &payload).await.unwrap();
                self.next.sequence = self.next.sequence.wrapping_add(1);
                if i <= 5 {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
            self.next.timestamp = self.next.timestamp.wrapping_add(800);
            self.silence(100).await;
        }
    }

    /// Has the server played this prompt, byte for byte?
    fn heard(&self, id: PromptId) -> bool {
        let bytes: Vec<u8> = self
            .rec
            .packets()
            .into_iter()
            .flat_map(|p| p.payload)
            .collect();
        let needle = g711::encode_ulaw(&prompt_samples(id));
        bytes.windows(needle.len()).any(|w| w == needle.as_slice())
    }

    /// Keeps talking (silence) until `id` has been heard, up to `secs`.
    async fn until_heard(&mut self, id: PromptId, secs: u64) -> bool {
        for _ in 0..secs * 5 {
            if self.heard(id) {
                return true;
            }
            self.silence(200).await;
        }
        self.heard(id)
    }

    async fn hang_up(mut self) {
        if let Ok(tx) = self.ua.bye(&mut self.call).await {
            let _ = self.ua.expect_final_tx(&tx, Duration::from_secs(2)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headless_chromium_from_username_to_an_admitted_call() {
    let Some(chromedriver) = require_tool("chromedriver") else {
        return;
    };
    let Some(chromium) = require_tool("chromium") else {
        return;
    };
    let pb = Pinbridge::start("browser", Arc::new(SystemClock)).await;
    let wd = WebDriver::start(&chromedriver, &chromium).await;
    wd.goto(&format!("http://{}/", pb.http)).await;
    wd.wait_shown("step-username").await;

    // A mistyped username looks like any other (the page does not say
    // which names exist); "Use another username" goes back.
    wd.type_into("#username", "bobb").await;
    wd.click("#send").await;
    wd.wait_shown("step-code").await;
    let sent = wd.text("#sent-to").await;
    assert!(
        sent.starts_with("If bobb is a participant, a code is on its way"),
        "{sent}"
    );
    wd.click("#restart").await;
    wd.wait_shown("step-username").await;

    wd.type_into("#username", "bob").await;
    wd.click("#send").await;
    wd.wait_shown("step-code").await;
    let sent = wd.text("#sent-to").await;
    assert!(sent.starts_with("If bob is a participant"), "{sent}");
    assert!(sent.contains("valid for 10 minutes"), "{sent}");
    assert_eq!(
        wd.js("return document.cookie;").await,
        "",
        "the session cookie is HttpOnly"
    );

    let otp = pb.gateway.code_for(BOB).await;
    wd.type_into("#code", &other_code(&otp)).await;
    wd.click("#verify").await;
    let err = wd.wait_error("not correct").await;
    assert!(err.contains("4 attempts left"), "{err}");

    wd.type_into("#code", &otp).await;
    wd.click("#verify").await;
    wd.wait_shown("step-conference").await;
    assert!(wd.text("#welcome").await.contains("Bob Example"));
    assert!(
        wd.js("return document.getElementById('error').hidden;")
            .await
            == true
    );
    let options = wd
        .js("return Array.from(document.querySelectorAll('#conference option')).map(o => o.textContent);")
        .await;
    assert_eq!(options, json!(["board (dial 4100)", "sales (dial 4200)"]));
    wd.click("#conference option[value=\"board\"]").await;
    wd.click("#get-dialin").await;
    wd.wait_shown("step-dialin").await;
    let dialin = wd.text("#dialin-code").await;
    assert!(
        dialin.len() == 8 && dialin.bytes().all(|b| b.is_ascii_digit()),
        "{dialin:?}"
    );
    assert_eq!(wd.text("#dialin-conference").await, "board");
    let how = wd.text("#dialin-how").await;
    assert_eq!(
        how,
        "Call 4100. When asked for the conference code, key in this code followed by #."
    );
    assert!(wd.text("#dialin-expiry").await.contains("within 5 minutes"));
    wd.quit().await;

    // The phone: the dial-in code in place of the PIN admits the call...
    let mut c = Caller::dial(pb.sip, "4100").await;
    c.silence(600).await;
    c.keys(&format!("{dialin}#")).await;
    assert!(
        c.until_heard(PromptId::Joining, 10).await,
        "the dial-in code admitted the call (\"joining\" played)"
    );
    assert!(!c.heard(PromptId::CodeIncorrect));
    c.hang_up().await;

    // ...once.
    let mut c = Caller::dial(pb.sip, "4100").await;
    c.silence(600).await;
    c.keys(&format!("{dialin}#")).await;
    assert!(
        c.until_heard(PromptId::CodeIncorrect, 10).await,
        "a used dial-in code is refused"
    );
    assert!(!c.heard(PromptId::Joining));
    c.hang_up().await;
    pb.stop().await;
}
