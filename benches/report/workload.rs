//! Keys, access patterns and maps shared by the comparisons. Keys are 10-byte strings
//! (`s000000042`), and access is uniform random over them.

use std::time::Duration;

use session_monitor::engine::clock::MonoTime;
use session_monitor::engine::session::{SessionId, Source};
use session_monitor::engine::store::SessionStore;

/// Idle timeout used where a store needs one; no session reaches it by accident.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(3600);

/// Returns `count` distinct 10-byte session ids.
pub fn keys(count: usize) -> Vec<SessionId> {
    (0..count)
        .map(|n| SessionId::new(&format!("s{n:09}")).expect("valid id"))
        .collect()
}

/// Returns `count` key indices drawn uniformly from `0..keys`, the same for a seed.
pub fn uniform_accesses(keys: usize, count: usize, seed: u64) -> Vec<u32> {
    let mut rng = fastrand::Rng::with_seed(seed);
    (0..count).map(|_| rng.u32(0..keys as u32)).collect()
}

/// Returns the time of the `n`th activity of a workload: `n` microseconds.
pub fn at(n: usize) -> MonoTime {
    MonoTime::from_duration(Duration::from_micros(n as u64))
}

/// A store of `keys.len()` sessions aged by uniform random access: each session was
/// created, then every session was touched once in a random order. Session `order[k]`
/// was last active at `at(keys.len() + k)`, so the first `k` of `order` are exactly
/// the sessions stale at cutoff `at(keys.len() + k - 1)`.
pub struct AgedStore {
    pub store: SessionStore,
    pub order: Vec<u32>,
}

impl AgedStore {
    pub fn build(keys: &[SessionId], seed: u64) -> AgedStore {
        let mut store = SessionStore::new();
        for (n, id) in keys.iter().enumerate() {
            store.touch(id, Source::Api, at(n), IDLE_TIMEOUT);
        }
        let order = shuffled(keys.len(), seed);
        for (k, &key) in order.iter().enumerate() {
            store.touch(
                &keys[key as usize],
                Source::Api,
                at(keys.len() + k),
                IDLE_TIMEOUT,
            );
        }
        AgedStore { store, order }
    }

    /// Returns the cutoff at which the first `stale` sessions of the order are stale.
    pub fn cutoff(&self, stale: usize) -> MonoTime {
        at(self.order.len() + stale - 1)
    }
}

/// Returns `0..count` in a random order, the same for a seed.
pub fn shuffled(count: usize, seed: u64) -> Vec<u32> {
    let mut order: Vec<u32> = (0..count as u32).collect();
    fastrand::Rng::with_seed(seed).shuffle(&mut order);
    order
}

/// A session record as a plain `HashMap` design keeps it. Only `last_active` is read;
/// the other fields give the record its real size.
#[derive(Debug, Clone)]
#[allow(dead_code)]
pub struct PlainSession {
    pub source: Source,
    pub created: MonoTime,
    pub last_active: MonoTime,
    pub activity_count: u64,
}
