//! The sweep schedule: fixed rate from an anchor, like an interval job. Owned by the
//! engine worker.
//!
//! Sweeps are due at `anchor + k * interval`. A manual sweep does not move the schedule.
//! When the worker was busy past one or more due times, one sweep runs late and the
//! schedule moves on to the next due time after now, so missed sweeps never run as a
//! burst.

use std::time::Duration;

use super::clock::MonoTime;

/// A due sweep that is about to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DueSweep {
    /// When the earliest missed sweep was due.
    pub due: MonoTime,
    /// How long after `due` it starts.
    pub late_by: Duration,
    /// How many further due times passed while the worker was busy; they are skipped.
    pub skipped: u64,
}

/// Fixed-rate sweep schedule.
#[derive(Debug, Clone)]
pub struct Schedule {
    anchor: MonoTime,
    interval: Duration,
    next_due: MonoTime,
}

impl Schedule {
    /// Creates a schedule whose first sweep is due one `interval` after `anchor`.
    ///
    /// # Panics
    /// Panics when `interval` is zero.
    pub fn new(anchor: MonoTime, interval: Duration) -> Self {
        assert!(!interval.is_zero(), "sweep interval must be above zero");
        Schedule {
            anchor,
            interval,
            next_due: anchor + interval,
        }
    }

    /// Returns the interval between sweeps.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Returns when the next sweep is due.
    pub fn next_due(&self) -> MonoTime {
        self.next_due
    }

    /// Returns the time left until the next sweep, zero once it is due.
    pub fn until_due(&self, now: MonoTime) -> Duration {
        self.next_due - now
    }

    /// Returns the due sweep at `now`, if any, and moves the schedule to the first due
    /// time after `now`.
    pub fn take_due(&mut self, now: MonoTime) -> Option<DueSweep> {
        if now < self.next_due {
            return None;
        }
        let due = self.next_due;
        let periods_passed = (now - self.anchor).as_nanos() / self.interval.as_nanos();
        let next_due = self.due_after_periods(periods_passed + 1);
        // `due` itself is one of the periods that passed, so it is not counted as skipped.
        let periods_due = (next_due - due).as_nanos() / self.interval.as_nanos();
        self.next_due = next_due;
        Some(DueSweep {
            due,
            late_by: now - due,
            skipped: u64::try_from(periods_due.saturating_sub(1)).unwrap_or(u64::MAX),
        })
    }

    /// Returns the latest due time at or before `at`, or `None` when no sweep is due by
    /// then.
    pub fn latest_due_by(&self, at: MonoTime) -> Option<MonoTime> {
        if at < self.next_due {
            return None;
        }
        let periods = (at - self.anchor).as_nanos() / self.interval.as_nanos();
        Some(self.due_after_periods(periods))
    }

    /// Returns `anchor + periods * interval`, saturating at the end of time. The count is
    /// 128 bits wide, so a short interval after a long jump never stops the schedule.
    fn due_after_periods(&self, periods: u128) -> MonoTime {
        let nanos = self.interval.as_nanos().saturating_mul(periods);
        let seconds = u64::try_from(nanos / 1_000_000_000).unwrap_or(u64::MAX);
        let subsec = (nanos % 1_000_000_000) as u32;
        self.anchor + Duration::new(seconds, subsec)
    }

    /// Changes the interval; the new schedule is anchored at `now`.
    ///
    /// # Panics
    /// Panics when `interval` is zero.
    pub fn set_interval(&mut self, interval: Duration, now: MonoTime) {
        *self = Schedule::new(now, interval);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);

    fn minutes(n: u64) -> MonoTime {
        MonoTime::from_duration(MINUTE * n as u32)
    }

    #[test]
    fn first_sweep_one_interval_after_start() {
        let mut schedule = Schedule::new(minutes(0), MINUTE * 5);
        assert_eq!(schedule.next_due(), minutes(5));
        assert_eq!(schedule.take_due(minutes(4)), None);
        assert_eq!(schedule.until_due(minutes(4)), MINUTE);
    }

    #[test]
    fn on_time_sweep_keeps_fixed_rate() {
        let mut schedule = Schedule::new(minutes(0), MINUTE * 5);
        let due = schedule.take_due(minutes(5)).unwrap();
        assert_eq!(due.late_by, Duration::ZERO);
        assert_eq!(due.skipped, 0);
        assert_eq!(schedule.next_due(), minutes(10));
    }

    #[test]
    fn late_sweep_does_not_drift() {
        let mut schedule = Schedule::new(minutes(0), MINUTE * 5);
        let due = schedule.take_due(minutes(7)).unwrap();
        assert_eq!(due.late_by, MINUTE * 2);
        assert_eq!(schedule.next_due(), minutes(10));
    }

    #[test]
    fn missed_sweeps_run_once() {
        let mut schedule = Schedule::new(minutes(0), MINUTE * 5);
        let due = schedule.take_due(minutes(23)).unwrap();
        assert_eq!(due.due, minutes(5));
        assert_eq!(due.late_by, MINUTE * 18);
        assert_eq!(due.skipped, 3);
        assert_eq!(schedule.next_due(), minutes(25));
        assert_eq!(schedule.take_due(minutes(24)), None);
    }

    #[test]
    fn latest_due_by_rounds_down() {
        let schedule = Schedule::new(minutes(0), MINUTE * 5);
        assert_eq!(schedule.latest_due_by(minutes(4)), None);
        assert_eq!(schedule.latest_due_by(minutes(5)), Some(minutes(5)));
        assert_eq!(schedule.latest_due_by(minutes(23)), Some(minutes(20)));
    }

    #[test]
    fn short_interval_survives_long_jump() {
        let millisecond = Duration::from_millis(1);
        let mut schedule = Schedule::new(MonoTime::ZERO, millisecond);
        // Far more periods than fit in 32 bits.
        let later = MonoTime::from_duration(Duration::from_secs(10_000_000));
        let due = schedule.take_due(later).unwrap();
        assert_eq!(due.skipped, 9_999_999_999);
        assert_eq!(schedule.next_due(), later + millisecond);
        assert_eq!(schedule.take_due(later), None);
    }

    #[test]
    fn interval_change_reanchors() {
        let mut schedule = Schedule::new(minutes(0), MINUTE * 5);
        schedule.set_interval(MINUTE, minutes(3));
        assert_eq!(schedule.next_due(), minutes(4));
    }

    #[test]
    fn countdown_never_exceeds_interval() {
        let mut schedule = Schedule::new(minutes(0), MINUTE * 5);
        for now in 0..60 {
            let now = minutes(now);
            schedule.take_due(now);
            assert!(schedule.until_due(now) <= schedule.interval());
        }
    }
}
