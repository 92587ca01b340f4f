//! The static pages: the landing page, the status page, their script and style. No build
//! step: the files are embedded as they are in `assets/`.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;

use super::HttpState;

const LANDING: &str = include_str!("assets/landing.html");
const LANDING_JS: &str = include_str!("assets/landing.js");
const STATUS: &str = include_str!("assets/status.html");
const STATUS_JS: &str = include_str!("assets/status.js");
const STYLE: &str = include_str!("assets/style.css");

pub(super) fn routes(state: HttpState) -> Router {
    Router::new()
        .route("/work", get(landing))
        .route("/status", get(status))
        .route(
            "/assets/landing.js",
            get(|| asset(LANDING_JS, "text/javascript")),
        )
        .route(
            "/assets/status.js",
            get(|| asset(STATUS_JS, "text/javascript")),
        )
        .route("/assets/style.css", get(|| asset(STYLE, "text/css")))
        .with_state(state)
}

pub(super) async fn asset(body: &'static str, kind: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(kind)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        body,
    )
        .into_response()
}

/// Escapes text for HTML element content and attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

async fn landing(State(state): State<HttpState>) -> Response {
    let config = &state.inner.config;
    let page = LANDING
        .replace("{{TITLE}}", &escape(&config.title))
        .replace("{{DESCRIPTION}}", &escape(&config.description));
    // Scripts only from here; the form may go to the platform's submit origins. The page may
    // be framed (MTurk shows it in an iframe).
    let mut forms: Vec<&str> = config.submit_origins.iter().map(String::as_str).collect();
    if let Some(origin) = config
        .finish_redirect
        .as_deref()
        .and_then(super::finish::origin_of)
    {
        forms.push(origin);
    }
    let csp = format!(
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         form-action 'self' {}",
        forms.join(" ")
    );
    let mut response = Html(page).into_response();
    if let Ok(v) = HeaderValue::from_str(&csp) {
        response
            .headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, v);
    }
    response.headers_mut().insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

async fn status() -> Response {
    let mut response = Html(STATUS).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
             frame-ancestors 'none'; form-action 'none'",
        ),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

#[cfg(test)]
mod tests {
    #[test]
    fn escaping_covers_markup_and_quotes() {
        assert_eq!(
            super::escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }
}
