//! The real Toloka sandbox, opt-in: set `CROWDCORE_TOLOKA_SANDBOX=1`, `TOLOKA_API_KEY` (or
//! `TOLOKA_OAUTH_TOKEN`) and `CROWDCORE_TOLOKA_POOL` (a sandbox pool whose project takes an
//! input field named by `CROWDCORE_TOLOKA_INPUT_FIELD`, default `url`). Otherwise it prints a
//! note and passes. It creates one task (overlap 1) idempotently, reads it back, lists the
//! pool's assignments and stops the task; it never opens or closes the pool.

use crowdcore_toloka::model::{AssignmentFilter, CreateTasksOptions, NewTask};
use crowdcore_toloka::{ClientConfig, TolokaClient};
use serde_json::{Map, Value};
use uuid::Uuid;

#[tokio::test]
async fn sandbox_round_trip() {
    if std::env::var("CROWDCORE_TOLOKA_SANDBOX").as_deref() != Ok("1") {
        eprintln!(
            "skipped: set CROWDCORE_TOLOKA_SANDBOX=1, TOLOKA_API_KEY and CROWDCORE_TOLOKA_POOL to run against the Toloka sandbox"
        );
        return;
    }
    let pool =
        std::env::var("CROWDCORE_TOLOKA_POOL").expect("CROWDCORE_TOLOKA_POOL names a sandbox pool");
    let field = std::env::var("CROWDCORE_TOLOKA_INPUT_FIELD").unwrap_or_else(|_| "url".to_owned());
    let config = ClientConfig::sandbox_from_env().expect("a token in the environment");
    let client = TolokaClient::new(config).expect("client");

    let requester = client.get_requester().await.expect("requester");
    eprintln!(
        "sandbox requester {} balance {}",
        requester.id,
        requester.balance.to_money()
    );
    let found = client.get_pool(&pool).await.expect("pool");
    eprintln!("pool {} is {:?}", found.id, found.status);

    let mut input = Map::new();
    input.insert(
        field,
        Value::String("https://example.com/crowdcore.png".into()),
    );
    let task = NewTask::new(&pool, input, 1);
    let op = Uuid::new_v4();
    let first = client
        .create_tasks(
            std::slice::from_ref(&task),
            CreateTasksOptions::default(),
            Some(op),
        )
        .await
        .expect("task created");
    let again = client
        .create_tasks(&[task], CreateTasksOptions::default(), Some(op))
        .await
        .expect("the same operation again");
    assert_eq!(first, again, "the operation id made the repeat a no-op");
    let id = first.item(0).expect("one task");
    assert_eq!(client.get_task(id).await.expect("task").pool_id, pool);
    let mut filter = AssignmentFilter::pool(&pool);
    filter.limit = Some(10);
    let page = client.find_assignments(&filter).await.expect("assignments");
    eprintln!(
        "{} assignments on the first page, more: {}",
        page.items.len(),
        page.has_more
    );
    client.stop_task(id).await.expect("task stopped");
}
