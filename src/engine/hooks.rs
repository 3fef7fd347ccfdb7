//! Faults that tests inject into the engine worker: panicking, slow or gated sweeps.
//! Compiled only with the `test-hooks` feature, so release builds carry none of it.

use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};

/// Faults for the worker to inject, shared between a test and the engine.
#[derive(Debug, Default)]
pub struct TestHooks {
    /// Counts sweep steps down to a panic: 1 makes the next step panic before it removes
    /// anything, 2 the one after, and 0 turns the fault off.
    pub sweep_step_panic_countdown: AtomicU32,
    /// Real time each sweep step sleeps before it removes sessions, in microseconds.
    pub sweep_step_delay_micros: AtomicU64,
    /// Seconds added to the wall clock as the worker reads it, to fake a wall-clock jump.
    pub wall_clock_skew_secs: AtomicI64,
    /// When set, the worker sends on the first sender as a sweep starts and then waits on
    /// the receiver before the sweep's first step, so a test can act mid-sweep.
    pub sweep_gate: Option<(Sender<()>, Receiver<()>)>,
}

impl TestHooks {
    /// Runs at the start of each sweep.
    pub(crate) fn on_sweep_start(&self) {
        if let Some((started, release)) = &self.sweep_gate {
            let _ = started.send(());
            let _ = release.recv();
        }
    }

    /// Returns the wall clock as the worker sees it, with the injected skew.
    pub(crate) fn skew_wall(&self, wall: std::time::SystemTime) -> std::time::SystemTime {
        let skew = self.wall_clock_skew_secs.load(Ordering::SeqCst);
        let span = Duration::from_secs(skew.unsigned_abs());
        if skew >= 0 { wall + span } else { wall - span }
    }

    /// Runs before each sweep step removes sessions.
    pub(crate) fn before_sweep_step(&self) {
        let delay = self.sweep_step_delay_micros.load(Ordering::SeqCst);
        if delay > 0 {
            std::thread::sleep(Duration::from_micros(delay));
        }
        let countdown = self.sweep_step_panic_countdown.load(Ordering::SeqCst);
        if countdown > 0 {
            self.sweep_step_panic_countdown
                .store(countdown - 1, Ordering::SeqCst);
            if countdown == 1 {
                panic!("injected sweep failure");
            }
        }
    }
}
