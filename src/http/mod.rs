//! The HTTP API (axum): verifications and the participant directory, and
//! beside it the public web join page (see `join`).
//!
//! JSON only, API keys required (see `auth`), request bodies limited to
//! `[http] max_body_bytes`, and every failure a JSON error (see `error`).
//! The server itself ([`server`]) limits connections, slow clients and
//! request rates per client address.
//! The routes are listed in [`ROUTES`] and documented in
//! `docs/openapi.yaml`; a test keeps the two in step. The join page's own
//! routes ([`join::JOIN_ROUTES`]) need no key and are documented in the
//! README.

pub mod auth;
pub mod client_addr;
pub mod error;
pub mod extract;
pub mod join;
mod participants;
pub mod rate_limit;
pub mod server;
mod verifications;

use std::future::Future;
use std::io;
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;

use crate::config::otp::HttpSettings;
use crate::verify::service::VerifyService;
use error::ApiError;

pub use server::HttpServer;
pub use verifications::view as verification_json;

/// What the handlers share.
#[derive(Clone)]
pub struct ApiState {
    pub service: VerifyService,
    /// SHA-256 digests of the accepted API keys.
    pub api_key_hashes: Arc<Vec<[u8; 32]>>,
    /// Configured conference names, to validate participants against.
    pub conference_names: Arc<Vec<String>>,
}

impl ApiState {
    pub fn new(
        service: VerifyService,
        settings: &HttpSettings,
        conference_names: Vec<String>,
    ) -> ApiState {
        ApiState {
            service,
            api_key_hashes: Arc::new(settings.api_key_hashes.clone()),
            conference_names: Arc::new(conference_names),
        }
    }
}

/// Every API route as (method, path in OpenAPI form).
pub const ROUTES: &[(&str, &str)] = &[
    ("post", "/v1/verifications"),
    ("post", "/v1/verifications/check"),
    ("get", "/v1/verifications/{id}"),
    ("post", "/v1/verifications/{id}/cancel"),
    ("get", "/v1/participants"),
    ("post", "/v1/participants"),
    ("get", "/v1/participants/{id}"),
    ("put", "/v1/participants/{id}"),
    ("delete", "/v1/participants/{id}"),
];

/// The API router. The API key check applies to these routes only, so a
/// join page merged beside them stays public; unknown paths and methods
/// get JSON 404 / 405.
pub fn router(state: ApiState, max_body_bytes: usize) -> Router {
    Router::new()
        .route("/v1/verifications", post(verifications::start))
        .route("/v1/verifications/check", post(verifications::check))
        .route("/v1/verifications/{id}", get(verifications::fetch))
        .route("/v1/verifications/{id}/cancel", post(verifications::cancel))
        .route(
            "/v1/participants",
            get(participants::list).post(participants::create),
        )
        .route(
            "/v1/participants/{id}",
            get(participants::fetch)
                .put(participants::replace)
                .delete(participants::remove),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_key,
        ))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(state)
}

/// The API router, with the join page merged beside it when `join` is
/// given (`[http] join_page`).
pub fn app(state: ApiState, max_body_bytes: usize, join: Option<join::JoinState>) -> Router {
    let api = router(state, max_body_bytes);
    let app = match join {
        Some(j) => api.merge(join::router(j, max_body_bytes)),
        None => api,
    };
    app.layer(axum::middleware::from_fn(
        |req: axum::extract::Request, next: axum::middleware::Next| async move {
            crate::fault::check(crate::fault::Site::Http);
            next.run(req).await
        },
    ))
}

async fn not_found() -> impl IntoResponse {
    ApiError::not_found("no such endpoint")
}

async fn method_not_allowed() -> impl IntoResponse {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not take that method",
    )
}

/// Binds `settings.listen` and serves the API until `shutdown`.
pub async fn serve<F>(settings: &HttpSettings, state: ApiState, shutdown: F) -> io::Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    let server = HttpServer::bind(
        settings.listen,
        router(state, settings.max_body_bytes),
        settings.limits.clone(),
    )
    .await?;
    tracing::info!(addr = %server.local_addr()?, "HTTP API listening");
    server.run(shutdown).await
}

#[cfg(test)]
mod tests {
    use super::ROUTES;

    /// Every route the router serves is in docs/openapi.yaml, and the YAML
    /// documents no route the router lacks.
    #[test]
    fn openapi_lists_every_route() {
        // The `paths:` section: a path is a 2-space-indented key starting
        // with '/', its operations 4-space-indented method keys.
        let yaml = include_str!("../../docs/openapi.yaml");
        let mut documented = Vec::new();
        let mut in_paths = false;
        let mut path: Option<&str> = None;
        for line in yaml.lines() {
            if !line.starts_with(' ') && !line.trim().is_empty() {
                in_paths = line.trim_end() == "paths:";
                path = None;
                continue;
            }
            if !in_paths {
                continue;
            }
            if let Some(p) = line
                .strip_prefix("  /")
                .and_then(|l| l.trim_end().strip_suffix(':'))
            {
                path = Some(p);
            } else if let (Some(p), Some(m)) = (
                path,
                line.strip_prefix("    ")
                    .and_then(|l| l.trim_end().strip_suffix(':')),
            ) {
                if ["get", "post", "put", "delete", "patch"].contains(&m) {
                    documented.push((m.to_string(), format!("/{p}")));
                }
            }
        }
        let served: Vec<(String, String)> = ROUTES
            .iter()
            .map(|(m, p)| (m.to_string(), p.to_string()))
            .collect();
        for r in &served {
            assert!(documented.contains(r), "{r:?} is not in docs/openapi.yaml");
        }
        for d in &documented {
            assert!(
                served.contains(d),
                "docs/openapi.yaml documents {d:?}, which is not served"
            );
        }
    }
}
