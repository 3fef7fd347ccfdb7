//! Messages between the engine worker and the threads around it: [`Command`]s in,
//! [`Update`]s out. Each update carries log [`Record`]s, which are never coalesced, and
//! the latest state of the sessions touched since the previous update, which are.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use crossbeam_channel::Sender;
use serde::Serialize;

use super::clock::MonoTime;
use super::query::{Query, Reply};
use super::session::{Session, SessionId, SessionMeta, Source};
use crate::count::counted;

/// One activity report: the session `id` was active at `at` (engine time), or now when
/// `at` is `None`.
#[derive(Debug, Clone)]
pub struct Activity {
    /// The session's key.
    pub id: SessionId,
    /// Origin of the activity.
    pub source: Source,
    /// When it happened; `None` means when the engine applies it.
    pub at: Option<MonoTime>,
    /// Metadata that replaces the session's own; `None` keeps what it has.
    pub meta: Option<SessionMeta>,
}

/// A request to the engine worker.
#[derive(Debug)]
pub enum Command {
    /// Record one activity report.
    Touch(Activity),
    /// Record several activity reports in order.
    TouchBatch(Vec<Activity>),
    /// End a session now, as a logout does.
    End {
        /// The session to end.
        id: SessionId,
    },
    /// Sweep now, without moving the schedule. Requests made while a sweep runs
    /// coalesce into one follow-up sweep.
    SweepNow,
    /// Change how long a session may be idle before it is stale.
    SetIdleTimeout(Duration),
    /// Change the sweep interval; the schedule restarts from now.
    SetSweepInterval(Duration),
    /// Log a notice from a session source, such as a skipped log line.
    Notice {
        /// The source that reports it.
        source: Source,
        /// Severity.
        level: Level,
        /// Description of what happened, as one line.
        message: String,
    },
    /// Reply on the sender once every earlier command has been applied and the
    /// schedule checked. Tests and the end of input use it to wait for the engine.
    Sync(Sender<()>),
    /// Read sessions or counters and pass the answer to `reply`, after every earlier
    /// command has been applied.
    Query {
        /// What to read.
        query: Query,
        /// Receives the answer; called on the worker thread, so it must not block.
        reply: Reply,
    },
}

/// Log level of a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Level {
    /// Detail, such as each session created or removed.
    Debug,
    /// Starts, stops, sweeps and setting changes.
    Info,
    /// Something was skipped or recovered.
    Warn,
    /// An operation failed or data was lost.
    Error,
}

impl Level {
    /// Returns the upper-case name used in log lines.
    pub fn name(self) -> &'static str {
        match self {
            Level::Debug => "DEBUG",
            Level::Info => "INFO",
            Level::Warn => "WARN",
            Level::Error => "ERROR",
        }
    }
}

impl fmt::Display for Level {
    /// Honours width and alignment, so `{:<5}` lines up the columns of log lines.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

/// Cause of a sweep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SweepTrigger {
    /// The schedule made it due.
    Scheduled,
    /// Someone asked for it.
    Manual,
}

/// Cause of a session's removal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RemovalCause {
    /// A sweep found it idle for at least the idle timeout.
    Sweep,
    /// New activity found it idle for at least the idle timeout; a new session replaced it.
    ExpiredOnAccess,
    /// Its owner ended it.
    Ended,
}

/// A fact the engine reports. Each becomes one log record.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The scheduler started on the worker thread.
    SchedulerStarted {
        /// Time between sweeps.
        sweep_interval: Duration,
        /// Idle time after which a session is stale.
        idle_timeout: Duration,
    },
    /// A setting changed while running.
    SettingsChanged {
        /// Time between sweeps.
        sweep_interval: Duration,
        /// Idle time after which a session is stale.
        idle_timeout: Duration,
    },
    /// A session started.
    SessionCreated {
        /// The new session.
        id: SessionId,
        /// Origin of its activity.
        source: Source,
    },
    /// A session left the map.
    SessionRemoved {
        /// The removed session.
        id: SessionId,
        /// Origin of its activity.
        source: Source,
        /// How long it had been idle when removed.
        idle: Duration,
        /// How many activity reports it received.
        activity_count: u64,
        /// Cause of the removal.
        cause: RemovalCause,
    },
    /// A sweep started.
    SweepStarted {
        /// Cause of the sweep.
        trigger: SweepTrigger,
        /// How long after its due time a scheduled sweep started, when it was late.
        late_by: Option<Duration>,
        /// Due times skipped because the worker was busy past them.
        skipped: u64,
    },
    /// A sweep finished.
    SweepFinished {
        /// Cause of the sweep.
        trigger: SweepTrigger,
        /// Sessions it removed.
        removed: u64,
        /// Sessions left in the map.
        remaining: u64,
        /// Real time it took, including pauses to serve commands.
        took: Duration,
    },
    /// A sweep failed part way; the sessions it removed before are reported, and the
    /// schedule continues.
    SweepFailed {
        /// Cause of the sweep.
        trigger: SweepTrigger,
        /// Sessions it removed before it failed.
        removed: u64,
        /// Description of the failure.
        message: String,
    },
    /// A sweep ended part way because the engine was shutting down. The stale sessions
    /// it had not reached stay in the map.
    SweepStopped {
        /// Cause of the sweep.
        trigger: SweepTrigger,
        /// Sessions it removed before the shutdown.
        removed: u64,
    },
    /// The wall clock jumped against monotonic time: a clock change, or time spent
    /// suspended. Expiry is unaffected.
    ClockAnomaly {
        /// Whether the wall clock moved ahead (rather than behind).
        ahead: bool,
        /// Size of the jump.
        by: Duration,
    },
    /// A session source reported something worth a log line.
    Notice {
        /// The reporting source.
        source: Source,
        /// Severity.
        level: Level,
        /// What happened.
        message: String,
    },
    /// A line from the program around the engine, such as the result of an export.
    Message {
        /// Severity.
        level: Level,
        /// What happened.
        message: String,
    },
    /// A request to the engine failed.
    Error {
        /// Description of what failed and why.
        message: String,
    },
    /// The scheduler stopped; no sweep runs after this.
    SchedulerStopped {
        /// Sessions left in the map.
        remaining: u64,
    },
}

/// A scheduled sweep that starts at least this late mentions it; less is timer jitter.
const LATE_SWEEP_NOTE: Duration = Duration::from_millis(100);

/// A scheduled sweep that starts at least this late logs at warning level.
const LATE_SWEEP_WARNING: Duration = Duration::from_secs(1);

impl Event {
    /// Returns the level of the log line for this event.
    pub fn level(&self) -> Level {
        match self {
            Event::SessionCreated { .. } | Event::SessionRemoved { .. } => Level::Debug,
            Event::SweepStarted {
                late_by: Some(late_by),
                ..
            } if *late_by >= LATE_SWEEP_WARNING => Level::Warn,
            Event::Notice { level, .. } | Event::Message { level, .. } => *level,
            Event::ClockAnomaly { .. } => Level::Warn,
            Event::Error { .. } | Event::SweepFailed { .. } => Level::Error,
            _ => Level::Info,
        }
    }

    /// Returns the event's short kind name, used as a column in exports.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::SchedulerStarted { .. } => "scheduler_started",
            Event::SettingsChanged { .. } => "settings_changed",
            Event::SessionCreated { .. } => "session_created",
            Event::SessionRemoved { .. } => "session_removed",
            Event::SweepStarted { .. } => "sweep_started",
            Event::SweepFinished { .. } => "sweep_finished",
            Event::SweepFailed { .. } => "sweep_failed",
            Event::SweepStopped { .. } => "sweep_stopped",
            Event::ClockAnomaly { .. } => "clock_anomaly",
            Event::Notice { .. } => "notice",
            Event::Message { .. } => "message",
            Event::Error { .. } => "error",
            Event::SchedulerStopped { .. } => "scheduler_stopped",
        }
    }

    /// Returns the session the event is about, if any.
    pub fn session_id(&self) -> Option<&SessionId> {
        match self {
            Event::SessionCreated { id, .. } | Event::SessionRemoved { id, .. } => Some(id),
            _ => None,
        }
    }
}

/// Formats a duration for log lines: whole seconds from one second up (`5m`, `1m 30s`),
/// whole milliseconds below (`12ms`) and whole microseconds below one millisecond
/// (`140us`).
pub fn format_duration(span: Duration) -> String {
    let rounded = if span >= Duration::from_secs(1) {
        Duration::from_secs(span.as_secs())
    } else if span >= Duration::from_millis(1) {
        Duration::from_millis(span.as_millis() as u64)
    } else {
        Duration::from_micros(span.as_micros() as u64)
    };
    humantime::format_duration(rounded).to_string()
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::SchedulerStarted {
                sweep_interval,
                idle_timeout,
            } => write!(
                f,
                "Scheduler started: stale session cleanup every {}, idle timeout {}",
                format_duration(*sweep_interval),
                format_duration(*idle_timeout)
            ),
            Event::SettingsChanged {
                sweep_interval,
                idle_timeout,
            } => write!(
                f,
                "Settings changed: stale session cleanup every {}, idle timeout {}",
                format_duration(*sweep_interval),
                format_duration(*idle_timeout)
            ),
            Event::SessionCreated { id, source } => {
                write!(f, "Session created: {id} ({source})")
            }
            Event::SessionRemoved {
                id,
                source,
                idle,
                activity_count,
                cause,
            } => {
                let how = match cause {
                    RemovalCause::Sweep => "Session expired",
                    RemovalCause::ExpiredOnAccess => "Session expired on access",
                    RemovalCause::Ended => "Session ended",
                };
                write!(
                    f,
                    "{how}: {id} ({source}), idle {}, {}",
                    format_duration(*idle),
                    counted(*activity_count, "request")
                )
            }
            Event::SweepStarted {
                trigger,
                late_by,
                skipped,
            } => {
                match trigger {
                    SweepTrigger::Scheduled => write!(f, "Sweep started (scheduled)")?,
                    SweepTrigger::Manual => write!(f, "Sweep started (manual)")?,
                }
                if let Some(late_by) = late_by.filter(|late_by| *late_by >= LATE_SWEEP_NOTE) {
                    write!(f, ", late by {}", format_duration(late_by))?;
                }
                if *skipped > 0 {
                    write!(f, ", {} skipped", counted(*skipped, "missed run"))?;
                }
                Ok(())
            }
            Event::SweepFinished {
                removed,
                remaining,
                took,
                ..
            } => write!(
                f,
                "Sweep finished: removed {}, {remaining} remaining, took {}",
                counted(*removed, "stale session"),
                format_duration(*took)
            ),
            Event::SweepFailed {
                removed, message, ..
            } => write!(
                f,
                "Sweep failed after removing {}: {message}; the schedule continues",
                counted(*removed, "stale session")
            ),
            Event::SweepStopped { removed, .. } => write!(
                f,
                "Sweep stopped by the shutdown after removing {}",
                counted(*removed, "stale session")
            ),
            Event::ClockAnomaly { ahead, by } => write!(
                f,
                "Clock anomaly: the wall clock moved {} {} monotonic time (a clock \
                 change or a suspend); expiry runs on monotonic time and is unaffected",
                format_duration(*by),
                if *ahead { "ahead of" } else { "behind" }
            ),
            Event::Notice {
                source, message, ..
            } => write!(f, "{source}: {message}"),
            Event::Message { message, .. } => f.write_str(message),
            Event::Error { message } => write!(f, "Error: {message}"),
            Event::SchedulerStopped { remaining } => {
                write!(
                    f,
                    "Scheduler stopped ({} in memory)",
                    counted(*remaining, "session")
                )
            }
        }
    }
}

/// One log line: an event with the times it happened.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// Position in the engine's log, counting from 1.
    pub seq: u64,
    /// Engine time of the event.
    pub at: MonoTime,
    /// Wall-clock time of the event, for display and export.
    pub wall: DateTime<Utc>,
    /// What happened.
    pub event: Event,
}

impl Record {
    /// Returns the record's level.
    pub fn level(&self) -> Level {
        self.event.level()
    }
}

impl fmt::Display for Record {
    /// Formats as `2026-12-04T10:00:00.000Z INFO message`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {:<5} {}",
            self.wall.format("%Y-%m-%dT%H:%M:%S%.3fZ"),
            self.level(),
            self.event
        )
    }
}

/// A session as the UI shows it: the engine's record, shared ids and all.
pub type SessionView = Session;

/// The engine's settings and counters, sent with every update.
#[derive(Debug, Clone, PartialEq)]
pub struct Status {
    /// Idle time after which a session is stale.
    pub idle_timeout: Duration,
    /// Time between scheduled sweeps.
    pub sweep_interval: Duration,
    /// When the next scheduled sweep is due.
    pub next_sweep_due: MonoTime,
    /// Sessions in the map.
    pub sessions: u64,
    /// Sessions removed since start, for any cause.
    pub removed_total: u64,
    /// Sweeps finished since start.
    pub sweeps_finished: u64,
    /// Sweeps that failed part way since start.
    pub sweeps_failed: u64,
    /// Whether a sweep is running now.
    pub sweep_running: bool,
    /// The latest finished sweep's event, if any.
    pub last_sweep: Option<Event>,
    /// Log records dropped since start because the receiver did not keep up.
    pub records_dropped_total: u64,
}

/// One message from the engine to its receiver.
#[derive(Debug, Clone)]
pub struct Update {
    /// New log records, in order.
    pub records: Vec<Record>,
    /// Sessions removed before `records` whose removal records were dropped because the
    /// receiver did not keep up. Apply first.
    pub removed: Vec<SessionId>,
    /// Sessions touched since the previous update, in their current state. Apply after
    /// `records`. Sessions removed since are left out.
    pub touched: Vec<SessionView>,
    /// When set, the receiver's copy of the map is out of date because records were
    /// dropped: replace it with these sessions and use `records` only for the log.
    pub snapshot: Option<Vec<SessionView>>,
    /// Log records dropped just before `records` because the receiver did not keep up.
    pub records_dropped: u64,
    /// The engine's state after this update.
    pub status: Status,
}
