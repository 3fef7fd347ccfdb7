//! How many engine updates the window applies in one frame. Used on the window's
//! thread.
//!
//! A frame applies updates, then brings the table's orders up to date, then draws. Both
//! of the first two grow with the map: with millions of rows, a sweep's updates of
//! 4,096 removals each take milliseconds to apply, and the orders as long again. So the
//! time for updates is what the frame's budget leaves after the orders' latest cost,
//! and an update that would likely overrun it waits for the next frame.

use std::time::{Duration, Instant};

/// Time per frame for applying updates and bringing the table's orders up to date.
pub const FRAME_WORK_BUDGET: Duration = Duration::from_millis(10);

/// Time for applying updates in every frame, however long the orders take, so the
/// window keeps catching up.
pub const MIN_DRAIN: Duration = Duration::from_millis(2);

/// Paces the updates of each frame by what updates and orders cost before.
#[derive(Debug, Default)]
pub struct DrainPacer {
    /// Maximum time one update took in the latest frame that applied any.
    update_cost: Duration,
}

impl DrainPacer {
    /// Applies updates from `next` with `apply` while they fit the frame: always one,
    /// then more while the time spent plus the longest update seen stays within the
    /// budget left after `refresh_cost`. Returns how many it applied.
    pub fn drain<U>(
        &mut self,
        refresh_cost: Duration,
        next: impl FnMut() -> Option<U>,
        apply: impl FnMut(U),
    ) -> usize {
        let started = Instant::now();
        self.drain_timed(refresh_cost, next, apply, || started.elapsed())
    }

    /// Does what [`DrainPacer::drain`] does, reading the time spent from `elapsed`.
    fn drain_timed<U>(
        &mut self,
        refresh_cost: Duration,
        mut next: impl FnMut() -> Option<U>,
        mut apply: impl FnMut(U),
        elapsed: impl Fn() -> Duration,
    ) -> usize {
        let budget = FRAME_WORK_BUDGET
            .saturating_sub(refresh_cost)
            .max(MIN_DRAIN);
        let mut longest = Duration::ZERO;
        let mut applied = 0;
        while applied == 0 || elapsed() + self.update_cost.max(longest) <= budget {
            let Some(update) = next() else {
                break;
            };
            let update_started = elapsed();
            apply(update);
            longest = longest.max(elapsed() - update_started);
            applied += 1;
        }
        if applied > 0 {
            self.update_cost = longest;
        }
        applied
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    /// Applies updates that each take `cost` on a simulated clock from an endless source.
    fn drain_costly(pacer: &mut DrainPacer, refresh_cost: Duration, cost: Duration) -> usize {
        let spent = Cell::new(Duration::ZERO);
        pacer.drain_timed(
            refresh_cost,
            || Some(()),
            |()| spent.set(spent.get() + cost),
            || spent.get(),
        )
    }

    #[test]
    fn slow_orders_leave_less_time() {
        let mut pacer = DrainPacer::default();
        let cost = Duration::from_millis(1);
        assert_eq!(drain_costly(&mut pacer, Duration::ZERO, cost), 10);
        assert_eq!(drain_costly(&mut pacer, Duration::from_millis(7), cost), 3);
        assert_eq!(drain_costly(&mut pacer, Duration::from_secs(1), cost), 2);
    }

    #[test]
    fn update_that_would_overrun_waits() {
        let mut pacer = DrainPacer::default();
        let cost = Duration::from_millis(4);
        // 4ms, 8ms: a third would end at 12ms, past the 10ms budget.
        assert_eq!(drain_costly(&mut pacer, Duration::ZERO, cost), 2);
    }

    #[test]
    fn one_update_applies_even_when_over_budget() {
        let mut pacer = DrainPacer::default();
        let slow = Duration::from_millis(12);
        assert_eq!(drain_costly(&mut pacer, Duration::ZERO, slow), 1);
        assert_eq!(drain_costly(&mut pacer, Duration::from_secs(1), slow), 1);
    }

    #[test]
    fn stops_when_updates_run_out() {
        let mut pacer = DrainPacer::default();
        let mut left = 3;
        let applied = pacer.drain(
            Duration::ZERO,
            || {
                left -= 1;
                (left >= 0).then_some(())
            },
            |()| {},
        );
        assert_eq!(applied, 3);
    }
}
