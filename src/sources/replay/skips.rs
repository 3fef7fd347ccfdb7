//! Reasons for skipping replayed lines, and the notices that report them.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{DETAILED_SKIP_NOTICES, MAX_LINE_LEN, MAX_TIME_JUMP, SKIP_SUMMARY_INTERVAL, YEARS};
use crate::count::counted;
use crate::engine::event::format_duration;
use crate::sources::access_log;
use crate::sources::time_jumps::CONFIRMING_LINES;

/// Reason a line was skipped.
#[derive(Debug)]
pub(super) enum SkipReason {
    TooLong,
    Invalid(access_log::ParseError),
    /// The line's time in UTC is outside [`YEARS`].
    OutsideYears,
    /// An opening line's time is more than [`MAX_TIME_JUMP`] from `era`, the time most of
    /// the file's opening lines are near.
    OpeningOutlier {
        time: DateTime<Utc>,
        era: DateTime<Utc>,
    },
    /// The line's time is more than [`MAX_TIME_JUMP`] from the line accepted before it,
    /// at `previous`, and the lines after it do not confirm a jump.
    TimeOutlier {
        time: DateTime<Utc>,
        previous: DateTime<Utc>,
    },
    /// The line's time is more than the reorder window ahead of the latest accepted line
    /// before it, at `latest`, and the lines after it stay more than the window behind it.
    AheadOfLog {
        time: DateTime<Utc>,
        latest: DateTime<Utc>,
        reorder_window: Duration,
    },
    /// The line's time is more than [`MAX_TIME_JUMP`] before the latest accepted line, at
    /// `latest`.
    BehindClock {
        time: DateTime<Utc>,
        latest: DateTime<Utc>,
    },
    /// The line's time is more than [`MAX_CLOCK_SPAN_DAYS`](super::MAX_CLOCK_SPAN_DAYS)
    /// after the clock's origin.
    BeyondClock(DateTime<Utc>),
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SkipReason::TooLong => write!(f, "longer than {MAX_LINE_LEN} bytes"),
            SkipReason::Invalid(error) => error.fmt(f),
            // The time itself is left out, as it prints with a sign.
            SkipReason::OutsideYears => write!(
                f,
                "its time in UTC is outside the years {} to {}",
                YEARS.start(),
                YEARS.end()
            ),
            SkipReason::OpeningOutlier { time, era } => write!(
                f,
                "its time {} is more than {} from {}, the time most of the file's first \
                 lines are near",
                time.format("%Y-%m-%d %H:%M:%S UTC"),
                format_duration(MAX_TIME_JUMP),
                era.format("%Y-%m-%d %H:%M:%S UTC")
            ),
            SkipReason::TimeOutlier { time, previous } => write!(
                f,
                "its time {} is more than {} from the previous accepted line, at {}, and the \
                 lines after it do not confirm a jump",
                time.format("%Y-%m-%d %H:%M:%S UTC"),
                format_duration(MAX_TIME_JUMP),
                previous.format("%Y-%m-%d %H:%M:%S UTC")
            ),
            SkipReason::AheadOfLog {
                time,
                latest,
                reorder_window,
            } => write!(
                f,
                "its time {} is more than the {} reorder window ahead of the latest accepted \
                 line, at {}, and the {CONFIRMING_LINES} lines after it are more than the \
                 window before it",
                time.format("%Y-%m-%d %H:%M:%S UTC"),
                format_duration(*reorder_window),
                latest.format("%Y-%m-%d %H:%M:%S UTC")
            ),
            SkipReason::BehindClock { time, latest } => write!(
                f,
                "its time {} is more than {} before the latest accepted line, at {}, and the \
                 engine's clock cannot go back",
                time.format("%Y-%m-%d %H:%M:%S UTC"),
                format_duration(MAX_TIME_JUMP),
                latest.format("%Y-%m-%d %H:%M:%S UTC")
            ),
            SkipReason::BeyondClock(time) => write!(
                f,
                "its time {} is more than 500 years after the start of the replay, beyond \
                 the range of the engine's clock",
                time.format("%Y-%m-%d %H:%M:%S UTC")
            ),
        }
    }
}

impl SkipReason {
    /// Returns the index of the reason's kind in [`SKIP_KINDS`].
    fn kind(&self) -> usize {
        match self {
            SkipReason::Invalid(_) => 0,
            SkipReason::TooLong => 1,
            SkipReason::OutsideYears => 2,
            SkipReason::OpeningOutlier { .. }
            | SkipReason::TimeOutlier { .. }
            | SkipReason::AheadOfLog { .. } => 3,
            SkipReason::BehindClock { .. } => 4,
            SkipReason::BeyondClock(_) => 5,
        }
    }
}

/// Kinds of skipped lines that the closing summary counts apart, as written after a
/// count of one and after a larger count.
const SKIP_KINDS: [(&str, &str); 6] = [
    ("invalid", "invalid"),
    ("too long", "too long"),
    ("outside years 1 to 9999", "outside years 1 to 9999"),
    ("time outlier", "time outliers"),
    ("behind the clock", "behind the clock"),
    ("beyond the clock's range", "beyond the clock's range"),
];

/// Counts skipped lines and decides which of them get a notice of their own.
#[derive(Debug, Default)]
pub(super) struct SkipLog {
    pub(super) total: u64,
    /// Skipped lines by kind, indexed as [`SKIP_KINDS`].
    by_kind: [u64; SKIP_KINDS.len()],
    /// Skipped lines since the last notice, after the detailed ones.
    unreported: u64,
    unreported_first_line: u64,
    last_line: u64,
}

impl SkipLog {
    /// Counts a skipped line and returns the notice to send for it, if any.
    pub(super) fn record(&mut self, line: u64, reason: &SkipReason) -> Option<String> {
        self.total += 1;
        self.by_kind[reason.kind()] += 1;
        self.last_line = line;
        if self.total < DETAILED_SKIP_NOTICES {
            return Some(format!("line {line} skipped: {reason}"));
        }
        if self.total == DETAILED_SKIP_NOTICES {
            return Some(format!(
                "line {line} skipped: {reason}. Further skipped lines are reported in a \
                 summary every {SKIP_SUMMARY_INTERVAL} lines"
            ));
        }
        if self.unreported == 0 {
            self.unreported_first_line = line;
        }
        self.unreported += 1;
        if self.unreported < SKIP_SUMMARY_INTERVAL {
            return None;
        }
        let summary = format!("{}. Line {line} skipped: {reason}", self.summary());
        self.unreported = 0;
        Some(summary)
    }

    /// Returns a summary of the skipped lines not reported yet, if any.
    pub(super) fn finish(&mut self) -> Option<String> {
        if self.unreported == 0 {
            return None;
        }
        let summary = self.summary();
        self.unreported = 0;
        Some(summary)
    }

    /// Returns the skipped lines by kind, such as " (2 invalid, 1 too long)", or nothing
    /// when no line was skipped.
    pub(super) fn breakdown(&self) -> String {
        let kinds: Vec<String> = SKIP_KINDS
            .iter()
            .zip(self.by_kind)
            .filter(|&(_, count)| count > 0)
            .map(|(&(one, many), count)| match count {
                1 => format!("1 {one}"),
                _ => format!("{count} {many}"),
            })
            .collect();
        match kinds.is_empty() {
            true => String::new(),
            false => format!(" ({})", kinds.join(", ")),
        }
    }

    fn summary(&self) -> String {
        format!(
            "{} skipped, lines {} to {}",
            counted(self.unreported, "more line"),
            self.unreported_first_line,
            self.last_line
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn breakdown_counts_each_kind() {
        let mut log = SkipLog::default();
        assert_eq!(log.breakdown(), "");

        let time = DateTime::<Utc>::UNIX_EPOCH;
        let outlier = SkipReason::TimeOutlier {
            time,
            previous: time,
        };
        log.record(1, &outlier);
        log.record(2, &SkipReason::Invalid(access_log::ParseError::Empty));
        log.record(3, &outlier);
        assert_eq!(log.breakdown(), " (1 invalid, 2 time outliers)");
    }

    #[test]
    fn skip_log_details_then_summaries() {
        let mut log = SkipLog::default();
        let reason = SkipReason::Invalid(access_log::ParseError::Empty);
        let mut notices = Vec::new();
        for line in 1..=25_150 {
            notices.extend(log.record(line, &reason));
        }
        notices.extend(log.finish());
        assert_eq!(notices.len(), 100 + 2 + 1);
        assert_eq!(notices[0], "line 1 skipped: empty line");
        assert!(notices[99].starts_with("line 100 skipped: empty line. Further"));
        assert_eq!(
            notices[100],
            "10000 more lines skipped, lines 101 to 10100. Line 10100 skipped: empty line"
        );
        assert_eq!(
            notices[101],
            "10000 more lines skipped, lines 10101 to 20100. Line 20100 skipped: empty line"
        );
        assert_eq!(
            notices[102],
            "5050 more lines skipped, lines 20101 to 25150"
        );
        assert_eq!(log.total, 25_150);
    }
}
