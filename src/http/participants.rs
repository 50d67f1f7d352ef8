//! `/v1/participants`: the directory over HTTP. Participants declared in
//! the config file are listed but not changed here (409): the file would
//! undo the change at the next start.

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
use crate::verify::directory::{validate, Participant, ParticipantInput, Rules};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ParticipantBody {
    name: String,
    phone: String,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    moderator: bool,
    #[serde(default)]
    conferences: Vec<String>,
    #[serde(default)]
    channels: Vec<String>,
    #[serde(default)]
    name_prompt: Option<String>,
}

fn path_id(id: Result<Path<String>, PathRejection>) -> Result<i64, ApiError> {
    id.ok()
        .and_then(|Path(s)| s.parse::<i64>().ok())
        .ok_or_else(|| ApiError::not_found("no such participant"))
}

fn validated(
    state: &ApiState,
    body: ParticipantBody,
) -> Result<crate::verify::directory::ValidParticipant, ApiError> {
    let input = ParticipantInput {
        username: body.username,
        name: body.name,
        phone: body.phone,
        email: body.email,
        moderator: body.moderator,
        name_prompt: body.name_prompt,
        conferences: body.conferences,
        channels: body.channels,
    };
    let policy = state.service.channel_policy();
    let enabled: &[ChannelKind] = &policy.enabled;
    validate(
        &input,
        &Rules {
            default_country_code: &policy.default_country_code,
            conferences: Some(&state.conference_names),
            channels: Some(enabled),
        },
    )
    .map_err(|e| ApiError::invalid(e.to_string()))
}

pub(super) async fn list(State(state): State<ApiState>) -> Result<Json<Value>, ApiError> {
    let all = state.service.participants().await?;
    Ok(Json(json!({
        "participants": all.iter().map(Participant::to_json).collect::<Vec<_>>()
    })))
}

pub(super) async fn create(
    State(state): State<ApiState>,
    ApiJson(body): ApiJson<ParticipantBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let p = validated(&state, body)?;
    let created = state.service.add_participant(p).await?;
    Ok((StatusCode::CREATED, Json(created.to_json())))
}

pub(super) async fn fetch(
    State(state): State<ApiState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let id = path_id(id)?;
    let p = state
        .service
        .participant(id)
        .await?
        .ok_or_else(|| ApiError::not_found("no such participant"))?;
    Ok(Json(p.to_json()))
}

pub(super) async fn replace(
    State(state): State<ApiState>,
    id: Result<Path<String>, PathRejection>,
    ApiJson(body): ApiJson<ParticipantBody>,
) -> Result<Json<Value>, ApiError> {
    let id = path_id(id)?;
    let p = validated(&state, body)?;
    let updated = state.service.update_participant(id, p).await?;
    Ok(Json(updated.to_json()))
}

pub(super) async fn remove(
    State(state): State<ApiState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let id = path_id(id)?;
    state.service.remove_participant(id).await?;
    Ok(StatusCode::NO_CONTENT)
}
