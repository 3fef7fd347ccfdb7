//! Detection of wall-clock jumps: the wall clock (`SystemTime`) compared with the
//! monotonic clock (`Instant`). Owned by the engine worker, which logs each jump.
//!
//! Expiry never reads the wall clock, so a jump changes no session's age. A jump still
//! deserves a log line: times shown and exported are wall-clock times, and an operator
//! reading the log needs to know why they leap. Time spent suspended shows up here as
//! a forward jump, because `Instant` stops during suspend on Linux (`CLOCK_MONOTONIC`)
//! and macOS (`CLOCK_UPTIME_RAW`) while the wall clock keeps going.
//! TODO: check whether `Instant` on Windows (QueryPerformanceCounter) stops during
//! suspend too; if it does not, suspended time counts as idle time there.

use std::time::{Duration, Instant, SystemTime};

/// A disagreement between the wall clock and the monotonic clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockJump {
    /// Whether the wall clock moved ahead of monotonic time (a forward change, or time
    /// spent suspended) rather than behind it.
    pub ahead: bool,
    /// Size of the disagreement, to the nearest second. The two clocks are read one
    /// after the other, so finer digits would only show the time between the reads.
    pub by: Duration,
}

/// Compares the two clocks between checks.
#[derive(Debug, Clone)]
pub struct ClockWatch {
    tolerance: Duration,
    mono: Instant,
    wall: SystemTime,
}

impl ClockWatch {
    /// Disagreements up to this much are drift or scheduling noise.
    pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(2);

    /// Starts watching from the given readings of both clocks.
    pub fn new(tolerance: Duration, mono: Instant, wall: SystemTime) -> Self {
        ClockWatch {
            tolerance,
            mono,
            wall,
        }
    }

    /// Compares the time each clock advanced since the previous check. Returns the jump
    /// when they disagree by more than the tolerance, then measures from these readings.
    pub fn check(&mut self, mono: Instant, wall: SystemTime) -> Option<ClockJump> {
        let mono_elapsed = mono.saturating_duration_since(self.mono);
        let jump = match wall.duration_since(self.wall) {
            Ok(wall_elapsed) if wall_elapsed >= mono_elapsed => ClockJump {
                ahead: true,
                by: wall_elapsed - mono_elapsed,
            },
            Ok(wall_elapsed) => ClockJump {
                ahead: false,
                by: mono_elapsed - wall_elapsed,
            },
            Err(backwards) => ClockJump {
                ahead: false,
                by: mono_elapsed.saturating_add(backwards.duration()),
            },
        };
        self.mono = mono;
        self.wall = wall;
        (jump.by > self.tolerance).then_some(ClockJump {
            by: nearest_second(jump.by),
            ..jump
        })
    }
}

fn nearest_second(span: Duration) -> Duration {
    let round_up = span.subsec_nanos() >= 500_000_000;
    Duration::from_secs(span.as_secs().saturating_add(u64::from(round_up)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    fn watch() -> (ClockWatch, Instant, SystemTime) {
        let mono = Instant::now();
        let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        (
            ClockWatch::new(ClockWatch::DEFAULT_TOLERANCE, mono, wall),
            mono,
            wall,
        )
    }

    #[test]
    fn steady_clocks_report_nothing() {
        let (mut watch, mono, wall) = watch();
        assert_eq!(watch.check(mono + SECOND * 10, wall + SECOND * 10), None);
        assert_eq!(watch.check(mono + SECOND * 11, wall + SECOND * 12), None);
    }

    #[test]
    fn forward_jump_is_reported() {
        let (mut watch, mono, wall) = watch();
        let jump = watch.check(mono + SECOND, wall + SECOND * 3601).unwrap();
        assert!(jump.ahead);
        assert_eq!(jump.by, SECOND * 3600);
    }

    #[test]
    fn backward_jump_is_reported() {
        let (mut watch, mono, wall) = watch();
        let jump = watch.check(mono + SECOND * 5, wall - SECOND * 600).unwrap();
        assert!(!jump.ahead);
        assert_eq!(jump.by, SECOND * 605);
    }

    #[test]
    fn jump_is_rounded_to_seconds() {
        let (mut watch, mono, wall) = watch();
        let read_gap = Duration::from_millis(3);
        let jump = watch.check(mono + SECOND, wall + SECOND * 3601 - read_gap);
        assert_eq!(jump.unwrap().by, SECOND * 3600);
    }

    #[test]
    fn jump_is_reported_once() {
        let (mut watch, mono, wall) = watch();
        assert!(watch.check(mono + SECOND, wall + SECOND * 100).is_some());
        assert_eq!(watch.check(mono + SECOND * 2, wall + SECOND * 101), None);
    }

    #[test]
    fn huge_jumps_do_not_panic() {
        let (mut watch, mono, _) = watch();
        let jump = watch.check(mono + SECOND, SystemTime::UNIX_EPOCH).unwrap();
        assert!(!jump.ahead);
        let far = SystemTime::UNIX_EPOCH + Duration::from_secs(u64::MAX / 4);
        let jump = watch.check(mono + SECOND * 2, far).unwrap();
        assert!(jump.ahead);
    }
}
