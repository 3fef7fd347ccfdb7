//! The real window under Xvfb, with Mesa's software renderer: it opens, runs, and stops
//! cleanly on its own and on SIGTERM. Skipped, with a note, where Xvfb is not installed.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

/// A private X server for one test, stopped on drop.
struct VirtualDisplay {
    server: Child,
    name: String,
}

impl VirtualDisplay {
    fn start(number: u32) -> Option<VirtualDisplay> {
        let name = format!(":{number}");
        let server = Command::new("Xvfb")
            .args([
                name.as_str(),
                "-screen",
                "0",
                "1280x800x24",
                "-nolisten",
                "tcp",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let server = match server {
            Ok(server) => server,
            Err(error) => {
                eprintln!("note: skipping the window test, Xvfb could not start: {error}");
                return None;
            }
        };
        // Xvfb creates its socket once it accepts connections.
        let socket = format!("/tmp/.X11-unix/X{number}");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !Path::new(&socket).exists() && Instant::now() < deadline {
            sleep(Duration::from_millis(50));
        }
        Some(VirtualDisplay { server, name })
    }
}

impl Drop for VirtualDisplay {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}

fn display_number(offset: u32) -> u32 {
    200 + (std::process::id() % 500) * 2 + offset
}

fn start_app(display: &VirtualDisplay, args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_session-monitor"))
        .args(args)
        .env("DISPLAY", &display.name)
        .env_remove("WAYLAND_DISPLAY")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts")
}

/// Waits for the process to exit, killing it after `limit`.
fn wait_with_limit(mut child: Child, limit: Duration) -> (std::process::Output, Duration) {
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > limit {
            child.kill().unwrap();
            break;
        }
        sleep(Duration::from_millis(20));
    }
    let took = started.elapsed();
    (child.wait_with_output().unwrap(), took)
}

#[test]
fn window_runs_and_closes_after_duration() {
    let Some(display) = VirtualDisplay::start(display_number(0)) else {
        return;
    };
    let folder = tempfile::tempdir().unwrap();
    let export = folder.path().join("window.txt");
    let app = start_app(
        &display,
        &[
            "--duration",
            "3s",
            "--users",
            "3",
            "--export-log",
            export.to_str().unwrap(),
        ],
    );
    let (output, _) = wait_with_limit(app, Duration::from_secs(60));
    let stderr = String::from_utf8_lossy(&output.stderr);

    assert!(output.status.success(), "stderr: {stderr}");
    assert!(!stderr.contains("running headless"), "stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "stderr: {stderr}");
    let log = std::fs::read_to_string(&export).unwrap();
    assert!(log.contains("Scheduler started: stale session cleanup every 5m, idle timeout 5m"));
    let last = log.lines().last().unwrap();
    assert!(
        last.contains("INFO  Scheduler stopped"),
        "last line: {last}"
    );
}

#[test]
fn window_stops_on_sigterm() {
    let Some(display) = VirtualDisplay::start(display_number(1)) else {
        return;
    };
    let folder = tempfile::tempdir().unwrap();
    let export = folder.path().join("sigterm.jsonl");
    let app = start_app(
        &display,
        &["--users", "3", "--export-log", export.to_str().unwrap()],
    );
    sleep(Duration::from_secs(3));

    let terminated = Command::new("kill")
        .args(["-TERM", &app.id().to_string()])
        .status()
        .unwrap();
    assert!(terminated.success());
    let (output, took) = wait_with_limit(app, Duration::from_secs(20));
    let stderr = String::from_utf8_lossy(&output.stderr);

    assert!(output.status.success(), "stderr: {stderr}");
    assert!(took < Duration::from_secs(5), "exit took {took:?}");
    assert!(!stderr.contains("panicked"), "stderr: {stderr}");
    let log = std::fs::read_to_string(&export).unwrap();
    let last = log.lines().last().unwrap();
    assert!(
        last.contains("\"kind\":\"scheduler_stopped\""),
        "last line: {last}"
    );
}
