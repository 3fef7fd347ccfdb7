//! Sweeps: ours against `HashMap::retain` and a Python dict comprehension, with 1,000
//! and with half of the sessions stale, and ours at two map sizes.

use std::collections::HashMap;
use std::time::Duration;

use session_monitor::engine::clock::MonoTime;
use session_monitor::engine::session::{Session, SessionId};
use session_monitor::engine::store::SessionStore;

use crate::workload::{AgedStore, PlainSession, keys};
use crate::{Comparison, Figure, Target, median_time, python};

/// Sessions a sweep step removes, as the engine's default configuration has it.
const STEP: usize = 4096;

/// Runs of the small sweeps; each removes the next 1,000 sessions of the order.
const SMALL_RUNS: usize = 9;

/// Sweeps the store to completion in steps of [`STEP`], collecting each step's
/// sessions the way the engine worker does. Returns how many it removed.
pub fn sweep(store: &mut SessionStore, cutoff: MonoTime) -> usize {
    let mut removed: Vec<Session> = Vec::with_capacity(STEP);
    let mut total = 0;
    loop {
        let progress = store.sweep_step(cutoff, STEP, &mut removed);
        total += removed.len();
        removed.clear();
        if progress.finished {
            return total;
        }
    }
}

fn plain_map(keys: &[SessionId], aged: &AgedStore) -> HashMap<String, PlainSession> {
    let mut map = HashMap::with_capacity(keys.len());
    for session in aged.store.iter() {
        let plain = PlainSession {
            source: session.source,
            created: session.created,
            last_active: session.last_active,
            activity_count: session.activity_count,
        };
        map.insert(session.id.as_str().to_owned(), plain);
    }
    map
}

fn retain(map: &mut HashMap<String, PlainSession>, cutoff: MonoTime) {
    map.retain(|_, session| session.last_active > cutoff);
}

/// Times small sweeps of 1,000 sessions, alternating between the two stores so both
/// see the same machine load. Returns the medians.
fn small_sweeps(big: &mut AgedStore, small: &mut AgedStore) -> (Duration, Duration) {
    let mut big_times = Vec::new();
    let mut small_times = Vec::new();
    for run in 1..=SMALL_RUNS {
        for (aged, times) in [(&mut *small, &mut small_times), (&mut *big, &mut big_times)] {
            let cutoff = aged.cutoff(run * 1000);
            let time = median_time(
                1,
                || (),
                |()| {
                    assert_eq!(sweep(&mut aged.store, cutoff), 1000);
                },
            );
            times.push(time);
        }
    }
    big_times.sort();
    small_times.sort();
    (big_times[SMALL_RUNS / 2], small_times[SMALL_RUNS / 2])
}

pub fn compare() -> Vec<Comparison> {
    let keys = keys(1_000_000);
    let mut big = AgedStore::build(&keys, 1);
    let mut small = AgedStore::build(&keys[..100_000], 2);
    let mut plain = plain_map(&keys, &big);
    let (ours_big, ours_small) = small_sweeps(&mut big, &mut small);

    let mut run = 0;
    let retain_small = median_time(
        SMALL_RUNS,
        || {
            run += 1;
            big.cutoff(run * 1000)
        },
        |cutoff| retain(&mut plain, cutoff),
    );
    drop((small, plain));

    let half = keys.len() / 2;
    let ours_half = median_time(
        3,
        || {
            let aged = AgedStore::build(&keys, 3);
            let cutoff = aged.cutoff(half);
            (aged, cutoff)
        },
        |(mut aged, cutoff)| {
            assert_eq!(sweep(&mut aged.store, cutoff), half);
            aged
        },
    );
    let retain_half = median_time(
        3,
        || {
            let aged = AgedStore::build(&keys, 3);
            let cutoff = aged.cutoff(half);
            (plain_map(&keys, &aged), cutoff)
        },
        |(mut map, cutoff)| {
            retain(&mut map, cutoff);
            assert_eq!(map.len(), half);
            map
        },
    );

    let mut lines = vec![
        Comparison::new(
            "sweep 1,000 stale: 1M sessions against 100k",
            Figure::Time(ours_big),
            Figure::Time(ours_small),
            ratio(ours_big, ours_small),
        )
        .target(Target::AtMost(1.5)),
        Comparison::new(
            "sweep 1,000 stale of 1M against HashMap::retain",
            Figure::Time(ours_big),
            Figure::Time(retain_small),
            ratio(retain_small, ours_big),
        )
        .target(Target::AtLeast(20.0)),
        Comparison::new(
            "sweep 500,000 stale of 1M against HashMap::retain",
            Figure::Time(ours_half),
            Figure::Time(retain_half),
            ratio(retain_half, ours_half),
        )
        .target(Target::AtLeast(1.0)),
    ];
    lines.extend(python_lines(keys.len(), ours_big, ours_half));
    lines
}

fn python_lines(sessions: usize, ours_small: Duration, ours_half: Duration) -> Vec<Comparison> {
    let mut lines = Vec::new();
    for (stale, ours, target) in [(1000, ours_small, 1000.0), (sessions / 2, ours_half, 10.0)] {
        let name = format!(
            "sweep {} stale of 1M against a Python dict comprehension",
            thousands(stale)
        );
        match python::comprehension_time(sessions, stale) {
            Ok(baseline) => lines.push(
                Comparison::new(
                    name,
                    Figure::Time(ours),
                    Figure::Time(baseline),
                    ratio(baseline, ours),
                )
                .target(Target::AtLeast(target)),
            ),
            Err(reason) => println!("{name}: skipped, {reason}"),
        }
    }
    lines
}

fn thousands(count: usize) -> String {
    match count {
        1000 => "1,000".into(),
        500_000 => "500,000".into(),
        other => other.to_string(),
    }
}

pub fn ratio(numerator: Duration, denominator: Duration) -> f64 {
    numerator.as_secs_f64() / denominator.as_secs_f64().max(1e-12)
}
