//! Replay of the real access logs at maximum speed, parsed and applied by the engine,
//! against parsing the same lines alone.
//!
//! The logs are short (22,471 lines together), so each is written out many times into
//! a temporary file, every copy shifted later in time by the span of the log plus a
//! day, which keeps the file in time order as a server would write it.

use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta};
use session_monitor::engine::clock::SharedClock;
use session_monitor::engine::{Engine, EngineConfig, no_waker};
use session_monitor::sources::access_log::parse_line;
use session_monitor::sources::replay::{ReplayOptions, ReplayPlan, Speed};

use crate::channel::drain_updates;
use crate::{Comparison, Figure, Target};

/// The real logs, relative to the crate root, which is where `cargo bench` runs.
const LOG_DIR: &str = "../shared/data";

/// Lines to replay from each log, at least.
const LINES_PER_LOG: usize = 500_000;

pub fn compare() -> Vec<Comparison> {
    let logs = match real_logs() {
        Ok(logs) if !logs.is_empty() => logs,
        Ok(_) | Err(_) => {
            println!("replay of the real access logs: skipped, no *.log files in {LOG_DIR}");
            return Vec::new();
        }
    };
    let folder = tempfile::tempdir().expect("temporary folder");
    let mut lines = 0;
    let mut replay_time = Duration::ZERO;
    let mut parse_time = Duration::ZERO;
    for (n, log) in logs.iter().enumerate() {
        let path = folder.path().join(format!("log-{n}.log"));
        let written = write_repeated(log, &path);
        lines += written;
        replay_time += replay(&path, n);
        parse_time += parse_only(&path);
    }
    let ours = lines as f64 / replay_time.as_secs_f64();
    let parse = lines as f64 / parse_time.as_secs_f64();
    vec![
        Comparison::new(
            format!("replay of the real access logs at max speed, {lines} lines"),
            Figure::PerSecond(ours, "lines"),
            Figure::PerSecond(parse, "lines"),
            ours / parse,
        )
        .baseline_text(format!(
            "{} (parsing alone)",
            Figure::PerSecond(parse, "lines")
        ))
        .target(Target::Absolute(">= 1M lines/s", ours >= 1e6)),
    ]
}

fn real_logs() -> std::io::Result<Vec<PathBuf>> {
    let mut logs: Vec<PathBuf> = fs::read_dir(LOG_DIR)?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "log"))
        .collect();
    logs.sort();
    Ok(logs)
}

/// Writes the log at `source` to `target` as often as needed for [`LINES_PER_LOG`]
/// lines, each copy shifted in time after the one before. Returns the line count.
fn write_repeated(source: &Path, target: &Path) -> usize {
    let text = fs::read_to_string(source).expect("log is readable");
    let lines: Vec<&str> = text.lines().collect();
    let times: Vec<Option<DateTime<chrono::FixedOffset>>> =
        lines.iter().map(|line| line_time(line)).collect();
    let first = times.iter().flatten().min().expect("log has times");
    let last = times.iter().flatten().max().expect("log has times");
    let shift = (*last - *first) + TimeDelta::days(1);

    let mut out = BufWriter::new(fs::File::create(target).expect("temporary file"));
    let copies = LINES_PER_LOG.div_ceil(lines.len());
    for copy in 0..copies as i32 {
        for (line, time) in lines.iter().zip(&times) {
            match time {
                Some(time) => {
                    let shifted = *time + shift * copy;
                    let (start, end) = time_span(line).expect("time was found");
                    let stamp = shifted.format("%d/%b/%Y:%H:%M:%S %z");
                    writeln!(out, "{}{stamp}{}", &line[..start], &line[end..]).unwrap();
                }
                None => writeln!(out, "{line}").unwrap(),
            }
        }
    }
    out.flush().unwrap();
    copies * lines.len()
}

/// Returns the byte range of the text between `[` and `]`.
fn time_span(line: &str) -> Option<(usize, usize)> {
    let start = line.find('[')? + 1;
    let end = start + line[start..].find(']')?;
    Some((start, end))
}

fn line_time(line: &str) -> Option<DateTime<chrono::FixedOffset>> {
    let (start, end) = time_span(line)?;
    DateTime::parse_from_str(&line[start..end], "%d/%b/%Y:%H:%M:%S %z").ok()
}

/// Replays `path` at maximum speed and returns the time from the start of the replay
/// thread until the engine has applied the last line.
fn replay(path: &Path, n: usize) -> Duration {
    let plan = ReplayPlan::open(ReplayOptions::new(path, Speed::Max)).expect("log opens");
    let clock: SharedClock = plan.clock();
    let config = EngineConfig {
        name: format!("report-replay-{n}"),
        ..EngineConfig::default()
    };
    let (engine, updates) = Engine::start(config, Arc::clone(&clock), no_waker()).unwrap();
    let drain = drain_updates(updates);
    let started = Instant::now();
    let source = plan.spawn(engine.commands()).expect("replay starts");
    while !source.stats().is_finished() {
        thread::sleep(Duration::from_millis(1));
    }
    engine.sync(Duration::from_secs(600)).expect("engine syncs");
    let took = started.elapsed();
    source.stop();
    drop(engine);
    let _ = drain.join();
    took
}

/// Parses every line of `path` and builds its session id, as the replay does.
fn parse_only(path: &Path) -> Duration {
    let bytes = fs::read(path).expect("log is readable");
    let started = Instant::now();
    let mut valid = 0usize;
    for line in bytes.split(|&byte| byte == b'\n') {
        if let Ok(parsed) = parse_line(line) {
            std::hint::black_box(parsed.session_id());
            valid += 1;
        }
    }
    std::hint::black_box(valid);
    started.elapsed()
}
