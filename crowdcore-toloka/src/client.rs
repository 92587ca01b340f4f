//! [`TolokaClient`]: Toloka's REST API v1 over reqwest, with retries and operation polling.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::error::{ApiError, ErrorClass, QuotaWindow, TolokaError};
use crate::model::{
    Assignment, AssignmentFilter, AssignmentPatch, AssignmentStatus, BatchCreated,
    CreateTasksOptions, NewTask, NewUserBonus, NewUserRestriction, Operation, OperationLogItem,
    OperationStatus, Pool, Project, Requester, SearchPage, SetUserSkill, Skill, Task, UserBonus,
    UserRestriction, UserSkill,
};

/// Toloka's production API.
pub const PRODUCTION_URL: &str = "https://toloka.dev/api/v1";
/// Toloka's sandbox API.
pub const SANDBOX_URL: &str = "https://sandbox.toloka.dev/api/v1";
/// The most tasks one synchronous `POST /tasks` may carry.
pub const SYNC_TASKS_LIMIT: usize = 5_000;
/// The most tasks this client puts in one asynchronous operation (Toloka's recommendation).
pub const ASYNC_TASKS_BATCH: usize = 10_000;
/// The key Toloka echoes back in operation logs, used to match log lines to input items.
const ITEM_INDEX: &str = "__item_idx";

/// How requests are authorized. The token never appears in `Debug` output or logs.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    /// `Authorization: ApiKey <key>` (Toloka's API keys).
    ApiKey(String),
    /// `Authorization: OAuth <token>` (older OAuth tokens).
    OAuth(String),
}

impl Credentials {
    /// Reads `TOLOKA_API_KEY` (an API key) or else `TOLOKA_OAUTH_TOKEN` (an OAuth token).
    pub fn from_env() -> Result<Self, TolokaError> {
        let read = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        if let Some(key) = read("TOLOKA_API_KEY") {
            return Ok(Credentials::ApiKey(key.trim().to_owned()));
        }
        if let Some(token) = read("TOLOKA_OAUTH_TOKEN") {
            return Ok(Credentials::OAuth(token.trim().to_owned()));
        }
        Err(TolokaError::Config(
            "no Toloka token: set TOLOKA_API_KEY (or TOLOKA_OAUTH_TOKEN)".into(),
        ))
    }

    fn header(&self) -> Result<HeaderValue, TolokaError> {
        let text = match self {
            Credentials::ApiKey(k) => format!("ApiKey {k}"),
            Credentials::OAuth(t) => format!("OAuth {t}"),
        };
        let mut value = HeaderValue::from_str(&text)
            .map_err(|_| TolokaError::Config("the token has characters a header cannot".into()))?;
        value.set_sensitive(true);
        Ok(value)
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::ApiKey(_) => f.write_str("ApiKey(<redacted>)"),
            Credentials::OAuth(_) => f.write_str("OAuth(<redacted>)"),
        }
    }
}

/// When and how long to retry a failed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Tries in all, the first included (1 = never retry).
    pub max_attempts: u32,
    /// The first backoff; it doubles with each retry.
    pub base_delay: Duration,
    /// The longest backoff.
    pub max_delay: Duration,
    /// How long to wait when a per-minute quota ran out and Toloka sent no `Retry-After`.
    pub minute_quota_wait: Duration,
    /// The longest `Retry-After` honoured; a longer one (an hourly or daily quota) is
    /// returned as an error for the caller to schedule.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 6,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            minute_quota_wait: Duration::from_secs(60),
            max_retry_after: Duration::from_secs(120),
        }
    }
}

impl RetryPolicy {
    /// Capped exponential backoff with jitter before retry number `retry` (1-based): a uniform
    /// pick in the upper half of `min(max, base × 2^(retry-1))`.
    pub fn backoff(&self, retry: u32) -> Duration {
        // The engine's backoff, in this policy's units.
        let policy = crowdcore::engine::RetryPolicy {
            base_ms: self.base_delay.as_millis() as u64,
            max_ms: self.max_delay.as_millis() as u64,
        };
        Duration::from_millis(policy.delay_ms(retry, rand::random()))
    }

    /// How long to wait before retrying after `error`, or `None` to give up on it.
    fn delay_for(&self, error: &TolokaError, retry: u32) -> Option<Duration> {
        // A locked pool is waited for by the caller, on the operation that holds it, not
        // hammered blindly.
        if !error.is_retryable() || error.is_pool_locked() {
            return None;
        }
        let Some(api) = error.api() else {
            return Some(self.backoff(retry));
        };
        if api.class() != ErrorClass::TooManyRequests {
            return Some(self.backoff(retry));
        }
        if let Some(after) = api.retry_after {
            return (after <= self.max_retry_after).then_some(after);
        }
        match api.quota_window() {
            Some(QuotaWindow::Minute) => Some(self.minute_quota_wait),
            Some(QuotaWindow::Hour | QuotaWindow::Day) => None,
            None => Some(self.backoff(retry)),
        }
    }
}

/// Everything a [`TolokaClient`] needs.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The API root, such as [`PRODUCTION_URL`], [`SANDBOX_URL`] or a local fake's
    /// `http://127.0.0.1:port/api/v1`.
    pub base_url: String,
    /// The token.
    pub credentials: Credentials,
    /// The whole-request timeout.
    pub timeout: Duration,
    /// The connect timeout.
    pub connect_timeout: Duration,
    /// Retries of 408, 429, 5xx, timeouts and broken connections.
    pub retry: RetryPolicy,
    /// How often to poll a running operation.
    pub operation_poll: Duration,
    /// How long to wait for an operation before giving up with
    /// [`TolokaError::OperationTimeout`].
    pub operation_wait: Duration,
}

impl ClientConfig {
    /// A config for `base_url` with these credentials and default timeouts and retries.
    pub fn new(base_url: impl Into<String>, credentials: Credentials) -> Self {
        Self {
            base_url: base_url.into(),
            credentials,
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            retry: RetryPolicy::default(),
            operation_poll: Duration::from_secs(1),
            operation_wait: Duration::from_secs(600),
        }
    }

    /// Production, with the token from the environment (see [`Credentials::from_env`]).
    pub fn production_from_env() -> Result<Self, TolokaError> {
        Ok(Self::new(PRODUCTION_URL, Credentials::from_env()?))
    }

    /// The sandbox, with the token from the environment.
    pub fn sandbox_from_env() -> Result<Self, TolokaError> {
        Ok(Self::new(SANDBOX_URL, Credentials::from_env()?))
    }
}

/// Whether a request may be sent again after it may have reached Toloka.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Repeat {
    /// Reads, absolute writes (PATCH to a status, PUT), and creations with an operation id.
    Safe,
    /// A creation without an operation id: retried only when Toloka said it did nothing (429).
    OnlyIfRefused,
}

/// A client of Toloka's REST API v1. Cheap to clone (the connection pool is shared).
#[derive(Clone)]
pub struct TolokaClient {
    http: reqwest::Client,
    base: String,
    config: ClientConfig,
}

impl fmt::Debug for TolokaClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TolokaClient")
            .field("base", &self.base)
            .field("credentials", &self.config.credentials)
            .finish_non_exhaustive()
    }
}

impl TolokaClient {
    /// A client with this configuration.
    pub fn new(config: ClientConfig) -> Result<Self, TolokaError> {
        let base = config.base_url.trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(TolokaError::Config(format!(
                "base URL {base:?} is not http(s)"
            )));
        }
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, config.credentials.header()?);
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .timeout(config.timeout)
            .connect_timeout(config.connect_timeout)
            .user_agent(concat!("crowdcore-toloka/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| TolokaError::Config(e.to_string()))?;
        Ok(Self { http, base, config })
    }

    /// The configuration.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    // ----- the request core ------------------------------------------------------------------

    async fn send_once(
        &self,
        method: &Method,
        path: &str,
        query: &[(String, String)],
        body: Option<&Value>,
        timeout: Option<Duration>,
    ) -> Result<(StatusCode, Vec<u8>), TolokaError> {
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path}", self.base));
        if let Some(t) = timeout {
            req = req.timeout(t);
        }
        if !query.is_empty() {
            req = req.query(query);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.map_err(transport)?;
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let bytes = resp.bytes().await.map_err(transport)?.to_vec();
        tracing::debug!(%method, path, status = status.as_u16(), "toloka request");
        if status.is_success() {
            return Ok((status, bytes));
        }
        let doc: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let text = |k: &str| doc.get(k).and_then(Value::as_str).map(str::to_owned);
        Err(TolokaError::Api(Box::new(ApiError {
            status: status.as_u16(),
            code: text("code").unwrap_or_default(),
            message: text("message")
                .unwrap_or_else(|| String::from_utf8_lossy(&bytes).chars().take(200).collect()),
            request_id: text("request_id"),
            payload: doc.get("payload").cloned().filter(|p| !p.is_null()),
            retry_after,
        })))
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        query: &[(String, String)],
        body: Option<&Value>,
        repeat: Repeat,
    ) -> Result<(StatusCode, Vec<u8>), TolokaError> {
        self.send_with(method, path, query, body, repeat, &self.config.retry, None)
            .await
    }

    /// [`send`](Self::send) under its own retry policy and per-request timeout.
    #[allow(clippy::too_many_arguments)]
    async fn send_with(
        &self,
        method: Method,
        path: &str,
        query: &[(String, String)],
        body: Option<&Value>,
        repeat: Repeat,
        retry: &RetryPolicy,
        timeout: Option<Duration>,
    ) -> Result<(StatusCode, Vec<u8>), TolokaError> {
        let mut attempt = 1;
        loop {
            let result = self.send_once(&method, path, query, body, timeout).await;
            let Err(error) = result else { return result };
            let may_repeat = match repeat {
                Repeat::Safe => true,
                Repeat::OnlyIfRefused => error
                    .api()
                    .is_some_and(|a| a.class() == ErrorClass::TooManyRequests),
            };
            if attempt >= retry.max_attempts || !may_repeat {
                return Err(error);
            }
            let Some(delay) = retry.delay_for(&error, attempt) else {
                return Err(error);
            };
            tracing::debug!(%method, path, attempt, ?delay, %error, "retrying toloka request");
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &[(String, String)],
        body: Option<&Value>,
        repeat: Repeat,
    ) -> Result<T, TolokaError> {
        let (_, bytes) = self.send(method, path, query, body, repeat).await?;
        serde_json::from_slice(&bytes).map_err(|e| TolokaError::Decode(e.to_string()))
    }

    async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(String, String)],
    ) -> Result<T, TolokaError> {
        self.call(Method::GET, path, query, None, Repeat::Safe)
            .await
    }

    // ----- projects --------------------------------------------------------------------------

    /// `GET /projects/{id}`: a project with its task specification.
    pub async fn get_project(&self, project_id: &str) -> Result<Project, TolokaError> {
        self.get(&format!("/projects/{}", seg(project_id)), &[])
            .await
    }

    // ----- pools -----------------------------------------------------------------------------

    /// `GET /pools/{id}`.
    pub async fn get_pool(&self, pool_id: &str) -> Result<Pool, TolokaError> {
        self.get(&format!("/pools/{}", seg(pool_id)), &[]).await
    }

    /// `POST /pools/{id}/open`: the operation, or `None` if the pool was already open.
    pub async fn open_pool_async(&self, pool_id: &str) -> Result<Option<Operation>, TolokaError> {
        self.pool_action(pool_id, "open").await
    }

    /// `POST /pools/{id}/close`: the operation, or `None` if the pool was already closed.
    pub async fn close_pool_async(&self, pool_id: &str) -> Result<Option<Operation>, TolokaError> {
        self.pool_action(pool_id, "close").await
    }

    async fn pool_action(
        &self,
        pool_id: &str,
        action: &str,
    ) -> Result<Option<Operation>, TolokaError> {
        let path = format!("/pools/{}/{action}", seg(pool_id));
        let (status, bytes) = self
            .send(Method::POST, &path, &[], None, Repeat::Safe)
            .await?;
        if status == StatusCode::NO_CONTENT || bytes.is_empty() {
            return Ok(None);
        }
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| TolokaError::Decode(e.to_string()))
    }

    /// Opens a pool and waits for the operation; returns the pool as it is then.
    ///
    /// A pool takes one operation at a time. If another is running on it (`409
    /// POOL_LOCKED_BY_ANOTHER_OPERATION`: an open whose answer was lost and that this call's
    /// retry meets, an open a killed process left running, a close), that operation is waited
    /// for and the open sent again: it finds the pool open (`204`, done) or, after a close,
    /// opens it again — so the pool never stays closed because a close was running. Waiting
    /// for locks is bounded by [`ClientConfig::operation_wait`] from the call (and this call's
    /// own operation by as much again); a pool still locked then is a retryable error
    /// ([`TolokaError::OperationTimeout`] or the 409).
    pub async fn open_pool(&self, pool_id: &str) -> Result<Pool, TolokaError> {
        self.pool_action_waiting(pool_id, "open").await
    }

    /// Closes a pool and waits for the operation; returns the pool as it is then. A running
    /// operation on the pool is waited for first, as in [`open_pool`](Self::open_pool).
    pub async fn close_pool(&self, pool_id: &str) -> Result<Pool, TolokaError> {
        self.pool_action_waiting(pool_id, "close").await
    }

    async fn pool_action_waiting(&self, pool_id: &str, action: &str) -> Result<Pool, TolokaError> {
        let deadline = tokio::time::Instant::now() + self.config.operation_wait;
        loop {
            match self.pool_action(pool_id, action).await {
                Ok(Some(op)) => {
                    self.wait_operation_success(op).await?;
                    break;
                }
                Ok(None) => break,
                Err(e) if e.is_pool_locked() => {
                    if tokio::time::Instant::now() >= deadline {
                        return Err(e);
                    }
                    match self.running_pool_operation(pool_id).await? {
                        Some(op) => {
                            tracing::info!(pool_id, action, operation = %op.id, kind = %op.kind,
                                "pool locked by a running operation; waiting for it");
                            // Its outcome does not matter: either way the pool is free after.
                            self.wait_operation_until(op, deadline).await?;
                        }
                        // Not listed (yet): wait a poll period and try again.
                        None => tokio::time::sleep(self.config.operation_poll).await,
                    }
                }
                Err(e) => return Err(e),
            }
        }
        self.get_pool(pool_id).await
    }

    /// The running operation that holds a pool, if one is listed: `GET
    /// /operations?type=…&status=RUNNING` for each operation type that locks a pool (open,
    /// close, archive), matched on `parameters.pool_id`.
    pub async fn running_pool_operation(
        &self,
        pool_id: &str,
    ) -> Result<Option<Operation>, TolokaError> {
        for kind in ["POOL.OPEN", "POOL.CLOSE", "POOL.ARCHIVE"] {
            let mut id_gt: Option<String> = None;
            loop {
                let page = self
                    .find_operations(Some(kind), Some("RUNNING"), id_gt.as_deref())
                    .await?;
                if let Some(op) = page.items.iter().find(|op| {
                    op.parameters.get("pool_id").and_then(Value::as_str) == Some(pool_id)
                }) {
                    return Ok(Some(op.clone()));
                }
                match page.items.last() {
                    Some(last) if page.has_more => id_gt = Some(last.id.clone()),
                    _ => break,
                }
            }
        }
        Ok(None)
    }

    // ----- operations ------------------------------------------------------------------------

    /// `GET /operations?type=…&status=…&id_gt=…&sort=id`: one page of operations (up to 100).
    pub async fn find_operations(
        &self,
        kind: Option<&str>,
        status: Option<&str>,
        id_gt: Option<&str>,
    ) -> Result<SearchPage<Operation>, TolokaError> {
        let mut q = Vec::new();
        for (k, v) in [("type", kind), ("status", status), ("id_gt", id_gt)] {
            if let Some(v) = v {
                q.push((k.to_owned(), v.to_owned()));
            }
        }
        q.push(("sort".to_owned(), "id".to_owned()));
        q.push(("limit".to_owned(), "100".to_owned()));
        self.get("/operations", &q).await
    }

    /// `GET /operations/{id}`.
    pub async fn get_operation(&self, id: &str) -> Result<Operation, TolokaError> {
        self.get(&format!("/operations/{}", seg(id)), &[]).await
    }

    /// `GET /operations/{id}/log`.
    pub async fn get_operation_log(&self, id: &str) -> Result<Vec<OperationLogItem>, TolokaError> {
        self.get(&format!("/operations/{}/log", seg(id)), &[]).await
    }

    /// Polls an operation until it is `SUCCESS` or `FAIL` and returns it as it finished.
    pub async fn wait_operation(&self, op: Operation) -> Result<Operation, TolokaError> {
        let deadline = tokio::time::Instant::now() + self.config.operation_wait;
        self.wait_operation_until(op, deadline).await
    }

    async fn wait_operation_until(
        &self,
        mut op: Operation,
        deadline: tokio::time::Instant,
    ) -> Result<Operation, TolokaError> {
        while !op.is_completed() {
            if tokio::time::Instant::now() >= deadline {
                return Err(TolokaError::OperationTimeout(op.id));
            }
            tokio::time::sleep(self.config.operation_poll).await;
            op = self.get_operation(&op.id).await?;
        }
        Ok(op)
    }

    /// [`wait_operation`](Self::wait_operation), and a `FAIL` is an error.
    pub async fn wait_operation_success(&self, op: Operation) -> Result<Operation, TolokaError> {
        let op = self.wait_operation(op).await?;
        if op.status == OperationStatus::Fail {
            return Err(TolokaError::OperationFailed {
                id: op.id,
                details: op.details.to_string(),
            });
        }
        Ok(op)
    }

    /// Starts an idempotent batch operation (`POST path?async_mode=true&operation_id=…`). If
    /// Toloka already has an operation with this id (`OPERATION_ALREADY_EXISTS`: an earlier try
    /// reached it), that operation is returned instead: nothing is created twice.
    async fn start_idempotent(
        &self,
        path: &str,
        mut query: Vec<(String, String)>,
        body: &Value,
        operation_id: Uuid,
    ) -> Result<Operation, TolokaError> {
        query.push(("async_mode".into(), "true".into()));
        query.push(("operation_id".into(), operation_id.to_string()));
        match self
            .call::<Operation>(Method::POST, path, &query, Some(body), Repeat::Safe)
            .await
        {
            Ok(op) => Ok(op),
            Err(e) if e.has_code("OPERATION_ALREADY_EXISTS") => {
                tracing::info!(%operation_id, path, "operation already exists; resuming it");
                self.get_operation(&operation_id.to_string()).await
            }
            Err(e) => Err(e),
        }
    }

    /// Waits for a batch operation and reads its log into created ids and validation errors,
    /// by input index (the `__item_idx` each item was sent with, plus `offset`).
    async fn batch_result(
        &self,
        op: Operation,
        id_field: &str,
        offset: usize,
        into: &mut BatchCreated<String>,
    ) -> Result<(), TolokaError> {
        let op = self.wait_operation(op).await?;
        let failed = op.status == OperationStatus::Fail;
        let log = match self.get_operation_log(&op.id).await {
            Ok(log) => log,
            Err(_) if failed => Vec::new(),
            Err(e) => return Err(e),
        };
        if failed {
            // A batch refused for its items is a validation error with their field errors.
            let errors: Vec<&Value> = log
                .iter()
                .filter(|i| !i.success && i.input.get(ITEM_INDEX).is_some())
                .map(|i| &i.output)
                .collect();
            return Err(if errors.is_empty() {
                TolokaError::OperationFailed {
                    id: op.id,
                    details: op.details.to_string(),
                }
            } else {
                TolokaError::Validation(format!("operation {} refused: {}", op.id, json!(errors)))
            });
        }
        for item in log {
            let Some(index) = item
                .input
                .get(ITEM_INDEX)
                .and_then(|v| {
                    v.as_str()
                        .map(str::to_owned)
                        .or_else(|| Some(v.to_string()))
                })
                .and_then(|s| s.trim_matches('"').parse::<usize>().ok())
            else {
                continue; // a line about the operation itself (opening the pool, …)
            };
            let key = (index + offset).to_string();
            if item.success {
                if let Some(id) = item.output.get(id_field).and_then(Value::as_str) {
                    into.items.insert(key, id.to_owned());
                }
            } else if let Value::Object(map) = item.output {
                into.validation_errors.insert(key, map);
            }
        }
        Ok(())
    }

    // ----- tasks -----------------------------------------------------------------------------

    /// `GET /tasks/{id}`.
    pub async fn get_task(&self, task_id: &str) -> Result<Task, TolokaError> {
        self.get(&format!("/tasks/{}", seg(task_id)), &[]).await
    }

    /// Synchronous `POST /tasks` (at most [`SYNC_TASKS_LIMIT`] tasks). Not idempotent: Toloka
    /// honours `operation_id` only in asynchronous mode, so this is retried only on 429.
    pub async fn create_tasks_sync(
        &self,
        tasks: &[NewTask],
        options: CreateTasksOptions,
    ) -> Result<BatchCreated<Task>, TolokaError> {
        if tasks.is_empty() || tasks.len() > SYNC_TASKS_LIMIT {
            return Err(TolokaError::Invalid(format!(
                "{} tasks; a synchronous batch holds 1 to {SYNC_TASKS_LIMIT}",
                tasks.len()
            )));
        }
        let mut query = task_query(options);
        query.push(("async_mode".into(), "false".into()));
        let body = serde_json::to_value(tasks).map_err(|e| TolokaError::Invalid(e.to_string()))?;
        let result: BatchCreated<Task> = self
            .call(
                Method::POST,
                "/tasks",
                &query,
                Some(&body),
                Repeat::OnlyIfRefused,
            )
            .await?;
        if result.items.is_empty() {
            return Err(TolokaError::Validation(format!(
                "no task created: {}",
                json!(result.validation_errors)
            )));
        }
        Ok(result)
    }

    /// Starts one asynchronous, idempotent task creation and returns its operation (an
    /// existing one if `operation_id` was used before). Items carry their index for the log.
    pub async fn create_tasks_async(
        &self,
        tasks: &[NewTask],
        options: CreateTasksOptions,
        operation_id: Uuid,
    ) -> Result<Operation, TolokaError> {
        let body = indexed(tasks)?;
        self.start_idempotent("/tasks", task_query(options), &body, operation_id)
            .await
    }

    /// Creates tasks and returns their ids by input index, with validation errors by index.
    ///
    /// With an `operation_id` the creation is idempotent: the tasks go in asynchronous
    /// operations of at most [`ASYNC_TASKS_BATCH`] (the first uses `operation_id`, the next
    /// ones ids derived from it), each polled to completion; sending the same call again —
    /// after a timeout, a crash, a lost answer — creates nothing more and returns the same ids.
    /// Without one, up to [`SYNC_TASKS_LIMIT`] tasks go in one synchronous request, and more in
    /// asynchronous operations with fresh ids.
    pub async fn create_tasks(
        &self,
        tasks: &[NewTask],
        options: CreateTasksOptions,
        operation_id: Option<Uuid>,
    ) -> Result<BatchCreated<String>, TolokaError> {
        if tasks.is_empty() {
            return Err(TolokaError::Invalid("no tasks".into()));
        }
        if operation_id.is_none() && tasks.len() <= SYNC_TASKS_LIMIT {
            let created = self.create_tasks_sync(tasks, options).await?;
            return Ok(BatchCreated {
                items: created.items.into_iter().map(|(k, t)| (k, t.id)).collect(),
                validation_errors: created.validation_errors,
            });
        }
        let base = operation_id.unwrap_or_else(Uuid::new_v4);
        let mut result = BatchCreated {
            items: BTreeMap::new(),
            validation_errors: BTreeMap::new(),
        };
        for (n, chunk) in tasks.chunks(ASYNC_TASKS_BATCH).enumerate() {
            let op_id = derived_operation_id(base, n);
            let op = self.create_tasks_async(chunk, options, op_id).await?;
            self.batch_result(op, "task_id", n * ASYNC_TASKS_BATCH, &mut result)
                .await?;
        }
        if result.items.is_empty() {
            return Err(TolokaError::Validation(format!(
                "no task created: {}",
                json!(result.validation_errors)
            )));
        }
        Ok(result)
    }

    /// `GET /tasks?pool_id=…&sort=id&id_gt=…`: one page of a pool's tasks, by id.
    pub async fn find_tasks(
        &self,
        pool_id: &str,
        id_gt: Option<&str>,
        limit: Option<u32>,
    ) -> Result<SearchPage<Task>, TolokaError> {
        let mut q = vec![
            ("pool_id".to_owned(), pool_id.to_owned()),
            ("sort".to_owned(), "id".to_owned()),
        ];
        if let Some(id) = id_gt {
            q.push(("id_gt".to_owned(), id.to_owned()));
        }
        if let Some(l) = limit {
            q.push(("limit".to_owned(), l.to_string()));
        }
        self.get("/tasks", &q).await
    }

    /// Every task of a pool, by id, 500 a page, following `has_more` with `id_gt`.
    pub async fn all_tasks(&self, pool_id: &str) -> Result<Vec<Task>, TolokaError> {
        let mut all: Vec<Task> = Vec::new();
        loop {
            let after = all.last().map(|t| t.id.clone());
            let page = self
                .find_tasks(pool_id, after.as_deref(), Some(500))
                .await?;
            let more = page.has_more && !page.items.is_empty();
            all.extend(page.items);
            if !more {
                return Ok(all);
            }
        }
    }

    /// `PATCH /tasks/{id}` with a new overlap.
    pub async fn set_task_overlap(&self, task_id: &str, overlap: u32) -> Result<Task, TolokaError> {
        let body = json!({ "overlap": overlap });
        self.call(
            Method::PATCH,
            &format!("/tasks/{}", seg(task_id)),
            &[],
            Some(&body),
            Repeat::Safe,
        )
        .await
    }

    /// `PATCH /tasks/{id}/set-overlap-or-min` with overlap 0: stops handing the task out
    /// (its overlap drops to the assignments already issued).
    pub async fn stop_task(&self, task_id: &str) -> Result<Task, TolokaError> {
        let body = json!({ "overlap": 0 });
        self.call(
            Method::PATCH,
            &format!("/tasks/{}/set-overlap-or-min", seg(task_id)),
            &[],
            Some(&body),
            Repeat::Safe,
        )
        .await
    }

    // ----- assignments -----------------------------------------------------------------------

    /// `GET /assignments` with filters: one page.
    pub async fn find_assignments(
        &self,
        filter: &AssignmentFilter,
    ) -> Result<SearchPage<Assignment>, TolokaError> {
        self.get("/assignments", &filter.to_query()).await
    }

    /// Every assignment matching `filter`, by id, following `has_more` with `id_gt`. The
    /// filter's sort is forced to id.
    pub async fn all_assignments(
        &self,
        filter: &AssignmentFilter,
    ) -> Result<Vec<Assignment>, TolokaError> {
        let mut filter = AssignmentFilter {
            sort: crate::model::AssignmentSort::Id,
            ..filter.clone()
        };
        let mut all = Vec::new();
        loop {
            let page = self.find_assignments(&filter).await?;
            let last = page.items.last().map(|a| a.id.clone());
            all.extend(page.items);
            match last {
                Some(id) if page.has_more => filter.id_gt = Some(id),
                _ => return Ok(all),
            }
        }
    }

    /// `GET /assignments/{id}`.
    pub async fn get_assignment(&self, id: &str) -> Result<Assignment, TolokaError> {
        self.get(&format!("/assignments/{}", seg(id)), &[]).await
    }

    /// `GET /assignments/{id}` under its own retry policy and per-request timeout (instead of
    /// the client's), for a read someone is waiting on: `Ok(None)` when Toloka knows no such
    /// assignment (`404`), or for an empty id (nothing is sent).
    pub async fn lookup_assignment(
        &self,
        id: &str,
        retry: &RetryPolicy,
        timeout: Duration,
    ) -> Result<Option<Assignment>, TolokaError> {
        if id.is_empty() {
            return Ok(None);
        }
        let path = format!("/assignments/{}", seg(id));
        match self
            .send_with(
                Method::GET,
                &path,
                &[],
                None,
                Repeat::Safe,
                retry,
                Some(timeout),
            )
            .await
        {
            Ok((_, bytes)) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| TolokaError::Decode(e.to_string())),
            // Toloka's "no such assignment"; a 404 without its code (a wrong base URL) is an
            // error, not an answer.
            Err(e)
                if e.api()
                    .is_some_and(|a| a.status == 404 && a.code == "DOES_NOT_EXIST") =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Accepts a submitted assignment. Accepting an accepted one succeeds (the state already
    /// matches); accepting a rejected one is [`TolokaError::AlreadyReviewed`]; one still with
    /// its worker is [`TolokaError::NotSubmitted`] (retryable).
    pub async fn accept_assignment(
        &self,
        id: &str,
        public_comment: &str,
    ) -> Result<Assignment, TolokaError> {
        self.review(id, AssignmentStatus::Accepted, public_comment)
            .await
    }

    /// Rejects a submitted assignment with a comment for the worker. Rejecting a rejected one
    /// succeeds; rejecting an accepted one is [`TolokaError::AlreadyReviewed`].
    pub async fn reject_assignment(
        &self,
        id: &str,
        public_comment: &str,
    ) -> Result<Assignment, TolokaError> {
        self.review(id, AssignmentStatus::Rejected, public_comment)
            .await
    }

    async fn review(
        &self,
        id: &str,
        status: AssignmentStatus,
        public_comment: &str,
    ) -> Result<Assignment, TolokaError> {
        let patch = AssignmentPatch {
            status,
            public_comment: public_comment.to_owned(),
        };
        let body = serde_json::to_value(&patch).map_err(|e| TolokaError::Invalid(e.to_string()))?;
        let path = format!("/assignments/{}", seg(id));
        match self
            .call::<Assignment>(Method::PATCH, &path, &[], Some(&body), Repeat::Safe)
            .await
        {
            Ok(a) => Ok(a),
            Err(e)
                if e.api().is_some_and(|a| {
                    matches!(
                        a.class(),
                        ErrorClass::Conflict | ErrorClass::IncorrectAction
                    )
                }) =>
            {
                // "Already reviewed": fine if it is already where we wanted it.
                let current = self.get_assignment(id).await?;
                if current.status == status {
                    Ok(current)
                } else if matches!(
                    current.status,
                    AssignmentStatus::Accepted | AssignmentStatus::Rejected
                ) {
                    Err(TolokaError::AlreadyReviewed {
                        assignment: id.to_owned(),
                        status: current.status,
                    })
                } else if current.status == AssignmentStatus::Active {
                    Err(TolokaError::NotSubmitted(id.to_owned()))
                } else {
                    Err(e)
                }
            }
            Err(e) => Err(e),
        }
    }

    // ----- bonuses ---------------------------------------------------------------------------

    /// Pays bonuses in asynchronous operations keyed by `operation_id` (the first batch uses it,
    /// later ones ids derived from it): repeating the call pays nothing more. Returns bonus ids
    /// by input index.
    pub async fn create_user_bonuses(
        &self,
        bonuses: &[NewUserBonus],
        operation_id: Uuid,
    ) -> Result<BatchCreated<String>, TolokaError> {
        if bonuses.is_empty() {
            return Err(TolokaError::Invalid("no bonuses".into()));
        }
        let mut result = BatchCreated {
            items: BTreeMap::new(),
            validation_errors: BTreeMap::new(),
        };
        for (n, chunk) in bonuses.chunks(ASYNC_TASKS_BATCH).enumerate() {
            let body = indexed(chunk)?;
            let op = self
                .start_idempotent(
                    "/user-bonuses",
                    Vec::new(),
                    &body,
                    derived_operation_id(operation_id, n),
                )
                .await?;
            self.batch_result(op, "user_bonus_id", n * ASYNC_TASKS_BATCH, &mut result)
                .await?;
        }
        if result.items.is_empty() {
            return Err(TolokaError::Validation(format!(
                "no bonus paid: {}",
                json!(result.validation_errors)
            )));
        }
        Ok(result)
    }

    /// Pays one bonus, idempotently by `operation_id`, and returns it.
    pub async fn create_user_bonus(
        &self,
        bonus: &NewUserBonus,
        operation_id: Uuid,
    ) -> Result<UserBonus, TolokaError> {
        let created = self
            .create_user_bonuses(std::slice::from_ref(bonus), operation_id)
            .await?;
        let id = created
            .item(0)
            .ok_or_else(|| TolokaError::Decode("the operation log names no bonus".into()))?;
        self.get_user_bonus(id).await
    }

    /// `GET /user-bonuses?user_id=…&assignment_id=…&sort=id`: one page of bonuses paid.
    pub async fn find_user_bonuses(
        &self,
        user_id: Option<&str>,
        assignment_id: Option<&str>,
        id_gt: Option<&str>,
    ) -> Result<SearchPage<UserBonus>, TolokaError> {
        let mut q = Vec::new();
        for (k, v) in [
            ("user_id", user_id),
            ("assignment_id", assignment_id),
            ("id_gt", id_gt),
        ] {
            if let Some(v) = v {
                q.push((k.to_owned(), v.to_owned()));
            }
        }
        q.push(("sort".to_owned(), "id".to_owned()));
        self.get("/user-bonuses", &q).await
    }

    /// `GET /user-bonuses/{id}`.
    pub async fn get_user_bonus(&self, id: &str) -> Result<UserBonus, TolokaError> {
        self.get(&format!("/user-bonuses/{}", seg(id)), &[]).await
    }

    // ----- restrictions, skills, requester, messages -------------------------------------------

    /// `PUT /user-restrictions`: blocks a worker in a scope, until `will_expire` or for good.
    pub async fn set_user_restriction(
        &self,
        restriction: &NewUserRestriction,
    ) -> Result<UserRestriction, TolokaError> {
        let body =
            serde_json::to_value(restriction).map_err(|e| TolokaError::Invalid(e.to_string()))?;
        self.call(
            Method::PUT,
            "/user-restrictions",
            &[],
            Some(&body),
            Repeat::Safe,
        )
        .await
    }

    /// `DELETE /user-restrictions/{id}`: lifts a block.
    pub async fn delete_user_restriction(&self, id: &str) -> Result<(), TolokaError> {
        self.send(
            Method::DELETE,
            &format!("/user-restrictions/{}", seg(id)),
            &[],
            None,
            Repeat::Safe,
        )
        .await
        .map(|_| ())
    }

    /// `GET /skills/{id}`.
    pub async fn get_skill(&self, id: &str) -> Result<Skill, TolokaError> {
        self.get(&format!("/skills/{}", seg(id)), &[]).await
    }

    /// `GET /user-skills?user_id=…&skill_id=…`.
    pub async fn find_user_skills(
        &self,
        user_id: Option<&str>,
        skill_id: Option<&str>,
    ) -> Result<SearchPage<UserSkill>, TolokaError> {
        let mut q = Vec::new();
        if let Some(u) = user_id {
            q.push(("user_id".to_owned(), u.to_owned()));
        }
        if let Some(s) = skill_id {
            q.push(("skill_id".to_owned(), s.to_owned()));
        }
        q.push(("sort".to_owned(), "id".to_owned()));
        self.get("/user-skills", &q).await
    }

    /// `PUT /user-skills`: sets a worker's skill value (replacing any earlier value).
    pub async fn set_user_skill(&self, set: &SetUserSkill) -> Result<UserSkill, TolokaError> {
        if !(0.0..=100.0).contains(&set.value) {
            return Err(TolokaError::Invalid(format!(
                "skill value {} is outside 0..=100",
                set.value
            )));
        }
        let body = serde_json::to_value(set).map_err(|e| TolokaError::Invalid(e.to_string()))?;
        self.call(Method::PUT, "/user-skills", &[], Some(&body), Repeat::Safe)
            .await
    }

    /// `DELETE /user-skills/{id}`.
    pub async fn delete_user_skill(&self, id: &str) -> Result<(), TolokaError> {
        self.send(
            Method::DELETE,
            &format!("/user-skills/{}", seg(id)),
            &[],
            None,
            Repeat::Safe,
        )
        .await
        .map(|_| ())
    }

    /// `GET /requester`: the account and its balance.
    pub async fn get_requester(&self) -> Result<Requester, TolokaError> {
        self.get("/requester", &[]).await
    }

    /// `POST /message-threads/compose`: a message to workers (not answerable). Not
    /// idempotent, so retried only on 429.
    pub async fn compose_message(
        &self,
        recipients: &[String],
        topic: &str,
        text: &str,
    ) -> Result<(), TolokaError> {
        let body = json!({
            "recipients_select_type": "DIRECT",
            "recipients_ids": recipients,
            "topic": { "EN": topic },
            "text": { "EN": text },
            "answerable": false,
        });
        self.send(
            Method::POST,
            "/message-threads/compose",
            &[],
            Some(&body),
            Repeat::OnlyIfRefused,
        )
        .await
        .map(|_| ())
    }
}

/// The id of batch `n` of an operation: `base` itself for the first, a UUID v5 of it after.
pub fn derived_operation_id(base: Uuid, n: usize) -> Uuid {
    if n == 0 {
        base
    } else {
        Uuid::new_v5(&base, format!("batch-{n}").as_bytes())
    }
}

fn task_query(o: CreateTasksOptions) -> Vec<(String, String)> {
    vec![
        ("allow_defaults".into(), o.allow_defaults.to_string()),
        ("open_pool".into(), o.open_pool.to_string()),
        (
            "skip_invalid_items".into(),
            o.skip_invalid_items.to_string(),
        ),
    ]
}

/// Items as a JSON array, each with its index under `__item_idx`.
fn indexed<T: Serialize>(items: &[T]) -> Result<Value, TolokaError> {
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let mut v = serde_json::to_value(item).map_err(|e| TolokaError::Invalid(e.to_string()))?;
        if let Value::Object(m) = &mut v {
            m.insert(ITEM_INDEX.into(), Value::String(i.to_string()));
        }
        out.push(v);
    }
    Ok(Value::Array(out))
}

/// A path segment with the characters a URL path cannot carry escaped.
fn seg(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    for b in id.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn transport(e: reqwest::Error) -> TolokaError {
    if e.is_timeout() {
        TolokaError::Timeout
    } else if e.is_decode() {
        TolokaError::Decode(e.to_string())
    } else {
        // reqwest's messages carry the URL, never headers.
        TolokaError::Transport(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_shows_the_token() {
        let c = ClientConfig::new("http://127.0.0.1:1", Credentials::ApiKey("s3cr3t".into()));
        let client = TolokaClient::new(c.clone()).unwrap();
        for text in [format!("{c:?}"), format!("{client:?}")] {
            assert!(!text.contains("s3cr3t"), "{text}");
            assert!(text.contains("redacted"), "{text}");
        }
        let o = Credentials::OAuth("tok".into());
        assert_eq!(format!("{o:?}"), "OAuth(<redacted>)");
    }

    #[test]
    fn backoff_doubles_is_capped_and_jittered_in_the_upper_half() {
        let p = RetryPolicy {
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(1_000),
            ..RetryPolicy::default()
        };
        for _ in 0..50 {
            let d1 = p.backoff(1);
            assert!(d1 >= Duration::from_millis(50) && d1 <= Duration::from_millis(100));
            let d3 = p.backoff(3);
            assert!(d3 >= Duration::from_millis(200) && d3 <= Duration::from_millis(400));
            let d30 = p.backoff(30);
            assert!(d30 >= Duration::from_millis(500) && d30 <= Duration::from_millis(1_000));
        }
    }

    #[test]
    fn quota_windows_decide_the_wait() {
        let p = RetryPolicy {
            minute_quota_wait: Duration::from_secs(60),
            max_retry_after: Duration::from_secs(120),
            ..RetryPolicy::default()
        };
        let throttled = |interval: Option<&str>, after: Option<u64>| {
            TolokaError::Api(Box::new(ApiError {
                status: 429,
                code: "TOO_MANY_REQUESTS".into(),
                message: String::new(),
                request_id: None,
                payload: interval.map(|i| json!({ "interval": i })),
                retry_after: after.map(Duration::from_secs),
            }))
        };
        assert_eq!(
            p.delay_for(&throttled(Some("MIN"), None), 1),
            Some(Duration::from_secs(60))
        );
        assert_eq!(p.delay_for(&throttled(Some("HOUR"), None), 1), None);
        assert_eq!(p.delay_for(&throttled(Some("DAY"), None), 1), None);
        assert_eq!(
            p.delay_for(&throttled(Some("HOUR"), Some(3)), 1),
            Some(Duration::from_secs(3))
        );
        assert_eq!(p.delay_for(&throttled(None, Some(3_600)), 1), None);
        assert_eq!(p.delay_for(&TolokaError::Validation("x".into()), 1), None);
        assert!(p.delay_for(&TolokaError::Timeout, 1).is_some());
    }

    #[test]
    fn ids_become_safe_path_segments_and_batches_get_distinct_ids() {
        assert_eq!(seg("00001092da--61ef"), "00001092da--61ef");
        assert_eq!(seg("a/b c"), "a%2Fb%20c");
        let base = Uuid::new_v4();
        assert_eq!(derived_operation_id(base, 0), base);
        assert_ne!(derived_operation_id(base, 1), base);
        assert_eq!(derived_operation_id(base, 1), derived_operation_id(base, 1));
        assert_ne!(derived_operation_id(base, 1), derived_operation_id(base, 2));
    }
}
