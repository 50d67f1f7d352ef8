//! `/join/api/...`: the steps of the join page.
//!
//! - `start {username}`: sends a code to the participant; the session
//!   cookie now names the verification.
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
use crate::config::otp::ChannelKind;
use crate::http::error::ApiError;
use crate::http::extract::ApiJson;
use crate::verify::clock::rfc3339;
use crate::verify::directory::{validate_username, Participant};
use crate::verify::otp::{ceil_secs, mask, Status, Verification};
use crate::verify::service::{Channels, CheckBy, ServiceError, Target};

/// Why a join step failed: each is one status, one stable `code` and a
/// message for the participant.
#[derive(Debug)]
pub enum JoinError {
    UsernameRequired,
    UnknownUsername,
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
        /// A code is still pending for this participant: the session now
        /// points at it (this `Set-Cookie`), and it went to `to`.
        pending: Option<(String, String)>,
    },
    DeliveryFailed,
    Unavailable,
    NoConference,
    UnknownConference,
    CrossSite,
    Internal(String),
}

/// "4 minutes", "1 hour", "30 seconds": the wait, rounded up.
fn wait_text(secs: u64) -> String {
    let (n, unit) = if secs < 60 {
        (secs.max(1), "second")
    } else if secs < 3600 {
        (secs.div_ceil(60), "minute")
    } else {
        (secs.div_ceil(3600), "hour")
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
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
            JoinError::UnknownUsername => e(
                S::NOT_FOUND,
                "unknown_username",
                "There is no participant with that username. Check the spelling, or ask the organizer to add you.",
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
                    "Too many codes were sent to your phone. Try again in {}.",
                    wait_text(retry_after_secs)
                );
                if pending.is_some() {
                    message.push_str(" If you already have a code, you can enter it now.");
                }
                let mut err = e(S::TOO_MANY_REQUESTS, "too_many_sends", &message)
                    .with("retry_after", Value::from(retry_after_secs))
                    .with("code_pending", Value::from(pending.is_some()));
                if let Some((_, to)) = pending {
                    err = err.with("to", Value::from(to));
                }
                err
            }
            JoinError::DeliveryFailed => e(
                S::BAD_GATEWAY,
                "delivery_failed",
                "The code could not be sent. Try again in a few minutes, or contact the organizer.",
            ),
            JoinError::Unavailable => e(
                S::SERVICE_UNAVAILABLE,
                "unavailable",
                "Codes cannot be sent to your account. Contact the organizer.",
            ),
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
            } => (
                pending.as_ref().map(|(c, _)| c.clone()),
                Some(*retry_after_secs),
            ),
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
pub async fn same_origin_only(req: Request, next: Next) -> Response {
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

pub async fn method_not_allowed() -> Response {
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

/// How the code travels, in the page's words.
fn via(channel: Option<ChannelKind>) -> &'static str {
    match channel {
        Some(ChannelKind::Webhook) | Some(ChannelKind::SipMessage) | None => "sms",
        Some(ChannelKind::Voice) => "voice",
        Some(ChannelKind::Email) => "email",
        Some(ChannelKind::Log) => "log",
    }
}

/// Where the code went, masked: the email address when it went by email,
/// the phone otherwise.
fn masked_to(p: &Participant, channel: Option<ChannelKind>) -> String {
    match (channel, &p.email) {
        (Some(ChannelKind::Email), Some(e)) => mask(e),
        _ => mask(&p.phone),
    }
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
pub struct StartBody {
    username: String,
}

pub async fn start(
    State(state): State<JoinState>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<StartBody>,
) -> Result<Response, JoinError> {
    let typed = body.username.trim();
    if typed.is_empty() {
        return Err(JoinError::UsernameRequired);
    }
    // A username that cannot exist is simply unknown.
    let username = validate_username(typed).map_err(|_| JoinError::UnknownUsername)?;
    let Some(p) = state.service.participant_by_username(username).await? else {
        tracing::debug!("join page: unknown username");
        return Err(JoinError::UnknownUsername);
    };
    let secure = over_https(&headers);
    let code_length = state.service.policy().code_length;
    let out = state
        .service
        .start(
            Target::Participant(Box::new(p.clone())),
            Channels::default(),
        )
        .await;
    let out = match out {
        Ok(o) => o,
        Err(ServiceError::TooManySends {
            pending,
            retry_after_ms,
        }) => {
            tracing::info!(participant = %p.username, "join page: send limit reached");
            // The code already sent still works: let the page take it.
            let pending = pending
                .filter(|v| v.participant_id == Some(p.id) && v.status == Status::Pending)
                .map(|v| {
                    let s = Session {
                        stage: Stage::CodeSent,
                        participant_id: p.id,
                        verification_id: v.id.clone(),
                        expires_ms: v.expires_ms,
                    };
                    (cookie_for(&state, &s, secure), masked_to(&p, v.channel))
                });
            return Err(JoinError::TooManySends {
                retry_after_secs: u64::try_from(ceil_secs(retry_after_ms)).unwrap_or(1),
                pending,
            });
        }
        Err(ServiceError::DeliveryFailed { .. }) => {
            // The service logged each channel's failure.
            return Err(JoinError::DeliveryFailed);
        }
        Err(
            e @ (ServiceError::NoChannel
            | ServiceError::ChannelNotEnabled(_)
            | ServiceError::ChannelCannotReach(..)
            | ServiceError::BadDestination(_)),
        ) => {
            tracing::warn!(participant = %p.username, error = %e, "join page: no way to send this participant a code");
            return Err(JoinError::Unavailable);
        }
        Err(e) => return Err(e.into()),
    };
    let v: &Verification = &out.verification;
    let s = Session {
        stage: Stage::CodeSent,
        participant_id: p.id,
        verification_id: v.id.clone(),
        expires_ms: v.expires_ms,
    };
    tracing::info!(participant = %p.username, verification = %v.id, channel = out.delivered_via.name(), "join page: code sent");
    let body = json!({
        "to": masked_to(&p, Some(out.delivered_via)),
        "via": via(Some(out.delivered_via)),
        "code_length": code_length,
        "expires_in": ceil_secs(v.expires_ms.saturating_sub(state.service.now_ms())),
    });
    Ok(json_with_cookie(body, Some(cookie_for(&state, &s, secure))))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckBody {
    code: String,
}

pub async fn check(
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
    if v.participant_id.is_some_and(|id| id != s.participant_id) {
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
    let p = participant(&state, s.participant_id).await?;
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
pub struct DialinBody {
    conference: String,
}

pub async fn dialin(
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
pub struct ResetBody {}

pub async fn reset(ApiJson(_): ApiJson<ResetBody>) -> Response {
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
            pending: Some(("pb_join=x".into(), "**23".into())),
        }
        .into_response();
        assert_eq!(r.headers().get(header::RETRY_AFTER).unwrap(), "90");
        assert_eq!(r.headers().get(header::SET_COOKIE).unwrap(), "pb_join=x");
    }
}
