//! Endpoints of the API and the checks every request passes. Handlers turn requests into
//! engine commands and engine replies into JSON, and none of them blocks its thread.

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use crossbeam_channel::{Sender, TrySendError};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde_json::json;

use super::ApiLimits;
use super::auth::{self, Token};
use super::request::{
    self, BatchFormat, Report, ReportError, decode_id, engine_time, parse_batch, parse_list_limit,
    parse_report,
};
use super::response::{
    Accepted, ApiCounters, ApiError, SessionList, SessionView, StatsView, rfc3339,
};
use crate::engine::clock::SharedClock;
use crate::engine::event::format_duration;
use crate::engine::event::{Activity, Command};
use crate::engine::query::{Answer, Query, Reply};
use crate::engine::session::{SessionId, Source};
use crate::sources::SourceStats;

/// State shared by every handler.
pub(super) struct ApiState {
    /// The engine's command queue.
    pub commands: Sender<Command>,
    /// The engine's clock, for mapping client times and formatting responses.
    pub clock: SharedClock,
    /// Counters shown in the window and in `GET /v1/stats`.
    pub stats: Arc<SourceStats>,
    /// Token that `/v1/` requests must present, if any.
    pub token: Option<Token>,
    /// Limits on requests.
    pub limits: ApiLimits,
}

type Shared = Arc<ApiState>;

/// Builds the router with every endpoint and check.
pub(super) fn router(state: Shared) -> Router {
    let v1 = Router::new()
        .route("/v1/sessions", get(list_sessions))
        .route("/v1/sessions/{id}", get(get_session).delete(end_session))
        .route("/v1/sessions/{id}/activity", post(report_one))
        .route("/v1/activity", post(report_many))
        .route("/v1/sweep", post(sweep))
        .route("/v1/stats", get(stats))
        .route_layer(middleware::from_fn_with_state(
            Arc::clone(&state),
            require_token,
        ));
    Router::new()
        .route("/healthz", get(health))
        .merge(v1)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(Arc::clone(&state), guard))
        .with_state(state)
}

/// Counts the request, applies the access rules and the time limit, and counts error
/// responses.
async fn guard(State(state): State<Shared>, request: Request, next: Next) -> Response {
    SourceStats::add(&state.stats.requests, 1);
    let allowed =
        auth::reject_browser_requests(request.headers()).and_then(|()| match state.token {
            Some(_) => Ok(()),
            None => auth::require_loopback_host(request.headers()),
        });
    let response = match allowed {
        Err(error) => error.into_response(),
        Ok(()) => match tokio::time::timeout(state.limits.request_timeout, next.run(request)).await
        {
            Ok(response) => response,
            Err(_) => request_timed_out(state.limits.request_timeout),
        },
    };
    if response.status().is_client_error() || response.status().is_server_error() {
        SourceStats::add(&state.stats.rejected, 1);
    }
    response
}

fn request_timed_out(limit: std::time::Duration) -> Response {
    let reason = format!(
        "the request was not complete within {}; send the body without pauses",
        format_duration(limit)
    );
    let mut response =
        ApiError::new(StatusCode::REQUEST_TIMEOUT, "request_timeout", reason).into_response();
    // The rest of the body may still be on its way, so the connection cannot be reused.
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

async fn require_token(State(state): State<Shared>, request: Request, next: Next) -> Response {
    if let Some(token) = &state.token
        && let Err(error) = token.check(request.headers())
    {
        return error.into_response();
    }
    next.run(request).await
}

async fn not_found(uri: Uri) -> ApiError {
    let path = uri.path();
    // "/v1/sessions/" and "/v1/sessions//activity" name a session with an empty id.
    if let Some(rest) = path.strip_prefix("/v1/sessions/")
        && (rest.is_empty() || rest.starts_with('/'))
    {
        return ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_id",
            "invalid session id: session id is empty",
        );
    }
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no endpoint at {path}"),
    )
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{method} is not allowed on {}", uri.path()),
    )
}

async fn health(State(state): State<Shared>) -> Result<Response, ApiError> {
    let answer = state.query(Query::Stats).await?;
    Ok(Json(json!({ "status": "ok", "sessions": answer.status.sessions })).into_response())
}

async fn report_one(State(state): State<Shared>, request: Request) -> Result<Response, ApiError> {
    let id = path_id(request.uri())?;
    let (parts, body) = request.into_parts();
    let body = read_body(body, &parts.headers, state.limits.max_report_body).await?;
    if !body.trim_ascii().is_empty() {
        require_json(&parts.headers)?;
    }
    let report = parse_report(id, &body).map_err(|error| invalid_report(&error))?;

    let time = engine_time(report.at, state.clock.as_ref());
    let id = report.id.clone();
    state.send(Command::Touch(activity(report, time.at)))?;
    SourceStats::add(&state.stats.reports_sent, 1);
    let body = json!({
        "accepted": true,
        "id": id.as_str(),
        "at": rfc3339(state.clock.wall_time(time.at)),
        "clamped_to_now": time.clamped_to_now,
    });
    Ok((StatusCode::ACCEPTED, Json(body)).into_response())
}

async fn report_many(State(state): State<Shared>, request: Request) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    let format = batch_format(&parts.headers)?;
    let body = read_body(body, &parts.headers, state.limits.max_batch_body).await?;
    let batch = parse_batch(format, &body, state.limits.max_batch_reports).map_err(|error| {
        let status = match error {
            request::BatchError::TooManyReports { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            request::BatchError::Malformed(_) => StatusCode::BAD_REQUEST,
        };
        ApiError::new(status, "invalid_body", error.to_string())
    })?;

    let accepted = batch.reports.len();
    if accepted > 0 {
        let activities: Vec<Activity> = batch
            .reports
            .into_iter()
            .map(|report| {
                let time = engine_time(report.at, state.clock.as_ref());
                activity(report, time.at)
            })
            .collect();
        state.send(Command::TouchBatch(activities))?;
    }
    SourceStats::add(&state.stats.reports_sent, accepted as u64);
    SourceStats::add(&state.stats.rejected, batch.rejected.len() as u64);
    let body = Accepted::new(accepted, &batch.rejected);
    Ok((StatusCode::ACCEPTED, Json(body)).into_response())
}

async fn list_sessions(
    State(state): State<Shared>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let limit = parse_list_limit(query.as_deref()).map_err(|error| {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", error.to_string())
    })?;
    let answer = state.query(Query::Sessions { limit }).await?;
    let list = SessionList::new(&answer, limit, state.clock.as_ref());
    Ok(Json(list).into_response())
}

async fn get_session(State(state): State<Shared>, uri: Uri) -> Result<Response, ApiError> {
    let id = path_id(&uri)?;
    let answer = state.query(Query::Session(id.clone())).await?;
    let session = found(&answer, &id)?;
    let view = SessionView::new(session, &answer, state.clock.as_ref());
    Ok(Json(view).into_response())
}

/// Ends a session, as a logout does. The engine is asked first whether the session
/// exists, so an unknown id gets 404.
async fn end_session(State(state): State<Shared>, uri: Uri) -> Result<Response, ApiError> {
    let id = path_id(&uri)?;
    let answer = state.query(Query::Session(id.clone())).await?;
    let session = found(&answer, &id)?;
    let view = SessionView::new(session, &answer, state.clock.as_ref());
    // NOTE: a sweep between the query and this command can remove the session first;
    // the response still says it ended, and the engine logs that it found no session.
    state.send(Command::End { id: id.clone() })?;
    Ok(Json(json!({ "ended": true, "session": view })).into_response())
}

async fn sweep(State(state): State<Shared>) -> Result<Response, ApiError> {
    state.send(Command::SweepNow)?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "sweep": "requested" }))).into_response())
}

async fn stats(State(state): State<Shared>) -> Result<Response, ApiError> {
    let answer = state.query(Query::Stats).await?;
    let stats = &state.stats;
    let counters = ApiCounters {
        requests: SourceStats::get(&stats.requests),
        requests_per_sec: SourceStats::get(&stats.requests_per_sec),
        reports_accepted: SourceStats::get(&stats.reports_sent),
        rejected: SourceStats::get(&stats.rejected),
    };
    let view = StatsView::new(&answer, counters, state.clock.as_ref());
    Ok(Json(view).into_response())
}

impl ApiState {
    /// Queues a command without waiting.
    fn send(&self, command: Command) -> Result<(), ApiError> {
        match self.commands.try_send(command) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "engine_busy",
                "the session engine's command queue is full; retry in a second",
            )
            .retry_after(1)),
            Err(TrySendError::Disconnected(_)) => Err(engine_stopped()),
        }
    }

    /// Asks the engine worker a query and waits, without blocking the thread, up to the
    /// engine time limit for its reply.
    async fn query(&self, query: Query) -> Result<Answer, ApiError> {
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let reply = Reply::new(move |answer| {
            // A request that timed out has dropped the receiver; nothing waits then.
            let _ = sender.send(answer);
        });
        self.send(Command::Query { query, reply })?;
        match tokio::time::timeout(self.limits.engine_timeout, receiver).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(_)) => Err(engine_stopped()),
            Err(_) => Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "engine_timeout",
                format!(
                    "the session engine did not answer within {}; retry later",
                    format_duration(self.limits.engine_timeout)
                ),
            )
            .retry_after(1)),
        }
    }
}

fn engine_stopped() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "engine_stopped",
        "the session engine has stopped",
    )
}

fn activity(report: Report, at: crate::engine::clock::MonoTime) -> Activity {
    Activity {
        id: report.id,
        source: Source::Api,
        at: Some(at),
        meta: report.meta,
    }
}

fn invalid_report(error: &ReportError) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, error.code(), error.to_string())
}

/// Decodes the session id, the third segment of `/v1/sessions/{id}…`. The router
/// matches the raw path, so the segment is still percent-encoded here.
fn path_id(uri: &Uri) -> Result<SessionId, ApiError> {
    let segment = uri.path().split('/').nth(3).unwrap_or("");
    decode_id(segment).map_err(|error| invalid_report(&ReportError::Id(error)))
}

fn found<'a>(
    answer: &'a Answer,
    id: &SessionId,
) -> Result<&'a crate::engine::session::Session, ApiError> {
    answer.sessions.first().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no session with id {:?}", id.as_str()),
        )
    })
}

/// Reads a body of at most `limit` bytes.
async fn read_body(body: Body, headers: &HeaderMap, limit: usize) -> Result<Bytes, ApiError> {
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the request body is larger than {limit} bytes"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return Err(too_large());
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.downcast_ref::<LengthLimitError>().is_some() => Err(too_large()),
        Err(error) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_body",
            format!("failed to read the request body: {error}"),
        )),
    }
}

/// Returns the media type of the body, lower-cased and without parameters.
fn media_type(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::CONTENT_TYPE)?;
    let text = String::from_utf8_lossy(value.as_bytes());
    let essence = text.split(';').next().unwrap_or("").trim();
    Some(essence.to_ascii_lowercase())
}

fn is_json(media_type: &str) -> bool {
    media_type == "application/json" || media_type.ends_with("+json")
}

fn require_json(headers: &HeaderMap) -> Result<(), ApiError> {
    match media_type(headers) {
        None => Ok(()),
        Some(media_type) if is_json(&media_type) => Ok(()),
        Some(media_type) => Err(unsupported(&media_type, "application/json")),
    }
}

fn batch_format(headers: &HeaderMap) -> Result<BatchFormat, ApiError> {
    match media_type(headers).as_deref() {
        None => Ok(BatchFormat::JsonArray),
        Some(media_type) if is_json(media_type) => Ok(BatchFormat::JsonArray),
        Some("application/x-ndjson" | "application/jsonl" | "application/json-lines") => {
            Ok(BatchFormat::JsonLines)
        }
        Some(media_type) => Err(unsupported(
            media_type,
            "application/json (an array) or application/x-ndjson (JSON Lines)",
        )),
    }
}

fn unsupported(media_type: &str, expected: &str) -> ApiError {
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        format!("Content-Type {media_type:?} is not accepted; send {expected}"),
    )
}
