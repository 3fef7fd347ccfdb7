//! Property test of the session store against a naive model: a `BTreeMap` of sessions
//! that is scanned in full for every sweep. The operations are creates, touches
//! (including ones stamped earlier than the session's last activity), ends, clock
//! moves, and sweeps in steps of any size with every sweep strategy. After any random
//! sequence of them, the store and the model contain the same sessions. Each sweep
//! removes exactly the sessions the model finds stale, oldest first when it pops them
//! from the queue.

use std::collections::BTreeMap;
use std::time::Duration;

use proptest::prelude::*;
use session_monitor::engine::clock::MonoTime;
use session_monitor::engine::session::{Session, SessionId, Source};
use session_monitor::engine::store::{SessionStore, SweepStrategy, TouchOutcome};

/// Idle timeout of every case, in clock ticks of one second.
const TIMEOUT_SECS: u64 = 50;

/// Ids are drawn from this many keys, enough for the hash table to grow during a sweep.
const KEYS: u8 = 40;

#[derive(Debug, Clone)]
enum Op {
    /// Activity for a key, stamped `back` seconds before the clock (out of order when
    /// earlier than the session's last activity).
    Touch {
        key: u8,
        back: u64,
    },
    /// Many touches of one key at increasing times, which fill the activity queue with
    /// tombstones until it is compacted.
    TouchMany {
        key: u8,
        count: u16,
    },
    End {
        key: u8,
    },
    Advance {
        secs: u64,
    },
    /// One step of the running sweep, starting one if none runs.
    SweepStep {
        limit: usize,
    },
    /// A whole sweep in steps of `limit`.
    Sweep {
        limit: usize,
    },
    /// One step of a new sweep whose cutoff is `back` seconds before that of the
    /// running one, as when the idle timeout is raised during a sweep.
    Resweep {
        back: u64,
        limit: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0..KEYS, prop_oneof![3 => Just(0u64), 1 => 0..120u64])
            .prop_map(|(key, back)| Op::Touch { key, back }),
        1 => (0..KEYS, 1..5000u16).prop_map(|(key, count)| Op::TouchMany { key, count }),
        1 => (0..KEYS).prop_map(|key| Op::End { key }),
        3 => (0..80u64).prop_map(|secs| Op::Advance { secs }),
        2 => limit().prop_map(|limit| Op::SweepStep { limit }),
        1 => limit().prop_map(|limit| Op::Sweep { limit }),
        1 => (1..60u64, limit()).prop_map(|(back, limit)| Op::Resweep { back, limit }),
    ]
}

fn limit() -> impl Strategy<Value = usize> {
    prop_oneof![1..4usize, 4..64usize, Just(usize::MAX)]
}

fn strategy() -> impl Strategy<Value = SweepStrategy> {
    prop_oneof![
        Just(SweepStrategy::Auto),
        Just(SweepStrategy::Pop),
        Just(SweepStrategy::Scan),
    ]
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct ModelSession {
    source: Source,
    created: u64,
    last_active: u64,
    activity_count: u64,
}

/// The store under test, the model, and the engine's rules around them: the clock,
/// and the cutoff of the sweep in progress.
struct Harness {
    store: SessionStore,
    strategy: SweepStrategy,
    model: BTreeMap<String, ModelSession>,
    /// Nanoseconds since the origin.
    clock: u64,
    sweep_cutoff: Option<u64>,
    /// Last activity of the previous session removed by the running sweep.
    sweep_oldest: u64,
}

fn time(nanos: u64) -> MonoTime {
    MonoTime::from_duration(Duration::from_nanos(nanos))
}

fn secs(secs: u64) -> u64 {
    secs * 1_000_000_000
}

fn key_name(key: u8) -> String {
    format!("session-{key}")
}

impl Harness {
    fn new(strategy: SweepStrategy) -> Self {
        let mut store = SessionStore::new();
        store.set_sweep_strategy(strategy);
        Harness {
            store,
            strategy,
            model: BTreeMap::new(),
            clock: secs(1000),
            sweep_cutoff: None,
            sweep_oldest: 0,
        }
    }

    fn apply(&mut self, op: &Op) {
        match *op {
            Op::Touch { key, back } => {
                let at = self.clock - secs(back);
                self.touch(key, at);
            }
            Op::TouchMany { key, count } => {
                for _ in 0..count {
                    self.clock += 1;
                    self.touch(key, self.clock);
                }
            }
            Op::End { key } => {
                let name = key_name(key);
                let removed = self.store.remove(&name);
                let expected = self.model.remove(&name);
                assert_eq!(removed.is_some(), expected.is_some(), "end of {name}");
                if let (Some(removed), Some(expected)) = (removed, expected) {
                    assert_same(&removed, &expected);
                }
            }
            Op::Advance { secs: by } => self.clock += secs(by),
            Op::SweepStep { limit } => self.sweep_step(limit),
            Op::Sweep { limit } => {
                self.sweep_step(limit);
                while self.sweep_cutoff.is_some() {
                    self.sweep_step(limit);
                }
            }
            Op::Resweep { back, limit } => {
                if let Some(cutoff) = self.sweep_cutoff {
                    self.sweep_cutoff = Some(cutoff.saturating_sub(secs(back)));
                    self.sweep_oldest = 0;
                    self.sweep_step(limit);
                }
            }
        }
        self.check();
    }

    /// Applies activity as the engine worker does: activity during a sweep is recorded
    /// just after the sweep's cutoff, so the sweep never removes it.
    fn touch(&mut self, key: u8, at: u64) {
        let at = match self.sweep_cutoff {
            Some(cutoff) => at.max(cutoff + 1),
            None => at,
        };
        let name = key_name(key);
        let id = SessionId::new(&name).unwrap();
        let outcome = self.store.touch(
            &id,
            Source::Api,
            time(at),
            Duration::from_secs(TIMEOUT_SECS),
        );

        let fresh = ModelSession {
            source: Source::Api,
            created: at,
            last_active: at,
            activity_count: 1,
        };
        match self.model.get_mut(&name) {
            None => {
                assert_eq!(outcome, TouchOutcome::Created, "touch of new {name}");
                self.model.insert(name, fresh);
            }
            Some(session) if at.saturating_sub(session.last_active) >= secs(TIMEOUT_SECS) => {
                let TouchOutcome::Renewed { expired } = outcome else {
                    panic!("touch of stale {name} gave {outcome:?}");
                };
                assert_same(&expired, session);
                *session = fresh;
            }
            Some(session) => {
                assert_eq!(outcome, TouchOutcome::Touched, "touch of {name}");
                session.activity_count += 1;
                session.last_active = session.last_active.max(at);
            }
        }
    }

    fn sweep_step(&mut self, limit: usize) {
        let Some(cutoff) = self.sweep_cutoff.or_else(|| {
            let cutoff = self.clock.checked_sub(secs(TIMEOUT_SECS))?;
            self.sweep_oldest = 0;
            Some(cutoff)
        }) else {
            return;
        };
        self.sweep_cutoff = Some(cutoff);

        let mut removed: Vec<Session> = Vec::new();
        let progress = self.store.sweep_step(time(cutoff), limit, &mut removed);
        assert_eq!(progress.removed, removed.len());
        assert!(removed.len() <= limit, "a step removes at most its limit");

        for session in &removed {
            let name = session.id.as_str();
            let expected = self
                .model
                .remove(name)
                .unwrap_or_else(|| panic!("sweep removed unknown {name}"));
            assert_same(session, &expected);
            assert!(
                expected.last_active <= cutoff,
                "sweep removed active {name}"
            );
            if self.strategy == SweepStrategy::Pop {
                assert!(
                    expected.last_active >= self.sweep_oldest,
                    "sweep removed {name} out of order"
                );
            }
            self.sweep_oldest = expected.last_active;
        }
        let stale_left = self.model.values().any(|s| s.last_active <= cutoff);
        if progress.finished {
            assert!(!stale_left, "a finished sweep leaves no stale session");
            self.sweep_cutoff = None;
        }
    }

    fn check(&self) {
        assert_eq!(self.store.len(), self.model.len(), "session count");
        for (name, expected) in &self.model {
            let session = self
                .store
                .get(name)
                .unwrap_or_else(|| panic!("store lost {name}"));
            assert_same(&session, expected);
        }
        let ordered: Vec<Session> = self.store.iter().collect();
        assert_eq!(
            ordered.len(),
            self.model.len(),
            "iteration visits every session"
        );
        assert!(
            ordered
                .windows(2)
                .all(|pair| pair[0].last_active <= pair[1].last_active),
            "iteration is in order of last activity"
        );
        let oldest = self.model.values().map(|s| s.last_active).min();
        let least = self.store.least_recently_active();
        assert_eq!(least.map(|s| s.last_active), oldest.map(time));

        let cutoff = self.clock.saturating_sub(secs(TIMEOUT_SECS));
        let stale = self
            .model
            .values()
            .filter(|s| s.last_active <= cutoff)
            .count();
        assert_eq!(self.store.count_stale(time(cutoff)), stale, "stale count");
    }
}

fn assert_same(session: &Session, expected: &ModelSession) {
    let name = session.id.as_str();
    assert_eq!(session.source, expected.source, "source of {name}");
    assert_eq!(
        session.created,
        time(expected.created),
        "creation of {name}"
    );
    assert_eq!(
        session.last_active,
        time(expected.last_active),
        "last activity of {name}"
    );
    assert_eq!(
        session.activity_count, expected.activity_count,
        "activity count of {name}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 96,
        max_shrink_iters: 2000,
        ..ProptestConfig::default()
    })]

    #[test]
    fn store_matches_model(
        strategy in strategy(),
        ops in prop::collection::vec(op(), 1..160),
    ) {
        let mut harness = Harness::new(strategy);
        for op in &ops {
            harness.apply(op);
        }
        harness.apply(&Op::Sweep { limit: usize::MAX });
    }
}

/// The scanning strategy with steps that each clean only part of the hash table, while
/// new sessions grow the table between steps.
#[test]
fn scanning_sweep_survives_table_growth() {
    let mut harness = Harness::new(SweepStrategy::Scan);
    for key in 0..20 {
        harness.apply(&Op::Touch { key, back: 0 });
    }
    harness.apply(&Op::Advance { secs: 100 });
    harness.apply(&Op::SweepStep { limit: 1 });
    for key in 20..KEYS {
        harness.apply(&Op::Touch { key, back: 0 });
        harness.apply(&Op::SweepStep { limit: 1 });
    }
    harness.apply(&Op::Sweep { limit: 1 });
    assert_eq!(harness.store.len(), usize::from(KEYS - 20));
}
