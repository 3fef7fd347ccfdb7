//! CPU time of one window frame with 100k sessions against 100, measured with the real
//! app in the `egui_kittest` harness (layout and tessellation, no GPU).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use egui_kittest::Harness;
use session_monitor::engine::clock::{ManualClock, SharedClock};
use session_monitor::engine::session::Source;
use session_monitor::engine::{Engine, EngineConfig, no_waker};
use session_monitor::runtime::Runtime;
use session_monitor::sources::RunningSource;
use session_monitor::ui::{MonitorApp, PathPicker};

use crate::channel::{send, sync};
use crate::workload::{IDLE_TIMEOUT, keys};
use crate::{Comparison, Figure, Target};

const FRAMES: usize = 41;

pub fn compare() -> Vec<Comparison> {
    let small = frame_time(100, "report-window-small");
    let large = frame_time(100_000, "report-window-large");
    vec![
        Comparison::new(
            "window frame CPU time: 100k sessions against 100",
            Figure::Time(large),
            Figure::Time(small),
            large.as_secs_f64() / small.as_secs_f64(),
        )
        .target(Target::AtMost(2.0)),
    ]
}

/// Returns the median CPU time of a frame of the app showing `sessions` sessions, once
/// every update has been applied.
fn frame_time(sessions: usize, name: &str) -> Duration {
    let keys = keys(sessions);
    let clock = ManualClock::new(Utc::now());
    let shared: SharedClock = Arc::new(clock.clone());
    let config = EngineConfig {
        name: name.into(),
        idle_timeout: IDLE_TIMEOUT,
        sweep_interval: IDLE_TIMEOUT,
        ..EngineConfig::default()
    };
    let (engine, updates) = Engine::start(config, Arc::clone(&shared), no_waker()).unwrap();
    let all: Vec<u32> = (0..sessions as u32).collect();
    send(&engine, &keys, &all, 256);
    sync(&engine);

    let source = RunningSource::spawn(
        &format!("{name}-source"),
        Source::Api,
        "report traffic".into(),
        engine.commands(),
        shared,
        |_context| {},
    )
    .unwrap();
    let runtime = Runtime {
        engine,
        updates,
        sources: vec![source],
    };
    let picker: PathPicker = Arc::new(|_suggested: PathBuf| None);
    let app = MonitorApp::new(runtime, picker, None);
    let mut harness = Harness::builder()
        .with_size([1100.0, 700.0])
        .build_ui_state(|ui, app: &mut MonitorApp| app.show(ui), app);

    let deadline = Instant::now() + Duration::from_secs(120);
    while harness.state().rows().len() < sessions && Instant::now() < deadline {
        harness.step();
    }
    assert_eq!(harness.state().rows().len(), sessions);
    for _ in 0..5 {
        harness.step();
    }

    let mut times: Vec<Duration> = (0..FRAMES)
        .map(|_| {
            let started = Instant::now();
            harness.step();
            started.elapsed()
        })
        .collect();
    times.sort();
    let median = times[FRAMES / 2];
    harness.state_mut().shutdown();
    median
}
