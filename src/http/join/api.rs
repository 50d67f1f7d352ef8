//! `/join/api/...`: the steps of the join page.
//!
//! - `start {username}`: sends a code to the participant (answered alike
//!   for a name nobody has, see [`start`]); the session cookie now names
//!   the verification.
//! - `check {code}`: checks it; on success the session is verified and the
//!   answer lists the conferences (with a dial-in code at once when there
//!   is only one).
//! - `dialin {conference}`: a one-time dial-in code for that conference.
//! - `reset {}`: forgets the session.
//!
//! Every failure is a JSON error whose message is meant to be shown to the
//! participant as it is.

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::session::{clear_cookie, set_cookie, Session, SessionError, Stage};
use super::{JoinConference, JoinState};
use crate::http::error::{wait_text, ApiError};
use crate::http::extract::ApiJson;
use crate::verify::clock::rfc3339;
use crate::verify::directory::{validate_username, Participant};
use crate::verify::otp::{ceil_secs, Status, Verification};
use crate::verify::service::{Channels, CheckBy, ServiceError, Target};

/// Why a join step failed: each is one status, one stable `code` and a
/// message for the participant.
#[derive(Debug)]
pub(super) enum JoinError {
    UsernameRequired,
    /// Not even the form of a username (a rule, not a fact about the
    /// directory).
    InvalidUsername,
    NoSession,
    SessionExpired,
    NotVerified,
    AlreadyVerified,
    InvalidCode {
        length: u8,
    },
    WrongCode {
        attempts_left: u32,
    },
    TooManyAttempts,
    CodeExpired,
    CodeClosed,
    TooManySends {
        retry_after_secs: u64,
        /// A code is still pending for this username: the session now
        /// points at it (this `Set-Cookie`).
        pending: Option<String>,
    },
    NoConference,
    UnknownConference,
    CrossSite,
    Internal(String),
}

impl JoinError {
    /// Ends the session: the participant has to start again.
    fn ends_session(&self) -> bool {
        matches!(
            self,
            JoinError::NoSession
                | JoinError::SessionExpired
                | JoinError::TooManyAttempts
                | JoinError::CodeExpired
                | JoinError::CodeClosed
        )
    }

    fn api_error(self) -> ApiError {
        use StatusCode as S;
        let e = |status, code, message: &str| ApiError::new(status, code, message);
        match self {
            JoinError::UsernameRequired => {
                e(S::UNPROCESSABLE_ENTITY, "username_required", "Enter your username.")
            }
            JoinError::InvalidUsername => e(
                S::UNPROCESSABLE_ENTITY,
                "invalid_username",
                "A username has only letters, digits, dots, dashes and underscores. Check the spelling.",
            ),
            JoinError::NoSession => e(
                S::UNAUTHORIZED,
                "no_session",
                "Your session was not found. Enter your username to start again.",
            ),
            JoinError::SessionExpired => e(
                S::UNAUTHORIZED,
                "session_expired",
                "Your session has expired. Enter your username to start again.",
            ),
            JoinError::NotVerified => e(
                S::FORBIDDEN,
                "not_verified",
                "Enter the code you received first.",
            ),
            JoinError::AlreadyVerified => e(
                S::CONFLICT,
                "already_verified",
                "You are already verified: choose a conference to get a dial-in code.",
            ),
            JoinError::InvalidCode { length } => e(
                S::UNPROCESSABLE_ENTITY,
                "invalid_code",
                &format!("Enter the {length}-digit code from the message."),
            )
            .with("code_length", Value::from(length)),
            JoinError::WrongCode { attempts_left } => e(
                S::UNPROCESSABLE_ENTITY,
                "wrong_code",
                &format!(
                    "That code is not correct. {attempts_left} attempt{} left.",
                    if attempts_left == 1 { "" } else { "s" }
                ),
            )
            .with("attempts_left", Value::from(attempts_left)),
            JoinError::TooManyAttempts => e(
                S::FORBIDDEN,
                "too_many_attempts",
                "Too many wrong codes. Enter your username to get a new code.",
            ),
            JoinError::CodeExpired => e(
                S::GONE,
                "code_expired",
                "The code has expired. Enter your username to get a new one.",
            ),
            JoinError::CodeClosed => e(
                S::CONFLICT,
                "code_closed",
                "That code can no longer be used. Enter your username to get a new one.",
            ),
            JoinError::TooManySends {
                retry_after_secs,
                pending,
            } => {
                let mut message = format!(
                    "Too many codes were asked for with this username. Try again in {}.",
                    wait_text(retry_after_secs)
                );
                if pending.is_some() {
                    message.push_str(" If you already have a code, you can enter it now.");
                }
                e(S::TOO_MANY_REQUESTS, "too_many_sends", &message)
                    .with("retry_after", Value::from(retry_after_secs))
                    .with("code_pending", Value::from(pending.is_some()))
            }
            JoinError::NoConference => e(
                S::FORBIDDEN,
                "no_conference",
                "You are verified, but there is no conference you can join with a dial-in code. Contact the organizer.",
            ),
            JoinError::UnknownConference => e(
                S::UNPROCESSABLE_ENTITY,
                "unknown_conference",
                "Choose one of the conferences listed.",
            ),
            JoinError::CrossSite => e(
                S::FORBIDDEN,
                "cross_site",
                "Requests from other sites are refused.",
            ),
            JoinError::Internal(detail) => ApiError::internal(detail),
        }
    }
}

impl IntoResponse for JoinError {
    fn into_response(self) -> Response {
        let clear = self.ends_session();
        let (cookie, retry) = match &self {
            JoinError::TooManySends {
                retry_after_secs,
                pending,
            } => (pending.clone(), Some(*retry_after_secs)),
            _ => (clear.then(clear_cookie), None),
        };
        let mut resp = self.api_error().into_response();
        if let Some(c) = cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
            resp.headers_mut().append(header::SET_COOKIE, c);
        }
        if let Some(v) = retry.and_then(|s| HeaderValue::from_str(&s.to_string()).ok()) {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        resp
    }
}

/// For a failure that is ours, not the participant's; the detail goes to
/// the log only.
impl From<ServiceError> for JoinError {
    fn from(e: ServiceError) -> JoinError {
        match e {
            ServiceError::Internal(d) => JoinError::Internal(d),
            other => JoinError::Internal(other.to_string()),
        }
    }
}

/// Refuses a request the browser says comes from another site. Together
/// with SameSite=Strict and the JSON content type this is the CSRF guard;
/// clients that send no `Sec-Fetch-Site` (curl, old browsers) rely on the
/// other two.
pub(super) async fn same_origin_only(req: Request, next: Next) -> Response {
    let site = req
        .headers()
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .map(str::to_ascii_lowercase);
    match site.as_deref() {
        None | Some("same-origin") | Some("none") => next.run(req).await,
        Some(_) => JoinError::CrossSite.into_response(),
    }
}

pub(super) async fn method_not_allowed() -> Response {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not take that method",
    )
    .into_response()
}

/// Was the page reached over HTTPS (through a TLS-terminating proxy)? Then
/// the cookie is marked `Secure`. A client faking the header only makes
/// its own cookie stricter.
fn over_https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"))
}

fn session(state: &JoinState, headers: &HeaderMap) -> Result<Session, JoinError> {
    let now = state.service.now_ms();
    let values = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok());
    state
        .sessions
        .from_cookie_headers(values, now)
        .map_err(|e| match e {
            SessionError::Missing | SessionError::Invalid => JoinError::NoSession,
            // A code-stage session lives exactly as long as its code.
            SessionError::Expired(Stage::CodeSent) => JoinError::CodeExpired,
            SessionError::Expired(Stage::Verified) => JoinError::SessionExpired,
        })
}

fn cookie_for(state: &JoinState, s: &Session, secure: bool) -> String {
    let now = state.service.now_ms();
    let max_age = ceil_secs(s.expires_ms.saturating_sub(now));
    set_cookie(&state.sessions.encode(s), max_age, secure)
}

fn json_with_cookie(body: Value, cookie: Option<String>) -> Response {
    let mut resp = (StatusCode::OK, Json(body)).into_response();
    if let Some(c) = cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        resp.headers_mut().append(header::SET_COOKIE, c);
    }
    resp
}

fn conference_json(c: &JoinConference) -> Value {
    json!({ "name": c.name, "number": c.number, "hash": c.hash })
}

/// The conferences this participant may get a dial-in code for.
fn conferences_for<'a>(state: &'a JoinState, p: &Participant) -> Vec<&'a JoinConference> {
    state
        .conferences
        .iter()
        .filter(|c| p.may_join(&c.name))
        .collect()
}

async fn participant(state: &JoinState, id: i64) -> Result<Participant, JoinError> {
    // Removed since the session began: the session is over.
    state
        .service
        .participant(id)
        .await?
        .ok_or(JoinError::NoSession)
}

async fn issue(state: &JoinState, p: &Participant, c: &JoinConference) -> Result<Value, JoinError> {
    let (code, expires_ms) = state
        .service
        .issue_dialin(p.id, c.name.clone(), state.dialin_ttl_ms)
        .await?;
    tracing::info!(participant = %p.username, conference = %c.name, "join page: dial-in code issued");
    Ok(json!({
        "code": code.expose(),
        "conference": c.name,
        "number": c.number,
        "hash": c.hash,
        "expires_in": ceil_secs(expires_ms.saturating_sub(state.service.now_ms())),
        "expires_at": rfc3339(expires_ms),
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct StartBody {
    username: String,
}

/// Starts a verification for a username, known or not, the same way.
///
/// A participant's code is sent in the background; a username nobody has
/// (or a participant no channel can reach) gets a decoy verification
/// whose code nobody receives. Either way the store does the same work,
/// the answer (status, body, cookie) is made the same way and never waits
/// for a delivery, and later checks count down the same: the page tells
/// no one whether a username exists. Returns the verification, or why
/// none could be started, and the participant it is for.
async fn start_for(
    state: &JoinState,
    username: String,
) -> Result<(Result<Verification, ServiceError>, Option<i64>), JoinError> {
    let Some(p) = state
        .service
        .participant_by_username(username.clone())
        .await?
    else {
        tracing::debug!("join page: unknown username");
        return Ok((state.service.start_decoy(username).await, None));
    };
    let (id, name) = (p.id, p.username.clone());
    let started = state
        .service
        .start_detached(Target::Participant(Box::new(p)), Channels::default())
        .await;
    match started {
        Err(
            e @ (ServiceError::NoChannel
            | ServiceError::ChannelNotEnabled(_)
            | ServiceError::ChannelCannotReach(..)
            | ServiceError::BadDestination(_)),
        ) => {
            tracing::warn!(participant = %name, error = %e, "join page: no way to send this participant a code");
            Ok((state.service.start_decoy(username).await, None))
        }
        Ok(v) => {
            tracing::info!(participant = %name, verification = %v.id, "join page: code sent");
            Ok((Ok(v), Some(id)))
        }
        Err(e) => Ok((Err(e), Some(id))),
    }
}

/// The session of the code stage. It names only the verification (which
/// names the participant), so a cookie looks the same whether or not the
/// username exists.
fn code_session(v: &Verification) -> Session {
    Session {
        stage: Stage::CodeSent,
        participant_id: 0,
        verification_id: v.id.clone(),
        expires_ms: v.expires_ms,
    }
}

pub(super) async fn start(
    State(state): State<JoinState>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<StartBody>,
) -> Result<Response, JoinError> {
    let typed = body.username.trim();
    if typed.is_empty() {
        return Err(JoinError::UsernameRequired);
    }
    let username = validate_username(typed).map_err(|_| JoinError::InvalidUsername)?;
    let secure = over_https(&headers);
    let (started, participant_id) = start_for(&state, username).await?;
    let v = match started {
        Ok(v) => v,
        Err(ServiceError::TooManySends {
            pending,
            retry_after_ms,
        }) => {
            // The code already sent still works: let the page take it.
            let pending = pending
                .filter(|v| v.participant_id == participant_id && v.status == Status::Pending)
                .map(|v| cookie_for(&state, &code_session(&v), secure));
            return Err(JoinError::TooManySends {
                retry_after_secs: u64::try_from(ceil_secs(retry_after_ms)).unwrap_or(1),
                pending,
            });
        }
        Err(e) => return Err(e.into()),
    };
    let body = json!({
        "code_length": state.service.policy().code_length,
        "expires_in": ceil_secs(v.expires_ms.saturating_sub(state.service.now_ms())),
    });
    let cookie = cookie_for(&state, &code_session(&v), secure);
    Ok(json_with_cookie(body, Some(cookie)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CheckBody {
    code: String,
}

pub(super) async fn check(
    State(state): State<JoinState>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<CheckBody>,
) -> Result<Response, JoinError> {
    let s = session(&state, &headers)?;
    if s.stage == Stage::Verified {
        return Err(JoinError::AlreadyVerified);
    }
    let length = state.service.policy().code_length;
    // Blanks a person might type ("123 456") are dropped; anything else
    // that is not the right number of digits costs no attempt.
    let code: String = body.code.chars().filter(|c| !c.is_whitespace()).collect();
    if code.len() != usize::from(length) || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(JoinError::InvalidCode { length });
    }
    let out = match state
        .service
        .check(CheckBy::Id(s.verification_id.clone()), code)
        .await
    {
        Ok(o) => o,
        Err(ServiceError::NotFound) => return Err(JoinError::NoSession),
        Err(e) => return Err(e.into()),
    };
    let v = &out.verification;
    // A code-stage cookie from before names the participant too; it must
    // agree with the verification.
    if s.participant_id != 0 && v.participant_id != Some(s.participant_id) {
        return Err(JoinError::NoSession);
    }
    match (v.status, out.valid) {
        (Status::Approved, true) => {}
        (Status::Pending, _) => {
            tracing::info!(verification = %v.id, attempts_left = out.checks_remaining, "join page: wrong code");
            return Err(JoinError::WrongCode {
                attempts_left: out.checks_remaining,
            });
        }
        (Status::MaxAttemptsReached, _) => {
            tracing::info!(verification = %v.id, "join page: too many wrong codes");
            return Err(JoinError::TooManyAttempts);
        }
        (Status::Expired, _) => return Err(JoinError::CodeExpired),
        (Status::Approved, false) | (Status::Canceled, _) => return Err(JoinError::CodeClosed),
    }
    // A decoy names nobody: its code was never sent, so this is a guess
    // that happened to hit. It admits no one.
    let Some(participant_id) = v.participant_id else {
        tracing::warn!(verification = %v.id, "join page: a decoy code was guessed");
        return Err(JoinError::CodeClosed);
    };
    let p = participant(&state, participant_id).await?;
    let conferences = conferences_for(&state, &p);
    tracing::info!(participant = %p.username, verification = %v.id, "join page: participant verified");
    if conferences.is_empty() {
        return Err(JoinError::NoConference);
    }
    let dialin = match conferences.as_slice() {
        [only] => Some(issue(&state, &p, only).await?),
        _ => None,
    };
    let verified = Session {
        stage: Stage::Verified,
        participant_id: p.id,
        verification_id: s.verification_id,
        expires_ms: state
            .service
            .now_ms()
            .saturating_add(state.service.policy().ttl_ms),
    };
    let body = json!({
        "verified": true,
        "name": p.name,
        "conferences": conferences.iter().map(|c| conference_json(c)).collect::<Vec<_>>(),
        "dialin": dialin,
    });
    let cookie = cookie_for(&state, &verified, over_https(&headers));
    Ok(json_with_cookie(body, Some(cookie)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DialinBody {
    conference: String,
}

pub(super) async fn dialin(
    State(state): State<JoinState>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<DialinBody>,
) -> Result<Response, JoinError> {
    let s = session(&state, &headers)?;
    if s.stage != Stage::Verified {
        return Err(JoinError::NotVerified);
    }
    let p = participant(&state, s.participant_id).await?;
    let conferences = conferences_for(&state, &p);
    let Some(c) = conferences.iter().find(|c| c.name == body.conference) else {
        return Err(if conferences.is_empty() {
            JoinError::NoConference
        } else {
            JoinError::UnknownConference
        });
    };
    let dialin = issue(&state, &p, c).await?;
    Ok(json_with_cookie(json!({ "dialin": dialin }), None))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ResetBody {}

pub(super) async fn reset(ApiJson(_): ApiJson<ResetBody>) -> Response {
    let mut resp = StatusCode::NO_CONTENT.into_response();
    if let Ok(c) = HeaderValue::from_str(&clear_cookie()) {
        resp.headers_mut().append(header::SET_COOKIE, c);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_in_words() {
        assert_eq!(wait_text(0), "1 second");
        assert_eq!(wait_text(30), "30 seconds");
        assert_eq!(wait_text(60), "1 minute");
        assert_eq!(wait_text(61), "2 minutes");
        assert_eq!(wait_text(3570), "60 minutes");
        assert_eq!(wait_text(3600), "1 hour");
        assert_eq!(wait_text(7201), "3 hours");
    }

    #[test]
    fn errors_that_end_the_session_clear_the_cookie() {
        let r = JoinError::CodeExpired.into_response();
        assert_eq!(r.status(), StatusCode::GONE);
        let c = r.headers().get(header::SET_COOKIE).unwrap();
        assert!(c.to_str().unwrap().contains("Max-Age=0"));
        let r = JoinError::WrongCode { attempts_left: 2 }.into_response();
        assert!(r.headers().get(header::SET_COOKIE).is_none());
        let r = JoinError::TooManySends {
            retry_after_secs: 90,
            pending: Some("pb_join=x".into()),
        }
        .into_response();
        assert_eq!(r.headers().get(header::RETRY_AFTER).unwrap(), "90");
        assert_eq!(r.headers().get(header::SET_COOKIE).unwrap(), "pb_join=x");
    }
}
