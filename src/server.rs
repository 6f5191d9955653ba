//! Binding the listen addresses and serving until SIGTERM/SIGINT.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::{Config, ListenAddress};
use crate::scrape::Scraper;

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

/// Serve every configured address until a termination signal. Errors binding an address are
/// returned as one line for main to print.
pub async fn serve(config: &Config, scraper: Arc<Scraper>) -> Result<(), String> {
    let app = crate::http::router(scraper, &config.telemetry_path);
    let mut listeners = Vec::new();
    for addr in &config.listen_addresses {
        let l = bind(addr)
            .await
            .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
        let local = l
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_else(|_| addr.to_string());
        tracing::info!(address = %local, telemetry_path = %config.telemetry_path, "listening");
        listeners.push(l);
    }
    let (tx, rx) = watch::channel(false);
    let mut tasks = Vec::new();
    for l in listeners {
        let app = app.clone();
        let mut rx = rx.clone();
        tasks.push(tokio::spawn(async move {
            axum::serve(l, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.wait_for(|stop| *stop).await;
                })
                .await
        }));
    }
    shutdown_signal().await;
    let _ = tx.send(true);
    for t in tasks {
        match t.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(format!("server error: {e}")),
            Err(e) => return Err(format!("server task failed: {e}")),
        }
    }
    Ok(())
}
