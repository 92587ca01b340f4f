//! Parity with crowd-kit 1.4.2 on the datasets in `tests/data/aggregate/` (reference outputs
//! made by `reference.py`; this test runs no Python), and accuracy against the known truth.
//! The references in `ref/` were made on pandas 2, those in `ref/pandas3/` (the votes only) on
//! pandas 3, where crowd-kit's plain votes break ties in first-seen order.
//!
//! `cargo test -p crowdcore --test aggregate_parity -- --nocapture` prints the tables.

use std::path::PathBuf;

use crowdcore::aggregate::{
    Aggregation, Answers, DawidSkene, Glad, Gold, InitialError, InitialErrorStrategy, MajorityVote,
    OneCoinDawidSkene, TieBreak, Wawa, ZeroBasedSkill,
};

const DATASETS: &[&str] = &[
    "handmade",
    "synth_mixed",
    "synth_spammy",
    "synth_imbalance",
    "synth_sparse",
    "synth_confusion",
    "synth_overlap3",
];
const METHODS: &[&str] = &["mv", "wawa", "zbs", "ds", "onecoin", "glad"];

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/aggregate")
}

/// Rows of a TSV file after its header.
fn rows(name: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let text = std::fs::read_to_string(dir().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    let mut lines = text.lines();
    let header = lines
        .next()
        .unwrap()
        .split('\t')
        .map(str::to_owned)
        .collect();
    let rows = lines
        .filter(|l| !l.is_empty())
        .map(|l| l.split('\t').map(str::to_owned).collect())
        .collect();
    (header, rows)
}

fn answers(dataset: &str) -> Answers {
    rows(&format!("{dataset}.tsv"))
        .1
        .into_iter()
        .map(|r| (r[0].clone(), r[1].clone(), r[2].clone()))
        .collect()
}

/// `ties`: how the plain votes (`mv`, Wawa's first vote) break ties.
fn fit(method: &str, answers: &Answers, ties: TieBreak) -> Aggregation {
    match method {
        "mv" => MajorityVote {
            ties,
            ..MajorityVote::default()
        }
        .fit(answers),
        "wawa" => Wawa { ties }.fit(answers),
        "zbs" => ZeroBasedSkill::default().fit(answers),
        "ds" => DawidSkene::default().fit(answers),
        "onecoin" => OneCoinDawidSkene::default().fit(answers),
        "glad" => Glad::default().fit(answers),
        "ds_gold" => {
            let gold: Gold = rows("synth_confusion.gold.tsv")
                .1
                .into_iter()
                .map(|r| (r[0].clone(), r[1].clone()))
                .collect();
            let fit = DawidSkene::default().fit_with(answers, Some(&gold), None);
            assert_eq!(fit.as_ref().unwrap().ignored_gold(), 2);
            fit
        }
        "ds_init" => {
            let mut init = InitialError::new(InitialErrorStrategy::Addition);
            for r in rows("synth_mixed.init_error.tsv").1 {
                init.insert(&r[0], &r[1], &r[2], r[3].parse().unwrap());
            }
            DawidSkene::default().fit_with(answers, None, Some(&init))
        }
        _ => unreachable!(),
    }
    .unwrap()
}

struct Parity {
    tasks: usize,
    agree: usize,
    max_proba_diff: f64,
    max_skill_diff: f64,
}

/// Compares with the references in `refs` (`ref` or `ref/pandas3`).
fn parity(dataset: &str, method: &str, refs: &str, ties: TieBreak) -> Parity {
    let answers = answers(dataset);
    let fit = fit(method, &answers, ties);
    let (header, reference) = rows(&format!("{refs}/{dataset}.{method}.tsv"));
    let classes: Vec<&str> = fit.classes().iter().map(|c| &**c).collect();
    assert_eq!(
        classes,
        header[2..].iter().map(String::as_str).collect::<Vec<_>>()
    );
    assert_eq!(reference.len(), answers.n_tasks());
    let mut p = Parity {
        tasks: reference.len(),
        agree: 0,
        max_proba_diff: 0.0,
        max_skill_diff: 0.0,
    };
    for r in &reference {
        let t = answers.task_index(&r[0]).unwrap();
        if fit.label(t) == r[1] {
            p.agree += 1;
        }
        assert_eq!(
            fit.probas(t).len(),
            r.len() - 2,
            "{dataset}/{method}: classes of {}",
            r[0]
        );
        for (mine, theirs) in fit.probas(t).iter().zip(&r[2..]) {
            let theirs: f64 = theirs.parse().unwrap();
            p.max_proba_diff = p.max_proba_diff.max(finite_diff(*mine, theirs));
        }
    }
    let skills = format!("{refs}/{dataset}.{method}.skills.tsv");
    if dir().join(&skills).exists() {
        for r in rows(&skills).1 {
            let w = answers.worker_index(&r[0]).unwrap();
            let theirs: f64 = r[1].parse().unwrap();
            p.max_skill_diff = p.max_skill_diff.max(finite_diff(fit.skill(w), theirs));
        }
    }
    let errors = format!("{refs}/{dataset}.{method}.errors.tsv");
    if dir().join(&errors).exists() {
        let k = classes.len();
        for r in rows(&errors).1 {
            let w = answers.worker_index(&r[0]).unwrap();
            let o = classes.iter().position(|c| *c == r[1]).unwrap();
            let m = fit.confusion(w).unwrap();
            for (c, theirs) in r[2..].iter().enumerate() {
                let theirs: f64 = theirs.parse().unwrap();
                p.max_skill_diff = p.max_skill_diff.max(finite_diff(m[o * k + c], theirs));
            }
        }
    }
    p
}

/// Probabilities (and skills, confusion matrices) must match crowd-kit's to 1e-6, except GLAD's:
/// its M-step stops at 25 conjugate-gradient iterations short of convergence, so rounding
/// differences of 1e-12 (summation order) grow from one EM iteration to the next. Where EM
/// stops within a few iterations GLAD still matches to 1e-9; on the sets that take 8–20
/// iterations it drifts to ~1e-2 (see the module docs).
fn proba_tolerance(method: &str) -> f64 {
    match method {
        "glad" => 2.5e-2,
        _ => 1e-6,
    }
}

#[test]
fn parity_with_crowd_kit() {
    let mut cases: Vec<(&str, &str)> = Vec::new();
    for d in DATASETS {
        for m in METHODS {
            cases.push((d, m));
        }
    }
    cases.push(("synth_confusion", "ds_gold"));
    cases.push(("synth_mixed", "ds_init"));
    check_parity(&cases, "ref", TieBreak::Sorted);
}

/// crowd-kit on pandas 3: the plain votes' ties go to the label seen first in the file.
#[test]
fn parity_with_crowd_kit_on_pandas_3() {
    let mut cases: Vec<(&str, &str)> = Vec::new();
    for d in DATASETS {
        for m in ["mv", "wawa", "zbs"] {
            cases.push((d, m));
        }
    }
    check_parity(&cases, "ref/pandas3", TieBreak::FirstSeen);
}

/// Prints the parity table of `cases` against the references in `refs` and fails below 99.5 %
/// label agreement or above [`proba_tolerance`].
fn check_parity(cases: &[(&str, &str)], refs: &str, ties: TieBreak) {
    let mut failures = Vec::new();
    println!(
        "| refs | dataset | method | tasks | label agreement | max prob diff | max skill/error diff |"
    );
    println!("|---|---|---|---|---|---|---|");
    for &(d, m) in cases {
        let p = parity(d, m, refs, ties);
        let agreement = p.agree as f64 / p.tasks as f64;
        println!(
            "| {refs} | {d} | {m} | {} | {:.2} % | {:.1e} | {:.1e} |",
            p.tasks,
            100.0 * agreement,
            p.max_proba_diff,
            p.max_skill_diff
        );
        let tolerance = proba_tolerance(m);
        if agreement < 0.995 || p.max_proba_diff > tolerance || p.max_skill_diff > tolerance {
            failures.push(format!("{d}/{m}"));
        }
    }
    assert!(
        failures.is_empty(),
        "parity failures ({refs}): {failures:?}"
    );
}

/// Accuracy against the known truth of the synthetic sets (the table in the module docs).
#[test]
fn accuracy_against_truth() {
    let mut header = String::from("| dataset |");
    for m in METHODS {
        header.push_str(&format!(" {m} |"));
    }
    println!("{header}");
    println!("|---|{}", "---|".repeat(METHODS.len()));
    for d in &DATASETS[1..] {
        let answers = answers(d);
        let truth = rows(&format!("{d}.truth.tsv")).1;
        let mut line = format!("| {d} |");
        let mut acc = std::collections::HashMap::new();
        for m in METHODS {
            let fit = fit(m, &answers, TieBreak::Sorted);
            let right = truth
                .iter()
                .filter(|r| fit.label(answers.task_index(&r[0]).unwrap()) == r[1])
                .count();
            let a = right as f64 / truth.len() as f64;
            acc.insert(*m, a);
            line.push_str(&format!(" {:.1} % |", 100.0 * a));
        }
        println!("{line}");
        // Dawid–Skene beats the plain vote where workers are biased or confused; it is not
        // always better (synth_imbalance: rare classes, 4×4 matrices from few answers).
        if matches!(*d, "synth_spammy" | "synth_confusion") {
            assert!(acc["ds"] > acc["mv"], "{d}: {acc:?}");
        }
    }
}

/// `|mine - theirs|`, refusing a NaN or infinity from our side (`f64::max` would drop a NaN).
fn finite_diff(mine: f64, theirs: f64) -> f64 {
    let d = (mine - theirs).abs();
    assert!(d.is_finite(), "{mine} against crowd-kit's {theirs}");
    d
}
