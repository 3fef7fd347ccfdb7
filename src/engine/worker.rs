//! The engine worker: the one thread that owns the session map, applies commands, runs
//! the sweep schedule and sends updates.
//!
//! A sweep runs in steps of at most `sweep_step` removals, and the worker applies queued
//! commands between steps, so a sweep of millions keeps the engine responsive and a stop
//! request ends it promptly. Sweeps never overlap: a sweep that comes due, or a manual
//! request made, while one runs becomes a single follow-up sweep.

use std::any::Any;
use std::panic::{self, AssertUnwindSafe};
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{Receiver, Sender, TryRecvError, select};

use super::clock::{MonoTime, SharedClock};
use super::clock_watch::ClockWatch;
use super::event::{Activity, Command, Event, Record, RemovalCause, Status, SweepTrigger, Update};
use super::outbox::Outbox;
use super::query::{self, QueryContext, RemovalCounts};
use super::schedule::{DueSweep, Schedule};
use super::session::Session;
use super::store::{SessionStore, TouchOutcome, stale_cutoff};
use super::{EngineConfig, check_setting};

/// Maximum single wait, so a clock that was adjusted or suspended is read again soon.
const MAX_WAIT: Duration = Duration::from_secs(1);

/// Time between two comparisons of the wall clock with the monotonic clock.
const CLOCK_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// Activities of a batch between the request for a session's hash table bucket and its
/// use, and between the request for its node and its use.
const BUCKET_LEAD: usize = 16;
const SESSION_LEAD: usize = 8;

/// Commands applied between two checks of the schedule and the stop signal.
const COMMAND_BUDGET: usize = 4096;

/// A sweep in progress.
#[derive(Debug)]
struct SweepRun {
    trigger: SweepTrigger,
    started: Instant,
    /// Sessions last active at or before this time are stale for this sweep; `None` when
    /// none can be.
    cutoff: Option<MonoTime>,
    removed: u64,
}

pub(crate) struct Worker {
    clock: SharedClock,
    commands: Receiver<Command>,
    stop: Receiver<()>,
    store: SessionStore,
    schedule: Schedule,
    idle_timeout: Duration,
    sweep_step: usize,
    outbox: Outbox,
    seq: u64,
    sweep: Option<SweepRun>,
    pending_scheduled: Option<DueSweep>,
    pending_manual: bool,
    pending_syncs: Vec<Sender<()>>,
    removed_total: u64,
    removals: RemovalCounts,
    sweeps_finished: u64,
    sweeps_failed: u64,
    last_sweep: Option<Event>,
    clock_watch: ClockWatch,
    last_clock_check: Instant,
    #[cfg(feature = "test-hooks")]
    hooks: Option<std::sync::Arc<super::hooks::TestHooks>>,
}

/// Whether the worker keeps running after a step.
#[derive(Debug, PartialEq, Eq)]
enum Flow {
    Continue,
    Stop,
}

impl Worker {
    pub fn new(
        clock: SharedClock,
        commands: Receiver<Command>,
        stop: Receiver<()>,
        outbox: Outbox,
        config: &EngineConfig,
    ) -> Self {
        Worker {
            schedule: Schedule::new(clock.now(), config.sweep_interval),
            clock,
            commands,
            stop,
            store: SessionStore::new(),
            idle_timeout: config.idle_timeout,
            sweep_step: config.sweep_step,
            outbox,
            seq: 0,
            sweep: None,
            pending_scheduled: None,
            pending_manual: false,
            pending_syncs: Vec::new(),
            removed_total: 0,
            removals: RemovalCounts::default(),
            sweeps_finished: 0,
            sweeps_failed: 0,
            last_sweep: None,
            clock_watch: ClockWatch::new(
                ClockWatch::DEFAULT_TOLERANCE,
                Instant::now(),
                SystemTime::now(),
            ),
            last_clock_check: Instant::now(),
            #[cfg(feature = "test-hooks")]
            hooks: config.hooks.clone(),
        }
    }

    /// Runs until stopped or until every command sender is gone. Returns the updates that
    /// could not be sent, ending with the "scheduler stopped" record.
    pub fn run(mut self) -> Vec<Update> {
        self.emit(Event::SchedulerStarted {
            sweep_interval: self.schedule.interval(),
            idle_timeout: self.idle_timeout,
        });

        while self.step() == Flow::Continue {}

        if let Some(sweep) = self.sweep.take() {
            self.emit(Event::SweepStopped {
                trigger: sweep.trigger,
                removed: sweep.removed,
            });
        }
        self.emit(Event::SchedulerStopped {
            remaining: self.store.len() as u64,
        });
        let status = self.status();
        self.outbox.flush(&mut self.store, &status, true);
        let leftovers = self.outbox.drain(&mut self.store, &status);
        for reply in self.pending_syncs.drain(..) {
            let _ = reply.send(());
        }
        leftovers
    }

    fn step(&mut self) -> Flow {
        if self.receive_commands() == Flow::Stop {
            return Flow::Stop;
        }
        self.watch_clocks();
        self.check_schedule();
        if self.sweep.is_some() {
            self.sweep_step();
        }
        let status = self.status();
        let answer_syncs = self.sweep.is_none() && !self.pending_syncs.is_empty();
        self.outbox.flush(&mut self.store, &status, answer_syncs);
        if answer_syncs {
            for reply in self.pending_syncs.drain(..) {
                let _ = reply.send(());
            }
        }
        Flow::Continue
    }

    /// Waits for the first command or deadline, then applies queued commands up to the
    /// budget. Does not wait while a sweep is running.
    fn receive_commands(&mut self) -> Flow {
        let first = if self.sweep.is_some() {
            match self.commands.try_recv() {
                Ok(command) => Some(command),
                Err(TryRecvError::Empty) => None,
                Err(TryRecvError::Disconnected) => return Flow::Stop,
            }
        } else {
            match self.wait_for_command() {
                Ok(command) => command,
                Err(()) => return Flow::Stop,
            }
        };
        if matches!(self.stop.try_recv(), Err(TryRecvError::Disconnected)) {
            return Flow::Stop;
        }
        let Some(first) = first else {
            return Flow::Continue;
        };

        self.apply(first);
        for _ in 1..COMMAND_BUDGET {
            match self.commands.try_recv() {
                Ok(command) => self.apply(command),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => return Flow::Stop,
            }
        }
        Flow::Continue
    }

    /// Blocks until a command arrives, the next sweep or flush is due, or a stop is
    /// requested. `Err` means stop.
    fn wait_for_command(&mut self) -> Result<Option<Command>, ()> {
        let now = self.clock.now();
        let until_sweep = self.clock.real_wait(self.schedule.until_due(now));
        let until_flush = self
            .outbox
            .next_flush()
            .map(|due| due.saturating_duration_since(Instant::now()));
        let timeout = match (until_sweep, until_flush) {
            (Some(sweep), Some(flush)) => Some(sweep.min(flush)),
            (sweep, flush) => sweep.or(flush),
        };
        let timeout = timeout.map(|timeout| timeout.min(MAX_WAIT));

        match timeout {
            Some(timeout) => select! {
                recv(self.commands) -> command => command.map(Some).map_err(|_| ()),
                recv(self.stop) -> _ => Err(()),
                default(timeout) => Ok(None),
            },
            None => select! {
                recv(self.commands) -> command => command.map(Some).map_err(|_| ()),
                recv(self.stop) -> _ => Err(()),
            },
        }
    }

    fn apply(&mut self, command: Command) {
        match command {
            Command::Touch(activity) => self.apply_activity(activity, &mut None),
            Command::TouchBatch(batch) => {
                // Reports of a batch arrived together, so one reading of the clock serves
                // those without a time of their own.
                let mut now = None;
                // Each session's bucket and node are asked for a few activities ahead,
                // so the cache misses of a batch overlap instead of following each other.
                for index in 0..batch.len() {
                    if let Some(ahead) = batch.get(index + BUCKET_LEAD) {
                        self.store.prefetch_bucket(ahead.id.as_str());
                    }
                    if let Some(ahead) = batch.get(index + SESSION_LEAD) {
                        self.store.prefetch_session(ahead.id.as_str());
                    }
                    self.apply_activity(batch[index].clone(), &mut now);
                }
            }
            Command::End { id } => match self.store.remove(id.as_str()) {
                Some(session) => self.report_removed(session, RemovalCause::Ended),
                None => self.emit(Event::Error {
                    message: format!("cannot end session {id}: no such session"),
                }),
            },
            Command::SweepNow => self.request_manual_sweep(),
            Command::SetIdleTimeout(idle_timeout) => self.set_idle_timeout(idle_timeout),
            Command::SetSweepInterval(interval) => self.set_sweep_interval(interval),
            Command::Notice {
                source,
                level,
                message,
            } => self.emit(Event::Notice {
                source,
                level,
                message,
            }),
            Command::Sync(reply) => self.pending_syncs.push(reply),
            Command::Query { query, reply } => {
                let now = self.clock.now();
                let context = QueryContext {
                    store: &self.store,
                    status: self.status(),
                    removals: self.removals,
                    now,
                    wall_now: self.clock.wall_time(now),
                };
                reply.send(query::answer(query, context));
            }
        }
    }

    /// Applies one report. `now` is the clock reading to use for it, read here when it is
    /// `None`. A report with its own time may move the clock, so the clock is read again.
    fn apply_activity(&mut self, activity: Activity, now: &mut Option<MonoTime>) {
        if let Some(at) = activity.at {
            if self.clock.follows_activity() {
                self.sweep_due_before(at);
            }
            self.clock.observe_activity(at);
            *now = None;
        }
        let now = *now.get_or_insert_with(|| self.clock.now());
        let mut at = activity.at.unwrap_or(now).min(now);
        // Activity that arrives during a sweep is never removed by it, even when stamped
        // before the sweep's cutoff: it is recorded just after the cutoff.
        if let Some(cutoff) = self.sweep.as_ref().and_then(|sweep| sweep.cutoff) {
            at = at.max(cutoff + Duration::from_nanos(1));
        }

        let outcome = self
            .store
            .touch(&activity.id, activity.source, at, self.idle_timeout);
        match outcome {
            TouchOutcome::Created => self.emit(Event::SessionCreated {
                id: activity.id.clone(),
                source: activity.source,
            }),
            TouchOutcome::Touched => {}
            TouchOutcome::Renewed { expired } => {
                self.removed_total += 1;
                self.removals.add(RemovalCause::ExpiredOnAccess);
                self.emit(Event::SessionRemoved {
                    idle: at - expired.last_active,
                    id: expired.id,
                    source: expired.source,
                    activity_count: expired.activity_count,
                    cause: RemovalCause::ExpiredOnAccess,
                });
                self.emit(Event::SessionCreated {
                    id: activity.id.clone(),
                    source: activity.source,
                });
            }
        }
        if let Some(meta) = activity.meta {
            self.store.set_meta(activity.id.as_str(), meta);
        }
        self.outbox.mark_touched();
    }

    /// Compares the wall clock with the monotonic clock at most once per
    /// [`CLOCK_CHECK_INTERVAL`], and logs a jump.
    fn watch_clocks(&mut self) {
        let mono = Instant::now();
        if mono.saturating_duration_since(self.last_clock_check) < CLOCK_CHECK_INTERVAL {
            return;
        }
        self.last_clock_check = mono;
        let wall = SystemTime::now();
        #[cfg(feature = "test-hooks")]
        let wall = match &self.hooks {
            Some(hooks) => hooks.skew_wall(wall),
            None => wall,
        };
        if let Some(jump) = self.clock_watch.check(mono, wall) {
            self.clock.realign_wall();
            self.emit(Event::ClockAnomaly {
                ahead: jump.ahead,
                by: jump.by,
            });
        }
    }

    fn set_idle_timeout(&mut self, idle_timeout: Duration) {
        if let Err(problem) = check_setting("idle timeout", idle_timeout) {
            self.emit(Event::Error {
                message: format!("{problem}; keeping the current value"),
            });
            return;
        }
        self.idle_timeout = idle_timeout;
        self.emit_settings();
    }

    fn set_sweep_interval(&mut self, interval: Duration) {
        if let Err(problem) = check_setting("sweep interval", interval) {
            self.emit(Event::Error {
                message: format!("{problem}; keeping the current value"),
            });
            return;
        }
        self.schedule.set_interval(interval, self.clock.now());
        self.emit_settings();
    }

    fn emit_settings(&mut self) {
        self.emit(Event::SettingsChanged {
            sweep_interval: self.schedule.interval(),
            idle_timeout: self.idle_timeout,
        });
    }

    fn request_manual_sweep(&mut self) {
        if self.sweep.is_some() {
            self.pending_manual = true;
        } else {
            self.start_sweep(SweepTrigger::Manual, None);
        }
    }

    fn check_schedule(&mut self) {
        let now = self.clock.now();
        let Some(due) = self.schedule.take_due(now) else {
            return;
        };
        if self.sweep.is_some() {
            // Keep the earliest missed due time, so the lateness reported is the whole wait.
            let earlier = self.pending_scheduled.take();
            self.pending_scheduled = Some(match earlier {
                Some(earlier) => DueSweep {
                    skipped: earlier.skipped + 1 + due.skipped,
                    ..earlier
                },
                None => due,
            });
        } else {
            self.start_sweep(SweepTrigger::Scheduled, Some(due));
        }
    }

    /// With a clock that follows activity time, time jumps from one time stamp to the
    /// next, so a sweep due in between would otherwise start late, and when depends on
    /// how activity was batched. This runs the sweep at its due time instead, to
    /// completion, before applying activity stamped `at`. One sweep at the latest due
    /// time removes every session that the sweeps in between would have removed.
    fn sweep_due_before(&mut self, at: MonoTime) {
        if self.sweep.is_some() {
            return;
        }
        let Some(due) = self.schedule.latest_due_by(at) else {
            return;
        };
        self.clock.observe_activity(due);
        self.schedule.take_due(due);
        let on_time = DueSweep {
            due,
            late_by: Duration::ZERO,
            skipped: 0,
        };
        self.start_sweep(SweepTrigger::Scheduled, Some(on_time));
        while self.sweep.is_some() {
            // On a stop request the main loop ends the worker after this command.
            if matches!(self.stop.try_recv(), Err(TryRecvError::Disconnected)) {
                return;
            }
            self.sweep_step();
        }
    }

    fn start_sweep(&mut self, trigger: SweepTrigger, due: Option<DueSweep>) {
        let now = self.clock.now();
        self.emit(Event::SweepStarted {
            trigger,
            late_by: due.map(|due| now - due.due),
            skipped: due.map_or(0, |due| due.skipped),
        });
        #[cfg(feature = "test-hooks")]
        if let Some(hooks) = &self.hooks {
            hooks.on_sweep_start();
        }
        self.sweep = Some(SweepRun {
            trigger,
            started: Instant::now(),
            cutoff: stale_cutoff(now, self.idle_timeout),
            removed: 0,
        });
    }

    fn sweep_step(&mut self) {
        let Some(cutoff) = self.sweep.as_ref().and_then(|sweep| sweep.cutoff) else {
            self.finish_sweep();
            return;
        };
        let mut removed = Vec::with_capacity(self.sweep_step.min(self.store.len()));
        let limit = self.sweep_step;
        let store = &mut self.store;
        #[cfg(feature = "test-hooks")]
        let hooks = self.hooks.clone();
        // A panic inside a step ends this sweep, not the worker: the schedule goes on.
        let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
            #[cfg(feature = "test-hooks")]
            if let Some(hooks) = &hooks {
                hooks.before_sweep_step();
            }
            store.sweep_step(cutoff, limit, &mut removed)
        }));

        // Sessions popped before a panic are gone from the map, so they are reported too.
        let popped = removed.len() as u64;
        for session in removed {
            self.report_removed(session, RemovalCause::Sweep);
        }
        if let Some(sweep) = self.sweep.as_mut() {
            sweep.removed += popped;
        }
        match outcome {
            Ok(progress) if progress.finished => self.finish_sweep(),
            Ok(_) => {}
            Err(payload) => self.fail_sweep(panic_message(payload.as_ref())),
        }
    }

    /// Ends the running sweep after a failure, reports it, and starts any follow-up.
    fn fail_sweep(&mut self, message: String) {
        let Some(sweep) = self.sweep.take() else {
            return;
        };
        self.sweeps_failed += 1;
        self.emit(Event::SweepFailed {
            trigger: sweep.trigger,
            removed: sweep.removed,
            message,
        });
        self.start_follow_up_sweep();
    }

    fn finish_sweep(&mut self) {
        let Some(sweep) = self.sweep.take() else {
            return;
        };
        let finished = Event::SweepFinished {
            trigger: sweep.trigger,
            removed: sweep.removed,
            remaining: self.store.len() as u64,
            took: sweep.started.elapsed(),
        };
        self.sweeps_finished += 1;
        self.last_sweep = Some(finished.clone());
        self.emit(finished);
        self.start_follow_up_sweep();
    }

    /// Starts the sweep that came due, or was requested, while the last one ran.
    fn start_follow_up_sweep(&mut self) {
        if let Some(due) = self.pending_scheduled.take() {
            self.pending_manual = false;
            self.start_sweep(SweepTrigger::Scheduled, Some(due));
        } else if std::mem::take(&mut self.pending_manual) {
            self.start_sweep(SweepTrigger::Manual, None);
        }
    }

    fn report_removed(&mut self, session: Session, cause: RemovalCause) {
        self.removed_total += 1;
        self.removals.add(cause);
        let idle = session.idle_at(self.clock.now());
        self.emit(Event::SessionRemoved {
            id: session.id,
            source: session.source,
            idle,
            activity_count: session.activity_count,
            cause,
        });
    }

    fn emit(&mut self, event: Event) {
        let at = self.clock.now();
        self.seq += 1;
        let record = Record {
            seq: self.seq,
            at,
            wall: self.clock.wall_time(at),
            event,
        };
        self.outbox.push(record);
    }

    fn status(&self) -> Status {
        Status {
            idle_timeout: self.idle_timeout,
            sweep_interval: self.schedule.interval(),
            next_sweep_due: self.schedule.next_due(),
            sessions: self.store.len() as u64,
            removed_total: self.removed_total,
            sweeps_finished: self.sweeps_finished,
            sweeps_failed: self.sweeps_failed,
            sweep_running: self.sweep.is_some(),
            last_sweep: self.last_sweep.clone(),
            records_dropped_total: self.outbox.dropped_total(),
        }
    }
}

/// Returns the text of a panic payload: the message of `panic!` with a string.
fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(message) = payload.downcast_ref::<&str>() {
        (*message).to_owned()
    } else if let Some(message) = payload.downcast_ref::<String>() {
        message.clone()
    } else {
        "panic with a non-text payload".to_owned()
    }
}
