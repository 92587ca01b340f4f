//! Arrivals confirmed with the platform: before a page's arrival reaches the engine (or the
//! hub), the platform's own record of the assignment ([`Platform::assignment`]) must say that
//! this worker holds it on this HIT, accepted or just submitted
//! ([`AssignmentRecord::confirms`]). The records read are cached (bounded, with expiry) so
//! that a reload does not ask the platform again; a platform that fails or does not answer in
//! time gets the page a 503 with `Retry-After`, never a seat.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::error::{ApiError, ErrorCode};
use super::hub::lock;
use crate::clock::Clock;
use crate::model::{AssignmentId, HitId, Timestamp, WorkerId};
use crate::platform::{AssignmentRecord, Platform};

/// Seconds a page is asked to wait after the platform could not be asked.
const RETRY_AFTER_S: u64 = 2;

/// Why the front cannot serve a platform's arrivals.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrontError {
    /// The platform cannot look assignments up ([`Capabilities::confirms_assignments`] is
    /// false), so any made-up assignment id would take a seat. Serve it only with
    /// [`HttpConfig::trust_unconfirmed_arrivals`](super::HttpConfig::trust_unconfirmed_arrivals),
    /// knowing what that means.
    ///
    /// [`Capabilities::confirms_assignments`]: crate::platform::Capabilities::confirms_assignments
    #[error(
        "this platform cannot confirm arrivals (capabilities.confirms_assignments is false), so \
         anyone could take a seat with a made-up assignment id; refusing to serve it unless \
         trust_unconfirmed_arrivals is set (unsafe on a public crowd)"
    )]
    CannotConfirmArrivals,
}

/// The confirmation settings ([`HttpConfig`](super::HttpConfig)'s).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Settings {
    pub(crate) trust: bool,
    pub(crate) timeout: Duration,
    pub(crate) ttl_ms: u64,
    pub(crate) capacity: usize,
}

pub(crate) struct Confirmer {
    platform: Arc<dyn Platform>,
    clock: Arc<dyn Clock>,
    settings: Settings,
    cache: Mutex<Cache>,
}

#[derive(Default)]
struct Cache {
    records: HashMap<AssignmentId, (AssignmentRecord, Timestamp)>,
    /// Insertion order, for eviction: (assignment, when read).
    order: VecDeque<(AssignmentId, Timestamp)>,
}

impl Confirmer {
    /// A confirmer for `platform`; refuses a platform that cannot confirm unless `trust`.
    pub(crate) fn new(
        platform: Arc<dyn Platform>,
        clock: Arc<dyn Clock>,
        settings: Settings,
    ) -> Result<Self, FrontError> {
        let blind = !platform.capabilities().confirms_assignments;
        if blind && !settings.trust {
            return Err(FrontError::CannotConfirmArrivals);
        }
        // The opt-in covers only what cannot be confirmed: a platform that can is asked.
        let trust = blind && settings.trust;
        if trust {
            tracing::warn!(
                "trust_unconfirmed_arrivals: this platform cannot confirm arrivals, so they are \
                 taken at their page's word and a made-up assignment id takes a seat"
            );
        }
        Ok(Self {
            platform,
            clock,
            settings: Settings { trust, ..settings },
            cache: Mutex::new(Cache::default()),
        })
    }

    /// `Ok` if the platform confirms that `worker` holds `assignment` of `hit`.
    pub(crate) async fn confirm(
        &self,
        worker: &WorkerId,
        assignment: &AssignmentId,
        hit: &HitId,
    ) -> Result<(), ApiError> {
        if self.settings.trust {
            return Ok(());
        }
        let record = match self.cached(assignment) {
            Some(record) => Some(record),
            None => self.ask(assignment).await?,
        };
        match record {
            Some(r) if r.confirms(worker, hit) => Ok(()),
            _ => {
                tracing::debug!(%assignment, "an arrival the platform does not confirm");
                Err(ApiError::new(
                    ErrorCode::NotConfirmed,
                    "the platform does not confirm that this worker holds this assignment of \
                     this HIT",
                ))
            }
        }
    }

    fn cached(&self, assignment: &AssignmentId) -> Option<AssignmentRecord> {
        let now = self.clock.now();
        let cache = lock(&self.cache);
        cache
            .records
            .get(assignment)
            .filter(|(_, at)| now.millis_since(*at) < self.settings.ttl_ms)
            .map(|(r, _)| r.clone())
    }

    async fn ask(&self, assignment: &AssignmentId) -> Result<Option<AssignmentRecord>, ApiError> {
        let unavailable = || {
            ApiError::new(
                ErrorCode::PlatformUnavailable,
                "cannot confirm the assignment with the platform right now; try again",
            )
            .retry_after(RETRY_AFTER_S)
        };
        let answer =
            tokio::time::timeout(self.settings.timeout, self.platform.assignment(assignment)).await;
        let record = match answer {
            Err(_) => {
                tracing::warn!(%assignment, timeout = ?self.settings.timeout,
                    "the platform did not answer an arrival's confirmation in time");
                return Err(unavailable());
            }
            Ok(Err(e)) => {
                tracing::warn!(%assignment, error = %e, "cannot ask the platform about an arrival");
                return Err(unavailable());
            }
            Ok(Ok(record)) => record,
        };
        // Only what the platform knows is kept: an unknown id is asked again next time (it may
        // be listed late), bounded by the rate limits rather than by this cache.
        if let Some(r) = &record
            && r.assignment == *assignment
        {
            self.remember(r.clone());
        }
        Ok(record.filter(|r| r.assignment == *assignment))
    }

    fn remember(&self, record: AssignmentRecord) {
        let now = self.clock.now();
        let mut cache = lock(&self.cache);
        let Cache { records, order } = &mut *cache;
        order.push_back((record.assignment.clone(), now));
        records.insert(record.assignment.clone(), (record, now));
        // Expired and surplus entries go, oldest first (an entry read again was pushed again:
        // only its newest push removes it).
        while let Some((a, at)) = order.front() {
            let full = records.len() > self.settings.capacity.max(1);
            let expired = now.millis_since(*at) >= self.settings.ttl_ms;
            if !full && !expired {
                break;
            }
            if records.get(a).is_some_and(|(_, read)| read == at) {
                records.remove(a);
            }
            order.pop_front();
        }
    }

    /// Records kept.
    pub(crate) fn len(&self) -> usize {
        lock(&self.cache).records.len()
    }
}
