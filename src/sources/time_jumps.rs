//! Detection of log lines whose time is far from the lines around them, for replay.
//! [`OpeningEra`] runs once when a replay opens its file. The replay thread then owns a
//! [`JumpFilter`] and passes each valid line through it in file order.
//!
//! A log can contain a line stamped years away from its neighbours: a broken clock, a
//! corrupted field, or a line from another file pasted in. Replayed as it is, one such
//! line moves the engine's log-time clock by years and expires every session at once.
//! A log can also have a real gap, when the server was down for a week.
//!
//! [`JumpFilter`] separates the two by the lines that follow. A line more than the maximum
//! jump away from the last accepted line is kept back as a suspect. When
//! [`CONFIRMING_LINES`] suspects in a row lie within the maximum jump of one another, the
//! log really moved there: they are accepted and the jump is reported. A line near the
//! accepted time contradicts the suspects before it, so they are outliers. Lines of two
//! eras that alternate therefore never confirm a jump, and the era in effect keeps
//! winning. At the end of the input nothing can contradict the last suspects any more,
//! so the trailing ones that agree with one another are accepted as a jump, unless lines
//! of their era were contradicted before.
//!
//! The filter accepts the first line it is given. [`OpeningEra`] chooses that line from
//! the file's first lines by majority, so a few stray lines at the start cannot fix the
//! clock.

use chrono::{DateTime, TimeDelta, Utc};

/// Suspects in a row, with no accepted line between them, that confirm a jump.
pub const CONFIRMING_LINES: usize = 3;

/// Maximum number of suspects kept back. Older ones beyond it are outliers.
const MAX_SUSPECTS: usize = 64;

/// Valid lines at the start of a file that decide the era the replay starts in.
pub const OPENING_LINES: usize = 15;

/// A decision of the filter about one or more lines.
#[derive(Debug, PartialEq)]
pub enum Decision<T> {
    /// A line to replay.
    Accept(T),
    /// A line more than the maximum jump from the line accepted before it, which the
    /// lines after it do not confirm. Carries the time of that accepted line.
    Outlier(T, DateTime<Utc>),
    /// The log's time moved from `from` to `to`. The lines of the new time follow as
    /// [`Decision::Accept`].
    Jump {
        /// Time of the last line accepted before the jump.
        from: DateTime<Utc>,
        /// Time of the first line accepted after the jump.
        to: DateTime<Utc>,
        /// Evidence that the log moved.
        evidence: Evidence,
    },
}

/// Evidence that the log's time really jumped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Evidence {
    /// [`CONFIRMING_LINES`] lines in a row agree on the new time.
    Confirmed,
    /// The input ended with `lines` lines that agree on the new time, too few to
    /// confirm it, and no later line contradicts them.
    EndOfInput {
        /// Lines accepted at the new time.
        lines: usize,
    },
}

/// Sorts lines, in file order, into accepted lines and outliers.
#[derive(Debug)]
pub struct JumpFilter<T> {
    max_jump: TimeDelta,
    /// Time of the last accepted line.
    accepted: Option<DateTime<Utc>>,
    /// Lines far from `accepted`, in file order. No accepted line came after any of them.
    suspects: Vec<(DateTime<Utc>, T)>,
    /// Time of the last suspect that a line near the accepted time contradicted, since the
    /// last jump.
    contradicted: Option<DateTime<Utc>>,
}

impl<T> JumpFilter<T> {
    /// Creates a filter that keeps back lines more than `max_jump` away from the last
    /// accepted line.
    pub fn new(max_jump: TimeDelta) -> Self {
        JumpFilter {
            max_jump,
            accepted: None,
            suspects: Vec::new(),
            contradicted: None,
        }
    }

    fn near(&self, a: DateTime<Utc>, b: DateTime<Utc>) -> bool {
        (a - b).abs() <= self.max_jump
    }

    /// Takes the next line in file order and passes the decisions it allows to `out`.
    pub fn push(&mut self, time: DateTime<Utc>, line: T, out: &mut impl FnMut(Decision<T>)) {
        let Some(accepted) = self.accepted else {
            self.accepted = Some(time);
            out(Decision::Accept(line));
            return;
        };
        if self.near(time, accepted) {
            if let Some(&(last, _)) = self.suspects.last() {
                self.contradicted = Some(last);
                self.reject_suspects(self.suspects.len(), out);
            }
            self.accepted = Some(time);
            out(Decision::Accept(line));
            return;
        }

        self.suspects.push((time, line));
        let count = self.suspects.len();
        if count >= CONFIRMING_LINES && self.agree_from(count - CONFIRMING_LINES) {
            self.jump(count - CONFIRMING_LINES, Evidence::Confirmed, out);
            return;
        }
        if count > MAX_SUSPECTS {
            self.reject_suspects(count - MAX_SUSPECTS, out);
        }
    }

    /// Ends the input. The last suspects that agree with the first of them, as many as
    /// possible, are accepted as a jump, because no line after them contradicts it.
    /// Earlier suspects are outliers unless they agree with those too. When a suspect near
    /// them was contradicted before, the two eras alternate, so they are outliers too.
    pub fn finish(&mut self, out: &mut impl FnMut(Decision<T>)) {
        let Some(start) = (0..self.suspects.len()).find(|&start| self.agree_from(start)) else {
            return;
        };
        let anchor = self.suspects[start].0;
        if self
            .contradicted
            .is_some_and(|contradicted| self.near(contradicted, anchor))
        {
            self.reject_suspects(self.suspects.len(), out);
            return;
        }
        let lines = self
            .suspects
            .iter()
            .filter(|&&(time, _)| self.near(time, anchor))
            .count();
        self.jump(start, Evidence::EndOfInput { lines }, out);
    }

    /// Returns whether every suspect from `start` on lies within the maximum jump of the
    /// suspect at `start`.
    fn agree_from(&self, start: usize) -> bool {
        let anchor = self.suspects[start].0;
        self.suspects[start..]
            .iter()
            .all(|&(time, _)| self.near(time, anchor))
    }

    /// Moves the accepted time to the run of suspects that starts at `run_start`. Earlier
    /// suspects near that run are accepted with it, and the others are outliers.
    fn jump(&mut self, run_start: usize, evidence: Evidence, out: &mut impl FnMut(Decision<T>)) {
        let Some(from) = self.accepted else {
            return;
        };
        let anchor = self.suspects[run_start].0;
        let max_jump = self.max_jump;
        let mut suspects = std::mem::take(&mut self.suspects);
        for (_, line) in suspects.extract_if(.., |(time, _)| (*time - anchor).abs() > max_jump) {
            out(Decision::Outlier(line, from));
        }
        if let Some(&(to, _)) = suspects.first() {
            out(Decision::Jump { from, to, evidence });
        }
        self.contradicted = None;
        for (time, line) in suspects.drain(..) {
            self.accepted = Some(time);
            out(Decision::Accept(line));
        }
        self.suspects = suspects;
    }

    fn reject_suspects(&mut self, count: usize, out: &mut impl FnMut(Decision<T>)) {
        let Some(accepted) = self.accepted else {
            return;
        };
        for (_, line) in self.suspects.drain(..count) {
            out(Decision::Outlier(line, accepted));
        }
    }
}

/// The era that most of a file's opening lines agree on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OpeningEra {
    /// Time of the opening line with the most opening lines within the maximum jump of
    /// it. Of lines with equal counts, the earliest in the file.
    pub anchor: DateTime<Utc>,
    /// Index of the first opening line within the maximum jump of the anchor.
    pub first: usize,
    /// Index of the last opening line within the maximum jump of the anchor.
    last: usize,
    max_jump: TimeDelta,
}

impl OpeningEra {
    /// Finds the era of the opening lines, given their times in file order. Returns
    /// `None` when there are none.
    pub fn find(times: &[DateTime<Utc>], max_jump: TimeDelta) -> Option<OpeningEra> {
        let near = |a: DateTime<Utc>, b: DateTime<Utc>| (a - b).abs() <= max_jump;
        let mut anchor: Option<(DateTime<Utc>, usize)> = None;
        for &candidate in times {
            let neighbours = times.iter().filter(|&&time| near(time, candidate)).count();
            if anchor.is_none_or(|(_, most)| neighbours > most) {
                anchor = Some((candidate, neighbours));
            }
        }
        let (anchor, _) = anchor?;
        let first = times.iter().position(|&time| near(time, anchor))?;
        let last = times.iter().rposition(|&time| near(time, anchor))?;
        Some(OpeningEra {
            anchor,
            first,
            last,
            max_jump,
        })
    }

    /// Returns whether the opening line at `index`, stamped `time`, is an outlier: it
    /// lies outside the era, and a later opening line of the era contradicts it. Lines
    /// after the era's last opening line are not outliers here, because the lines after
    /// them may still confirm a jump.
    pub fn is_outlier(&self, index: usize, time: DateTime<Utc>) -> bool {
        index < self.last && (time - self.anchor).abs() > self.max_jump
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn day(n: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap() + TimeDelta::days(n)
    }

    /// Runs the lines through a filter with a maximum jump of one day and returns the
    /// decisions as text: `+N` accepted, `xN` outlier, `jump` a confirmed jump and `end`
    /// a jump at the end of the input.
    fn decide(times: &[DateTime<Utc>]) -> Vec<String> {
        let mut filter = JumpFilter::new(TimeDelta::days(1));
        let mut decisions = Vec::new();
        let mut out = |decision: Decision<usize>| {
            decisions.push(match decision {
                Decision::Accept(n) => format!("+{n}"),
                Decision::Outlier(n, _) => format!("x{n}"),
                Decision::Jump {
                    evidence: Evidence::Confirmed,
                    ..
                } => "jump".into(),
                Decision::Jump {
                    evidence: Evidence::EndOfInput { lines },
                    ..
                } => format!("end of {lines}"),
            });
        };
        for (n, &time) in times.iter().enumerate() {
            filter.push(time, n, &mut out);
        }
        filter.finish(&mut out);
        decisions
    }

    #[test]
    fn close_lines_pass() {
        assert_eq!(decide(&[day(0), day(0), day(1)]), ["+0", "+1", "+2"]);
    }

    #[test]
    fn single_far_line_is_an_outlier() {
        let far = Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).unwrap();
        let early = Utc.with_ymd_and_hms(1, 1, 1, 0, 0, 0).unwrap();
        assert_eq!(
            decide(&[day(0), far, day(0), day(0), early, day(0), day(0), day(0)]),
            ["+0", "x1", "+2", "+3", "x4", "+5", "+6", "+7"]
        );
    }

    #[test]
    fn far_lines_at_the_end_are_a_jump() {
        assert_eq!(
            decide(&[day(0), day(0), day(30)]),
            ["+0", "+1", "end of 1", "+2"]
        );
        assert_eq!(
            decide(&[day(0), day(30), day(30)]),
            ["+0", "end of 2", "+1", "+2"]
        );
    }

    #[test]
    fn disagreeing_lines_at_the_end() {
        // The line of day 30 disagrees with the line after it, so only the last is a jump.
        assert_eq!(
            decide(&[day(0), day(30), day(60)]),
            ["+0", "x1", "end of 1", "+2"]
        );
        // A stray between two lines that agree does not split them.
        assert_eq!(
            decide(&[day(0), day(30), day(90), day(30)]),
            ["+0", "x2", "end of 2", "+1", "+3"]
        );
    }

    #[test]
    fn contradicted_line_at_the_end_is_an_outlier() {
        assert_eq!(decide(&[day(0), day(30), day(0)]), ["+0", "x1", "+2"]);
    }

    #[test]
    fn confirmed_gap_is_a_jump() {
        assert_eq!(
            decide(&[day(0), day(10), day(10), day(10), day(10)]),
            ["+0", "jump", "+1", "+2", "+3", "+4"]
        );
    }

    #[test]
    fn stray_before_a_real_gap_is_an_outlier() {
        assert_eq!(
            decide(&[day(0), day(400), day(10), day(10), day(10)]),
            ["+0", "x1", "jump", "+2", "+3", "+4"]
        );
    }

    #[test]
    fn alternating_eras_never_jump() {
        let mut times = Vec::new();
        for _ in 0..10 {
            times.push(day(0));
            times.push(day(2000));
        }
        let decisions = decide(&times);
        let accepted = decisions.iter().filter(|d| d.starts_with('+')).count();
        let outliers = decisions.iter().filter(|d| d.starts_with('x')).count();
        assert_eq!(accepted, 10, "{decisions:?}");
        // The last line of the other era ends the input, but lines of its era were
        // contradicted before.
        assert_eq!(outliers, 10, "{decisions:?}");
        assert_eq!(decisions.last().unwrap(), "x19");
    }

    #[test]
    fn interleaved_line_breaks_a_run() {
        // Two lines of day 10, a line of day 0 between them, then one more of day 10.
        assert_eq!(
            decide(&[day(0), day(10), day(0), day(10), day(10), day(0)]),
            ["+0", "x1", "+2", "x3", "x4", "+5"]
        );
    }

    #[test]
    fn suspects_are_bounded() {
        // Far lines, each far from the line before it, with no close line between them.
        let mut times = vec![day(0)];
        times.extend((0..200).map(|n| day(10 * (n + 2))));
        let mut filter = JumpFilter::new(TimeDelta::days(1));
        let mut outliers = 0;
        let mut jumps = 0;
        let mut count = |decision: Decision<usize>| match decision {
            Decision::Outlier(..) => outliers += 1,
            Decision::Jump { .. } => jumps += 1,
            Decision::Accept(_) => {}
        };
        for (n, &time) in times.iter().enumerate() {
            filter.push(time, n, &mut count);
            assert!(filter.suspects.len() <= MAX_SUSPECTS);
        }
        filter.finish(&mut count);
        assert_eq!(outliers, 199);
        assert_eq!(jumps, 1);
    }

    /// Returns the opening era of `times` as the anchor's day and the outliers' indexes.
    fn opening(times: &[DateTime<Utc>]) -> (i64, Vec<usize>) {
        let era = OpeningEra::find(times, TimeDelta::days(1)).unwrap();
        let outliers = times
            .iter()
            .enumerate()
            .filter(|&(index, &time)| era.is_outlier(index, time))
            .map(|(index, _)| index)
            .collect();
        ((era.anchor - day(0)).num_days(), outliers)
    }

    #[test]
    fn opening_majority_wins() {
        let mut times = vec![day(900); 3];
        times.extend([day(0); 5]);
        assert_eq!(opening(&times), (0, vec![0, 1, 2]));
        let era = OpeningEra::find(&times, TimeDelta::days(1)).unwrap();
        assert_eq!(era.first, 3);
    }

    #[test]
    fn opening_minority_between_majority_lines() {
        let times = [day(0), day(900), day(900), day(0), day(0)];
        assert_eq!(opening(&times), (0, vec![1, 2]));
    }

    #[test]
    fn opening_tail_left_to_filter() {
        let times = [day(0), day(0), day(0), day(7), day(7)];
        assert_eq!(opening(&times), (0, vec![]));
    }

    #[test]
    fn opening_tie_goes_to_the_first_line() {
        assert_eq!(opening(&[day(0), day(900)]), (0, vec![]));
        assert_eq!(
            opening(&[day(900), day(0), day(0), day(900)]),
            (900, vec![1, 2])
        );
    }

    #[test]
    fn opening_of_no_lines() {
        assert_eq!(OpeningEra::find(&[], TimeDelta::days(1)), None);
    }
}
