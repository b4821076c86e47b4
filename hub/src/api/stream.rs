//! `GET /api/v1/stream`: the log (or, for operators, the dead letters) live, as Server-Sent
//! Events, with the filters of `hub tail`.

use std::{convert::Infallible, time::Duration};

use axum::{
    extract::{Query, State},
    response::sse::{Event, KeepAlive, Sse},
};
use futures::{Stream, StreamExt};
use serde::Deserialize;
use tokio::sync::Semaphore;

use super::{auth::Caller, ApiError, ApiState};
use crate::{
    log::tail::{self, StartAt, TailError, TailFilter, TailItem},
    tokens::Role,
};

/// At most this many live streams per hub process; more get 503 (each holds an ordered
/// consumer on the server).
pub const MAX_STREAMS: usize = 64;
static STREAMS: Semaphore = Semaphore::const_new(MAX_STREAMS);

/// Query parameters: the filters of `hub tail`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct StreamQuery {
    /// Only this area (`npo`, `sdk`, `plans`, `decision`, `deviation`, `video`, `hub`); with a
    /// `type` of another area nothing matches.
    #[param(value_type = Option<super::params::AreaName>)]
    pub area: Option<String>,
    /// Only this principal (its code; for dead letters also `unknown`).
    #[param(value_type = Option<StreamPrincipal>)]
    pub principal: Option<String>,
    /// Only this event type.
    #[serde(rename = "type")]
    #[param(rename = "type", value_type = Option<super::params::EventTypeName>)]
    pub event_type: Option<String>,
    /// Dead letters instead of log events (operators only).
    pub dlq: Option<bool>,
    /// Start at this stream sequence (default: only new messages); with `since`, at whichever of
    /// the two comes later. (Signed, as the document's int64 is.)
    #[param(minimum = 0)]
    pub from_seq: Option<i64>,
    /// Start this long ago: a number and s, m, h or d (`90s`, `15m`, `2h`, `1d`); with `from_seq`,
    /// at whichever of the two comes later.
    #[param(value_type = Option<super::params::SinceDuration>)]
    pub since: Option<String>,
}

/// One Server-Sent Event of the live stream (the keep-alive comments are not events).
pub struct StreamEvent;

impl utoipa::PartialSchema for StreamEvent {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        let string = || ObjectBuilder::new().schema_type(Type::String);
        ObjectBuilder::new()
            .description(Some("One Server-Sent Event."))
            .property(
                "event",
                string()
                    .enum_values(Some(["event", "dead_letter", "error"]))
                    .description(Some("`event` (a log event), `dead_letter` (with dlq=true) or `error`.")),
            )
            .required("event")
            .property(
                "id",
                string().pattern(Some("^[0-9]+$")).description(Some("The stream sequence (not on `error`).")),
            )
            .property(
                "data",
                string().description(Some(
                    "An EventSummary (`event`) or DeadLetterSummary (`dead_letter`) as JSON, or what went wrong (`error`).",
                )),
            )
            .required("data")
            .into()
    }
}

impl utoipa::ToSchema for StreamEvent {}

/// A principal's code, or `unknown` (dead letters whose sender could not be trusted).
pub struct StreamPrincipal;

impl utoipa::PartialSchema for StreamPrincipal {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        let codes = sgd_schemas::principals::all().iter().map(|p| p.code.to_string()).chain(["unknown".to_string()]);
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some("A principal's code, or `unknown`."))
            .enum_values(Some(codes))
            .into()
    }
}

impl utoipa::ToSchema for StreamPrincipal {}

#[utoipa::path(get, path = "/api/v1/stream", tag = "operations", params(StreamQuery), responses((status = 200, description = "Server-Sent Events: `event: event` with an EventSummary as data (`event: dead_letter` with a DeadLetterSummary for `dlq=true`), `id:` the stream sequence, a keep-alive comment every 15 s", content_type = "text/event-stream", body = StreamEvent), (status = 400, description = "A filter names nothing that exists", body = super::ErrorBody), (status = 401, description = "No token, or an unknown or revoked one", body = super::ErrorBody), (status = 403, description = "The token's role may not do this", body = super::ErrorBody), (status = 503, description = "NATS unavailable, or too many live streams", body = super::ErrorBody)))]
/// Follows the log (or the dead letters) live as Server-Sent Events, filtered.
pub async fn live(
    State(state): State<ApiState>,
    caller: Caller,
    query: Result<Query<StreamQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    caller.require(&[Role::Analyst, Role::Operator])?;
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let dlq = query.dlq.unwrap_or(false);
    if dlq {
        caller.require(&[Role::Operator])?;
    }
    let from_seq = match query.from_seq {
        Some(seq) => Some(u64::try_from(seq).map_err(|_| ApiError::bad_request("from_seq is a sequence from 0"))?),
        None => None,
    };
    if let Some(since) = query.since.as_deref() {
        if !super::params::is_since(since) {
            return Err(ApiError::bad_request(format!(
                "since {since:?}: write a number and s, m, h or d, e.g. 90s, 15m, 2h, 1d (at most six digits)"
            )));
        }
    }
    // A type of another area than `area` matches nothing: the stream stays open with keep-alives
    // only (an error here is a rule between two parameters no schema can state).
    let matches_nothing = match (&query.area, &query.event_type) {
        (Some(area), Some(event_type)) => {
            sgd_schemas::catalogue::AREAS.contains(&area.as_str())
                && sgd_schemas::catalogue::TypeName::parse(event_type).is_some_and(|t| t.area != area)
        }
        _ => false,
    };
    let area = if matches_nothing { None } else { query.area };
    let filter = TailFilter { area, principal: query.principal, event_type: query.event_type, dlq, routed_to: None };
    // Both starts given: follow from `since` and skip what lies before `from_seq`, which starts at
    // the later of the two.
    let (start, skip_before) = match (from_seq, query.since.as_deref()) {
        (Some(seq), Some(since)) => (StartAt::from_parameters(None, Some(since)), seq),
        (from_seq, since) => (StartAt::from_parameters(from_seq, since), 0),
    };
    let start = start.map_err(tail_error)?;
    filter.check().map_err(tail_error)?;
    let permit = STREAMS
        .try_acquire()
        .map_err(|_| ApiError::unavailable(format!("{MAX_STREAMS} live streams are open; try again later")))?;
    let items = if matches_nothing {
        futures::stream::pending().boxed()
    } else {
        tail::follow(&state.js, &filter, start).await.map_err(tail_error)?.boxed()
    };
    let mut shutdown = state.shutdown.clone();
    let stopping = async move {
        let _ = shutdown.wait_for(|stop| *stop).await;
    };
    let events = items
        .take_until(Box::pin(stopping))
        .filter(move |item| std::future::ready(item_sequence(item).is_none_or(|seq| seq >= skip_before)))
        .map(move |item| {
            let _held = &permit; // released when the client goes away and the stream is dropped
            Ok(sse_event(item))
        });
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)).text("keep-alive")))
}

/// The stream sequence of an item (none for an error).
fn item_sequence(item: &Result<TailItem, TailError>) -> Option<u64> {
    match item {
        Ok(TailItem::Event(summary, _)) => Some(summary.seq),
        Ok(TailItem::DeadLetter(summary, _)) => Some(summary.seq),
        Err(_) => None,
    }
}

fn sse_event(item: Result<TailItem, TailError>) -> Event {
    let (kind, seq, data) = match &item {
        Ok(TailItem::Event(summary, _)) => ("event", summary.seq, serde_json::to_string(summary)),
        Ok(TailItem::DeadLetter(summary, _)) => ("dead_letter", summary.seq, serde_json::to_string(summary)),
        Err(e) => return Event::default().event("error").data(e.to_string()),
    };
    match data {
        Ok(data) => Event::default().id(seq.to_string()).event(kind).data(data),
        Err(e) => Event::default().event("error").data(e.to_string()),
    }
}

fn tail_error(e: TailError) -> ApiError {
    match e {
        TailError::Filter(message) => ApiError::bad_request(message),
        TailError::Nats { .. } => ApiError::unavailable(e.to_string()),
    }
}
