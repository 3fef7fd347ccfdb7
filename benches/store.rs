//! Criterion benchmarks of the session store's two hot paths: a touch of an existing
//! session and a sweep of 1,000 stale sessions, on maps of 100k and 1M sessions with
//! 10-byte keys and uniform random access. `cargo bench --bench report` compares these
//! paths with other designs.

use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use session_monitor::engine::clock::MonoTime;
use session_monitor::engine::session::{SessionId, Source};
use session_monitor::engine::store::SessionStore;

const IDLE_TIMEOUT: Duration = Duration::from_secs(3600);

fn at(n: usize) -> MonoTime {
    MonoTime::from_duration(Duration::from_micros(n as u64))
}

/// Builds a store whose sessions were created in key order, then each touched once in
/// a random order, so order of last activity is unrelated to slab position.
fn aged_store(keys: &[SessionId]) -> SessionStore {
    let mut store = SessionStore::new();
    for (n, id) in keys.iter().enumerate() {
        store.touch(id, Source::Api, at(n), IDLE_TIMEOUT);
    }
    let mut order: Vec<usize> = (0..keys.len()).collect();
    fastrand::Rng::with_seed(1).shuffle(&mut order);
    for (k, &key) in order.iter().enumerate() {
        store.touch(&keys[key], Source::Api, at(keys.len() + k), IDLE_TIMEOUT);
    }
    store
}

fn keys(count: usize) -> Vec<SessionId> {
    (0..count)
        .map(|n| SessionId::new(&format!("s{n:09}")).unwrap())
        .collect()
}

fn touch(c: &mut Criterion) {
    let mut group = c.benchmark_group("touch");
    for size in [100_000, 1_000_000] {
        let keys = keys(size);
        let mut store = aged_store(&keys);
        let mut rng = fastrand::Rng::with_seed(2);
        let mut clock = 2 * size;
        group.bench_function(BenchmarkId::from_parameter(size), |b| {
            b.iter(|| {
                clock += 1;
                let id = &keys[rng.usize(0..size)];
                store.touch(id, Source::Api, at(clock), IDLE_TIMEOUT)
            })
        });
    }
    group.finish();
}

fn sweep_1000_stale(c: &mut Criterion) {
    let mut group = c.benchmark_group("sweep 1,000 stale");
    group.sample_size(10);
    for size in [100_000, 1_000_000] {
        let keys = keys(size);
        let mut store = aged_store(&keys);
        let mut swept = 0;
        group.bench_function(BenchmarkId::from_parameter(size), |b| {
            b.iter_custom(|iterations| {
                let mut total = Duration::ZERO;
                for _ in 0..iterations {
                    // Each run sweeps the next 1,000 of the original order; the map is
                    // rebuilt, untimed, before it runs low.
                    if swept + 1000 > size / 2 {
                        store = aged_store(&keys);
                        swept = 0;
                    }
                    swept += 1000;
                    let cutoff = at(size + swept - 1);
                    let started = Instant::now();
                    let mut removed = Vec::new();
                    while !store.sweep_step(cutoff, 4096, &mut removed).finished {
                        removed.clear();
                    }
                    total += started.elapsed();
                }
                total
            })
        });
    }
    group.finish();
}

criterion_group!(benches, touch, sweep_1000_stale);
criterion_main!(benches);
