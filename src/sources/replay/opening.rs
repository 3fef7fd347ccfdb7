//! Reading at start-up, before the replay thread runs: the file's opening lines, the era
//! most of them agree on, and the clock's origin that follows from it.

use std::fs::File;
use std::path::Path;

use chrono::{DateTime, TimeDelta, Utc};

use super::line_reader::{LineReader, ReadLine};
use super::skips::{SkipLog, SkipReason};
use super::{
    PendingLine, ReplayError, YEARS, clock_limit, clock_origin, max_time_jump, parse_pending,
};
use crate::count::counted;
use crate::sources::access_log::IdCache;
use crate::sources::time_jumps::{OPENING_LINES, OpeningEra};

/// Bytes read at start-up while looking for the first valid line, before giving up.
const MAX_SCAN_FOR_FIRST_LINE: u64 = 256 * 1024 * 1024;

/// Skipped lines among the opening lines whose notices wait until the opening era is
/// known, so that notices keep line order. Reaching it ends the opening early, which
/// bounds the memory a file of mostly invalid lines takes.
const MAX_OPENING_SKIPS: usize = 1024;

/// The opening lines that the replay thread passes on first, and the clock's origin.
#[derive(Debug)]
pub(super) struct Opening {
    /// Valid opening lines that are not outliers, in file order. The first is in the
    /// opening era and fixes the origin.
    pub(super) lines: Vec<PendingLine>,
    /// Wall time of engine time zero.
    pub(super) origin: DateTime<Utc>,
}

/// Reading at start-up, before the replay thread runs.
pub(super) struct StartScan<'a> {
    reader: &'a mut LineReader<File>,
    ids: &'a mut IdCache,
    path: &'a Path,
    skips: &'a mut SkipLog,
    notices: &'a mut Vec<String>,
    /// The first skipped line's notice, for the error when no line is valid.
    first_rejection: Option<String>,
    /// Whether a line was skipped for a time outside [`YEARS`].
    outside_years: bool,
    /// Skipped lines whose notices wait for the opening era, once a valid line was read.
    deferred: Option<Vec<(u64, SkipReason)>>,
}

impl<'a> StartScan<'a> {
    /// Creates a scan that records skipped lines in `skips` and their notices in
    /// `notices`.
    pub(super) fn new(
        reader: &'a mut LineReader<File>,
        ids: &'a mut IdCache,
        path: &'a Path,
        skips: &'a mut SkipLog,
        notices: &'a mut Vec<String>,
    ) -> Self {
        StartScan {
            reader,
            ids,
            path,
            skips,
            notices,
            first_rejection: None,
            outside_years: false,
            deferred: None,
        }
    }

    /// Reads up to [`OPENING_LINES`] valid lines and finds the era most of them agree on.
    /// Opening lines outside that era are skipped, except those after its last opening
    /// line, which the replay thread's jump filter decides with the lines after them.
    pub(super) fn read_opening(
        mut self,
        reorder_window: TimeDelta,
    ) -> Result<Opening, ReplayError> {
        let Some(first) = self.next_valid()? else {
            return Err(self.no_lines_error());
        };
        let mut lines = vec![first];
        self.deferred = Some(Vec::new());
        while lines.len() < OPENING_LINES {
            match self.next_valid()? {
                Some(line) => lines.push(line),
                None => break,
            }
        }

        let times: Vec<DateTime<Utc>> = lines.iter().map(|line| line.time).collect();
        let Some(era) = OpeningEra::find(&times, max_time_jump()) else {
            return Err(self.no_lines_error());
        };
        let origin = clock_origin(times[era.first], reorder_window);
        let limit = clock_limit(origin);
        let mut skipped = self.deferred.take().unwrap_or_default();
        let mut kept = Vec::with_capacity(lines.len());
        for (index, line) in lines.into_iter().enumerate() {
            if !era.is_outlier(index, line.time) {
                kept.push(line);
                continue;
            }
            let reason = if line.time > limit {
                SkipReason::BeyondClock(line.time)
            } else {
                SkipReason::OpeningOutlier {
                    time: line.time,
                    era: era.anchor,
                }
            };
            skipped.push((line.number, reason));
        }
        skipped.sort_by_key(|&(number, _)| number);
        for (number, reason) in &skipped {
            self.notices.extend(self.skips.record(*number, reason));
        }
        Ok(Opening {
            lines: kept,
            origin,
        })
    }

    /// Reads up to the next valid line. Returns `None` at the end of the file, after
    /// [`MAX_SCAN_FOR_FIRST_LINE`] bytes without a line ending (as `/dev/zero` gives), or
    /// when [`MAX_OPENING_SKIPS`] notices wait.
    fn next_valid(&mut self) -> Result<Option<PendingLine>, ReplayError> {
        loop {
            let number = self.reader.line_number() + 1;
            let read = self
                .reader
                .next_line()
                .map_err(|source| ReplayError::Read {
                    path: self.path.to_owned(),
                    line: number,
                    source,
                })?;
            let reason = match read {
                None => return Ok(None),
                Some(ReadLine::TooLong | ReadLine::Unfinished)
                    if self.reader.bytes_read() > MAX_SCAN_FOR_FIRST_LINE =>
                {
                    return Ok(None);
                }
                Some(ReadLine::Unfinished) => continue,
                Some(ReadLine::TooLong) => SkipReason::TooLong,
                Some(ReadLine::Complete) => {
                    match parse_pending(self.reader.line(), number, self.ids) {
                        Ok(line) => return Ok(Some(line)),
                        Err(reason) => reason,
                    }
                }
            };
            self.outside_years |= matches!(reason, SkipReason::OutsideYears);
            self.first_rejection
                .get_or_insert_with(|| format!("Line {number} skipped: {reason}"));
            match &mut self.deferred {
                Some(deferred) => {
                    deferred.push((number, reason));
                    if deferred.len() >= MAX_OPENING_SKIPS {
                        return Ok(None);
                    }
                }
                None => self.notices.extend(self.skips.record(number, &reason)),
            }
        }
    }

    /// Returns the error for a file without a valid line, after reading all of it.
    fn no_lines_error(&mut self) -> ReplayError {
        let lines = counted(self.reader.line_number(), "line");
        let detail = match (self.first_rejection.take(), self.outside_years) {
            (None, _) => "the file is empty".to_owned(),
            (Some(first), false) => {
                format!("{lines} read, none in Common or Combined Log Format. {first}")
            }
            (Some(first), true) => format!(
                "{lines} read, none in Common or Combined Log Format with a time in the \
                 years {} to {}. {first}",
                YEARS.start(),
                YEARS.end()
            ),
        };
        ReplayError::NoLines {
            path: self.path.to_owned(),
            detail,
        }
    }
}
