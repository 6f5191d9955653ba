//! Binding the listen addresses and serving until SIGTERM/SIGINT.
//!
//! Connections are served with hyper's HTTP/1 server directly (not `axum::serve`) for what a
//! hostile client could otherwise abuse: a header read timeout (slowloris), a bounded header
//! buffer, a TLS handshake timeout and a cap on open connections. TLS, when the web config
//! turns it on, is applied per connection with the configuration in force at accept time, so
//! a reloaded certificate is used by the next connection.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::{Config, ListenAddress};
use crate::http::HttpOptions;
use crate::scrape::Scraper;
use crate::web_config::WebRuntime;

/// A client must send its complete request head within this time.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// A TLS client must complete its handshake within this time.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Request heads larger than this are refused (hyper answers 431).
const MAX_HEADER_BYTES: usize = 64 * 1024;
/// Open connections beyond this are closed at once after accept.
pub const MAX_CONNECTIONS: usize = 1024;
/// How often the web config file and its certificates are checked for changes.
const RELOAD_POLL: Duration = Duration::from_secs(2);
/// How long a shutdown waits for requests in progress.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Bind one address. `:PORT` binds `[::]:PORT` (dual-stack), or `0.0.0.0:PORT` where IPv6
/// is unavailable.
pub async fn bind(addr: &ListenAddress) -> std::io::Result<TcpListener> {
    match addr {
        ListenAddress::Addr(a) => TcpListener::bind(a).await,
        ListenAddress::AllInterfaces(port) => {
            match TcpListener::bind(SocketAddr::from((Ipv6Addr::UNSPECIFIED, *port))).await {
                Ok(l) => Ok(l),
                Err(e) if e.raw_os_error() == Some(libc::EAFNOSUPPORT) => {
                    TcpListener::bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, *port))).await
                }
                Err(e) => Err(e),
            }
        }
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (mut term, mut int) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(t), Ok(i)) => (t, i),
        _ => {
            tracing::error!("cannot install signal handlers; stop with SIGKILL");
            std::future::pending::<()>().await;
            unreachable!()
        }
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("received SIGTERM, shutting down"),
        _ = int.recv() => tracing::info!("received SIGINT, shutting down"),
    }
}

/// Serve every configured address until a termination signal. Errors binding an address or
/// loading the web config are returned as one line for main to print.
pub async fn serve(config: &Config, scraper: Arc<Scraper>) -> Result<(), String> {
    let web = Arc::new(WebRuntime::from_option(config.web_config_file.as_deref())?);
    serve_with(config, scraper, web).await
}

/// [`serve`] with a web configuration loaded by the caller.
pub async fn serve_with(
    config: &Config,
    scraper: Arc<Scraper>,
    web: Arc<WebRuntime>,
) -> Result<(), String> {
    let opts = HttpOptions {
        max_requests: config.web_max_requests,
        timeout_offset: config.web_scrape_timeout_offset,
        web: web.clone(),
    };
    let app = crate::http::router_with(scraper.clone(), &config.telemetry_path, opts);
    let mut listeners = Vec::new();
    for addr in &config.listen_addresses {
        let l = bind(addr)
            .await
            .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
        let local = l
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_else(|_| addr.to_string());
        tracing::info!(
            address = %local,
            telemetry_path = %config.telemetry_path,
            tls = web.current().tls().is_some(),
            basic_auth = web.current().auth_required(),
            "listening"
        );
        listeners.push(l);
    }
    // Bound, not answering yet: the first collection pays the cold costs (the first walk of
    // every process's fds to attribute listeners) and is the change log's baseline, with the
    // exporter's own port already open. Requests wait in the listen backlog meanwhile.
    // The watch starts first: its baseline names every listener, so the first collection
    // finds their owners in the shared cache.
    let watch_config = config.clone();
    let warm = tokio::task::spawn_blocking(move || {
        scraper
            .start_watch(&watch_config)
            .map(|()| scraper.warm_up())
    })
    .await
    .map_err(|e| format!("first collection failed: {e}"))??;
    tracing::info!(seconds = warm.as_secs_f64(), "first collection done");
    let (tx, rx) = watch::channel(false);
    let open = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for l in listeners {
        tasks.push(tokio::spawn(accept_loop(
            l,
            app.clone(),
            web.clone(),
            rx.clone(),
            open.clone(),
        )));
    }
    if web.path().is_some() {
        tokio::spawn(watch_web_config(web.clone(), rx.clone()));
    }
    shutdown_signal().await;
    let _ = tx.send(true);
    for t in tasks {
        if let Err(e) = t.await {
            return Err(format!("server task failed: {e}"));
        }
    }
    // Let requests in progress finish (connections close after their current response).
    let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE;
    while open.load(Ordering::Acquire) > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// Reload the web config on SIGHUP and when a watched file changes.
async fn watch_web_config(web: Arc<WebRuntime>, mut stop: watch::Receiver<bool>) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hup = match signal(SignalKind::hangup()) {
        Ok(h) => Some(h),
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch SIGHUP; the web config is reloaded on file change only");
            None
        }
    };
    let mut tick = tokio::time::interval(RELOAD_POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let hup_recv = async {
            match hup.as_mut() {
                Some(h) => {
                    h.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = stopped(&mut stop) => return,
            _ = hup_recv => {
                let web = web.clone();
                let _ = tokio::task::spawn_blocking(move || web.reload("SIGHUP")).await;
            }
            _ = tick.tick() => {
                let web = web.clone();
                let _ = tokio::task::spawn_blocking(move || web.reload_if_changed()).await;
            }
        }
    }
}

/// Decrements the open-connection count when a connection task ends.
struct ConnCount(Arc<AtomicUsize>);

impl Drop for ConnCount {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

async fn accept_loop(
    listener: TcpListener,
    app: axum::Router,
    web: Arc<WebRuntime>,
    mut stop: watch::Receiver<bool>,
    open: Arc<AtomicUsize>,
) {
    loop {
        let accepted = tokio::select! {
            _ = stopped(&mut stop) => return,
            a = listener.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if open.fetch_add(1, Ordering::AcqRel) >= MAX_CONNECTIONS {
            open.fetch_sub(1, Ordering::AcqRel);
            tracing::debug!(%peer, "too many open connections; closing a new one");
            drop(stream);
            continue;
        }
        let count = ConnCount(open.clone());
        let _ = stream.set_nodelay(true);
        let tls = web.current().tls();
        let app = app.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let _count = count;
            match tls {
                None => serve_conn(stream, app, stop).await,
                Some(cfg) => {
                    let acceptor = tokio_rustls::TlsAcceptor::from(cfg);
                    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await
                    {
                        Ok(Ok(tls_stream)) => serve_conn(tls_stream, app, stop).await,
                        // Scanners and misconfigured clients: not worth more than debug.
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                }
            }
        });
    }
}

async fn serve_conn<S>(io: S, app: axum::Router, mut stop: watch::Receiver<bool>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(MAX_HEADER_BYTES)
        .keep_alive(true);
    let conn = builder.serve_connection(TokioIo::new(io), TowerToHyperService::new(app));
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        }
        _ = stopped(&mut stop) => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(SHUTDOWN_GRACE, conn).await;
        }
    }
}

/// For tests: serve an already bound listener until `stop` turns true.
pub async fn serve_listener(
    listener: TcpListener,
    app: axum::Router,
    web: Arc<WebRuntime>,
    stop: watch::Receiver<bool>,
) {
    accept_loop(listener, app, web, stop, Arc::new(AtomicUsize::new(0))).await
}

async fn stopped(stop: &mut watch::Receiver<bool>) {
    // A closed channel means the server is going away too.
    let _ = stop.wait_for(|s| *s).await;
}
