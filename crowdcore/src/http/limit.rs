//! Rate limits of the worker routes: per client address (a middleware on every worker route)
//! and per assignment (checked by the handlers once they know the assignment), with
//! `governor`'s GCRA limiters. Both tables are bounded: past [`RateLimits::max_keys`] keys,
//! idle keys are dropped, and while the table is still full, every caller shares one overflow
//! limiter — so a flood of made-up addresses or assignment ids costs a bounded amount of
//! memory and mostly gets 429s (at the price of slowing real callers while it lasts).

use std::hash::Hash;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota};

use super::error::{ApiError, ErrorCode};
use crate::model::AssignmentId;

/// How many requests the worker routes take, per key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests a key may make per minute, sustained.
    pub per_minute: u32,
    /// Requests a key may make at once (the bucket's size).
    pub burst: u32,
}

impl RateLimit {
    fn quota(self) -> Quota {
        let per_minute = NonZeroU32::new(self.per_minute.max(1)).expect("at least 1");
        let burst = NonZeroU32::new(self.burst.max(1)).expect("at least 1");
        Quota::per_minute(per_minute).allow_burst(burst)
    }
}

/// The rate limits of the worker routes ([`HttpConfig::rate_limits`](super::HttpConfig::rate_limits)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    /// Per client address (IPv4 address, or IPv6 /64), over every worker route. The address is
    /// the TCP peer's (`ConnectInfo<SocketAddr>`: serve the router with
    /// `into_make_service_with_connect_info::<SocketAddr>()`); without it every client shares
    /// one bucket. Behind a proxy the peer is the proxy: raise this or limit at the proxy.
    pub per_address: RateLimit,
    /// Per assignment id, over every worker route.
    pub per_assignment: RateLimit,
    /// The most keys each table keeps (see the module docs).
    pub max_keys: usize,
}

impl Default for RateLimits {
    /// 600 a minute per address with bursts of 120 (a lab behind one NAT is a few dozen
    /// pages, each beating every few seconds); 120 a minute per assignment with bursts of 30;
    /// 100 000 keys.
    fn default() -> Self {
        Self {
            per_address: RateLimit {
                per_minute: 600,
                burst: 120,
            },
            per_assignment: RateLimit {
                per_minute: 120,
                burst: 30,
            },
            max_keys: 100_000,
        }
    }
}

/// A keyed limiter with a bounded table.
struct Keyed<K: Hash + Eq + Clone> {
    table: DefaultKeyedRateLimiter<K>,
    overflow: DefaultDirectRateLimiter,
    max_keys: usize,
    /// When idle keys were last dropped (ms since `created`), so a full table is swept at
    /// most every 100 ms.
    swept_at: AtomicU64,
    created: std::time::Instant,
}

impl<K: Hash + Eq + Clone> Keyed<K> {
    fn new(limit: RateLimit, max_keys: usize) -> Self {
        Self {
            table: DefaultKeyedRateLimiter::keyed(limit.quota()),
            overflow: DefaultDirectRateLimiter::direct(limit.quota()),
            max_keys: max_keys.max(1),
            swept_at: AtomicU64::new(0),
            created: std::time::Instant::now(),
        }
    }

    /// `Err(seconds to wait)` when `key` is over its limit.
    fn check(&self, key: &K) -> Result<(), u64> {
        let clock = DefaultClock::default();
        let wait = |d: Duration| d.as_secs() + u64::from(d.subsec_nanos() > 0);
        if self.table.len() >= self.max_keys {
            let ms = self.created.elapsed().as_millis() as u64;
            let last = self.swept_at.load(Ordering::Relaxed);
            if ms.saturating_sub(last) >= 100
                && self
                    .swept_at
                    .compare_exchange(last, ms, Ordering::Relaxed, Ordering::Relaxed)
                    .is_ok()
            {
                self.table.retain_recent();
                self.table.shrink_to_fit();
            }
            if self.table.len() >= self.max_keys {
                // No room: while the table is full every key shares the overflow bucket
                // (governor cannot look a key up without inserting it), so a flood of new
                // keys slows everyone down for a moment instead of growing the table.
                return self
                    .overflow
                    .check()
                    .map_err(|n| wait(n.wait_time_from(clock.now())));
            }
        }
        self.table
            .check_key(key)
            .map_err(|n| wait(n.wait_time_from(clock.now())))
    }

    fn len(&self) -> usize {
        self.table.len()
    }
}

/// The worker routes' limiters.
pub(crate) struct Limiter {
    by_address: Keyed<IpAddr>,
    by_assignment: Keyed<AssignmentId>,
}

impl Limiter {
    pub(crate) fn new(limits: &RateLimits) -> Self {
        Self {
            by_address: Keyed::new(limits.per_address, limits.max_keys),
            by_assignment: Keyed::new(limits.per_assignment, limits.max_keys),
        }
    }

    /// Counts a request of `assignment`: 429 past its limit.
    pub(crate) fn assignment(&self, assignment: &AssignmentId) -> Result<(), ApiError> {
        self.by_assignment
            .check(assignment)
            .map_err(|s| limited("too many requests for this assignment", s))
    }

    fn address(&self, address: Option<IpAddr>) -> Result<(), ApiError> {
        // Unknown peers (no ConnectInfo) share the unspecified address's bucket.
        let key = address.map_or(IpAddr::from([0u8; 4]), key_of);
        self.by_address
            .check(&key)
            .map_err(|s| limited("too many requests from this address", s))
    }

    /// Keys the two tables hold: (addresses, assignments).
    pub(crate) fn keys(&self) -> (usize, usize) {
        (self.by_address.len(), self.by_assignment.len())
    }
}

/// An IPv4 address as it is; an IPv6 address by its /64, which one subscriber usually holds
/// whole.
fn key_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

fn limited(message: &str, retry_after_s: u64) -> ApiError {
    ApiError::new(ErrorCode::RateLimited, message).retry_after(retry_after_s.max(1))
}

/// Middleware: 429 `rate_limited` (with `Retry-After`) for a client address past its limit.
pub(crate) async fn by_address(
    State(limiter): State<std::sync::Arc<Limiter>>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    limiter.address(peer)?;
    Ok(next.run(request).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_past_its_burst_waits_and_others_do_not() {
        let l = Keyed::new(
            RateLimit {
                per_minute: 60,
                burst: 3,
            },
            10,
        );
        for _ in 0..3 {
            assert!(l.check(&1u32).is_ok());
        }
        assert_eq!(l.check(&1u32), Err(1));
        assert!(l.check(&2u32).is_ok());
    }

    #[test]
    fn a_full_table_stays_full_size_and_sends_newcomers_to_the_overflow_bucket() {
        let l = Keyed::new(
            RateLimit {
                per_minute: 1,
                burst: 2,
            },
            100,
        );
        let mut refused = 0;
        for k in 0..10_000u32 {
            if l.check(&k).is_err() {
                refused += 1;
            }
        }
        assert!(l.len() <= 100, "{} keys", l.len());
        assert!(refused >= 10_000 - 100 - 2, "{refused} refused");
    }

    #[test]
    fn ipv6_clients_are_keyed_by_their_64() {
        let a: IpAddr = "2001:db8:1:2:3:4:5:6".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::1".parse().unwrap();
        assert_eq!(key_of(a), key_of(b));
        let v4: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(key_of(v4), "10.0.0.1".parse::<IpAddr>().unwrap());
    }
}
