//! The local HTTP API: applications report session activity, end sessions and read the
//! engine's state over HTTP/1.1 with JSON bodies.
//!
//! The server runs on its own threads: a thread named `api` owns a small tokio runtime
//! whose workers are named `api-worker`, and serves axum's router through hyper. It
//! never touches the session map. Reports become [`Command`]s sent with `try_send`, and
//! reads become [`Command::Query`] requests that the engine worker replies to. When the
//! engine's command queue is full, a request fails at once with 503 instead of waiting.
//!
//! Limits keep one client from stalling the engine or the others: request bodies,
//! header size and count, the time to send the headers (which also closes idle
//! keep-alive connections), the time to handle a request, and the number of open
//! connections. They are fields of [`ApiLimits`].
//!
//! Access: by default the API listens on loopback only. A non-loopback address needs a
//! bearer token ([`Token`]); without a token the server also rejects requests whose
//! `Host` is not a loopback name, and every request with an `Origin` header, so web
//! pages in a browser cannot reach it.
//!
//! Client time stamps are wall-clock times and are mapped to engine time through the
//! engine's clock ([`request::engine_time`]): a time later than now counts as now. A
//! time older than the idle timeout is applied as sent. For an existing session it
//! counts as activity but never moves its last activity back, and a session that it
//! creates is already stale, so the next sweep removes it. Times before the program
//! started count as its start, where engine time begins. While replaying a log, engine
//! time is the log's time, so current wall times count as the log's now.

mod auth;
pub mod request;
mod response;
mod routes;
mod server;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::Sender;

pub use self::auth::{MIN_TOKEN_LEN, Token, TokenError};
use crate::count::counted;
use crate::engine::clock::SharedClock;
use crate::engine::event::{Command, Level};
use crate::engine::session::Source;
use crate::sources::{RunningSource, SourceContext, SourceStats};

/// Address that `--listen` without a value uses.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7878";

/// Limits on requests and connections.
#[derive(Debug, Clone)]
pub struct ApiLimits {
    /// Maximum body of a report about one session, in bytes.
    pub max_report_body: usize,
    /// Maximum body of a batch of reports, in bytes.
    pub max_batch_body: usize,
    /// Maximum number of reports in one batch.
    pub max_batch_reports: usize,
    /// Maximum size of a request's headers, in bytes; larger ones get 431.
    pub max_header_size: usize,
    /// Maximum number of headers in a request.
    pub max_headers: usize,
    /// Time a client has to send a request's headers, counted from when the server
    /// starts waiting for them. An idle keep-alive connection is closed after it too.
    pub header_timeout: Duration,
    /// Time to handle one request, reading its body included; past it the response is 408.
    pub request_timeout: Duration,
    /// Time to wait for the engine's reply to a query.
    pub engine_timeout: Duration,
    /// Maximum number of open connections; further clients wait to be accepted.
    pub max_connections: usize,
}

impl Default for ApiLimits {
    fn default() -> Self {
        ApiLimits {
            max_report_body: 16 * 1024,
            max_batch_body: 4 * 1024 * 1024,
            max_batch_reports: 10_000,
            max_header_size: 16 * 1024,
            max_headers: 64,
            header_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(10),
            engine_timeout: Duration::from_secs(2),
            max_connections: 256,
        }
    }
}

/// Settings of the API server.
#[derive(Debug, Clone)]
pub struct ApiOptions {
    /// Address to listen on; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Bearer token that requests to `/v1/` must present; required off loopback.
    pub token: Option<Token>,
    /// Limits on requests and connections.
    pub limits: ApiLimits,
    /// Number of tokio worker threads.
    pub worker_threads: usize,
}

impl ApiOptions {
    /// Options for `listen` with no token and the default limits.
    pub fn new(listen: SocketAddr) -> ApiOptions {
        ApiOptions {
            listen,
            token: None,
            limits: ApiLimits::default(),
            worker_threads: 2,
        }
    }
}

/// Failure to start the API server.
#[derive(Debug, thiserror::Error)]
pub enum ApiStartError {
    /// A non-loopback address was given without a token.
    #[error(
        "--listen {addr} is not a loopback address; pass --token-file PATH so that \
         requests need a bearer token, or listen on 127.0.0.1"
    )]
    TokenRequired {
        /// The address asked for.
        addr: SocketAddr,
    },
    /// The address could not be bound, typically because the port is in use.
    #[error("failed to listen on {addr} (port {}): {error}{}", addr.port(), bind_hint(error))]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The operating system's error.
        error: std::io::Error,
    },
    /// The runtime or the thread could not be set up.
    #[error("failed to start the API server: {0}")]
    Setup(std::io::Error),
}

fn bind_hint(error: &std::io::Error) -> &'static str {
    match error.kind() {
        std::io::ErrorKind::AddrInUse => {
            "; another program, perhaps another session-monitor, uses this port, so pick \
             another with --listen ADDR:PORT"
        }
        std::io::ErrorKind::PermissionDenied => "; ports below 1024 need privileges",
        _ => "",
    }
}

/// Starts the API server on its own threads. Returns once the address is bound, so a
/// port in use fails here; the bound address is [`RunningSource::local_addr`].
pub fn start(
    options: ApiOptions,
    commands: Sender<Command>,
    clock: SharedClock,
) -> Result<RunningSource, ApiStartError> {
    let addr = options.listen;
    if !addr.ip().is_loopback() && options.token.is_none() {
        return Err(ApiStartError::TokenRequired { addr });
    }
    let listener =
        std::net::TcpListener::bind(addr).map_err(|error| ApiStartError::Bind { addr, error })?;
    let local_addr = listener.local_addr().map_err(ApiStartError::Setup)?;
    listener
        .set_nonblocking(true)
        .map_err(ApiStartError::Setup)?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(options.worker_threads.max(1))
        .thread_name("api-worker")
        .enable_io()
        .enable_time()
        .build()
        .map_err(ApiStartError::Setup)?;
    let listener = {
        let _entered = runtime.enter();
        tokio::net::TcpListener::from_std(listener).map_err(ApiStartError::Setup)?
    };

    let description = format!("API listening on http://{local_addr}");
    let body = move |context: SourceContext| run(runtime, listener, context, options, local_addr);
    let source = RunningSource::spawn("api", Source::Api, description, commands, clock, body)
        .map_err(ApiStartError::Setup)?;
    log::info!("API listening on http://{local_addr}");
    Ok(source.with_local_addr(local_addr))
}

/// Body of the `api` thread: serves until the source is stopped, then gives requests in
/// flight a moment to finish.
fn run(
    runtime: tokio::runtime::Runtime,
    listener: tokio::net::TcpListener,
    context: SourceContext,
    options: ApiOptions,
    local_addr: SocketAddr,
) {
    let SourceContext {
        commands,
        stop,
        clock,
        stats,
    } = context;
    let access = if options.token.is_some() {
        "bearer token required"
    } else {
        "no token"
    };
    notice(
        &commands,
        format!("listening on http://{local_addr} ({access})"),
    );
    let state = Arc::new(routes::ApiState {
        commands: commands.clone(),
        clock,
        stats: Arc::clone(&stats),
        token: options.token,
        limits: options.limits.clone(),
    });
    let rate_stats = Arc::clone(&stats);
    let limits = options.limits;
    runtime.block_on(async move {
        // The stop channel is a blocking one; a blocking-pool thread waits on it.
        let stopped = tokio::task::spawn_blocking(move || {
            let _ = stop.recv();
        });
        let stopped = async move {
            let _ = stopped.await;
        };
        tokio::spawn(server::measure_request_rate(rate_stats));
        server::serve(listener, routes::router(state), &limits, stopped).await;
    });
    runtime.shutdown_timeout(server::SHUTDOWN_GRACE);
    notice(
        &commands,
        format!(
            "stopped listening after {}, {} reports accepted, {} rejected",
            counted(SourceStats::get(&stats.requests), "request"),
            SourceStats::get(&stats.reports_sent),
            SourceStats::get(&stats.rejected)
        ),
    );
}

/// Logs a line through the engine, dropping it when the queue is full.
fn notice(commands: &Sender<Command>, message: String) {
    let command = Command::Notice {
        source: Source::Api,
        level: Level::Info,
        message,
    };
    if commands.try_send(command).is_err() {
        log::debug!("API: the engine's queue is full or closed; a log line was dropped");
    }
}
