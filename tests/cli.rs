//! Command-line tests: the real binary, real files.

use std::path::Path;
use std::process::{Command, Output};

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/cli_replay.log");

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_session-monitor"))
        .args(args)
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .output()
        .expect("the binary runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn json_lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).expect("each line is JSON"))
        .collect()
}

fn count_kind(lines: &[serde_json::Value], kind: &str) -> usize {
    lines.iter().filter(|line| line["kind"] == kind).count()
}

#[test]
fn headless_replay_exports_jsonl() {
    let folder = tempfile::tempdir().unwrap();
    let export = folder.path().join("log.jsonl");
    let output = run(&[
        "--headless",
        "--replay",
        FIXTURE,
        "--speed",
        "max",
        "--duration",
        "20s",
        "--export-log",
        export.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "stderr: {}", stderr(&output));

    let lines = json_lines(&export);
    // 10.0.0.1 with its agent is quiet from 10:01 to 10:07, so it has two sessions;
    // 10.0.0.2, 10.0.0.3 (Macintosh) and 10.0.0.3 (curl) have one each.
    assert_eq!(count_kind(&lines, "session_created"), 5);
    assert_eq!(count_kind(&lines, "scheduler_started"), 1);
    assert_eq!(count_kind(&lines, "scheduler_stopped"), 1);
    assert_eq!(lines.first().unwrap()["kind"], "scheduler_started");
    assert_eq!(lines.last().unwrap()["kind"], "scheduler_stopped");
    let expired_on_access: Vec<_> = lines
        .iter()
        .filter(|line| line["kind"] == "session_removed")
        .filter(|line| {
            line["message"]
                .as_str()
                .unwrap()
                .contains("expired on access")
        })
        .collect();
    assert_eq!(expired_on_access.len(), 1);
    assert_eq!(
        expired_on_access[0]["session"],
        "10.0.0.1 Mozilla/5.0 (X11; Linux x86_64)"
    );
    let skipped = lines
        .iter()
        .filter(|line| line["level"] == "WARN")
        .filter(|line| line["message"].as_str().unwrap().contains("line 4"))
        .count();
    assert_eq!(skipped, 1, "the malformed line 4 is reported");
    assert_eq!(lines.first().unwrap()["time"], "2026-01-02T09:58:00.000Z");
}

#[test]
fn headless_prints_log_lines() {
    let output = run(&["--headless", "--replay", FIXTURE, "--speed", "max"]);
    assert!(output.status.success(), "stderr: {}", stderr(&output));
    let printed = stdout(&output);
    assert!(
        printed
            .contains("INFO  Scheduler started: stale session cleanup every 5m, idle timeout 5m")
    );
    assert!(printed.contains("INFO  Scheduler stopped"));
    assert!(
        !printed.contains("Session created"),
        "session lines need --verbose"
    );
}

#[test]
fn headless_simulator_stops_after_duration() {
    let folder = tempfile::tempdir().unwrap();
    let export = folder.path().join("log.txt");
    let output = run(&[
        "--headless",
        "--demo",
        "--users",
        "5",
        "--seed",
        "7",
        "--duration",
        "3500ms",
        "--verbose",
        "--export-log",
        export.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "stderr: {}", stderr(&output));
    let text = std::fs::read_to_string(&export).unwrap();
    assert!(text.contains("Scheduler started: stale session cleanup every 15s, idle timeout 20s"));
    // Every simulated user first acts within 3 s of the start.
    assert_eq!(text.matches("Session created: user-").count(), 5);
    assert!(text.lines().last().unwrap().contains("Scheduler stopped"));
    assert!(stdout(&output).contains("Exported"));
}

#[test]
fn missing_display_falls_back_to_headless() {
    let output = run(&["--duration", "200ms", "--users", "2"]);
    assert!(output.status.success(), "stderr: {}", stderr(&output));
    assert_eq!(
        stderr(&output).trim(),
        "No display found (DISPLAY and WAYLAND_DISPLAY are not set); running headless \
         (pass --headless to skip this check)"
    );
    assert!(stdout(&output).contains("Scheduler stopped"));
}

#[test]
fn missing_replay_file_is_one_line_error() {
    let output = run(&["--headless", "--replay", "/nonexistent/access.log"]);
    assert!(!output.status.success());
    let message = stderr(&output);
    assert_eq!(message.lines().count(), 1, "stderr: {message}");
    assert!(
        message.contains("/nonexistent/access.log"),
        "stderr: {message}"
    );
}

#[test]
fn export_to_missing_folder_fails() {
    let output = run(&[
        "--headless",
        "--replay",
        FIXTURE,
        "--speed",
        "max",
        "--export-log",
        "/nonexistent-folder/log.txt",
    ]);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("failed to export the log to /nonexistent-folder/log.txt"));
}

#[test]
fn invalid_duration_explains_units() {
    let output = run(&["--idle-timeout", "5"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("--idle-timeout"));
}

#[test]
fn reorder_window_over_a_day_rejected() {
    let output = run(&[
        "--headless",
        "--replay",
        FIXTURE,
        "--speed",
        "max",
        "--reorder-window",
        "2days",
    ]);
    assert_eq!(output.status.code(), Some(2));
    let message = stderr(&output);
    assert!(
        message.contains(
            "invalid value '2days' for '--reorder-window <DURATION>': must be at most 1day, \
             the longest reorder window; got 2days"
        ),
        "stderr: {message}"
    );
    assert!(stdout(&output).is_empty(), "no replay ran");
}

#[test]
fn bad_export_paths_rejected_at_start() {
    let folder = tempfile::tempdir().unwrap();
    let missing = folder.path().join("no-such-folder").join("log.csv");
    let unsupported = folder.path().join("log.pdf");
    let cases = [
        (missing.to_str().unwrap(), "the folder does not exist"),
        (unsupported.to_str().unwrap(), "unsupported extension .pdf"),
        (folder.path().to_str().unwrap(), "it is not a regular file"),
        ("", "the path is empty"),
    ];
    for (path, reason) in cases {
        // A long duration: the check must end the run before any of it passes.
        let output = run(&["--headless", "--duration", "1h", "--export-log", path]);
        assert_eq!(output.status.code(), Some(2), "{path}");
        let message = stderr(&output);
        assert!(message.contains("for '--export-log <PATH>'"), "{message}");
        assert!(message.contains(reason), "{message}");
        assert!(stdout(&output).is_empty(), "{path}: the program ran");
    }
}

#[test]
fn headless_escapes_direction_overrides() {
    let folder = tempfile::tempdir().unwrap();
    let log = folder.path().join("access.log");
    std::fs::write(
        &log,
        "10.0.0.1 - - [01/Jun/2024:10:00:00 +0000] \"GET / HTTP/1.1\" 200 1 \"-\" \"evil\u{202E}gpj.exe\"\n",
    )
    .unwrap();
    let output = run(&[
        "--headless",
        "--verbose",
        "--replay",
        log.to_str().unwrap(),
        "--speed",
        "max",
    ]);
    assert_eq!(output.status.code(), Some(0));
    let printed = stdout(&output);
    assert!(
        printed.contains("Session created: 10.0.0.1 evil\\u{202E}gpj.exe"),
        "{printed}"
    );
    assert!(!printed.contains('\u{202E}'), "{printed}");
}

#[test]
fn help_states_defaults() {
    let output = run(&["--help"]);
    let help = stdout(&output);
    assert!(help.contains("[default: 5m; 20s with --demo]"));
    assert!(help.contains("30s, 5m, 1h30m"));
}

#[test]
fn headless_stops_on_interrupt() {
    let child = Command::new(env!("CARGO_BIN_EXE_session-monitor"))
        .args(["--headless", "--users", "3"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    let interrupted = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(interrupted.success());

    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "stderr: {}", stderr(&output));
    let printed = stdout(&output);
    assert!(
        printed
            .lines()
            .last()
            .unwrap()
            .contains("Scheduler stopped")
    );
    assert!(!stderr(&output).contains("panicked"));
}

#[test]
fn window_flag_without_display_fails() {
    let output = run(&["--window", "--duration", "1s"]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stderr(&output).trim(),
        "session-monitor: No display found (DISPLAY and WAYLAND_DISPLAY are not set), \
         and --window requires a window"
    );
    assert!(stdout(&output).is_empty(), "no engine ran");
}

#[test]
fn export_to_full_disk_fails() {
    // A file size limit of one 512-byte block makes writes fail as on a full disk.
    let folder = tempfile::tempdir().unwrap();
    let export = folder.path().join("log.txt");
    let script = format!(
        "ulimit -f 1; trap '' XFSZ; exec {} --headless --replay {FIXTURE} --speed max \
         --verbose --export-log {}",
        env!("CARGO_BIN_EXE_session-monitor"),
        export.display()
    );
    let output = Command::new("bash").args(["-c", &script]).output().unwrap();
    assert_eq!(output.status.code(), Some(1), "stderr: {}", stderr(&output));
    let message = stderr(&output);
    assert!(message.contains(&format!("failed to export the log to {}", export.display())));
    assert!(message.contains("File too large"), "stderr: {message}");
    assert!(!export.exists());
    let leftovers = std::fs::read_dir(folder.path()).unwrap().count();
    assert_eq!(leftovers, 0, "the temporary file is removed");
}

#[test]
fn export_to_read_only_folder_fails() {
    use std::os::unix::fs::PermissionsExt;

    let folder = tempfile::tempdir().unwrap();
    std::fs::set_permissions(folder.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let read_only = folder.path().join("locked");
    std::fs::create_dir(&read_only).unwrap();
    std::fs::set_permissions(&read_only, std::fs::Permissions::from_mode(0o555)).unwrap();
    let export = read_only.join("log.csv");

    // Root ignores permission bits, so as root the program runs as the user nobody.
    let binary = env!("CARGO_BIN_EXE_session-monitor");
    let arguments = [
        "--headless",
        "--replay",
        FIXTURE,
        "--speed",
        "max",
        "--export-log",
        export.to_str().unwrap(),
    ];
    let running_as_root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|output| output.stdout == b"0\n");
    let output = if running_as_root {
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", binary])
            .args(arguments)
            .output()
            .unwrap()
    } else {
        run(&arguments)
    };

    assert_eq!(output.status.code(), Some(1), "stderr: {}", stderr(&output));
    let message = stderr(&output);
    assert!(message.contains(&format!("failed to export the log to {}", export.display())));
    assert!(message.contains("Permission denied"), "stderr: {message}");
    assert!(!export.exists());
}
