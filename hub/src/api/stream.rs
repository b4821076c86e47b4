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
    /// Only this area (`npo`, `sdk`, `plans`, `decision`, `deviation`, `video`, `hub`).
    pub area: Option<String>,
    /// Only this principal (its code).
    pub principal: Option<String>,
    /// Only this event type.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub event_type: Option<String>,
    /// Dead letters instead of log events (operators only).
    pub dlq: Option<bool>,
    /// Start at this stream sequence (default: only new messages).
    pub from_seq: Option<u64>,
    /// Start this long ago, e.g. `15m`, `2h`.
    pub since: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/stream", tag = "operations", params(StreamQuery), responses((status = 200, description = "Server-Sent Events: `event: event` with an EventSummary as data (`event: dead_letter` with a DeadLetterSummary for `dlq=true`), `id:` the stream sequence, a keep-alive comment every 15 s", content_type = "text/event-stream", body = String), (status = 400, description = "A filter names nothing that exists", body = super::ErrorBody), (status = 401, description = "No token, or an unknown or revoked one", body = super::ErrorBody), (status = 403, description = "The token's role may not do this", body = super::ErrorBody), (status = 503, description = "NATS unavailable, or too many live streams", body = super::ErrorBody)))]
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
    let filter =
        TailFilter { area: query.area, principal: query.principal, event_type: query.event_type, dlq, routed_to: None };
    let start = StartAt::from_parameters(query.from_seq, query.since.as_deref()).map_err(tail_error)?;
    let permit = STREAMS
        .try_acquire()
        .map_err(|_| ApiError::unavailable(format!("{MAX_STREAMS} live streams are open; try again later")))?;
    let items = tail::follow(&state.js, &filter, start).await.map_err(tail_error)?;
    let mut shutdown = state.shutdown.clone();
    let stopping = async move {
        let _ = shutdown.wait_for(|stop| *stop).await;
    };
    let events = items.take_until(Box::pin(stopping)).map(move |item| {
        let _held = &permit; // released when the client goes away and the stream is dropped
        Ok(sse_event(item))
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)).text("keep-alive")))
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
