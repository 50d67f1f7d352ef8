//! The verification API over real TCP on 127.0.0.1, with a hand-written
//! HTTP/1.1 client (no client library between the test and the server),
//! a fake clock and a recording test sender.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use pinbridge::config::otp::{ChannelKind, HttpLimits, HttpSettings};
use pinbridge::http::{router, ApiState, HttpServer, ROUTES};
use pinbridge::store::{Store, StoreHandle};
use pinbridge::verify::clock::ManualClock;
use pinbridge::verify::key::load_or_create_key;
use pinbridge::verify::otp::Policy;
use pinbridge::verify::sender::RecordingSender;
use pinbridge::verify::service::{ChannelPolicy, VerifyService};

const KEY: &str = "test-api-key-0123456789";
const T0: i64 = 1_700_000_000_000;
const ALICE: &str = "+12015550123";

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "pinbridge-verify-api-{tag}-{}-{}",
        std::process::id(),
        pinbridge::verify::random::id("").unwrap()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

struct Server {
    addr: SocketAddr,
    clock: ManualClock,
    sender: Arc<RecordingSender>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl Server {
    async fn start(dir: &Path, clock: ManualClock) -> Server {
        Self::start_with(dir, clock, HttpLimits::default()).await
    }

    async fn start_with(dir: &Path, clock: ManualClock, limits: HttpLimits) -> Server {
        let sender = Arc::new(RecordingSender::new());
        let store = StoreHandle::spawn(Store::open(&dir.join("pinbridge.db")).unwrap()).unwrap();
        let key = load_or_create_key(&dir.join("pinbridge.key")).unwrap();
        let service = VerifyService::new(
            store,
            key,
            Policy::default(),
            ChannelPolicy {
                enabled: vec![ChannelKind::Webhook, ChannelKind::Email, ChannelKind::Log],
                default_order: vec![ChannelKind::Webhook, ChannelKind::Log],
                default_country_code: "1".into(),
            },
            sender.clone(),
            Arc::new(clock.clone()),
        )
        .unwrap();
        let settings = HttpSettings {
            listen: "127.0.0.1:0".parse().unwrap(),
            api_key_hashes: vec![Sha256::digest(KEY.as_bytes()).into()],
            max_body_bytes: 1024,
            join_page: false,
            dialin_code_ttl: Duration::from_secs(300),
            cookie_key_file: dir.join("cookie.key"),
            limits,
        };
        let state = ApiState::new(service, &settings, vec!["board".into(), "sales".into()]);
        let server = HttpServer::bind(
            settings.listen,
            router(state, settings.max_body_bytes),
            settings.limits.clone(),
        )
        .await
        .unwrap();
        let addr = server.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async {
            let _ = stopped.await;
        }));
        Server {
            addr,
            clock,
            sender,
            stop: Some(stop),
            task: Some(task),
        }
    }

    async fn shutdown(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.unwrap().unwrap();
        }
    }

    async fn post(&self, path: &str, body: Value) -> Reply {
        self.request(
            "POST",
            path,
            Some(&body.to_string()),
            Some(KEY),
            "application/json",
        )
        .await
    }

    async fn get(&self, path: &str) -> Reply {
        self.request("GET", path, None, Some(KEY), "application/json")
            .await
    }

    async fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
        key: Option<&str>,
        content_type: &str,
    ) -> Reply {
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
            self.addr
        );
        if let Some(k) = key {
            req.push_str(&format!("Authorization: Bearer {k}\r\n"));
        }
        if let Some(b) = body {
            req.push_str(&format!(
                "Content-Type: {content_type}\r\nContent-Length: {}\r\n",
                b.len()
            ));
        }
        req.push_str("\r\n");
        if let Some(b) = body {
            req.push_str(b);
        }
        raw(self.addr, req.as_bytes()).await
    }
}

#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Value,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn error_code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
}

/// Sends raw bytes, reads the whole response (the server closes: we asked
/// for `Connection: close`), and parses it.
async fn raw(addr: SocketAddr, bytes: &[u8]) -> Reply {
    let r = common::http::exchange(addr, bytes, Duration::from_secs(10)).await;
    let body = if r.body.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", r.body))
    };
    Reply {
        status: r.status,
        headers: r.headers,
        body,
    }
}

#[tokio::test]
async fn start_check_fetch_cancel() {
    let dir = temp_dir("lifecycle");
    let srv = Server::start(&dir, ManualClock::new(T0)).await;

    let r = srv
        .post(
            "/v1/verifications",
            json!({ "to": "(201) 555-0123", "channel": "log" }),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let id = r.body["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("VE") && id.len() == 34);
    assert_eq!(r.body["status"], "pending");
    assert_eq!(r.body["to"], "**********23");
    assert_eq!(r.body["channel"], "log");
    assert_eq!(r.body["sends"], 1);
    assert_eq!(r.body["expires_at"], "2023-11-14T22:23:20Z");
    assert!(!r.body.to_string().contains(ALICE), "destination masked");

    let sent = srv.sender.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].to_phone.as_deref(), Some(ALICE));
    assert_eq!(sent[0].channel, ChannelKind::Log);
    let code = sent[0].code.expose().to_string();
    assert_eq!(code.len(), 6);
    assert!(
        !r.body.to_string().contains(&code),
        "the code is not in the response"
    );

    let r = srv.get(&format!("/v1/verifications/{id}")).await;
    assert_eq!(
        (r.status, r.body["status"].as_str()),
        (200, Some("pending"))
    );

    let r = srv
        .post("/v1/verifications/check", json!({ "id": id, "code": code }))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["status"], "approved");
    assert_eq!(r.body["valid"], true);

    let r = srv.get(&format!("/v1/verifications/{id}")).await;
    assert_eq!(r.body["status"], "approved");
    // An approved verification cannot be canceled.
    let r = srv
        .post(&format!("/v1/verifications/{id}/cancel"), json!({}))
        .await;
    assert_eq!((r.status, r.error_code()), (409, "not_pending"));

    // A second verification, canceled, then checked.
    srv.clock.advance_ms(1000);
    let r = srv.post("/v1/verifications", json!({ "to": ALICE })).await;
    assert_eq!(r.status, 201);
    assert_eq!(
        r.body["channel"], "webhook",
        "the default order starts with webhook"
    );
    let id2 = r.body["id"].as_str().unwrap().to_string();
    assert_ne!(id2, id);
    let code2 = srv.sender.last_code(&id2).unwrap();
    let r = srv
        .request(
            "POST",
            &format!("/v1/verifications/{id2}/cancel"),
            None,
            Some(KEY),
            "",
        )
        .await;
    assert_eq!(
        (r.status, r.body["status"].as_str()),
        (200, Some("canceled"))
    );
    let r = srv
        .post(
            "/v1/verifications/check",
            json!({ "id": id2, "code": code2 }),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["status"], "canceled");
    assert_eq!(r.body["valid"], false);
    srv.shutdown().await;
}

#[tokio::test]
async fn max_attempts() {
    let dir = temp_dir("attempts");
    let srv = Server::start(&dir, ManualClock::new(T0)).await;
    let r = srv.post("/v1/verifications", json!({ "to": ALICE })).await;
    let id = r.body["id"].as_str().unwrap().to_string();
    let code = srv.sender.last_code(&id).unwrap();
    let wrong = if code == "000000" { "000001" } else { "000000" };
    for remaining in (1..5).rev() {
        let r = srv
            .post(
                "/v1/verifications/check",
                json!({ "id": id, "code": wrong }),
            )
            .await;
        assert_eq!(r.status, 200);
        assert_eq!(r.body["status"], "pending");
        assert_eq!(r.body["valid"], false);
        assert_eq!(r.body["checks_remaining"], remaining);
    }
    let r = srv
        .post(
            "/v1/verifications/check",
            json!({ "to": ALICE, "code": wrong }),
        )
        .await;
    assert_eq!(r.body["status"], "max_attempts_reached");
    assert_eq!(r.body["checks_remaining"], 0);
    // The right code is too late.
    let r = srv
        .post("/v1/verifications/check", json!({ "id": id, "code": code }))
        .await;
    assert_eq!(
        (r.body["status"].as_str(), r.body["valid"].as_bool()),
        (Some("max_attempts_reached"), Some(false))
    );
    srv.shutdown().await;
}

#[tokio::test]
async fn expiry() {
    let dir = temp_dir("expiry");
    let srv = Server::start(&dir, ManualClock::new(T0)).await;
    let r = srv.post("/v1/verifications", json!({ "to": ALICE })).await;
    let id = r.body["id"].as_str().unwrap().to_string();
    let code = srv.sender.last_code(&id).unwrap();
    srv.clock.advance_ms(10 * 60 * 1000);
    let r = srv.get(&format!("/v1/verifications/{id}")).await;
    assert_eq!(r.body["status"], "expired");
    let r = srv
        .post("/v1/verifications/check", json!({ "id": id, "code": code }))
        .await;
    assert_eq!(
        (r.body["status"].as_str(), r.body["valid"].as_bool()),
        (Some("expired"), Some(false))
    );
    // Nothing pending for the destination any more.
    let r = srv
        .post(
            "/v1/verifications/check",
            json!({ "to": ALICE, "code": code }),
        )
        .await;
    assert_eq!((r.status, r.error_code()), (404, "not_found"));
    // A new start makes a new code.
    let r = srv.post("/v1/verifications", json!({ "to": ALICE })).await;
    assert_eq!(r.status, 201);
    assert_ne!(r.body["id"], id.as_str());
    srv.shutdown().await;
}

#[tokio::test]
async fn no_second_code_while_pending_and_send_limit() {
    let dir = temp_dir("sends");
    let srv = Server::start(&dir, ManualClock::new(T0)).await;
    let first = srv.post("/v1/verifications", json!({ "to": ALICE })).await;
    let id = first.body["id"].as_str().unwrap().to_string();
    srv.clock.advance_ms(30_000);
    let again = srv
        .post("/v1/verifications", json!({ "to": "+1 201 555 0123" }))
        .await;
    assert_eq!(again.status, 201);
    assert_eq!(again.body["id"], id.as_str(), "the same verification");
    assert_eq!(again.body["sends"], 2);
    let sent = srv.sender.sent();
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0].code, sent[1].code, "the same code, re-sent");

    for n in 3..=5 {
        let r = srv.post("/v1/verifications", json!({ "to": ALICE })).await;
        assert_eq!((r.status, r.body["sends"].as_u64()), (201, Some(n)));
    }
    let r = srv.post("/v1/verifications", json!({ "to": ALICE })).await;
    assert_eq!(
        (r.status, r.error_code()),
        (429, "too_many_sends"),
        "{:?}",
        r.body
    );
    assert_eq!(r.body["error"]["pending_verification_id"], id.as_str());
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert_eq!(retry, 3600 - 30, "an hour after the first send");
    assert_eq!(srv.sender.sent().len(), 5, "nothing sent on a 429");
    // The pending code still checks.
    let code = srv.sender.last_code(&id).unwrap();
    let r = srv
        .post(
            "/v1/verifications/check",
            json!({ "to": ALICE, "code": code }),
        )
        .await;
    assert_eq!(r.body["status"], "approved");
    // Another destination is not limited.
    let r = srv
        .post("/v1/verifications", json!({ "to": "+12015550199" }))
        .await;
    assert_eq!(r.status, 201);
    srv.shutdown().await;
}

#[tokio::test]
async fn restart_in_the_middle() {
    let dir = temp_dir("restart");
    let clock = ManualClock::new(T0);
    let srv = Server::start(&dir, clock.clone()).await;
    let r = srv.post("/v1/verifications", json!({ "to": ALICE })).await;
    let id = r.body["id"].as_str().unwrap().to_string();
    let code = srv.sender.last_code(&id).unwrap();
    let wrong = if code == "000000" { "000001" } else { "000000" };
    let r = srv
        .post(
            "/v1/verifications/check",
            json!({ "id": id, "code": wrong }),
        )
        .await;
    assert_eq!(r.body["checks_remaining"], 4);
    srv.shutdown().await;

    clock.advance_ms(60_000);
    let srv = Server::start(&dir, clock.clone()).await;
    let r = srv.get(&format!("/v1/verifications/{id}")).await;
    assert_eq!(
        (r.status, r.body["status"].as_str()),
        (200, Some("pending"))
    );
    assert_eq!(r.body["checks_remaining"], 4, "the count survived");
    let r = srv
        .post("/v1/verifications/check", json!({ "id": id, "code": code }))
        .await;
    assert_eq!(
        (r.body["status"].as_str(), r.body["valid"].as_bool()),
        (Some("approved"), Some(true))
    );

    // A repeat start across a restart: the old code cannot be re-sent, so
    // the pending verification is replaced by a new one.
    let r = srv
        .post("/v1/verifications", json!({ "to": "+12015550188" }))
        .await;
    let old = r.body["id"].as_str().unwrap().to_string();
    srv.shutdown().await;
    let srv = Server::start(&dir, clock.clone()).await;
    let r = srv
        .post("/v1/verifications", json!({ "to": "+12015550188" }))
        .await;
    assert_eq!(r.status, 201);
    assert_ne!(r.body["id"], old.as_str());
    let r = srv.get(&format!("/v1/verifications/{old}")).await;
    assert_eq!(r.body["status"], "canceled");
    srv.shutdown().await;
}

#[tokio::test]
async fn api_errors() {
    let dir = temp_dir("errors");
    let srv = Server::start(&dir, ManualClock::new(T0)).await;

    let r = srv
        .request(
            "POST",
            "/v1/verifications",
            Some("{\"to\": "),
            Some(KEY),
            "application/json",
        )
        .await;
    assert_eq!((r.status, r.error_code()), (400, "invalid_json"));
    assert!(r.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("not valid JSON"));

    let body = json!({ "to": ALICE }).to_string();
    let r = srv
        .request(
            "POST",
            "/v1/verifications",
            Some(&body),
            Some("wrong-key-0123456789"),
            "application/json",
        )
        .await;
    assert_eq!((r.status, r.error_code()), (401, "unauthorized"));
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    assert_eq!(r.body["error"]["message"], "invalid API key");
    let r = srv
        .request(
            "POST",
            "/v1/verifications",
            Some(&body),
            None,
            "application/json",
        )
        .await;
    assert_eq!((r.status, r.error_code()), (401, "unauthorized"));
    assert!(r.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("missing API key"));
    assert!(srv.sender.sent().is_empty());

    let r = srv
        .get("/v1/verifications/VE0123456789abcdef0123456789abcdef")
        .await;
    assert_eq!((r.status, r.error_code()), (404, "not_found"));
    let r = srv.get("/v1/verifications/..%2F..%2Fetc").await;
    assert_eq!(r.status, 404);
    let r = srv.get("/v1/nothing-here").await;
    assert_eq!((r.status, r.error_code()), (404, "not_found"));
    let r = srv
        .request("DELETE", "/v1/verifications", None, Some(KEY), "")
        .await;
    assert_eq!((r.status, r.error_code()), (405, "method_not_allowed"));

    let big = json!({ "to": ALICE, "channel": "x".repeat(2000) }).to_string();
    let r = srv
        .request(
            "POST",
            "/v1/verifications",
            Some(&big),
            Some(KEY),
            "application/json",
        )
        .await;
    assert_eq!((r.status, r.error_code()), (413, "payload_too_large"));

    let r = srv
        .request(
            "POST",
            "/v1/verifications",
            Some(&body),
            Some(KEY),
            "text/plain",
        )
        .await;
    assert_eq!((r.status, r.error_code()), (415, "unsupported_media_type"));

    for (body, code) in [
        (json!({ "to": "not a number" }), "invalid_destination"),
        (
            json!({ "to": ALICE, "channel": "pigeon" }),
            "invalid_channel",
        ),
        (
            json!({ "to": ALICE, "channel": "voice" }),
            "invalid_channel",
        ),
        (
            json!({ "to": ALICE, "channel": "email" }),
            "invalid_channel",
        ),
        (json!({}), "invalid_request"),
        (
            json!({ "to": ALICE, "participant": "alice" }),
            "invalid_request",
        ),
        (json!({ "to": ALICE, "extra": 1 }), "invalid_request"),
        (json!({ "to": 12 }), "invalid_request"),
        (json!([1, 2]), "invalid_request"),
    ] {
        let r = srv.post("/v1/verifications", body.clone()).await;
        assert_eq!(
            (r.status, r.error_code()),
            (422, code),
            "{body}: {:?}",
            r.body
        );
    }
    for (body, code) in [
        (json!({ "id": "VEx", "code": "12ab56" }), "invalid_code"),
        (json!({ "id": "VEx", "code": "" }), "invalid_code"),
        (json!({ "code": "123456" }), "invalid_request"),
        (json!({ "id": "VEx" }), "invalid_request"),
    ] {
        let r = srv.post("/v1/verifications/check", body.clone()).await;
        assert_eq!(
            (r.status, r.error_code()),
            (422, code),
            "{body}: {:?}",
            r.body
        );
    }
    let r = srv
        .post("/v1/verifications", json!({ "participant": "nobody" }))
        .await;
    assert_eq!((r.status, r.error_code()), (404, "participant_not_found"));

    // Garbage on the socket gets an HTTP error, and the server lives on.
    let r = raw(srv.addr, b"NOT HTTP AT ALL\r\n\r\n").await;
    assert_eq!(r.status, 400);
    assert_eq!(srv.get("/v1/participants").await.status, 200);
    srv.shutdown().await;
}

#[tokio::test]
async fn every_route_is_served_and_guarded() {
    let dir = temp_dir("routes");
    let srv = Server::start(&dir, ManualClock::new(T0)).await;
    for (method, path) in ROUTES {
        let path = path.replace("{id}", "1");
        let r = srv
            .request(
                &method.to_uppercase(),
                &path,
                Some("{}"),
                None,
                "application/json",
            )
            .await;
        assert_eq!(r.status, 401, "{method} {path} is served and needs a key");
    }
    srv.shutdown().await;
}

#[tokio::test]
async fn participants_crud_and_verification_by_participant() {
    let dir = temp_dir("participants");
    let srv = Server::start(&dir, ManualClock::new(T0)).await;

    let r = srv
        .post(
            "/v1/participants",
            json!({
                "name": "Alice Smith",
                "phone": "(201) 555-0123",
                "email": "Alice@Example.com",
                "moderator": true,
                "conferences": ["board"],
                "channels": ["webhook", "email"]
            }),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let id = r.body["id"].as_i64().unwrap();
    assert_eq!(r.body["username"], "alice-smith");
    assert_eq!(r.body["phone"], ALICE);
    assert_eq!(r.body["email"], "alice@example.com");
    assert_eq!(r.body["source"], "api");

    let r = srv
        .post("/v1/participants", json!({ "name": "Bob", "phone": ALICE }))
        .await;
    assert_eq!((r.status, r.error_code()), (409, "conflict"));
    let r = srv
        .post(
            "/v1/participants",
            json!({ "name": "Bob", "phone": "+12015550124", "conferences": ["nope"] }),
        )
        .await;
    assert_eq!((r.status, r.error_code()), (422, "invalid_request"));
    assert!(r.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("no conference named `nope`"));
    let r = srv
        .post(
            "/v1/participants",
            json!({ "name": "Bob", "phone": "+12015550124", "channels": ["voice"] }),
        )
        .await;
    assert_eq!(r.status, 422);
    let r = srv
        .post("/v1/participants", json!({ "phone": "+12015550124" }))
        .await;
    assert_eq!(r.status, 422);

    let r = srv.get("/v1/participants").await;
    assert_eq!(r.body["participants"].as_array().unwrap().len(), 1);
    let r = srv.get(&format!("/v1/participants/{id}")).await;
    assert_eq!(
        (r.status, r.body["name"].as_str()),
        (200, Some("Alice Smith"))
    );
    for bad in ["999", "abc", "-1"] {
        let r = srv.get(&format!("/v1/participants/{bad}")).await;
        assert_eq!((r.status, r.error_code()), (404, "not_found"), "{bad}");
    }

    // A verification by username: webhook fails, email (the fallback)
    // delivers; both attempts were made.
    srv.sender.fail(ChannelKind::Webhook);
    let r = srv
        .post("/v1/verifications", json!({ "participant": "Alice-Smith" }))
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    assert_eq!(r.body["channel"], "email");
    assert_eq!(r.body["participant_id"], id);
    let sent = srv.sender.sent();
    assert_eq!(
        sent.iter().map(|s| s.channel).collect::<Vec<_>>(),
        vec![ChannelKind::Webhook, ChannelKind::Email]
    );
    assert_eq!(sent[1].to_email.as_deref(), Some("alice@example.com"));
    assert_eq!(sent[1].participant_name.as_deref(), Some("Alice Smith"));
    // Only webhook asked for, and it fails: 502 naming the verification.
    let r = srv
        .post(
            "/v1/verifications",
            json!({ "to": "+12015550155", "channel": "webhook" }),
        )
        .await;
    assert_eq!(
        (r.status, r.error_code()),
        (502, "delivery_failed"),
        "{:?}",
        r.body
    );
    assert!(r.body["error"]["verification_id"]
        .as_str()
        .unwrap()
        .starts_with("VE"));

    let put = json!({ "name": "Alice B. Smith", "phone": ALICE, "conferences": ["*"], "channels": ["log"] });
    let r = srv
        .request(
            "PUT",
            &format!("/v1/participants/{id}"),
            Some(&put.to_string()),
            Some(KEY),
            "application/json",
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["name"], "Alice B. Smith");
    assert_eq!(r.body["username"], "alice-smith", "kept");
    assert_eq!(r.body["channels"], json!(["log"]));
    assert_eq!(r.body["email"], Value::Null);

    let r = srv
        .request(
            "DELETE",
            &format!("/v1/participants/{id}"),
            None,
            Some(KEY),
            "",
        )
        .await;
    assert_eq!(r.status, 204);
    let r = srv
        .request(
            "DELETE",
            &format!("/v1/participants/{id}"),
            None,
            Some(KEY),
            "",
        )
        .await;
    assert_eq!(r.status, 404);
    srv.shutdown().await;
}

// ----------------------------------------------------------------------
// The server's own defences: slow clients, connection caps, request rates.

const OTHER_CLIENT: &str = "127.0.0.2";

fn ip(s: &str) -> std::net::IpAddr {
    s.parse().unwrap()
}

/// A GET of the participant list with the key, as bytes.
fn list_request(addr: SocketAddr) -> String {
    format!(
        "GET /v1/participants HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {KEY}\r\nConnection: close\r\n\r\n"
    )
}

/// A client that sends its request head one byte every 100 ms (a long
/// header that never ends) until the server closes the connection.
/// Returns how long the connection lived, or None if it outlived `give_up`.
async fn slowloris(
    source: std::net::IpAddr,
    addr: SocketAddr,
    give_up: Duration,
) -> Option<Duration> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = common::http::connect_from(source, addr).await;
    let started = std::time::Instant::now();
    let (mut rd, mut wr) = s.into_split();
    let head = format!("GET /v1/participants HTTP/1.1\r\nHost: {addr}\r\nX-Slow: ");
    let writer = async move {
        let bytes = head.into_bytes().into_iter().chain(std::iter::repeat(b'a'));
        for b in bytes {
            if wr.write_all(&[b]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let closed = async move {
        let mut buf = [0u8; 256];
        // EOF or reset: closed either way.
        while let Ok(n) = rd.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    };
    tokio::select! {
        () = writer => None,
        () = closed => Some(started.elapsed()),
        () = tokio::time::sleep(give_up) => None,
    }
}

#[tokio::test]
async fn slow_clients_are_closed_and_other_clients_still_served() {
    let dir = temp_dir("slowloris");
    let header_timeout = Duration::from_secs(3);
    let srv = Server::start_with(
        &dir,
        ManualClock::new(T0),
        HttpLimits {
            header_timeout,
            max_connections: 64,
            max_connections_per_address: 10,
            rate: None,
            join_rate: None,
            ..HttpLimits::default()
        },
    )
    .await;
    let addr = srv.addr;

    // Ten connections from one address, each trickling its headers.
    let slow: Vec<_> = (0..10)
        .map(|_| tokio::spawn(slowloris(ip("127.0.0.1"), addr, Duration::from_secs(60))))
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;

    // An eleventh from that address is over its cap: closed, unanswered,
    // even with a complete request.
    let mut s = common::http::connect_from(ip("127.0.0.1"), addr).await;
    use tokio::io::AsyncWriteExt;
    let _ = s.write_all(list_request(addr).as_bytes()).await;
    let got = common::http::read_until_closed(&mut s, Duration::from_secs(20))
        .await
        .expect("the connection over the cap is closed");
    assert!(
        got.is_empty(),
        "no answer over the cap: {:?}",
        String::from_utf8_lossy(&got)
    );

    // Meanwhile another client is served as usual.
    let r = common::http::exchange_from(
        ip(OTHER_CLIENT),
        addr,
        list_request(addr).as_bytes(),
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);

    // A connection that says nothing at all is closed just the same.
    let mut silent = common::http::connect_from(ip("127.0.0.3"), addr).await;
    let started = std::time::Instant::now();
    let got = common::http::read_until_closed(&mut silent, Duration::from_secs(60))
        .await
        .expect("a silent connection is closed within a minute");
    assert!(got.is_empty());
    assert!(started.elapsed() >= header_timeout - Duration::from_millis(500));

    // Each slow connection is closed once its headers are overdue (not
    // before: the timeout is a lower bound, a loaded machine only delays).
    for t in slow {
        let lived = t
            .await
            .unwrap()
            .expect("a slow client is closed within a minute");
        assert!(
            lived >= header_timeout - Duration::from_millis(500),
            "closed after {lived:?}, before the header timeout"
        );
    }
    // Their places are free again.
    let mut served = None;
    for _ in 0..50 {
        let mut s = common::http::connect_from(ip("127.0.0.1"), addr).await;
        let _ = s.write_all(list_request(addr).as_bytes()).await;
        let got = common::http::read_until_closed(&mut s, Duration::from_secs(10))
            .await
            .unwrap_or_default();
        if !got.is_empty() {
            served = Some(common::http::parse(got));
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(served.map(|r| r.status), Some(200));
    srv.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn connections_over_the_total_cap_are_closed() {
    let dir = temp_dir("conncap");
    let srv = Server::start_with(
        &dir,
        ManualClock::new(T0),
        HttpLimits {
            header_timeout: Duration::from_secs(60),
            max_connections: 4,
            max_connections_per_address: 4,
            rate: None,
            join_rate: None,
            ..HttpLimits::default()
        },
    )
    .await;
    let addr = srv.addr;
    use tokio::io::AsyncWriteExt;
    // Four idle connections fill the server.
    let mut idle = Vec::new();
    for _ in 0..4 {
        idle.push(common::http::connect_from(ip("127.0.0.1"), addr).await);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Anyone else is turned away.
    let mut s = common::http::connect_from(ip(OTHER_CLIENT), addr).await;
    let _ = s.write_all(list_request(addr).as_bytes()).await;
    let got = common::http::read_until_closed(&mut s, Duration::from_secs(20))
        .await
        .expect("closed at once");
    assert!(got.is_empty(), "{:?}", String::from_utf8_lossy(&got));
    // When they go, there is room again.
    drop(idle);
    let mut served = None;
    for _ in 0..50 {
        let mut s = common::http::connect_from(ip(OTHER_CLIENT), addr).await;
        let _ = s.write_all(list_request(addr).as_bytes()).await;
        let got = common::http::read_until_closed(&mut s, Duration::from_secs(10))
            .await
            .unwrap_or_default();
        if !got.is_empty() {
            served = Some(common::http::parse(got));
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(served.map(|r| r.status), Some(200));
    srv.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_body_that_trickles_in_times_out() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = temp_dir("trickle");
    let srv = Server::start_with(
        &dir,
        ManualClock::new(T0),
        HttpLimits {
            body_timeout: Duration::from_secs(1),
            rate: None,
            join_rate: None,
            ..HttpLimits::default()
        },
    )
    .await;
    let addr = srv.addr;
    let s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut rd, mut wr) = s.into_split();
    // Headers at once (keep-alive: the server decides to close), then a
    // 1000-byte body one byte every 100 ms.
    let head = format!(
        "POST /v1/verifications HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {KEY}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
    );
    wr.write_all(head.as_bytes()).await.unwrap();
    let trickle = tokio::spawn(async move {
        for _ in 0..1000 {
            if wr.write_all(b" ").await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), rd.read_to_end(&mut buf))
        .await
        .expect("answered and closed long before the body would be complete")
        .unwrap();
    trickle.abort();
    let r = common::http::parse(buf);
    assert_eq!(r.status, 408, "{}", r.body);
    let body: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(body["error"]["code"], "request_timeout");
    assert!(r
        .headers
        .iter()
        .any(|(n, v)| n.eq_ignore_ascii_case("connection") && v == "close"));
    assert!(srv.sender.sent().is_empty());
    srv.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn requests_over_the_rate_limit_get_429_per_client_address() {
    let dir = temp_dir("ratelimit");
    // Five at once, then one a minute: no refill during the test.
    let limits = HttpLimits {
        rate: Some(pinbridge::config::otp::RateLimit {
            per_minute: 1,
            burst: 5,
        }),
        ..HttpLimits::default()
    };
    let srv = Server::start_with(&dir, ManualClock::new(T0), limits.clone()).await;
    let addr = srv.addr;
    let from = |source: &'static str| {
        let req = list_request(addr);
        async move {
            common::http::exchange_from(ip(source), addr, req.as_bytes(), Duration::from_secs(10))
                .await
        }
    };
    for n in 1..=5 {
        assert_eq!(from("127.0.0.1").await.status, 200, "request {n}");
    }
    let r = from("127.0.0.1").await;
    assert_eq!(r.status, 429, "{}", r.body);
    let body: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(body["error"]["code"], "rate_limited");
    let retry: u64 = r
        .headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("retry-after"))
        .map(|(_, v)| v.parse().unwrap())
        .expect("Retry-After");
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(body["error"]["retry_after"], retry);
    // Unauthenticated requests are counted too (no free key guessing)...
    let r = common::http::exchange_from(
        ip("127.0.0.1"),
        addr,
        format!("GET /v1/participants HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")
            .as_bytes(),
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(r.status, 429);
    // ...and another client address has its own bucket.
    assert_eq!(from(OTHER_CLIENT).await.status, 200);
    srv.shutdown().await;

    // Behind a trusted reverse proxy, the client is the one it names.
    let srv = Server::start_with(
        &dir,
        ManualClock::new(T0),
        HttpLimits {
            trusted_proxies: vec![ip("127.0.0.1")],
            ..limits
        },
    )
    .await;
    let addr = srv.addr;
    let via = |source: &'static str, client: &'static str| {
        let req = format!(
            "GET /v1/participants HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {KEY}\r\nX-Forwarded-For: {client}\r\nConnection: close\r\n\r\n"
        );
        async move {
            common::http::exchange_from(ip(source), addr, req.as_bytes(), Duration::from_secs(10))
                .await
                .status
        }
    };
    for _ in 0..5 {
        assert_eq!(via("127.0.0.1", "203.0.113.1").await, 200);
    }
    assert_eq!(via("127.0.0.1", "203.0.113.1").await, 429);
    assert_eq!(via("127.0.0.1", "203.0.113.2").await, 200, "another client");
    // From an address that is not a trusted proxy the header means nothing.
    for _ in 0..5 {
        assert_eq!(via(OTHER_CLIENT, "203.0.113.3").await, 200);
    }
    assert_eq!(via(OTHER_CLIENT, "203.0.113.4").await, 429);
    srv.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
