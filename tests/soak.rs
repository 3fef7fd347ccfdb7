//! Soak test: several threads create, touch and end sessions among 100,000 ids while
//! sweeps run every second, then the log is checked against the final map. It runs for
//! 3 seconds by default; set `SOAK_SECONDS` for a longer run.

use std::collections::HashSet;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use session_monitor::engine::clock::{SharedClock, SystemClock};
use session_monitor::engine::event::{Activity, Command, Event, Update};
use session_monitor::engine::session::{SessionId, Source};
use session_monitor::engine::{Engine, EngineConfig, no_waker};

const IDS: u64 = 100_000;
const WRITERS: u64 = 4;

fn soak_duration() -> Duration {
    let seconds = std::env::var("SOAK_SECONDS")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(3);
    Duration::from_secs(seconds)
}

fn id(n: u64) -> SessionId {
    SessionId::new(&format!("soak-{n}")).unwrap()
}

/// Sends random traffic until `until`; returns how many End commands it sent.
fn write_traffic(
    engine_commands: crossbeam_channel::Sender<Command>,
    seed: u64,
    until: Instant,
) -> u64 {
    let mut random = fastrand::Rng::with_seed(seed);
    let mut ends = 0;
    while Instant::now() < until {
        let command = match random.u8(0..10) {
            0 => {
                ends += 1;
                Command::End {
                    id: id(random.u64(0..IDS)),
                }
            }
            1 => Command::TouchBatch(
                (0..64)
                    .map(|_| Activity {
                        id: id(random.u64(0..IDS)),
                        source: Source::Api,
                        at: None,
                        meta: None,
                    })
                    .collect(),
            ),
            _ => Command::Touch(Activity {
                id: id(random.u64(0..IDS)),
                source: Source::Api,
                at: None,
                meta: None,
            }),
        };
        if engine_commands.send(command).is_err() {
            break;
        }
    }
    ends
}

#[test]
fn soak_counts_add_up() {
    let clock: SharedClock = Arc::new(SystemClock::new());
    let config = EngineConfig {
        name: "soak".into(),
        idle_timeout: Duration::from_millis(700),
        sweep_interval: Duration::from_secs(1),
        sweep_step: 1_000,
        ..EngineConfig::default()
    };
    let (engine, updates) = Engine::start(config, clock, no_waker()).unwrap();

    // The reader keeps up with the engine as a window would.
    let reader = thread::spawn(move || updates.iter().collect::<Vec<Update>>());
    let until = Instant::now() + soak_duration();
    let writers: Vec<_> = (0..WRITERS)
        .map(|seed| {
            let commands = engine.commands();
            thread::spawn(move || write_traffic(commands, seed, until))
        })
        .collect();
    let ends_sent: u64 = writers
        .into_iter()
        .map(|writer| writer.join().unwrap())
        .sum();

    engine
        .sync(Duration::from_secs(60))
        .expect("the engine answers after the load");
    let leftovers = engine.shutdown();
    let mut received = reader.join().unwrap();
    received.extend(leftovers);

    let mut alive: HashSet<String> = HashSet::new();
    let (mut created, mut removed, mut unknown_ends) = (0u64, 0u64, 0u64);
    let (mut sweeps_started, mut sweeps_ended) = (0u64, 0u64);
    let mut snapshots = 0;
    for update in &received {
        assert_eq!(update.records_dropped, 0, "the reader kept up");
        if update.snapshot.is_some() {
            snapshots += 1;
        }
        for record in &update.records {
            match &record.event {
                Event::SessionCreated { id, .. } => {
                    created += 1;
                    assert!(alive.insert(id.to_string()), "{id} created twice");
                }
                Event::SessionRemoved { id, .. } => {
                    removed += 1;
                    assert!(alive.remove(id.as_str()), "{id} removed while not alive");
                }
                Event::SweepStarted { .. } => sweeps_started += 1,
                Event::SweepFinished { .. } | Event::SweepFailed { .. } => sweeps_ended += 1,
                Event::Error { message } => {
                    assert!(message.contains("no such session"), "{message}");
                    unknown_ends += 1;
                }
                _ => {}
            }
        }
    }
    let last_status = &received.last().unwrap().status;

    assert_eq!(snapshots, 0);
    assert!(created > 0);
    assert!(sweeps_started >= 2, "sweeps ran during the load");
    assert_eq!(sweeps_started, sweeps_ended, "every sweep ended");
    assert_eq!(created - removed, alive.len() as u64);
    assert_eq!(last_status.sessions, alive.len() as u64);
    assert_eq!(last_status.removed_total, removed);
    assert!(unknown_ends <= ends_sent);
}
