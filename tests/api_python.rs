//! Drives the API from a real `python3` process through `examples/session_client.py`,
//! against a real engine on a manual clock, and checks sessions, their expiry and the
//! removal causes through the API. Prints a note and passes without running where
//! python3 is not installed.

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command as Process, Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use crossbeam_channel::Receiver;
use serde_json::Value;
use session_monitor::engine::clock::{ManualClock, SharedClock};
use session_monitor::engine::event::Update;
use session_monitor::engine::{Engine, EngineConfig, no_waker};
use session_monitor::sources::api::{self, ApiOptions, Token};

const CLIENT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/session_client.py");

const WAIT: Duration = Duration::from_secs(5);

const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

fn python_available() -> bool {
    let found = Process::new("python3")
        .arg("--version")
        .output()
        .is_ok_and(|output| output.status.success());
    if !found {
        eprintln!("note: python3 is not installed; skipping the Python client test");
    }
    found
}

/// Runs the client with `args`, feeding `stdin` to it.
fn client(addr: SocketAddr, token_file: Option<&Path>, args: &[&str], stdin: &str) -> Output {
    let mut command = Process::new("python3");
    command
        .arg(CLIENT)
        .arg("--url")
        .arg(format!("http://{addr}"))
        .env_remove("SESSION_MONITOR_URL")
        .env_remove("SESSION_MONITOR_TOKEN_FILE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(path) = token_file {
        command.arg("--token-file").arg(path);
    }
    let mut child = command.args(args).spawn().expect("python3 starts");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// Runs the client and parses its output as JSON, failing on a non-zero exit.
fn client_json(addr: SocketAddr, args: &[&str]) -> Value {
    let output = client(addr, None, args, "");
    assert!(
        output.status.success(),
        "client {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("the client prints JSON")
}

/// An engine on a manual clock and the receiver of its updates, kept open while the
/// test runs.
type Started = (Engine, Receiver<Update>, ManualClock, ApiOptions);

fn start(name: &str, token: Option<Token>) -> Started {
    let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 12, 4, 10, 0, 0).unwrap());
    let shared: SharedClock = Arc::new(clock.clone());
    let config = EngineConfig {
        name: format!("api-python-{name}"),
        idle_timeout: IDLE_TIMEOUT,
        sweep_interval: Duration::from_secs(24 * 3600),
        ..EngineConfig::default()
    };
    let (engine, updates) = Engine::start(config, shared, no_waker()).unwrap();
    let mut options = ApiOptions::new("127.0.0.1:0".parse().unwrap());
    options.token = token;
    (engine, updates, clock, options)
}

#[test]
fn python_client_drives_sessions() {
    if !python_available() {
        return;
    }
    let (engine, _updates, clock, options) = start("sessions", None);
    let shared: SharedClock = Arc::new(clock.clone());
    let api = api::start(options, engine.commands(), shared).unwrap();
    let addr = api.local_addr().unwrap();

    let reported = client_json(addr, &["report", "alice", "--meta", "user=alice"]);
    assert_eq!(reported["accepted"], true);
    client_json(addr, &["report", "bob"]);
    client_json(addr, &["report", "carol/with slash"]);
    let batch = client(
        addr,
        None,
        &["batch"],
        "{\"id\": \"dave\", \"meta\": {\"user\": \"dave\"}}\n{\"id\": \"\"}\n",
    );
    assert!(batch.status.success());
    let batch: Value = serde_json::from_slice(&batch.stdout).unwrap();
    assert_eq!(batch["accepted"], 1);
    assert_eq!(batch["rejected"], 1);
    assert_eq!(batch["errors"][0]["line"], 2);
    engine.sync(WAIT).unwrap();

    let alice = client_json(addr, &["get", "alice"]);
    assert_eq!(alice["meta"]["user"], "alice");
    assert_eq!(alice["stale"], false);
    let listed = client_json(addr, &["list", "--limit", "2"]);
    assert_eq!(listed["total"], 4);
    assert_eq!(listed["returned"], 2);
    assert_eq!(client_json(addr, &["health"])["status"], "ok");

    // Logout ends carol; an id with a slash survives percent-encoding.
    let ended = client_json(addr, &["end", "carol/with slash"]);
    assert_eq!(ended["session"]["id"], "carol/with slash");
    engine.sync(WAIT).unwrap();

    // Past the idle timeout: bob comes back (expired on access), the rest go stale.
    clock.advance(IDLE_TIMEOUT + Duration::from_secs(1));
    assert_eq!(client_json(addr, &["get", "alice"])["stale"], true);
    client_json(addr, &["report", "bob"]);
    client_json(addr, &["sweep"]);
    engine.sync(WAIT).unwrap();

    let stats = client_json(addr, &["stats"]);
    assert_eq!(stats["sessions"], 1);
    assert_eq!(stats["removed"]["ended"], 1);
    assert_eq!(stats["removed"]["expired_on_access"], 1);
    assert_eq!(stats["removed"]["sweep"], 2, "alice and dave");
    assert_eq!(stats["removed"]["total"], 4);
    assert_eq!(stats["api"]["rejected"], 1);

    let gone = client(addr, None, &["get", "alice"], "");
    assert_eq!(gone.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&gone.stderr).contains("not_found"));
    let bad = client(addr, None, &["report", "bad\u{7}id"], "");
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("control character U+0007"));
}

#[test]
fn python_client_quiet_when_reader_closes() {
    if !python_available() {
        return;
    }
    let (engine, _updates, clock, options) = start("closed-pipe", None);
    let shared: SharedClock = Arc::new(clock);
    let api = api::start(options, engine.commands(), shared).unwrap();
    let addr = api.local_addr().unwrap();
    client_json(addr, &["report", "alice"]);

    // The read end closes before Python has started, so its output has nowhere to go.
    let mut child = Process::new("python3")
        .arg(CLIENT)
        .arg("--url")
        .arg(format!("http://{addr}"))
        .args(["list"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 starts");
    drop(child.stdout.take());
    let output = child.wait_with_output().unwrap();

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("Traceback"), "stderr: {stderr}");
    assert!(!stderr.contains("BrokenPipeError"), "stderr: {stderr}");
    assert_eq!(output.status.code(), Some(1));
}

#[test]
fn python_client_exit_codes() {
    if !python_available() {
        return;
    }
    let (engine, _updates, clock, options) = start("exit-codes", None);
    let shared: SharedClock = Arc::new(clock);
    let api = api::start(options, engine.commands(), shared).unwrap();
    let addr = api.local_addr().unwrap();

    let usage = client(addr, None, &["report", "alice", "--meta", "nokey"], "");
    assert_eq!(usage.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&usage.stderr).contains("--meta takes KEY=VALUE"));
    let batch = client(addr, None, &["batch"], "not json\n");
    assert_eq!(batch.status.code(), Some(2));

    if Path::new("/dev/full").exists() {
        let full = Process::new("python3")
            .arg(CLIENT)
            .arg("--url")
            .arg(format!("http://{addr}"))
            .arg("health")
            .stdout(std::fs::File::create("/dev/full").unwrap())
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&full.stderr);
        assert_eq!(full.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains("cannot write the output"), "{stderr}");
        assert!(!stderr.contains("Traceback"), "{stderr}");
    }
}

#[test]
fn python_client_sends_token() {
    if !python_available() {
        return;
    }
    let secret = "python-test-token-0123456789";
    let folder = tempfile::tempdir().unwrap();
    let token_file = folder.path().join("token");
    std::fs::write(&token_file, format!("{secret}\n")).unwrap();
    let token = Token::from_file(&token_file).unwrap();

    let (engine, _updates, clock, options) = start("token", Some(token));
    let api = api::start(options, engine.commands(), Arc::new(clock)).unwrap();
    let addr = api.local_addr().unwrap();

    let with_token = client(addr, Some(&token_file), &["report", "u1"], "");
    assert!(
        with_token.status.success(),
        "{}",
        String::from_utf8_lossy(&with_token.stderr)
    );
    let without = client(addr, None, &["report", "u1"], "");
    assert_eq!(without.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&without.stderr).contains("401 unauthorized"));
}
