//! Golden test of the replay example: the sample script in `examples/data/` replayed with the
//! sample config must print exactly `examples/data/expected.jsonl`.
//!
//! The example binary cannot be run from here without a slow nested `cargo run`, so this test
//! does what `examples/replay.rs` does — the config parsed straight into `PavilionConfig`, the
//! session `replay` (the example's default), every line through `crowdcore::replay::run` — and
//! compares the output with the golden file.
//!
//! After an intended change of behaviour, regenerate the golden file and review its diff:
//!
//! ```text
//! UPDATE_GOLDEN=1 cargo test -p crowdcore-examples --test replay
//! ```

use std::path::PathBuf;

use crowdcore::SessionId;
use crowdcore::pavilion::{ConfigError, PavilionConfig};
use crowdcore::retainer::RetainerConfig;

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("data")
        .join(name)
}

fn read(name: &str) -> String {
    let path = data(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn sample_config() -> PavilionConfig {
    toml::from_str(&read("pavilion.toml")).expect("the sample config parses")
}

fn replay(config: PavilionConfig, script: &str) -> Result<Vec<String>, ConfigError> {
    let mut out = Vec::new();
    crowdcore::replay::run(SessionId::new("replay"), config, script.lines(), |line| {
        out.push(line)
    })?;
    Ok(out)
}

/// Compares `actual` with the golden file `name` (or rewrites it under `UPDATE_GOLDEN=1`).
fn check_golden(name: &str, actual: &[String]) {
    let mut actual_text = actual.join("\n");
    actual_text.push('\n');
    let golden = data(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| !v.is_empty() && v != "0") {
        std::fs::write(&golden, &actual_text)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", golden.display()));
        eprintln!("updated {}", golden.display());
        return;
    }
    let expected_text = read(name);
    if actual_text != expected_text {
        let expected: Vec<&str> = expected_text.lines().collect();
        let actual: Vec<&str> = actual_text.lines().collect();
        panic!(
            "the replay output differs from {} (- expected, + actual):\n{}\n\
             If the change is intended, rerun with UPDATE_GOLDEN=1 and review the file's diff.",
            golden.display(),
            line_diff(&expected, &actual)
        );
    }
}

#[test]
fn sample_script_prints_the_golden_output() {
    let actual =
        replay(sample_config(), &read("events.jsonl")).expect("the sample config is valid");
    check_golden("expected.jsonl", &actual);
}

/// The retainer sample (`--machine retainer`): precruitment, automatic invocation at the start
/// time, routes, a refused line, pay.
#[test]
fn retainer_sample_prints_the_golden_output() {
    let config: RetainerConfig =
        toml::from_str(&read("retainer.toml")).expect("the retainer sample config parses");
    let mut out = Vec::new();
    crowdcore::replay::run_retainer(
        SessionId::new("replay"),
        config,
        read("reservations.jsonl").lines(),
        |line| out.push(line),
    )
    .expect("the retainer sample config is valid");
    let types: Vec<String> = out
        .iter()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["type"].to_string())
        .collect();
    for kind in [
        "\"route\"",
        "\"notify_workers\"",
        "\"error\"",
        "\"pool\"",
        "\"snapshot\"",
    ] {
        assert!(
            types.iter().any(|t| t == kind),
            "no {kind} line in {types:?}"
        );
    }
    check_golden("expected_retainer.jsonl", &out);
}

#[test]
fn sample_script_exercises_every_kind_of_line() {
    let script = read("events.jsonl");
    let inputs: Vec<serde_json::Value> = script
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .map(|l| serde_json::from_str(l).expect("every script line is JSON"))
        .collect();
    let output: Vec<serde_json::Value> = replay(sample_config(), &script)
        .unwrap()
        .iter()
        .map(|l| serde_json::from_str(l).expect("every output line is JSON"))
        .collect();
    let types = |values: &[serde_json::Value]| -> Vec<String> {
        values
            .iter()
            .map(|v| v["type"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    let (inputs, outputs) = (types(&inputs), types(&output));
    for wanted in [
        "start",
        "hire_posted",
        "hire_failed",
        "arrive",
        "heartbeat",
        "submit",
        "return",
        "abandon",
        "tick",
        "migrate",
        "set_targets",
        "expire",
        "stop",
    ] {
        assert!(inputs.iter().any(|t| t == wanted), "no `{wanted}` input");
    }
    for wanted in [
        "hire",
        "promote",
        "timed_out",
        "pay",
        "release",
        "expire_hits",
        "turn_away",
        "notify",
    ] {
        assert!(outputs.iter().any(|t| t == wanted), "no `{wanted}` effect");
    }
    assert_eq!(
        outputs.iter().filter(|t| *t == "error").count(),
        1,
        "exactly one deliberately bad line"
    );
    assert_eq!(outputs.last().map(String::as_str), Some("snapshot"));
}

#[test]
fn unknown_config_keys_are_refused() {
    let err = toml::from_str::<PavilionConfig>("min_active = 1\nmax_activ = 3\n").unwrap_err();
    assert!(
        err.to_string().contains("unknown field `max_activ`"),
        "{err}"
    );
}

#[test]
fn impossible_targets_are_refused() {
    let config: PavilionConfig = toml::from_str("min_active = 5\nmax_active = 3\n").unwrap();
    assert!(matches!(
        replay(config, ""),
        Err(ConfigError::MaxBelowMin {
            queue: "active",
            ..
        })
    ));
}

/// A line diff by longest common subsequence: unchanged lines prefixed `  `, the rest `- ` or
/// `+ `. The files are small, so the quadratic table is fine.
fn line_diff(expected: &[&str], actual: &[&str]) -> String {
    let (n, m) = (expected.len(), actual.len());
    // lcs[i][j]: the longest common subsequence of expected[i..] and actual[j..].
    let mut lcs = vec![vec![0usize; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if expected[i] == actual[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let mut out = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < n || j < m {
        if i < n && j < m && expected[i] == actual[j] {
            out.push(format!("  {}", expected[i]));
            (i, j) = (i + 1, j + 1);
        } else if i < n && (j == m || lcs[i + 1][j] >= lcs[i][j + 1]) {
            out.push(format!("- {}", expected[i]));
            i += 1;
        } else {
            out.push(format!("+ {}", actual[j]));
            j += 1;
        }
    }
    out.join("\n")
}
