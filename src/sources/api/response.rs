//! JSON bodies of API responses: errors as `{"error": code, "reason": text}`, and views
//! of sessions and engine counters with seconds as numbers and wall times as RFC 3339.

use std::collections::BTreeMap;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::json;

use super::request::{Position, Rejected, seconds};
use crate::engine::clock::{Clock, MonoTime};
use crate::engine::event::{Event, SweepTrigger};
use crate::engine::query::{Answer, RemovalCounts};
use crate::engine::session::Session;

/// An error response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Short machine-readable name, such as `invalid_id`.
    pub error: &'static str,
    /// One sentence for people: what was wrong and, where it helps, what to do.
    pub reason: String,
    /// Seconds after which a retry may succeed, sent as `Retry-After`.
    pub retry_after_secs: Option<u32>,
}

impl ApiError {
    /// Creates an error response.
    pub fn new(status: StatusCode, error: &'static str, reason: impl Into<String>) -> ApiError {
        ApiError {
            status,
            error,
            reason: reason.into(),
            retry_after_secs: None,
        }
    }

    /// Adds a `Retry-After` header.
    pub fn retry_after(mut self, secs: u32) -> ApiError {
        self.retry_after_secs = Some(secs);
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "error": self.error, "reason": self.reason });
        let mut response = (self.status, Json(body)).into_response();
        let headers = response.headers_mut();
        if let Some(secs) = self.retry_after_secs {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// Formats a wall time as RFC 3339 in UTC with milliseconds.
pub fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A session with its idle time and time until stale, as of the answer's time.
#[derive(Debug, Serialize)]
pub struct SessionView<'a> {
    id: &'a str,
    source: &'static str,
    created_at: String,
    last_active_at: String,
    idle_secs: f64,
    stale: bool,
    stale_in_secs: f64,
    stale_at: String,
    activity_count: u64,
    meta: Option<&'a BTreeMap<String, String>>,
}

impl<'a> SessionView<'a> {
    /// Describes `session` at the time of `answer`.
    pub fn new(session: &'a Session, answer: &Answer, clock: &dyn Clock) -> SessionView<'a> {
        let idle_timeout = answer.status.idle_timeout;
        let idle = session.idle_at(answer.now);
        let stale_at: MonoTime = session.last_active + idle_timeout;
        SessionView {
            id: session.id.as_str(),
            source: session.source.name(),
            created_at: rfc3339(clock.wall_time(session.created)),
            last_active_at: rfc3339(clock.wall_time(session.last_active)),
            idle_secs: seconds(idle),
            stale: idle >= idle_timeout,
            stale_in_secs: seconds(idle_timeout.saturating_sub(idle)),
            stale_at: rfc3339(clock.wall_time(stale_at)),
            activity_count: session.activity_count,
            meta: session.meta.as_deref(),
        }
    }
}

/// The body of `GET /v1/sessions`.
#[derive(Debug, Serialize)]
pub struct SessionList<'a> {
    now: String,
    idle_timeout_secs: f64,
    total: u64,
    returned: usize,
    limit: usize,
    order: &'static str,
    sessions: Vec<SessionView<'a>>,
}

impl<'a> SessionList<'a> {
    /// Describes the sessions of `answer`, listed under `limit`.
    pub fn new(answer: &'a Answer, limit: usize, clock: &dyn Clock) -> SessionList<'a> {
        let sessions: Vec<SessionView<'a>> = answer
            .sessions
            .iter()
            .map(|session| SessionView::new(session, answer, clock))
            .collect();
        SessionList {
            now: rfc3339(answer.wall_now),
            idle_timeout_secs: seconds(answer.status.idle_timeout),
            total: answer.status.sessions,
            returned: sessions.len(),
            limit,
            order: "least_recently_active_first",
            sessions,
        }
    }
}

/// Counters of the API itself.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ApiCounters {
    /// Requests received.
    pub requests: u64,
    /// Requests received in the last whole second.
    pub requests_per_sec: u64,
    /// Activity reports passed to the engine.
    pub reports_accepted: u64,
    /// Error responses plus reports rejected inside batches.
    pub rejected: u64,
}

/// The body of `GET /v1/stats`.
#[derive(Debug, Serialize)]
pub struct StatsView {
    now: String,
    sessions: u64,
    stale: u64,
    idle_timeout_secs: f64,
    sweep_interval_secs: f64,
    next_sweep_at: String,
    next_sweep_in_secs: f64,
    sweep_running: bool,
    sweeps_finished: u64,
    sweeps_failed: u64,
    last_sweep: Option<LastSweep>,
    removed: Removed,
    log_records_dropped: u64,
    api: ApiCounters,
}

#[derive(Debug, Serialize)]
struct LastSweep {
    trigger: SweepTrigger,
    removed: u64,
    remaining: u64,
    took_secs: f64,
}

#[derive(Debug, Serialize)]
struct Removed {
    total: u64,
    #[serde(flatten)]
    by_cause: RemovalCounts,
}

impl StatsView {
    /// Describes the engine's state in `answer` and the API's counters.
    pub fn new(answer: &Answer, api: ApiCounters, clock: &dyn Clock) -> StatsView {
        let status = &answer.status;
        let last_sweep = match &status.last_sweep {
            Some(Event::SweepFinished {
                trigger,
                removed,
                remaining,
                took,
            }) => Some(LastSweep {
                trigger: *trigger,
                removed: *removed,
                remaining: *remaining,
                took_secs: took.as_secs_f64(),
            }),
            _ => None,
        };
        StatsView {
            now: rfc3339(answer.wall_now),
            sessions: status.sessions,
            stale: answer.stale.unwrap_or(0),
            idle_timeout_secs: seconds(status.idle_timeout),
            sweep_interval_secs: seconds(status.sweep_interval),
            next_sweep_at: rfc3339(clock.wall_time(status.next_sweep_due)),
            next_sweep_in_secs: seconds(status.next_sweep_due - answer.now),
            sweep_running: status.sweep_running,
            sweeps_finished: status.sweeps_finished,
            sweeps_failed: status.sweeps_failed,
            last_sweep,
            removed: Removed {
                total: status.removed_total,
                by_cause: answer.removals,
            },
            log_records_dropped: status.records_dropped_total,
            api,
        }
    }
}

/// Rejected reports listed in a batch response; the rest are only counted.
pub const MAX_LISTED_REJECTIONS: usize = 100;

/// The body of a response to activity reports.
#[derive(Debug, Serialize)]
pub struct Accepted {
    /// Reports passed to the engine.
    pub accepted: usize,
    /// Reports rejected.
    pub rejected: usize,
    /// The first [`MAX_LISTED_REJECTIONS`] rejected reports with their reasons.
    pub errors: Vec<RejectedView>,
    /// Whether `errors` leaves some rejected reports out.
    pub errors_truncated: bool,
}

/// One rejected report of a batch.
#[derive(Debug, Serialize)]
pub struct RejectedView {
    #[serde(skip_serializing_if = "Option::is_none")]
    index: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    line: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    error: &'static str,
    reason: String,
}

impl Accepted {
    /// Describes a batch of which `accepted` reports went to the engine.
    pub fn new(accepted: usize, rejected: &[Rejected]) -> Accepted {
        let errors = rejected
            .iter()
            .take(MAX_LISTED_REJECTIONS)
            .map(|rejected| {
                let (index, line) = match rejected.position {
                    Position::Index(index) => (Some(index), None),
                    Position::Line(line) => (None, Some(line)),
                };
                RejectedView {
                    index,
                    line,
                    id: rejected.id.clone(),
                    error: rejected.error.code(),
                    reason: rejected.error.to_string(),
                }
            })
            .collect();
        Accepted {
            accepted,
            rejected: rejected.len(),
            errors,
            errors_truncated: rejected.len() > MAX_LISTED_REJECTIONS,
        }
    }
}
