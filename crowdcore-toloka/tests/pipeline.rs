//! `TolokaPipeline` (crowdcore's `PipelinePlatform` on Toloka) against the fake Toloka: the
//! request each method sends, idempotency of creations and bonuses under lost answers,
//! reviews idempotent by state, error kinds, pool state, the fake's auto-close.

mod common;

use axum::http::Method;
use common::*;
use crowdcore::model::{AssignmentId, EffectId, Money, SessionId, Timestamp, WorkerId};
use crowdcore::pipeline::{
    AssignmentQuery, AssignmentStatus, NewTask, PipelinePlatform, PoolId, PoolStatus, SortBy,
    TimeField, operation_id,
};
use crowdcore::platform::{IdempotencyKey, PlatformErrorKind};
use crowdcore_toloka::TolokaPipeline;
use crowdcore_toloka::fake::Fault;
use serde_json::json;

/// The runtime's key for effect `seq` of a session.
fn key(seq: u64) -> IdempotencyKey {
    IdempotencyKey::for_effect(&EffectId::new(SessionId::new("toloka-test"), seq))
}

fn new_task(n: usize, group: Option<&str>) -> NewTask {
    NewTask {
        input_values: inputs(json!({ "item": format!("photo-{n}") })),
        overlap: 2,
        group: group.map(str::to_owned),
    }
}

fn query(pool: &str) -> AssignmentQuery {
    AssignmentQuery {
        pool: PoolId::new(pool),
        status: vec![AssignmentStatus::Submitted],
        field: TimeField::Submitted,
        gte: None,
        lt: None,
        id_gt: None,
        sort: SortBy::TimeThenId,
        limit: 2,
    }
}

/// A pool with `n` tasks of overlap 1, open, each answered by worker `w<i>`.
async fn answered_pool(w: &World, p: &TolokaPipeline, n: usize) -> String {
    let pool = w.fake.create_pool("prj", cents(5));
    let tasks: Vec<NewTask> = (0..n)
        .map(|i| NewTask {
            overlap: 1,
            ..new_task(i, None)
        })
        .collect();
    p.create_tasks(&PoolId::new(&pool), &tasks, &key(1))
        .await
        .unwrap();
    p.open_pool(&PoolId::new(&pool)).await.unwrap();
    for i in 0..n {
        let a = w.fake.take_next(&pool, &format!("w{i}")).unwrap().unwrap();
        w.fake.submit(&a, json!({ "verdict": "yes" })).unwrap();
        w.clock.advance(1_000);
    }
    pool
}

#[tokio::test]
async fn listing_sends_the_query_filters_and_pages_by_id() {
    let w = world().await;
    let p = TolokaPipeline::new(w.client.clone());
    let pool = answered_pool(&w, &p, 3).await;

    let mut q = query(&pool);
    q.gte = Some(Timestamp::from_millis(START_MS));
    q.lt = Some(Timestamp::from_millis(START_MS + 60_000));
    let page = p.list_assignments(&q).await.unwrap();
    let sent = calls(&w.fake, "GET", "/assignments").pop().unwrap();
    assert_eq!(sent.param("pool_id"), Some(pool.as_str()));
    assert_eq!(sent.param("status"), Some("SUBMITTED"));
    assert_eq!(sent.param("submitted_gte"), Some("2024-05-01T00:00:00.000"));
    assert_eq!(sent.param("submitted_lt"), Some("2024-05-01T00:01:00.000"));
    assert_eq!(sent.param("sort"), Some("submitted,id"));
    assert_eq!(sent.param("limit"), Some("2"));
    assert_eq!(sent.param("id_gt"), None);
    assert_eq!(page.items.len(), 2);
    assert!(page.has_more);
    let first = &page.items[0];
    assert_eq!(first.pool.as_str(), pool);
    assert_eq!(first.worker, WorkerId::new("w0"));
    assert_eq!(first.status, AssignmentStatus::Submitted);
    assert_eq!(first.created, Timestamp::from_millis(START_MS));
    assert_eq!(first.submitted, Some(Timestamp::from_millis(START_MS)));
    assert_eq!(first.tasks[0].input_values["item"], "photo-0");
    assert_eq!(first.solutions[0].output_values["verdict"], "yes");

    // The next page by id.
    q.id_gt = Some(page.items[1].id.clone());
    q.sort = SortBy::Id;
    let rest = p.list_assignments(&q).await.unwrap();
    let sent = calls(&w.fake, "GET", "/assignments").pop().unwrap();
    assert_eq!(sent.param("id_gt"), Some(page.items[1].id.as_str()));
    assert_eq!(sent.param("sort"), Some("id"));
    assert_eq!(rest.items.len(), 1);
    assert!(!rest.has_more);
    assert!(rest.items[0].id > page.items[1].id);

    // Nothing before the bound.
    q.id_gt = None;
    q.lt = Some(Timestamp::from_millis(START_MS));
    assert!(p.list_assignments(&q).await.unwrap().items.is_empty());
}

#[tokio::test]
async fn the_listing_lags_and_its_faults_are_retried() {
    let w = world_with(|c| c.listing_lag_ms = 5_000).await;
    let p = TolokaPipeline::new(w.client.clone());
    let pool = answered_pool(&w, &p, 2).await;
    // Submitted at +0 s and +1 s; the clock is at +2 s: a 5 s lag shows neither.
    assert!(
        p.list_assignments(&query(&pool))
            .await
            .unwrap()
            .items
            .is_empty()
    );
    w.clock.advance(5_000);
    w.fake
        .inject(Some(Method::GET), "/assignments", Fault::Throttle, 1);
    w.fake
        .inject(Some(Method::GET), "/assignments", Fault::Unavailable, 1);
    let page = p.list_assignments(&query(&pool)).await.unwrap();
    assert_eq!(page.items.len(), 2);
    assert_eq!(w.fake.faults_injected(), 2);

    w.fake
        .inject(Some(Method::GET), "/assignments", Fault::Unavailable, 100);
    let err = p.list_assignments(&query(&pool)).await.unwrap_err();
    assert_eq!(err.kind, PlatformErrorKind::Unavailable);
    assert!(err.is_retryable());
}

#[tokio::test]
async fn tasks_are_created_once_per_key_with_the_group_in_their_input() {
    let w = world().await;
    let p = TolokaPipeline::new(w.client.clone());
    let pool = w.fake.create_pool("prj", cents(5));
    let k = key(2);
    let tasks = vec![new_task(0, Some("sub-1")), new_task(1, Some("sub-1"))];

    // The first answer is lost after the work was done; the client retries with the same
    // operation id, and the fake answers OPERATION_ALREADY_EXISTS: one operation.
    w.fake
        .inject(Some(Method::POST), "/tasks", Fault::LostAnswer, 1);
    let ids = p
        .create_tasks(&PoolId::new(&pool), &tasks, &k)
        .await
        .unwrap();
    assert_eq!(ids.len(), 2);
    assert_eq!(
        w.fake.task_ids(&pool),
        ids.iter().map(|t| t.0.clone()).collect::<Vec<_>>()
    );
    let posts = calls(&w.fake, "POST", "/tasks");
    assert_eq!(posts.len(), 2);
    for post in &posts {
        assert_eq!(post.param("async_mode"), Some("true"));
        assert_eq!(
            post.param("operation_id"),
            Some(operation_id(&k).to_string().as_str())
        );
        assert_eq!(post.body[0]["pool_id"], pool.as_str());
        assert_eq!(post.body[0]["overlap"], 2);
        assert_eq!(post.body[0]["input_values"]["group"], "sub-1");
    }
    assert_eq!(w.fake.operation_repeats(), 1);
    assert_eq!(w.fake.task_input(&ids[1].0).unwrap()["item"], "photo-1");
    assert_eq!(w.fake.task_overlap(&ids[0].0), Some(2));

    // The runtime sends it again after a crash: the same ids, nothing new.
    let again = p
        .create_tasks(&PoolId::new(&pool), &tasks, &k)
        .await
        .unwrap();
    assert_eq!(again, ids);
    assert_eq!(w.fake.task_count(), 2);
    assert_eq!(w.fake.operation_repeats(), 2);

    // Another key creates more.
    p.create_tasks(&PoolId::new(&pool), &tasks[..1], &key(3))
        .await
        .unwrap();
    assert_eq!(w.fake.task_count(), 3);
}

#[tokio::test]
async fn invalid_tasks_are_a_permanent_error() {
    let w = world().await;
    let p = TolokaPipeline::new(w.client.clone());
    let err = p
        .create_tasks(&PoolId::new("nope"), &[new_task(0, None)], &key(4))
        .await
        .unwrap_err();
    assert_eq!(err.kind, PlatformErrorKind::BadRequest, "{err}");
    assert!(!err.is_retryable());
    assert_eq!(w.fake.task_count(), 0);
    let err = p
        .create_tasks(&PoolId::new("nope"), &[], &key(5))
        .await
        .unwrap_err();
    assert_eq!(err.kind, PlatformErrorKind::BadRequest);
}

#[tokio::test]
async fn reviews_are_idempotent_by_state_and_the_opposite_state_is_permanent() {
    let w = world().await;
    let p = TolokaPipeline::new(w.client.clone());
    let pool = answered_pool(&w, &p, 3).await;
    let page = p
        .list_assignments(&AssignmentQuery {
            limit: 10,
            ..query(&pool)
        })
        .await
        .unwrap();
    let [a, b, c] = [0, 1, 2].map(|i| page.items[i].id.clone());
    let k = key(6);

    // A lost answer after the accept: the retry finds it accepted.
    w.fake
        .inject(Some(Method::PATCH), "/assignments/", Fault::LostAnswer, 1);
    p.accept(&a, "thanks", &k).await.unwrap();
    p.accept(&a, "thanks", &k).await.unwrap();
    let patch = calls(&w.fake, "PATCH", "/assignments/").pop().unwrap();
    assert_eq!(patch.path, format!("/assignments/{a}"));
    assert_eq!(
        patch.body,
        json!({ "status": "ACCEPTED", "public_comment": "thanks" })
    );
    assert_eq!(
        w.fake.assignment_status(a.as_str()),
        Some(crowdcore_toloka::model::AssignmentStatus::Accepted)
    );
    assert_eq!(w.fake.review_repeats(), 2);

    p.reject(&b, "blurry", &k).await.unwrap();
    p.reject(&b, "blurry", &k).await.unwrap();
    assert_eq!(
        w.fake.assignment_comment(b.as_str()).as_deref(),
        Some("blurry")
    );

    let err = p.reject(&a, "no", &k).await.unwrap_err();
    assert_eq!(err.kind, PlatformErrorKind::Conflict, "{err}");
    assert!(!err.is_retryable());
    let err = p.accept(&b, "yes", &k).await.unwrap_err();
    assert_eq!(err.kind, PlatformErrorKind::Conflict);

    // Still with its worker: retryable.
    let active = {
        let t = p
            .create_tasks(&PoolId::new(&pool), &[new_task(9, None)], &key(7))
            .await
            .unwrap();
        w.fake.take(&t[0].0, "w9").unwrap()
    };
    let err = p
        .accept(&AssignmentId::new(active), "x", &k)
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{err}");
    let err = p
        .accept(&AssignmentId::new("missing"), "x", &k)
        .await
        .unwrap_err();
    assert_eq!(err.kind, PlatformErrorKind::NotFound);
    p.accept(&c, "ok", &k).await.unwrap();
}

#[tokio::test]
async fn bonuses_are_paid_once_per_key() {
    let w = world().await;
    let p = TolokaPipeline::new(w.client.clone());
    let pool = answered_pool(&w, &p, 1).await;
    let a = p.list_assignments(&query(&pool)).await.unwrap().items[0].clone();
    let k = key(8);

    w.fake
        .inject(Some(Method::POST), "/user-bonuses", Fault::LostAnswer, 1);
    let before = w.fake.charged();
    p.bonus(
        &a.worker,
        Some(&a.id),
        Money::usd_cents(25),
        "great photos",
        &k,
    )
    .await
    .unwrap();
    p.bonus(
        &a.worker,
        Some(&a.id),
        Money::usd_cents(25),
        "great photos",
        &k,
    )
    .await
    .unwrap();
    let bonuses = w.fake.bonuses();
    assert_eq!(bonuses.len(), 1);
    assert_eq!(bonuses[0]["user_id"], "w0");
    assert_eq!(bonuses[0]["assignment_id"], a.id.as_str());
    assert_eq!(w.fake.charged().micros - before.micros, 250_000);
    let post = calls(&w.fake, "POST", "/user-bonuses").pop().unwrap();
    assert_eq!(
        post.param("operation_id"),
        Some(operation_id(&k).to_string().as_str())
    );
    assert_eq!(post.body[0]["public_message"]["EN"], "great photos");
    assert_eq!(w.fake.operation_repeats(), 2);

    let eur = Money::new(25, crowdcore::model::Currency::new("EUR").unwrap());
    let err = p
        .bonus(&a.worker, None, eur, "x", &key(9))
        .await
        .unwrap_err();
    assert_eq!(err.kind, PlatformErrorKind::BadRequest);
    assert_eq!(w.fake.bonuses().len(), 1);
}

#[tokio::test]
async fn pools_report_their_state_and_close_when_complete() {
    let w = world().await;
    w.fake.set_auto_close(true);
    let p = TolokaPipeline::new(w.client.clone());
    let pool = w.fake.create_pool("prj", cents(5));
    let id = PoolId::new(&pool);
    let info = p.pool(&id).await.unwrap();
    assert_eq!(info.status, PoolStatus::Closed);
    assert_eq!(info.last_started, None);

    // Opening an empty pool is refused for good.
    let err = p.open_pool(&id).await.unwrap_err();
    assert_eq!(err.kind, PlatformErrorKind::Conflict);

    let t = p
        .create_tasks(
            &id,
            &[NewTask {
                overlap: 1,
                ..new_task(0, None)
            }],
            &key(10),
        )
        .await
        .unwrap();
    w.fake
        .inject(Some(Method::POST), "/pools/", Fault::Unavailable, 1);
    p.open_pool(&id).await.unwrap();
    p.open_pool(&id).await.unwrap();
    let info = p.pool(&id).await.unwrap();
    assert_eq!(info.status, PoolStatus::Open);
    assert_eq!(info.last_started, Some(Timestamp::from_millis(START_MS)));

    w.clock.advance(3_000);
    let a = w.fake.take(&t[0].0, "w1").unwrap();
    w.fake.submit(&a, json!({ "verdict": "no" })).unwrap();
    let info = p.pool(&id).await.unwrap();
    assert_eq!(info.status, PoolStatus::Closed);
    assert_eq!(
        info.last_stopped,
        Some(Timestamp::from_millis(START_MS + 3_000))
    );

    // Opened with nothing left to do, it closes again by itself.
    w.clock.advance(500);
    p.open_pool(&id).await.unwrap();
    let info = p.pool(&id).await.unwrap();
    assert_eq!(info.status, PoolStatus::Closed);
    assert_eq!(
        info.last_stopped,
        Some(Timestamp::from_millis(START_MS + 3_500))
    );

    p.create_tasks(&id, &[new_task(1, None)], &key(11))
        .await
        .unwrap();
    p.open_pool(&id).await.unwrap();
    assert_eq!(p.pool(&id).await.unwrap().status, PoolStatus::Open);
    w.clock.advance(500);
    p.close_pool(&id).await.unwrap();
    p.close_pool(&id).await.unwrap();
    let info = p.pool(&id).await.unwrap();
    assert_eq!(info.status, PoolStatus::Closed);
    assert_eq!(
        info.last_stopped,
        Some(Timestamp::from_millis(START_MS + 4_000))
    );
    assert_eq!(
        p.pool(&PoolId::new("nope")).await.unwrap_err().kind,
        PlatformErrorKind::NotFound
    );
}

// ----- pool operations that take time and lock the pool ----------------------------------

/// Moves the fake's clock 50 ms every millisecond of real time, so timed pool operations
/// complete while the client polls them.
fn ticking(w: &World) -> tokio::task::JoinHandle<()> {
    let clock = w.clock.clone();
    tokio::spawn(async move {
        loop {
            clock.advance(50);
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
    })
}

/// The operations the fake ran of this type.
async fn operations_of(w: &World, kind: &str) -> Vec<crowdcore_toloka::model::Operation> {
    w.client
        .find_operations(Some(kind), None, None)
        .await
        .unwrap()
        .items
}

#[tokio::test]
async fn a_lost_answer_of_an_open_waits_for_its_operation() {
    let w = world_with(|c| c.pool_operation_ms = 2_000).await;
    let p = TolokaPipeline::new(w.client.clone());
    let pool = w.fake.create_pool("prj", cents(5));
    let id = PoolId::new(&pool);
    p.create_tasks(&id, &[new_task(0, None)], &key(20))
        .await
        .unwrap();
    let _clock = ticking(&w);

    // The open is carried out, its answer lost; the retry meets the pool locked by that very
    // operation (409 POOL_LOCKED_BY_ANOTHER_OPERATION), waits for it, and finds the pool open.
    w.fake
        .inject(Some(Method::POST), "/pools/", Fault::LostAnswer, 1);
    p.open_pool(&id).await.unwrap();
    assert_eq!(p.pool(&id).await.unwrap().status, PoolStatus::Open);
    assert_eq!(w.fake.pool_lock(&pool), None);
    let opens = operations_of(&w, "POOL.OPEN").await;
    assert_eq!(opens.len(), 1, "one open operation: {opens:?}");
    assert!(
        calls(&w.fake, "GET", "/operations")
            .iter()
            .any(|r| r.path == "/operations" && r.param("status") == Some("RUNNING")),
        "the running operation was looked up"
    );
    // Opened (lost), locked, then open: 204.
    assert_eq!(calls(&w.fake, "POST", "/pools/").len(), 3);
}

#[tokio::test]
async fn a_lock_held_by_a_close_is_waited_out_and_the_pool_opened_again() {
    let w = world_with(|c| c.pool_operation_ms = 2_000).await;
    let p = TolokaPipeline::new(w.client.clone());
    let pool = w.fake.create_pool("prj", cents(5));
    let id = PoolId::new(&pool);
    p.create_tasks(&id, &[new_task(0, None)], &key(21))
        .await
        .unwrap();
    let clock = ticking(&w);
    p.open_pool(&id).await.unwrap();
    clock.abort();

    // Someone (the requester, another run) starts closing the pool; it is still open, and
    // locked, when the pipeline opens it for new tasks.
    let close = w.client.close_pool_async(&pool).await.unwrap().unwrap();
    assert_eq!(w.fake.pool_lock(&pool), Some(close.id.clone()));
    assert_eq!(w.fake.pool_status(&pool).as_deref(), Some("OPEN"));
    let _clock = ticking(&w);
    p.open_pool(&id).await.unwrap();
    // The close finished, then the open ran: open, not left closed.
    assert_eq!(p.pool(&id).await.unwrap().status, PoolStatus::Open);
    assert_eq!(operations_of(&w, "POOL.CLOSE").await.len(), 1);
    assert_eq!(operations_of(&w, "POOL.OPEN").await.len(), 2);

    // A close waits for a running open the same way, and closes.
    let open = {
        w.client.close_pool(&pool).await.unwrap();
        w.client.open_pool_async(&pool).await.unwrap().unwrap()
    };
    assert_eq!(w.fake.pool_lock(&pool), Some(open.id));
    p.close_pool(&id).await.unwrap();
    assert_eq!(p.pool(&id).await.unwrap().status, PoolStatus::Closed);
}

#[tokio::test]
async fn a_pool_locked_past_the_wait_limit_is_a_retryable_error() {
    let w = world_with(|c| c.pool_operation_ms = 60_000).await;
    let mut config = client_config(&w.fake);
    config.operation_wait = std::time::Duration::from_millis(50);
    let client = crowdcore_toloka::TolokaClient::new(config).unwrap();
    let p = TolokaPipeline::new(client);
    let pool = w.fake.create_pool("prj", cents(5));
    let id = PoolId::new(&pool);
    p.create_tasks(&id, &[new_task(0, None)], &key(22))
        .await
        .unwrap();
    w.client.open_pool_async(&pool).await.unwrap().unwrap();
    // The clock stands still: the open never ends within the wait.
    let err = p.open_pool(&id).await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert_eq!(w.fake.pool_status(&pool).as_deref(), Some("CLOSED"));
}

/// A pipeline whose submit stage fans each submission out to the validate stage, on a
/// memory store, with the fake's clock and no listing lag.
async fn fanout_pipeline(
    w: &World,
    client: crowdcore_toloka::TolokaClient,
    store: std::sync::Arc<dyn crowdcore::store::Store>,
    pools: (&str, &str),
) -> crowdcore::pipeline::Pipeline {
    use crowdcore::pipeline::{
        Fanout, MajorityVerify, ObserverConfig, PipelineBuilder, PipelineConfig, Stage,
    };
    let observer = ObserverConfig {
        lag_ms: 0,
        ..ObserverConfig::default()
    };
    PipelineBuilder::new(
        std::sync::Arc::new(TolokaPipeline::new(client)),
        store,
        SessionId::new("locks"),
    )
    .clock(w.clock.clone())
    .config(PipelineConfig {
        period_ms: 1_000,
        lease_ttl_ms: 5_000,
        ..PipelineConfig::default()
    })
    .stage(
        Stage::new(
            "submit",
            PoolId::new(pools.0),
            1,
            Fanout::new("validate", Some("photos")),
        )
        .observer(observer.clone()),
    )
    .stage(
        Stage::new(
            "validate",
            PoolId::new(pools.1),
            1,
            MajorityVerify::new("verdict", "yes", vec![], vec![]),
        )
        .observer(observer),
    )
    .start()
    .await
    .unwrap()
}

#[tokio::test]
async fn a_restart_resending_an_open_the_killed_run_left_running_completes_the_decision() {
    let w = world_with(|c| c.pool_operation_ms = 2_000).await;
    let store: std::sync::Arc<dyn crowdcore::store::Store> =
        std::sync::Arc::new(crowdcore::store::MemoryStore::new());
    let submit = w.fake.create_pool("prj", cents(5));
    let validate = w.fake.create_pool("prj", cents(5));
    w.client
        .create_tasks(
            &[crowdcore_toloka::model::NewTask::new(
                &submit,
                inputs(json!({ "place": "p1" })),
                1,
            )],
            crowdcore_toloka::model::CreateTasksOptions {
                open_pool: true,
                ..Default::default()
            },
            None,
        )
        .await
        .unwrap();
    let a = w.fake.take_next(&submit, "w1").unwrap().unwrap();
    w.fake
        .submit(&a, json!({ "photos": ["ph-1", "ph-2"] }))
        .unwrap();
    w.clock.advance(1_000);

    // The first run creates the validate tasks and sends the open; its answer is lost, and
    // the run dies before it hears more (one try, no retries): the decision stays pending.
    let mut once = client_config(&w.fake);
    once.retry.max_attempts = 1;
    let first = crowdcore_toloka::TolokaClient::new(once).unwrap();
    let mut run = fanout_pipeline(&w, first, store.clone(), (&submit, &validate)).await;
    w.fake.inject(
        Some(Method::POST),
        &format!("/pools/{validate}/open"),
        Fault::LostAnswer,
        1,
    );
    let tick = run.tick().await.unwrap();
    assert_eq!(tick.pending, 1, "{tick:?}");
    assert_eq!(w.fake.task_ids(&validate).len(), 2);
    assert!(w.fake.pool_lock(&validate).is_some(), "the open is running");
    run.release().await.unwrap();
    drop(run);

    // The restart sends the decision again: the tasks exist (OPERATION_ALREADY_EXISTS), the
    // open meets the pool locked by the first run's operation, waits for it, and is done.
    let _clock = ticking(&w);
    let mut run = fanout_pipeline(&w, w.client.clone(), store, (&submit, &validate)).await;
    let tick = run.tick().await.unwrap();
    assert_eq!(tick.pending, 0, "{tick:?}");
    let report = run.report().await.unwrap();
    assert_eq!(
        report.decisions[&("validate".to_owned(), "create_tasks".to_owned())],
        (1, 0, 0),
        "{report}"
    );
    assert_eq!(w.fake.pool_status(&validate).as_deref(), Some("OPEN"));
    assert_eq!(w.fake.task_ids(&validate).len(), 2, "no task twice");
    assert_eq!(operations_of(&w, "POOL.OPEN").await.len(), 1, "one open");
    assert!(
        calls(&w.fake, "POST", &format!("/pools/{validate}/open")).len() >= 3,
        "lost, locked, then 204"
    );
}

// ----- stage specs checked up front --------------------------------------------------------

/// The validate stage's project as the handlers fill it: what `Fanout` writes, all required.
fn validate_spec() -> serde_json::Value {
    json!({
        "item": { "type": "url" },
        "group": { "type": "string" },
        "group_size": { "type": "integer" },
        "origin_assignment": { "type": "string" },
        "origin_stage": { "type": "string" },
        "origin_worker": { "type": "string" },
    })
}

/// The quality stage's project: what `Action::Forward` writes.
fn quality_spec() -> serde_json::Value {
    json!({
        "items": { "type": "array_url" },
        "group": { "type": "string" },
        "group_size": { "type": "integer" },
        "origin_assignment": { "type": "string" },
        "origin_stage": { "type": "string" },
        "origin_worker": { "type": "string" },
    })
}

/// The seed README's single field list, on one project: every field required (Toloka's
/// default), so `items` (validate) or `item` (quality) is required but never written.
fn readme_spec() -> serde_json::Value {
    let mut all = validate_spec();
    all["items"] = json!({ "type": "array_string" });
    all
}

fn stage_specs(pools: [&str; 3]) -> Vec<crowdcore_toloka::StageSpec> {
    use crowdcore_toloka::{StageSpec, fanout_inputs, forward_inputs};
    vec![
        StageSpec::new("submit", PoolId::new(pools[0]), vec![], &["photos"]),
        StageSpec::new(
            "validate",
            PoolId::new(pools[1]),
            fanout_inputs(json!("https://img/1.png")),
            &["verdict"],
        ),
        StageSpec::new(
            "quality",
            PoolId::new(pools[2]),
            forward_inputs(json!(["https://img/1.png"])),
            &["quality"],
        ),
    ]
}

/// Three pools on projects with these input specs (the submit project takes a `place`).
fn three_pools(w: &World, validate: serde_json::Value, quality: serde_json::Value) -> [String; 3] {
    let submit = w.fake.create_project(
        json!({ "place": { "type": "string" } }),
        json!({ "photos": { "type": "array_url" } }),
    );
    let validate = w
        .fake
        .create_project(validate, json!({ "verdict": { "type": "string" } }));
    let quality = w
        .fake
        .create_project(quality, json!({ "quality": { "type": "string" } }));
    [submit, validate, quality].map(|p| w.fake.create_pool(&p, cents(5)))
}

#[tokio::test]
async fn stage_specs_that_fit_the_handlers_pass_and_only_reads_are_sent() {
    let w = world().await;
    let p = TolokaPipeline::new(w.client.clone());
    let pools = three_pools(&w, validate_spec(), quality_spec());
    p.check_stages(&stage_specs(pools.each_ref().map(String::as_str)))
        .await
        .unwrap();
    assert!(w.fake.requests().iter().all(|r| r.method == "GET"));
    assert_eq!(w.fake.task_count(), 0);

    // Optional extra fields and `json` or plain `string` types are fine too.
    let mut v = validate_spec();
    v["item"] = json!({ "type": "json" });
    v["items"] = json!({ "type": "array_string", "required": false });
    v["note"] = json!({ "type": "string", "required": false });
    let mut q = quality_spec();
    q["item"] = json!({ "type": "string", "required": false });
    q["items"] = json!({ "type": "array_string" });
    let pools = three_pools(&w, v, q);
    p.check_stages(&stage_specs(pools.each_ref().map(String::as_str)))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_misdeclared_stage_is_named_with_its_field_before_anything_is_created() {
    use crowdcore_toloka::StageSpecError as E;
    let w = world().await;
    let p = TolokaPipeline::new(w.client.clone());
    let check = |validate, quality| {
        let pools = three_pools(&w, validate, quality);
        let p = &p;
        async move {
            p.check_stages(&stage_specs(pools.each_ref().map(String::as_str)))
                .await
                .unwrap_err()
        }
    };

    // The old single list, declared as written (required) on the validate project: `items`.
    let err = check(readme_spec(), quality_spec()).await;
    let text = err.to_string();
    assert!(
        matches!(&err, E::RequiredNotWritten { stage, field, .. } if stage == "validate" && field == "items"),
        "{err}"
    );
    assert!(
        text.contains("stage validate") && text.contains("\"items\""),
        "{text}"
    );
    assert!(text.contains("required"), "{text}");
    // … and on the quality project: `item`.
    let err = check(validate_spec(), readme_spec()).await;
    assert!(
        matches!(&err, E::RequiredNotWritten { stage, field, .. } if stage == "quality" && field == "item"),
        "{err}"
    );

    // A field the tasks carry, not declared.
    let mut v = validate_spec();
    v.as_object_mut().unwrap().remove("origin_worker");
    let err = check(v, quality_spec()).await;
    assert!(
        matches!(&err, E::Undeclared { stage, field, .. } if stage == "validate" && field == "origin_worker"),
        "{err}"
    );

    // A type the values do not have.
    let mut q = quality_spec();
    q["group_size"] = json!({ "type": "string" });
    let err = check(validate_spec(), q).await;
    assert!(
        matches!(&err, E::WrongType { stage, field, declared, .. }
            if stage == "quality" && field == "group_size" && declared == "string"),
        "{err}"
    );
    let mut q = quality_spec();
    q["items"] = json!({ "type": "url" });
    let err = check(validate_spec(), q).await;
    assert!(
        matches!(&err, E::WrongType { field, .. } if field == "items"),
        "{err}"
    );

    // The handler's answer field, not declared.
    let pools = three_pools(&w, validate_spec(), quality_spec());
    let mut specs = stage_specs(pools.each_ref().map(String::as_str));
    specs[1].outputs = vec!["verdict".into(), "confidence".into()];
    let err = p.check_stages(&specs).await.unwrap_err();
    assert!(
        matches!(&err, E::NoOutput { stage, field, .. } if stage == "validate" && field == "confidence"),
        "{err}"
    );

    // A pool that does not exist, and two stages on one pool.
    specs[1].outputs = vec!["verdict".into()];
    specs[2].pool = PoolId::new("nope");
    let err = p.check_stages(&specs).await.unwrap_err();
    assert!(
        matches!(&err, E::Unreadable { stage, pool, .. } if stage == "quality" && pool == "nope"),
        "{err}"
    );
    specs[2].pool = specs[1].pool.clone();
    let err = p.check_stages(&specs).await.unwrap_err();
    assert!(matches!(&err, E::SharedPool { .. }), "{err}");

    assert!(w.fake.requests().iter().all(|r| r.method == "GET"));
    assert_eq!(w.fake.task_count(), 0, "nothing created");
}

#[tokio::test]
async fn the_fake_refuses_tasks_as_their_project_declares() {
    let w = world().await;
    let p = TolokaPipeline::new(w.client.clone());
    let project = w.fake.create_project(readme_spec(), json!({}));
    let pool = PoolId::new(w.fake.create_pool(&project, cents(5)));
    // What `Fanout` writes, against the old single list: `items` is required and missing.
    let mut input = inputs(json!({ "item": "https://img/1.png", "group_size": 1 }));
    for k in [
        "group",
        "origin_assignment",
        "origin_stage",
        "origin_worker",
    ] {
        input.insert(k.into(), json!("x"));
    }
    let task = NewTask {
        input_values: input.clone(),
        overlap: 1,
        group: None,
    };
    let err = p
        .create_tasks(&pool, std::slice::from_ref(&task), &key(30))
        .await
        .unwrap_err();
    assert_eq!(err.kind, PlatformErrorKind::BadRequest, "{err}");
    assert!(err.message.contains("input_values.items"), "{err}");
    assert!(err.message.contains("VALUE_REQUIRED"), "{err}");
    // An undeclared field and a wrong type are refused too; a fitting task is created.
    let project = w.fake.create_project(validate_spec(), json!({}));
    let pool = PoolId::new(w.fake.create_pool(&project, cents(5)));
    let mut extra = task.clone();
    extra.input_values.insert("note".into(), json!("hi"));
    let err = p.create_tasks(&pool, &[extra], &key(31)).await.unwrap_err();
    assert!(err.message.contains("VALUE_NOT_ALLOWED"), "{err}");
    let mut wrong = task.clone();
    wrong.input_values.insert("group_size".into(), json!("1"));
    let err = p.create_tasks(&pool, &[wrong], &key(32)).await.unwrap_err();
    assert!(err.message.contains("INTEGER_EXPECTED"), "{err}");
    p.create_tasks(&pool, &[task], &key(33)).await.unwrap();
    assert_eq!(w.fake.task_count(), 1);
}
