//! HTTP front: `/metrics` (or `--web.telemetry-path`), `/` landing page with its assets and
//! `/api/v1/snapshot` JSON (see [`landing`]), `/healthz`.

pub mod events; // events
pub mod landing;
pub mod snapshot;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{RawQuery, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tokio::sync::Semaphore;
use tower_http::compression::CompressionLayer;

use crate::metrics::{self, Format};
use crate::scrape::Scraper;
use crate::web_config::WebRuntime;

/// Prometheus sends its scrape timeout in this header.
pub const SCRAPE_TIMEOUT_HEADER: &str = "x-prometheus-scrape-timeout-seconds";
/// Upper bound of a scrape timeout, whatever a request asks for.
const MAX_SCRAPE_TIMEOUT: Duration = Duration::from_secs(300);

/// Limits and security settings of the HTTP front.
#[derive(Clone)]
pub struct HttpOptions {
    /// Requests in flight beyond which the answer is 503 at once (0: no limit).
    pub max_requests: usize,
    /// Subtracted from `X-Prometheus-Scrape-Timeout-Seconds`.
    pub timeout_offset: Duration,
    /// Basic auth and extra headers (TLS is applied by the server).
    pub web: Arc<WebRuntime>,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            max_requests: 40,
            timeout_offset: Duration::from_millis(500),
            web: Arc::new(WebRuntime::disabled()),
        }
    }
}

#[derive(Clone)]
struct AppState {
    scraper: Arc<Scraper>,
    telemetry_path: Arc<str>,
    timeout_offset: Duration,
}

#[derive(Clone)]
struct Guard {
    web: Arc<WebRuntime>,
    in_flight: Option<Arc<Semaphore>>,
    max_requests: usize,
}

/// Build the router with the default [`HttpOptions`] (no auth, 40 requests in flight).
pub fn router(scraper: Arc<Scraper>, telemetry_path: &str) -> Router {
    router_with(scraper, telemetry_path, HttpOptions::default())
}

/// Build the router. Responses are gzip-compressed when the client asks for it. Every request
/// goes through, in order: the in-flight limit (503), the body refusal (413), basic auth
/// (401), and gets the configured extra headers.
pub fn router_with(scraper: Arc<Scraper>, telemetry_path: &str, opts: HttpOptions) -> Router {
    let state = AppState {
        scraper,
        telemetry_path: telemetry_path.into(),
        timeout_offset: opts.timeout_offset,
    };
    let guard = Guard {
        web: opts.web,
        in_flight: (opts.max_requests > 0).then(|| Arc::new(Semaphore::new(opts.max_requests))),
        max_requests: opts.max_requests,
    };
    let mut app = Router::new()
        .route(telemetry_path, get(metrics_handler))
        .route("/", get(landing::index))
        .route("/healthz", get(|| async { "ok" }));
    // The landing page's routes; the telemetry path wins should it be one of them.
    let page: [(&str, axum::routing::MethodRouter<AppState>); 6] = [
        (landing::SNAPSHOT_PATH, get(landing::snapshot)),
        (events::EVENTS_PATH, get(events::events)), // events
        (events::CAPTURE_JS_PATH, get(events::capture_js)), // events
        (landing::APP_JS_PATH, get(landing::app_js)),
        (landing::STYLE_CSS_PATH, get(landing::style_css)),
        (landing::DOCS_PATH, get(landing::docs)),
    ];
    for (path, handler) in page {
        if path != telemetry_path {
            app = app.route(path, handler);
        }
    }
    app.fallback(|| async { (StatusCode::NOT_FOUND, "404 page not found\n") })
        .layer(CompressionLayer::new().gzip(true))
        .with_state(state)
        .layer(middleware::from_fn_with_state(guard, guarded))
}

async fn guarded(State(guard): State<Guard>, req: Request, next: Next) -> Response {
    let cfg = guard.web.current();
    let mut resp = admit(&guard, &cfg, req, next).await;
    let h = resp.headers_mut();
    for (name, value) in cfg.headers() {
        h.insert(name.clone(), value.clone());
    }
    resp
}

async fn admit(
    guard: &Guard,
    cfg: &Arc<crate::web_config::WebConfig>,
    req: Request,
    next: Next,
) -> Response {
    // Shed load first: it is the cheapest check, and it also bounds the bcrypt work.
    let _permit = match &guard.in_flight {
        Some(sem) => match sem.clone().try_acquire_owned() {
            Ok(p) => Some(p),
            Err(_) => {
                return (
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!(
                        "too many requests in flight (--web.max-requests={}), try again later\n",
                        guard.max_requests
                    ),
                )
                    .into_response()
            }
        },
        None => None,
    };
    let h = req.headers();
    let has_body = h.contains_key(header::TRANSFER_ENCODING)
        || h.get(header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() != b"0");
    if has_body {
        let mut r = (
            StatusCode::PAYLOAD_TOO_LARGE,
            "request bodies are not accepted\n",
        )
            .into_response();
        r.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        return r;
    }
    if cfg.auth_required() {
        let authorization = h.get(header::AUTHORIZATION).map(|v| v.as_bytes().to_vec());
        let web = guard.web.clone();
        let cfg = cfg.clone();
        let ok =
            tokio::task::spawn_blocking(move || web.check_auth(&cfg, authorization.as_deref()))
                .await
                .unwrap_or(false);
        if !ok {
            return (
                StatusCode::UNAUTHORIZED,
                [(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"netstat_exporter\", charset=\"UTF-8\""),
                )],
                "401 Unauthorized\n",
            )
                .into_response();
        }
    }
    next.run(req).await
}

/// The scrape timeout for a request: Prometheus' header minus the offset, or the default.
fn scrape_timeout(headers: &HeaderMap, default: Duration, offset: Duration) -> Duration {
    let from_header = headers
        .get(SCRAPE_TIMEOUT_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|v| v.is_finite() && *v > 0.0);
    let Some(secs) = from_header else {
        return default;
    };
    let wanted = Duration::from_secs_f64(secs.min(MAX_SCRAPE_TIMEOUT.as_secs_f64()));
    // With a timeout shorter than the offset, keep most of it rather than nothing.
    match wanted.checked_sub(offset) {
        Some(t) if t >= Duration::from_millis(100) => t,
        _ => wanted.mul_f64(0.9),
    }
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
    let timeout = scrape_timeout(&headers, scraper.timeout(), state.timeout_offset);
    // Collection reads files and netlink sockets: keep it off the async workers.
    let body = tokio::task::spawn_blocking(move || {
        let families = scraper.scrape_with_timeout(Some(&selected), Some(timeout));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeout_from_header() {
        let d = Duration::from_secs(10);
        let off = Duration::from_millis(500);
        let mut h = HeaderMap::new();
        assert_eq!(scrape_timeout(&h, d, off), d);
        h.insert(SCRAPE_TIMEOUT_HEADER, HeaderValue::from_static("5"));
        assert_eq!(scrape_timeout(&h, d, off), Duration::from_millis(4500));
        h.insert(SCRAPE_TIMEOUT_HEADER, HeaderValue::from_static("0.2"));
        assert_eq!(scrape_timeout(&h, d, off), Duration::from_millis(180));
        h.insert(SCRAPE_TIMEOUT_HEADER, HeaderValue::from_static("1e9"));
        assert_eq!(scrape_timeout(&h, d, off), MAX_SCRAPE_TIMEOUT - off);
        for bad in ["nan", "-1", "0", "abc", "inf"] {
            h.insert(SCRAPE_TIMEOUT_HEADER, HeaderValue::from_static(bad));
            assert_eq!(scrape_timeout(&h, d, off), d, "{bad}");
        }
    }
}
