//! How a page finishes on its platform, kept durably: the submit address a page arrived with
//! (MTurk's `turkSubmitTo`) is recorded in the session's store metadata before its arrival is
//! logged, so a page rebuilt after a restart, a reload, or a submit retried after its answer
//! was lost is still told where to post its platform form. Only allow-listed origins are ever
//! recorded, and what is read back is checked against the allow-list again: a page never
//! chooses where money goes.

use std::sync::Arc;

use super::worker::{FormMethod, PlatformForm};
use crate::engine::pay_kind_name;
use crate::model::{AssignmentId, Money, SessionId, WorkerId};
use crate::pavilion::{Effect, EffectKind};
use crate::store::{LedgerEntry, OutboxEntry, Store, StoreError};

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
        method: FormMethod::Post,
    }
}

/// The form that sends a page to a fixed completion redirect (Prolific's
/// `https://app.prolific.com/submissions/complete?cc=CODE`): a `get` form to the URL's path
/// with its query as fields. The URL is the operator's ([`HttpConfig::finish_redirect`]),
/// never a page's.
///
/// [`HttpConfig::finish_redirect`]: super::HttpConfig::finish_redirect
pub(crate) fn redirect_form(url: &str) -> PlatformForm {
    let (action, query) = url.split_once('?').unwrap_or((url, ""));
    PlatformForm {
        action: action.to_owned(),
        fields: query
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| match p.split_once('=') {
                Some((k, v)) => (k.to_owned(), v.to_owned()),
                None => (p.to_owned(), String::new()),
            })
            .collect(),
        method: FormMethod::Get,
    }
}

/// The origin (`scheme://host[:port]`) of an absolute URL, for the landing page's
/// `form-action`.
pub(crate) fn origin_of(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    Some(&url[..url.len() - rest.len() + end])
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

/// An amount the session owes a worker and has not paid yet (`GET /api/owed`, the status page).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Owed {
    /// Who.
    pub worker: WorkerId,
    /// For which assignment.
    pub assignment: Option<AssignmentId>,
    /// What for: `base`, `waiting_bonus`, …
    pub kind: String,
    /// How much.
    #[serde(flatten, with = "crate::model::money_as_cents")]
    pub amount: Money,
    /// `pending`: the engine is still trying (the platform approves only a submitted
    /// assignment: the worker's page finishes there); `failed`: the engine gave up.
    pub state: &'static str,
    /// What the operator can do about it.
    pub manual: &'static str,
}

const PENDING: &str = "the engine keeps trying: the platform approves an assignment only once \
    it is submitted, which the worker's page does by finishing on the platform (MTurk: posting \
    its form; Prolific: following the completion redirect); if the page is gone the assignment \
    is submitted when it auto-approves or when you approve it by hand";
const FAILED: &str = "not paid: once the platform lets it (the assignment submitted or approved), \
    pay this as a bonus to the worker's assignment (MTurk: SendBonus; Prolific: a bonus payment \
    on the submission), or approve it by hand";

/// What the ledger and the outbox say is owed: pay effects still pending, and ledger entries
/// that were not paid.
pub(crate) fn owed(ledger: &[LedgerEntry], pending: &[OutboxEntry]) -> Vec<Owed> {
    let mut out: Vec<Owed> = pending
        .iter()
        .filter_map(|e| serde_json::from_str::<Effect>(&e.body).ok())
        .filter_map(|e| match e.kind {
            EffectKind::Pay {
                worker,
                assignment,
                kind,
                amount,
            } => Some(Owed {
                worker,
                assignment: Some(assignment),
                kind: pay_kind_name(kind).to_owned(),
                amount,
                state: "pending",
                manual: PENDING,
            }),
            _ => None,
        })
        .collect();
    out.extend(ledger.iter().filter(|e| !e.paid).map(|e| Owed {
        worker: e.worker.clone(),
        assignment: e.assignment.clone(),
        kind: e.kind.clone(),
        amount: e.amount,
        state: "failed",
        manual: FAILED,
    }));
    out
}

impl PageRecords {
    /// The pay effects still pending in the session's outbox (none known without a store).
    pub(crate) async fn pending(&self) -> Result<Vec<OutboxEntry>, StoreError> {
        match &self.store {
            Some(store) => store.pending(&self.session).await,
            None => Ok(Vec::new()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_completion_redirect_is_a_get_form_to_its_origin() {
        let f = redirect_form("https://app.prolific.com/submissions/complete?cc=C0DE42");
        assert_eq!(f.action, "https://app.prolific.com/submissions/complete");
        assert_eq!(f.fields, vec![("cc".to_owned(), "C0DE42".to_owned())]);
        assert_eq!(f.method, FormMethod::Get);
        assert_eq!(
            origin_of("https://app.prolific.com/submissions/complete?cc=X"),
            Some("https://app.prolific.com")
        );
        assert_eq!(
            origin_of("http://127.0.0.1:8080?x"),
            Some("http://127.0.0.1:8080")
        );
        assert_eq!(origin_of("not a url"), None);
        assert_eq!(
            mturk_form("https://www.mturk.com", &AssignmentId::new("a"), 1).method,
            FormMethod::Post
        );
    }
    use crate::model::{EffectId, Timestamp};
    use crate::pavilion::PayKind;
    use crate::store::OutboxState;

    #[test]
    fn pending_pays_and_failed_ones_are_owed_and_paid_ones_are_not() {
        let id = EffectId::new(SessionId::new("s"), 7);
        let pay = Effect {
            at: Timestamp::from_millis(5),
            id: id.clone(),
            kind: EffectKind::Pay {
                worker: WorkerId::new("w1"),
                assignment: AssignmentId::new("a1"),
                kind: PayKind::Base,
                amount: Money::usd_cents(50),
            },
        };
        let pending = [OutboxEntry {
            id,
            body: serde_json::to_string(&pay).unwrap(),
            state: OutboxState::Pending,
        }];
        let entry = |worker: &str, paid| LedgerEntry {
            effect: EffectId::new(SessionId::new("s"), 3),
            worker: WorkerId::new(worker),
            assignment: Some(AssignmentId::new("a2")),
            kind: "waiting_bonus".into(),
            amount: Money::usd_cents(20),
            paid,
            at: Timestamp::from_millis(4),
        };
        let owed = owed(&[entry("w2", false), entry("w3", true)], &pending);
        let who: Vec<_> = owed
            .iter()
            .map(|o| (o.worker.as_str(), o.kind.as_str(), o.amount.minor, o.state))
            .collect();
        assert_eq!(
            who,
            [
                ("w1", "base", 50, "pending"),
                ("w2", "waiting_bonus", 20, "failed")
            ]
        );
    }
}
