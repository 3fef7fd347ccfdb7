//! Parsing of API requests into engine terms: session ids from percent-encoded path
//! segments, report bodies (one JSON object, a JSON array or JSON Lines), metadata,
//! client time stamps and the `limit` parameter. Pure functions, so they are tested
//! without a server.
//!
//! Ids follow the engine's rules (non-empty UTF-8 after percent-decoding, at most
//! [`SessionId::MAX_LEN`] bytes, no control characters). Ids that start with a
//! spreadsheet formula prefix (`=`, `+`, `-`, `@`) are accepted and stored as sent,
//! because applications use ids such as `-1` or `@alice`. JSON responses carry them as
//! plain strings, and the CSV export prefixes such cells with `'` so that a spreadsheet
//! shows them as text instead of running them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use percent_encoding::percent_decode_str;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::engine::clock::{Clock, MonoTime};
use crate::engine::session::{InvalidId, SessionId, SessionMeta};

/// Maximum number of metadata entries on one report.
pub const MAX_META_ENTRIES: usize = 16;

/// Maximum length of a metadata key in bytes.
pub const MAX_META_KEY_LEN: usize = 64;

/// Maximum length of a metadata value in bytes.
pub const MAX_META_VALUE_LEN: usize = 256;

/// Sessions listed when a request gives no `limit`.
pub const DEFAULT_LIST_LIMIT: usize = 1_000;

/// Maximum `limit` of a session listing.
pub const MAX_LIST_LIMIT: usize = 10_000;

/// Reason an activity report was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReportError {
    /// The report is not JSON of the expected shape.
    #[error("invalid JSON: {0}")]
    Json(String),
    /// The session id breaks the id rules.
    #[error("invalid session id: {0}")]
    Id(#[from] InvalidId),
    /// The time stamp is not an RFC 3339 date and time.
    #[error("invalid \"at\" {text:?}: expected an RFC 3339 time such as 2026-12-04T10:00:00Z")]
    At {
        /// The time stamp as sent.
        text: String,
    },
    /// The metadata breaks a size or character rule.
    #[error("invalid \"meta\": {0}")]
    Meta(String),
}

impl ReportError {
    /// Returns the short machine-readable name of the error.
    pub fn code(&self) -> &'static str {
        match self {
            ReportError::Json(_) => "invalid_body",
            ReportError::Id(_) => "invalid_id",
            ReportError::At { .. } => "invalid_at",
            ReportError::Meta(_) => "invalid_meta",
        }
    }
}

/// One valid activity report, before its time is mapped to engine time.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// The session's id.
    pub id: SessionId,
    /// The client's wall-clock time of the activity; `None` means when it arrived.
    pub at: Option<DateTime<Utc>>,
    /// Metadata that replaces the session's own.
    pub meta: Option<SessionMeta>,
}

/// Position of a rejected report in a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    /// Index of the element in a JSON array, from 0.
    Index(usize),
    /// Line number in a JSON Lines body, from 1.
    Line(usize),
}

/// A rejected report of a batch.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejected {
    /// Position of the report in the body.
    pub position: Position,
    /// The id as sent, when the report had a string id.
    pub id: Option<String>,
    /// Reason for the rejection.
    pub error: ReportError,
}

/// A parsed batch: the valid reports in body order and the rejected ones.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Batch {
    /// Valid reports, in the order of the body.
    pub reports: Vec<Report>,
    /// Rejected reports, in the order of the body.
    pub rejected: Vec<Rejected>,
}

/// Encoding of a batch body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchFormat {
    /// One JSON array of report objects.
    JsonArray,
    /// One report object per line; blank lines are skipped.
    JsonLines,
}

/// Reason a whole batch was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    /// The body is not a JSON array (or not UTF-8, for JSON Lines).
    #[error("invalid batch body: {0}")]
    Malformed(String),
    /// The body has more reports than one request may carry.
    #[error("batch has more than {max} reports; split it into smaller requests")]
    TooManyReports {
        /// The maximum number of reports per request.
        max: usize,
    },
}

/// The body of a report about one session, whose id is in the path.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReportBody {
    at: Option<String>,
    meta: Option<BTreeMap<String, String>>,
}

/// One element of a batch.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchItem {
    id: String,
    at: Option<String>,
    meta: Option<BTreeMap<String, String>>,
}

/// Decodes a percent-encoded path segment into a session id.
pub fn decode_id(segment: &str) -> Result<SessionId, InvalidId> {
    let bytes: Vec<u8> = percent_decode_str(segment).collect();
    SessionId::from_bytes(&bytes)
}

/// Parses the optional body of a single report for the session `id`. An empty or
/// all-whitespace body means "now, no metadata".
pub fn parse_report(id: SessionId, body: &[u8]) -> Result<Report, ReportError> {
    let body = body.trim_ascii();
    let parsed = if body.is_empty() {
        ReportBody::default()
    } else {
        serde_json::from_slice::<ReportBody>(body)
            .map_err(|error| ReportError::Json(error.to_string()))?
    };
    Ok(Report {
        id,
        at: parse_at(parsed.at.as_deref())?,
        meta: parse_meta(parsed.meta)?,
    })
}

/// Parses a batch body. Reports that fail alone are listed in [`Batch::rejected`]; a
/// body that cannot be split into reports, or contains more than `max_reports`, fails whole.
pub fn parse_batch(
    format: BatchFormat,
    body: &[u8],
    max_reports: usize,
) -> Result<Batch, BatchError> {
    match format {
        BatchFormat::JsonArray => parse_array(body, max_reports),
        BatchFormat::JsonLines => parse_lines(body, max_reports),
    }
}

fn parse_array(body: &[u8], max_reports: usize) -> Result<Batch, BatchError> {
    let elements: Vec<&RawValue> = serde_json::from_slice(body).map_err(|error| {
        BatchError::Malformed(format!("expected a JSON array of reports: {error}"))
    })?;
    if elements.len() > max_reports {
        return Err(BatchError::TooManyReports { max: max_reports });
    }
    let mut batch = Batch::default();
    for (index, element) in elements.into_iter().enumerate() {
        batch.add(Position::Index(index), parse_item(element.get()));
    }
    Ok(batch)
}

fn parse_lines(body: &[u8], max_reports: usize) -> Result<Batch, BatchError> {
    let text = std::str::from_utf8(body).map_err(|error| {
        BatchError::Malformed(format!(
            "JSON Lines body is not valid UTF-8 (invalid byte at offset {})",
            error.valid_up_to()
        ))
    })?;
    let mut batch = Batch::default();
    let mut count = 0;
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        count += 1;
        if count > max_reports {
            return Err(BatchError::TooManyReports { max: max_reports });
        }
        batch.add(Position::Line(index + 1), parse_item(line));
    }
    Ok(batch)
}

impl Batch {
    fn add(&mut self, position: Position, parsed: Result<Report, (Option<String>, ReportError)>) {
        match parsed {
            Ok(report) => self.reports.push(report),
            Err((id, error)) => self.rejected.push(Rejected {
                position,
                id,
                error,
            }),
        }
    }
}

/// Parses one batch element; on failure returns the id as sent, if it was readable.
fn parse_item(json: &str) -> Result<Report, (Option<String>, ReportError)> {
    let item: BatchItem = serde_json::from_str(json).map_err(|error| {
        let id = peek_id(json);
        (id, ReportError::Json(error.to_string()))
    })?;
    let fail = |error: ReportError| (Some(item.id.clone()), error);
    let id = SessionId::new(&item.id).map_err(|error| fail(error.into()))?;
    let at = parse_at(item.at.as_deref()).map_err(fail)?;
    let meta = parse_meta(item.meta).map_err(fail)?;
    Ok(Report { id, at, meta })
}

/// Returns the `id` string of a JSON object that failed to parse as a report, so the
/// rejection can name it.
fn peek_id(json: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct IdOnly {
        id: String,
    }
    serde_json::from_str::<IdOnly>(json)
        .ok()
        .map(|item| item.id)
}

/// Parses an RFC 3339 time stamp.
pub fn parse_at(text: Option<&str>) -> Result<Option<DateTime<Utc>>, ReportError> {
    let Some(text) = text else {
        return Ok(None);
    };
    DateTime::parse_from_rfc3339(text)
        .map(|at| Some(at.with_timezone(&Utc)))
        .map_err(|_| ReportError::At {
            text: text.to_owned(),
        })
}

/// Checks metadata against the size and character limits.
pub fn parse_meta(
    meta: Option<BTreeMap<String, String>>,
) -> Result<Option<SessionMeta>, ReportError> {
    let Some(meta) = meta else {
        return Ok(None);
    };
    if meta.len() > MAX_META_ENTRIES {
        return Err(ReportError::Meta(format!(
            "{} entries; the maximum is {MAX_META_ENTRIES}",
            meta.len()
        )));
    }
    for (key, value) in &meta {
        check_meta_text("key", key, 1, MAX_META_KEY_LEN)?;
        check_meta_text("value", value, 0, MAX_META_VALUE_LEN)?;
    }
    Ok(Some(Arc::new(meta)))
}

fn check_meta_text(what: &str, text: &str, min: usize, max: usize) -> Result<(), ReportError> {
    if text.len() < min {
        return Err(ReportError::Meta(format!("a {what} is empty")));
    }
    if text.len() > max {
        return Err(ReportError::Meta(format!(
            "{what} {:?}… is {} bytes long; the maximum is {max}",
            text.chars().take(16).collect::<String>(),
            text.len()
        )));
    }
    if let Some(c) = text.chars().find(|c| c.is_control()) {
        return Err(ReportError::Meta(format!(
            "{what} {text:?} contains control character U+{:04X}",
            u32::from(c)
        )));
    }
    Ok(())
}

/// A client time stamp mapped to engine time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineTime {
    /// The engine time of the activity.
    pub at: MonoTime,
    /// Whether the client's time was later than the engine's now and was moved back to it.
    pub clamped_to_now: bool,
}

/// Maps a client's wall-clock time to engine time through `clock`: the span between the
/// time stamp and the clock's wall time now is taken back from the clock's monotonic
/// now. Times later than now clamp to now. Times earlier than the clock's origin (the
/// program's start) clamp to the origin. A time older than the idle timeout maps to
/// activity that is already stale; see the API documentation for what the engine does
/// with it.
pub fn engine_time(at: Option<DateTime<Utc>>, clock: &dyn Clock) -> EngineTime {
    let now = clock.now();
    let Some(at) = at else {
        return EngineTime {
            at: now,
            clamped_to_now: false,
        };
    };
    let wall_now = clock.wall_time(now);
    match (wall_now - at).to_std() {
        // A negative span (a time in the future) does not convert.
        Err(_) => EngineTime {
            at: now,
            clamped_to_now: at > wall_now,
        },
        Ok(ago) => EngineTime {
            at: now.saturating_sub(ago),
            clamped_to_now: false,
        },
    }
}

/// Reason a query string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// `limit` is not a whole number in range.
    #[error("invalid limit {text:?}: expected a whole number from 0 to {MAX_LIST_LIMIT}")]
    Limit {
        /// The value as sent.
        text: String,
    },
    /// The query string names a parameter this endpoint does not take.
    #[error("unknown query parameter {name:?}; this endpoint takes only \"limit\"")]
    Unknown {
        /// The parameter's name as sent.
        name: String,
    },
}

/// Parses the query string of a session listing into its limit.
pub fn parse_list_limit(query: Option<&str>) -> Result<usize, QueryError> {
    let mut limit = DEFAULT_LIST_LIMIT;
    for pair in query
        .unwrap_or("")
        .split('&')
        .filter(|pair| !pair.is_empty())
    {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        if name != "limit" {
            let name: String = percent_decode_str(name).decode_utf8_lossy().into_owned();
            return Err(QueryError::Unknown { name });
        }
        limit = value
            .parse::<usize>()
            .ok()
            .filter(|limit| *limit <= MAX_LIST_LIMIT)
            .ok_or_else(|| QueryError::Limit {
                text: value.to_owned(),
            })?;
    }
    Ok(limit)
}

/// Rounds a span to milliseconds and returns it in seconds, for JSON numbers.
pub fn seconds(span: Duration) -> f64 {
    span.as_millis() as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::clock::ManualClock;
    use chrono::TimeZone;

    fn wall(hour: u32, minute: u32, second: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 4, hour, minute, second)
            .unwrap()
    }

    #[test]
    fn id_is_percent_decoded() {
        assert_eq!(decode_id("user%2042").unwrap().as_str(), "user 42");
        assert_eq!(decode_id("a%2Fb").unwrap().as_str(), "a/b");
        assert_eq!(decode_id("caf%C3%A9").unwrap().as_str(), "café");
        assert_eq!(decode_id("a+b").unwrap().as_str(), "a+b");
    }

    #[test]
    fn id_rules_apply_after_decoding() {
        assert_eq!(decode_id(""), Err(InvalidId::Empty));
        assert_eq!(decode_id("ok%FF"), Err(InvalidId::NotUtf8 { offset: 2 }));
        assert_eq!(
            decode_id("a%0Ab"),
            Err(InvalidId::ControlCharacter {
                code: 0x0A,
                offset: 1
            })
        );
        let long = "%41".repeat(SessionId::MAX_LEN + 1);
        assert_eq!(
            decode_id(&long),
            Err(InvalidId::TooLong {
                len: SessionId::MAX_LEN + 1
            })
        );
    }

    #[test]
    fn formula_prefixes_are_accepted() {
        for id in ["=1+1", "+441234", "-1", "@alice"] {
            assert_eq!(decode_id(id).unwrap().as_str(), id);
        }
    }

    #[test]
    fn empty_report_body_means_now() {
        let id = SessionId::new("u1").unwrap();
        for body in [&b""[..], b"  \n", b"{}"] {
            let report = parse_report(id.clone(), body).unwrap();
            assert_eq!(report.at, None);
            assert_eq!(report.meta, None);
        }
    }

    #[test]
    fn report_body_reads_at_and_meta() {
        let id = SessionId::new("u1").unwrap();
        let body = br#"{"at": "2026-12-04T11:00:00+01:00", "meta": {"user": "user-42"}}"#;
        let report = parse_report(id, body).unwrap();
        assert_eq!(report.at, Some(wall(10, 0, 0)));
        let meta = report.meta.unwrap();
        assert_eq!(meta.get("user").map(String::as_str), Some("user-42"));
    }

    #[test]
    fn report_body_errors_name_the_field() {
        let id = || SessionId::new("u1").unwrap();
        let cases: [(&[u8], &str); 5] = [
            (b"{", "invalid_body"),
            (br#"{"ts": 1}"#, "invalid_body"),
            (br#"{"at": "yesterday"}"#, "invalid_at"),
            (br#"{"meta": {"user": 42}}"#, "invalid_body"),
            (br#"{"meta": {"": "x"}}"#, "invalid_meta"),
        ];
        for (body, code) in cases {
            let error = parse_report(id(), body).unwrap_err();
            assert_eq!(error.code(), code, "{}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn meta_limits() {
        let entries = |count: usize| -> BTreeMap<String, String> {
            (0..count)
                .map(|n| (format!("k{n}"), "v".to_owned()))
                .collect()
        };
        assert!(parse_meta(Some(entries(MAX_META_ENTRIES))).is_ok());
        assert!(parse_meta(Some(entries(MAX_META_ENTRIES + 1))).is_err());

        let one = |key: &str, value: &str| {
            parse_meta(Some(BTreeMap::from([(key.to_owned(), value.to_owned())])))
        };
        assert!(one(&"k".repeat(MAX_META_KEY_LEN), "").is_ok());
        assert!(one(&"k".repeat(MAX_META_KEY_LEN + 1), "").is_err());
        assert!(one("k", &"v".repeat(MAX_META_VALUE_LEN)).is_ok());
        assert!(one("k", &"v".repeat(MAX_META_VALUE_LEN + 1)).is_err());
        assert!(one("k", "line\nbreak").is_err());
        assert!(one("k\u{1b}", "v").is_err());
    }

    #[test]
    fn array_batch_keeps_good_reports() {
        let body = br#"[
            {"id": "a"},
            {"id": "b", "at": "2026-12-04T10:00:00Z", "meta": {"user": "x"}},
            {"id": ""},
            {"id": "c", "at": "soon"},
            17,
            {"id": "d", "extra": true}
        ]"#;
        let batch = parse_batch(BatchFormat::JsonArray, body, 100).unwrap();
        let ids: Vec<&str> = batch.reports.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["a", "b"]);
        let positions: Vec<Position> = batch.rejected.iter().map(|r| r.position).collect();
        assert_eq!(
            positions,
            [
                Position::Index(2),
                Position::Index(3),
                Position::Index(4),
                Position::Index(5)
            ]
        );
        assert_eq!(batch.rejected[0].error, ReportError::Id(InvalidId::Empty));
        assert_eq!(batch.rejected[1].id.as_deref(), Some("c"));
        assert_eq!(batch.rejected[2].id, None);
        assert_eq!(batch.rejected[3].id.as_deref(), Some("d"));
    }

    #[test]
    fn json_lines_batch_numbers_lines() {
        let body = b"{\"id\": \"a\"}\n\n{\"id\": \"b\"\n{\"id\": \"c\"}\r\n";
        let batch = parse_batch(BatchFormat::JsonLines, body, 100).unwrap();
        let ids: Vec<&str> = batch.reports.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["a", "c"]);
        assert_eq!(batch.rejected.len(), 1);
        assert_eq!(batch.rejected[0].position, Position::Line(3));
    }

    #[test]
    fn batch_limits_and_shape() {
        let body = br#"[{"id": "a"}, {"id": "b"}, {"id": "c"}]"#;
        assert_eq!(
            parse_batch(BatchFormat::JsonArray, body, 2),
            Err(BatchError::TooManyReports { max: 2 })
        );
        let lines = b"{\"id\": \"a\"}\n{\"id\": \"b\"}\n{\"id\": \"c\"}\n";
        assert_eq!(
            parse_batch(BatchFormat::JsonLines, lines, 2),
            Err(BatchError::TooManyReports { max: 2 })
        );
        assert!(parse_batch(BatchFormat::JsonArray, br#"{"id": "a"}"#, 10).is_err());
        assert!(parse_batch(BatchFormat::JsonLines, b"\xff\n", 10).is_err());
    }

    #[test]
    fn client_time_maps_to_engine_time() {
        let clock = ManualClock::new(wall(10, 0, 0));
        clock.advance(Duration::from_secs(600));
        let ten_past = MonoTime::from_duration(Duration::from_secs(600));

        let none = engine_time(None, &clock);
        assert_eq!(none.at, ten_past);

        let earlier = engine_time(Some(wall(10, 8, 0)), &clock);
        assert_eq!(
            earlier.at,
            MonoTime::from_duration(Duration::from_secs(480))
        );
        assert!(!earlier.clamped_to_now);

        let future = engine_time(Some(wall(11, 0, 0)), &clock);
        assert_eq!(future.at, ten_past);
        assert!(future.clamped_to_now);

        let before_start = engine_time(Some(wall(9, 0, 0)), &clock);
        assert_eq!(before_start.at, MonoTime::ZERO);
    }

    #[test]
    fn list_limit_parsing() {
        assert_eq!(parse_list_limit(None), Ok(DEFAULT_LIST_LIMIT));
        assert_eq!(parse_list_limit(Some("")), Ok(DEFAULT_LIST_LIMIT));
        assert_eq!(parse_list_limit(Some("limit=5")), Ok(5));
        assert_eq!(parse_list_limit(Some("limit=0")), Ok(0));
        assert_eq!(parse_list_limit(Some("limit=10000")), Ok(10_000));
        for bad in ["limit=10001", "limit=-1", "limit=", "limit=ten", "limit"] {
            assert!(
                matches!(parse_list_limit(Some(bad)), Err(QueryError::Limit { .. })),
                "{bad}"
            );
        }
        assert_eq!(
            parse_list_limit(Some("limt=5")),
            Err(QueryError::Unknown {
                name: "limt".into()
            })
        );
    }
}
