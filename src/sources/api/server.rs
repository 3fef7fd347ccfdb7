//! The accept loop: hyper's HTTP/1.1 connection handling with the API's limits, a cap
//! on open connections, and a graceful stop. Runs on the API's tokio runtime.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use super::ApiLimits;
use crate::sources::SourceStats;

/// Time that requests in flight get to finish once the server stops.
pub(super) const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

/// Pause after a failed accept, such as when the process is out of file descriptors,
/// so the loop does not spin and the log gets at most a few lines a second.
const ACCEPT_RETRY: Duration = Duration::from_millis(200);

/// Accepts connections and serves `router` on them until `stopped` completes.
pub(super) async fn serve(
    listener: TcpListener,
    router: Router,
    limits: &ApiLimits,
    stopped: impl Future<Output = ()>,
) {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_header_size(limits.max_header_size)
        .max_headers(limits.max_headers);
    // TODO: no per-client rate limit; one client with many connections can take most
    // of the engine's queue, and then every client gets 503 until it drains.
    let open = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    tokio::pin!(stopped);

    loop {
        // Waiting for a free slot before accepting leaves further clients in the
        // kernel's backlog instead of opening connections that cannot be served.
        let permit = tokio::select! {
            () = &mut stopped => break,
            permit = Arc::clone(&open).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            () = &mut stopped => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    log::warn!("API: failed to accept a connection: {error}");
                    tokio::time::sleep(ACCEPT_RETRY).await;
                    continue;
                }
            },
        };
        if let Err(error) = stream.set_nodelay(true) {
            log::debug!("API: failed to set TCP_NODELAY for {peer}: {error}");
        }

        let service = TowerToHyperService::new(router.clone());
        let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                log::debug!("API: connection from {peer} ended with an error: {error}");
            }
            drop(permit);
        });
    }

    // Requests in flight finish; idle keep-alive connections close now.
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        log::debug!("API: connections still open after the shutdown grace time were dropped");
    }
}

/// Stores the number of requests received in each whole second in
/// [`SourceStats::requests_per_sec`].
pub(super) async fn measure_request_rate(stats: Arc<SourceStats>) {
    let mut ticks = tokio::time::interval(Duration::from_secs(1));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut previous = SourceStats::get(&stats.requests);
    loop {
        ticks.tick().await;
        let total = SourceStats::get(&stats.requests);
        stats
            .requests_per_sec
            .store(total - previous, Ordering::Relaxed);
        previous = total;
    }
}
