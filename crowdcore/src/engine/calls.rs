//! How a spawned engine makes its platform calls: beside its loop, a bounded number at a time,
//! each under its own timeout, and, where the platform limits its callers, no faster than a
//! token bucket allows.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::platform::{PlatformError, PlatformErrorKind};

/// How a spawned engine ([`Engine::spawn`](super::Engine::spawn)) makes platform calls:
/// beside its loop, at most `max_in_flight` at a time, each with its own timeout, optionally
/// at most `per_second` started a second. A call that times out is retried with its
/// idempotency key, like any retryable failure. An engine driven directly (a simulation)
/// makes its calls one at a time, in order, on the caller's task, unlimited.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CallPolicy {
    /// Platform calls in flight at once, per session (at least 1).
    pub max_in_flight: u32,
    /// How long one platform call may take, in milliseconds, before it counts as timed out.
    pub timeout_ms: u64,
    /// At most this many platform calls start per second (a token bucket of
    /// [`burst`](Self::burst) tokens); none: no limit. Toloka allows a requester about 300
    /// requests a second; MTurk throttles bursts. Sessions that share one platform account
    /// share one bucket through [`EngineBuilder::limiter`](super::EngineBuilder::limiter).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub per_second: Option<u32>,
    /// How many calls may start at once after a quiet spell (at least 1); none: one second's
    /// worth, `per_second`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub burst: Option<u32>,
}

impl Default for CallPolicy {
    fn default() -> Self {
        Self {
            max_in_flight: 16,
            timeout_ms: 30_000,
            per_second: None,
            burst: None,
        }
    }
}

impl CallPolicy {
    /// The bucket this policy asks for, if any.
    pub fn limiter(&self) -> Option<CallLimiter> {
        self.per_second
            .map(|rate| CallLimiter::new(rate, self.burst.unwrap_or(rate)))
    }

    /// How long one call may take.
    pub(crate) fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms.max(1))
    }
}

/// A token bucket of platform calls (the generic cell rate algorithm: one "theoretical
/// arrival time" that each call moves on by one interval), on tokio's clock so that tests
/// with paused time run it exactly. Clones share the bucket: give one to every engine on the
/// same platform account.
#[derive(Debug, Clone)]
pub struct CallLimiter {
    interval: Duration,
    /// How far ahead of now the arrival time may run: `(burst - 1)` intervals.
    tolerance: Duration,
    tat: Arc<Mutex<Option<Instant>>>,
}

impl CallLimiter {
    /// At most `per_second` calls a second (at least 1), and `burst` (at least 1) at once.
    pub fn new(per_second: u32, burst: u32) -> Self {
        let interval = Duration::from_secs(1) / per_second.max(1);
        Self {
            interval,
            tolerance: interval * (burst.max(1) - 1),
            tat: Arc::new(Mutex::new(None)),
        }
    }

    /// Takes a token, waiting until one is free. Each caller reserves its own slot before it
    /// waits, so callers are served in the order they asked and none starves.
    pub async fn acquire(&self) {
        let wait = {
            let mut tat = self.tat.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            let at = tat.map_or(now, |t| t.max(now));
            *tat = Some(at + self.interval);
            (at.checked_sub(self.tolerance).unwrap_or(now)).saturating_duration_since(now)
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

/// `call` under `timeout`: no answer in time is a retryable [`PlatformErrorKind::Timeout`].
pub(crate) async fn timed<T>(
    timeout: Duration,
    call: impl std::future::Future<Output = Result<T, PlatformError>>,
) -> Result<T, PlatformError> {
    match tokio::time::timeout(timeout, call).await {
        Ok(result) => result,
        Err(_) => Err(PlatformError::new(
            PlatformErrorKind::Timeout,
            "CallTimeout",
            format!("no answer in {} ms", timeout.as_millis()),
        )),
    }
}

/// `call` after a token from `limiter` (if any), then under `timeout`: the wait for a token
/// is not part of the call's time.
pub(crate) async fn limited<T>(
    limiter: Option<CallLimiter>,
    timeout: Duration,
    call: impl std::future::Future<Output = Result<T, PlatformError>>,
) -> Result<T, PlatformError> {
    if let Some(limiter) = limiter {
        limiter.acquire().await;
    }
    timed(timeout, call).await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// When each of `n` callers, all asking at once, gets its token (from the start).
    async fn grants(limiter: &CallLimiter, n: usize) -> Vec<Duration> {
        let start = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..n {
            let limiter = limiter.clone();
            tasks.spawn(async move {
                limiter.acquire().await;
                (i, start.elapsed())
            });
        }
        let mut out = vec![Duration::ZERO; n];
        while let Some(done) = tasks.join_next().await {
            let (i, at) = done.unwrap();
            out[i] = at;
        }
        out.sort();
        out
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_goes_at_once_and_the_rest_at_the_rate() {
        let limiter = CallLimiter::new(10, 3);
        let at = grants(&limiter, 8).await;
        let ms: Vec<u128> = at.iter().map(Duration::as_millis).collect();
        assert_eq!(ms, [0, 0, 0, 100, 200, 300, 400, 500]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_quiet_spell_refills_the_bucket_but_no_further() {
        let limiter = CallLimiter::new(100, 2);
        grants(&limiter, 5).await;
        tokio::time::sleep(Duration::from_secs(10)).await;
        let ms: Vec<u128> = grants(&limiter, 4)
            .await
            .iter()
            .map(Duration::as_millis)
            .collect();
        assert_eq!(ms, [0, 0, 10, 20]);
    }

    #[tokio::test(start_paused = true)]
    async fn clones_share_one_bucket() {
        let a = CallLimiter::new(5, 1);
        let b = a.clone();
        a.acquire().await;
        let start = Instant::now();
        b.acquire().await;
        assert_eq!(start.elapsed(), Duration::from_millis(200));
    }

    #[test]
    fn an_unset_rate_keeps_the_stored_config_as_it_was() {
        let json = serde_json::to_string(&CallPolicy::default()).unwrap();
        assert_eq!(json, r#"{"max_in_flight":16,"timeout_ms":30000}"#);
        let limited: CallPolicy = serde_json::from_str(r#"{"per_second":300,"burst":50}"#).unwrap();
        assert_eq!(limited.per_second, Some(300));
        assert!(limited.limiter().is_some());
        assert!(CallPolicy::default().limiter().is_none());
    }
}
