//! How a page finishes on its platform, kept durably: the submit address a page arrived with
//! (MTurk's `turkSubmitTo`) is recorded in the session's store metadata before its arrival is
//! logged, so a page rebuilt after a restart, a reload, or a submit retried after its answer
//! was lost is still told where to post its platform form. Only allow-listed origins are ever
//! recorded, and what is read back is checked against the allow-list again: a page never
//! chooses where money goes.

use std::sync::Arc;

use super::worker::PlatformForm;
use crate::model::{AssignmentId, SessionId};
use crate::store::{Store, StoreError};

/// The metadata key of an assignment's submit address.
fn key(assignment: &AssignmentId) -> String {
    format!("http.submit_to.{assignment}")
}

/// The form a page posts to MTurk's `externalSubmit` at `origin`.
pub(crate) fn mturk_form(
    origin: &str,
    assignment: &AssignmentId,
    contributions: u32,
) -> PlatformForm {
    PlatformForm {
        action: format!("{origin}/mturk/externalSubmit"),
        fields: vec![
            ("assignmentId".to_owned(), assignment.to_string()),
            ("contributions".to_owned(), contributions.to_string()),
        ],
    }
}

/// Each page's finishing record, in the session's store (or nowhere, for a front built without
/// one: then a restart forgets the addresses, as before).
pub(crate) struct PageRecords {
    store: Option<Arc<dyn Store>>,
    session: SessionId,
    allowed: Vec<String>,
}

impl PageRecords {
    pub(crate) fn new(
        store: Option<Arc<dyn Store>>,
        session: SessionId,
        allowed: &[String],
    ) -> Self {
        Self {
            store,
            session,
            allowed: allowed
                .iter()
                .map(|o| o.trim_end_matches('/').to_owned())
                .collect(),
        }
    }

    /// Whether the records survive a restart.
    pub(crate) fn durable(&self) -> bool {
        self.store.is_some()
    }

    /// Whether `origin` is one of the platform addresses pages may finish at.
    pub(crate) fn allows(&self, origin: &str) -> bool {
        let origin = origin.trim_end_matches('/');
        self.allowed.iter().any(|o| o == origin)
    }

    /// Records `assignment`'s submit address (an allow-listed origin) unless it already is.
    pub(crate) async fn record(
        &self,
        assignment: &AssignmentId,
        origin: &str,
    ) -> Result<(), StoreError> {
        let Some(store) = &self.store else {
            return Ok(());
        };
        let key = key(assignment);
        if store.meta(&self.session, &key).await?.as_deref() == Some(origin) {
            return Ok(());
        }
        store.put_meta(&self.session, &key, origin).await
    }

    /// The submit address recorded for `assignment`, if one is and it is still allowed.
    pub(crate) async fn submit_to(&self, assignment: &AssignmentId) -> Option<String> {
        let store = self.store.as_ref()?;
        match store.meta(&self.session, &key(assignment)).await {
            Ok(Some(origin)) if self.allows(&origin) => Some(origin),
            Ok(Some(origin)) => {
                tracing::warn!(%assignment, %origin,
                    "a recorded submit address is no longer allowed; not offering it");
                None
            }
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(%assignment, error = %e, "could not read a page's submit address");
                None
            }
        }
    }
}
