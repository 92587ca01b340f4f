//! The retainer on a simulated crowd against Erlang's loss formula: over long seeded runs,
//! the share of tasks that find the pool empty is within a stated tolerance of `B(E, c)`.
//!
//! A routed worker leaves the pool and the pool hires a replacement at once, so a pool seat is
//! busy for the recruiting time (exponential, mean `R`); tasks needing one worker arrive as a
//! Poisson stream at rate λ, and a task that finds nobody waiting is dropped. That is the
//! M/M/c/c loss system with offered load `E = λ·R`, whose blocking probability is Erlang's B —
//! so the simulated miss rate estimates `B(E, c)`. Each case runs 24 simulated hours (1 400 to
//! 4 300 tasks); the tolerance, 0.02 absolute plus 10 % of B, is about three standard errors
//! of the estimate (consecutive tasks see correlated pools, which widens the plain binomial
//! error). The 48-hour runs of seven cases in the README agree to within 0.011. A failure means the pool hires, counts or routes differently from the model.

use crowdcore::engine::RetainerEngineConfig;
use crowdcore::retainer::{RetainerConfig, erlang_b};
use crowdcore::sim::{OnMiss, RetainerStudy, run_retainer};
use crowdcore::{HitSpec, Money, SessionId};

fn study(seed: u64, tasks_per_minute: f64, recruit_min: f64, pool: u32) -> RetainerStudy {
    RetainerStudy {
        seed,
        duration_ms: 24 * 3_600_000,
        tasks_per_minute,
        workers_per_task: 1,
        pool,
        recruit_ms: recruit_min * 60_000.0,
        task_ms: 120_000.0,
        heartbeat_every_ms: 30_000,
        on_miss: OnMiss::Drop,
        spec: HitSpec {
            title: "Stand by for a task".into(),
            description: "Wait on the page; you are paid for waiting.".into(),
            keywords: Vec::new(),
            reward: Money::usd_cents(10),
            assignment_duration_ms: 86_400_000,
            lifetime_ms: 7 * 86_400_000,
            max_assignments: 100,
            auto_approval_delay_ms: 1,
            qualifications: Vec::new(),
            landing_url: "https://localhost/".into(),
            frame_height: 600,
        },
        engine: RetainerEngineConfig::new(RetainerConfig {
            heartbeat_timeout_ms: 90_000,
            ..RetainerConfig::default()
        }),
        funds: Money::usd_cents(1_000_000_000),
        session: SessionId::new("erlang"),
    }
}

#[tokio::test]
async fn the_simulated_miss_rate_follows_erlang_b() {
    // (tasks per minute, mean recruiting minutes, pool): loads of 1, 4 and 6 erlangs, with
    // pools from tight to comfortable.
    let cases = [
        (1.0, 1.0, 1),
        (2.0, 2.0, 3),
        (2.0, 2.0, 5),
        (2.0, 2.0, 7),
        (3.0, 2.0, 9),
    ];
    let mut failures = Vec::new();
    for (i, (rate, recruit, pool)) in cases.into_iter().enumerate() {
        let report = run_retainer(study(100 + i as u64, rate, recruit, pool))
            .await
            .unwrap();
        let b = erlang_b(rate * recruit, pool);
        assert!(
            (report.offered_load - rate * recruit).abs() < 1e-6,
            "the study's load is λ·R: {report:?}"
        );
        let tolerance = 0.02 + 0.1 * b;
        println!(
            "E = {:.1} erlangs, c = {pool}: {} tasks, miss rate {:.4}, Erlang-B {:.4} (± {:.4})",
            rate * recruit,
            report.tasks,
            report.miss_rate,
            b,
            tolerance
        );
        assert!(report.tasks > 1_000, "{report:?}");
        if (report.miss_rate - b).abs() > tolerance {
            failures.push(format!(
                "E = {}, c = {pool}: miss rate {} vs B {b:.4}",
                rate * recruit,
                report.miss_rate
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}
