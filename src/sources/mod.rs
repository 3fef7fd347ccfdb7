//! Session sources: threads that turn traffic into activity reports for the engine.
//!
//! Each source runs on its own named thread, sends [`Command`]s to the engine and stops
//! when asked or when the engine is gone. It never waits on a full command queue without
//! also watching its stop signal, so shutdown is prompt under load.

pub mod access_log;
pub mod api;
pub mod replay;
pub mod simulator;
mod time_jumps;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, select};

use crate::engine::clock::SharedClock;
use crate::engine::event::Command;
use crate::engine::session::Source;

/// Counters a source updates and the UI reads.
#[derive(Debug, Default)]
pub struct SourceStats {
    /// Activity reports sent to the engine.
    pub reports_sent: AtomicU64,
    /// Input lines read, for sources that read lines.
    pub lines_read: AtomicU64,
    /// Input lines or reports skipped as invalid; for the API also requests answered
    /// with an error.
    pub rejected: AtomicU64,
    /// Requests received, for sources that serve requests.
    pub requests: AtomicU64,
    /// Requests received in the last whole second.
    pub requests_per_sec: AtomicU64,
    /// Whether the source has no more input.
    pub finished: AtomicBool,
}

impl SourceStats {
    /// Adds `count` to a counter.
    pub fn add(counter: &AtomicU64, count: u64) {
        counter.fetch_add(count, Ordering::Relaxed);
    }

    /// Reads a counter.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    /// Returns whether the source has no more input.
    pub fn is_finished(&self) -> bool {
        self.finished.load(Ordering::Relaxed)
    }
}

/// Channels, clock and counters handed to a source thread.
#[derive(Debug, Clone)]
pub struct SourceContext {
    /// Sender for activity reports to the engine.
    pub commands: Sender<Command>,
    /// Disconnects when the source must stop.
    pub stop: Receiver<()>,
    /// The engine's clock.
    pub clock: SharedClock,
    /// Counters shown in the window.
    pub stats: Arc<SourceStats>,
}

impl SourceContext {
    /// Sends a command, waiting for room in the queue. Returns `false` when the source
    /// must stop: a stop was requested or the engine is gone.
    pub fn send(&self, command: Command) -> bool {
        select! {
            send(self.commands, command) -> sent => sent.is_ok(),
            recv(self.stop) -> _ => false,
        }
    }

    /// Sends `command` if the channel has room, also after a stop was requested, so a
    /// source can report its final counts. Returns whether it was sent.
    pub fn try_send(&self, command: Command) -> bool {
        self.commands.try_send(command).is_ok()
    }

    /// Sleeps for `span` of real time. Returns `false` when a stop was requested.
    pub fn sleep(&self, span: Duration) -> bool {
        matches!(self.stop.recv_timeout(span), Err(RecvTimeoutError::Timeout))
    }

    /// Returns whether a stop was requested.
    pub fn should_stop(&self) -> bool {
        matches!(
            self.stop.try_recv(),
            Err(crossbeam_channel::TryRecvError::Disconnected)
        )
    }
}

/// A source running on its own thread. Dropping it stops the thread and waits for it.
#[derive(Debug)]
pub struct RunningSource {
    kind: Source,
    description: String,
    stats: Arc<SourceStats>,
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
    local_addr: Option<SocketAddr>,
}

impl RunningSource {
    /// Starts `body` on a thread named `thread_name`.
    pub fn spawn(
        thread_name: &str,
        kind: Source,
        description: String,
        commands: Sender<Command>,
        clock: SharedClock,
        body: impl FnOnce(SourceContext) + Send + 'static,
    ) -> std::io::Result<RunningSource> {
        let (stop_tx, stop_rx) = crossbeam_channel::bounded(0);
        let stats = Arc::new(SourceStats::default());
        let context = SourceContext {
            commands,
            stop: stop_rx,
            clock,
            stats: Arc::clone(&stats),
        };
        let thread = std::thread::Builder::new()
            .name(thread_name.to_owned())
            .spawn(move || body(context))?;
        Ok(RunningSource {
            kind,
            description,
            stats,
            stop: Some(stop_tx),
            thread: Some(thread),
            local_addr: None,
        })
    }

    /// Records the address the source listens on.
    pub fn with_local_addr(mut self, addr: SocketAddr) -> RunningSource {
        self.local_addr = Some(addr);
        self
    }

    /// Returns the address the source listens on, for sources that serve requests.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local_addr
    }

    /// Returns the kind of source.
    pub fn kind(&self) -> Source {
        self.kind
    }

    /// Returns a one-line description, such as the replayed file.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// Returns the source's counters.
    pub fn stats(&self) -> &Arc<SourceStats> {
        &self.stats
    }

    /// Stops the thread and waits for it.
    pub fn stop(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        self.stop.take();
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            log::error!("the {} source thread panicked", self.kind);
        }
    }
}

impl Drop for RunningSource {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}
