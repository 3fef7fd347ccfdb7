//! Activity reports sent through the engine's command channel to its worker thread,
//! against the same reports sent one per command.

use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use session_monitor::engine::clock::{SharedClock, SystemClock};
use session_monitor::engine::event::{Activity, Command, Update};
use session_monitor::engine::session::{SessionId, Source};
use session_monitor::engine::{Engine, EngineConfig, no_waker};

use crate::workload::{keys, uniform_accesses};
use crate::{Comparison, Figure, Target};

/// Reports in one [`Command::TouchBatch`].
const BATCH: usize = 256;

/// Reports per timed run in batches, and one per command.
const BATCHED_REPORTS: usize = 4_000_000;
const SINGLE_REPORTS: usize = 1_000_000;

const TARGET_RATE: f64 = 3e6;

pub fn compare() -> Vec<Comparison> {
    // 1M sessions spread the touches over about 100 MB, so most miss every cache; 10k
    // sessions fit in the processor's caches.
    [1_000_000, 10_000]
        .into_iter()
        .map(|sessions| {
            let (batched, single) = rates(sessions);
            let name = format!(
                "activity reports through the command channel, {} sessions",
                if sessions >= 1_000_000 { "1M" } else { "10k" }
            );
            Comparison::new(
                name,
                Figure::PerSecond(batched, "reports"),
                Figure::PerSecond(single, "reports"),
                batched / single,
            )
            .baseline_text(format!(
                "{} (one report per command)",
                Figure::PerSecond(single, "reports")
            ))
            .target(Target::Absolute(
                ">= 3M reports/s in batches of 256",
                batched >= TARGET_RATE,
            ))
        })
        .collect()
}

/// Returns the rates of reports in batches and one per command, for uniform random
/// access over `sessions` sessions that already exist.
fn rates(sessions: usize) -> (f64, f64) {
    let keys = keys(sessions);
    let accesses = uniform_accesses(keys.len(), BATCHED_REPORTS, 21);
    let (engine, updates) = start(&format!("report-channel-{sessions}"));
    let drain = drain_updates(updates);

    let all: Vec<u32> = (0..keys.len() as u32).collect();
    send(&engine, &keys, &all, BATCH);
    sync(&engine);

    let batched = rate(&engine, &keys, &accesses, BATCH);
    let single = rate(&engine, &keys, &accesses[..SINGLE_REPORTS], 1);
    drop(engine);
    let _ = drain.join();
    (batched, single)
}

pub fn start(name: &str) -> (Engine, Receiver<Update>) {
    let clock: SharedClock = Arc::new(SystemClock::new());
    let config = EngineConfig {
        name: name.into(),
        ..EngineConfig::default()
    };
    Engine::start(config, clock, no_waker()).expect("engine starts")
}

/// Receives and drops updates on another thread, as a window that keeps up would.
pub fn drain_updates(updates: Receiver<Update>) -> thread::JoinHandle<()> {
    thread::Builder::new()
        .name("report-drain".into())
        .spawn(move || while updates.recv().is_ok() {})
        .expect("drain thread starts")
}

pub fn sync(engine: &Engine) {
    engine.sync(Duration::from_secs(600)).expect("engine syncs");
}

/// Sends one report per access, `batch` reports per command.
pub fn send(engine: &Engine, keys: &[SessionId], accesses: &[u32], batch: usize) {
    let commands = engine.commands();
    for chunk in accesses.chunks(batch) {
        let command = if batch == 1 {
            Command::Touch(activity(&keys[chunk[0] as usize]))
        } else {
            Command::TouchBatch(
                chunk
                    .iter()
                    .map(|&key| activity(&keys[key as usize]))
                    .collect(),
            )
        };
        commands.send(command).expect("engine is running");
    }
}

fn activity(id: &SessionId) -> Activity {
    Activity {
        id: id.clone(),
        source: Source::Api,
        at: None,
        meta: None,
    }
}

fn rate(engine: &Engine, keys: &[SessionId], accesses: &[u32], batch: usize) -> f64 {
    let started = Instant::now();
    send(engine, keys, accesses, batch);
    sync(engine);
    accesses.len() as f64 / started.elapsed().as_secs_f64()
}
