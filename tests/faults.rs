//! Fault tests: injected sweep failures, slow sweeps and stops under load, through the
//! real engine, channels and a manual clock.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use crossbeam_channel::Receiver;
use session_monitor::engine::clock::{ManualClock, SharedClock};
use session_monitor::engine::event::{Activity, Command, Event, Level, Record, Update};
use session_monitor::engine::hooks::TestHooks;
use session_monitor::engine::session::{SessionId, Source};
use session_monitor::engine::{Engine, EngineConfig, no_waker};

const MINUTE: Duration = Duration::from_secs(60);
const WAIT: Duration = Duration::from_secs(20);

struct Setup {
    engine: Engine,
    updates: Receiver<Update>,
    clock: ManualClock,
}

fn start(name: &str, hooks: Arc<TestHooks>, sweep_step: usize) -> Setup {
    let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap());
    let shared: SharedClock = Arc::new(clock.clone());
    let config = EngineConfig {
        name: name.into(),
        sweep_step,
        update_capacity: 100_000,
        hooks: Some(hooks),
        ..EngineConfig::default()
    };
    let (engine, updates) = Engine::start(config, shared, no_waker()).unwrap();
    Setup {
        engine,
        updates,
        clock,
    }
}

fn touch_many(engine: &Engine, prefix: &str, count: usize) {
    let batch: Vec<Activity> = (0..count)
        .map(|n| Activity {
            id: SessionId::new(&format!("{prefix}-{n}")).unwrap(),
            source: Source::Api,
            at: None,
            meta: None,
        })
        .collect();
    for chunk in batch.chunks(10_000) {
        engine
            .send(Command::TouchBatch(chunk.to_vec()), WAIT)
            .unwrap();
    }
    engine.sync(WAIT).unwrap();
}

fn records(updates: &Receiver<Update>) -> Vec<Record> {
    updates
        .try_iter()
        .flat_map(|update| update.records)
        .collect()
}

fn count(records: &[Record], matches: impl Fn(&Event) -> bool) -> usize {
    records
        .iter()
        .filter(|record| matches(&record.event))
        .count()
}

#[test]
fn sweep_panic_is_reported() {
    let hooks = Arc::new(TestHooks::default());
    let setup = start("fault-panic", Arc::clone(&hooks), 4096);
    touch_many(&setup.engine, "s", 10);
    setup.clock.advance(MINUTE * 5);
    hooks.sweep_step_panic_countdown.store(1, Ordering::SeqCst);
    setup.engine.sync(WAIT).unwrap();

    let log = records(&setup.updates);
    let failed: Vec<&Record> = log
        .iter()
        .filter(|record| matches!(record.event, Event::SweepFailed { .. }))
        .collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].level(), Level::Error);
    assert_eq!(
        failed[0].event.to_string(),
        "Sweep failed after removing 0 stale sessions: injected sweep failure; \
         the schedule continues"
    );
}

#[test]
fn schedule_continues_after_panic() {
    let hooks = Arc::new(TestHooks::default());
    let setup = start("fault-continue", Arc::clone(&hooks), 4096);
    touch_many(&setup.engine, "s", 10);
    hooks.sweep_step_panic_countdown.store(1, Ordering::SeqCst);
    setup.clock.advance(MINUTE * 5);
    setup.engine.sync(WAIT).unwrap();
    setup.clock.advance(MINUTE * 5);
    setup.engine.sync(WAIT).unwrap();

    let log = records(&setup.updates);
    assert_eq!(count(&log, |e| matches!(e, Event::SweepFailed { .. })), 1);
    assert_eq!(count(&log, |e| matches!(e, Event::SweepFinished { .. })), 1);
    let swept = count(&log, |e| matches!(e, Event::SessionRemoved { .. }));
    assert_eq!(swept, 10, "the next sweep removes what the failed one left");
}

#[test]
fn panic_mid_sweep_reports_removed() {
    let hooks = Arc::new(TestHooks::default());
    let setup = start("fault-mid", Arc::clone(&hooks), 100);
    touch_many(&setup.engine, "s", 1000);
    setup.clock.advance(MINUTE * 5);
    // The first step removes 100; the second panics.
    hooks.sweep_step_panic_countdown.store(2, Ordering::SeqCst);
    setup.engine.send(Command::SweepNow, WAIT).unwrap();
    setup.engine.sync(WAIT).unwrap();

    let log = records(&setup.updates);
    let failed = log.iter().find_map(|record| match record.event {
        Event::SweepFailed { removed, .. } => Some(removed),
        _ => None,
    });
    assert_eq!(failed, Some(100));
    let removed = count(&log, |e| matches!(e, Event::SessionRemoved { .. }));
    let reported: u64 = log
        .iter()
        .map(|record| match record.event {
            Event::SweepFinished { removed, .. } | Event::SweepFailed { removed, .. } => removed,
            _ => 0,
        })
        .sum();
    assert_eq!(removed as u64, reported, "every removal is reported once");
}

#[test]
fn sweep_requests_during_slow_sweep_coalesce() {
    let (started_tx, started_rx) = crossbeam_channel::bounded(1);
    let (release_tx, release_rx) = crossbeam_channel::bounded(1);
    let hooks = Arc::new(TestHooks {
        sweep_gate: Some((started_tx, release_rx)),
        ..TestHooks::default()
    });
    let setup = start("fault-coalesce", hooks, 10);
    touch_many(&setup.engine, "s", 100);
    setup.clock.advance(MINUTE * 5);
    setup.engine.send(Command::SweepNow, WAIT).unwrap();
    started_rx.recv_timeout(WAIT).unwrap();
    for _ in 0..5 {
        setup.engine.send(Command::SweepNow, WAIT).unwrap();
    }
    release_tx.send(()).unwrap();
    // The follow-up sweep passes the gate too.
    started_rx.recv_timeout(WAIT).unwrap();
    release_tx.send(()).unwrap();
    setup.engine.sync(WAIT).unwrap();

    let log = records(&setup.updates);
    let started = count(&log, |e| matches!(e, Event::SweepStarted { .. }));
    assert_eq!(started, 2, "one sweep and one coalesced follow-up");
}

#[test]
fn shutdown_during_slow_sweep_is_prompt() {
    let hooks = Arc::new(TestHooks::default());
    let setup = start("fault-slow-stop", Arc::clone(&hooks), 1000);
    touch_many(&setup.engine, "s", 200_000);
    setup.clock.advance(MINUTE * 5);
    hooks
        .sweep_step_delay_micros
        .store(20_000, Ordering::SeqCst);
    setup.engine.send(Command::SweepNow, WAIT).unwrap();
    std::thread::sleep(Duration::from_millis(100));

    let started = Instant::now();
    let leftovers = setup.engine.shutdown();
    let took = started.elapsed();
    // A full sweep would take 200 steps of 20 ms; stopping waits for one step at most.
    assert!(took < Duration::from_secs(1), "shutdown took {took:?}");
    let mut log = records(&setup.updates);
    log.extend(leftovers.into_iter().flat_map(|update| update.records));
    let last = log.last().unwrap();
    assert!(matches!(last.event, Event::SchedulerStopped { .. }));
}

#[test]
fn wall_clock_jump_is_logged_not_expired() {
    let hooks = Arc::new(TestHooks::default());
    let setup = start("fault-wall-jump", Arc::clone(&hooks), 4096);
    touch_many(&setup.engine, "s", 3);
    let mut log = Vec::new();
    // The worker compares the clocks at most once a second, when it next wakes.
    let wait_for_anomaly = |log: &mut Vec<Record>| {
        let deadline = Instant::now() + WAIT;
        let found = |log: &Vec<Record>| {
            log.iter()
                .filter(|record| matches!(record.event, Event::ClockAnomaly { .. }))
                .count()
        };
        let before = found(log);
        while found(log) == before {
            assert!(Instant::now() < deadline, "no clock anomaly was logged");
            std::thread::sleep(Duration::from_millis(200));
            setup.engine.sync(WAIT).unwrap();
            log.extend(records(&setup.updates));
        }
    };
    hooks.wall_clock_skew_secs.store(3 * 3600, Ordering::SeqCst);
    wait_for_anomaly(&mut log);
    hooks.wall_clock_skew_secs.store(-600, Ordering::SeqCst);
    wait_for_anomaly(&mut log);

    let anomalies: Vec<(bool, Duration, String)> = log
        .iter()
        .filter_map(|record| match record.event {
            Event::ClockAnomaly { ahead, by } => Some((ahead, by, record.event.to_string())),
            _ => None,
        })
        .collect();
    assert_eq!(anomalies.len(), 2, "{anomalies:?}");
    let near = |by: Duration, secs: u64| by.as_secs().abs_diff(secs) <= 5;
    assert!(anomalies[0].0, "the first jump is forward");
    assert!(near(anomalies[0].1, 3 * 3600), "{anomalies:?}");
    assert!(
        anomalies[0]
            .2
            .starts_with("Clock anomaly: the wall clock moved 3h")
    );
    assert!(anomalies[0].2.contains("ahead of monotonic time"));
    // The second jump is measured from the first one's reading: 3 h 10 min back.
    assert!(!anomalies[1].0, "the second jump is backward");
    assert!(near(anomalies[1].1, 3 * 3600 + 600), "{anomalies:?}");
    assert!(anomalies[1].2.contains("behind monotonic time"));
    let removed = count(&log, |e| matches!(e, Event::SessionRemoved { .. }));
    assert_eq!(removed, 0, "a wall-clock jump expires nothing");
}
