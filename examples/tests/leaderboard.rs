//! The `leaderboard` example end to end: the same seed writes the same files, byte for byte;
//! the better bot wins; late answers are refused and deferred ones scored.

mod common;

use std::path::Path;
use std::process::Command;

fn run(out: &Path) -> String {
    let output = Command::new(common::example("leaderboard"))
        .args(["--seed", "11", "--tasks", "60", "--out"])
        .arg(out)
        .output()
        .expect("leaderboard runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf-8 output")
}

#[test]
fn the_same_seed_gives_the_same_boards_and_chart() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let stdout = run(a.path());
    assert_eq!(stdout, run(b.path()));
    for file in ["leaderboard.json", "leaderboard.svg"] {
        let (x, y) = (
            std::fs::read(a.path().join(file)).unwrap(),
            std::fs::read(b.path().join(file)).unwrap(),
        );
        assert!(x == y, "{file} differs between two runs");
    }
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(a.path().join("leaderboard.json")).unwrap()).unwrap();
    assert_eq!(json["label"]["standings"][0]["participant"], "careful");
    assert_eq!(json["proba"]["standings"][0]["participant"], "careful");
    let counts = &json["counts"];
    let n = |k: &str| counts[k].as_u64().unwrap();
    // 60 photos × 2 kinds × 3 bots: every answer is scored at once, later, or refused.
    assert_eq!(
        n("scored_at_once") + n("deferred_then_scored") + n("refused_late"),
        360
    );
    assert!(n("deferred_then_scored") > 0, "{counts}");
    // `careful` answers 5 a minute: 100 of its 120 by the 20-minute deadline.
    assert_eq!(n("refused_late"), 20, "{counts}");
    assert!(stdout.contains("label — accuracy"), "{stdout}");
}
