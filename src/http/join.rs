//! The web join page: a participant gives their username, gets a code on
//! their phone, enters it, and receives a one-time dial-in code that the
//! phone IVR accepts in place of the conference PIN.
//!
//! Served at `/` by pinbridge itself when `[http] join_page` is on: one
//! HTML page, one script and one style sheet, embedded in the binary (no
//! build step, nothing loaded from elsewhere; the CSP is `default-src
//! 'self'`). The page talks JSON to `/join/api/...`, which needs no API
//! key: it is the public face of the server. What protects it:
//!
//! - the verification service's limits (codes per destination per hour,
//!   checks per code) apply exactly as on the API and the phone;
//! - the state between steps is a signed cookie (see [`session`]):
//!   HttpOnly, SameSite=Strict, Path=/join, holding the verification id,
//!   an expiry and, once the code was right, the participant id; never
//!   the code;
//! - state-changing requests must be `Content-Type: application/json`
//!   (which a cross-site form cannot send without a CORS preflight, and
//!   none is ever granted) and are refused when the browser says they come
//!   from another site (`Sec-Fetch-Site`);
//! - bodies are limited to [`MAX_BODY`] bytes;
//! - the per-client request limits of the HTTP server (`[http]
//!   join_rate_limit_*`, on top of the limit on every route).
//!
//! Nothing is said about a username before its code is checked: a name
//! nobody has gets the same answer as a participant's (the same status,
//! body and cookie, made by the same store work, never waiting for the
//! delivery, which runs in the background), a decoy verification stands in
//! for it so that later checks count down alike, and only a participant is
//! sent a code. Where a code went, names, conferences and whether a
//! participant has an email address are shown only after the code.

mod api;
pub mod session;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

use crate::config::otp::ConferenceFlow;
use crate::config::Config;
use crate::ivr::CodeLength;
use crate::verify::dialin::DIALIN_DIGITS;
use crate::verify::key::ServerKey;
use crate::verify::service::VerifyService;
use session::SessionKeys;

/// Largest request body the join API reads (the largest real one is a
/// conference name).
pub const MAX_BODY: usize = 1024;

/// Every join route as (method, path).
pub const JOIN_ROUTES: &[(&str, &str)] = &[
    ("get", "/"),
    ("get", "/join/static/join.js"),
    ("get", "/join/static/join.css"),
    ("post", "/join/api/start"),
    ("post", "/join/api/check"),
    ("post", "/join/api/dialin"),
    ("post", "/join/api/reset"),
];

const CSP: &str = "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

const PAGE_HTML: &str = include_str!("static/join.html");
const PAGE_JS: &str = include_str!("static/join.js");
const PAGE_CSS: &str = include_str!("static/join.css");

/// A conference the join page can hand out dial-in codes for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinConference {
    pub name: String,
    /// The number to dial, when the conference has one of its own (not
    /// only the `"*"` catch-all).
    pub number: Option<String>,
    /// The code is keyed followed by `#` (false: the conference takes a
    /// fixed number of digits, exactly a dial-in code's 8).
    pub hash: bool,
}

impl JoinConference {
    /// The conferences whose phone flow takes a dial-in code: those that
    /// ask for a PIN (`pin` and `pin+otp`; an `otp`-only conference asks
    /// for no PIN to put it in place of), and whose PIN entry can hold 8
    /// digits (ended by `#`, or exactly 8).
    pub fn from_config(config: &Config) -> Vec<JoinConference> {
        config
            .conferences
            .iter()
            .filter(|c| matches!(c.flow, ConferenceFlow::Pin | ConferenceFlow::PinOtp))
            .filter_map(|c| {
                let hash = match c.gather.length {
                    CodeLength::HashTerminated { max } if max >= DIALIN_DIGITS => true,
                    CodeLength::Fixed(n) if n == DIALIN_DIGITS => false,
                    _ => return None,
                };
                Some(JoinConference {
                    name: c.name.clone(),
                    number: c.numbers.iter().find(|n| n.as_str() != "*").cloned(),
                    hash,
                })
            })
            .collect()
    }
}

/// What the join handlers share.
#[derive(Clone)]
pub struct JoinState {
    service: VerifyService,
    sessions: Arc<SessionKeys>,
    conferences: Arc<Vec<JoinConference>>,
    dialin_ttl_ms: i64,
}

impl JoinState {
    /// `cookie_key` signs the sessions (from `[http] cookie_key_file`).
    pub fn new(
        service: VerifyService,
        cookie_key: ServerKey,
        conferences: Vec<JoinConference>,
        dialin_ttl: std::time::Duration,
    ) -> JoinState {
        JoinState {
            service,
            sessions: Arc::new(SessionKeys::new(cookie_key)),
            conferences: Arc::new(conferences),
            dialin_ttl_ms: i64::try_from(dialin_ttl.as_millis()).unwrap_or(i64::MAX),
        }
    }
}

/// The page and its API. It has no fallback of its own, so it merges into
/// the API router (whose JSON 404 then covers unknown paths).
pub fn router(state: JoinState, max_body_bytes: usize) -> Router {
    let api = Router::new()
        .route("/join/api/start", post(api::start))
        .route("/join/api/check", post(api::check))
        .route("/join/api/dialin", post(api::dialin))
        .route("/join/api/reset", post(api::reset))
        .route_layer(axum::middleware::from_fn(api::same_origin_only))
        .layer(DefaultBodyLimit::max(max_body_bytes.min(MAX_BODY)))
        .with_state(state);
    Router::new()
        .route("/", get(page))
        .route("/join/static/join.js", get(script))
        .route("/join/static/join.css", get(style))
        .merge(api)
        .method_not_allowed_fallback(api::method_not_allowed)
        .layer(axum::middleware::from_fn(security_headers))
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

async fn page() -> Response {
    asset("text/html; charset=utf-8", PAGE_HTML)
}

async fn script() -> Response {
    asset("text/javascript; charset=utf-8", PAGE_JS)
}

async fn style() -> Response {
    asset("text/css; charset=utf-8", PAGE_CSS)
}

/// On every join response: nothing but our own origin may load anything,
/// no framing, no sniffing, no referrer; API answers are never cached.
async fn security_headers(req: Request, next: Next) -> Response {
    let is_api = req.uri().path().starts_with("/join/api/");
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if is_api {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_nothing_from_elsewhere_and_runs_no_inline_code() {
        // The CSP would block these anyway; keep the page honest.
        for needle in [
            "http://", "https://", "<style", "style=", "onclick", "onsubmit",
        ] {
            assert!(!PAGE_HTML.contains(needle), "join.html has `{needle}`");
        }
        assert!(PAGE_HTML.contains("src=\"/join/static/join.js\""));
        assert!(PAGE_HTML.contains("href=\"/join/static/join.css\""));
        // Exactly one <script>, the external one.
        assert_eq!(PAGE_HTML.matches("<script").count(), 1);
        for needle in ["http://", "https://", "eval(", "innerHTML"] {
            assert!(!PAGE_JS.contains(needle), "join.js has `{needle}`");
        }
    }

    #[test]
    fn conferences_that_take_a_dialin_code() {
        let toml = r#"
[[conference]]
name = "board"
numbers = ["100", "*"]
pin = "1234"
[[conference]]
name = "short"
numbers = ["200"]
pin = "1234"
pin_length = 4
[[conference]]
name = "eight"
numbers = ["*"]
pin = "12345678"
pin_length = 8
[[conference]]
name = "phone-only"
numbers = ["300"]
flow = "otp"
[delivery.log]
enabled = true
"#;
        let config = Config::parse(toml, "t.toml", std::path::Path::new("."))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            JoinConference::from_config(&config),
            vec![
                JoinConference {
                    name: "board".into(),
                    number: Some("100".into()),
                    hash: true
                },
                JoinConference {
                    name: "eight".into(),
                    number: None,
                    hash: false
                },
            ]
        );
    }
}
