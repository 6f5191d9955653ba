//! `GET /api/v1/events`: the change log of [`crate::events`] as JSON, from a `?since=`
//! cursor. Reading it never triggers a scrape; see docs/landing.md for the schema.

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::landing::security_headers;
use super::AppState;

pub const EVENTS_PATH: &str = "/api/v1/events";

pub const CAPTURE_JS_PATH: &str = "/assets/capture.js";
/// The page's charts, event log and capture download.
pub const CAPTURE_JS: &str = include_str!("assets/capture.js");

pub(super) async fn capture_js() -> Response {
    (
        security_headers("text/javascript; charset=utf-8", "no-cache"),
        CAPTURE_JS,
    )
        .into_response()
}

/// Most events one answer holds (`?limit=`, default the same).
pub const MAX_LIMIT: usize = 1000;

/// `since` and `limit` of the query string; an error message for a bad one.
fn params(query: Option<&str>) -> Result<(u64, usize), String> {
    let (mut since, mut limit) = (0u64, MAX_LIMIT);
    for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match k.as_ref() {
            "since" => {
                since = v
                    .parse()
                    .map_err(|_| format!("invalid since {v:?}: a sequence number (0 for all)"))?
            }
            "limit" => {
                limit = v
                    .parse()
                    .ok()
                    .filter(|n| (1..=MAX_LIMIT).contains(n))
                    .ok_or_else(|| format!("invalid limit {v:?}: 1 to {MAX_LIMIT}"))?
            }
            _ => {}
        }
    }
    Ok((since, limit))
}

pub(super) async fn events(State(state): State<AppState>, RawQuery(query): RawQuery) -> Response {
    let Some(log) = state.scraper.events() else {
        return (
            StatusCode::NOT_FOUND,
            "the change log is off (--events.capacity=0)\n",
        )
            .into_response();
    };
    let (since, limit) = match params(query.as_deref()) {
        Ok(p) => p,
        Err(msg) => return (StatusCode::BAD_REQUEST, format!("{msg}\n")).into_response(),
    };
    match serde_json::to_vec(&log.since(since, limit)) {
        Ok(body) => (security_headers("application/json", "no-store"), body).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "cannot encode the events");
            (StatusCode::INTERNAL_SERVER_ERROR, "events failed\n").into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capture_js_references_nothing_external_and_inserts_text_only() {
        for bad in [
            "http://",
            "https://",
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
            "new Function",
            ".style",
            "setAttribute(\"style",
        ] {
            assert!(!CAPTURE_JS.contains(bad), "{bad}");
        }
    }

    #[test]
    fn query_parameters() {
        assert_eq!(params(None), Ok((0, MAX_LIMIT)));
        assert_eq!(params(Some("since=42&limit=5&x=1")), Ok((42, 5)));
        for bad in [
            "since=-1",
            "since=abc",
            "since=",
            "limit=0",
            "limit=1001",
            "limit=x",
        ] {
            assert!(params(Some(bad)).is_err(), "{bad}");
        }
    }
}
