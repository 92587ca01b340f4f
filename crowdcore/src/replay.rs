//! The replay format: drive a [`Pavilion`] machine from a script of JSON lines and read back
//! every effect it produced, one JSON object per line. Public and scriptable: researchers write
//! scenarios by hand, drivers log inputs in the same shape, and the `replay` example runs it.
//!
//! Input, one object per line (blank lines and lines starting with `#` are skipped):
//!
//! ```json
//! {"at_ms": 0, "type": "start"}
//! {"at_ms": 5, "type": "hire_posted", "hit": "H1", "slots": 5}
//! {"at_ms": 900, "type": "arrive", "worker": "W1", "assignment": "A1", "hit": "H1"}
//! {"at_ms": 1200, "type": "submit", "assignment": "A1", "contributions": 3}
//! ```
//!
//! Output: each effect as `{"at_ms": …, "id": "<session>/<seq>", "type": …, …}` (the fields of
//! [`EffectKind`](crate::pavilion::EffectKind), money as `amount_cents` and `currency`); a
//! refused line as `{"type": "error", "line": N, "message": "…"}` after which the run goes on;
//! and last, `{"type": "snapshot", …}` with the fields of [`Snapshot`].

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::engine::to_json;
use crate::model::{SessionId, Timestamp};
use crate::pavilion::{ConfigError, Input, Pavilion, PavilionConfig, Snapshot};
use crate::retainer::{self, Retainer, RetainerConfig};

/// A machine the replay format drives: its inputs read from lines, its effects and final
/// snapshot written as lines. [`Pavilion`] and [`Retainer`] are.
pub trait Replayable {
    /// An input line's payload (with its `type` tag).
    type Input: Serialize + DeserializeOwned;
    /// An effect, written as a line.
    type Effect: Serialize;
    /// The final state, written as the last line.
    type Snapshot: Serialize;
    /// Why an input was refused.
    type Rejected: std::fmt::Display;
    /// Feeds one input.
    fn handle(&mut self, now: Timestamp, input: Self::Input) -> Result<(), Self::Rejected>;
    /// The next effect.
    fn poll_effect(&mut self) -> Option<Self::Effect>;
    /// The whole state.
    fn snapshot(&self) -> Self::Snapshot;
}

impl Replayable for Pavilion {
    type Input = Input;
    type Effect = crate::pavilion::Effect;
    type Snapshot = Snapshot;
    type Rejected = crate::pavilion::Rejected;
    fn handle(&mut self, now: Timestamp, input: Input) -> Result<(), Self::Rejected> {
        Pavilion::handle(self, now, input)
    }
    fn poll_effect(&mut self) -> Option<Self::Effect> {
        Pavilion::poll_effect(self)
    }
    fn snapshot(&self) -> Snapshot {
        Pavilion::snapshot(self)
    }
}

impl Replayable for Retainer {
    type Input = retainer::Input;
    type Effect = retainer::Effect;
    type Snapshot = retainer::Snapshot;
    type Rejected = retainer::Rejected;
    fn handle(&mut self, now: Timestamp, input: retainer::Input) -> Result<(), Self::Rejected> {
        Retainer::handle(self, now, input)
    }
    fn poll_effect(&mut self) -> Option<Self::Effect> {
        Retainer::poll_effect(self)
    }
    fn snapshot(&self) -> retainer::Snapshot {
        Retainer::snapshot(self)
    }
}

/// One input line: the time and the input. Unknown fields are refused, so a typo in a script
/// is an error rather than a silently different scenario.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InputLine<I = Input> {
    /// When the input happened, in milliseconds.
    pub at_ms: Timestamp,
    /// The input, with its `type` tag.
    #[serde(flatten)]
    pub input: I,
}

impl<'de, I: Serialize + DeserializeOwned> Deserialize<'de> for InputLine<I> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        // `#[serde(flatten)]` would let unknown fields through; split the time off by hand and
        // let `Input` (which denies unknown fields) read the rest.
        let mut map = serde_json::Map::<String, serde_json::Value>::deserialize(deserializer)?;
        let at_ms = map
            .remove("at_ms")
            .ok_or_else(|| D::Error::missing_field("at_ms"))?;
        let at_ms = Timestamp::deserialize(at_ms).map_err(D::Error::custom)?;
        let input =
            I::deserialize(serde_json::Value::Object(map.clone())).map_err(D::Error::custom)?;
        // serde ignores extra fields on unit variants (`tick`, `start`, …) even under
        // `deny_unknown_fields`: every field given must be one the input writes back.
        let known = serde_json::to_value(&input).map_err(D::Error::custom)?;
        if let Some(unknown) = map.keys().find(|k| known.get(k.as_str()).is_none()) {
            return Err(D::Error::custom(format!(
                "unknown field `{unknown}` for input type {}",
                known["type"]
            )));
        }
        Ok(Self { at_ms, input })
    }
}

/// A line that could not be used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorLine {
    /// Always `"error"`.
    #[serde(rename = "type")]
    pub kind: ErrorTag,
    /// The 1-based line number of the input.
    pub line: usize,
    /// What was wrong.
    pub message: String,
}

/// The tag of an [`ErrorLine`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorTag {
    /// `"error"`.
    Error,
}

/// The last output line: the machine's final state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotLine<S = Snapshot> {
    /// Always `"snapshot"`.
    #[serde(rename = "type")]
    pub kind: SnapshotTag,
    /// The state.
    #[serde(flatten)]
    pub snapshot: S,
}

/// The tag of a [`SnapshotLine`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SnapshotTag {
    /// `"snapshot"`.
    Snapshot,
}

/// Parses one Pavilion input line. `Ok(None)` for a blank or comment line.
pub fn parse_line(line: &str) -> Result<Option<InputLine>, serde_json::Error> {
    parse_line_as(line)
}

/// Parses one input line of any [`Replayable`] machine's inputs.
pub fn parse_line_as<I: Serialize + DeserializeOwned>(
    line: &str,
) -> Result<Option<InputLine<I>>, serde_json::Error> {
    let trimmed = line.trim();
    if trimmed.is_empty() || trimmed.starts_with('#') {
        return Ok(None);
    }
    serde_json::from_str(trimmed).map(Some)
}

/// Runs a script through a new Pavilion machine for `session`, giving `out` every output line
/// as JSON text, in order, ending with the snapshot. Bad lines become error lines; the run goes
/// on.
pub fn run<I, S>(
    session: SessionId,
    config: PavilionConfig,
    lines: I,
    out: impl FnMut(String),
) -> Result<Snapshot, ConfigError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut machine = Pavilion::new(session, config)?;
    Ok(run_machine(&mut machine, lines, out))
}

/// Runs a script of reservation inputs (`register_template`, `make_reservation`, `invoke`,
/// `cancel`, `finish`, `unfinish`, `finish_all`, `arrive`, `ping`, `poll`, `submit`, …) through
/// a new [`Retainer`] for `session`, as [`run`] does for the Pavilion.
pub fn run_retainer<I, S>(
    session: SessionId,
    config: RetainerConfig,
    lines: I,
    out: impl FnMut(String),
) -> Result<retainer::Snapshot, ConfigError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut machine = Retainer::new(session, config)?;
    Ok(run_machine(&mut machine, lines, out))
}

/// Runs a script through `machine`: every effect as a line, a refused or unreadable line as an
/// error line (the run goes on), the snapshot last.
pub fn run_machine<M, I, S>(machine: &mut M, lines: I, mut out: impl FnMut(String)) -> M::Snapshot
where
    M: Replayable,
    M::Snapshot: Clone,
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    for (index, line) in lines.into_iter().enumerate() {
        let number = index + 1;
        let result = match parse_line_as::<M::Input>(line.as_ref()) {
            Ok(None) => continue,
            Ok(Some(InputLine { at_ms, input })) => machine
                .handle(at_ms, input)
                .map_err(|rejected| rejected.to_string()),
            Err(e) => Err(format!("cannot parse line: {e}")),
        };
        match result {
            Ok(()) => {
                while let Some(effect) = machine.poll_effect() {
                    out(to_json(&effect));
                }
            }
            Err(message) => out(to_json(&ErrorLine {
                kind: ErrorTag::Error,
                line: number,
                message,
            })),
        }
    }
    let snapshot = machine.snapshot();
    out(to_json(&SnapshotLine {
        kind: SnapshotTag::Snapshot,
        snapshot: snapshot.clone(),
    }));
    snapshot
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{AssignmentId, HitId, WorkerId};

    #[test]
    fn input_lines_use_the_documented_names() {
        let line =
            r#"{"at_ms": 7, "type": "arrive", "worker": "W1", "assignment": "A1", "hit": "H1"}"#;
        let parsed = parse_line(line).unwrap().unwrap();
        assert_eq!(parsed.at_ms, Timestamp::from_millis(7));
        assert_eq!(
            parsed.input,
            Input::Arrive {
                worker: WorkerId::new("W1"),
                assignment: AssignmentId::new("A1"),
                hit: HitId::new("H1"),
            }
        );
        let targets = r#"{"at_ms":1,"type":"set_targets","min_active":1,"max_active":2,"min_waiting":0,"max_waiting":1}"#;
        assert!(matches!(
            parse_line(targets).unwrap().unwrap().input,
            Input::SetTargets(_)
        ));
        assert!(parse_line("  # a comment").unwrap().is_none());
        assert!(parse_line(r#"{"at_ms":1,"type":"explode"}"#).is_err());
        assert!(parse_line(r#"{"at_ms":1,"type":"tick","colour":"red"}"#).is_err());
    }

    #[test]
    fn a_bad_line_is_reported_and_the_run_goes_on() {
        let script = [
            r#"{"at_ms": 0, "type": "start"}"#,
            "not json",
            r#"{"at_ms": 1, "type": "heartbeat", "assignment": "nobody"}"#,
            r#"{"at_ms": 2, "type": "hire_posted", "hit": "H1", "slots": 1}"#,
        ];
        let mut out = Vec::new();
        run(
            SessionId::new("s"),
            PavilionConfig::default(),
            script,
            |l| out.push(l),
        )
        .unwrap();
        let values: Vec<serde_json::Value> = out
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(values[0]["type"], "hire");
        assert_eq!(values[0]["id"], "s/1");
        assert_eq!(values[0]["count"], 5);
        assert_eq!(values[1]["type"], "error");
        assert_eq!(values[1]["line"], 2);
        assert_eq!(values[2]["line"], 3);
        assert_eq!(values[2]["message"], "unknown assignment nobody");
        let last = values.last().unwrap();
        assert_eq!(last["type"], "snapshot");
        assert_eq!(last["open_slots"], 1);
        assert!(last["waiting"].as_array().unwrap().is_empty());
    }
}
