//! A JSON body extractor whose failures are API errors: wrong content type
//! 415, body over the limit 413, a body that did not arrive within
//! `[http] body_timeout_secs` 408, malformed JSON 400, well-formed JSON of
//! the wrong shape 422.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// `axum::Json` with our error answers.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(ApiJson(v)),
            Err(rej) => Err(rejection(rej)),
        }
    }
}

fn rejection(rej: JsonRejection) -> ApiError {
    match rej {
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body as JSON with `Content-Type: application/json`",
        ),
        JsonRejection::JsonSyntaxError(e) => ApiError::bad_request(format!(
            "the body is not valid JSON: {}",
            inner(&e.body_text())
        )),
        JsonRejection::JsonDataError(e) => ApiError::invalid(inner(&e.body_text())),
        JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "the request body is larger than the server accepts",
            )
        }
        other if super::server::is_body_timeout(&other) => ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            "the request body did not arrive in time",
        ),
        other => ApiError::bad_request(format!("cannot read the body: {}", other.body_text())),
    }
}

/// axum's texts start with a generic sentence; keep the part that says
/// what is wrong.
fn inner(text: &str) -> String {
    let t = text.split_once(": ").map(|(_, rest)| rest).unwrap_or(text);
    t.chars().take(300).collect()
}
