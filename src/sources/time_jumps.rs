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
//! [`CONFIRMING_LINES`] suspects in a row lie within the maximum jump of one another,
//! the log really moved there: they are accepted and the jump is reported. When that
//! many lines near the accepted time arrive first, or the file ends, the suspects are
//! outliers.
//!
//! The filter accepts the first line it is given. [`OpeningEra`] chooses that line from
//! the file's first lines by majority, so a few stray lines at the start cannot fix the
//! clock.

use chrono::{DateTime, TimeDelta, Utc};

/// Lines near one another that confirm a jump, or lines near the accepted time that
/// reject the suspects.
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
    /// A line far from the lines around it, to skip. Carries the accepted time at the
    /// moment it was found to be an outlier.
    Outlier(T, DateTime<Utc>),
    /// The log's time moved from `from` to `to`, confirmed by the lines after it. The
    /// lines of the new time follow as [`Decision::Accept`].
    Jump {
        /// Time of the last line accepted before the jump.
        from: DateTime<Utc>,
        /// Time of the first confirming line.
        to: DateTime<Utc>,
    },
}

/// Sorts lines, in file order, into accepted lines and outliers.
#[derive(Debug)]
pub struct JumpFilter<T> {
    max_jump: TimeDelta,
    /// Time of the last accepted line.
    accepted: Option<DateTime<Utc>>,
    suspects: Vec<(DateTime<Utc>, T)>,
    /// Lines accepted since the last suspect.
    accepted_since_suspect: usize,
}

impl<T> JumpFilter<T> {
    /// Creates a filter that keeps back lines more than `max_jump` away from the last
    /// accepted line.
    pub fn new(max_jump: TimeDelta) -> Self {
        JumpFilter {
            max_jump,
            accepted: None,
            suspects: Vec::new(),
            accepted_since_suspect: 0,
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
            self.accepted = Some(time);
            out(Decision::Accept(line));
            if !self.suspects.is_empty() {
                self.accepted_since_suspect += 1;
                if self.accepted_since_suspect >= CONFIRMING_LINES {
                    self.reject_suspects(self.suspects.len(), out);
                }
            }
            return;
        }

        self.suspects.push((time, line));
        self.accepted_since_suspect = 0;
        let count = self.suspects.len();
        if count >= CONFIRMING_LINES {
            let run = &self.suspects[count - CONFIRMING_LINES..];
            let anchor = run[0].0;
            if run.iter().all(|&(time, _)| self.near(time, anchor)) {
                self.reject_suspects(count - CONFIRMING_LINES, out);
                out(Decision::Jump {
                    from: accepted,
                    to: anchor,
                });
                for (time, line) in self.suspects.drain(..) {
                    self.accepted = Some(time);
                    out(Decision::Accept(line));
                }
                return;
            }
        }
        if count > MAX_SUSPECTS {
            self.reject_suspects(count - MAX_SUSPECTS, out);
        }
    }

    /// Ends the input: suspects that no later line confirmed are outliers.
    pub fn finish(&mut self, out: &mut impl FnMut(Decision<T>)) {
        self.reject_suspects(self.suspects.len(), out);
    }

    fn reject_suspects(&mut self, count: usize, out: &mut impl FnMut(Decision<T>)) {
        let accepted = self.accepted.unwrap_or(DateTime::<Utc>::UNIX_EPOCH);
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
    /// decisions as text: `+N` accepted, `xN` outlier, `jump` a confirmed jump.
    fn decide(times: &[DateTime<Utc>]) -> Vec<String> {
        let mut filter = JumpFilter::new(TimeDelta::days(1));
        let mut decisions = Vec::new();
        let mut out = |decision: Decision<usize>| {
            decisions.push(match decision {
                Decision::Accept(n) => format!("+{n}"),
                Decision::Outlier(n, _) => format!("x{n}"),
                Decision::Jump { .. } => "jump".into(),
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
            ["+0", "+2", "+3", "+5", "+6", "+7", "x1", "x4"]
        );
    }

    #[test]
    fn far_line_at_the_end_is_an_outlier() {
        assert_eq!(decide(&[day(0), day(0), day(30)]), ["+0", "+1", "x2"]);
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
    fn suspects_are_bounded() {
        let mut times = vec![day(0)];
        // Far lines, each far from the others, with one close line between them.
        for n in 0..200 {
            times.push(day(10 * (n + 2)));
            times.push(day(0));
        }
        let mut filter = JumpFilter::new(TimeDelta::days(1));
        let mut outliers = 0;
        for (n, &time) in times.iter().enumerate() {
            filter.push(time, n, &mut |decision| {
                outliers += usize::from(matches!(decision, Decision::Outlier(..)));
            });
            assert!(filter.suspects.len() <= MAX_SUSPECTS);
        }
        filter.finish(&mut |_| outliers += 1);
        assert_eq!(outliers, 200);
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
    fn opening_lines_after_the_era_are_left_to_the_filter() {
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
