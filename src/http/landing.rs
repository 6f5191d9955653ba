//! The landing page (`/`), its embedded assets and the JSON it refreshes from
//! (`/api/v1/snapshot`). Everything is compiled into the binary: the host may be air-gapped.
//!
//! The page is static HTML, CSS and JavaScript served with a Content-Security-Policy that
//! allows only this origin and no inline code; the configured telemetry path and the version
//! are put into the HTML at serve time (escaped) as a link and data attributes.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::snapshot::Snapshot;
use super::{scrape_timeout, AppState};

pub const INDEX_HTML: &str = include_str!("assets/index.html");
pub const APP_JS: &str = include_str!("assets/app.js");
pub const STYLE_CSS: &str = include_str!("assets/style.css");
/// docs/landing.md, served at `/docs/landing` so the page's docs link works offline.
pub const DOCS_MD: &str = include_str!("../../docs/landing.md");

pub const SNAPSHOT_PATH: &str = "/api/v1/snapshot";
pub const APP_JS_PATH: &str = "/assets/app.js";
pub const STYLE_CSS_PATH: &str = "/assets/style.css";
pub const DOCS_PATH: &str = "/docs/landing";

/// Only this origin; no inline scripts or styles; no framing; no forms.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; frame-ancestors 'none'; form-action 'none'";

pub(super) fn security_headers(
    content_type: &'static str,
    cache: &'static str,
) -> [(HeaderName, HeaderValue); 5] {
    [
        (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
        (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        ),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
    ]
}

pub fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// The index page with the telemetry path and version filled in (HTML-escaped).
pub fn render_index(telemetry_path: &str) -> String {
    INDEX_HTML
        .replace("{{TELEMETRY_PATH}}", &html_escape(telemetry_path))
        .replace("{{VERSION}}", &html_escape(crate::self_metrics::VERSION))
}

pub(super) async fn index(State(state): State<AppState>) -> Response {
    (
        security_headers("text/html; charset=utf-8", "no-cache"),
        render_index(&state.telemetry_path),
    )
        .into_response()
}

pub async fn app_js() -> Response {
    (
        security_headers("text/javascript; charset=utf-8", "no-cache"),
        APP_JS,
    )
        .into_response()
}

pub async fn style_css() -> Response {
    (
        security_headers("text/css; charset=utf-8", "no-cache"),
        STYLE_CSS,
    )
        .into_response()
}

pub async fn docs() -> Response {
    (
        security_headers("text/plain; charset=utf-8", "no-cache"),
        DOCS_MD,
    )
        .into_response()
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// One scrape of every enabled collector (the coalesced path /metrics uses), as JSON.
pub(super) async fn snapshot(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let scraper = state.scraper.clone();
    let timeout = scrape_timeout(&headers, scraper.timeout(), state.timeout_offset);
    let body = tokio::task::spawn_blocking(move || {
        let (_, scraped) = scraper.scrape_typed(None, Some(timeout));
        serde_json::to_vec(&Snapshot::from_scraped(&scraped, unix_now()))
    })
    .await;
    match body {
        Ok(Ok(body)) => (security_headers("application/json", "no-store"), body).into_response(),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "cannot encode the snapshot");
            (StatusCode::INTERNAL_SERVER_ERROR, "snapshot failed\n").into_response()
        }
        Err(e) => {
            tracing::error!(error = %e, "snapshot task failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "snapshot failed\n").into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_has_no_inline_code_and_escapes_the_path() {
        let html = render_index("/x\"><script>alert(1)</script>");
        assert!(!html.contains("<script>alert"));
        assert!(html.contains("/x&quot;&gt;&lt;script&gt;"));
        assert!(!html.contains("{{"));
        // Every script is external, and there is no style attribute or element.
        for (i, _) in html.match_indices("<script") {
            let tag = &html[i..i + html[i..].find('>').unwrap()];
            assert!(tag.contains(" src="), "inline script: {tag}");
        }
        assert!(!html.contains("<style") && !html.contains(" style="));
        for handler in ["onclick=", "onload=", "onerror=", "javascript:"] {
            assert!(!html.contains(handler), "{handler}");
        }
        assert!(!html.contains("http://") && !html.contains("https://"));
    }

    #[test]
    fn assets_reference_nothing_external() {
        for (name, text) in [("app.js", APP_JS), ("style.css", STYLE_CSS)] {
            assert!(!text.contains("http://"), "{name}");
            assert!(!text.contains("https://"), "{name}");
            assert!(!text.contains("@import"), "{name}");
        }
        // Data from the host is only ever inserted as text.
        assert!(!APP_JS.contains("innerHTML"));
        assert!(!APP_JS.contains("outerHTML"));
        assert!(!APP_JS.contains("insertAdjacentHTML"));
        assert!(!APP_JS.contains("document.write"));
        assert!(!APP_JS.contains("eval("));
    }

    // The page's routes sit behind the same guard as /metrics: in-flight limit, body refusal
    // and basic auth.
    mod guarded {
        use std::sync::Arc;
        use std::time::Duration;

        use axum::body::Body;
        use axum::http::{Request, StatusCode};
        use tower::ServiceExt;

        use crate::collectors::{Collected, SimpleCollector};
        use crate::http::{router_with, HttpOptions};
        use crate::scrape::Scraper;
        use crate::source::netns::Netns;
        use crate::web_config::WebRuntime;

        struct Slow;
        impl SimpleCollector for Slow {
            fn name(&self) -> &'static str {
                "interfaces"
            }
            fn collect(&self, _ns: &Netns) -> Collected {
                std::thread::sleep(Duration::from_millis(600));
                Collected {
                    families: vec![crate::collectors::interfaces::MTU
                        .family()
                        .with(vec![("device", "lo".into())], 65536u64)],
                    errors: vec![],
                    ..Collected::default()
                }
            }
        }

        fn app(opts: HttpOptions) -> axum::Router {
            let scraper = Scraper::new(vec![Box::new(Slow)], "/nonexistent".into());
            router_with(Arc::new(scraper), "/metrics", opts)
        }

        async fn status(app: &axum::Router, uri: &str, headers: &[(&str, &str)]) -> StatusCode {
            let mut req = Request::builder().uri(uri);
            for (k, v) in headers {
                req = req.header(*k, *v);
            }
            app.clone()
                .oneshot(req.body(Body::empty()).unwrap())
                .await
                .unwrap()
                .status()
        }

        #[tokio::test]
        async fn in_flight_limit_and_body_refusal() {
            let app = app(HttpOptions {
                max_requests: 1,
                ..HttpOptions::default()
            });
            let first = {
                let app = app.clone();
                tokio::spawn(async move { status(&app, "/api/v1/snapshot", &[]).await })
            };
            tokio::time::sleep(Duration::from_millis(150)).await;
            for uri in ["/api/v1/snapshot", "/", "/assets/app.js"] {
                assert_eq!(
                    status(&app, uri, &[]).await,
                    StatusCode::SERVICE_UNAVAILABLE,
                    "{uri}"
                );
            }
            assert_eq!(first.await.unwrap(), StatusCode::OK);
            assert_eq!(
                status(&app, "/api/v1/snapshot", &[("content-length", "5")]).await,
                StatusCode::PAYLOAD_TOO_LARGE
            );
        }

        #[tokio::test]
        async fn basic_auth_protects_the_page_and_the_json() {
            let dir = std::env::temp_dir().join(format!("landing-auth-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            let file = dir.join("web.yml");
            let hash = bcrypt::hash("s3cret", 4).unwrap();
            std::fs::write(&file, format!("basic_auth_users:\n  admin: {hash}\n")).unwrap();
            let web = Arc::new(WebRuntime::load(&file).unwrap());
            std::fs::remove_dir_all(&dir).unwrap();
            let app = app(HttpOptions {
                web,
                ..HttpOptions::default()
            });
            // "admin:s3cret" and "admin:wrong"
            let good = "Basic YWRtaW46czNjcmV0";
            let bad = "Basic YWRtaW46d3Jvbmc=";
            for uri in [
                "/api/v1/snapshot",
                "/",
                "/assets/app.js",
                "/assets/style.css",
                "/docs/landing",
            ] {
                assert_eq!(
                    status(&app, uri, &[]).await,
                    StatusCode::UNAUTHORIZED,
                    "{uri}"
                );
                assert_eq!(
                    status(&app, uri, &[("authorization", bad)]).await,
                    StatusCode::UNAUTHORIZED,
                    "{uri}"
                );
                assert_eq!(
                    status(&app, uri, &[("authorization", good)]).await,
                    StatusCode::OK,
                    "{uri}"
                );
            }
        }
    }
}
