//! [`ProlificClient`]: Prolific's REST API v1 over reqwest, with retries.

use std::fmt;
use std::time::Duration;

use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::error::{ApiError, ProlificError};
use crate::model::{
    Balance, BulkBonus, HookSecret, ListPage, NewStudy, ParticipantGroup, Study, StudyAction,
    Submission, SubmissionTransition, Subscription,
};

/// Prolific's production API (paths start with `/api/v1/`).
pub const PRODUCTION_URL: &str = "https://api.prolific.com";

/// How requests are authorized: `Authorization: Token <token>`. The token never appears in
/// `Debug` output or logs, and its header is marked sensitive.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials(String);

impl Credentials {
    /// A token.
    pub fn new(token: impl Into<String>) -> Self {
        Self(token.into().trim().to_owned())
    }

    /// Reads `PROLIFIC_API_TOKEN`.
    pub fn from_env() -> Result<Self, ProlificError> {
        match std::env::var("PROLIFIC_API_TOKEN") {
            Ok(t) if !t.trim().is_empty() => Ok(Self::new(t)),
            _ => Err(ProlificError::Config(
                "no Prolific token: set PROLIFIC_API_TOKEN".into(),
            )),
        }
    }

    fn header(&self) -> Result<HeaderValue, ProlificError> {
        let mut value = HeaderValue::from_str(&format!("Token {}", self.0)).map_err(|_| {
            ProlificError::Config("the token has characters a header cannot".into())
        })?;
        value.set_sensitive(true);
        Ok(value)
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
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
    /// The longest `Retry-After` honoured; a longer one is returned as an error (retryable)
    /// for the caller to schedule.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 6,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(120),
        }
    }
}

impl RetryPolicy {
    /// Capped exponential backoff with jitter before retry number `retry` (1-based): a uniform
    /// pick in the upper half of `min(max, base × 2^(retry-1))`.
    pub fn backoff(&self, retry: u32) -> Duration {
        let policy = crowdcore::engine::RetryPolicy {
            base_ms: self.base_delay.as_millis() as u64,
            max_ms: self.max_delay.as_millis() as u64,
        };
        Duration::from_millis(policy.delay_ms(retry, rand::random()))
    }

    /// How long to wait before retrying after `error`, or `None` to give up.
    fn delay_for(&self, error: &ProlificError, retry: u32) -> Option<Duration> {
        if !error.is_retryable() {
            return None;
        }
        match error.api().and_then(|a| a.retry_after) {
            Some(after) => (after <= self.max_retry_after).then_some(after),
            None => Some(self.backoff(retry)),
        }
    }
}

/// Everything a [`ProlificClient`] needs.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The API origin, such as [`PRODUCTION_URL`] or a local fake's `http://127.0.0.1:port`.
    pub base_url: String,
    /// The token.
    pub credentials: Credentials,
    /// The timeout of each request.
    pub timeout: Duration,
    /// The connect timeout.
    pub connect_timeout: Duration,
    /// Retries of 408, 429, 5xx, timeouts and broken connections.
    pub retry: RetryPolicy,
    /// Items per listing page.
    pub page_size: u32,
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
            page_size: 100,
        }
    }

    /// Production, with the token from `PROLIFIC_API_TOKEN`.
    pub fn production_from_env() -> Result<Self, ProlificError> {
        Ok(Self::new(PRODUCTION_URL, Credentials::from_env()?))
    }
}

/// Whether a request may be sent again after it may have reached Prolific.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Repeat {
    /// Reads, and writes that set a state (PATCH to a value, a transition Prolific documents
    /// as idempotent).
    Safe,
    /// A write that would happen twice (creating a study, paying a bonus): retried only when
    /// Prolific said it did nothing (429).
    OnlyIfRefused,
}

/// A client of Prolific's REST API v1. Cheap to clone (the connection pool is shared).
#[derive(Clone)]
pub struct ProlificClient {
    http: reqwest::Client,
    base: String,
    config: ClientConfig,
}

impl fmt::Debug for ProlificClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProlificClient")
            .field("base", &self.base)
            .field("credentials", &self.config.credentials)
            .finish_non_exhaustive()
    }
}

/// A path segment with anything but id characters escaped, so that an id from the network
/// cannot change the path.
fn seg(id: &str) -> String {
    id.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn transport(e: reqwest::Error) -> ProlificError {
    if e.is_timeout() {
        ProlificError::Timeout
    } else {
        ProlificError::Transport(e.without_url().to_string())
    }
}

impl ProlificClient {
    /// A client with this configuration.
    pub fn new(config: ClientConfig) -> Result<Self, ProlificError> {
        let base = config.base_url.trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(ProlificError::Config(format!(
                "base URL {base:?} is not http(s)"
            )));
        }
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, config.credentials.header()?);
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .timeout(config.timeout)
            .connect_timeout(config.connect_timeout)
            .user_agent(concat!("crowdcore-prolific/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ProlificError::Config(e.to_string()))?;
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
        body: Option<&Value>,
    ) -> Result<(StatusCode, HeaderMap, Vec<u8>), ProlificError> {
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path}", self.base));
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.map_err(transport)?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.map_err(transport)?.to_vec();
        // The path only: never the headers (the token) nor bodies (participants' data).
        tracing::debug!(%method, path, status = status.as_u16(), "prolific request");
        if status.is_success() {
            return Ok((status, headers, bytes));
        }
        let retry_after = headers
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        Err(ProlificError::Api(Box::new(ApiError::from_body(
            status.as_u16(),
            &bytes,
            retry_after,
        ))))
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        repeat: Repeat,
    ) -> Result<(StatusCode, HeaderMap, Vec<u8>), ProlificError> {
        let retry = &self.config.retry;
        let mut attempt = 1;
        loop {
            let result = self.send_once(&method, path, body).await;
            let Err(error) = result else { return result };
            let may_repeat = match repeat {
                Repeat::Safe => true,
                Repeat::OnlyIfRefused => error.api().is_some_and(ApiError::refused_untouched),
            };
            if attempt >= retry.max_attempts || !may_repeat {
                return Err(error);
            }
            let Some(delay) = retry.delay_for(&error, attempt) else {
                return Err(error);
            };
            tracing::debug!(%method, path, attempt, ?delay, %error, "retrying prolific request");
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        repeat: Repeat,
    ) -> Result<T, ProlificError> {
        let (_, _, bytes) = self.send(method, path, body, repeat).await?;
        serde_json::from_slice(&bytes).map_err(|e| ProlificError::Decode(e.to_string()))
    }

    /// Every item of a paged listing, following `_links.next` (on this client's own origin
    /// only: a link elsewhere would carry the token away).
    async fn list_all<T: DeserializeOwned>(&self, first: String) -> Result<Vec<T>, ProlificError> {
        let mut out = Vec::new();
        let mut path = Some(first);
        let mut pages = 0;
        while let Some(p) = path.take() {
            let page: ListPage<T> = self.call(Method::GET, &p, None, Repeat::Safe).await?;
            out.extend(page.results);
            pages += 1;
            if pages > 10_000 {
                return Err(ProlificError::Decode("a listing that never ends".into()));
            }
            path = match page.links.next.href {
                Some(href) => Some(self.local_path(&href)?),
                None => None,
            };
        }
        Ok(out)
    }

    /// The path (and query) of a link Prolific gave: a relative path, or an absolute link on
    /// this client's origin or Prolific's. The origin must end where the path begins, so
    /// that `https://api.prolific.com.evil.example/…` or `http://host:9@evil/…` is refused and
    /// the token never goes to another host.
    fn local_path(&self, href: &str) -> Result<String, ProlificError> {
        let on = |origin: &str| {
            href.strip_prefix(origin.trim_end_matches('/'))
                .filter(|rest| rest.starts_with('/'))
        };
        let path = if href.starts_with('/') && !href.starts_with("//") {
            Some(href)
        } else {
            on(&self.base).or_else(|| on(PRODUCTION_URL))
        };
        match path {
            Some(path) if path.starts_with("/api/v1/") => Ok(path.to_owned()),
            _ => Err(ProlificError::Decode(format!(
                "a next link off this API's origin: {href}"
            ))),
        }
    }

    // ----- studies ---------------------------------------------------------------------------

    /// `POST /api/v1/studies/`: a draft study. Not idempotent: sent again only after a 429.
    pub async fn create_study(&self, study: &NewStudy) -> Result<Study, ProlificError> {
        let body =
            serde_json::to_value(study).map_err(|e| ProlificError::Invalid(e.to_string()))?;
        self.call(
            Method::POST,
            "/api/v1/studies/",
            Some(&body),
            Repeat::OnlyIfRefused,
        )
        .await
    }

    /// `GET /api/v1/studies/{id}/`.
    pub async fn get_study(&self, id: &str) -> Result<Study, ProlificError> {
        self.call(
            Method::GET,
            &format!("/api/v1/studies/{}/", seg(id)),
            None,
            Repeat::Safe,
        )
        .await
    }

    /// `GET /api/v1/projects/{id}/studies/`, every page.
    pub async fn list_project_studies(&self, project: &str) -> Result<Vec<Study>, ProlificError> {
        self.list_all(format!(
            "/api/v1/projects/{}/studies/?page_size={}",
            seg(project),
            self.config.page_size
        ))
        .await
    }

    /// `PATCH /api/v1/studies/{id}/` setting `total_available_places` (an absolute value, so
    /// safe to repeat; Prolific only lets it grow once published).
    pub async fn set_places(&self, id: &str, places: u32) -> Result<Study, ProlificError> {
        let body = json!({ "total_available_places": places });
        self.call(
            Method::PATCH,
            &format!("/api/v1/studies/{}/", seg(id)),
            Some(&body),
            Repeat::Safe,
        )
        .await
    }

    /// `POST /api/v1/studies/{id}/transition/`.
    pub async fn transition_study(
        &self,
        id: &str,
        action: StudyAction,
    ) -> Result<Study, ProlificError> {
        let body = json!({ "action": action });
        self.call(
            Method::POST,
            &format!("/api/v1/studies/{}/transition/", seg(id)),
            Some(&body),
            Repeat::Safe,
        )
        .await
    }

    /// `DELETE /api/v1/studies/{id}/` (drafts only).
    pub async fn delete_study(&self, id: &str) -> Result<(), ProlificError> {
        self.send(
            Method::DELETE,
            &format!("/api/v1/studies/{}/", seg(id)),
            None,
            Repeat::Safe,
        )
        .await
        .map(|_| ())
    }

    // ----- submissions -----------------------------------------------------------------------

    /// `GET /api/v1/submissions/?study={id}`, every page.
    pub async fn list_submissions(&self, study: &str) -> Result<Vec<Submission>, ProlificError> {
        self.list_all(format!(
            "/api/v1/submissions/?study={}&page_size={}",
            seg(study),
            self.config.page_size
        ))
        .await
    }

    /// `GET /api/v1/submissions/{id}/`; `None` if Prolific knows no such submission.
    pub async fn get_submission(&self, id: &str) -> Result<Option<Submission>, ProlificError> {
        match self
            .call(
                Method::GET,
                &format!("/api/v1/submissions/{}/", seg(id)),
                None,
                Repeat::Safe,
            )
            .await
        {
            Ok(s) => Ok(Some(s)),
            Err(e) if e.status() == Some(404) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `POST /api/v1/submissions/{id}/transition/` (idempotent, per Prolific's reference).
    /// A rejection message shorter than 100 characters is refused before sending.
    pub async fn transition_submission(
        &self,
        id: &str,
        transition: &SubmissionTransition,
    ) -> Result<Submission, ProlificError> {
        if transition.action == crate::model::SubmissionAction::Reject {
            check_rejection(transition.message.as_deref(), transition.rejection_category)?;
        }
        let body =
            serde_json::to_value(transition).map_err(|e| ProlificError::Invalid(e.to_string()))?;
        self.call(
            Method::POST,
            &format!("/api/v1/submissions/{}/transition/", seg(id)),
            Some(&body),
            Repeat::Safe,
        )
        .await
    }

    /// `POST /api/v1/submissions/bulk-approve/` for submissions of one study.
    pub async fn bulk_approve(
        &self,
        study: &str,
        submission_ids: &[String],
    ) -> Result<(), ProlificError> {
        let body = json!({ "study_id": study, "submission_ids": submission_ids });
        self.send(
            Method::POST,
            "/api/v1/submissions/bulk-approve/",
            Some(&body),
            Repeat::Safe,
        )
        .await
        .map(|_| ())
    }

    // ----- bonuses ---------------------------------------------------------------------------

    /// `POST /api/v1/submissions/bonus-payments/`: sets a bulk bonus up (nothing is paid).
    /// `csv_bonuses` lines are `<submission or participant id>,<amount in major units>`.
    pub async fn create_bulk_bonus(
        &self,
        study: &str,
        csv_bonuses: &str,
    ) -> Result<BulkBonus, ProlificError> {
        let body = json!({ "study_id": study, "csv_bonuses": csv_bonuses });
        self.call(
            Method::POST,
            "/api/v1/submissions/bonus-payments/",
            Some(&body),
            Repeat::OnlyIfRefused,
        )
        .await
    }

    /// `POST /api/v1/bulk-bonus-payments/{id}/pay/`. **Not idempotent**: a repeat pays again.
    /// Sent once; retried by this call only after a 429 (Prolific did nothing). A caller that
    /// gets an error for which [`ProlificError::may_have_happened`] holds must find out
    /// whether it was paid before sending it again.
    pub async fn pay_bulk_bonus(&self, id: &str) -> Result<(), ProlificError> {
        self.send(
            Method::POST,
            &format!("/api/v1/bulk-bonus-payments/{}/pay/", seg(id)),
            None,
            Repeat::OnlyIfRefused,
        )
        .await
        .map(|_| ())
    }

    // ----- messages, groups, balance ---------------------------------------------------------

    /// `POST /api/v1/messages/` to one participant about a study.
    pub async fn send_message(
        &self,
        recipient: &str,
        study: &str,
        body: &str,
    ) -> Result<(), ProlificError> {
        let b = json!({ "recipient_id": recipient, "study_id": study, "body": body });
        self.send(
            Method::POST,
            "/api/v1/messages/",
            Some(&b),
            Repeat::OnlyIfRefused,
        )
        .await
        .map(|_| ())
    }

    /// `POST /api/v1/messages/bulk/` to many participants of a study.
    pub async fn send_bulk_message(
        &self,
        recipients: &[String],
        study: &str,
        body: &str,
    ) -> Result<(), ProlificError> {
        let b = json!({ "ids": recipients, "study_id": study, "body": body });
        self.send(
            Method::POST,
            "/api/v1/messages/bulk/",
            Some(&b),
            Repeat::OnlyIfRefused,
        )
        .await
        .map(|_| ())
    }

    /// `POST /api/v1/participant-groups/`: a group in a workspace.
    pub async fn create_participant_group(
        &self,
        workspace: &str,
        name: &str,
    ) -> Result<ParticipantGroup, ProlificError> {
        let b = json!({ "workspace_id": workspace, "name": name });
        self.call(
            Method::POST,
            "/api/v1/participant-groups/",
            Some(&b),
            Repeat::OnlyIfRefused,
        )
        .await
    }

    /// `POST /api/v1/participant-groups/{id}/participants/`: adds participants (adding one
    /// already there changes nothing, so safe to repeat).
    pub async fn add_to_participant_group(
        &self,
        group: &str,
        participants: &[String],
    ) -> Result<(), ProlificError> {
        let b = json!({ "participant_ids": participants });
        self.send(
            Method::POST,
            &format!("/api/v1/participant-groups/{}/participants/", seg(group)),
            Some(&b),
            Repeat::Safe,
        )
        .await
        .map(|_| ())
    }

    /// `GET /api/v1/workspaces/{id}/balance/`.
    pub async fn balance(&self, workspace: &str) -> Result<Balance, ProlificError> {
        self.call(
            Method::GET,
            &format!("/api/v1/workspaces/{}/balance/", seg(workspace)),
            None,
            Repeat::Safe,
        )
        .await
    }

    // ----- hooks -----------------------------------------------------------------------------

    /// `POST /api/v1/hooks/secrets/`: creates (or replaces) the workspace's hook secret.
    pub async fn create_hook_secret(&self, workspace: &str) -> Result<HookSecret, ProlificError> {
        let b = json!({ "workspace_id": workspace });
        self.call(
            Method::POST,
            "/api/v1/hooks/secrets/",
            Some(&b),
            Repeat::Safe,
        )
        .await
    }

    /// `POST /api/v1/hooks/subscriptions/`: the subscription and the `X-Hook-Secret` header
    /// of the answer, which [`confirm_subscription`](Self::confirm_subscription) takes.
    pub async fn create_subscription(
        &self,
        workspace: &str,
        event_type: &str,
        target_url: &str,
    ) -> Result<(Subscription, Option<String>), ProlificError> {
        let b = json!({ "workspace_id": workspace, "event_type": event_type, "target_url": target_url });
        let (_, headers, bytes) = self
            .send(
                Method::POST,
                "/api/v1/hooks/subscriptions/",
                Some(&b),
                Repeat::OnlyIfRefused,
            )
            .await?;
        let doc: Value =
            serde_json::from_slice(&bytes).map_err(|e| ProlificError::Decode(e.to_string()))?;
        // Documented as `{"results": [subscription]}`; a bare subscription is read too.
        let item = doc
            .get("results")
            .and_then(|r| r.as_array())
            .and_then(|r| r.first())
            .cloned()
            .unwrap_or(doc);
        let sub: Subscription =
            serde_json::from_value(item).map_err(|e| ProlificError::Decode(e.to_string()))?;
        let secret = headers
            .get("x-hook-secret")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        Ok((sub, secret))
    }

    /// `POST /api/v1/hooks/subscriptions/{id}/` with the `X-Hook-Secret` of its creation.
    pub async fn confirm_subscription(
        &self,
        id: &str,
        hook_secret: &str,
    ) -> Result<Subscription, ProlificError> {
        let b = json!({ "secret": hook_secret });
        self.call(
            Method::POST,
            &format!("/api/v1/hooks/subscriptions/{}/", seg(id)),
            Some(&b),
            Repeat::Safe,
        )
        .await
    }
}

/// The shortest rejection message Prolific takes.
pub const MIN_REJECTION_MESSAGE: usize = 100;

/// Refuses a rejection Prolific would refuse: no category, or a message under
/// [`MIN_REJECTION_MESSAGE`] characters.
pub fn check_rejection(
    message: Option<&str>,
    category: Option<crate::model::RejectionCategory>,
) -> Result<(), ProlificError> {
    let len = message.map_or(0, |m| m.trim().chars().count());
    if len < MIN_REJECTION_MESSAGE {
        return Err(ProlificError::Invalid(format!(
            "a Prolific rejection needs a message of at least {MIN_REJECTION_MESSAGE} characters \
             explaining why (this one has {len}); nothing was sent"
        )));
    }
    if category.is_none() {
        return Err(ProlificError::Invalid(
            "a Prolific rejection needs a rejection_category; nothing was sent".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_never_show() {
        let c = Credentials::new("secret-token-123");
        assert_eq!(format!("{c:?}"), "Token(<redacted>)");
        let client =
            ProlificClient::new(ClientConfig::new("http://127.0.0.1:1", c)).expect("client");
        assert!(!format!("{client:?}").contains("secret-token-123"));
        assert!(c_header_is_sensitive());
    }

    fn c_header_is_sensitive() -> bool {
        Credentials::new("x").header().unwrap().is_sensitive()
    }

    #[test]
    fn short_rejections_are_refused_before_sending() {
        let e = check_rejection(
            Some("too short"),
            Some(crate::model::RejectionCategory::Other),
        )
        .unwrap_err();
        assert!(e.to_string().contains("at least 100"), "{e}");
        let long = "x".repeat(100);
        assert!(check_rejection(Some(&long), None).is_err());
        assert!(
            check_rejection(
                Some(&long),
                Some(crate::model::RejectionCategory::LowEffort)
            )
            .is_ok()
        );
    }

    #[test]
    fn next_links_stay_on_this_origin() {
        let c = ProlificClient::new(ClientConfig::new(
            "http://127.0.0.1:9",
            Credentials::new("t"),
        ))
        .unwrap();
        assert_eq!(
            c.local_path("http://127.0.0.1:9/api/v1/submissions/?page=2")
                .unwrap(),
            "/api/v1/submissions/?page=2"
        );
        assert_eq!(
            c.local_path("https://api.prolific.com/api/v1/submissions/?page=2")
                .unwrap(),
            "/api/v1/submissions/?page=2"
        );
        assert!(c.local_path("https://evil.example/api/v1/x").is_err());
        // Origins that only start like this one's or Prolific's are other hosts.
        assert!(
            c.local_path("http://127.0.0.1:9@evil.example/api/v1/x")
                .is_err()
        );
        assert!(c.local_path("http://127.0.0.1:90/api/v1/x").is_err());
        assert!(
            c.local_path("https://api.prolific.com.evil.example/api/v1/x")
                .is_err()
        );
        assert!(c.local_path("//evil.example/api/v1/x").is_err());
        assert_eq!(
            c.local_path("/api/v1/studies/?page=3").unwrap(),
            "/api/v1/studies/?page=3"
        );
        assert_eq!(seg("abc/../x"), "abc%2F%2E%2E%2Fx");
        assert_eq!(seg("é"), "%C3%A9");
    }
}
