//! Engine tests through its real channels. A manual clock moves engine time, so minutes
//! pass in microseconds and no test sleeps to wait for expiry.
//!
//! Each test starts its own engine under a unique name, because only one engine of a
//! name may run in a process.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use crossbeam_channel::{Receiver, Sender};
use session_monitor::engine::clock::{Clock, ManualClock, MonoTime};
use session_monitor::engine::event::{
    Activity, Command, Event, Level, Record, RemovalCause, Status, SweepTrigger, Update,
};
use session_monitor::engine::session::{Session, SessionId, Source};
use session_monitor::engine::{Engine, EngineConfig, StartError, Waker, no_waker};

/// Real-time limit for any wait on the engine. Only a hang reaches it.
const WAIT: Duration = Duration::from_secs(5);

const MINUTE: Duration = Duration::from_secs(60);

/// A sweep interval long enough that no scheduled sweep runs during a test.
const NEVER: Duration = Duration::from_secs(24 * 3600);

fn minutes(count: u32) -> MonoTime {
    MonoTime::from_duration(MINUTE * count)
}

fn id(text: &str) -> SessionId {
    SessionId::new(text).unwrap()
}

fn config(name: &str) -> EngineConfig {
    EngineConfig {
        name: format!("engine-test-{name}"),
        ..EngineConfig::default()
    }
}

/// A waker that, once armed, holds the worker inside its next call until released. The
/// worker calls it right after sending an update, so a test can queue commands while a
/// sweep is known to be running.
#[derive(Clone)]
struct Gate {
    armed: Arc<AtomicBool>,
    entered: (Sender<()>, Receiver<()>),
    release: (Sender<()>, Receiver<()>),
}

impl Gate {
    fn new() -> Gate {
        Gate {
            armed: Arc::new(AtomicBool::new(false)),
            entered: crossbeam_channel::bounded(1),
            release: crossbeam_channel::bounded(1),
        }
    }

    fn waker(&self) -> Waker {
        let gate = self.clone();
        Arc::new(move || {
            if gate.armed.swap(false, Ordering::SeqCst) {
                let _ = gate.entered.0.send(());
                // A timeout instead of a plain wait, so a failed test cannot hang.
                let _ = gate.release.1.recv_timeout(WAIT);
            }
        })
    }

    fn arm(&self) {
        self.armed.store(true, Ordering::SeqCst);
    }

    fn wait_until_entered(&self) {
        self.entered
            .1
            .recv_timeout(WAIT)
            .expect("the worker sent no update after the gate was armed");
    }

    fn release(&self) {
        self.release.0.send(()).unwrap();
    }
}

/// A running engine with a manual clock, and the updates it sent.
struct Harness {
    engine: Engine,
    updates: Receiver<Update>,
    clock: Arc<ManualClock>,
    received: Vec<Update>,
}

impl Harness {
    fn start(name: &str) -> Harness {
        Harness::with_config(config(name), no_waker())
    }

    /// Starts an engine whose schedule never comes due during a test.
    fn unscheduled(name: &str) -> Harness {
        let config = EngineConfig {
            sweep_interval: NEVER,
            ..config(name)
        };
        Harness::with_config(config, no_waker())
    }

    fn with_config(config: EngineConfig, waker: Waker) -> Harness {
        let clock = Arc::new(ManualClock::new(DateTime::<Utc>::UNIX_EPOCH));
        let (engine, updates) = match Engine::start(config, clock.clone(), waker) {
            Ok(started) => started,
            Err(error) => panic!("engine did not start: {error}"),
        };
        Harness {
            engine,
            updates,
            clock,
            received: Vec::new(),
        }
    }

    fn set_time(&self, at: MonoTime) {
        self.clock.set(at);
    }

    fn send(&self, command: Command) {
        self.engine.send(command, WAIT).unwrap();
    }

    /// Touches a session at the clock's current time. The stamp is taken here, not by
    /// the worker, because the test may move the clock before the worker applies it.
    fn touch(&self, name: &str) {
        self.touch_at(name, Some(self.clock.now()));
    }

    fn touch_at(&self, name: &str, at: Option<MonoTime>) {
        self.send(Command::Touch(Activity {
            id: id(name),
            source: Source::Api,
            at,
            meta: None,
        }));
    }

    /// Waits until the engine has applied everything sent so far, and returns the records
    /// of the updates received since the previous call.
    fn settle(&mut self) -> Vec<Record> {
        self.engine.sync(WAIT).unwrap();
        let fresh: Vec<Update> = self.updates.try_iter().collect();
        let records = fresh
            .iter()
            .flat_map(|update| update.records.iter().cloned())
            .collect();
        self.received.extend(fresh);
        records
    }

    /// Returns every record received so far, in order.
    fn all_records(&self) -> Vec<Record> {
        self.received
            .iter()
            .flat_map(|update| update.records.iter().cloned())
            .collect()
    }

    fn status(&self) -> &Status {
        &self.received.last().expect("no update received").status
    }

    /// Returns the latest state of a session as sent in the updates.
    fn session(&self, name: &str) -> Option<Session> {
        self.received
            .iter()
            .rev()
            .flat_map(|update| update.touched.iter())
            .find(|session| session.id.as_str() == name)
            .cloned()
    }
}

fn sweeps_started(records: &[Record]) -> Vec<&Record> {
    records
        .iter()
        .filter(|record| matches!(record.event, Event::SweepStarted { .. }))
        .collect()
}

fn removed_ids(records: &[Record], cause: RemovalCause) -> Vec<String> {
    records
        .iter()
        .filter_map(|record| match &record.event {
            Event::SessionRemoved { id, cause: c, .. } if *c == cause => Some(id.to_string()),
            _ => None,
        })
        .collect()
}

fn count_kind(records: &[Record], kind: &str) -> usize {
    records
        .iter()
        .filter(|record| record.event.kind() == kind)
        .count()
}

/// Replays creation and removal records into a set of ids. Fails on a creation of an id
/// already present or a removal of an id that is absent.
fn replay_ids(records: &[Record]) -> Result<BTreeSet<String>, String> {
    let mut ids = BTreeSet::new();
    for record in records {
        match &record.event {
            Event::SessionCreated { id, .. } if !ids.insert(id.to_string()) => {
                return Err(format!("record {} creates {id} twice", record.seq));
            }
            Event::SessionRemoved { id, .. } if !ids.remove(id.as_str()) => {
                return Err(format!("record {} removes absent {id}", record.seq));
            }
            _ => {}
        }
    }
    Ok(ids)
}

fn error_messages(records: &[Record]) -> Vec<String> {
    records
        .iter()
        .filter_map(|record| match &record.event {
            Event::Error { message } => Some(message.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn scheduler_started_record() {
    let mut harness = Harness::start("started-record");
    let records = harness.settle();
    assert_eq!(records[0].seq, 1);
    assert_eq!(
        records[0].event,
        Event::SchedulerStarted {
            sweep_interval: 5 * MINUTE,
            idle_timeout: 5 * MINUTE,
        }
    );
    assert_eq!(records[0].level(), Level::Info);
}

#[test]
fn scheduler_started_text() {
    let mut harness = Harness::start("started-text");
    let records = harness.settle();
    assert_eq!(
        records[0].event.to_string(),
        "Scheduler started: stale session cleanup every 5m, idle timeout 5m"
    );
}

#[test]
fn record_line_aligns_level() {
    let mut harness = Harness::start("record-line");
    let records = harness.settle();
    assert_eq!(
        records[0].to_string(),
        "1970-01-01T00:00:00.000Z INFO  Scheduler started: stale session cleanup every 5m, \
         idle timeout 5m"
    );
}

#[test]
fn no_sweep_before_interval() {
    let mut harness = Harness::start("no-early-sweep");
    harness.touch("a");
    harness.set_time(minutes(5).saturating_sub(Duration::from_nanos(1)));
    let records = harness.settle();
    assert!(sweeps_started(&records).is_empty());
}

#[test]
fn first_sweep_at_interval() {
    let mut harness = Harness::start("first-sweep");
    harness.set_time(minutes(5));
    let records = harness.settle();
    let sweeps = sweeps_started(&records);
    assert_eq!(sweeps.len(), 1);
    assert_eq!(sweeps[0].at, minutes(5));
    assert_eq!(
        sweeps[0].event,
        Event::SweepStarted {
            trigger: SweepTrigger::Scheduled,
            late_by: Some(Duration::ZERO),
            skipped: 0,
        }
    );
}

#[test]
fn sweep_removes_only_stale() {
    let mut harness = Harness::start("sweep-stale");
    harness.touch("idle-five-minutes");
    harness.set_time(minutes(2));
    harness.touch("idle-three-minutes");
    harness.set_time(minutes(5));
    let records = harness.settle();
    assert_eq!(
        removed_ids(&records, RemovalCause::Sweep),
        ["idle-five-minutes"]
    );
    assert!(harness.session("idle-three-minutes").is_some());
    assert_eq!(harness.status().sessions, 1);
}

#[test]
fn sweeps_keep_fixed_rate() {
    let mut harness = Harness::start("fixed-rate");
    let mut starts = Vec::new();
    for minute in [5, 10, 15] {
        harness.set_time(minutes(minute));
        starts.extend(sweeps_started(&harness.settle()).iter().map(|r| r.at));
    }
    assert_eq!(starts, [minutes(5), minutes(10), minutes(15)]);
}

#[test]
fn late_sweep_does_not_drift() {
    let mut harness = Harness::start("late-no-drift");
    harness.set_time(minutes(5));
    harness.settle();
    harness.set_time(minutes(12));
    let late = harness.settle();
    let late_sweeps = sweeps_started(&late);
    assert_eq!(late_sweeps.len(), 1);
    assert!(matches!(
        late_sweeps[0].event,
        Event::SweepStarted { late_by: Some(late_by), skipped: 0, .. } if late_by == 2 * MINUTE
    ));
    assert_eq!(harness.status().next_sweep_due, minutes(15));

    harness.set_time(minutes(15));
    let next = harness.settle();
    let next_sweeps = sweeps_started(&next);
    assert_eq!(next_sweeps.len(), 1);
    assert_eq!(next_sweeps[0].at, minutes(15));
}

#[test]
fn manual_sweep_keeps_schedule() {
    let mut harness = Harness::start("manual-keeps-schedule");
    harness.set_time(minutes(3));
    harness.send(Command::SweepNow);
    let manual = harness.settle();
    assert!(matches!(
        sweeps_started(&manual)[..],
        [Record {
            event: Event::SweepStarted {
                trigger: SweepTrigger::Manual,
                ..
            },
            ..
        }]
    ));
    assert_eq!(harness.status().next_sweep_due, minutes(5));

    harness.set_time(minutes(5));
    let scheduled = harness.settle();
    assert_eq!(sweeps_started(&scheduled).len(), 1);
    assert_eq!(sweeps_started(&scheduled)[0].at, minutes(5));
}

#[test]
fn missed_sweeps_run_once() {
    let mut harness = Harness::start("missed-sweeps");
    harness.set_time(minutes(23));
    let records = harness.settle();
    let sweeps = sweeps_started(&records);
    assert_eq!(sweeps.len(), 1);
    assert_eq!(
        sweeps[0].event,
        Event::SweepStarted {
            trigger: SweepTrigger::Scheduled,
            late_by: Some(18 * MINUTE),
            skipped: 3,
        }
    );
    assert_eq!(sweeps[0].level(), Level::Warn);
    assert_eq!(harness.status().next_sweep_due, minutes(25));

    harness.set_time(minutes(24));
    assert!(sweeps_started(&harness.settle()).is_empty());

    harness.set_time(minutes(25));
    assert_eq!(sweeps_started(&harness.settle()).len(), 1);
}

/// Starts an engine with `stale` sessions idle for 6 minutes, sweep steps of one session
/// and an update after every step, ready to pause inside a sweep.
fn paused_sweep_harness(name: &str, stale: usize, sweep_interval: Duration) -> (Harness, Gate) {
    let gate = Gate::new();
    let config = EngineConfig {
        sweep_interval,
        sweep_step: 1,
        flush_interval: Duration::ZERO,
        ..config(name)
    };
    let mut harness = Harness::with_config(config, gate.waker());
    let batch = (0..stale)
        .map(|n| Activity {
            id: id(&format!("s-{n:03}")),
            source: Source::Api,
            at: Some(MonoTime::ZERO),
            meta: None,
        })
        .collect();
    harness.send(Command::TouchBatch(batch));
    harness.set_time(minutes(6));
    harness.settle();
    (harness, gate)
}

/// Starts a manual sweep and returns once the worker is paused inside it.
fn pause_in_sweep(harness: &Harness, gate: &Gate) {
    gate.arm();
    harness.send(Command::SweepNow);
    gate.wait_until_entered();
}

#[test]
fn sweep_requests_coalesce() {
    let (mut harness, gate) = paused_sweep_harness("coalesce", 50, NEVER);
    pause_in_sweep(&harness, &gate);
    for _ in 0..5 {
        harness.send(Command::SweepNow);
    }
    gate.release();
    let records = harness.settle();
    let sweeps = sweeps_started(&records);
    assert_eq!(sweeps.len(), 2);
    assert!(matches!(
        sweeps[1].event,
        Event::SweepStarted {
            trigger: SweepTrigger::Manual,
            ..
        }
    ));
}

#[test]
fn sweep_events_alternate() {
    let (mut harness, gate) = paused_sweep_harness("alternate", 50, NEVER);
    pause_in_sweep(&harness, &gate);
    for _ in 0..5 {
        harness.send(Command::SweepNow);
    }
    gate.release();
    let records = harness.settle();
    let kinds: Vec<&str> = records
        .iter()
        .map(|record| record.event.kind())
        .filter(|kind| kind.starts_with("sweep_"))
        .collect();
    assert_eq!(
        kinds,
        [
            "sweep_started",
            "sweep_finished",
            "sweep_started",
            "sweep_finished"
        ]
    );
}

#[test]
fn due_sweep_waits_for_running_sweep() {
    let (mut harness, gate) = paused_sweep_harness("due-waits", 50, 10 * MINUTE);
    pause_in_sweep(&harness, &gate);
    harness.set_time(minutes(10));
    harness.send(Command::SweepNow);
    gate.release();
    let records = harness.settle();
    let triggers: Vec<SweepTrigger> = sweeps_started(&records)
        .iter()
        .filter_map(|record| match record.event {
            Event::SweepStarted { trigger, .. } => Some(trigger),
            _ => None,
        })
        .collect();
    assert_eq!(triggers, [SweepTrigger::Manual, SweepTrigger::Scheduled]);
    assert_eq!(count_kind(&records, "sweep_finished"), 2);
}

#[test]
fn older_touch_keeps_last_activity() {
    let mut harness = Harness::unscheduled("out-of-order");
    harness.set_time(minutes(10));
    harness.touch_at("a", Some(minutes(4)));
    harness.touch_at("a", Some(minutes(2)));
    harness.settle();
    let session = harness.session("a").unwrap();
    assert_eq!(session.last_active, minutes(4));
    assert_eq!(session.activity_count, 2);
}

#[test]
fn touch_after_timeout_renews() {
    let mut harness = Harness::unscheduled("expired-on-access");
    harness.touch("a");
    harness.settle();
    harness.set_time(minutes(5));
    harness.touch("a");
    let records = harness.settle();
    let kinds: Vec<&str> = records.iter().map(|record| record.event.kind()).collect();
    assert_eq!(kinds, ["session_removed", "session_created"]);
    assert_eq!(
        records[0].event,
        Event::SessionRemoved {
            id: id("a"),
            source: Source::Api,
            idle: 5 * MINUTE,
            activity_count: 1,
            cause: RemovalCause::ExpiredOnAccess,
        }
    );
    let session = harness.session("a").unwrap();
    assert_eq!(session.created, minutes(5));
    assert_eq!(session.activity_count, 1);
    assert_eq!(harness.status().sessions, 1);
}

#[test]
fn touch_during_sweep_survives() {
    let (mut harness, gate) = paused_sweep_harness("touch-during-sweep", 50, NEVER);
    pause_in_sweep(&harness, &gate);
    harness.touch("s-049");
    harness.touch_at("s-048", Some(MonoTime::ZERO));
    harness.touch("late");
    gate.release();
    harness.settle();

    let remaining = replay_ids(&harness.all_records()).unwrap();
    let expected: BTreeSet<String> = ["late", "s-048", "s-049"].map(String::from).into();
    assert_eq!(remaining, expected);
    assert_eq!(harness.status().sessions, 3);
}

#[test]
fn removals_match_map() {
    let (mut harness, gate) = paused_sweep_harness("removals-match", 50, NEVER);
    pause_in_sweep(&harness, &gate);
    harness.touch("s-049");
    harness.touch_at("s-048", Some(MonoTime::ZERO));
    harness.touch("late");
    gate.release();
    harness.settle();

    let records = harness.all_records();
    let created = count_kind(&records, "session_created");
    let removed = count_kind(&records, "session_removed");
    assert_eq!(created - removed, harness.status().sessions as usize);
    assert!(replay_ids(&records).is_ok());

    let swept = removed_ids(&records, RemovalCause::Sweep).len() as u64;
    let finished = records.iter().find_map(|record| match record.event {
        Event::SweepFinished { removed, .. } => Some(removed),
        _ => None,
    });
    assert_eq!(finished, Some(swept));
}

#[test]
fn shutdown_during_large_sweep() {
    const SESSIONS: usize = 200_000;
    let gate = Gate::new();
    let config = EngineConfig {
        sweep_interval: NEVER,
        sweep_step: 16,
        flush_interval: Duration::ZERO,
        ..config("shutdown-mid-sweep")
    };
    let mut harness = Harness::with_config(config, gate.waker());
    for chunk in 0..SESSIONS / 10_000 {
        let batch = (0..10_000)
            .map(|n| Activity {
                id: id(&format!("s-{chunk}-{n}")),
                source: Source::Api,
                at: Some(MonoTime::ZERO),
                meta: None,
            })
            .collect();
        harness.send(Command::TouchBatch(batch));
        harness.settle();
    }
    harness.set_time(minutes(6));
    harness.settle();

    pause_in_sweep(&harness, &gate);
    gate.release();
    let started = Instant::now();
    let Harness {
        engine, updates, ..
    } = harness;
    let leftovers = engine.shutdown();
    let took = started.elapsed();

    // Generous, to catch a hang rather than to measure speed.
    assert!(took < WAIT, "shutdown took {took:?}");
    // Updates that fit in the channel were sent; the rest come back from the shutdown.
    let records: Vec<Record> = updates
        .try_iter()
        .chain(leftovers)
        .flat_map(|update| update.records)
        .collect();
    let last = records.last().map(|record| &record.event);
    let remaining = match last {
        Some(Event::SchedulerStopped { remaining }) => *remaining,
        _ => panic!("the last record is {last:?}"),
    };
    assert!(remaining > 0, "the sweep finished before the shutdown");

    let removed = removed_ids(&records, RemovalCause::Sweep).len() as u64;
    assert_eq!(removed + remaining, SESSIONS as u64);
    let stopped = &records[records.len() - 2];
    assert_eq!(
        stopped.event,
        Event::SweepStopped {
            trigger: SweepTrigger::Manual,
            removed,
        }
    );
    assert_eq!(
        stopped.event.to_string(),
        format!("Sweep stopped by the shutdown after removing {removed} stale sessions")
    );
}

#[test]
fn batch_rereads_clock_after_stamped_report() {
    let clock = Arc::new(ManualClock::following_activity(DateTime::<Utc>::UNIX_EPOCH));
    let (engine, updates) = match Engine::start(config("batch-clock"), clock.clone(), no_waker()) {
        Ok(started) => started,
        Err(error) => panic!("engine did not start: {error}"),
    };
    let report = |name: &str, at: Option<MonoTime>| Activity {
        id: id(name),
        source: Source::Replay,
        at,
        meta: None,
    };
    let batch = vec![
        report("before", None),
        report("stamped", Some(minutes(3))),
        report("after", None),
    ];
    engine.send(Command::TouchBatch(batch), WAIT).unwrap();
    engine.sync(WAIT).unwrap();

    let mut last_active = BTreeMap::new();
    for update in updates.try_iter() {
        for session in update.touched {
            last_active.insert(session.id.as_str().to_owned(), session.last_active);
        }
    }
    assert_eq!(last_active["before"], minutes(0));
    assert_eq!(last_active["stamped"], minutes(3));
    assert_eq!(last_active["after"], minutes(3));
}

#[test]
fn duplicate_name_rejected() {
    let first = Harness::start("duplicate");
    let clock = Arc::new(ManualClock::new(DateTime::<Utc>::UNIX_EPOCH));
    let second = Engine::start(config("duplicate"), clock, no_waker());
    let Err(error) = second else {
        panic!("a second engine of the same name started");
    };
    assert!(matches!(
        &error,
        StartError::AlreadyRunning { name } if name == "engine-test-duplicate"
    ));
    assert_eq!(
        error.to_string(),
        "a scheduler named \"engine-test-duplicate\" is already running in this process; \
         stop it first"
    );
    drop(first);
}

#[test]
fn name_reusable_after_shutdown() {
    let first = Harness::start("reuse");
    first.engine.shutdown();
    let clock = Arc::new(ManualClock::new(DateTime::<Utc>::UNIX_EPOCH));
    let second = Engine::start(config("reuse"), clock, no_waker());
    assert!(second.is_ok());
}

#[test]
fn idle_timeout_change_applies() {
    let mut harness = Harness::start("set-idle-timeout");
    harness.set_time(minutes(3));
    harness.touch("a");
    harness.send(Command::SetIdleTimeout(MINUTE));
    let changed = harness.settle();
    assert!(changed.iter().any(|record| record.event
        == Event::SettingsChanged {
            sweep_interval: 5 * MINUTE,
            idle_timeout: MINUTE,
        }));
    assert_eq!(harness.status().idle_timeout, MINUTE);

    harness.set_time(minutes(5));
    let swept = harness.settle();
    assert_eq!(removed_ids(&swept, RemovalCause::Sweep), ["a"]);
}

#[test]
fn sweep_interval_change_applies() {
    let mut harness = Harness::start("set-sweep-interval");
    harness.set_time(minutes(2));
    harness.send(Command::SetSweepInterval(MINUTE));
    let changed = harness.settle();
    assert!(changed.iter().any(|record| record.event
        == Event::SettingsChanged {
            sweep_interval: MINUTE,
            idle_timeout: 5 * MINUTE,
        }));
    assert_eq!(harness.status().next_sweep_due, minutes(3));

    harness.set_time(minutes(3));
    let sweeps = harness.settle();
    assert_eq!(sweeps_started(&sweeps).len(), 1);
    assert_eq!(sweeps_started(&sweeps)[0].at, minutes(3));
}

#[test]
fn zero_idle_timeout_rejected() {
    let mut harness = Harness::start("zero-idle-timeout");
    harness.send(Command::SetIdleTimeout(Duration::ZERO));
    let records = harness.settle();
    assert_eq!(
        error_messages(&records),
        ["idle timeout 0s is out of range: use 100ms to 365days; keeping the current value"]
    );
    assert_eq!(harness.status().idle_timeout, 5 * MINUTE);
}

#[test]
fn zero_sweep_interval_rejected() {
    let mut harness = Harness::start("zero-sweep-interval");
    harness.send(Command::SetSweepInterval(Duration::ZERO));
    let records = harness.settle();
    assert_eq!(
        error_messages(&records),
        ["sweep interval 0s is out of range: use 100ms to 365days; keeping the current value"]
    );
    assert_eq!(harness.status().sweep_interval, 5 * MINUTE);
}

#[test]
fn full_channel_drops_records() {
    const SESSIONS: usize = 1_000;
    const MAX_PENDING: usize = 100;
    let gate = Gate::new();
    let config = EngineConfig {
        update_capacity: 1,
        max_pending_records: MAX_PENDING,
        ..config("full-channel")
    };
    let mut harness = Harness::with_config(config, gate.waker());
    harness.settle();

    // The worker pauses right after filling the channel's one slot, so every touch is
    // queued before it runs again. The test reads no update while the worker applies
    // them.
    gate.arm();
    harness.send(Command::Notice {
        source: Source::Api,
        level: Level::Info,
        message: "channel full from here".into(),
    });
    gate.wait_until_entered();
    for n in 0..SESSIONS {
        harness.touch(&format!("s-{n:04}"));
    }
    gate.release();
    harness.engine.sync(WAIT).unwrap();
    let first = harness.updates.try_recv().unwrap();
    harness.engine.sync(WAIT).unwrap();
    let second = harness.updates.try_recv().unwrap();

    assert_eq!(first.records_dropped, 0);
    assert!(second.records_dropped > 0);
    assert!(second.records.len() <= MAX_PENDING);
    assert_eq!(second.records_dropped, second.status.records_dropped_total);
    assert!(harness.updates.try_recv().is_err());

    let emitted = second.records.last().unwrap().seq;
    let received = harness.all_records().len() + first.records.len() + second.records.len();
    assert_eq!(
        received as u64 + second.status.records_dropped_total,
        emitted
    );

    let mut snapshot = second
        .snapshot
        .expect("an update after drops has a snapshot");
    snapshot.sort_by(|a, b| a.id.cmp(&b.id));
    let expected: Vec<Session> = (0..SESSIONS)
        .map(|n| Session {
            id: id(&format!("s-{n:04}")),
            source: Source::Api,
            created: MonoTime::ZERO,
            last_active: MonoTime::ZERO,
            activity_count: 1,
            meta: None,
        })
        .collect();
    assert_eq!(snapshot, expected);
}

#[test]
fn end_removes_session() {
    let mut harness = Harness::unscheduled("end");
    harness.touch("a");
    harness.set_time(minutes(1));
    harness.send(Command::End { id: id("a") });
    let records = harness.settle();
    assert_eq!(removed_ids(&records, RemovalCause::Ended), ["a"]);
    assert_eq!(harness.status().sessions, 0);
}

#[test]
fn end_unknown_session_errors() {
    let mut harness = Harness::unscheduled("end-unknown");
    harness.send(Command::End { id: id("ghost") });
    let records = harness.settle();
    assert_eq!(
        error_messages(&records),
        ["cannot end session ghost: no such session"]
    );
    assert_eq!(records.last().unwrap().level(), Level::Error);
}
