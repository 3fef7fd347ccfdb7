//! Touches of existing sessions: ours against `moka::sync::Cache` with `time_to_idle`,
//! on the same 1M keys and the same uniform random access sequence.

use std::time::{Duration, Instant};

use session_monitor::engine::session::{SessionId, Source};

use crate::workload::{AgedStore, IDLE_TIMEOUT, at, keys, uniform_accesses};
use crate::{Comparison, Figure, Target};

/// Touches per timed run.
const TOUCHES: usize = 1_000_000;

const RUNS: usize = 5;

pub fn compare() -> Vec<Comparison> {
    let keys = keys(1_000_000);
    let accesses = uniform_accesses(keys.len(), TOUCHES * RUNS, 11);
    let mut aged = AgedStore::build(&keys, 5);
    let cache = moka_cache(&keys);
    let mut clock = 2 * keys.len();

    // Runs alternate between the two, so both see the same machine load.
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    for batch in accesses.chunks(TOUCHES) {
        // As the engine worker applies a batch: each session's hash table bucket and
        // node are asked for a few touches ahead.
        ours.push(rate(batch, || {
            for (index, &key) in batch.iter().enumerate() {
                if let Some(&ahead) = batch.get(index + 16) {
                    aged.store.prefetch_bucket(keys[ahead as usize].as_str());
                }
                if let Some(&ahead) = batch.get(index + 8) {
                    aged.store.prefetch_session(keys[ahead as usize].as_str());
                }
                clock += 1;
                aged.store
                    .touch(&keys[key as usize], Source::Api, at(clock), IDLE_TIMEOUT);
            }
        }));
        theirs.push(rate(batch, || {
            for &key in batch {
                std::hint::black_box(cache.get(&keys[key as usize]));
            }
        }));
    }
    let (ours, theirs) = (median(ours), median(theirs));

    vec![
        Comparison::new(
            "touch 1M sessions at random against moka::sync::Cache (time_to_idle)",
            Figure::PerSecond(ours, "touches"),
            Figure::PerSecond(theirs, "touches"),
            ours / theirs,
        )
        .target(Target::AtLeast(5.0)),
    ]
}

/// Builds a moka cache of every key, whose entries expire after [`IDLE_TIMEOUT`]
/// without a read or write, so a read is moka's touch.
fn moka_cache(keys: &[SessionId]) -> moka::sync::Cache<SessionId, u64> {
    let cache = moka::sync::Cache::builder()
        .time_to_idle(IDLE_TIMEOUT)
        .build();
    for (n, id) in keys.iter().enumerate() {
        cache.insert(id.clone(), n as u64);
    }
    cache.run_pending_tasks();
    cache
}

/// Returns the rate of `touch`, which applies the touches of `batch`.
fn rate(batch: &[u32], touch: impl FnOnce()) -> f64 {
    let started = Instant::now();
    touch();
    batch.len() as f64 / started.elapsed().max(Duration::from_nanos(1)).as_secs_f64()
}

fn median(mut rates: Vec<f64>) -> f64 {
    rates.sort_by(f64::total_cmp);
    rates[rates.len() / 2]
}
