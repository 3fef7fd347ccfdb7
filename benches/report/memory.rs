//! Memory of the engine and the window's mirror of its map at 1M sessions, and a sweep
//! of 2M stale sessions through the running engine.

use std::collections::HashMap;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use chrono::Utc;
use crossbeam_channel::{Receiver, RecvTimeoutError};
use session_monitor::engine::clock::{ManualClock, SharedClock};
use session_monitor::engine::event::{Command, Event, Update};
use session_monitor::engine::query::{Query, Reply};
use session_monitor::engine::session::{Session, SessionId};
use session_monitor::engine::{Engine, EngineConfig, no_waker};
use session_monitor::ui::{DrainPacer, SessionRows};

use crate::channel::{send, sync};
use crate::workload::{IDLE_TIMEOUT, PlainSession, keys};
use crate::{Comparison, Figure, Target, alloc};

const SESSIONS: usize = 1_000_000;
const MASS_SESSIONS: usize = 2_000_000;
const BATCH: usize = 256;

/// Time spent applying updates at a time while the sessions are created, before any
/// frame is timed.
const DRAIN_BUDGET: Duration = Duration::from_millis(8);
const FRAME: Duration = Duration::from_millis(16);

pub fn compare() -> Vec<Comparison> {
    let keys = keys(SESSIONS);
    let all: Vec<u32> = (0..SESSIONS as u32).collect();
    let before = alloc::live();
    let resident_before = alloc::resident();

    let (engine, updates, _clock) = start("report-memory");
    let mut rows = SessionRows::default();
    let producer = thread::scope(|scope| {
        let producer = scope.spawn(|| {
            send(&engine, &keys, &all, BATCH);
            sync(&engine);
        });
        while !producer.is_finished() {
            apply_for(&updates, &mut rows, DRAIN_BUDGET);
        }
        producer.join()
    });
    producer.expect("producer finishes");
    while apply_for(&updates, &mut rows, Duration::from_millis(200)) {}
    assert_eq!(rows.len(), SESSIONS);
    rows.sorted();

    let ours = (alloc::live() - before) as f64 / SESSIONS as f64;
    let resident = alloc::resident()
        .zip(resident_before)
        .map(|(after, before)| after.saturating_sub(before) as f64 / SESSIONS as f64);
    drop((engine, updates, rows));

    let baseline = plain_design_bytes(&keys);
    let resident_note = resident.map_or(String::new(), |bytes| format!(" ({bytes:.0} B RSS)"));
    vec![
        Comparison::new(
            "memory per session, engine and window mirror, 1M sessions",
            Figure::Bytes(ours, "/session"),
            Figure::Bytes(baseline, "/session"),
            baseline / ours,
        )
        .baseline_text(format!(
            "{baseline:.0} B/session (HashMap<String, _> in both)"
        ))
        .target(Target::Absolute("<= 150 B/session", ours <= 150.0))
        .ours_note(resident_note),
    ]
}

impl Comparison {
    fn ours_note(mut self, note: String) -> Self {
        self.ours.push_str(&note);
        self
    }
}

/// Bytes per session of the plain design: a `HashMap<String, _>` in the engine and a
/// clone of it in the window.
fn plain_design_bytes(keys: &[SessionId]) -> f64 {
    let before = alloc::live();
    let engine: HashMap<String, PlainSession> = keys
        .iter()
        .map(|id| {
            let session = PlainSession {
                source: session_monitor::engine::session::Source::Api,
                created: Default::default(),
                last_active: Default::default(),
                activity_count: 1,
            };
            (id.as_str().to_owned(), session)
        })
        .collect();
    let window = engine.clone();
    let bytes = (alloc::live() - before) as f64 / keys.len() as f64;
    drop((engine, window));
    bytes
}

fn start(name: &str) -> (Engine, Receiver<Update>, ManualClock) {
    let clock = ManualClock::new(Utc::now());
    let shared: SharedClock = Arc::new(clock.clone());
    let config = EngineConfig {
        name: name.into(),
        idle_timeout: IDLE_TIMEOUT,
        sweep_interval: Duration::from_secs(365 * 24 * 3600),
        ..EngineConfig::default()
    };
    let (engine, updates) = Engine::start(config, shared, no_waker()).expect("engine starts");
    (engine, updates, clock)
}

/// Applies updates to `rows` for up to `budget`. Returns whether any arrived.
fn apply_for(updates: &Receiver<Update>, rows: &mut SessionRows, budget: Duration) -> bool {
    let started = Instant::now();
    let mut any = false;
    while started.elapsed() < budget {
        match updates.recv_timeout(budget.saturating_sub(started.elapsed())) {
            Ok(update) => {
                rows.apply(&update);
                any = true;
            }
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
        }
    }
    any
}

/// Observations of the emulated window during the mass sweep.
#[derive(Debug, Default)]
struct WindowLoad {
    longest_frame: Duration,
    snapshots: usize,
    finished: bool,
}

pub fn compare_mass_sweep() -> Vec<Comparison> {
    let keys = keys(MASS_SESSIONS);
    let all: Vec<u32> = (0..MASS_SESSIONS as u32).collect();
    let (engine, updates, clock) = start("report-mass-sweep");
    let mut rows = SessionRows::default();
    thread::scope(|scope| {
        let producer = scope.spawn(|| {
            send(&engine, &keys, &all, BATCH);
            sync(&engine);
        });
        while !producer.is_finished() {
            apply_for(&updates, &mut rows, DRAIN_BUDGET);
        }
    });
    while apply_for(&updates, &mut rows, Duration::from_millis(200)) {}
    rows.sorted();
    assert_eq!(rows.len(), MASS_SESSIONS);

    clock.advance(IDLE_TIMEOUT);
    let live_before = alloc::live();
    alloc::reset_peak();
    let started = Instant::now();
    engine
        .try_send(Command::SweepNow)
        .expect("engine takes the sweep request");

    let (window, round_trips) = thread::scope(|scope| {
        let window = scope.spawn(|| emulate_window(&updates, &mut rows));
        let mut round_trips = Vec::new();
        while !window.is_finished() {
            round_trips.push(query_round_trip(&engine, &keys[MASS_SESSIONS - 1]));
            thread::sleep(Duration::from_millis(1));
        }
        (window.join().expect("window emulation ends"), round_trips)
    });
    let sweep_time = started.elapsed();
    let extra = alloc::peak().saturating_sub(live_before);
    assert!(window.finished, "the sweep finished");
    assert_eq!(rows.len(), 0);

    let longest_trip = round_trips.iter().max().copied().unwrap_or_default();
    let no_copy = window.snapshots == 0;
    vec![
        Comparison::new(
            "commands during a sweep of 2M stale sessions: longest round trip",
            Figure::Time(longest_trip),
            Figure::Time(sweep_time),
            sweep_time.as_secs_f64() / longest_trip.as_secs_f64().max(1e-9),
        )
        .baseline_text(format!(
            "{} (the whole sweep, {} queries answered during it, {} snapshots, peak extra \
             memory {:.0} MB)",
            Figure::Time(sweep_time),
            round_trips.len(),
            window.snapshots,
            extra as f64 / 1e6
        ))
        .target(Target::Absolute(
            "<= 50 ms round trip, no snapshot copy of the map",
            longest_trip <= Duration::from_millis(50) && no_copy,
        )),
        Comparison::new(
            "window frames during a sweep of 2M stale sessions: longest frame",
            Figure::Time(window.longest_frame),
            Figure::Time(FRAME),
            window.longest_frame.as_secs_f64() / FRAME.as_secs_f64(),
        )
        .baseline_text(format!("{} (one 60 Hz frame)", Figure::Time(FRAME)))
        .target(Target::AtMost(2.0)),
    ]
}

/// Applies updates as the window does, paced by a [`DrainPacer`] per frame and followed
/// by the sort of the table, until the sweep finishes and the rows are empty.
fn emulate_window(updates: &Receiver<Update>, rows: &mut SessionRows) -> WindowLoad {
    let mut load = WindowLoad::default();
    let mut pacer = DrainPacer::default();
    let deadline = Instant::now() + Duration::from_secs(300);
    while Instant::now() < deadline && !(load.finished && rows.is_empty()) {
        let frame = Instant::now();
        pacer.drain(
            rows.refresh_cost(),
            || updates.try_recv().ok(),
            |update| {
                load.snapshots += usize::from(update.snapshot.is_some());
                let finished = update
                    .records
                    .iter()
                    .any(|record| matches!(record.event, Event::SweepFinished { .. }));
                load.finished |= finished;
                rows.apply(&update);
            },
        );
        rows.sorted();
        load.longest_frame = load.longest_frame.max(frame.elapsed());
        thread::sleep(FRAME.saturating_sub(frame.elapsed()));
    }
    load
}

fn query_round_trip(engine: &Engine, id: &SessionId) -> Duration {
    let started = Instant::now();
    let (reply, answer) = Reply::channel();
    let query = Command::Query {
        query: Query::Session(id.clone()),
        reply,
    };
    engine
        .send(query, Duration::from_secs(60))
        .expect("engine takes the query");
    let _: Vec<Session> = answer
        .recv_timeout(Duration::from_secs(60))
        .map(|answer| answer.sessions)
        .unwrap_or_default();
    started.elapsed()
}
