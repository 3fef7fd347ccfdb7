//! Window test with the API as a source: the top panel lists the API's address and
//! counters, and sessions reported over HTTP appear in the table with source "api".

mod support;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use session_monitor::engine::clock::{ManualClock, SharedClock};
use session_monitor::engine::{Engine, EngineConfig, no_waker};
use session_monitor::runtime::Runtime;
use session_monitor::sources::api::{self, ApiOptions};
use session_monitor::ui::{MonitorApp, PathPicker};
use support::http::request;

#[test]
fn panel_shows_api_and_its_sessions() {
    let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 12, 4, 10, 0, 0).unwrap());
    let shared: SharedClock = Arc::new(clock);
    let config = EngineConfig {
        name: "ui-api-test".into(),
        ..EngineConfig::default()
    };
    let (engine, updates) = Engine::start(config, Arc::clone(&shared), no_waker()).unwrap();
    let options = ApiOptions::new("127.0.0.1:0".parse().unwrap());
    let api = api::start(options, engine.commands(), shared).unwrap();
    let addr = api.local_addr().unwrap();

    let reported = request(addr, "POST", "/v1/sessions/from-http/activity", &[], b"");
    assert_eq!(reported.status, 202);
    let missing = request(addr, "GET", "/v1/sessions/nobody", &[], b"");
    assert_eq!(missing.status, 404);
    engine.sync(Duration::from_secs(5)).unwrap();

    let runtime = Runtime {
        engine,
        updates,
        sources: vec![api],
    };
    let picker: PathPicker = Arc::new(|_suggested: PathBuf| None);
    let app = MonitorApp::new(runtime, picker, None);
    let mut harness = Harness::builder()
        .with_size([1100.0, 700.0])
        .build_ui_state(|ui, app: &mut MonitorApp| app.show(ui), app);

    let deadline = Instant::now() + Duration::from_secs(10);
    while harness.query_by_label("from-http").is_none() {
        assert!(
            Instant::now() < deadline,
            "the reported session never appeared"
        );
        harness.step();
        std::thread::sleep(Duration::from_millis(10));
    }
    let listening = format!("Source: API listening on http://{addr}");
    assert!(harness.query_by_label(&listening).is_some(), "{listening}");
    assert!(harness.query_by_label_contains("requests/s").is_some());
    assert!(harness.query_by_label("2 requests").is_some());
    assert!(harness.query_by_label("1 report").is_some());
    assert!(harness.query_by_label("1 rejected").is_some());
    assert!(harness.query_by_label("api").is_some(), "the source column");

    harness.state_mut().shutdown();
}
