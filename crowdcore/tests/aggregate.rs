//! Aggregation behaviour: bad input, tie-breaking, gold, initial errors, warm-started refits.

use crowdcore::aggregate::{
    AggregateError, Answers, DawidSkene, Glad, Gold, InitialError, InitialErrorStrategy,
    MajorityVote, MissingSkill, OneCoinDawidSkene, TieBreak, Wawa, ZeroBasedSkill,
};

fn answers(rows: &[(&str, &str, &str)]) -> Answers {
    rows.iter().copied().collect()
}

/// Every method, as (name, fit).
type Fit = fn(&Answers) -> Result<crowdcore::aggregate::Aggregation, AggregateError>;
const ALL: &[(&str, Fit)] = &[
    ("mv", |a| MajorityVote::default().fit(a)),
    ("wawa", |a| Wawa::default().fit(a)),
    ("zbs", |a| ZeroBasedSkill::default().fit(a)),
    ("ds", |a| DawidSkene::default().fit(a)),
    ("onecoin", |a| OneCoinDawidSkene::default().fit(a)),
    ("glad", |a| Glad::default().fit(a)),
];

#[test]
fn empty_input_is_an_error_for_every_method() {
    for (name, fit) in ALL {
        assert_eq!(
            fit(&Answers::new()).unwrap_err(),
            AggregateError::Empty,
            "{name}"
        );
    }
}

#[test]
fn a_task_with_one_answer_takes_that_answer() {
    let a = answers(&[
        ("t1", "ann", "cat"),
        ("t1", "bob", "cat"),
        ("t2", "ann", "dog"),
    ]);
    for (name, fit) in ALL {
        let fit = fit(&a).unwrap();
        let t2 = a.task_index("t2").unwrap();
        assert_eq!(fit.label(t2), "dog", "{name}");
        let sum: f64 = fit.probas(t2).iter().sum();
        assert!((sum - 1.0).abs() < 1e-6, "{name}: {sum}");
    }
}

#[test]
fn a_single_class_is_certain_for_every_method() {
    let a = answers(&[("t1", "ann", "x"), ("t1", "bob", "x"), ("t2", "bob", "x")]);
    for (name, fit) in ALL {
        let fit = fit(&a).unwrap();
        for t in 0..a.n_tasks() {
            assert_eq!(fit.label(t), "x", "{name}");
            assert!((fit.confidence(t) - 1.0).abs() < 1e-9, "{name}");
        }
    }
}

#[test]
fn ties_go_to_the_label_that_sorts_first() {
    let a = answers(&[
        ("t1", "ann", "dog"),
        ("t1", "bob", "cat"),
        ("t2", "ann", "b"),
        ("t2", "bob", "a"),
        ("t2", "eve", "c"),
    ]);
    let fit = MajorityVote::default().fit(&a).unwrap();
    assert_eq!(fit.label(0), "cat");
    assert_eq!(fit.label(1), "a");
    assert_eq!(fit.probas(0), &[0.0, 0.0, 0.0, 0.5, 0.5]); // classes a b c cat dog
}

/// Wawa's and ZBS's skills come from a first vote whose ties crowd-kit breaks in sorted label
/// order (pandas' `groupby` sorts the labels, `unstack` keeps them as sorted columns, `idxmax`
/// takes the first maximum), whatever order the answers come in. Here the first vote is 1-1-1
/// on t1 and 1-1 on t2: whoever gets the tie gets all the skill. Expected values are crowd-kit
/// 1.4.2's on these rows: MV labels t1 = a, t2 = b; skills ann 1, bob 0, cid 0; Wawa and ZBS
/// probabilities t1 = (1, 0, 0), t2 = (0, 1, 0). A last-maximum rule would give cid all the
/// skill and `c` on both tasks; a first-seen rule would depend on the order of the rows.
#[test]
fn wawa_and_zbs_break_the_first_votes_ties_in_sorted_label_order_in_any_row_order() {
    let rows = [
        ("t1", "cid", "c"),
        ("t1", "ann", "a"),
        ("t1", "bob", "b"),
        ("t2", "ann", "b"),
        ("t2", "cid", "c"),
    ];
    // Every order of the five rows (5! = 120, the n-th one read off n's factorial digits): the
    // result may not depend on which label comes first.
    for n in 0..120 {
        let (mut left, mut n, mut order) = ((0..rows.len()).collect::<Vec<_>>(), n, Vec::new());
        while !left.is_empty() {
            order.push(left.remove(n % left.len()));
            n /= left.len() + 1;
        }
        let a: Answers = order.iter().map(|&i| rows[i]).collect();
        let t = |name| a.task_index(name).unwrap();
        let w = |name| a.worker_index(name).unwrap();
        let mv = MajorityVote::default().fit(&a).unwrap();
        assert_eq!(
            (mv.label(t("t1")), mv.label(t("t2"))),
            ("a", "b"),
            "{order:?}"
        );
        for (name, fit) in [
            ("wawa", Wawa::default().fit(&a).unwrap()),
            ("zbs", ZeroBasedSkill::default().fit(&a).unwrap()),
        ] {
            let skills = [
                fit.skill(w("ann")),
                fit.skill(w("bob")),
                fit.skill(w("cid")),
            ];
            assert_eq!(skills, [1.0, 0.0, 0.0], "{name} {order:?}");
            assert_eq!(fit.probas(t("t1")), &[1.0, 0.0, 0.0], "{name} {order:?}");
            assert_eq!(fit.probas(t("t2")), &[0.0, 1.0, 0.0], "{name} {order:?}");
        }
    }
}

/// crowd-kit 1.4.2 on pandas 3 breaks a plain vote's ties in the order labels first appear in
/// the data (`value_counts` no longer sorts its groups); its weighted votes still sort.
/// `TieBreak::FirstSeen` reproduces that for `MajorityVote::fit` and Wawa's first vote; ZBS,
/// whose votes are all weighted, is the same under either rule. Expected values are crowd-kit
/// 1.4.2's on pandas 3.1.2, for two orders of the same rows.
#[test]
fn first_seen_ties_follow_the_order_labels_first_appear_as_crowd_kit_on_pandas_3() {
    let first_c = [
        ("t1", "cid", "c"),
        ("t1", "ann", "a"),
        ("t1", "bob", "b"),
        ("t2", "ann", "b"),
        ("t2", "cid", "c"),
    ];
    let first_b = [
        ("t1", "bob", "b"),
        ("t1", "cid", "c"),
        ("t1", "ann", "a"),
        ("t2", "ann", "b"),
        ("t2", "cid", "c"),
    ];
    // (rows, MV labels of t1 and t2, skills of ann bob cid, Wawa's probabilities of t1 and t2)
    let cases: [(&[_], _, _, [[f64; 3]; 2]); 2] = [
        (
            &first_c,
            ("c", "c"),
            [0.0, 0.0, 1.0],
            [[0.0, 0.0, 1.0], [0.0, 0.0, 1.0]],
        ),
        (
            &first_b,
            ("b", "b"),
            [0.5, 1.0, 0.0],
            [[1.0 / 3.0, 2.0 / 3.0, 0.0], [0.0, 1.0, 0.0]],
        ),
    ];
    for (rows, mv_labels, skills, wawa_probas) in cases {
        let a = answers(rows);
        let ws = ["ann", "bob", "cid"].map(|n| a.worker_index(n).unwrap());
        let mv = MajorityVote {
            ties: TieBreak::FirstSeen,
            ..MajorityVote::default()
        }
        .fit(&a)
        .unwrap();
        assert_eq!((mv.label(0), mv.label(1)), mv_labels, "{rows:?}");
        assert_eq!(ws.map(|w| mv.skill(w)), skills, "{rows:?}");
        let wawa = Wawa {
            ties: TieBreak::FirstSeen,
        }
        .fit(&a)
        .unwrap();
        assert_eq!(ws.map(|w| wawa.skill(w)), skills, "{rows:?}");
        for (t, expected) in wawa_probas.iter().enumerate() {
            for (mine, theirs) in wawa.probas(t).iter().zip(expected) {
                assert!((mine - theirs).abs() < 1e-15, "{rows:?}: {mine} {theirs}");
            }
        }
        // The default, crowd-kit on pandas < 3, does not depend on the order.
        let sorted = MajorityVote::default().fit(&a).unwrap();
        assert_eq!((sorted.label(0), sorted.label(1)), ("a", "b"));
        let zbs = ZeroBasedSkill::default().fit(&a).unwrap();
        assert_eq!(ws.map(|w| zbs.skill(w)), [1.0, 0.0, 0.0], "{rows:?}");
    }
}

#[test]
fn labels_are_strings_so_mixed_spellings_are_different_labels() {
    let a = answers(&[
        ("t1", "ann", "1"),
        ("t1", "bob", "1.0"),
        ("t1", "eve", "1.0"),
    ]);
    let fit = MajorityVote::default().fit(&a).unwrap();
    assert_eq!(fit.classes().len(), 2);
    assert_eq!(fit.label(0), "1.0");
}

#[test]
fn duplicate_answers_count_in_votes_but_once_in_accuracy() {
    let a = answers(&[
        ("t1", "ann", "a"),
        ("t1", "ann", "a"),
        ("t1", "bob", "b"),
        ("t2", "ann", "b"),
    ]);
    let fit = MajorityVote::default().fit(&a).unwrap();
    assert_eq!(fit.label(0), "a");
    assert!((fit.probas(0)[0] - 2.0 / 3.0).abs() < 1e-12);
    assert_eq!(fit.skill(a.worker_index("ann").unwrap()), 1.0);
    for (name, fit) in ALL {
        fit(&a).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[test]
fn weighted_vote_handles_missing_and_invalid_skills() {
    let a = answers(&[("t1", "ann", "a"), ("t1", "bob", "b"), ("t1", "eve", "b")]);
    let mv = MajorityVote::default();
    assert_eq!(
        mv.fit_weighted(&a, [("ann", 0.9), ("bob", 0.3)])
            .unwrap_err(),
        AggregateError::MissingSkill {
            worker: "eve".into()
        }
    );
    let ignore = MajorityVote {
        missing_skill: MissingSkill::Ignore,
        ..MajorityVote::default()
    };
    let fit = ignore
        .fit_weighted(&a, [("ann", 0.9), ("bob", 0.3)])
        .unwrap();
    assert_eq!(fit.label(0), "a");
    assert!(fit.skill(a.worker_index("eve").unwrap()).is_nan());
    assert_eq!(
        ignore.fit_weighted(&a, [("nobody", 1.0)]).unwrap_err(),
        AggregateError::NoSkilledAnswer { task: "t1".into() }
    );
    let value = MajorityVote {
        missing_skill: MissingSkill::Value(0.5),
        ..MajorityVote::default()
    };
    assert_eq!(
        value.fit_weighted(&a, [("ann", 0.9)]).unwrap().label(0),
        "b"
    );
    assert!(matches!(
        mv.fit_weighted(&a, [("ann", -1.0), ("bob", 1.0), ("eve", 1.0)]),
        Err(AggregateError::InvalidSkill { .. })
    ));
    // All weights zero: plain vote shares.
    let zero = mv
        .fit_weighted(&a, [("ann", 0.0), ("bob", 0.0), ("eve", 0.0)])
        .unwrap();
    assert_eq!(zero.label(0), "b");
}

#[test]
fn gold_for_unknown_tasks_is_ignored_and_unknown_gold_labels_are_errors() {
    let a = answers(&[("t1", "ann", "a"), ("t1", "bob", "b"), ("t2", "ann", "a")]);
    let ds = DawidSkene::default();
    let gold: Gold = [("t1", "b"), ("nope", "a")].into_iter().collect();
    let fit = ds.fit_with(&a, Some(&gold), None).unwrap();
    assert_eq!(fit.ignored_gold(), 1);
    assert_eq!(fit.label(0), "b");
    let bad: Gold = [("t1", "zebra")].into_iter().collect();
    assert_eq!(
        ds.fit_with(&a, Some(&bad), None).unwrap_err(),
        AggregateError::UnknownGoldLabel {
            task: "t1".into(),
            label: "zebra".into()
        }
    );
}

#[test]
fn initial_error_assign_needs_every_row_and_normalized_probabilities() {
    let a = answers(&[("t1", "ann", "a"), ("t1", "bob", "b"), ("t2", "ann", "b")]);
    let ds = DawidSkene::default();
    let mut partial = InitialError::new(InitialErrorStrategy::Assign);
    partial.insert("ann", "a", "a", 0.9);
    partial.insert("ann", "a", "b", 0.1);
    assert!(matches!(
        ds.fit_with(&a, None, Some(&partial)),
        Err(AggregateError::MissingInitialError { .. })
    ));
    let mut full = InitialError::new(InitialErrorStrategy::Assign);
    for w in ["ann", "bob"] {
        full.insert(w, "a", "a", 0.9);
        full.insert(w, "a", "b", 0.3);
        full.insert(w, "b", "a", 0.1);
        full.insert(w, "b", "b", 0.8);
    }
    assert!(matches!(
        ds.fit_with(&a, None, Some(&full)),
        Err(AggregateError::InitialErrorNotNormalized { .. })
    ));
    let mut counts = InitialError::new(InitialErrorStrategy::Assign);
    for w in ["ann", "bob"] {
        counts.insert(w, "a", "a", 9.0);
        counts.insert(w, "a", "b", 1.0);
        counts.insert(w, "b", "a", 1.0);
        counts.insert(w, "b", "b", 9.0);
    }
    ds.fit_with(&a, None, Some(&counts)).unwrap();
    let mut unknown = InitialError::new(InitialErrorStrategy::Addition);
    unknown.insert("ann", "a", "q", 1.0);
    assert!(matches!(
        ds.fit_with(&a, None, Some(&unknown)),
        Err(AggregateError::InvalidInitialError { .. })
    ));
}

/// A deterministic crowd: `n_tasks` tasks, `per_task` answers, workers of mixed quality.
fn crowd(
    n_tasks: usize,
    per_task: usize,
    n_workers: usize,
    k: usize,
) -> Vec<(String, String, String)> {
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut rows = Vec::new();
    for t in 0..n_tasks {
        let truth = (next() % k as u64) as usize;
        for j in 0..per_task {
            let w = (t * 7 + j * 13 + (next() % 5) as usize) % n_workers;
            let accuracy = 0.5 + 0.45 * (w % 10) as f64 / 9.0;
            let right = (next() % 10_000) as f64 / 10_000.0 < accuracy;
            let label = if right {
                truth
            } else {
                (next() % k as u64) as usize
            };
            rows.push((format!("t{t}"), format!("w{w}"), format!("c{label}")));
        }
    }
    rows
}

#[test]
fn refit_after_new_answers_matches_a_cold_fit_in_fewer_iterations() {
    let rows = crowd(2_000, 5, 60, 4);
    let split = rows.len() * 9 / 10;
    let mut a: Answers = rows[..split].iter().map(|(t, w, l)| (t, w, l)).collect();
    // Converged tightly, the warm and the cold fit reach optima as good as each other (EM
    // finds a local optimum; here they differ on one near-tied task) …
    let tight = DawidSkene {
        n_iter: 1_000,
        tol: 1e-10,
    };
    let before = tight.fit(&a).unwrap();
    let ds = DawidSkene::default();
    let before_default = ds.fit(&a).unwrap();
    for (t, w, l) in &rows[split..] {
        a.push(t, w, l);
    }
    let cold = tight.fit(&a).unwrap();
    let warm = tight.refit(&a, &before, None).unwrap();
    let agree = (0..a.n_tasks())
        .filter(|&t| cold.label(t) == warm.label(t))
        .count();
    assert!(
        agree as f64 >= 0.995 * a.n_tasks() as f64,
        "{agree} / {}",
        a.n_tasks()
    );
    let (lw, lc) = (warm.loss_history(), cold.loss_history());
    assert!(
        lw.last().unwrap() >= &(lc.last().unwrap() - 1e-4),
        "{lw:?} vs {lc:?}"
    );
    // … and with crowd-kit's tolerance the warm fit stops sooner, at nearly the same labels.
    let cold = ds.fit(&a).unwrap();
    let warm = ds.refit(&a, &before_default, None).unwrap();
    assert!(
        warm.iterations() < cold.iterations(),
        "{} vs {}",
        warm.iterations(),
        cold.iterations()
    );
    let agree = (0..a.n_tasks())
        .filter(|&t| cold.label(t) == warm.label(t))
        .count();
    assert!(
        agree as f64 >= 0.99 * a.n_tasks() as f64,
        "{agree} / {}",
        a.n_tasks()
    );

    // One-coin and GLAD warm starts too.
    let one = OneCoinDawidSkene::default();
    let one_before = one.fit(&a).unwrap();
    let one_warm = one.refit(&a, &one_before).unwrap();
    assert!(one_warm.iterations() <= 3);
    let glad = Glad {
        n_iter: 10,
        ..Glad::default()
    };
    let glad_before = glad.fit(&a).unwrap();
    let glad_warm = glad.refit(&a, &glad_before).unwrap();
    let same = (0..a.n_tasks())
        .filter(|&t| glad_before.label(t) == glad_warm.label(t))
        .count();
    assert!(same as f64 >= 0.99 * a.n_tasks() as f64);
}

#[test]
fn refit_refuses_a_fit_of_something_else() {
    let a = answers(&[("t1", "ann", "a"), ("t1", "bob", "b")]);
    let mv = MajorityVote::default().fit(&a).unwrap();
    assert!(matches!(
        DawidSkene::default().refit(&a, &mv, None),
        Err(AggregateError::WarmStartMismatch(_))
    ));
    let bigger = answers(&[("t1", "ann", "a"), ("t1", "bob", "b"), ("t2", "eve", "c")]);
    let fit = DawidSkene::default().fit(&bigger).unwrap();
    assert!(matches!(
        DawidSkene::default().refit(&a, &fit, None),
        Err(AggregateError::WarmStartMismatch(_))
    ));
}

#[test]
fn dawid_skene_reports_confusion_priors_and_skills() {
    let a = answers(&[
        ("t1", "ann", "a"),
        ("t1", "bob", "a"),
        ("t2", "ann", "b"),
        ("t2", "bob", "b"),
        ("t3", "ann", "a"),
        ("t3", "bob", "b"),
    ]);
    let fit = DawidSkene::default().fit(&a).unwrap();
    let priors = fit.priors().unwrap();
    assert!((priors.iter().sum::<f64>() - 1.0).abs() < 1e-6);
    for w in 0..a.n_workers() {
        let m = fit.confusion(w).unwrap();
        for c in 0..2 {
            assert!(((m[c] + m[2 + c]) - 1.0).abs() < 1e-9, "{m:?}");
        }
        assert!((0.0..=1.0).contains(&fit.skill(w)));
    }
}
