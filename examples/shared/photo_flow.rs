//! The seed's photo-verification flow as pipeline stages, and the outputs of a run; shared by
//! the `pipeline` example (in-memory fake platform) and the `toloka_pipeline` example (Toloka).
//!
//! 1. **submit** — workers photograph a place (overlap 1); each submission's photos become
//!    validate tasks in a group named after it (`Fanout`);
//! 2. **validate** — a skill-weighted majority (`MajorityVerify` on `verdict` = `yes`)
//!    decides each photo; when the whole group is decided, the submission is accepted and
//!    forwarded to quality, or rejected;
//! 3. **quality** — if most say the photos are `good`, the submission's author gets a bonus.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crowdcore::model::Money;
use crowdcore::pipeline::{
    Action, Fanout, MajorityVerify, ObserverConfig, Pipeline, PoolId, Stage,
};

/// The pools of the three stages.
#[derive(Debug, Clone)]
pub(crate) struct Pools {
    pub(crate) submit: PoolId,
    pub(crate) validate: PoolId,
    pub(crate) quality: PoolId,
}

/// The three stages: overlap of the validate and quality tasks, the quality bonus in US cents,
/// and how every pool is observed.
pub(crate) fn stages(
    pools: Pools,
    overlap: u32,
    bonus_cents: i64,
    observer: &ObserverConfig,
) -> Vec<Stage> {
    let yes = vec![
        Action::AcceptOrigin {
            comment: "the photos show the place".into(),
        },
        Action::Forward {
            stage: "quality".into(),
        },
    ];
    let no = vec![Action::RejectOrigin {
        comment: "a photo does not show the place".into(),
    }];
    let good = vec![Action::BonusOrigin {
        amount: Money::usd_cents(bonus_cents),
        comment: "high-quality photos".into(),
    }];
    vec![
        Stage::new(
            "submit",
            pools.submit,
            1,
            Fanout::new("validate", Some("photos")),
        )
        .observer(observer.clone()),
        Stage::new(
            "validate",
            pools.validate,
            overlap,
            MajorityVerify::new("verdict", "yes", yes, no),
        )
        .observer(observer.clone()),
        Stage::new(
            "quality",
            pools.quality,
            overlap,
            MajorityVerify::new("quality", "good", good, vec![]),
        )
        .observer(observer.clone()),
    ]
}

/// A flag set when Ctrl-C is pressed (the loop stops after the tick in progress).
pub(crate) fn ctrl_c_flag() -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            flag.store(true, Ordering::SeqCst);
        }
    });
    stop
}

/// Writes `decisions.tsv` and `answers.tsv` into `out` (from the store: each decision once);
/// returns their paths.
pub(crate) async fn write_logs(
    pipeline: &Pipeline,
    out: &Path,
) -> Result<(PathBuf, PathBuf), Box<dyn std::error::Error>> {
    let (d, a) = (out.join("decisions.tsv"), out.join("answers.tsv"));
    let mut decisions = std::io::BufWriter::new(std::fs::File::create(&d)?);
    let mut answers = std::io::BufWriter::new(std::fs::File::create(&a)?);
    pipeline.write_logs(&mut decisions, &mut answers).await?;
    std::io::Write::flush(&mut decisions)?;
    std::io::Write::flush(&mut answers)?;
    Ok((d, a))
}
