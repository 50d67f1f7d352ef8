//! `/v1/verifications`: start, check, fetch, cancel.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::ApiError;
use super::extract::ApiJson;
use super::ApiState;
use crate::verify::channel::ChannelKind;
use crate::verify::clock::rfc3339;
use crate::verify::otp::{mask, Policy, Verification};
use crate::verify::service::{Channels, CheckBy, Target};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct StartBody {
    /// E.164 number (or an email address for the email channel).
    to: Option<String>,
    /// A participant's username.
    participant: Option<String>,
    channel: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CheckBody {
    id: Option<String>,
    to: Option<String>,
    code: String,
}

/// A verification as clients see it: the destination masked, no hash.
pub fn view(v: &Verification, policy: &Policy) -> Value {
    json!({
        "id": v.id,
        "status": v.status.name(),
        "to": mask(&v.destination),
        "channel": v.channel.map(ChannelKind::name),
        "participant_id": v.participant_id,
        "created_at": rfc3339(v.created_ms),
        "expires_at": rfc3339(v.expires_ms),
        "sends": v.sends,
        "checks": v.checks,
        "checks_remaining": v.checks_remaining(policy),
    })
}

/// Ids are ours (`VE` + 32 hex); anything else cannot exist. Refusing it
/// early keeps huge path segments away from the database.
fn plausible_id(id: &str) -> bool {
    id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

fn path_id(id: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    match id {
        Ok(Path(id)) if plausible_id(&id) => Ok(id),
        _ => Err(ApiError::not_found("no such verification")),
    }
}

pub(super) async fn start(
    State(state): State<ApiState>,
    ApiJson(body): ApiJson<StartBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let channel = match body.channel.as_deref() {
        None => None,
        Some(c) => Some(ChannelKind::from_name(c).ok_or_else(|| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_channel",
                "channel must be one of webhook, sip-message, email, voice, log",
            )
        })?),
    };
    let target = match (body.to, body.participant) {
        (Some(to), None) => Target::Phone(to),
        (None, Some(username)) => {
            let u = username.clone();
            let p = state.service.participant_by_username(u).await?;
            match p {
                Some(p) => Target::Participant(Box::new(p)),
                None => {
                    return Err(ApiError::new(
                        StatusCode::NOT_FOUND,
                        "participant_not_found",
                        "no participant has that username",
                    ))
                }
            }
        }
        _ => {
            return Err(ApiError::invalid(
                "give exactly one of `to` (a phone number or email address) and `participant` (a username)",
            ))
        }
    };
    let out = state
        .service
        .start(
            target,
            Channels {
                requested: channel,
                conference: Vec::new(),
            },
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(view(&out.verification, state.service.policy())),
    ))
}

pub(super) async fn check(
    State(state): State<ApiState>,
    ApiJson(body): ApiJson<CheckBody>,
) -> Result<Json<Value>, ApiError> {
    let code = body.code.trim().to_string();
    if code.is_empty() || code.len() > 10 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_code",
            "code must be 4 to 10 digits",
        ));
    }
    let by = match (body.id, body.to) {
        (Some(id), None) => {
            if !plausible_id(&id) {
                return Err(ApiError::not_found("no such verification"));
            }
            CheckBy::Id(id)
        }
        (None, Some(to)) => CheckBy::Destination(to),
        _ => {
            return Err(ApiError::invalid(
                "give exactly one of `id` and `to` with the code",
            ))
        }
    };
    let out = state.service.check(by, code).await?;
    let mut v = view(&out.verification, state.service.policy());
    v["valid"] = Value::from(out.valid);
    Ok(Json(v))
}

pub(super) async fn fetch(
    State(state): State<ApiState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let id = path_id(id)?;
    let v = state.service.fetch(id).await?;
    Ok(Json(view(&v, state.service.policy())))
}

pub(super) async fn cancel(
    State(state): State<ApiState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let id = path_id(id)?;
    let v = state.service.cancel(id).await?;
    Ok(Json(view(&v, state.service.policy())))
}
