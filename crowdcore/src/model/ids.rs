//! Identifier newtypes.
//!
//! Ids minted by a platform (workers, assignments, HITs) are opaque strings. Ids minted by a
//! driver (sessions, projects) are UUID v7 strings, so they sort by creation time. Ids minted
//! inside a pure machine ([`EffectId`]) derive from the session and a sequence number, because a
//! machine reads no clock and draws no randomness.
//!
//! String ids are backed by `Arc<str>`: cloning one into an effect costs a reference count,
//! not an allocation, which keeps the machines fast. Each also caches its string's hash,
//! computed once when it is made, so that hashing an id is one `u64` write and comparing two
//! unequal ids almost never reads their bytes.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

macro_rules! string_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone)]
        pub struct $name {
            /// The string's hash, computed once when the id is made: hashing an id is one
            /// `u64` write, and unequal ids almost always differ here.
            hash: u64,
            id: Arc<str>,
        }

        impl $name {
            /// Wraps an id as the platform or driver spelled it.
            pub fn new(id: impl Into<Arc<str>>) -> Self {
                let id = id.into();
                Self {
                    hash: hash_str(&id),
                    id,
                }
            }

            /// The id as a string slice.
            pub fn as_str(&self) -> &str {
                &self.id
            }
        }

        impl PartialEq for $name {
            fn eq(&self, other: &Self) -> bool {
                self.hash == other.hash
                    && (Arc::ptr_eq(&self.id, &other.id) || *self.id == *other.id)
            }
        }

        impl Eq for $name {}

        impl std::hash::Hash for $name {
            fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
                state.write_u64(self.hash);
            }
        }

        impl PartialOrd for $name {
            fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
                Some(self.cmp(other))
            }
        }

        impl Ord for $name {
            /// By the string.
            fn cmp(&self, other: &Self) -> std::cmp::Ordering {
                self.id.cmp(&other.id)
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.id)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                Ok(Self::new(&*s))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&*self.id, f)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.id)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self::new(s)
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                Self::new(s)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.id
            }
        }
    };
}

/// The hash an id caches: the string's own `Hash` through an `FxHasher` (deterministic: the
/// same on every run and every machine).
fn hash_str(s: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = rustc_hash::FxHasher::default();
    s.hash(&mut h);
    h.finish()
}

string_id!(
    /// A worker, as the platform names them (MTurk `WorkerId`, Toloka `user_id`).
    WorkerId
);
string_id!(
    /// One worker's acceptance of one slot of a HIT (MTurk `AssignmentId`).
    AssignmentId
);
string_id!(
    /// A posted HIT (MTurk `HITId`, a Toloka pool or task), as the platform names it.
    HitId
);
string_id!(
    /// A project: a study with its HIT templates, budget and sessions.
    ProjectId
);
string_id!(
    /// One run of a machine; its input log and effects belong to it.
    SessionId
);
string_id!(
    /// A HIT template of the retainer (a registered [`HitSpec`](super::HitSpec)), named by
    /// whoever registers it.
    TemplateId
);
string_id!(
    /// A reservation of the retainer: work announced before it exists, named by whoever makes
    /// it.
    ReservationId
);

impl SessionId {
    /// Mints a new session id (UUID v7: unique and sortable by creation time).
    ///
    /// Drivers call this; pure machines never do.
    pub fn new_v7() -> Self {
        Self::new(uuid::Uuid::now_v7().to_string())
    }
}

impl ProjectId {
    /// Mints a new project id (UUID v7).
    pub fn new_v7() -> Self {
        Self::new(uuid::Uuid::now_v7().to_string())
    }
}

/// The stable id of one effect: its session and its sequence number within that session.
///
/// A machine numbers its effects 1, 2, 3, … so replaying the same inputs yields the same ids,
/// and a driver can use the id as an idempotency key: an effect carried out twice (after a
/// crash) is recognised by the platform as the same request. Displayed and serialized as
/// `"<session>/<seq>"`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EffectId {
    /// The session that produced the effect.
    pub session: SessionId,
    /// The effect's number within the session, starting at 1.
    pub seq: u64,
}

impl EffectId {
    /// The id of the `seq`-th effect of `session`.
    pub fn new(session: SessionId, seq: u64) -> Self {
        Self { session, seq }
    }
}

impl fmt::Debug for EffectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

impl fmt::Display for EffectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.session, self.seq)
    }
}

impl std::str::FromStr for EffectId {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (session, seq) = s
            .rsplit_once('/')
            .ok_or_else(|| format!("effect id {s:?} is not of the form <session>/<seq>"))?;
        let seq = seq
            .parse()
            .map_err(|_| format!("effect id {s:?} has no numeric sequence"))?;
        if session.is_empty() {
            return Err(format!("effect id {s:?} has an empty session"));
        }
        Ok(Self::new(SessionId::new(session), seq))
    }
}

impl Serialize for EffectId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for EffectId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn effect_id_round_trips_through_text() {
        let id = EffectId::new(SessionId::new("s/with/slashes"), 42);
        let text = id.to_string();
        assert_eq!(text, "s/with/slashes/42");
        assert_eq!(text.parse::<EffectId>().unwrap(), id);
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(serde_json::from_str::<EffectId>(&json).unwrap(), id);
    }

    #[test]
    fn malformed_effect_ids_are_errors() {
        assert!("no-seq".parse::<EffectId>().is_err());
        assert!("s/x".parse::<EffectId>().is_err());
        assert!("/4".parse::<EffectId>().is_err());
    }

    #[test]
    fn minted_session_ids_are_unique() {
        let a = SessionId::new_v7();
        let b = SessionId::new_v7();
        assert_ne!(a, b);
        assert_eq!(
            uuid::Uuid::parse_str(a.as_str()).unwrap().get_version_num(),
            7
        );
    }
}
