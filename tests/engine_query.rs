//! Tests of the engine's read queries and session metadata, through the real command
//! channel with a manual clock.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use session_monitor::engine::clock::{Clock, ManualClock, MonoTime};
use session_monitor::engine::event::{Activity, Command};
use session_monitor::engine::query::{Answer, Query, Reply};
use session_monitor::engine::session::{SessionId, SessionMeta, Source};
use session_monitor::engine::{Engine, EngineConfig, no_waker};

const WAIT: Duration = Duration::from_secs(5);

const MINUTE: Duration = Duration::from_secs(60);

struct Harness {
    engine: Engine,
    clock: Arc<ManualClock>,
    // Kept open so the worker never sees the update channel disconnect.
    _updates: crossbeam_channel::Receiver<session_monitor::engine::event::Update>,
}

impl Harness {
    fn start(name: &str) -> Harness {
        let wall = Utc.with_ymd_and_hms(2026, 12, 4, 10, 0, 0).unwrap();
        let clock = Arc::new(ManualClock::new(wall));
        let config = EngineConfig {
            name: format!("engine-query-test-{name}"),
            sweep_interval: Duration::from_secs(24 * 3600),
            ..EngineConfig::default()
        };
        let (engine, updates) = Engine::start(config, clock.clone(), no_waker()).unwrap();
        Harness {
            engine,
            clock,
            _updates: updates,
        }
    }

    /// Touches a session at the clock's current time, stamped here because the test may
    /// move the clock before the worker applies the report.
    fn touch(&self, name: &str, meta: Option<SessionMeta>) {
        let activity = Activity {
            id: SessionId::new(name).unwrap(),
            source: Source::Api,
            at: Some(self.clock.now()),
            meta,
        };
        self.engine.send(Command::Touch(activity), WAIT).unwrap();
    }

    fn query(&self, query: Query) -> Answer {
        let (reply, answers) = Reply::channel();
        self.engine
            .send(Command::Query { query, reply }, WAIT)
            .unwrap();
        answers.recv_timeout(WAIT).expect("the worker answers")
    }

    fn session_ids(&self, limit: usize) -> Vec<String> {
        self.query(Query::Sessions { limit })
            .sessions
            .iter()
            .map(|session| session.id.to_string())
            .collect()
    }
}

fn meta(pairs: &[(&str, &str)]) -> SessionMeta {
    let map: BTreeMap<String, String> = pairs
        .iter()
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .collect();
    Arc::new(map)
}

#[test]
fn sessions_query_is_bounded_and_ordered() {
    let harness = Harness::start("bounded");
    for name in ["a", "b", "c", "d"] {
        harness.touch(name, None);
        harness.clock.advance(Duration::from_secs(1));
    }
    harness.touch("a", None);

    let answer = harness.query(Query::Sessions { limit: 2 });
    assert_eq!(answer.status.sessions, 4);
    assert_eq!(answer.sessions.len(), 2);
    assert_eq!(harness.session_ids(10), ["b", "c", "d", "a"]);
    assert_eq!(harness.session_ids(0), Vec::<String>::new());
}

#[test]
fn session_query_finds_one() {
    let harness = Harness::start("one");
    harness.touch("alice", None);
    harness.clock.advance(MINUTE);

    let answer = harness.query(Query::Session(SessionId::new("alice").unwrap()));
    assert_eq!(answer.sessions.len(), 1);
    assert_eq!(answer.sessions[0].last_active, MonoTime::ZERO);
    assert_eq!(answer.now, MonoTime::from_duration(MINUTE));
    let expected_wall = Utc.with_ymd_and_hms(2026, 12, 4, 10, 1, 0).unwrap();
    assert_eq!(answer.wall_now, expected_wall);

    let missing = harness.query(Query::Session(SessionId::new("bob").unwrap()));
    assert!(missing.sessions.is_empty());
}

#[test]
fn stats_count_stale_and_removal_causes() {
    let harness = Harness::start("stats");
    for name in ["swept", "renewed", "ended", "fresh"] {
        harness.touch(name, None);
    }
    harness
        .engine
        .send(
            Command::End {
                id: SessionId::new("ended").unwrap(),
            },
            WAIT,
        )
        .unwrap();
    harness.clock.advance(3 * MINUTE);
    harness.touch("fresh", None);
    harness.clock.advance(3 * MINUTE);

    let before = harness.query(Query::Stats);
    assert_eq!(before.stale, Some(2), "swept and renewed are stale");
    assert!(before.sessions.is_empty());

    harness.touch("renewed", None);
    harness.engine.send(Command::SweepNow, WAIT).unwrap();
    harness.engine.sync(WAIT).unwrap();

    let after = harness.query(Query::Stats);
    assert_eq!(after.stale, Some(0));
    assert_eq!(after.removals.sweep, 1);
    assert_eq!(after.removals.expired_on_access, 1);
    assert_eq!(after.removals.ended, 1);
    assert_eq!(after.status.removed_total, 3);
    assert_eq!(after.status.sessions, 2);
}

#[test]
fn meta_is_kept_replaced_and_reset() {
    let harness = Harness::start("meta");
    let alice = || Query::Session(SessionId::new("alice").unwrap());
    let meta_of = |answer: Answer| answer.sessions[0].meta.clone();

    harness.touch("alice", Some(meta(&[("user", "user-42")])));
    assert_eq!(
        meta_of(harness.query(alice())),
        Some(meta(&[("user", "user-42")]))
    );

    harness.touch("alice", None);
    assert_eq!(
        meta_of(harness.query(alice())),
        Some(meta(&[("user", "user-42")])),
        "a report without metadata keeps it"
    );

    harness.touch("alice", Some(meta(&[("room", "lobby")])));
    assert_eq!(
        meta_of(harness.query(alice())),
        Some(meta(&[("room", "lobby")])),
        "a report with metadata replaces all of it"
    );

    harness.clock.advance(6 * MINUTE);
    harness.touch("alice", None);
    assert_eq!(
        meta_of(harness.query(alice())),
        None,
        "a session renewed after expiry starts without metadata"
    );
}

#[test]
fn query_after_stop_drops_reply() {
    let harness = Harness::start("stopped");
    let commands = harness.engine.commands();
    drop(harness);
    let (reply, answers) = Reply::channel();
    let sent = commands.send(Command::Query {
        query: Query::Stats,
        reply,
    });
    assert!(sent.is_err(), "the worker is gone");
    drop(sent);
    assert!(answers.recv_timeout(WAIT).is_err());
}
