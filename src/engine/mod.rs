//! The session engine: a session map owned by one named worker thread, a fixed-rate
//! scheduler that sweeps stale sessions, and channels in and out. No egui here.
//!
//! Commands reach the worker over a bounded channel; updates leave it over another
//! bounded channel. When that channel is full the worker never blocks: log records wait
//! in the worker up to [`EngineConfig::max_pending_records`], past which the oldest are
//! dropped and counted. The next update carries the count, the ids of the sessions whose
//! removal records were dropped and, after any other dropped record, a snapshot of the
//! map. Session changes are coalesced into the latest state of each changed session. The
//! worker calls a [`Waker`] after each update it sends, so a window can repaint without
//! polling.

pub mod clock;
pub mod clock_watch;
pub mod event;
#[cfg(feature = "test-hooks")]
pub mod hooks;
mod huge_pages;
mod outbox;
pub mod query;
pub mod schedule;
pub mod session;
mod slot_index;
pub mod store;
mod worker;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, SendTimeoutError, Sender, TrySendError};

use self::clock::SharedClock;
use self::event::{Command, Update};
use self::outbox::{Outbox, OutboxLimits};
use self::worker::Worker;

/// Called by the worker after it sends an update, for example to request a repaint.
pub type Waker = Arc<dyn Fn() + Send + Sync>;

/// Returns a waker that does nothing, for receivers that block on the channel.
pub fn no_waker() -> Waker {
    Arc::new(|| {})
}

/// Default idle time after which a session is stale.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// Default time between scheduled sweeps.
pub const DEFAULT_SWEEP_INTERVAL: Duration = Duration::from_secs(5 * 60);

/// Shortest accepted idle timeout and sweep interval. Shorter ones would make the worker
/// sweep in a busy loop or expire sessions between two of a client's requests.
pub const MIN_SETTING: Duration = Duration::from_millis(100);

/// Longest accepted idle timeout and sweep interval: 365 days.
pub const MAX_SETTING: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// Checks an idle timeout or sweep interval against [`MIN_SETTING`] and [`MAX_SETTING`].
/// The error names the setting (`what`) and the accepted range.
pub fn check_setting(what: &str, value: Duration) -> Result<(), String> {
    if (MIN_SETTING..=MAX_SETTING).contains(&value) {
        return Ok(());
    }
    let shown = if value.is_zero() {
        "0s".to_owned()
    } else {
        humantime::format_duration(value).to_string()
    };
    // humantime would print 365 days as months; the literal matches the constants.
    Err(format!(
        "{what} {shown} is out of range: use 100ms to 365days"
    ))
}

/// Settings of an engine.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Name of the scheduler; only one engine of a name runs in a process at a time. The
    /// worker thread is named after it.
    pub name: String,
    /// Idle time after which a session is stale.
    pub idle_timeout: Duration,
    /// Time between scheduled sweeps.
    pub sweep_interval: Duration,
    /// Capacity of the command channel; senders wait when it is full.
    pub command_capacity: usize,
    /// Capacity of the update channel.
    pub update_capacity: usize,
    /// Log records kept while the receiver does not keep up; older ones are dropped.
    pub max_pending_records: usize,
    /// Log records in one update.
    pub max_records_per_update: usize,
    /// Minimum time between updates.
    pub flush_interval: Duration,
    /// Sessions a sweep removes before the worker serves commands again.
    pub sweep_step: usize,
    /// Faults for tests to inject.
    #[cfg(feature = "test-hooks")]
    pub hooks: Option<Arc<hooks::TestHooks>>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            name: "session-engine".into(),
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            sweep_interval: DEFAULT_SWEEP_INTERVAL,
            command_capacity: 65_536,
            update_capacity: 256,
            max_pending_records: 200_000,
            max_records_per_update: 4_096,
            flush_interval: Duration::from_millis(20),
            sweep_step: 4_096,
            #[cfg(feature = "test-hooks")]
            hooks: None,
        }
    }
}

/// Error starting an engine.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A scheduler of this name already runs in this process.
    #[error("a scheduler named {name:?} is already running in this process; stop it first")]
    AlreadyRunning {
        /// The name in use.
        name: String,
    },
    /// A setting is out of range.
    #[error("invalid engine setting: {0}")]
    InvalidSetting(String),
    /// The operating system would not start the worker thread.
    #[error("failed to start the engine worker thread: {0}")]
    Spawn(#[source] std::io::Error),
}

/// Error from a request to the engine.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    /// The worker has stopped.
    #[error("the session engine has stopped")]
    Stopped,
    /// The command queue stayed full, or the worker did not respond, within the time limit.
    #[error("the session engine did not respond within {}", event::format_duration(*.0))]
    TimedOut(Duration),
}

/// Names of the schedulers running in this process.
static RUNNING: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

/// Holds a scheduler name while its worker runs and releases it on drop.
struct NameGuard(String);

impl NameGuard {
    fn acquire(name: &str) -> Result<NameGuard, StartError> {
        let mut running = RUNNING
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if !running.insert(name.to_owned()) {
            return Err(StartError::AlreadyRunning {
                name: name.to_owned(),
            });
        }
        Ok(NameGuard(name.to_owned()))
    }
}

impl Drop for NameGuard {
    fn drop(&mut self) {
        let mut running = RUNNING
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        running.remove(&self.0);
    }
}

/// A running engine. Dropping it stops the worker and waits for it.
pub struct Engine {
    commands: Sender<Command>,
    stop: Option<Sender<()>>,
    worker: Option<JoinHandle<Vec<Update>>>,
    clock: SharedClock,
}

impl Engine {
    /// Starts the worker thread and its scheduler. Returns the engine and the receiver
    /// of its updates.
    pub fn start(
        config: EngineConfig,
        clock: SharedClock,
        waker: Waker,
    ) -> Result<(Engine, Receiver<Update>), StartError> {
        validate(&config)?;
        let guard = NameGuard::acquire(&config.name)?;

        let (command_tx, command_rx) = crossbeam_channel::bounded(config.command_capacity);
        let (update_tx, update_rx) = crossbeam_channel::bounded(config.update_capacity);
        let (stop_tx, stop_rx) = crossbeam_channel::bounded(0);
        let limits = OutboxLimits {
            max_pending_records: config.max_pending_records,
            max_records_per_update: config.max_records_per_update,
            flush_interval: config.flush_interval,
        };
        let outbox = Outbox::new(update_tx, waker, limits);
        let worker = Worker::new(Arc::clone(&clock), command_rx, stop_rx, outbox, &config);

        let handle = std::thread::Builder::new()
            .name(config.name.clone())
            .spawn(move || {
                let _guard = guard;
                worker.run()
            })
            .map_err(StartError::Spawn)?;

        let engine = Engine {
            commands: command_tx,
            stop: Some(stop_tx),
            worker: Some(handle),
            clock,
        };
        Ok((engine, update_rx))
    }

    /// Returns a sender for commands, for session sources on other threads.
    pub fn commands(&self) -> Sender<Command> {
        self.commands.clone()
    }

    /// Returns the engine's clock.
    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }

    /// Sends a command without waiting; fails when the queue is full or the worker stopped.
    pub fn try_send(&self, command: Command) -> Result<(), EngineError> {
        self.commands
            .try_send(command)
            .map_err(|error| match error {
                TrySendError::Full(_) => EngineError::TimedOut(Duration::ZERO),
                TrySendError::Disconnected(_) => EngineError::Stopped,
            })
    }

    /// Sends a command, waiting up to `timeout` for room in the queue.
    pub fn send(&self, command: Command, timeout: Duration) -> Result<(), EngineError> {
        self.commands
            .send_timeout(command, timeout)
            .map_err(|error| match error {
                SendTimeoutError::Timeout(_) => EngineError::TimedOut(timeout),
                SendTimeoutError::Disconnected(_) => EngineError::Stopped,
            })
    }

    /// Waits until the worker has applied every command sent before, checked the
    /// schedule, finished any running sweep and offered its updates to the channel.
    /// Updates that do not fit wait in the worker until the receiver drains the channel.
    pub fn sync(&self, timeout: Duration) -> Result<(), EngineError> {
        let (reply_tx, reply_rx) = crossbeam_channel::bounded(1);
        self.send(Command::Sync(reply_tx), timeout)?;
        match reply_rx.recv_timeout(timeout) {
            Ok(()) => Ok(()),
            Err(RecvTimeoutError::Timeout) => Err(EngineError::TimedOut(timeout)),
            Err(RecvTimeoutError::Disconnected) => Err(EngineError::Stopped),
        }
    }

    /// Stops the worker, waits for it and returns the updates it could not send into the
    /// channel. The "scheduler stopped" record is in the channel or, when the channel was
    /// full, at the end of the returned updates; drain the channel first, then apply these.
    /// A running sweep stops after its current step.
    pub fn shutdown(mut self) -> Vec<Update> {
        self.stop_and_join()
    }

    fn stop_and_join(&mut self) -> Vec<Update> {
        // Dropping the only stop sender disconnects the stop channel, which wakes the
        // worker however full the command queue is.
        self.stop.take();
        match self.worker.take().map(JoinHandle::join) {
            Some(Ok(leftovers)) => leftovers,
            Some(Err(_)) => {
                log::error!("the session engine worker panicked");
                Vec::new()
            }
            None => Vec::new(),
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

fn validate(config: &EngineConfig) -> Result<(), StartError> {
    check_setting("idle timeout", config.idle_timeout).map_err(StartError::InvalidSetting)?;
    check_setting("sweep interval", config.sweep_interval).map_err(StartError::InvalidSetting)?;
    let checks = [
        (
            config.command_capacity == 0,
            "command capacity must be above zero",
        ),
        (
            config.update_capacity == 0,
            "update capacity must be above zero",
        ),
        (
            config.max_pending_records == 0,
            "pending record limit must be above zero",
        ),
        (
            config.max_records_per_update == 0,
            "records per update must be above zero",
        ),
        (config.sweep_step == 0, "sweep step must be above zero"),
    ];
    match checks.into_iter().find(|(failed, _)| *failed) {
        Some((_, reason)) => Err(StartError::InvalidSetting(reason.to_owned())),
        None => Ok(()),
    }
}
