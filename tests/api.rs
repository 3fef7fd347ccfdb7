//! Tests of the HTTP API over a real loopback socket: a real engine on a manual clock,
//! the server on an ephemeral port, and a raw HTTP/1.1 client.
//!
//! Each test starts its own engine under a unique name, because only one engine of a
//! name may run in a process.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use crossbeam_channel::Receiver;
use serde_json::{Value, json};
use session_monitor::engine::clock::{ManualClock, SharedClock};
use session_monitor::engine::event::{Command, Update};
use session_monitor::engine::{Engine, EngineConfig, no_waker};
use session_monitor::sources::RunningSource;
use session_monitor::sources::api::{self, ApiOptions, ApiStartError, Token};
use support::http::{Connection, Response, request};

const WAIT: Duration = Duration::from_secs(5);

const IDLE_TIMEOUT: Duration = Duration::from_secs(300);

const TOKEN: &str = "test-token-0123456789";

/// A running engine on a manual clock with the API in front of it.
struct Server {
    addr: SocketAddr,
    clock: ManualClock,
    engine: Engine,
    api: Option<RunningSource>,
    _updates: Receiver<Update>,
}

impl Server {
    fn start(name: &str) -> Server {
        Server::with(name, |_| {})
    }

    fn with(name: &str, adjust: impl FnOnce(&mut ApiOptions)) -> Server {
        let wall = Utc.with_ymd_and_hms(2026, 12, 4, 10, 0, 0).unwrap();
        let clock = ManualClock::new(wall);
        let shared: SharedClock = Arc::new(clock.clone());
        let config = EngineConfig {
            name: format!("api-test-{name}"),
            idle_timeout: IDLE_TIMEOUT,
            sweep_interval: Duration::from_secs(24 * 3600),
            ..EngineConfig::default()
        };
        let (engine, updates) = Engine::start(config, Arc::clone(&shared), no_waker()).unwrap();
        let mut options = ApiOptions::new("127.0.0.1:0".parse().unwrap());
        adjust(&mut options);
        let api = api::start(options, engine.commands(), shared).unwrap();
        Server {
            addr: api.local_addr().expect("the API reports its address"),
            clock,
            engine,
            api: Some(api),
            _updates: updates,
        }
    }

    fn get(&self, path: &str) -> Response {
        request(self.addr, "GET", path, &[], b"")
    }

    fn post(&self, path: &str, body: &str) -> Response {
        let headers = [("Content-Type", "application/json")];
        request(self.addr, "POST", path, &headers, body.as_bytes())
    }

    fn delete(&self, path: &str) -> Response {
        request(self.addr, "DELETE", path, &[], b"")
    }

    /// Waits until the engine has applied every command sent so far.
    fn sync(&self) {
        self.engine.sync(WAIT).unwrap();
    }

    fn wall(&self, minutes_after_start: i64) -> String {
        let start = Utc.with_ymd_and_hms(2026, 12, 4, 10, 0, 0).unwrap();
        (start + chrono::Duration::minutes(minutes_after_start)).to_rfc3339()
    }
}

fn assert_error(response: &Response, status: u16, error: &str) -> Value {
    assert_eq!(
        response.status,
        status,
        "body: {}",
        String::from_utf8_lossy(&response.body)
    );
    let body = response.json();
    assert_eq!(body["error"], error, "body: {body}");
    assert!(
        body["reason"]
            .as_str()
            .is_some_and(|reason| !reason.is_empty())
    );
    body
}

fn secs(value: &Value) -> f64 {
    value
        .as_f64()
        .unwrap_or_else(|| panic!("not a number: {value}"))
}

#[test]
fn report_then_read_session() {
    let server = Server::start("report-read");
    let reported = server.post(
        "/v1/sessions/user%2042/activity",
        r#"{"meta": {"user": "user-42"}}"#,
    );
    assert_eq!(reported.status, 202);
    assert_eq!(reported.json()["id"], "user 42");
    assert_eq!(reported.json()["at"], "2026-12-04T10:00:00.000Z");
    server.sync();

    server.clock.advance(Duration::from_secs(90));
    let session = server.get("/v1/sessions/user%2042").json();
    assert_eq!(session["id"], "user 42");
    assert_eq!(session["source"], "api");
    assert_eq!(session["activity_count"], 1);
    assert_eq!(session["meta"]["user"], "user-42");
    assert_eq!(secs(&session["idle_secs"]), 90.0);
    assert_eq!(secs(&session["stale_in_secs"]), 210.0);
    assert_eq!(session["stale"], false);
    assert_eq!(session["last_active_at"], "2026-12-04T10:00:00.000Z");
    assert_eq!(session["stale_at"], "2026-12-04T10:05:00.000Z");
}

#[test]
fn empty_body_reports_now() {
    let server = Server::start("empty-body");
    server.clock.advance(Duration::from_secs(30));
    let response = request(server.addr, "POST", "/v1/sessions/a/activity", &[], b"");
    assert_eq!(response.status, 202);
    assert_eq!(response.json()["at"], "2026-12-04T10:00:30.000Z");
    assert_eq!(response.json()["clamped_to_now"], false);
}

#[test]
fn list_is_bounded_with_total() {
    let server = Server::start("list");
    for n in 0..5 {
        server.post(&format!("/v1/sessions/s{n}/activity"), "");
        server.clock.advance(Duration::from_secs(1));
    }
    server.sync();

    let list = server.get("/v1/sessions?limit=2").json();
    assert_eq!(list["total"], 5);
    assert_eq!(list["returned"], 2);
    assert_eq!(list["limit"], 2);
    let ids: Vec<&str> = list["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|session| session["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["s0", "s1"], "least recently active first");

    let all = server.get("/v1/sessions").json();
    assert_eq!(all["returned"], 5);
    assert_eq!(all["limit"], 1000);

    assert_error(
        &server.get("/v1/sessions?limit=10001"),
        400,
        "invalid_query",
    );
    assert_error(&server.get("/v1/sessions?limit=-1"), 400, "invalid_query");
    assert_error(&server.get("/v1/sessions?limt=5"), 400, "invalid_query");
}

#[test]
fn batch_array_counts_and_reasons() {
    let server = Server::start("batch-array");
    let body = json!([
        {"id": "a", "meta": {"user": "ann"}},
        {"id": "b", "at": server.wall(0)},
        {"id": ""},
        {"id": "c", "at": "not a time"},
        {"id": "d", "meta": {"user": 7}},
        "e",
    ]);
    let response = server.post("/v1/activity", &body.to_string());
    assert_eq!(response.status, 202);
    let result = response.json();
    assert_eq!(result["accepted"], 2);
    assert_eq!(result["rejected"], 4);
    assert_eq!(result["errors_truncated"], false);
    let errors = result["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 4);
    assert_eq!(errors[0]["index"], 2);
    assert_eq!(errors[0]["error"], "invalid_id");
    assert_eq!(errors[1]["index"], 3);
    assert_eq!(errors[1]["id"], "c");
    assert_eq!(errors[1]["error"], "invalid_at");
    assert_eq!(errors[2]["id"], "d");
    assert_eq!(errors[2]["error"], "invalid_body");
    assert_eq!(errors[3]["index"], 5);
    server.sync();

    let list = server.get("/v1/sessions").json();
    assert_eq!(list["total"], 2);
    assert_eq!(server.get("/v1/sessions/a").json()["meta"]["user"], "ann");
}

#[test]
fn batch_json_lines_numbers_lines() {
    let server = Server::start("batch-lines");
    let body = "{\"id\": \"a\"}\n\n{\"id\": \"b\", \"at\": \"yesterday\"}\n{\"id\": \"c\"}\n";
    let headers = [("Content-Type", "application/x-ndjson")];
    let response = request(
        server.addr,
        "POST",
        "/v1/activity",
        &headers,
        body.as_bytes(),
    );
    assert_eq!(response.status, 202);
    let result = response.json();
    assert_eq!(result["accepted"], 2);
    assert_eq!(result["rejected"], 1);
    assert_eq!(result["errors"][0]["line"], 3);
    assert_eq!(result["errors"][0]["id"], "b");
    server.sync();
    assert_eq!(server.get("/v1/sessions").json()["total"], 2);
}

#[test]
fn batch_limits() {
    let server = Server::with("batch-limits", |options| {
        options.limits.max_batch_reports = 3;
    });
    let four = json!([{"id": "a"}, {"id": "b"}, {"id": "c"}, {"id": "d"}]).to_string();
    assert_error(&server.post("/v1/activity", &four), 413, "invalid_body");
    assert_error(
        &server.post("/v1/activity", r#"{"id": "a"}"#),
        400,
        "invalid_body",
    );
    assert_error(&server.post("/v1/activity", "[{"), 400, "invalid_body");
    let text = [("Content-Type", "text/plain")];
    let response = request(server.addr, "POST", "/v1/activity", &text, b"[]");
    assert_error(&response, 415, "unsupported_media_type");

    // Rejections past the first hundred are counted but not listed.
    let server = Server::with("batch-many-rejections", |options| {
        options.limits.max_batch_reports = 1000;
    });
    let many: Vec<Value> = (0..150).map(|_| json!({"id": ""})).collect();
    let result = server
        .post("/v1/activity", &Value::from(many).to_string())
        .json();
    assert_eq!(result["rejected"], 150);
    assert_eq!(result["errors"].as_array().unwrap().len(), 100);
    assert_eq!(result["errors_truncated"], true);
}

#[test]
fn delete_ends_session() {
    let server = Server::start("delete");
    server.post("/v1/sessions/alice/activity", "");
    server.sync();

    let ended = server.delete("/v1/sessions/alice");
    assert_eq!(ended.status, 200);
    assert_eq!(ended.json()["ended"], true);
    assert_eq!(ended.json()["session"]["id"], "alice");
    server.sync();

    assert_error(&server.get("/v1/sessions/alice"), 404, "not_found");
    assert_error(&server.delete("/v1/sessions/alice"), 404, "not_found");
    let stats = server.get("/v1/stats").json();
    assert_eq!(stats["removed"]["ended"], 1);
    assert_eq!(stats["removed"]["total"], 1);
    assert_eq!(stats["sessions"], 0);
}

#[test]
fn sweep_removes_stale_sessions() {
    let server = Server::start("sweep");
    server.post("/v1/sessions/old/activity", "");
    server.sync();
    server.clock.advance(Duration::from_secs(200));
    server.post("/v1/sessions/new/activity", "");
    server.sync();
    server.clock.advance(Duration::from_secs(150));

    let before = server.get("/v1/stats").json();
    assert_eq!(before["stale"], 1);
    assert_eq!(server.get("/v1/sessions/old").json()["stale"], true);

    let response = request(server.addr, "POST", "/v1/sweep", &[], b"");
    assert_eq!(response.status, 202);
    server.sync();

    let after = server.get("/v1/stats").json();
    assert_eq!(after["stale"], 0);
    assert_eq!(after["sessions"], 1);
    assert_eq!(after["removed"]["sweep"], 1);
    assert_eq!(after["sweeps_finished"], 1);
    assert_eq!(after["last_sweep"]["removed"], 1);
    assert_eq!(after["last_sweep"]["trigger"], "manual");
    assert_error(&server.get("/v1/sessions/old"), 404, "not_found");
}

#[test]
fn stale_session_expires_on_access() {
    let server = Server::start("expire-on-access");
    server.post("/v1/sessions/bob/activity", "");
    server.sync();
    server.clock.advance(IDLE_TIMEOUT + Duration::from_secs(1));
    server.post("/v1/sessions/bob/activity", "");
    server.sync();

    let stats = server.get("/v1/stats").json();
    assert_eq!(stats["removed"]["expired_on_access"], 1);
    let bob = server.get("/v1/sessions/bob").json();
    assert_eq!(
        bob["activity_count"], 1,
        "a new session replaced the stale one"
    );
}

#[test]
fn out_of_order_times_keep_latest() {
    let server = Server::start("out-of-order");
    server.clock.advance(Duration::from_secs(600));
    let late = json!({"at": server.wall(8)}).to_string();
    let early = json!({"at": server.wall(3)}).to_string();
    assert_eq!(server.post("/v1/sessions/u/activity", &late).status, 202);
    assert_eq!(server.post("/v1/sessions/u/activity", &early).status, 202);
    server.sync();

    let session = server.get("/v1/sessions/u").json();
    assert_eq!(session["last_active_at"], "2026-12-04T10:08:00.000Z");
    assert_eq!(session["activity_count"], 2);
    assert_eq!(secs(&session["idle_secs"]), 120.0);

    let batch = json!([
        {"id": "v", "at": server.wall(9)},
        {"id": "v", "at": server.wall(7)},
    ]);
    server.post("/v1/activity", &batch.to_string());
    server.sync();
    let session = server.get("/v1/sessions/v").json();
    assert_eq!(session["last_active_at"], "2026-12-04T10:09:00.000Z");
    assert_eq!(session["activity_count"], 2);
}

#[test]
fn future_time_clamps_to_now() {
    let server = Server::start("future");
    server.clock.advance(Duration::from_secs(60));
    let body = json!({"at": server.wall(30)}).to_string();
    let response = server.post("/v1/sessions/u/activity", &body);
    assert_eq!(response.status, 202);
    assert_eq!(response.json()["clamped_to_now"], true);
    assert_eq!(response.json()["at"], "2026-12-04T10:01:00.000Z");
}

#[test]
fn old_time_creates_stale_session() {
    let server = Server::start("old-time");
    server.clock.advance(Duration::from_secs(3600));
    let body = json!({"at": server.wall(10)}).to_string();
    assert_eq!(server.post("/v1/sessions/late/activity", &body).status, 202);
    server.sync();
    let session = server.get("/v1/sessions/late").json();
    assert_eq!(session["stale"], true);
    assert_eq!(secs(&session["stale_in_secs"]), 0.0);

    // A time before the engine's clock began counts as its start.
    let body = json!({"at": "2020-01-01T00:00:00Z"}).to_string();
    let response = server.post("/v1/sessions/ancient/activity", &body);
    assert_eq!(response.json()["at"], "2026-12-04T10:00:00.000Z");

    request(server.addr, "POST", "/v1/sweep", &[], b"");
    server.sync();
    assert_error(&server.get("/v1/sessions/late"), 404, "not_found");
}

#[test]
fn invalid_ids_are_rejected() {
    let server = Server::start("invalid-ids");
    let empty = server.post("/v1/sessions//activity", "");
    let body = assert_error(&empty, 400, "invalid_id");
    assert!(body["reason"].as_str().unwrap().contains("empty"));
    assert_error(&server.get("/v1/sessions/"), 400, "invalid_id");

    let long = format!("/v1/sessions/{}/activity", "a".repeat(257));
    let body = assert_error(&server.post(&long, ""), 400, "invalid_id");
    assert!(
        body["reason"]
            .as_str()
            .unwrap()
            .contains("257 bytes long; the maximum is 256")
    );
    let at_limit = format!("/v1/sessions/{}/activity", "a".repeat(256));
    assert_eq!(server.post(&at_limit, "").status, 202);

    let control = assert_error(
        &server.post("/v1/sessions/a%0Ab/activity", ""),
        400,
        "invalid_id",
    );
    assert!(control["reason"].as_str().unwrap().contains("U+000A"));
    let escape = assert_error(&server.get("/v1/sessions/%1B%5B31m"), 400, "invalid_id");
    assert!(escape["reason"].as_str().unwrap().contains("U+001B"));

    let utf8 = assert_error(
        &server.post("/v1/sessions/ok%FF/activity", ""),
        400,
        "invalid_id",
    );
    assert!(utf8["reason"].as_str().unwrap().contains("not valid UTF-8"));
    assert_error(&server.delete("/v1/sessions/%C3%28"), 400, "invalid_id");
}

#[test]
fn formula_prefixed_ids_are_stored() {
    let server = Server::start("formula-ids");
    let ids = [
        ("%3D1%2B1", "=1+1"),
        ("+441234", "+441234"),
        ("-1", "-1"),
        ("%40alice", "@alice"),
    ];
    for (encoded, id) in ids {
        let response = server.post(&format!("/v1/sessions/{encoded}/activity"), "");
        assert_eq!(response.status, 202, "{id}");
        assert_eq!(response.json()["id"], id);
    }
    server.sync();
    for (encoded, id) in ids {
        assert_eq!(
            server.get(&format!("/v1/sessions/{encoded}")).json()["id"],
            id
        );
    }
}

#[test]
fn error_statuses_are_json() {
    let server = Server::start("errors");
    assert_error(&server.get("/nothing"), 404, "not_found");
    assert_error(&server.get("/v1/sessions/nobody"), 404, "not_found");

    let wrong_method = request(server.addr, "PUT", "/v1/sweep", &[], b"");
    assert_error(&wrong_method, 405, "method_not_allowed");
    assert_eq!(wrong_method.header("allow"), Some("POST"));
    assert_error(&server.delete("/v1/stats"), 405, "method_not_allowed");

    assert_error(
        &server.post("/v1/sessions/a/activity", "{"),
        400,
        "invalid_body",
    );
    assert_error(
        &server.post("/v1/sessions/a/activity", r#"{"ts": 5}"#),
        400,
        "invalid_body",
    );
    assert_error(
        &server.post("/v1/sessions/a/activity", r#"{"at": "noon"}"#),
        400,
        "invalid_at",
    );
    let long_value = json!({"meta": {"user": "x".repeat(300)}}).to_string();
    assert_error(
        &server.post("/v1/sessions/a/activity", &long_value),
        400,
        "invalid_meta",
    );
    let form = [("Content-Type", "application/x-www-form-urlencoded")];
    let response = request(
        server.addr,
        "POST",
        "/v1/sessions/a/activity",
        &form,
        b"a=1",
    );
    assert_error(&response, 415, "unsupported_media_type");
}

#[test]
fn oversized_bodies_get_413() {
    let server = Server::with("oversized", |options| {
        options.limits.max_report_body = 1024;
        options.limits.max_batch_body = 4096;
    });
    let padding = " ".repeat(2000);
    let body = format!("{{\"at\": null{padding}}}");
    assert_error(
        &server.post("/v1/sessions/a/activity", &body),
        413,
        "body_too_large",
    );

    // A declared length over the limit is rejected before the body is sent.
    let mut connection = Connection::open(server.addr);
    let head = format!(
        "POST /v1/activity HTTP/1.1\r\nHost: {}\r\nContent-Length: 50000000\r\n\r\n",
        server.addr
    );
    std::io::Write::write_all(connection.stream(), head.as_bytes()).unwrap();
    assert_error(&connection.read_response().unwrap(), 413, "body_too_large");

    // A chunked body is counted as it arrives.
    let mut connection = Connection::open(server.addr);
    let chunk = "x".repeat(1000);
    let mut raw = format!(
        "POST /v1/activity HTTP/1.1\r\nHost: {}\r\nTransfer-Encoding: chunked\r\n\r\n",
        server.addr
    );
    for _ in 0..5 {
        raw.push_str(&format!("{:x}\r\n{chunk}\r\n", chunk.len()));
    }
    raw.push_str("0\r\n\r\n");
    std::io::Write::write_all(connection.stream(), raw.as_bytes()).unwrap();
    assert_error(&connection.read_response().unwrap(), 413, "body_too_large");
}

#[test]
fn oversized_headers_get_431() {
    let server = Server::start("big-headers");
    let big = "x".repeat(20 * 1024);
    let mut connection = Connection::open(server.addr);
    let response = connection.request("GET", "/healthz", &[("X-Padding", &big)], b"");
    assert_eq!(response.unwrap().status, 431);
}

#[test]
fn token_is_required_when_set() {
    let server = Server::with("token", |options| {
        options.token = Some(Token::new(TOKEN, std::path::Path::new("test")).unwrap());
    });
    let missing = server.get("/v1/stats");
    assert_error(&missing, 401, "unauthorized");
    assert_eq!(missing.header("www-authenticate"), Some("Bearer"));

    let wrong = [("Authorization", "Bearer test-token-0123456780")];
    assert_error(
        &request(server.addr, "GET", "/v1/stats", &wrong, b""),
        401,
        "unauthorized",
    );
    let basic = [("Authorization", "Basic dGVzdA==")];
    assert_error(
        &request(server.addr, "GET", "/v1/stats", &basic, b""),
        401,
        "unauthorized",
    );

    let bearer = format!("Bearer {TOKEN}");
    let right = [("Authorization", bearer.as_str())];
    let response = request(server.addr, "POST", "/v1/sessions/a/activity", &right, b"");
    assert_eq!(response.status, 202);
    assert_eq!(
        request(server.addr, "GET", "/v1/stats", &right, b"").status,
        200
    );
    assert_eq!(server.get("/healthz").status, 200, "health needs no token");

    // With a token, the Host header may name any address.
    let mut connection = Connection::open(server.addr);
    let raw = format!(
        "GET /v1/stats HTTP/1.1\r\nHost: monitor.example\r\n{}: {bearer}\r\n\r\n",
        "Authorization"
    );
    std::io::Write::write_all(connection.stream(), raw.as_bytes()).unwrap();
    assert_eq!(connection.read_response().unwrap().status, 200);
}

#[test]
fn no_token_means_open_on_loopback() {
    let server = Server::start("no-token");
    assert_eq!(server.get("/v1/stats").status, 200);
    let bearer = [("Authorization", "Bearer anything-at-all-here")];
    assert_eq!(
        request(server.addr, "GET", "/v1/stats", &bearer, b"").status,
        200
    );
}

#[test]
fn browser_requests_are_rejected() {
    let server = Server::start("browser");
    let origin = [("Origin", "https://example.com")];
    let response = request(server.addr, "POST", "/v1/sweep", &origin, b"");
    assert_error(&response, 403, "forbidden");

    let mut connection = Connection::open(server.addr);
    let raw = "GET /v1/stats HTTP/1.1\r\nHost: rebound.example:7878\r\n\r\n";
    std::io::Write::write_all(connection.stream(), raw.as_bytes()).unwrap();
    assert_error(&connection.read_response().unwrap(), 403, "forbidden");

    let mut connection = Connection::open(server.addr);
    let raw = "GET /v1/stats HTTP/1.1\r\nHost: localhost:7878\r\n\r\n";
    std::io::Write::write_all(connection.stream(), raw.as_bytes()).unwrap();
    assert_eq!(connection.read_response().unwrap().status, 200);
}

#[test]
fn non_loopback_needs_token() {
    let (commands, _receiver) = crossbeam_channel::bounded::<Command>(8);
    let clock: SharedClock = Arc::new(ManualClock::new(DateTime::<Utc>::UNIX_EPOCH));
    let options = ApiOptions::new("0.0.0.0:0".parse().unwrap());
    let error = api::start(options, commands, clock).unwrap_err();
    assert!(matches!(error, ApiStartError::TokenRequired { .. }));
    assert!(error.to_string().contains("--token-file"));
}

#[test]
fn port_in_use_names_address() {
    let server = Server::start("port-in-use");
    let (commands, _receiver) = crossbeam_channel::bounded::<Command>(8);
    let clock: SharedClock = Arc::new(ManualClock::new(DateTime::<Utc>::UNIX_EPOCH));
    let error = api::start(ApiOptions::new(server.addr), commands, clock).unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, ApiStartError::Bind { .. }), "{message}");
    assert!(message.contains(&server.addr.to_string()), "{message}");
    assert!(
        message.contains(&format!("port {}", server.addr.port())),
        "{message}"
    );
}

#[test]
fn second_instance_exits_on_busy_port() {
    let server = Server::start("second-instance");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_session-monitor"))
        .args(["--headless", "--listen", &server.addr.to_string()])
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "stderr: {stderr}");
    assert!(
        stderr.contains(&server.addr.to_string()),
        "stderr: {stderr}"
    );
    assert!(stderr.contains("already in use"), "stderr: {stderr}");
}

/// Starts the API over a command channel that nobody reads, to see how it behaves when
/// the engine does not keep up.
fn api_over_channel(
    capacity: usize,
    engine_timeout: Duration,
) -> (RunningSource, Receiver<Command>) {
    let (commands, receiver) = crossbeam_channel::bounded::<Command>(capacity);
    let clock: SharedClock = Arc::new(ManualClock::new(DateTime::<Utc>::UNIX_EPOCH));
    let mut options = ApiOptions::new("127.0.0.1:0".parse().unwrap());
    options.limits.engine_timeout = engine_timeout;
    let api = api::start(options, commands, clock).unwrap();
    (api, receiver)
}

#[test]
fn full_queue_gets_503() {
    let (api, receiver) = api_over_channel(1, WAIT);
    let addr = api.local_addr().unwrap();
    // The API's start-up notice fills the only slot.
    let deadline = Instant::now() + WAIT;
    while !receiver.is_full() {
        assert!(
            Instant::now() < deadline,
            "the start-up notice never arrived"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let response = request(addr, "POST", "/v1/sessions/a/activity", &[], b"");
    assert_error(&response, 503, "engine_busy");
    assert_eq!(response.header("retry-after"), Some("1"));
    assert_error(
        &request(addr, "GET", "/v1/stats", &[], b""),
        503,
        "engine_busy",
    );
    let batch = br#"[{"id": "a"}]"#;
    assert_error(
        &request(addr, "POST", "/v1/activity", &[], batch),
        503,
        "engine_busy",
    );
    drop(receiver);
}

#[test]
fn silent_engine_times_out() {
    let (api, receiver) = api_over_channel(64, Duration::from_millis(200));
    let addr = api.local_addr().unwrap();
    let started = Instant::now();
    let response = request(addr, "GET", "/v1/sessions", &[], b"");
    assert_error(&response, 503, "engine_timeout");
    assert!(started.elapsed() < WAIT);
    drop(receiver);
}

#[test]
fn stopped_engine_gets_503() {
    let (api, receiver) = api_over_channel(64, WAIT);
    let addr = api.local_addr().unwrap();
    drop(receiver);
    assert_error(
        &request(addr, "GET", "/healthz", &[], b""),
        503,
        "engine_stopped",
    );
    assert_error(
        &request(addr, "POST", "/v1/sessions/a/activity", &[], b""),
        503,
        "engine_stopped",
    );
}

#[test]
fn health_reports_ok() {
    let server = Server::start("health");
    let health = server.get("/healthz");
    assert_eq!(health.status, 200);
    assert_eq!(health.json()["status"], "ok");
}

#[test]
fn stats_count_api_requests() {
    let server = Server::start("api-counters");
    server.post("/v1/sessions/a/activity", "");
    server.post("/v1/activity", r#"[{"id": "b"}, {"id": ""}]"#);
    server.get("/nothing");
    let stats = server.get("/v1/stats").json();
    assert_eq!(stats["api"]["requests"], 4);
    assert_eq!(stats["api"]["reports_accepted"], 2);
    assert_eq!(stats["api"]["rejected"], 2, "one batch item and one 404");
}

#[test]
fn slow_headers_do_not_block_others() {
    let server = Server::with("slow-headers", |options| {
        options.limits.header_timeout = Duration::from_millis(300);
    });
    let mut slow = Connection::open(server.addr);
    std::io::Write::write_all(slow.stream(), b"GET /healthz HTTP/1.1\r\nHost: 127.").unwrap();

    let started = Instant::now();
    assert_eq!(server.get("/healthz").status, 200);
    assert!(
        started.elapsed() < Duration::from_millis(300),
        "served at once"
    );
    assert!(slow.is_closed_within(Duration::from_secs(3)));
}

#[test]
fn idle_keep_alive_is_closed() {
    let server = Server::with("idle", |options| {
        options.limits.header_timeout = Duration::from_millis(300);
    });
    let mut connection = Connection::open(server.addr);
    let first = connection.request("GET", "/healthz", &[], b"").unwrap();
    assert_eq!(first.status, 200);
    let second = connection.request("GET", "/healthz", &[], b"").unwrap();
    assert_eq!(second.status, 200, "keep-alive reuses the connection");
    assert!(connection.is_closed_within(Duration::from_secs(3)));
}

#[test]
fn slow_body_gets_408() {
    let server = Server::with("slow-body", |options| {
        options.limits.request_timeout = Duration::from_millis(300);
    });
    let mut connection = Connection::open(server.addr);
    let head = format!(
        "POST /v1/sessions/a/activity HTTP/1.1\r\nHost: {}\r\nContent-Length: 100\r\n\r\n{{\"at\"",
        server.addr
    );
    std::io::Write::write_all(connection.stream(), head.as_bytes()).unwrap();
    let response = connection.read_response().unwrap();
    assert_error(&response, 408, "request_timeout");
    assert_eq!(response.header("connection"), Some("close"));
}

#[test]
fn connection_cap_queues_clients() {
    let server = Server::with("connection-cap", |options| {
        options.limits.max_connections = 2;
        options.limits.header_timeout = Duration::from_millis(300);
    });
    let _idle: Vec<Connection> = (0..2).map(|_| Connection::open(server.addr)).collect();
    // The third client waits until an idle connection times out, then is served.
    let started = Instant::now();
    assert_eq!(server.get("/healthz").status, 200);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(200),
        "not queued: {waited:?}"
    );
    assert!(waited < Duration::from_secs(3), "{waited:?}");
}

#[test]
fn concurrent_clients_all_counted() {
    const CLIENTS: usize = 16;
    const REQUESTS: usize = 100;
    let server = Server::start("concurrent");
    let addr = server.addr;
    let deadline = Instant::now() + Duration::from_secs(30);

    let clients: Vec<_> = (0..CLIENTS)
        .map(|client| {
            std::thread::spawn(move || {
                let mut connection = Connection::open(addr);
                for n in 0..REQUESTS {
                    assert!(Instant::now() < deadline, "clients took too long");
                    let path = format!("/v1/sessions/c{client}-{}/activity", n % 10);
                    let response = connection.request("POST", &path, &[], b"").unwrap();
                    assert_eq!(response.status, 202);
                }
            })
        })
        .collect();
    for client in clients {
        client.join().unwrap();
    }
    server.sync();

    let stats = server.get("/v1/stats").json();
    assert_eq!(
        stats["api"]["reports_accepted"],
        (CLIENTS * REQUESTS) as u64
    );
    assert_eq!(stats["sessions"], (CLIENTS * 10) as u64);
    assert_eq!(stats["api"]["rejected"], 0);
}

#[test]
fn stop_is_prompt_with_open_connections() {
    let mut server = Server::start("stop");
    let mut connection = Connection::open(server.addr);
    assert_eq!(
        connection
            .request("GET", "/healthz", &[], b"")
            .unwrap()
            .status,
        200
    );
    let started = Instant::now();
    server.api.take().unwrap().stop();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(connection.is_closed_within(Duration::from_secs(1)));
}

#[test]
fn headless_prints_api_lines() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_session-monitor"))
        .args([
            "--headless",
            "--verbose",
            "--listen",
            "127.0.0.1:0",
            "--duration",
            "2s",
        ])
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .output()
        .unwrap();
    assert!(output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("INFO  api: listening on http://127.0.0.1:"),
        "stdout: {stdout}"
    );
    assert!(
        stdout.contains("INFO  api: stopped listening after 0 requests"),
        "stdout: {stdout}"
    );
    assert!(
        !stdout.contains("Session created: user-"),
        "--listen alone runs no simulator"
    );
}

#[test]
fn simulate_runs_beside_api() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_session-monitor"))
        .args([
            "--headless",
            "--verbose",
            "--listen",
            "127.0.0.1:0",
            "--simulate",
        ])
        .args(["--duration", "2s", "--seed", "7"])
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .output()
        .unwrap();
    assert!(output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("api: listening on"), "stdout: {stdout}");
    assert!(
        stdout.contains("Session created: user-"),
        "stdout: {stdout}"
    );
}
