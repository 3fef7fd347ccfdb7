//! Property tests of the API's request parsing: ids from percent-encoded path segments,
//! report and batch bodies, client times and the listing limit. Arbitrary input must
//! never panic, and valid input must parse to what was encoded. Each property runs a
//! fixed number of cases, so the run stays within a few seconds.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use proptest::prelude::*;
use serde_json::{Value, json};
use session_monitor::engine::clock::{Clock, ManualClock, MonoTime};
use session_monitor::engine::session::SessionId;
use session_monitor::sources::api::request::{
    BatchFormat, MAX_LIST_LIMIT, Position, decode_id, engine_time, parse_batch, parse_list_limit,
    parse_report,
};

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Ids that are mostly valid, with control characters, empty and overlong ones mixed in.
fn id_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9 ._@=+/-]{1,40}",
        "\\PC{0,80}",
        ".{0,8}[\\x00-\\x1f\\x7f].{0,8}",
        Just(String::new()),
        "[a-z]{250,270}",
    ]
}

/// One batch element: a valid report, or one broken in its id, time or metadata.
fn batch_item() -> impl Strategy<Value = Value> {
    let at = prop_oneof![
        Just(Value::Null),
        Just(json!("2026-12-04T10:00:00Z")),
        Just(json!("2026-12-04T10:00:00+05:30")),
        Just(json!("yesterday")),
    ];
    let meta = prop_oneof![
        Just(Value::Null),
        Just(json!({"user": "u"})),
        Just(json!({"": "empty key"})),
        Just(json!({"user": 5})),
    ];
    (id_text(), at, meta).prop_map(|(id, at, meta)| json!({"id": id, "at": at, "meta": meta}))
}

/// Whether `item` is a report the parser must accept.
fn is_valid(item: &Value) -> bool {
    let id_ok = SessionId::new(item["id"].as_str().unwrap()).is_ok();
    let at_ok = item["at"].is_null() || item["at"] != "yesterday";
    let meta_ok = item["meta"].is_null() || item["meta"] == json!({"user": "u"});
    id_ok && at_ok && meta_ok
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn encoded_id_round_trips(text in id_text()) {
        let segment = utf8_percent_encode(&text, NON_ALPHANUMERIC).to_string();
        match (decode_id(&segment), SessionId::new(&text)) {
            (Ok(decoded), Ok(expected)) => prop_assert_eq!(decoded, expected),
            (Err(decoded), Err(expected)) => prop_assert_eq!(decoded, expected),
            (decoded, expected) => prop_assert!(false, "{decoded:?} != {expected:?}"),
        }
    }

    #[test]
    fn raw_segment_never_panics(segment in "[%0-9A-Fa-f/a-z]{0,64}") {
        if let Ok(id) = decode_id(&segment) {
            prop_assert!(SessionId::validate(id.as_str()).is_ok());
        }
    }

    #[test]
    fn report_body_never_panics(body in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = parse_report(SessionId::new("u").unwrap(), &body);
    }

    #[test]
    fn batch_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse_batch(BatchFormat::JsonArray, &body, 100);
        if let Ok(batch) = parse_batch(BatchFormat::JsonLines, &body, 100) {
            let text = String::from_utf8(body.clone()).unwrap();
            let lines = text.lines().filter(|line| !line.trim().is_empty()).count();
            prop_assert_eq!(batch.reports.len() + batch.rejected.len(), lines);
        }
    }

    #[test]
    fn array_batch_sorts_reports(items in proptest::collection::vec(batch_item(), 0..40)) {
        let body = serde_json::to_vec(&items).unwrap();
        let batch = parse_batch(BatchFormat::JsonArray, &body, 100).unwrap();

        let valid: Vec<&Value> = items.iter().filter(|item| is_valid(item)).collect();
        prop_assert_eq!(batch.reports.len(), valid.len());
        for (report, item) in batch.reports.iter().zip(&valid) {
            prop_assert_eq!(report.id.as_str(), item["id"].as_str().unwrap());
        }
        let rejected: Vec<Position> = items
            .iter()
            .enumerate()
            .filter(|(_, item)| !is_valid(item))
            .map(|(index, _)| Position::Index(index))
            .collect();
        let positions: Vec<Position> = batch.rejected.iter().map(|r| r.position).collect();
        prop_assert_eq!(positions, rejected);
    }

    #[test]
    fn json_lines_match_array(items in proptest::collection::vec(batch_item(), 0..40)) {
        let lines: String = items.iter().map(|item| format!("{item}\n")).collect();
        let array = serde_json::to_vec(&items).unwrap();
        let from_lines = parse_batch(BatchFormat::JsonLines, lines.as_bytes(), 100).unwrap();
        let from_array = parse_batch(BatchFormat::JsonArray, &array, 100).unwrap();
        prop_assert_eq!(from_lines.reports, from_array.reports);
        prop_assert_eq!(from_lines.rejected.len(), from_array.rejected.len());
    }

    #[test]
    fn client_time_never_after_now(
        elapsed_secs in 0u64..100_000,
        offset_secs in -200_000i64..200_000,
    ) {
        let start = Utc.with_ymd_and_hms(2026, 12, 4, 10, 0, 0).unwrap();
        let clock = ManualClock::new(start);
        clock.advance(Duration::from_secs(elapsed_secs));
        let now = clock.now();
        let at = clock.wall_time(now) + chrono::Duration::seconds(offset_secs);

        let mapped = engine_time(Some(at), &clock);
        prop_assert!(mapped.at <= now);
        prop_assert_eq!(mapped.clamped_to_now, offset_secs > 0);
        if offset_secs <= 0 {
            let ago = Duration::from_secs(offset_secs.unsigned_abs());
            prop_assert_eq!(mapped.at, now.saturating_sub(ago).max(MonoTime::ZERO));
        }
    }

    #[test]
    fn list_limit_stays_in_range(query in "[a-z=&0-9%-]{0,24}") {
        if let Ok(limit) = parse_list_limit(Some(&query)) {
            prop_assert!(limit <= MAX_LIST_LIMIT);
        }
    }

    #[test]
    fn meta_round_trips(entries in proptest::collection::btree_map("[a-z]{1,8}", "[ -~]{0,20}", 0..8)) {
        let body = serde_json::to_vec(&json!({"meta": entries})).unwrap();
        let report = parse_report(SessionId::new("u").unwrap(), &body).unwrap();
        let meta: BTreeMap<String, String> = report.meta.unwrap().as_ref().clone();
        prop_assert_eq!(meta, entries);
    }
}
