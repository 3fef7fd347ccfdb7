//! Replay of a web server access log into the engine, on a thread named `replay`.
//!
//! [`ReplayPlan::open`] opens the file and reads up to [`OPENING_LINES`] valid lines. The
//! first of them in the era that most of them agree on fixes the engine clock's origin.
//! The origin is that line's time minus the reorder window, so that lines up to one
//! window earlier still map to engine times at or after zero. A paced clock waits at that
//! line's time until the replay sends its first line, so the first lines go out at once
//! and the time the program takes to start does not pass as log time.
//! [`ReplayPlan::spawn`] then reads the rest of the file line by line and sends each valid
//! line's activity as [`Command::TouchBatch`]. Sessions are keyed by client address and
//! user agent, as described in [`access_log`].
//!
//! # Order
//!
//! A server writes a line when the request ends but stamps it with the time the request
//! started, so a log is not sorted by time. Lines wait in a reorder buffer until a line
//! more than the reorder window later has been read, or the file has ended, and leave it
//! in time order, ties in file order. A line earlier than a line already sent is still
//! applied: the engine never moves a session's last activity backwards. A line earlier
//! than the clock's origin is applied at the origin. The final notice counts both kinds.
//! A line more than the reorder window ahead of the lines before it waits for the lines
//! after it before it joins the buffer, and is skipped if they stay behind it (see
//! `Replayer::accept`).
//!
//! # Speed
//!
//! At [`Speed::Factor`] the engine runs on a [`ScaledClock`] and each line is sent once
//! that clock reaches the line's time. At [`Speed::Max`] the engine runs on a
//! [`ManualClock`] that follows the activity time stamps, so lines are sent as fast as
//! the engine takes them and sweeps run in log time.
//!
//! # Failures
//!
//! Nothing in the file stops a replay. Malformed lines and lines over [`MAX_LINE_LEN`]
//! bytes are counted as rejected and reported as warnings: the first
//! [`DETAILED_SKIP_NOTICES`] one by one, the rest in summaries. A read error ends the
//! replay with an error notice. The last line is read as it is, so a file cut off
//! mid-line or still being written loses at most that line. A line stamped more than
//! [`MAX_TIME_JUMP`] away from the lines before it is kept back until the next lines
//! decide. When three of them in a row agree on the new time, the log has a real gap,
//! which is reported. A line back near the accepted time makes the kept lines outliers,
//! which are skipped like malformed ones (see the `time_jumps` module). At the end of the
//! file the kept lines that agree are a jump, unless lines of their time were outliers
//! before. The engine's clock never goes back, so after a jump back, lines more than
//! [`MAX_TIME_JUMP`] before the latest accepted line are skipped: their sessions would
//! start more than a day idle. Opening lines outside the era most of them agree on are
//! skipped too, except those after the era's last opening line, which the lines after
//! them decide. The replay reads up to the end of the file as it is when the reader gets
//! there and does not wait for more.
//!
//! [`access_log`]: super::access_log

mod line_reader;
mod opening;
mod skips;

use std::cmp::{Ordering as CmpOrdering, Reverse};
use std::collections::BinaryHeap;
use std::fmt;
use std::fs::File;
use std::io;
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::{DateTime, Datelike, TimeDelta, TimeZone, Utc};
use crossbeam_channel::Sender;

use self::line_reader::{LineReader, ReadLine};
use self::opening::{Opening, StartScan};
use self::skips::{SkipLog, SkipReason};
use super::access_log::{IdCache, parse_line};
use super::time_jumps::{CONFIRMING_LINES, Decision, Evidence, JumpFilter};
use super::{RunningSource, SourceContext, SourceStats};
use crate::count::counted;
use crate::engine::clock::{ManualClock, MonoTime, ScaledClock, SharedClock};
use crate::engine::event::{Activity, Command, Level, format_duration};
use crate::engine::session::{SessionId, Source};

pub use super::time_jumps::OPENING_LINES;

/// Default span of log time that lines may be out of order and still be sent in order.
pub const DEFAULT_REORDER_WINDOW: Duration = Duration::from_secs(2 * 60);

/// Span of log time between neighbouring lines beyond which a line is kept back until
/// the next lines show whether the log moved there or the line is an outlier.
pub const MAX_TIME_JUMP: Duration = Duration::from_secs(24 * 60 * 60);

/// Maximum reorder window that a replay accepts, equal to [`MAX_TIME_JUMP`]. Lines further
/// apart than that are handled as a time jump or an outlier, not reordered. The reorder
/// buffer also keeps a window's worth of lines in memory.
pub const MAX_REORDER_WINDOW: Duration = MAX_TIME_JUMP;

/// Years of the UTC times that a replay accepts. The log's four-digit years stay in
/// 0 to 9999, but a UTC offset can move a time into year -1 or 10000. Such years print
/// with a sign (`-0001`, `+10000`), which RFC 3339 does not allow and which a CSV export
/// would read as the start of a formula. Year 0 is not a year of the calendar logs use.
///
/// TODO: a paced clock keeps running after the last line, so a log that ends late in
/// year 9999 can still show times past it.
const YEARS: RangeInclusive<i32> = 1..=9999;

/// Span of log time after the clock's origin, in days, that a replay accepts: 500 years,
/// within the 584 years that the store's 64-bit nanosecond times cover. Later lines are
/// skipped.
pub const MAX_CLOCK_SPAN_DAYS: i64 = 500 * 365;

/// Time jumps reported one by one. Later ones are only counted in the closing summary.
pub const DETAILED_JUMP_NOTICES: u64 = 10;

/// Maximum length in bytes of a line the replay parses, without its line ending.
/// Longer lines are skipped without being held in memory.
pub const MAX_LINE_LEN: usize = 64 * 1024;

/// Maximum activity reports in one [`Command::TouchBatch`].
pub const MAX_BATCH_LEN: usize = 1024;

/// Skipped lines reported one by one before the replay switches to summaries.
pub const DETAILED_SKIP_NOTICES: u64 = 100;

/// Skipped lines per summary notice after the first [`DETAILED_SKIP_NOTICES`].
pub const SKIP_SUMMARY_INTERVAL: u64 = 10_000;

/// Lines read between two checks of the stop signal.
const STOP_CHECK_LINES: u64 = 4096;

/// Replay speed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Speed {
    /// A multiple of the log's own pace: 1 replays in real time, 60 replays an hour of
    /// log per minute. Must be finite and above zero.
    Factor(f64),
    /// As fast as the engine applies the activity.
    Max,
}

impl fmt::Display for Speed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Speed::Factor(factor) => write!(f, "{factor}x"),
            Speed::Max => f.write_str("max speed"),
        }
    }
}

/// Settings of a replay.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplayOptions {
    /// The access log to replay.
    pub path: PathBuf,
    /// Replay speed.
    pub speed: Speed,
    /// Span of log time that lines may be out of order and still be sent in time order,
    /// at most [`MAX_REORDER_WINDOW`].
    pub reorder_window: Duration,
}

impl ReplayOptions {
    /// Creates options with the [`DEFAULT_REORDER_WINDOW`].
    pub fn new(path: impl Into<PathBuf>, speed: Speed) -> Self {
        ReplayOptions {
            path: path.into(),
            speed,
            reorder_window: DEFAULT_REORDER_WINDOW,
        }
    }
}

/// Error that prevents a replay from starting.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The speed factor is zero, negative or not a number.
    #[error("invalid replay speed {0}: expected a finite factor above zero, or max")]
    InvalidSpeed(f64),
    /// The reorder window is longer than [`MAX_REORDER_WINDOW`].
    #[error(
        "invalid reorder window {}: expected at most {}",
        format_duration(*.0),
        format_duration(MAX_REORDER_WINDOW)
    )]
    InvalidReorderWindow(Duration),
    /// The file could not be opened.
    #[error("failed to open access log {}: {source}", path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// Reading failed before the first valid line.
    #[error("failed to read access log {} at line {line}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Number of the line being read, counting from 1.
        line: u64,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// No line of the file is a Common or Combined Log Format line.
    #[error("no access log lines found in {}: {detail}", path.display())]
    NoLines {
        /// The file.
        path: PathBuf,
        /// Lines read, and the reason the first line was rejected.
        detail: String,
    },
}

/// An opened access log, read up to its first valid line, with the clock the engine
/// must run on. Start the engine with [`ReplayPlan::clock`], then call
/// [`ReplayPlan::spawn`] with the engine's command sender.
#[derive(Debug)]
pub struct ReplayPlan {
    options: ReplayOptions,
    reader: LineReader<File>,
    ids: IdCache,
    origin: DateTime<Utc>,
    clock: SharedClock,
    /// The clock at [`Speed::Factor`], which the replay starts when it sends its first
    /// line.
    pacer: Option<Arc<ScaledClock>>,
    /// Valid lines read to decide the origin, which the replay thread takes first.
    opening: Vec<PendingLine>,
    skips: SkipLog,
    /// Skip notices for lines read before the thread starts, sent when it starts.
    queued_notices: Vec<String>,
}

impl ReplayPlan {
    /// Opens the file and reads up to its first line with a valid timestamp.
    ///
    /// At [`Speed::Factor`] the returned plan's clock reads the first line's time until
    /// the replay sends that line.
    pub fn open(options: ReplayOptions) -> Result<ReplayPlan, ReplayError> {
        if let Speed::Factor(factor) = options.speed
            && !(factor.is_finite() && factor > 0.0)
        {
            return Err(ReplayError::InvalidSpeed(factor));
        }
        if options.reorder_window > MAX_REORDER_WINDOW {
            return Err(ReplayError::InvalidReorderWindow(options.reorder_window));
        }
        let file = File::open(&options.path).map_err(|source| ReplayError::Open {
            path: options.path.clone(),
            source,
        })?;
        let mut reader = LineReader::new(file);
        let mut ids = IdCache::new();
        let mut skips = SkipLog::default();
        let mut queued_notices = Vec::new();

        let window = TimeDelta::from_std(options.reorder_window).unwrap_or(TimeDelta::MAX);
        let scan = StartScan::new(
            &mut reader,
            &mut ids,
            &options.path,
            &mut skips,
            &mut queued_notices,
        );
        let Opening { lines, origin } = scan.read_opening(window)?;
        let first_time = lines.first().map_or(origin, |line| line.time);
        // A paced replay starts at the first line rather than at the origin, so the
        // first lines are sent at once instead of after one reorder window.
        let first_line_at = (first_time - origin).to_std().unwrap_or_default();
        let first_line_at = MonoTime::from_duration(first_line_at);
        let (clock, pacer): (SharedClock, _) = match options.speed {
            Speed::Factor(factor) => {
                let pacer = Arc::new(ScaledClock::waiting_at(origin, first_line_at, factor));
                (Arc::clone(&pacer) as SharedClock, Some(pacer))
            }
            Speed::Max => (Arc::new(ManualClock::following_activity(origin)), None),
        };
        Ok(ReplayPlan {
            options,
            reader,
            ids,
            origin,
            clock,
            pacer,
            opening: lines,
            skips,
            queued_notices,
        })
    }

    /// Returns the clock to start the engine with. Its origin reads as
    /// [`ReplayPlan::origin`].
    pub fn clock(&self) -> SharedClock {
        Arc::clone(&self.clock)
    }

    /// Returns the wall time of engine time zero: the first valid line's time minus the
    /// reorder window.
    pub fn origin(&self) -> DateTime<Utc> {
        self.origin
    }

    /// Returns the replay's settings.
    pub fn options(&self) -> &ReplayOptions {
        &self.options
    }

    /// Starts the replay on a thread named `replay` that sends to `commands`.
    pub fn spawn(self, commands: Sender<Command>) -> io::Result<RunningSource> {
        let description = format!("{} at {}", self.options.path.display(), self.options.speed);
        let clock = self.clock();
        RunningSource::spawn(
            "replay",
            Source::Replay,
            description,
            commands,
            clock,
            move |context| Replayer::run(self, context),
        )
    }
}

/// Returns the span of log time beyond which a line is checked against the lines after it.
fn max_time_jump() -> TimeDelta {
    TimeDelta::from_std(MAX_TIME_JUMP).unwrap_or(TimeDelta::MAX)
}

/// Returns the clock's origin for a replay whose first line is stamped `first`: one
/// reorder window earlier, so that lines up to a window earlier than the first still map
/// to engine times at or after zero. The origin is a wall time that the log shows, so it
/// stays within [`YEARS`] too.
fn clock_origin(first: DateTime<Utc>, reorder_window: TimeDelta) -> DateTime<Utc> {
    let first_of_years = Utc
        .with_ymd_and_hms(*YEARS.start(), 1, 1, 0, 0, 0)
        .single()
        .unwrap_or(DateTime::<Utc>::MIN_UTC);
    first
        .checked_sub_signed(reorder_window)
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
        .max(first_of_years)
}

/// Returns the latest log time that a replay from `origin` accepts.
fn clock_limit(origin: DateTime<Utc>) -> DateTime<Utc> {
    origin
        .checked_add_signed(TimeDelta::days(MAX_CLOCK_SPAN_DAYS))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// Parses line number `number` and checks that its time is in [`YEARS`]. Takes the
/// session id from `ids` when it has it.
fn parse_pending(line: &[u8], number: u64, ids: &mut IdCache) -> Result<PendingLine, SkipReason> {
    let line = parse_line(line).map_err(SkipReason::Invalid)?;
    if !YEARS.contains(&line.time.naive_utc().year()) {
        return Err(SkipReason::OutsideYears);
    }
    Ok(PendingLine::new(
        line.time,
        number,
        line.cached_session_id(ids),
    ))
}

/// A valid line waiting in the reorder buffer.
#[derive(Debug)]
struct PendingLine {
    time: DateTime<Utc>,
    /// Line number in the file, counting from 1. Lines with equal times keep this order.
    number: u64,
    id: SessionId,
}

impl PendingLine {
    fn new(time: DateTime<Utc>, number: u64, id: SessionId) -> Self {
        PendingLine { time, number, id }
    }

    fn key(&self) -> (DateTime<Utc>, u64) {
        (self.time, self.number)
    }
}

impl PartialEq for PendingLine {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for PendingLine {}

impl PartialOrd for PendingLine {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}

impl Ord for PendingLine {
    fn cmp(&self, other: &Self) -> CmpOrdering {
        self.key().cmp(&other.key())
    }
}

/// The replay was asked to stop, or the engine is gone.
struct Stopped;

/// The replay thread's state.
struct Replayer {
    context: SourceContext,
    options: ReplayOptions,
    reorder_window: TimeDelta,
    /// [`MAX_TIME_JUMP`] as a `TimeDelta`.
    max_jump: TimeDelta,
    origin: DateTime<Utc>,
    /// Latest log time the replay accepts; see [`MAX_CLOCK_SPAN_DAYS`].
    clock_limit: DateTime<Utc>,
    /// The clock at [`Speed::Factor`].
    pacer: Option<Arc<ScaledClock>>,
    reader: LineReader<File>,
    ids: IdCache,
    buffer: BinaryHeap<Reverse<PendingLine>>,
    /// Latest time of any line put in the reorder buffer.
    latest_read: DateTime<Utc>,
    /// Earliest time of any line put in the reorder buffer.
    earliest_read: DateTime<Utc>,
    /// Latest time of any line sent, or the origin before the first. An earlier line is
    /// applied out of order, and one before the origin at the origin's time.
    sent_until: DateTime<Utc>,
    /// Lines applied out of order: earlier than `sent_until` when they arrived.
    late_lines: u64,
    /// A line more than the reorder window ahead of `latest_read`, kept out of the
    /// buffer and of `latest_read` until the lines after it show whether the log moved
    /// on to its time.
    held: Option<PendingLine>,
    /// `latest_read` when `held` arrived.
    held_after: DateTime<Utc>,
    /// Lines since `held` that were more than the reorder window before it.
    held_contradictions: usize,
    batch: Vec<Activity>,
    skips: SkipLog,
    reports_sent: u64,
    jumps: JumpFilter<PendingLine>,
    /// Decisions of the jump filter waiting to be applied.
    decided: Vec<Decision<PendingLine>>,
    /// Confirmed jumps of the log's time.
    time_jumps: u64,
}

impl Replayer {
    /// Runs the replay to the end of the file or until stopped.
    fn run(plan: ReplayPlan, context: SourceContext) {
        let ReplayPlan {
            options,
            reader,
            ids,
            origin,
            pacer,
            opening,
            skips,
            queued_notices,
            ..
        } = plan;
        let first_time = opening.first().map_or(origin, |line| line.time);
        let path = options.path.display().to_string();
        log::info!("replay of {path} started at {}", options.speed);

        let mut replayer = Replayer {
            context,
            reorder_window: TimeDelta::from_std(options.reorder_window).unwrap_or(TimeDelta::MAX),
            max_jump: max_time_jump(),
            origin,
            clock_limit: clock_limit(origin),
            pacer,
            reader,
            ids,
            buffer: BinaryHeap::new(),
            latest_read: first_time,
            earliest_read: first_time,
            sent_until: origin,
            held: None,
            held_after: first_time,
            held_contradictions: 0,
            late_lines: 0,
            batch: Vec::with_capacity(MAX_BATCH_LEN),
            skips,
            reports_sent: 0,
            jumps: JumpFilter::new(max_time_jump()),
            decided: Vec::new(),
            time_jumps: 0,
            options,
        };
        match replayer.replay(opening, queued_notices) {
            Ok(()) => log::info!("replay of {path} finished"),
            Err(Stopped) => {
                log::info!("replay of {path} stopped before the end");
                // The engine still runs while its sources stop, so the counts so far can
                // reach the log.
                let summary = replayer.summary(&format!("stopped replaying {path} before its end"));
                replayer.context.try_send(Command::Notice {
                    source: Source::Replay,
                    level: Level::Info,
                    message: summary,
                });
            }
        }
    }

    fn replay(&mut self, opening: Vec<PendingLine>, notices: Vec<String>) -> Result<(), Stopped> {
        let stats = Arc::clone(&self.context.stats);
        SourceStats::add(&stats.lines_read, self.reader.line_number());
        SourceStats::add(&stats.rejected, self.skips.total);
        for message in notices {
            self.notice(Level::Warn, message)?;
        }

        for line in opening {
            self.filter(line)?;
        }
        self.read_to_end()?;
        let mut decided = std::mem::take(&mut self.decided);
        self.jumps.finish(&mut |decision| decided.push(decision));
        self.decided = decided;
        self.apply_decisions()?;
        // No line after the held line contradicts it.
        if let Some(held) = self.held.take() {
            self.buffer_line(held)?;
        }
        while let Some(Reverse(line)) = self.buffer.pop() {
            self.emit(line)?;
        }
        self.flush()?;

        if let Some(summary) = self.skips.finish() {
            self.notice(Level::Warn, summary)?;
        }
        let finished = format!("finished replaying {}", self.options.path.display());
        self.notice(Level::Info, self.summary(&finished))?;
        stats.finished.store(true, Ordering::Relaxed);
        Ok(())
    }

    /// Reads and handles lines up to the end of the file or a read error.
    fn read_to_end(&mut self) -> Result<(), Stopped> {
        loop {
            let number = self.reader.line_number() + 1;
            if number.is_multiple_of(STOP_CHECK_LINES) && self.context.should_stop() {
                return Err(Stopped);
            }
            let read = match self.reader.next_line() {
                Ok(Some(read)) => read,
                Ok(None) => return Ok(()),
                Err(error) => return self.report_read_error(number, &error),
            };
            if read == ReadLine::Unfinished {
                if self.context.should_stop() {
                    return Err(Stopped);
                }
                continue;
            }
            SourceStats::add(&self.context.stats.lines_read, 1);

            let parsed = match read {
                ReadLine::TooLong => Err(SkipReason::TooLong),
                ReadLine::Unfinished => unreachable!("unfinished lines are read on above"),
                ReadLine::Complete => parse_pending(self.reader.line(), number, &mut self.ids),
            };
            match parsed {
                Ok(line) => self.filter(line)?,
                Err(reason) => self.skip(number, &reason)?,
            }
        }
    }

    fn report_read_error(&mut self, number: u64, error: &io::Error) -> Result<(), Stopped> {
        let path = self.options.path.display();
        log::error!("failed to read {path} at line {number}: {error}");
        let message =
            format!("failed to read {path} at line {number}, so the replay ends there: {error}");
        self.notice(Level::Error, message)
    }

    /// Passes a valid line through the jump filter and applies what it decided.
    fn filter(&mut self, line: PendingLine) -> Result<(), Stopped> {
        if line.time > self.clock_limit {
            return self.skip(line.number, &SkipReason::BeyondClock(line.time));
        }
        let mut decided = std::mem::take(&mut self.decided);
        self.jumps
            .push(line.time, line, &mut |decision| decided.push(decision));
        self.decided = decided;
        self.apply_decisions()
    }

    fn apply_decisions(&mut self) -> Result<(), Stopped> {
        let mut decided = std::mem::take(&mut self.decided);
        let mut result = Ok(());
        for decision in decided.drain(..) {
            result = match decision {
                Decision::Accept(line) => self.accept(line),
                Decision::Outlier(line, previous) => {
                    let reason = SkipReason::TimeOutlier {
                        time: line.time,
                        previous,
                    };
                    self.skip(line.number, &reason)
                }
                Decision::Jump { from, to, evidence } => self.report_jump(from, to, evidence),
            };
            if result.is_err() {
                break;
            }
        }
        decided.clear();
        self.decided = decided;
        result
    }

    /// Counts a jump of the log's time and reports the first [`DETAILED_JUMP_NOTICES`].
    fn report_jump(
        &mut self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        evidence: Evidence,
    ) -> Result<(), Stopped> {
        self.time_jumps += 1;
        if self.time_jumps > DETAILED_JUMP_NOTICES {
            return Ok(());
        }
        let back = to < from;
        let mut message = format!(
            "log time jumps {}from {} to {}",
            if back { "back " } else { "" },
            from.format("%Y-%m-%d %H:%M:%S UTC"),
            to.format("%Y-%m-%d %H:%M:%S UTC")
        );
        match evidence {
            Evidence::Confirmed => message.push_str(", confirmed by the lines after it"),
            Evidence::EndOfInput { lines } => message.push_str(&format!(
                " at the end of the file, shown by {} that no later line can confirm or \
                 contradict",
                counted(lines as u64, "line")
            )),
        }
        if back {
            message.push_str(&format!(
                ". The engine's clock cannot go back, so lines more than {} before the latest \
                 accepted line are skipped",
                format_duration(MAX_TIME_JUMP)
            ));
        }
        if self.time_jumps == DETAILED_JUMP_NOTICES {
            message.push_str("; further jumps are counted in the closing summary");
        }
        self.notice(Level::Warn, message)
    }

    /// Takes a line that the jump filter accepted. Lines come through that filter, so a
    /// single line stamped more than [`MAX_TIME_JUMP`] from its neighbours never gets
    /// here and cannot move the clock or stop the reordering.
    ///
    /// A line more than the reorder window ahead of the lines before it is held back:
    /// a quiet hour and a wrong clock look the same until the next line. The next line
    /// at or after the held line's time minus the window shows that the log moved on, and
    /// the held line joins the buffer. When [`CONFIRMING_LINES`] lines in a row stay
    /// further back, the held line is skipped, and the lines after it are reordered
    /// against the lines before it again.
    fn accept(&mut self, line: PendingLine) -> Result<(), Stopped> {
        // The engine's clock cannot go back, so a line this far behind, as after a jump
        // back, would start its session more than a day idle.
        if line.time < self.latest_read && self.latest_read - line.time > self.max_jump {
            let reason = SkipReason::BehindClock {
                time: line.time,
                latest: self.latest_read,
            };
            return self.skip(line.number, &reason);
        }
        if let Some(held) = &self.held {
            if held.time - line.time <= self.reorder_window {
                if let Some(held) = self.held.take() {
                    self.buffer_line(held)?;
                }
            } else {
                self.held_contradictions += 1;
                if self.held_contradictions >= CONFIRMING_LINES {
                    self.skip_held()?;
                }
            }
        }
        if self.held.is_none()
            && line.time > self.latest_read
            && line.time - self.latest_read > self.reorder_window
        {
            self.held_after = self.latest_read;
            self.held_contradictions = 0;
            self.held = Some(line);
            return self.emit_due();
        }
        self.buffer_line(line)
    }

    fn skip_held(&mut self) -> Result<(), Stopped> {
        let Some(held) = self.held.take() else {
            return Ok(());
        };
        let reason = SkipReason::AheadOfLog {
            time: held.time,
            latest: self.held_after,
            reorder_window: self.options.reorder_window,
        };
        self.skip(held.number, &reason)
    }

    /// Puts a line in the reorder buffer and sends the lines that are due.
    fn buffer_line(&mut self, line: PendingLine) -> Result<(), Stopped> {
        if line.time < self.sent_until {
            self.late_lines += 1;
        }
        self.latest_read = self.latest_read.max(line.time);
        self.earliest_read = self.earliest_read.min(line.time);
        self.buffer.push(Reverse(line));
        self.emit_due()
    }

    /// Sends the buffered lines more than the reorder window before the latest line read.
    /// A held line counts as read here, so that lines leave the buffer as they would
    /// without holding, unless the held line is skipped.
    fn emit_due(&mut self) -> Result<(), Stopped> {
        let horizon = match &self.held {
            Some(held) => held.time.max(self.latest_read),
            None => self.latest_read,
        };
        loop {
            let due = self
                .buffer
                .peek()
                .is_some_and(|Reverse(oldest)| horizon - oldest.time > self.reorder_window);
            if !due {
                return Ok(());
            }
            if let Some(Reverse(line)) = self.buffer.pop() {
                self.emit(line)?;
            }
        }
    }

    /// Adds a line's activity to the batch, first waiting for its time at
    /// [`Speed::Factor`].
    fn emit(&mut self, line: PendingLine) -> Result<(), Stopped> {
        self.sent_until = self.sent_until.max(line.time);
        let at = self.mono_time(line.time);
        if let Some(pacer) = &self.pacer {
            // The clock waited at the first line's time until now, so the time spent
            // starting up does not pass as log time.
            pacer.start_running();
            self.wait_until(at)?;
        }
        self.batch.push(Activity {
            id: line.id,
            source: Source::Replay,
            at: Some(at),
            meta: None,
        });
        if self.batch.len() >= MAX_BATCH_LEN {
            self.flush()?;
        }
        Ok(())
    }

    /// Returns the engine time of a log time, or zero for times before the origin.
    ///
    fn mono_time(&self, time: DateTime<Utc>) -> MonoTime {
        let since_origin = (time - self.origin).to_std().unwrap_or(Duration::ZERO);
        MonoTime::from_duration(since_origin)
    }

    /// Sends the batch and sleeps until the clock reaches `at`.
    fn wait_until(&mut self, at: MonoTime) -> Result<(), Stopped> {
        loop {
            let now = self.context.clock.now();
            if now >= at {
                return Ok(());
            }
            self.flush()?;
            // A clock that does not run by itself would never get there.
            let Some(wait) = self.context.clock.real_wait(at - now) else {
                return Ok(());
            };
            if !self.context.sleep(wait) {
                return Err(Stopped);
            }
        }
    }

    fn flush(&mut self) -> Result<(), Stopped> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(MAX_BATCH_LEN));
        let count = batch.len() as u64;
        if !self.context.send(Command::TouchBatch(batch)) {
            return Err(Stopped);
        }
        self.reports_sent += count;
        SourceStats::add(&self.context.stats.reports_sent, count);
        Ok(())
    }

    fn skip(&mut self, number: u64, reason: &SkipReason) -> Result<(), Stopped> {
        SourceStats::add(&self.context.stats.rejected, 1);
        match self.skips.record(number, reason) {
            Some(message) => self.notice(Level::Warn, message),
            None => Ok(()),
        }
    }

    fn notice(&self, level: Level, message: String) -> Result<(), Stopped> {
        let command = Command::Notice {
            source: Source::Replay,
            level,
            message,
        };
        if self.context.send(command) {
            Ok(())
        } else {
            Err(Stopped)
        }
    }

    /// Returns the closing summary: `outcome`, then the counts of lines so far.
    fn summary(&self, outcome: &str) -> String {
        let span = (self.latest_read - self.earliest_read)
            .to_std()
            .unwrap_or(Duration::ZERO);
        format!(
            "{outcome}: {} read, {} sent, {} skipped{}, \
             {} out of order by more than the {} reorder window, \
             {}, log time {} to {} ({})",
            counted(self.reader.line_number(), "line"),
            counted(self.reports_sent, "report"),
            counted(self.skips.total, "line"),
            self.skips.breakdown(),
            counted(self.late_lines, "line"),
            format_duration(self.options.reorder_window),
            counted(self.time_jumps, "time jump"),
            self.earliest_read.format("%Y-%m-%d %H:%M:%S UTC"),
            self.latest_read.format("%Y-%m-%d %H:%M:%S UTC"),
            format_duration(span),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_lines_order_by_time_then_line() {
        let id = SessionId::new("a").unwrap();
        let time = DateTime::<Utc>::UNIX_EPOCH;
        let mut heap = BinaryHeap::new();
        heap.push(Reverse(PendingLine::new(
            time + TimeDelta::seconds(1),
            1,
            id.clone(),
        )));
        heap.push(Reverse(PendingLine::new(time, 3, id.clone())));
        heap.push(Reverse(PendingLine::new(time, 2, id)));
        let order: Vec<u64> =
            std::iter::from_fn(|| heap.pop().map(|Reverse(line)| line.number)).collect();
        assert_eq!(order, vec![2, 3, 1]);
    }
}
