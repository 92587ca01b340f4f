//! Identifier newtypes.
//!
//! Ids minted by a platform (workers, assignments, HITs) are opaque strings. Ids minted by a
//! driver (sessions, projects) are UUID v7 strings, so they sort by creation time. Ids minted
//! inside a pure machine ([`EffectId`]) derive from the session and a sequence number, because a
//! machine reads no clock and draws no randomness.
//!
//! String ids are one pointer wide: a reference-counted allocation (a `triomphe::ThinArc`)
//! holding the string's hash, its length and its bytes. Cloning one into an effect costs a
//! reference count, not an allocation; an id is 8 bytes, so inputs, effects and the machines'
//! records and indexes stay small (the Pavilion machine's hot path is mostly moving them).
//! The hash is computed once when the id is made, so hashing an id is one `u64` write and
//! comparing two unequal ids almost never reads their bytes.

use std::fmt;

use serde::{Deserialize, Serialize};

macro_rules! string_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone)]
        pub struct $name(Thin);

        impl $name {
            /// Wraps an id as the platform or driver spelled it.
            pub fn new(id: impl AsRef<str>) -> Self {
                Self(Thin::new(id.as_ref()))
            }

            /// The id as a string slice.
            pub fn as_str(&self) -> &str {
                self.0.as_str()
            }
        }

        impl PartialEq for $name {
            #[inline]
            fn eq(&self, other: &Self) -> bool {
                self.0.same(&other.0)
            }
        }

        impl Eq for $name {}

        impl std::hash::Hash for $name {
            #[inline]
            fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
                state.write_u64(self.0.hash());
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
                // UTF-8 bytes sort as their strings do.
                self.0.bytes().cmp(other.0.bytes())
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                Ok(Self::new(s))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(self.as_str(), f)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
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
                self.as_str()
            }
        }
    };
}

/// The shared representation of the string ids: one pointer to a reference-counted
/// allocation holding the string's hash (the header), its length and its UTF-8 bytes.
#[derive(Clone)]
struct Thin(triomphe::ThinArc<u64, u8>);

impl Thin {
    fn new(s: &str) -> Self {
        Self(triomphe::ThinArc::from_header_and_slice(
            hash_str(s),
            s.as_bytes(),
        ))
    }

    /// The cached hash.
    #[inline]
    fn hash(&self) -> u64 {
        self.0.header.header
    }

    #[inline]
    fn bytes(&self) -> &[u8] {
        &self.0.slice
    }

    fn as_str(&self) -> &str {
        // Invariant: the bytes were copied from a `str` in `new` and never change; the check
        // is a fast ASCII scan for the short ids platforms mint.
        std::str::from_utf8(self.bytes()).expect("an id's bytes are the UTF-8 of a str")
    }

    /// The same string: one pointer comparison for clones of one id, one `u64` comparison for
    /// almost every pair of different ids, the bytes otherwise.
    #[inline]
    fn same(&self, other: &Self) -> bool {
        self.0.ptr() == other.0.ptr()
            || (self.hash() == other.hash() && self.bytes() == other.bytes())
    }
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
    fn string_ids_are_one_pointer_and_compare_by_their_text() {
        assert_eq!(std::mem::size_of::<AssignmentId>(), 8);
        assert_eq!(std::mem::size_of::<Option<WorkerId>>(), 8);
        let a = AssignmentId::new("3X4JMASXCM8FCX94IM0KEMYGMMG0BG");
        let b = AssignmentId::new(String::from("3X4JMASXCM8FCX94IM0KEMYGMMG0BG"));
        assert_eq!(a, b, "two allocations of one string are equal");
        assert_eq!(a, a.clone());
        assert_ne!(a, AssignmentId::new("3X4JMASXCM8FCX94IM0KEMYGMMG0BH"));
        let hash = |id: &AssignmentId| {
            use std::hash::BuildHasher;
            rustc_hash::FxBuildHasher.hash_one(id)
        };
        assert_eq!(hash(&a), hash(&b));
        let mut ids = [WorkerId::new("b"), WorkerId::new("ä"), WorkerId::new("")];
        ids.sort();
        let texts: Vec<&str> = ids.iter().map(WorkerId::as_str).collect();
        let mut sorted = texts.clone();
        sorted.sort_unstable();
        assert_eq!(texts, sorted, "ids sort as their strings");
        assert_eq!(WorkerId::new("ä").to_string(), "ä");
        assert_eq!(format!("{:?}", WorkerId::new("W\"1")), r#""W\"1""#);
        let json = serde_json::to_string(&HitId::new("H 1")).unwrap();
        assert_eq!(json, r#""H 1""#);
        assert_eq!(
            serde_json::from_str::<HitId>(&json).unwrap(),
            HitId::new("H 1")
        );
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
