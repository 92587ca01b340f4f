//! Helpers shared by the scenario-test languages of the machines (`pavilion/`, `retainer/`,
//! `score/`): reading a block of lines, numbers and tags, and a readable line diff.
//! Included by each test binary with `#[path = "../common/script.rs"] mod script;`.

#![allow(dead_code)] // each binary uses the helpers it needs

use std::fmt::Write as _;

/// The non-blank, non-comment lines of a block, with runs of spaces collapsed.
pub(crate) fn lines(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|l| !l.is_empty() && !l.starts_with("//"))
        .collect()
}

/// `word` as a number, or a panic naming the line.
pub(crate) fn number(word: &str, line: &str) -> u64 {
    word.parse()
        .unwrap_or_else(|_| panic!("`{line}`: {word:?} is not a number"))
}

/// A unit enum's serde tag (`job_full`, `base`, …).
pub(crate) fn tag<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value).expect("tags serialize") {
        serde_json::Value::String(s) => s,
        other => panic!("{other} is not a plain tag"),
    }
}

/// A line diff of two lists (longest common subsequence), `-` for expected, `+` for actual.
pub(crate) fn diff(expected: &[String], actual: &[String]) -> String {
    let (n, k) = (expected.len(), actual.len());
    // lcs[i][j]: the longest common subsequence of expected[i..] and actual[j..].
    let mut lcs = vec![vec![0usize; k + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..k).rev() {
            lcs[i][j] = if expected[i] == actual[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, String::new());
    while i < n || j < k {
        if i < n && j < k && expected[i] == actual[j] {
            let _ = writeln!(out, "  {}", expected[i]);
            (i, j) = (i + 1, j + 1);
        } else if j < k && (i == n || lcs[i][j + 1] >= lcs[i + 1][j]) {
            let _ = writeln!(out, "+ {}", actual[j]);
            j += 1;
        } else {
            let _ = writeln!(out, "- {}", expected[i]);
            i += 1;
        }
    }
    out
}
