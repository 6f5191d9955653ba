//! HTTP front: `/metrics` (or `--web.telemetry-path`), `/` landing page, `/healthz`.

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tower_http::compression::CompressionLayer;

use crate::metrics::{self, Format};
use crate::scrape::Scraper;

#[derive(Clone)]
struct AppState {
    scraper: Arc<Scraper>,
    telemetry_path: Arc<str>,
}

/// Build the router. Responses are gzip-compressed when the client asks for it.
pub fn router(scraper: Arc<Scraper>, telemetry_path: &str) -> Router {
    let state = AppState {
        scraper,
        telemetry_path: telemetry_path.into(),
    };
    Router::new()
        .route(telemetry_path, get(metrics_handler))
        .route("/", get(landing))
        .route("/healthz", get(|| async { "ok" }))
        .fallback(|| async { (StatusCode::NOT_FOUND, "404 page not found\n") })
        .layer(CompressionLayer::new().gzip(true))
        .with_state(state)
}

/// `collect[]=name` parameters of the query string.
fn selection(query: Option<&str>) -> Vec<String> {
    let Some(q) = query else {
        return Vec::new();
    };
    form_urlencoded::parse(q.as_bytes())
        .filter(|(k, _)| k == "collect[]")
        .map(|(_, v)| v.into_owned())
        .collect()
}

async fn metrics_handler(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let selected = selection(query.as_deref());
    if let Err(msg) = state.scraper.check_selection(&selected) {
        return (StatusCode::BAD_REQUEST, format!("{msg}\n")).into_response();
    }
    let format = Format::negotiate(headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()));
    let scraper = state.scraper.clone();
    // Collection reads files and netlink sockets: keep it off the async workers.
    let body = tokio::task::spawn_blocking(move || {
        let families = scraper.scrape(Some(&selected));
        metrics::encode(families, format)
    })
    .await;
    match body {
        Ok(body) => (
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(format.content_type()),
                ),
                (header::VARY, HeaderValue::from_static("Accept")),
            ],
            body,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "scrape task failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "scrape failed\n").into_response()
        }
    }
}

async fn landing(State(state): State<AppState>) -> Html<String> {
    let collectors = state.scraper.collector_names().join(", ");
    let path = html_escape(&state.telemetry_path);
    Html(format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>netstat_exporter</title></head>\
<body style=\"font-family:monospace\"><h1>netstat_exporter {version}</h1>\
<p>Socket states and queues, listeners and interfaces as Prometheus metrics.</p>\
<ul><li><a href=\"{path}\">{path}</a> metrics</li><li><a href=\"/healthz\">/healthz</a> health</li></ul>\
<p>Enabled collectors: {collectors}</p></body></html>\n",
        version = crate::scrape::VERSION,
        collectors = html_escape(&collectors),
    ))
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
