//! The client against the fake Toloka: request shapes, operations, idempotency, paging,
//! reviews, bonuses, restrictions, skills, and retries of injected faults.

mod common;

use std::time::Duration;

use axum::http::Method;
use common::*;
use crowdcore::platform::PlatformErrorKind;
use crowdcore_toloka::fake::{Fault, FaultPlan};
use crowdcore_toloka::model::{
    AssignmentFilter, AssignmentSort, AssignmentStatus, CreateTasksOptions, NewUserBonus,
    NewUserRestriction, PoolStatus, RestrictionScope, SetUserSkill, TimeBound, TimeField,
    TolokaTime,
};
use crowdcore_toloka::{
    ASYNC_TASKS_BATCH, ClientConfig, Credentials, ErrorClass, QuotaWindow, SYNC_TASKS_LIMIT,
    TolokaClient, TolokaError,
};
use serde_json::json;
use uuid::Uuid;

#[tokio::test]
async fn pools_open_and_close_through_polled_operations() {
    let w = world_with(|c| c.operation_polls = 2).await;
    let pool = w.fake.create_pool("prj", cents(5));

    let err = w.client.open_pool(&pool).await.unwrap_err();
    assert!(err.has_code("EMPTY_POOL"), "{err}");
    assert_eq!(err.api().unwrap().class(), ErrorClass::IncorrectAction);
    assert_eq!(err.platform_kind(), PlatformErrorKind::Conflict);

    w.client
        .create_tasks(&[task(&pool, 0, 1)], CreateTasksOptions::default(), None)
        .await
        .unwrap();
    let opened = w.client.open_pool(&pool).await.unwrap();
    assert_eq!(opened.status, PoolStatus::Open);
    assert_eq!(opened.project_id, "prj");
    assert_eq!(opened.reward_per_assignment, Some(cents(5)));
    // The operation answered RUNNING twice before it was done: three reads.
    assert_eq!(calls(&w.fake, "GET", "/operations/").len(), 3);

    let open = calls(&w.fake, "POST", "/pools/");
    assert_eq!(open.last().unwrap().path, format!("/pools/{pool}/open"));
    assert_eq!(open.last().unwrap().body, serde_json::Value::Null);

    // Opening an open pool: 204, no operation to wait for.
    let before = w.fake.requests().len();
    assert_eq!(w.client.open_pool_async(&pool).await.unwrap(), None);
    assert_eq!(w.fake.requests().len(), before + 1);

    let closed = w.client.close_pool(&pool).await.unwrap();
    assert_eq!(closed.status, PoolStatus::Closed);
    assert_eq!(closed.last_close_reason.as_deref(), Some("MANUAL"));
    assert_eq!(w.fake.pool_status(&pool).as_deref(), Some("CLOSED"));
    let tasks = w.client.all_tasks(&pool).await.unwrap();
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks[0].input_values["image"], "https://img/0.png");
    let missing = w.client.get_pool("nope").await.unwrap_err();
    assert_eq!(missing.platform_kind(), PlatformErrorKind::NotFound);
}

#[tokio::test]
async fn synchronous_task_batches_have_toloka_shape_and_limits() {
    let w = world().await;
    let pool = w.fake.create_pool("prj", cents(5));
    let mut bad = task(&pool, 9, 1);
    bad.overlap = None;
    let tasks = vec![task(&pool, 0, 3), bad, task(&pool, 2, 1)];
    let opts = CreateTasksOptions {
        skip_invalid_items: true,
        open_pool: true,
        ..CreateTasksOptions::default()
    };
    let created = w.client.create_tasks_sync(&tasks, opts).await.unwrap();
    assert_eq!(created.items.len(), 2);
    assert_eq!(created.item(0).unwrap().overlap, Some(3));
    assert_eq!(
        created.item(0).unwrap().input_values["image"],
        "https://img/0.png"
    );
    assert!(created.validation_errors["1"].contains_key("overlap"));
    assert_eq!(w.fake.pool_status(&pool).as_deref(), Some("OPEN"));

    let post = &calls(&w.fake, "POST", "/tasks")[0];
    assert_eq!(post.param("async_mode"), Some("false"));
    assert_eq!(post.param("skip_invalid_items"), Some("true"));
    assert_eq!(post.param("open_pool"), Some("true"));
    assert_eq!(post.param("allow_defaults"), Some("false"));
    assert_eq!(post.param("operation_id"), None);
    assert_eq!(post.authorization.as_deref(), Some("ApiKey test-key"));
    assert_eq!(post.body[0]["pool_id"], pool.as_str());
    assert_eq!(post.body[0]["overlap"], 3);

    // Without skip_invalid_items one bad task fails the batch, and nothing is created.
    let err = w
        .client
        .create_tasks_sync(&tasks, CreateTasksOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.api().unwrap().class(), ErrorClass::Validation);
    assert!(err.api().unwrap().payload.as_ref().unwrap()["1"]["overlap"].is_object());
    assert_eq!(w.fake.task_count(), 2);

    // A synchronous creation carries no operation id, so a lost answer is not retried (a
    // retry could create the tasks twice); a refusal (429) is.
    w.fake
        .inject(Some(Method::POST), "/tasks", Fault::LostAnswer, 1);
    let err = w
        .client
        .create_tasks_sync(&[task(&pool, 7, 1)], CreateTasksOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.platform_kind(), PlatformErrorKind::Unavailable);
    assert_eq!(
        w.fake.task_count(),
        3,
        "created once, answer lost, not repeated"
    );
    w.fake
        .inject(Some(Method::POST), "/tasks", Fault::Throttle, 2);
    w.client
        .create_tasks_sync(&[task(&pool, 8, 1)], CreateTasksOptions::default())
        .await
        .unwrap();
    assert_eq!(w.fake.task_count(), 4);
    assert_eq!(calls(&w.fake, "POST", "/tasks").len(), 2 + 1 + 3);

    // Over the limit is refused before anything is sent.
    let before = w.fake.requests().len();
    let many: Vec<_> = (0..=SYNC_TASKS_LIMIT).map(|n| task(&pool, n, 1)).collect();
    let err = w
        .client
        .create_tasks_sync(&many, CreateTasksOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, TolokaError::Invalid(_)), "{err}");
    assert_eq!(w.fake.requests().len(), before);
}

#[tokio::test]
async fn an_operation_id_creates_tasks_once_and_a_repeat_resumes_the_operation() {
    let w = world_with(|c| c.operation_polls = 1).await;
    let pool = w.fake.create_pool("prj", cents(5));
    let tasks: Vec<_> = (0..5).map(|n| task(&pool, n, 2)).collect();
    let op = Uuid::new_v4();
    let first = w
        .client
        .create_tasks(&tasks, CreateTasksOptions::default(), Some(op))
        .await
        .unwrap();
    assert_eq!(first.items.len(), 5);
    let post = &calls(&w.fake, "POST", "/tasks")[0];
    assert_eq!(post.param("async_mode"), Some("true"));
    assert_eq!(post.param("operation_id"), Some(op.to_string().as_str()));
    assert_eq!(post.body[3]["__item_idx"], "3");

    // The same call again (a driver re-sending after a crash): 409, resumed, same ids.
    let again = w
        .client
        .create_tasks(&tasks, CreateTasksOptions::default(), Some(op))
        .await
        .unwrap();
    assert_eq!(again, first);
    assert_eq!(w.fake.task_count(), 5);
    assert_eq!(w.fake.operation_count(), 1);
    assert_eq!(w.fake.operation_repeats(), 1);
    for (i, id) in &first.items {
        let n: usize = i.parse().unwrap();
        let input = w.fake.task_input(id).unwrap();
        assert_eq!(input["image"], format!("https://img/{n}.png"));
    }
}

#[tokio::test]
async fn a_lost_answer_to_a_creation_is_retried_into_the_existing_operation() {
    let w = world().await;
    let pool = w.fake.create_pool("prj", cents(5));
    w.fake
        .inject(Some(Method::POST), "/tasks", Fault::LostAnswer, 1);
    w.fake
        .inject(Some(Method::GET), "/operations/", Fault::Unavailable, 2);
    let tasks: Vec<_> = (0..3).map(|n| task(&pool, n, 1)).collect();
    let created = w
        .client
        .create_tasks(&tasks, CreateTasksOptions::default(), Some(Uuid::new_v4()))
        .await
        .unwrap();
    assert_eq!(created.items.len(), 3);
    assert_eq!(w.fake.task_count(), 3);
    let posts = calls(&w.fake, "POST", "/tasks");
    assert_eq!(posts.len(), 2, "one lost answer, one retry");
    assert_eq!(
        posts[0].param("operation_id"),
        posts[1].param("operation_id")
    );
    assert_eq!(w.fake.faults_injected(), 3);
}

#[tokio::test]
async fn large_batches_go_in_several_operations_with_derived_ids() {
    let w = world().await;
    let pool = w.fake.create_pool("prj", cents(1));
    let n = ASYNC_TASKS_BATCH + 3;
    let tasks: Vec<_> = (0..n).map(|i| task(&pool, i, 1)).collect();
    let op = Uuid::new_v4();
    let created = w
        .client
        .create_tasks(&tasks, CreateTasksOptions::default(), Some(op))
        .await
        .unwrap();
    assert_eq!(created.items.len(), n);
    assert_eq!(
        w.client.all_tasks(&pool).await.unwrap().len(),
        n,
        "paged by id_gt"
    );
    let last = created.item(n - 1).unwrap();
    assert_eq!(
        w.fake.task_input(last).unwrap()["image"],
        format!("https://img/{}.png", n - 1)
    );
    let ids: Vec<_> = calls(&w.fake, "POST", "/tasks")
        .iter()
        .map(|r| r.param("operation_id").unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 2);
    assert_eq!(ids[0], op.to_string());
    assert_ne!(ids[1], ids[0]);
    // Without an operation id, more than the synchronous limit goes asynchronous too.
    let tasks: Vec<_> = (0..SYNC_TASKS_LIMIT + 1)
        .map(|i| task(&pool, i, 1))
        .collect();
    let created = w
        .client
        .create_tasks(&tasks, CreateTasksOptions::default(), None)
        .await
        .unwrap();
    assert_eq!(created.items.len(), SYNC_TASKS_LIMIT + 1);
    assert_eq!(
        calls(&w.fake, "POST", "/tasks")
            .last()
            .unwrap()
            .param("async_mode"),
        Some("true")
    );
}

#[tokio::test]
async fn task_overlap_is_raised_and_a_task_is_stopped_with_patches() {
    let w = world().await;
    let pool = w.fake.create_pool("prj", cents(5));
    let opts = CreateTasksOptions {
        open_pool: true,
        ..Default::default()
    };
    let created = w
        .client
        .create_tasks(&[task(&pool, 0, 1)], opts, None)
        .await
        .unwrap();
    let id = created.item(0).unwrap().clone();
    let raised = w.client.set_task_overlap(&id, 4).await.unwrap();
    assert_eq!(raised.overlap, Some(4));
    assert_eq!(raised.remaining_overlap, Some(4));
    let patch = calls(&w.fake, "PATCH", "/tasks/").pop().unwrap();
    assert_eq!(patch.path, format!("/tasks/{id}"));
    assert_eq!(patch.body, json!({ "overlap": 4 }));
    w.fake.take(&id, "w1").unwrap();
    let stopped = w.client.stop_task(&id).await.unwrap();
    assert_eq!(stopped.overlap, Some(1));
    assert_eq!(stopped.remaining_overlap, Some(0));
    let patch = calls(&w.fake, "PATCH", "/tasks/").pop().unwrap();
    assert_eq!(patch.path, format!("/tasks/{id}/set-overlap-or-min"));
    assert_eq!(patch.body, json!({ "overlap": 0 }));
    // Below the assignments issued is a conflict; a missing task is not found.
    let err = w.client.set_task_overlap(&id, 0).await.unwrap_err();
    assert_eq!(err.platform_kind(), PlatformErrorKind::Conflict);
    let err = w.client.stop_task("nope").await.unwrap_err();
    assert_eq!(err.platform_kind(), PlatformErrorKind::NotFound);
}

#[tokio::test]
async fn assignments_page_by_id_and_filter_by_status_and_time() {
    let w = world().await;
    let pool = w.fake.create_pool("prj", cents(5));
    let tasks: Vec<_> = (0..7).map(|n| task(&pool, n, 1)).collect();
    w.client
        .create_tasks(
            &tasks,
            CreateTasksOptions {
                open_pool: true,
                ..Default::default()
            },
            None,
        )
        .await
        .unwrap();
    let mut taken = Vec::new();
    for n in 0..7 {
        w.clock.advance(1_000);
        let a = w.fake.take_next(&pool, &format!("w{n}")).unwrap().unwrap();
        if n % 2 == 0 {
            w.fake.submit(&a, json!({ "label": n })).unwrap();
        }
        taken.push(a);
    }
    let mut filter = AssignmentFilter::pool(&pool);
    filter.limit = Some(3);
    let page = w.client.find_assignments(&filter).await.unwrap();
    assert_eq!(page.items.len(), 3);
    assert!(page.has_more);

    let all = w.client.all_assignments(&filter).await.unwrap();
    let ids: Vec<_> = all.iter().map(|a| a.id.clone()).collect();
    assert_eq!(ids, taken);
    let gets = calls(&w.fake, "GET", "/assignments");
    let id_gts: Vec<_> = gets
        .iter()
        .skip(1)
        .map(|r| r.param("id_gt").map(str::to_owned))
        .collect();
    assert_eq!(
        id_gts,
        [None, Some(taken[2].clone()), Some(taken[5].clone())]
    );
    assert!(gets.iter().all(|r| r.param("sort") == Some("id")));

    let submitted_since = TolokaTime::parse("2024-05-01T00:00:03").unwrap();
    let filter = AssignmentFilter {
        status: vec![AssignmentStatus::Submitted],
        time: vec![(TimeField::Submitted, TimeBound::Gte(submitted_since))],
        sort: AssignmentSort::Time(TimeField::Submitted),
        ..AssignmentFilter::pool(&pool)
    };
    let found = w.client.all_assignments(&filter).await.unwrap();
    let ids: Vec<_> = found.iter().map(|a| a.id.clone()).collect();
    assert_eq!(ids, [taken[2].clone(), taken[4].clone(), taken[6].clone()]);
    assert_eq!(found[0].solutions[0].output_values["label"], 2);
    assert_eq!(found[0].tasks[0].pool_id, pool);
    let last = calls(&w.fake, "GET", "/assignments").pop().unwrap();
    assert_eq!(last.param("status"), Some("SUBMITTED"));
    assert_eq!(last.param("submitted_gte"), Some("2024-05-01T00:00:03.000"));
}

#[tokio::test]
async fn reviews_patch_with_a_comment_and_already_reviewed_is_success_when_it_matches() {
    let w = world().await;
    let pool = w.fake.create_pool("prj", cents(25));
    w.client
        .create_tasks(
            &[task(&pool, 0, 3)],
            CreateTasksOptions {
                open_pool: true,
                ..Default::default()
            },
            None,
        )
        .await
        .unwrap();
    let a = w.fake.take_next(&pool, "w1").unwrap().unwrap();
    let b = w.fake.take_next(&pool, "w2").unwrap().unwrap();
    let active = w.fake.take_next(&pool, "w3").unwrap().unwrap();
    w.fake.submit(&a, json!({ "label": "cat" })).unwrap();
    w.fake.submit(&b, json!({ "label": "dog" })).unwrap();
    let start = w.fake.balance();

    let accepted = w.client.accept_assignment(&a, "Well done").await.unwrap();
    assert_eq!(accepted.status, AssignmentStatus::Accepted);
    let patch = calls(&w.fake, "PATCH", "/assignments/").pop().unwrap();
    assert_eq!(patch.path, format!("/assignments/{a}"));
    assert_eq!(
        patch.body,
        json!({ "status": "ACCEPTED", "public_comment": "Well done" })
    );

    // Again: Toloka says INAPPROPRIATE_STATUS; the assignment is accepted, so it is success.
    let again = w.client.accept_assignment(&a, "Well done").await.unwrap();
    assert_eq!(again.status, AssignmentStatus::Accepted);
    assert_eq!(w.fake.review_repeats(), 1);
    assert_eq!(
        w.fake.charged().micros,
        start.micros - w.fake.balance().micros
    );
    assert_eq!(w.fake.charged(), cents(25), "paid once");

    // Rejecting an accepted assignment is a clear permanent error.
    let err = w.client.reject_assignment(&a, "wrong").await.unwrap_err();
    assert!(
        matches!(
            err,
            TolokaError::AlreadyReviewed {
                status: AssignmentStatus::Accepted,
                ..
            }
        ),
        "{err}"
    );
    assert!(!err.is_retryable());

    w.client.reject_assignment(&b, "Wrong label").await.unwrap();
    assert_eq!(
        w.fake.assignment_comment(&b).as_deref(),
        Some("Wrong label")
    );
    w.client.reject_assignment(&b, "Wrong label").await.unwrap();

    // An active assignment cannot be reviewed yet: a retryable error, not "already reviewed".
    let err = w.client.accept_assignment(&active, "x").await.unwrap_err();
    assert!(
        matches!(&err, TolokaError::NotSubmitted(a) if *a == active),
        "{err}"
    );
    assert!(err.is_retryable());
    w.fake.submit(&active, json!({ "label": "cow" })).unwrap();
    w.client.accept_assignment(&active, "x").await.unwrap();
    assert_eq!(w.fake.charged(), cents(50));
    let expired = w.fake.take_next(&pool, "w4");
    assert!(expired.unwrap().is_none(), "three slots, all used");
    // A rejection without a comment is a validation error.
    let err = w.client.reject_assignment(&b, "").await.unwrap_err();
    assert_eq!(err.api().unwrap().class(), ErrorClass::Validation);
}

#[tokio::test]
async fn bonuses_are_paid_once_per_operation_id() {
    let w = world().await;
    let pool = w.fake.create_pool("prj", cents(5));
    w.client
        .create_tasks(
            &[task(&pool, 0, 1)],
            CreateTasksOptions {
                open_pool: true,
                ..Default::default()
            },
            None,
        )
        .await
        .unwrap();
    let a = w.fake.take_next(&pool, "w1").unwrap().unwrap();
    let bonus = NewUserBonus {
        user_id: "w1".into(),
        amount: cents(15),
        assignment_id: Some(a.clone()),
        private_comment: Some("effect-7".into()),
        public_title: [("EN".to_owned(), "Thanks".to_owned())].into(),
        public_message: [("EN".to_owned(), "Fast and right".to_owned())].into(),
        without_message: None,
    };
    let op = Uuid::new_v4();
    w.fake
        .inject(Some(Method::POST), "/user-bonuses", Fault::LostAnswer, 1);
    let paid = w.client.create_user_bonus(&bonus, op).await.unwrap();
    assert_eq!(paid.amount, cents(15));
    assert_eq!(paid.assignment_id.as_deref(), Some(a.as_str()));
    let again = w.client.create_user_bonus(&bonus, op).await.unwrap();
    assert_eq!(again.id, paid.id);
    assert_eq!(w.fake.bonuses().len(), 1);
    assert_eq!(w.fake.charged(), cents(15));
    let listed = w
        .client
        .find_user_bonuses(Some("w1"), Some(&a), None)
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 1);
    assert_eq!(listed.items[0].id, paid.id);
    assert!(
        w.client
            .find_user_bonuses(Some("w2"), None, None)
            .await
            .unwrap()
            .items
            .is_empty()
    );

    let post = &calls(&w.fake, "POST", "/user-bonuses")[0];
    assert_eq!(post.param("async_mode"), Some("true"));
    assert_eq!(post.param("operation_id"), Some(op.to_string().as_str()));
    assert_eq!(post.body[0]["amount"], json!(0.15));
    assert_eq!(post.body[0]["user_id"], "w1");
    assert_eq!(post.body[0]["public_title"]["EN"], "Thanks");

    // A bonus Toloka refuses (too small) is a validation error, and nothing is paid.
    let tiny = NewUserBonus {
        amount: cents(0),
        ..bonus
    };
    let err = w
        .client
        .create_user_bonus(&tiny, Uuid::new_v4())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, TolokaError::Validation(m) if m.contains("amount")),
        "{err}"
    );
    assert_eq!(err.platform_kind(), PlatformErrorKind::BadRequest);
    assert_eq!(w.fake.bonuses().len(), 1);
}

#[tokio::test]
async fn restrictions_block_with_scope_and_expiry() {
    let w = world().await;
    let pool = w.fake.create_pool("prj", cents(5));
    w.client
        .create_tasks(
            &[task(&pool, 0, 5)],
            CreateTasksOptions {
                open_pool: true,
                ..Default::default()
            },
            None,
        )
        .await
        .unwrap();
    let until = TolokaTime::parse("2024-05-01T01:00:00").unwrap();
    let r = w
        .client
        .set_user_restriction(&NewUserRestriction {
            user_id: "w1".into(),
            scope: RestrictionScope::Pool {
                pool_id: pool.clone(),
            },
            private_comment: Some("spam".into()),
            will_expire: Some(until),
        })
        .await
        .unwrap();
    assert_eq!(
        r.scope,
        RestrictionScope::Pool {
            pool_id: pool.clone()
        }
    );
    assert_eq!(r.will_expire, Some(until));
    let put = calls(&w.fake, "PUT", "/user-restrictions").pop().unwrap();
    assert_eq!(
        put.body,
        json!({ "user_id": "w1", "scope": "POOL", "pool_id": pool, "private_comment": "spam", "will_expire": "2024-05-01T01:00:00.000" })
    );
    assert!(w.fake.take_next(&pool, "w1").is_err());
    w.clock.advance(3_600_001);
    assert!(
        w.fake.take_next(&pool, "w1").unwrap().is_some(),
        "the block expired"
    );

    let forever = w
        .client
        .set_user_restriction(&NewUserRestriction {
            user_id: "w2".into(),
            scope: RestrictionScope::AllProjects,
            private_comment: None,
            will_expire: None,
        })
        .await
        .unwrap();
    assert!(w.fake.take_next(&pool, "w2").is_err());
    w.client.delete_user_restriction(&forever.id).await.unwrap();
    assert!(w.fake.take_next(&pool, "w2").unwrap().is_some());
}

#[tokio::test]
async fn skills_are_read_set_and_deleted() {
    let w = world().await;
    let skill = w.fake.create_skill("accuracy");
    assert_eq!(w.client.get_skill(&skill).await.unwrap().name, "accuracy");
    let set = |value| SetUserSkill {
        skill_id: skill.clone(),
        user_id: "w1".into(),
        value,
    };
    let first = w.client.set_user_skill(&set(70.0)).await.unwrap();
    let second = w.client.set_user_skill(&set(85.5)).await.unwrap();
    assert_eq!(first.id, second.id, "setting again updates the same record");
    assert_eq!(second.value, Some(86));
    let put = calls(&w.fake, "PUT", "/user-skills").pop().unwrap();
    assert_eq!(
        put.body,
        json!({ "skill_id": skill, "user_id": "w1", "value": 85.5 })
    );
    let found = w
        .client
        .find_user_skills(Some("w1"), Some(&skill))
        .await
        .unwrap();
    let get = calls(&w.fake, "GET", "/user-skills").pop().unwrap();
    assert_eq!(get.param("user_id"), Some("w1"));
    assert_eq!(get.param("skill_id"), Some(skill.as_str()));
    assert_eq!(found.items.len(), 1);
    assert!(matches!(
        w.client.set_user_skill(&set(101.0)).await,
        Err(TolokaError::Invalid(_))
    ));
    w.client.delete_user_skill(&first.id).await.unwrap();
    assert!(w.fake.user_skills().is_empty());
    let err = w.client.get_skill("nope").await.unwrap_err();
    assert_eq!(err.platform_kind(), PlatformErrorKind::NotFound);
}

#[tokio::test]
async fn throttling_and_5xx_are_retried_with_backoff_and_permanent_errors_are_not() {
    let w = world().await;
    let pool = w.fake.create_pool("prj", cents(5));
    w.fake
        .inject(Some(Method::GET), "/pools/", Fault::Throttle, 2);
    w.fake
        .inject(Some(Method::GET), "/pools/", Fault::Unavailable, 2);
    w.client.get_pool(&pool).await.unwrap();
    assert_eq!(calls(&w.fake, "GET", "/pools/").len(), 5);

    // Every try fails: the last error comes back, retryable, after max_attempts tries.
    w.fake
        .inject(Some(Method::GET), "/requester", Fault::Unavailable, 100);
    let err = w.client.get_requester().await.unwrap_err();
    assert!(err.is_retryable());
    assert_eq!(err.platform_kind(), PlatformErrorKind::Unavailable);
    assert_eq!(calls(&w.fake, "GET", "/requester").len(), 8);

    // A daily quota is not waited out: one try, a throttling error with the window.
    w.fake
        .inject(Some(Method::GET), "/skills/", Fault::QuotaExhausted, 1);
    let err = w.client.get_skill("s").await.unwrap_err();
    assert_eq!(err.api().unwrap().quota_window(), Some(QuotaWindow::Day));
    assert_eq!(err.platform_kind(), PlatformErrorKind::Throttled);
    assert_eq!(calls(&w.fake, "GET", "/skills/").len(), 1);

    // Not found is permanent: one try.
    let before = w.fake.requests().len();
    assert!(w.client.get_task("nope").await.is_err());
    assert_eq!(w.fake.requests().len(), before + 1);
}

#[tokio::test]
async fn a_slow_answer_times_out_and_the_retry_finds_the_work_done() {
    let w = world_with(|c| {
        c.faults = FaultPlan {
            slow_ms: 1_500,
            ..FaultPlan::none()
        }
    })
    .await;
    let mut config = client_config(&w.fake);
    config.timeout = Duration::from_millis(300);
    let client = TolokaClient::new(config).unwrap();
    let pool = w.fake.create_pool("prj", cents(40));
    client
        .create_tasks(
            &[task(&pool, 0, 1)],
            CreateTasksOptions {
                open_pool: true,
                ..Default::default()
            },
            None,
        )
        .await
        .unwrap();
    let a = w.fake.take_next(&pool, "w1").unwrap().unwrap();
    w.fake.submit(&a, json!({})).unwrap();
    w.fake
        .inject(Some(Method::PATCH), "/assignments/", Fault::SlowAnswer, 1);
    let done = client.accept_assignment(&a, "ok").await.unwrap();
    assert_eq!(done.status, AssignmentStatus::Accepted);
    assert_eq!(w.fake.charged(), cents(40), "accepted and paid once");
    assert_eq!(calls(&w.fake, "PATCH", "/assignments/").len(), 2);
}

#[tokio::test]
async fn a_wrong_token_is_an_authentication_error_and_is_not_retried() {
    let w = world_with(|c| c.token = Some("right".into())).await;
    let mut config = client_config(&w.fake);
    config.credentials = Credentials::OAuth("wrong".into());
    let client = TolokaClient::new(config).unwrap();
    let err = client.get_requester().await.unwrap_err();
    assert_eq!(err.api().unwrap().class(), ErrorClass::Authentication);
    assert!(
        !format!("{err:?}{err}").contains("wrong"),
        "the token is not in the error"
    );
    assert_eq!(w.fake.requests().len(), 1);
    let mut config = client_config(&w.fake);
    config.credentials = Credentials::OAuth("right".into());
    let client = TolokaClient::new(config).unwrap();
    assert_eq!(
        client.get_requester().await.unwrap().balance,
        cents(100_000)
    );
    assert_eq!(
        w.fake.requests().last().unwrap().authorization.as_deref(),
        Some("OAuth right")
    );
    assert!(matches!(
        TolokaClient::new(ClientConfig::new(
            "ftp://x",
            Credentials::ApiKey("k".into())
        )),
        Err(TolokaError::Config(_))
    ));
}

/// One study's worth of calls: tasks, work, reviews, bonuses. Returns what the fake holds.
async fn study(
    client: &TolokaClient,
    w: &World,
    pool: &str,
) -> (usize, Vec<AssignmentStatus>, usize, i64) {
    let tasks: Vec<_> = (0..12).map(|n| task(pool, n, 2)).collect();
    let op = Uuid::from_u128(42);
    client
        .create_tasks(
            &tasks,
            CreateTasksOptions {
                open_pool: true,
                ..Default::default()
            },
            Some(op),
        )
        .await
        .unwrap();
    w.fake.work(
        pool,
        &["w1", "w2", "w3"],
        |input, worker| json!({ "label": format!("{}-{worker}", input["image"]) }),
    );
    let submitted = client
        .all_assignments(&AssignmentFilter {
            status: vec![AssignmentStatus::Submitted],
            limit: Some(5),
            ..AssignmentFilter::pool(pool)
        })
        .await
        .unwrap();
    for (i, a) in submitted.iter().enumerate() {
        if i % 3 == 0 {
            client.reject_assignment(&a.id, "wrong").await.unwrap();
        } else {
            client.accept_assignment(&a.id, "ok").await.unwrap();
            let bonus = NewUserBonus {
                user_id: a.user_id.clone(),
                amount: cents(3),
                assignment_id: Some(a.id.clone()),
                private_comment: None,
                public_title: Default::default(),
                public_message: Default::default(),
                without_message: Some(true),
            };
            client
                .create_user_bonus(&bonus, Uuid::from_u128(1_000 + i as u128))
                .await
                .unwrap();
        }
    }
    let all = client
        .all_assignments(&AssignmentFilter::pool(pool))
        .await
        .unwrap();
    (
        w.fake.task_count(),
        all.iter().map(|a| a.status).collect(),
        w.fake.bonuses().len(),
        w.fake.charged().micros,
    )
}

#[tokio::test]
async fn seeded_faults_give_the_same_final_state_and_no_duplicates() {
    let calm = world().await;
    let pool = calm.fake.create_pool("prj", cents(5));
    let expected = study(&calm.client, &calm, &pool).await;
    assert_eq!(expected.0, 12);
    assert_eq!(expected.1.len(), 24);

    for seed in [1_u64, 2, 3] {
        let w = world_with(|c| {
            c.faults = FaultPlan::seeded(seed, 250);
            if seed == 3 {
                // Timeouts too: answers held past the client's timeout, after the work.
                c.faults.kinds.push(Fault::SlowAnswer);
                c.faults.per_mille = 100;
                c.faults.slow_ms = 400;
            }
            c.operation_polls = 1;
        })
        .await;
        let mut config = client_config(&w.fake);
        config.retry.max_attempts = 30;
        if seed == 3 {
            config.timeout = Duration::from_millis(150);
        }
        let client = TolokaClient::new(config).unwrap();
        let pool = w.fake.create_pool("prj", cents(5));
        let got = study(&client, &w, &pool).await;
        assert!(
            w.fake.faults_injected() > 10,
            "seed {seed}: faults were injected"
        );
        assert_eq!(got, expected, "seed {seed}");
    }
}

#[tokio::test]
async fn running_pool_operations_are_found_and_lock_the_pool_until_they_end() {
    let w = world_with(|c| c.pool_operation_ms = 1_000).await;
    let pool = w.fake.create_pool("prj", cents(5));
    let other = w.fake.create_pool("prj", cents(5));
    for p in [&pool, &other] {
        w.client
            .create_tasks(&[task(p, 0, 1)], CreateTasksOptions::default(), None)
            .await
            .unwrap();
    }
    let op = w.client.open_pool_async(&pool).await.unwrap().unwrap();
    let _ = w.client.open_pool_async(&other).await.unwrap().unwrap();
    assert_eq!(w.fake.pool_lock(&pool), Some(op.id.clone()));
    // Still closed while the open runs, and a second open or a close is refused meanwhile.
    assert_eq!(w.fake.pool_status(&pool).as_deref(), Some("CLOSED"));
    for action in [
        w.client.open_pool_async(&pool).await,
        w.client.close_pool_async(&pool).await,
    ] {
        let err = action.unwrap_err();
        assert!(err.is_pool_locked(), "{err}");
        assert!(err.is_retryable());
        assert_eq!(err.platform_kind(), PlatformErrorKind::Unavailable);
    }
    assert_eq!(w.fake.lock_refusals(), 2);
    // Not retried blindly by the client: one request each.
    assert_eq!(calls(&w.fake, "POST", &format!("/pools/{pool}/")).len(), 3);

    let running = w
        .client
        .find_operations(Some("POOL.OPEN"), Some("RUNNING"), None)
        .await
        .unwrap();
    assert_eq!(running.items.len(), 2);
    let found = w
        .client
        .running_pool_operation(&pool)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.id, op.id);
    assert_eq!(found.parameters["pool_id"], pool.as_str());

    // However often it is read, it ends when its time comes, and the pool is open.
    assert_eq!(
        w.client.get_operation(&op.id).await.unwrap().status,
        crowdcore_toloka::model::OperationStatus::Running
    );
    w.clock.advance(1_000);
    let done = w.client.get_operation(&op.id).await.unwrap();
    assert_eq!(
        done.status,
        crowdcore_toloka::model::OperationStatus::Success
    );
    assert_eq!(w.fake.pool_status(&pool).as_deref(), Some("OPEN"));
    assert_eq!(w.fake.pool_lock(&pool), None);
    assert_eq!(w.client.running_pool_operation(&pool).await.unwrap(), None);
    assert_eq!(w.client.open_pool_async(&pool).await.unwrap(), None);
}
