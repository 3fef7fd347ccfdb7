//! Window tests: the real app over a real engine with a manual clock, driven through
//! egui_kittest by widget labels.

use std::fs;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use egui::{FontDefinitions, FontFamily, FontId};
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use epaint_default_fonts::NOTO_EMOJI_REGULAR;
use session_monitor::engine::clock::{ManualClock, SharedClock};
use session_monitor::engine::event::{Activity, Command, Event};
use session_monitor::engine::session::{SessionId, Source};
use session_monitor::engine::{Engine, EngineConfig, no_waker};
use session_monitor::runtime::Runtime;
use session_monitor::sources::RunningSource;
use session_monitor::ui::fonts::{self, FallbackFonts, Script};
use session_monitor::ui::{MonitorApp, PathPicker};

const MINUTE: Duration = Duration::from_secs(60);

/// Returns activity for `id` from the API source, stamped by the engine's clock.
fn activity(id: &str) -> Activity {
    Activity {
        id: SessionId::new(id).unwrap(),
        source: Source::Api,
        at: None,
        meta: None,
    }
}

/// Starts an engine on a manual clock with three sessions, and an app over it.
fn app_with_sessions(name: &str, picker: PathPicker) -> (MonitorApp, ManualClock) {
    let (runtime, clock) = runtime_with_sessions(name);
    (MonitorApp::new(runtime, picker, None), clock)
}

/// Starts an engine on a manual clock with three sessions, and a source beside it.
fn runtime_with_sessions(name: &str) -> (Runtime, ManualClock) {
    let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 1, 2, 10, 0, 0).unwrap());
    let shared: SharedClock = Arc::new(clock.clone());
    let config = EngineConfig {
        name: name.into(),
        ..EngineConfig::default()
    };
    let (engine, updates) = Engine::start(config, Arc::clone(&shared), no_waker()).unwrap();
    for (n, id) in ["user-a", "user-b", "user-c"].iter().enumerate() {
        clock.advance(Duration::from_secs(n as u64 * 10));
        engine.try_send(Command::Touch(activity(id))).unwrap();
        engine.sync(Duration::from_secs(10)).unwrap();
    }
    let source = RunningSource::spawn(
        &format!("{name}-source"),
        Source::Api,
        "test traffic".into(),
        engine.commands(),
        shared,
        |_context| {},
    )
    .unwrap();
    let runtime = Runtime {
        engine,
        updates,
        sources: vec![source],
    };
    (runtime, clock)
}

fn harness(app: MonitorApp) -> Harness<'static, MonitorApp> {
    // Applying engine updates has a time budget per frame, so on a loaded machine the
    // window may need a few more frames than usual to settle.
    Harness::builder()
        .with_size([1100.0, 700.0])
        .with_max_steps(200)
        .build_ui_state(|ui, app: &mut MonitorApp| app.show(ui), app)
}

fn no_dialog() -> PathPicker {
    Arc::new(|_suggested: PathBuf| None)
}

/// Steps the UI until `done` holds for the app, failing after a few seconds.
fn step_until(
    harness: &mut Harness<'_, MonitorApp>,
    what: &str,
    done: impl Fn(&MonitorApp) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done(harness.state()) {
        if Instant::now() > deadline {
            let log: Vec<String> = harness
                .state()
                .log()
                .iter()
                .map(|r| r.to_string())
                .collect();
            panic!(
                "timed out waiting for {what}; the log has:\n{}",
                log.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(5));
        harness.step();
    }
    harness.run();
}

fn log_contains(app: &MonitorApp, text: &str) -> bool {
    app.log()
        .iter()
        .any(|record| record.event.to_string().contains(text))
}

#[test]
fn table_lists_sessions() {
    let (app, _clock) = app_with_sessions("ui-table", no_dialog());
    let mut harness = harness(app);
    harness.run();
    for id in ["user-a", "user-b", "user-c"] {
        assert!(
            harness.query_by_label(id).is_some(),
            "{id} is not in the table"
        );
    }
    assert!(
        harness
            .query_by_label_contains("Next sweep in 4m 30s")
            .is_some()
    );
    assert!(harness.query_by_label("3 active").is_some());
}

#[test]
fn ages_advance_without_events() {
    let (app, clock) = app_with_sessions("ui-ages", no_dialog());
    let mut harness = harness(app);
    harness.run();
    clock.advance(Duration::from_secs(90));
    harness.run();
    // user-c was last active at 00:30; 90 s later it has been idle for 1m 30s.
    assert!(harness.query_by_label("1m 30s").is_some());
    assert!(
        harness.query_by_label("3m 30s").is_some(),
        "time until stale of user-c"
    );
}

#[test]
fn stale_rows_say_so() {
    let (app, clock) = app_with_sessions("ui-stale", no_dialog());
    let mut harness = harness(app);
    clock.advance(MINUTE * 4 + Duration::from_secs(45));
    harness.run();
    // user-a is idle 5m 15s, user-b 5m 5s, user-c 4m 55s.
    let stale = harness
        .query_all_by_label("stale, removed at next sweep")
        .count();
    assert_eq!(stale, 2);
    assert!(harness.query_by_label("2 stale awaiting sweep").is_some());
}

#[test]
fn sweep_now_removes_stale_rows() {
    let (app, clock) = app_with_sessions("ui-sweep", no_dialog());
    let mut harness = harness(app);
    clock.advance(MINUTE * 4 + Duration::from_secs(45));
    harness.run();

    harness.get_by_label("Sweep now").click();
    step_until(&mut harness, "the sweep to finish", |app| {
        log_contains(app, "Sweep finished")
    });

    assert!(harness.query_by_label("user-a").is_none());
    assert!(harness.query_by_label("user-b").is_none());
    assert!(harness.query_by_label("user-c").is_some());
    assert!(log_contains(harness.state(), "Sweep started (manual)"));
    assert!(log_contains(
        harness.state(),
        "Sweep finished: removed 2 stale sessions, 1 remaining"
    ));
    assert!(log_contains(
        harness.state(),
        "Session expired: user-a (api)"
    ));
    assert!(
        harness
            .query_by_label_contains("Sweep finished: removed 2 stale sessions")
            .is_some(),
        "the log pane shows the sweep"
    );
    assert!(harness.query_by_label("2 removed so far").is_some());
}

#[test]
fn sorting_by_requests_reorders() {
    let (app, _clock) = app_with_sessions("ui-sort", no_dialog());
    let engine = &app.runtime().unwrap().engine;
    for _ in 0..3 {
        engine.try_send(Command::Touch(activity("user-a"))).unwrap();
    }
    engine.sync(Duration::from_secs(10)).unwrap();
    let mut harness = harness(app);
    harness.run();

    let top = |harness: &Harness<'_, MonitorApp>| {
        let rows = ["user-a", "user-b", "user-c"];
        let mut positions: Vec<(f32, &str)> = rows
            .iter()
            .map(|id| (harness.get_by_label(id).rect().min.y, *id))
            .collect();
        positions.sort_by(|a, b| a.0.total_cmp(&b.0));
        positions[0].1
    };
    assert_eq!(top(&harness), "user-b", "user-b goes stale first");
    harness.get_by_label("Requests").click();
    harness.run();
    assert_eq!(top(&harness), "user-b", "fewest requests, then by id");
    harness.get_by_label("Requests").click();
    harness.run();
    assert_eq!(top(&harness), "user-a", "most requests");
    harness.get_by_label("Idle for").click();
    harness.run();
    assert_eq!(top(&harness), "user-a", "least idle");
}

#[test]
fn export_without_dialog_takes_typed_path() {
    let folder = tempfile::tempdir().unwrap();
    let path = folder.path().join("exported.csv");
    let (app, _clock) = app_with_sessions("ui-export", no_dialog());
    let mut harness = harness(app);
    harness.run();

    harness.get_by_label("Export log…").click();
    // The dialog returns its result on its own thread.
    let deadline = Instant::now() + Duration::from_secs(10);
    while harness
        .query_by_label_contains("No file dialog is available")
        .is_none()
    {
        assert!(
            Instant::now() < deadline,
            "the typed-path form did not open"
        );
        std::thread::sleep(Duration::from_millis(5));
        harness.step();
    }
    harness.run();

    let field = harness.get_by_role_and_label(egui::accesskit::Role::TextInput, "Path");
    field.focus();
    harness.run();
    harness.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::A);
    harness.run();
    let long_path = format!("/{}/log.csv", "folder-".repeat(14));
    let field = harness.get_by_role_and_label(egui::accesskit::Role::TextInput, "Path");
    field.type_text(&long_path);
    harness.run();
    let field = harness.get_by_role_and_label(egui::accesskit::Role::TextInput, "Path");
    assert!(
        field.rect().width() > 600.0,
        "a {}-character path left the field {} points wide",
        long_path.len(),
        field.rect().width()
    );

    harness.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::A);
    harness.run();
    let field = harness.get_by_role_and_label(egui::accesskit::Role::TextInput, "Path");
    field.type_text(path.to_str().unwrap());
    harness.run();
    harness.get_by_label("Export").click();
    step_until(&mut harness, "the export", |app| {
        log_contains(app, "Exported")
    });

    let written = std::fs::read_to_string(&path).unwrap();
    assert!(written.starts_with("seq,time,level,kind,session,message\n"));
    assert!(written.contains("Scheduler started: stale session cleanup every 5m"));
    assert!(written.contains("session_created,user-b,"));
    assert!(log_contains(harness.state(), "(CSV)"));
}

#[test]
fn failed_exit_export_is_reported() {
    let folder = tempfile::tempdir().unwrap();
    let path = folder.path().join("exit.csv");
    let (runtime, _clock) = runtime_with_sessions("ui-exit-export");
    let reported = Arc::new(OnceLock::new());
    let mut app = MonitorApp::new(runtime, no_dialog(), Some(path.clone()))
        .exit_export_error(reported.clone());
    // The folder was there at start and is gone at exit.
    drop(folder);
    app.shutdown();

    let error = reported.get().expect("the failed export is reported");
    assert!(error.contains(&path.display().to_string()), "{error}");
    assert!(error.contains("the folder does not exist"), "{error}");
}

#[test]
fn exit_export_writes_the_log() {
    let folder = tempfile::tempdir().unwrap();
    let path = folder.path().join("exit.csv");
    let (runtime, _clock) = runtime_with_sessions("ui-exit-export-ok");
    let reported = Arc::new(OnceLock::new());
    let mut app = MonitorApp::new(runtime, no_dialog(), Some(path.clone()))
        .exit_export_error(reported.clone());
    app.shutdown();

    assert!(reported.get().is_none());
    let written = std::fs::read_to_string(&path).unwrap();
    assert!(written.contains("Scheduler stopped"));
}

#[test]
fn export_failure_names_path() {
    let folder = tempfile::tempdir().unwrap();
    let missing = folder.path().join("no-such-folder").join("log.txt");
    let picked = missing.clone();
    let picker: PathPicker = Arc::new(move |_| Some(picked.clone()));
    let (app, _clock) = app_with_sessions("ui-export-fail", picker);
    let mut harness = harness(app);
    harness.run();

    harness.get_by_label("Export log…").click();
    step_until(&mut harness, "the export error", |app| {
        log_contains(app, "failed to export")
    });

    let expected = format!("failed to export the log to {}", missing.display());
    assert!(log_contains(harness.state(), &expected));
    assert!(
        harness
            .query_by_label_contains("Last error: failed to export")
            .is_some()
    );
    assert!(!missing.exists());
}

#[test]
fn engine_events_reach_log_pane() {
    let (app, _clock) = app_with_sessions("ui-log", no_dialog());
    let mut harness = harness(app);
    harness.run();
    assert!(
        harness
            .query_by_label_contains(
                "Scheduler started: stale session cleanup every 5m, idle timeout 5m"
            )
            .is_some()
    );
    assert!(log_contains(
        harness.state(),
        "Session created: user-a (api)"
    ));
    let created = harness
        .state()
        .log()
        .iter()
        .filter(|record| matches!(record.event, Event::SessionCreated { .. }))
        .count();
    assert_eq!(created, 3);
}

#[test]
fn table_escapes_hidden_id_characters() {
    let (app, _clock) = app_with_sessions("ui-hidden-chars", no_dialog());
    let engine = &app.runtime().unwrap().engine;
    for id in ["user-\u{202E}a", "user-\u{200B}b"] {
        engine.try_send(Command::Touch(activity(id))).unwrap();
    }
    engine.sync(Duration::from_secs(10)).unwrap();
    let mut harness = harness(app);
    harness.run();
    assert!(harness.query_by_label("user-\\u{202E}a").is_some());
    assert!(harness.query_by_label("user-\\u{200B}b").is_some());
    assert!(
        harness.query_by_label("user-a").is_some(),
        "the plain id is still its own row"
    );
    assert!(
        harness
            .query_by_label_contains("Session created: user-\\u{202E}a (api)")
            .is_some(),
        "the log pane shows the code point too"
    );
}

#[test]
fn empty_table_says_sessions_were_removed() {
    let (app, clock) = app_with_sessions("ui-all-removed", no_dialog());
    let mut harness = harness(app);
    harness.run();
    clock.advance(MINUTE * 10);
    harness.get_by_label("Sweep now").click();
    step_until(&mut harness, "the sweep to finish", |app| {
        log_contains(app, "Sweep finished")
    });
    assert!(
        harness
            .query_by_label("No sessions now; 3 removed so far")
            .is_some()
    );
    assert!(harness.query_by_label("No sessions yet").is_none());
}

#[test]
fn shutdown_with_open_save_dialog() {
    let (opened_tx, opened_rx) = crossbeam_channel::bounded::<()>(1);
    let (release_tx, release_rx) = crossbeam_channel::bounded::<()>(0);
    // A dialog that stays open until the test ends.
    let picker: PathPicker = Arc::new(move |_| {
        let _ = opened_tx.try_send(());
        let _ = release_rx.recv();
        None
    });
    let (app, _clock) = app_with_sessions("ui-exit-dialog", picker);
    let mut harness = harness(app);
    harness.run();
    harness.get_by_label("Export log…").click();
    harness.step();
    opened_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the save dialog opens");
    harness.step();

    let started = Instant::now();
    harness.state_mut().shutdown();
    let took = started.elapsed();
    assert!(harness.state().runtime().is_none());
    assert!(log_contains(harness.state(), "Scheduler stopped"));
    // Generous on a loaded machine. A shutdown that waited for the dialog would never
    // return before `release_tx` is dropped below.
    assert!(took < Duration::from_secs(5), "shutdown took {took:?}");
    drop(release_tx);
}

#[test]
fn hidden_window_catches_up_and_counts_drops() {
    let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 1, 2, 10, 0, 0).unwrap());
    let shared: SharedClock = Arc::new(clock);
    let config = EngineConfig {
        name: "ui-hidden".into(),
        max_pending_records: 10_000,
        ..EngineConfig::default()
    };
    let update_capacity = config.update_capacity;
    let (engine, updates) = Engine::start(config, shared, no_waker()).unwrap();

    // No frame is drawn while 60,000 sessions arrive, as when the window is minimised.
    let sessions = 60_000;
    for batch in 0..sessions / 1000 {
        let activities = (0..1000)
            .map(|n| activity(&format!("user-{batch}-{n}")))
            .collect();
        engine
            .send(Command::TouchBatch(activities), Duration::from_secs(10))
            .unwrap();
    }
    engine.sync(Duration::from_secs(30)).unwrap();
    assert!(updates.len() <= update_capacity);

    let runtime = Runtime {
        engine,
        updates,
        sources: Vec::new(),
    };
    let mut harness = harness(MonitorApp::new(runtime, no_dialog(), None));
    // Each frame applies updates for a bounded time, so the window catches up in a few
    // frames instead of freezing in one.
    let mut frames = 0;
    while harness.state().rows().len() < sessions {
        assert!(frames < 200, "the window did not catch up in 200 frames");
        harness.step();
        frames += 1;
    }

    let app = harness.state();
    assert_eq!(app.status().unwrap().sessions, sessions as u64);
    let log = app.log();
    let engine_records = log.iter().filter(|record| record.seq > 0).count() as u64;
    let last_seq = log.iter().map(|record| record.seq).max().unwrap();
    assert!(log.missing() > 0, "records were dropped while hidden");
    assert_eq!(
        engine_records + log.missing(),
        last_seq,
        "every record is in the log or counted as dropped"
    );
    let gap_lines = log
        .iter()
        .filter(|record| {
            record
                .event
                .to_string()
                .contains("log records were dropped because the window did not keep up")
        })
        .count();
    assert!(gap_lines > 0, "the log states the gap");
}

/// Emoji take the place of a script that egui's built-in fonts lack: egui bundles
/// NotoEmoji-Regular but leaves it out of its default fonts, so the tests can write it to
/// a folder as a system font.
static EMOJI: &[Script] = &[Script {
    name: "Emoji",
    samples: "😀",
    debian_package: "fonts-noto-color-emoji",
}];

fn has_emoji(harness: &Harness<'_, MonitorApp>, family: FontFamily) -> bool {
    harness
        .ctx
        .fonts_mut(|fonts| fonts.has_glyph(&FontId::new(14.0, family), '😀'))
}

#[test]
fn fallback_font_joins_both_families() {
    let folder = tempfile::tempdir().unwrap();
    fs::write(
        folder.path().join("NotoEmoji-Regular.ttf"),
        NOTO_EMOJI_REGULAR,
    )
    .unwrap();
    let found = FallbackFonts::search_folders(&[folder.path()], EMOJI);
    assert_eq!(found.fonts().len(), 1, "the emoji font is found");
    let fallback = found.fonts()[0].name.clone();

    let (app, _clock) = app_with_sessions("ui-fallback-font", no_dialog());
    let mut harness = harness(app);
    harness.run();
    assert!(!has_emoji(&harness, FontFamily::Proportional));

    fonts::install(&harness.ctx, &found);
    harness.run();
    // The harness panics on a glyph that no font has, so the id is sent only now.
    let engine = &harness.state().runtime().unwrap().engine;
    engine
        .try_send(Command::Touch(activity("user-😀")))
        .unwrap();
    step_until(&mut harness, "the emoji session", |app| {
        app.rows().len() == 4
    });

    let families = harness
        .ctx
        .fonts(|fonts| fonts.definitions().families.clone());
    let builtin = FontDefinitions::default().families;
    for family in [FontFamily::Proportional, FontFamily::Monospace] {
        let (last, first) = families[&family].split_last().unwrap();
        assert_eq!(last, &fallback, "{family:?} ends with the fallback");
        assert_eq!(
            first, builtin[&family],
            "{family:?} starts with the built-in fonts"
        );
        assert!(
            has_emoji(&harness, family.clone()),
            "{family:?} draws the emoji"
        );
    }
    assert!(harness.query_by_label("user-😀").is_some());
}

#[test]
fn no_fallback_keeps_builtin_fonts() {
    let folder = tempfile::tempdir().unwrap();
    let found = FallbackFonts::search_folders(&[folder.path()], EMOJI);
    assert!(found.fonts().is_empty());

    let (app, _clock) = app_with_sessions("ui-no-fallback-font", no_dialog());
    let mut harness = harness(app);
    harness.run();
    fonts::install(&harness.ctx, &found);
    harness.run();

    let definitions = harness.ctx.fonts(|fonts| fonts.definitions().clone());
    assert_eq!(definitions.families, FontDefinitions::default().families);
    assert!(harness.query_by_label("user-a").is_some());
}
