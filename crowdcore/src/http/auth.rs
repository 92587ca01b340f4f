//! Secrets, page tokens and the admin key check.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::Response;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::HttpState;
use super::error::{ApiError, ErrorCode};
use crate::model::AssignmentId;

/// The fewest bytes a secret may have.
pub const MIN_SECRET_BYTES: usize = 16;

/// A secret (the page-token key, the admin key). Its `Debug` never shows it.
#[derive(Clone)]
pub struct Secret(Vec<u8>);

/// Why a secret cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// The environment variable is not set (or not UTF-8).
    #[error("{0} is not set")]
    Missing(String),
    /// The secret is shorter than [`MIN_SECRET_BYTES`].
    #[error("the secret is shorter than {MIN_SECRET_BYTES} bytes")]
    TooShort,
}

impl Secret {
    /// A secret from bytes; at least [`MIN_SECRET_BYTES`] of them.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Result<Self, SecretError> {
        let bytes = bytes.into();
        if bytes.len() < MIN_SECRET_BYTES {
            return Err(SecretError::TooShort);
        }
        Ok(Self(bytes))
    }

    /// The secret in environment variable `name`.
    pub fn from_env(name: &str) -> Result<Self, SecretError> {
        let value = std::env::var(name).map_err(|_| SecretError::Missing(name.to_owned()))?;
        Self::new(value.trim().as_bytes().to_vec())
    }

    /// Whether `given` is this secret, in time that does not depend on where they differ
    /// (both are hashed to 32 bytes first, so neither does it leak the length).
    pub fn matches(&self, given: &[u8]) -> bool {
        let a = Sha256::digest(&self.0);
        let b = Sha256::digest(given);
        a.ct_eq(&b).into()
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// The page token of `assignment`: hex `HMAC-SHA256(secret, "crowdcore-page-v1\0" + id)`.
pub fn page_token(secret: &Secret, assignment: &AssignmentId) -> String {
    hex::encode(mac(secret, assignment).finalize().into_bytes())
}

fn mac(secret: &Secret, assignment: &AssignmentId) -> Hmac<Sha256> {
    // HMAC takes a key of any length.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.bytes()).expect("hmac takes any key");
    mac.update(b"crowdcore-page-v1\0");
    mac.update(assignment.as_str().as_bytes());
    mac
}

/// Checks a page token in constant time.
pub(crate) fn check_token(
    secret: &Secret,
    assignment: &AssignmentId,
    token: &str,
) -> Result<(), ApiError> {
    let ok = hex::decode(token)
        .ok()
        .is_some_and(|given| mac(secret, assignment).verify_slice(&given).is_ok());
    if ok {
        Ok(())
    } else {
        Err(ApiError::new(
            ErrorCode::BadToken,
            "the token does not belong to this assignment",
        ))
    }
}

/// Middleware: refuses a request without `Authorization: Bearer <admin key>` (or
/// `X-Api-Key: <admin key>`) with 401 `unauthorized`. Put it on any admin route a host adds.
pub async fn require_admin(
    State(state): State<HttpState>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    admin_check(request.headers(), &state.inner.config.admin_key)?;
    Ok(next.run(request).await)
}

/// Checks the admin key in `headers` (`Authorization: Bearer` or `X-Api-Key`).
pub(crate) fn admin_check(headers: &HeaderMap, key: &Secret) -> Result<(), ApiError> {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
        .or_else(|| headers.get("x-api-key").map(|v| v.as_bytes()));
    match given {
        Some(given) if key.matches(given) => Ok(()),
        Some(_) => Err(ApiError::new(ErrorCode::Unauthorized, "wrong admin key")),
        None => Err(ApiError::new(
            ErrorCode::Unauthorized,
            "this route needs the admin key: Authorization: Bearer <key>",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_belong_to_one_assignment_and_one_secret() {
        let s = Secret::new(*b"0123456789abcdef").unwrap();
        let other = Secret::new(*b"0123456789abcdeX").unwrap();
        let a = AssignmentId::new("A1");
        let b = AssignmentId::new("A2");
        let t = page_token(&s, &a);
        assert!(check_token(&s, &a, &t).is_ok());
        assert!(check_token(&s, &b, &t).is_err());
        assert!(check_token(&other, &a, &t).is_err());
        assert!(check_token(&s, &a, &t[..10]).is_err());
        assert!(check_token(&s, &a, "zz").is_err());
        assert!(Secret::new(*b"short").is_err());
        assert!(s.matches(b"0123456789abcdef"));
        assert!(!s.matches(b"0123456789abcde"));
        assert_eq!(format!("{s:?}"), "Secret(..)");
    }
}
