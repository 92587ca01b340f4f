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
use crate::model::{AssignmentId, SessionId, Timestamp, WorkerId};

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

/// What a page token (or an event-stream ticket) is bound to: one session, one assignment, one
/// worker, until a time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenClaims {
    /// The session whose front issued it.
    pub session: SessionId,
    /// The page's assignment.
    pub assignment: AssignmentId,
    /// The worker the platform confirmed holds it.
    pub worker: WorkerId,
    /// When it stops being accepted.
    pub expires_at: Timestamp,
}

/// What a token is for: a page's calls, or opening its event stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    /// Every worker call of the page (`/w/…`, `/r/…`).
    Page,
    /// Only `GET /w/events`, in its query string (EventSource cannot set headers).
    Events,
}

impl Purpose {
    fn domain(self) -> &'static [u8] {
        match self {
            Purpose::Page => b"crowdcore-page-v2\0",
            Purpose::Events => b"crowdcore-events-ticket-v1\0",
        }
    }
}

/// The page token for `claims`: `<expires ms>.<worker id, hex>.<hex HMAC-SHA256(secret,
/// "crowdcore-page-v2\0" session \0 assignment \0 worker \0 expires)>`. A token for another
/// session, assignment or worker, or past its time, is refused.
pub fn page_token(secret: &Secret, claims: &TokenClaims) -> String {
    sign(secret, Purpose::Page, claims)
}

pub(crate) fn sign(secret: &Secret, purpose: Purpose, claims: &TokenClaims) -> String {
    let expires = claims.expires_at.as_millis();
    let mac = mac(secret, purpose, claims, expires)
        .finalize()
        .into_bytes();
    format!(
        "{expires}.{}.{}",
        hex::encode(claims.worker.as_str()),
        hex::encode(mac)
    )
}

fn mac(secret: &Secret, purpose: Purpose, claims: &TokenClaims, expires: u64) -> Hmac<Sha256> {
    // HMAC takes a key of any length.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.bytes()).expect("hmac takes any key");
    mac.update(purpose.domain());
    // Ids have no NUL (no control characters: `check_id`), so the fields cannot run together.
    for part in [
        claims.session.as_str(),
        claims.assignment.as_str(),
        claims.worker.as_str(),
    ] {
        mac.update(part.as_bytes());
        mac.update(b"\0");
    }
    mac.update(expires.to_string().as_bytes());
    mac
}

/// Checks a token for `purpose` of `assignment` in `session` at `now`, in constant time over
/// its MAC; the worker it was issued to on success.
pub(crate) fn check(
    secret: &Secret,
    purpose: Purpose,
    session: &SessionId,
    assignment: &AssignmentId,
    token: &str,
    now: Timestamp,
) -> Result<WorkerId, ApiError> {
    let bad = || {
        ApiError::new(
            ErrorCode::BadToken,
            "the token does not belong to this assignment",
        )
    };
    let mut parts = token.splitn(3, '.');
    let (Some(expires), Some(worker), Some(given)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    let expires: u64 = expires.parse().map_err(|_| bad())?;
    let worker = hex::decode(worker)
        .ok()
        .and_then(|w| String::from_utf8(w).ok())
        .ok_or_else(bad)?;
    let given = hex::decode(given).map_err(|_| bad())?;
    let claims = TokenClaims {
        session: session.clone(),
        assignment: assignment.clone(),
        worker: WorkerId::new(worker),
        expires_at: Timestamp::from_millis(expires),
    };
    mac(secret, purpose, &claims, expires)
        .verify_slice(&given)
        .map_err(|_| bad())?;
    if now >= claims.expires_at {
        return Err(ApiError::new(
            ErrorCode::TokenExpired,
            match purpose {
                Purpose::Page => "the page token has expired: reload the page",
                Purpose::Events => "the event-stream ticket has expired: ask for a new one",
            },
        ));
    }
    Ok(claims.worker)
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

    fn claims(session: &str, assignment: &str, worker: &str, expires: u64) -> TokenClaims {
        TokenClaims {
            session: SessionId::new(session),
            assignment: AssignmentId::new(assignment),
            worker: WorkerId::new(worker),
            expires_at: Timestamp::from_millis(expires),
        }
    }

    #[test]
    fn tokens_belong_to_one_session_assignment_worker_and_secret_and_expire() {
        let s = Secret::new(*b"0123456789abcdef").unwrap();
        let other = Secret::new(*b"0123456789abcdeX").unwrap();
        let (session, a) = (SessionId::new("s1"), AssignmentId::new("A1"));
        let now = Timestamp::from_millis(500);
        let t = page_token(&s, &claims("s1", "A1", "W1", 1_000));
        let ok = |secret: &Secret, session: &SessionId, a: &AssignmentId, t: &str, now| {
            check(secret, Purpose::Page, session, a, t, now)
        };
        assert_eq!(ok(&s, &session, &a, &t, now).unwrap(), WorkerId::new("W1"));
        let code = |r: Result<WorkerId, ApiError>| r.unwrap_err().code;
        assert_eq!(
            code(ok(&s, &session, &AssignmentId::new("A2"), &t, now)),
            ErrorCode::BadToken
        );
        assert_eq!(
            code(ok(&s, &SessionId::new("s2"), &a, &t, now)),
            ErrorCode::BadToken
        );
        assert_eq!(code(ok(&other, &session, &a, &t, now)), ErrorCode::BadToken);
        assert_eq!(
            code(ok(&s, &session, &a, &t[..t.len() - 2], now)),
            ErrorCode::BadToken
        );
        assert_eq!(code(ok(&s, &session, &a, "zz", now)), ErrorCode::BadToken);
        // Another worker, or a later expiry, written into the token breaks its MAC.
        let mac = t.rsplit('.').next().unwrap();
        let forged = format!("1000.{}.{mac}", hex::encode("W2"));
        assert_eq!(
            code(ok(&s, &session, &a, &forged, now)),
            ErrorCode::BadToken
        );
        let later = format!("9000.{}.{mac}", hex::encode("W1"));
        assert_eq!(code(ok(&s, &session, &a, &later, now)), ErrorCode::BadToken);
        // At its time it is over.
        let at = Timestamp::from_millis(1_000);
        assert_eq!(code(ok(&s, &session, &a, &t, at)), ErrorCode::TokenExpired);
        // A page token is no event-stream ticket, and the other way round.
        let ticket = sign(&s, Purpose::Events, &claims("s1", "A1", "W1", 1_000));
        assert!(check(&s, Purpose::Events, &session, &a, &ticket, now).is_ok());
        assert_eq!(
            code(ok(&s, &session, &a, &ticket, now)),
            ErrorCode::BadToken
        );
        assert!(check(&s, Purpose::Events, &session, &a, &t, now).is_err());
        assert!(Secret::new(*b"short").is_err());
        assert!(s.matches(b"0123456789abcdef"));
        assert!(!s.matches(b"0123456789abcde"));
        assert_eq!(format!("{s:?}"), "Secret(..)");
    }
}
