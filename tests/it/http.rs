//! The HTTP router: content negotiation, gzip, collect[], landing page, health, 404.

use crate::common;

use std::io::Read;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;

use netstat_exporter::config::Config;
use netstat_exporter::scrape::Scraper;

fn router_with(args: &[&str]) -> axum::Router {
    let procfs = common::fixtures().join("sockets/basic/proc");
    let mut all = vec![
        "netstat_exporter".to_string(),
        format!("--path.procfs={}", procfs.display()),
    ];
    all.extend(args.iter().map(|s| s.to_string()));
    let config = Config::from_args(all).unwrap();
    netstat_exporter::http::router(
        Arc::new(Scraper::from_config(&config).unwrap()),
        &config.telemetry_path,
    )
}

fn router() -> axum::Router {
    router_with(&["--collector.disable-defaults", "--collector.sockets"])
}

struct Resp {
    status: StatusCode,
    content_type: String,
    content_encoding: Option<String>,
    body: Vec<u8>,
}

async fn get(app: axum::Router, uri: &str, headers: &[(&str, &str)]) -> Resp {
    let mut req = Request::builder().uri(uri);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = app.oneshot(req.body(Body::empty()).unwrap()).await.unwrap();
    let status = resp.status();
    let h = |n| {
        resp.headers()
            .get(n)
            .map(|v| v.to_str().unwrap().to_string())
    };
    let content_type = h(header::CONTENT_TYPE).unwrap_or_default();
    let content_encoding = h(header::CONTENT_ENCODING);
    let body = resp
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    Resp {
        status,
        content_type,
        content_encoding,
        body,
    }
}

#[tokio::test]
async fn metrics_default_is_prometheus_text() {
    let r = get(router(), "/metrics", &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.content_type, "text/plain; version=0.0.4; charset=utf-8");
    let text = String::from_utf8(r.body).unwrap();
    assert!(text.contains("# TYPE netstat_sockets gauge\n"));
    assert!(text.contains("netstat_scrape_collector_success{collector=\"sockets\"} 1\n"));
    assert!(!text.contains("# EOF"));
}

#[tokio::test]
async fn openmetrics_when_asked() {
    let accept = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5";
    let r = get(router(), "/metrics", &[("accept", accept)]).await;
    assert_eq!(
        r.content_type,
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    let text = String::from_utf8(r.body).unwrap();
    assert!(text.ends_with("# EOF\n"), "{text}");
    assert!(text.contains("# TYPE netstat_sockets gauge\n"));
}

#[tokio::test]
async fn gzip_when_asked() {
    let r = get(router(), "/metrics", &[("accept-encoding", "gzip")]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.content_encoding.as_deref(), Some("gzip"));
    let mut text = String::new();
    flate2::read::GzDecoder::new(&r.body[..])
        .read_to_string(&mut text)
        .unwrap();
    assert!(text.contains("netstat_sockets{"));
    let plain = get(router(), "/metrics", &[]).await;
    assert_eq!(plain.content_encoding, None);
}

#[tokio::test]
async fn collect_selects_collectors() {
    let app = router_with(&[]);
    let r = get(app.clone(), "/metrics?collect[]=sockets", &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    let text = String::from_utf8(r.body).unwrap();
    assert!(text.contains("netstat_scrape_collector_success{collector=\"sockets\"}"));
    assert!(!text.contains("collector=\"interfaces\""), "{text}");
    // URL-encoded brackets work too.
    let r = get(app.clone(), "/metrics?collect%5B%5D=sockets", &[]).await;
    assert_eq!(r.status, StatusCode::OK);

    let r = get(app, "/metrics?collect[]=bogus", &[]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let msg = String::from_utf8(r.body).unwrap();
    assert!(msg.contains("unknown collector \"bogus\""), "{msg}");
    assert!(msg.contains("sockets"), "lists what exists: {msg}");
}

#[tokio::test]
async fn collect_of_disabled_collector_is_400() {
    let r = get(
        router_with(&["--no-collector.sockets"]),
        "/metrics?collect[]=sockets",
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(String::from_utf8(r.body).unwrap().contains("disabled"));
}

#[tokio::test]
async fn landing_health_and_404() {
    let r = get(router(), "/", &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.content_type.starts_with("text/html"));
    assert!(String::from_utf8(r.body)
        .unwrap()
        .contains("href=\"/metrics\""));

    let r = get(router(), "/healthz", &[]).await;
    assert_eq!((r.status, r.body), (StatusCode::OK, b"ok".to_vec()));

    let r = get(router(), "/nope", &[]).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn custom_telemetry_path() {
    let app = router_with(&["--web.telemetry-path=/x/metrics"]);
    assert_eq!(
        get(app.clone(), "/x/metrics", &[]).await.status,
        StatusCode::OK
    );
    assert_eq!(
        get(app, "/metrics", &[]).await.status,
        StatusCode::NOT_FOUND
    );
}
