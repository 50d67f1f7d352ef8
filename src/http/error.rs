//! API errors: every failure is a JSON body
//! `{"error": {"code": "...", "message": "..."}}` with a fitting status,
//! never an empty page or a panic.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

use crate::verify::directory::DirectoryError;
use crate::verify::service::ServiceError;

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    /// Machine-readable, stable: clients branch on this.
    pub code: &'static str,
    /// For people.
    pub message: String,
    /// More fields inside `error` (e.g. `retry_after`).
    pub extra: Map<String, Value>,
    retry_after_secs: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            extra: Map::new(),
            retry_after_secs: None,
        }
    }

    pub fn with(mut self, key: &str, value: Value) -> ApiError {
        self.extra.insert(key.into(), value);
        self
    }

    /// Tells the client when to come back: `retry_after` (seconds) in the
    /// body and the Retry-After header.
    pub fn retry_after(mut self, secs: u64) -> ApiError {
        self.extra.insert("retry_after".into(), Value::from(secs));
        self.retry_after_secs = Some(secs);
        self
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_json", message)
    }

    pub fn invalid(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// Something on our side; the detail goes to the log, not the client.
    pub fn internal(detail: impl std::fmt::Display) -> ApiError {
        tracing::error!(error = %detail, "API request failed");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; the server log has the details",
        )
    }
}

/// "4 minutes", "1 hour", "30 seconds": a wait in words, rounded up.
pub fn wait_text(secs: u64) -> String {
    let (n, unit) = if secs < 60 {
        (secs.max(1), "second")
    } else if secs < 3600 {
        (secs.div_ceil(60), "minute")
    } else {
        (secs.div_ceil(3600), "hour")
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut error = Map::new();
        error.insert("code".into(), Value::from(self.code));
        error.insert("message".into(), Value::from(self.message));
        error.extend(self.extra);
        let mut resp = (self.status, axum::Json(json!({ "error": error }))).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(secs) = self.retry_after_secs {
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        resp
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> ApiError {
        let message = e.to_string();
        match e {
            ServiceError::BadDestination(_) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_destination",
                message,
            ),
            ServiceError::ChannelNotEnabled(_)
            | ServiceError::ChannelCannotReach(..)
            | ServiceError::NoChannel => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_channel", message)
            }
            ServiceError::TooManySends {
                pending,
                retry_after_ms,
            } => {
                let secs =
                    u64::try_from(crate::verify::otp::ceil_secs(retry_after_ms)).unwrap_or(1);
                let mut err =
                    ApiError::new(StatusCode::TOO_MANY_REQUESTS, "too_many_sends", message)
                        .with("retry_after", Value::from(secs));
                if let Some(p) = pending {
                    err = err.with("pending_verification_id", Value::from(p.id));
                }
                err.retry_after_secs = Some(secs);
                err
            }
            ServiceError::DeliveryFailed { verification, .. } => {
                ApiError::new(StatusCode::BAD_GATEWAY, "delivery_failed", message)
                    .with("verification_id", Value::from(verification.id))
            }
            ServiceError::NotFound => ApiError::not_found(message),
            ServiceError::NotPending(_) => {
                ApiError::new(StatusCode::CONFLICT, "not_pending", message)
            }
            ServiceError::Internal(detail) => ApiError::internal(detail),
        }
    }
}

impl From<DirectoryError> for ApiError {
    fn from(e: DirectoryError) -> ApiError {
        let message = e.to_string();
        match e {
            DirectoryError::Invalid(_) => ApiError::invalid(message),
            DirectoryError::PhoneTaken(_) | DirectoryError::UsernameTaken(_) => {
                ApiError::new(StatusCode::CONFLICT, "conflict", message)
            }
            DirectoryError::NotFound => ApiError::not_found(message),
            DirectoryError::FromConfig(_) => {
                ApiError::new(StatusCode::CONFLICT, "config_participant", message)
            }
            DirectoryError::Storage(e) => ApiError::internal(e.detail()),
        }
    }
}
