//! API keys: `Authorization: Bearer <key>`. The server knows only SHA-256
//! digests of its keys; the presented key is hashed and compared with
//! every configured digest in constant time (no early exit, so the timing
//! says neither which key nor how much of one matched). Keys are never
//! logged.

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};

use super::error::ApiError;
use super::ApiState;

/// Why a request is not authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    Missing,
    Malformed,
    Wrong,
    NoKeysConfigured,
}

/// Checks the Authorization header against the configured digests.
pub fn authenticate(headers: &HeaderMap, digests: &[[u8; 32]]) -> Result<(), AuthFailure> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(AuthFailure::Missing);
    };
    let value = value.to_str().map_err(|_| AuthFailure::Malformed)?;
    let (scheme, key) = value.trim().split_once(' ').ok_or(AuthFailure::Malformed)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthFailure::Malformed);
    }
    let key = key.trim();
    if key.is_empty() {
        return Err(AuthFailure::Malformed);
    }
    if digests.is_empty() {
        return Err(AuthFailure::NoKeysConfigured);
    }
    let presented: [u8; 32] = Sha256::digest(key.as_bytes()).into();
    let mut ok = Choice::from(0);
    for d in digests {
        ok |= d.ct_eq(&presented);
    }
    if bool::from(ok) {
        Ok(())
    } else {
        Err(AuthFailure::Wrong)
    }
}

/// The middleware in front of every API route.
pub async fn require_key(State(state): State<ApiState>, req: Request, next: Next) -> Response {
    match authenticate(req.headers(), &state.api_key_hashes) {
        Ok(()) => next.run(req).await,
        Err(f) => {
            let message = match f {
                AuthFailure::Missing => "missing API key: send `Authorization: Bearer <key>`",
                AuthFailure::Malformed => "malformed Authorization header: use `Bearer <key>`",
                AuthFailure::Wrong => "invalid API key",
                AuthFailure::NoKeysConfigured => {
                    "no API keys are configured on this server ([http] api_keys)"
                }
            };
            ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn accepts_any_configured_key() {
        let keys = [
            Sha256::digest(b"first-key-0123456789").into(),
            Sha256::digest(b"second-key-0123456789").into(),
        ];
        assert_eq!(
            authenticate(&headers("Bearer second-key-0123456789"), &keys),
            Ok(())
        );
        assert_eq!(
            authenticate(&headers("bearer  first-key-0123456789 "), &keys),
            Ok(())
        );
        assert_eq!(
            authenticate(&headers("Bearer third-key-0123456789"), &keys),
            Err(AuthFailure::Wrong)
        );
        assert_eq!(
            authenticate(&headers("Basic Zm9vOmJhcg=="), &keys),
            Err(AuthFailure::Malformed)
        );
        assert_eq!(
            authenticate(&headers("Bearer "), &keys),
            Err(AuthFailure::Malformed)
        );
        assert_eq!(
            authenticate(&HeaderMap::new(), &keys),
            Err(AuthFailure::Missing)
        );
        assert_eq!(
            authenticate(&headers("Bearer x"), &[]),
            Err(AuthFailure::NoKeysConfigured)
        );
    }
}
