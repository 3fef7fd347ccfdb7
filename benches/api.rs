//! Throughput of the local HTTP API against the engine's own command rate.
//!
//! Run with `cargo bench --bench api`. Each scenario runs for `API_BENCH_SECS` seconds
//! (3 by default) against a real engine on the system clock and the API on a loopback
//! port, with client threads in this process using keep-alive connections. A thread
//! drains the engine's updates, as the window does. Figures go to standard output.

#[path = "../tests/support/http.rs"]
mod http;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use http::Connection;
use session_monitor::engine::clock::{SharedClock, SystemClock};
use session_monitor::engine::event::{Activity, Command, Update};
use session_monitor::engine::session::{SessionId, Source};
use session_monitor::engine::{Engine, EngineConfig, no_waker};
use session_monitor::sources::api::{self, ApiOptions};

/// Distinct session ids the clients cycle through.
const SESSIONS: usize = 10_000;

/// Reports per batch request.
const BATCH: usize = 1_000;

/// Pause before retrying a request that got 503, so clients do not spin.
const RETRY_PAUSE: Duration = Duration::from_millis(1);

/// The engine and the API under test. Fields drop in order: the API stops first, then
/// the engine, whose closed update channel ends the drain thread.
struct Bench {
    _api: session_monitor::sources::RunningSource,
    engine: Engine,
    addr: SocketAddr,
    _drain: JoinHandle<()>,
}

impl Bench {
    fn start(name: &str) -> Bench {
        let clock: SharedClock = Arc::new(SystemClock::new());
        let config = EngineConfig {
            name: format!("api-bench-{name}"),
            ..EngineConfig::default()
        };
        let (engine, updates) = Engine::start(config, Arc::clone(&clock), no_waker()).unwrap();
        let drain = std::thread::spawn(move || drain(updates));
        let options = ApiOptions::new("127.0.0.1:0".parse().unwrap());
        let api = api::start(options, engine.commands(), clock).unwrap();
        Bench {
            addr: api.local_addr().unwrap(),
            _api: api,
            engine,
            _drain: drain,
        }
    }

    fn sync(&self) {
        self.engine.sync(Duration::from_secs(60)).unwrap();
    }
}

fn drain(updates: Receiver<Update>) {
    while updates.recv().is_ok() {}
}

fn bench_secs() -> Duration {
    let secs = std::env::var("API_BENCH_SECS")
        .ok()
        .and_then(|text| text.parse::<f64>().ok())
        .unwrap_or(3.0);
    Duration::from_secs_f64(secs)
}

fn activity(n: usize) -> Activity {
    Activity {
        id: SessionId::new(&format!("user-{}", n % SESSIONS)).unwrap(),
        source: Source::Api,
        at: None,
        meta: None,
    }
}

/// Sends reports straight into the command channel, in batches of `batch`, and returns
/// reports applied per second, counted until the engine has applied them all.
fn engine_rate(batch: usize, duration: Duration) -> f64 {
    let bench = Bench::start(&format!("engine-{batch}"));
    let commands = bench.engine.commands();
    let started = Instant::now();
    let mut sent = 0;
    while started.elapsed() < duration {
        let command = if batch == 1 {
            Command::Touch(activity(sent))
        } else {
            Command::TouchBatch((sent..sent + batch).map(activity).collect())
        };
        commands.send(command).unwrap();
        sent += batch;
    }
    bench.sync();
    sent as f64 / started.elapsed().as_secs_f64()
}

/// Result of one HTTP scenario.
struct Measured {
    requests: u64,
    reports: u64,
    busy: u64,
    elapsed: Duration,
}

/// Runs `clients` threads that each call `send` on their own keep-alive connection
/// until the time is up. `send` returns the status and the reports the request carried.
fn run_clients(
    bench: &Bench,
    clients: usize,
    duration: Duration,
    send: impl Fn(&mut Connection, usize) -> (u16, u64) + Send + Sync + 'static,
) -> Measured {
    let send = Arc::new(send);
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let threads: Vec<_> = (0..clients)
        .map(|client| {
            let send = Arc::clone(&send);
            let stop = Arc::clone(&stop);
            let addr = bench.addr;
            std::thread::spawn(move || {
                let mut connection = Connection::open(addr);
                let (mut requests, mut reports, mut busy) = (0u64, 0u64, 0u64);
                let mut n = client * SESSIONS / clients.max(1);
                while !stop.load(Ordering::Relaxed) {
                    let (status, carried) = send(&mut connection, n);
                    requests += 1;
                    match status {
                        202 => reports += carried,
                        503 => {
                            busy += 1;
                            std::thread::sleep(RETRY_PAUSE);
                        }
                        other => panic!("unexpected status {other}"),
                    }
                    n += 1;
                }
                (requests, reports, busy)
            })
        })
        .collect();
    std::thread::sleep(duration);
    stop.store(true, Ordering::Relaxed);
    let mut measured = Measured {
        requests: 0,
        reports: 0,
        busy: 0,
        elapsed: Duration::ZERO,
    };
    for thread in threads {
        let (requests, reports, busy) = thread.join().unwrap();
        measured.requests += requests;
        measured.reports += reports;
        measured.busy += busy;
    }
    bench.sync();
    measured.elapsed = started.elapsed();
    measured
}

fn single_reports(clients: usize, duration: Duration) -> Measured {
    let bench = Bench::start(&format!("single-{clients}"));
    run_clients(&bench, clients, duration, |connection, n| {
        let path = format!("/v1/sessions/user-{}/activity", n % SESSIONS);
        let response = connection.request("POST", &path, &[], b"").unwrap();
        (response.status, 1)
    })
}

fn batch_reports(clients: usize, json_lines: bool, duration: Duration) -> Measured {
    let bench = Bench::start(&format!("batch-{clients}-{json_lines}"));
    let bodies: Arc<Vec<Vec<u8>>> = Arc::new(
        (0..SESSIONS / BATCH)
            .map(|chunk| batch_body(chunk * BATCH, json_lines))
            .collect(),
    );
    let content_type = if json_lines {
        "application/x-ndjson"
    } else {
        "application/json"
    };
    run_clients(&bench, clients, duration, move |connection, n| {
        let body = &bodies[n % bodies.len()];
        let headers = [("Content-Type", content_type)];
        let response = connection
            .request("POST", "/v1/activity", &headers, body)
            .unwrap();
        (response.status, BATCH as u64)
    })
}

fn batch_body(first: usize, json_lines: bool) -> Vec<u8> {
    let items: Vec<serde_json::Value> = (first..first + BATCH)
        .map(|n| serde_json::json!({"id": format!("user-{}", n % SESSIONS), "meta": {"user": "u"}}))
        .collect();
    if json_lines {
        items
            .iter()
            .map(|item| format!("{item}\n"))
            .collect::<String>()
            .into_bytes()
    } else {
        serde_json::to_vec(&items).unwrap()
    }
}

fn print_row(name: &str, measured: &Measured) {
    let secs = measured.elapsed.as_secs_f64();
    println!(
        "{name:<44} {:>10.0} req/s {:>11.0} reports/s {:>6} busy (503)",
        measured.requests as f64 / secs,
        measured.reports as f64 / secs,
        measured.busy
    );
}

fn main() {
    let duration = bench_secs();
    println!(
        "API benchmark: {} s per scenario, {} CPUs, {} distinct sessions",
        duration.as_secs_f64(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        SESSIONS
    );

    println!(
        "{:<44} {:>10.0} reports/s",
        "engine channel, one Touch per report",
        engine_rate(1, duration)
    );
    println!(
        "{:<44} {:>10.0} reports/s",
        format!("engine channel, TouchBatch of {BATCH}"),
        engine_rate(BATCH, duration)
    );
    for clients in [1, 4] {
        let measured = single_reports(clients, duration);
        print_row(
            &format!("POST /v1/sessions/{{id}}/activity, {clients} conn"),
            &measured,
        );
    }
    for clients in [1, 2] {
        let measured = batch_reports(clients, false, duration);
        print_row(
            &format!("POST /v1/activity JSON x{BATCH}, {clients} conn"),
            &measured,
        );
    }
    let measured = batch_reports(1, true, duration);
    print_row(
        &format!("POST /v1/activity NDJSON x{BATCH}, 1 conn"),
        &measured,
    );
}
