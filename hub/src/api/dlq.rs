//! The dead letters, for operators: `GET /api/v1/dlq` (the newest, by reason or principal),
//! `GET /api/v1/dlq/{seq}` (one), `POST /api/v1/dlq/replay` (through validation again).
//! An integrator token lists its own principal's dead letters (what its systems sent and the hub
//! refused, and why), never another's.

use axum::{
    extract::{Path, Query, State},
    Json,
};
use serde::{Deserialize, Serialize};

use super::{auth::Caller, ApiError, ApiState};
use crate::{
    log::{
        dead_letter::DeadLetter,
        replay::{self as replay, ReplayError, ReplayOutcome, ReplayResult},
        streams,
    },
    tokens::Role,
};

/// Query parameters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DlqQuery {
    /// How many, newest first: 1–1000, default 50.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
    /// Only this reason code.
    pub reason: Option<String>,
    /// Only this principal (its code, or `unknown`).
    pub principal: Option<String>,
}

/// One item: the dead letter and its sequence in `SGD_DLQ`.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DlqItem {
    /// Sequence in `SGD_DLQ`.
    pub seq: u64,
    /// Whether `POST /api/v1/dlq/replay` can replay it (its body is the event as sent).
    pub replayable: bool,
    /// The dead letter.
    #[serde(flatten)]
    pub dead_letter: DeadLetter,
}

impl DlqItem {
    fn new(seq: u64, dead_letter: DeadLetter) -> Self {
        Self { seq, replayable: dead_letter.replayable(), dead_letter }
    }
}

/// The newest dead letters and how many the stream holds.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DlqAnswer {
    /// How many dead letters the stream holds (all reasons).
    pub total: u64,
    /// The newest `limit` that match, newest first (of at most the newest 10,000 read).
    pub items: Vec<DlqItem>,
}

#[utoipa::path(get, path = "/api/v1/dlq", tag = "operations", params(DlqQuery), responses((status = 200, description = "The newest dead letters, newest first", body = DlqAnswer), (status = 400, description = "Bad limit", body = super::ErrorBody), (status = 401, description = "No token, or an unknown or revoked one", body = super::ErrorBody), (status = 403, description = "The token's role may not do this, or an integrator asked for another principal", body = super::ErrorBody), (status = 503, description = "NATS unavailable", body = super::ErrorBody)))]
/// The newest dead letters; an integrator's are its own principal's only.
pub async fn list(
    State(state): State<ApiState>,
    caller: Caller,
    query: Result<Query<DlqQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<DlqAnswer>, ApiError> {
    caller.require(&[Role::Operator, Role::Integrator])?;
    let Query(mut query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    if caller.0.role == Role::Integrator {
        let own = caller
            .0
            .principal
            .clone()
            .ok_or_else(|| ApiError::forbidden("this integrator token is bound to no principal"))?;
        if query.principal.as_deref().is_some_and(|asked| asked != own) {
            return Err(ApiError::forbidden("an integrator token sees its own principal's dead letters only"));
        }
        query.principal = Some(own);
    }
    let limit = super::stream_tail::limit(query.limit)?;
    let admit = |subject: &str| {
        let parsed = sgd_schemas::subjects::parse_dlq(subject);
        query.reason.as_deref().is_none_or(|r| parsed.is_some_and(|(_, reason)| reason == r))
            && query.principal.as_deref().is_none_or(|p| parsed.is_some_and(|(principal, _)| principal == p))
    };
    let (mut total, messages) = super::stream_tail::newest_matching(&state.js, streams::DLQ, limit, admit).await?;
    if caller.0.role == Role::Integrator {
        // The stream's total would tell of other principals' refusals: count the caller's own.
        let own = format!("sgd.dlq.{}.>", query.principal.as_deref().unwrap_or_default());
        total = own_total(&state, &own).await?;
    }
    let mut items = Vec::new();
    for (seq, payload) in messages {
        match serde_json::from_slice::<DeadLetter>(&payload) {
            Ok(dead_letter) => items.push(DlqItem::new(seq, dead_letter)),
            Err(e) => tracing::warn!(seq, error = %e, "unreadable dead letter"),
        }
    }
    Ok(Json(DlqAnswer { total, items }))
}

/// Dead letters on the subjects matching `filter`.
async fn own_total(state: &ApiState, filter: &str) -> Result<u64, ApiError> {
    use futures::TryStreamExt;
    let stream = state.js.get_stream(streams::DLQ).await.map_err(|e| ApiError::unavailable(e.to_string()))?;
    let counts = stream.info_with_subjects(filter).await.map_err(|e| ApiError::unavailable(e.to_string()))?;
    let counts: Vec<(String, usize)> = counts.try_collect().await.map_err(|e| ApiError::unavailable(e.to_string()))?;
    Ok(counts.iter().map(|(_, n)| *n as u64).sum())
}

#[utoipa::path(get, path = "/api/v1/dlq/{seq}", tag = "operations", params(("seq" = u64, Path, description = "Sequence in SGD_DLQ, from 1", minimum = 1)), responses((status = 200, description = "The dead letter", body = DlqItem), (status = 400, description = "The sequence is not a number from 1", body = super::ErrorBody), (status = 401, description = "No token, or an unknown or revoked one", body = super::ErrorBody), (status = 403, description = "The token's role may not do this", body = super::ErrorBody), (status = 404, description = "No dead letter has this sequence (replayed, or never)", body = super::ErrorBody), (status = 503, description = "NATS unavailable", body = super::ErrorBody)))]
/// One dead letter: the refused event, its reasons and where it came from.
pub async fn show(
    State(state): State<ApiState>,
    caller: Caller,
    seq: Result<Path<u64>, axum::extract::rejection::PathRejection>,
) -> Result<Json<DlqItem>, ApiError> {
    caller.require(&[Role::Operator])?;
    let Path(seq) = seq.map_err(|e| ApiError::bad_request(e.body_text()))?;
    if seq == 0 {
        return Err(ApiError::bad_request("sequences start at 1"));
    }
    let stream = state.js.get_stream(streams::DLQ).await.map_err(|e| ApiError::unavailable(e.to_string()))?;
    let message = match stream.get_raw_message(seq).await {
        Ok(message) => message,
        Err(e) if e.kind() == async_nats::jetstream::stream::RawMessageErrorKind::NoMessageFound => {
            return Err(ApiError::not_found(format!("no dead letter {seq}")))
        }
        Err(e) => return Err(ApiError::unavailable(e.to_string())),
    };
    let dead_letter = serde_json::from_slice::<DeadLetter>(&message.payload)
        .map_err(|e| ApiError::unavailable(format!("dead letter {seq} is unreadable: {e}")))?;
    Ok(Json(DlqItem::new(seq, dead_letter)))
}

/// What to replay: the sequences, or every dead letter of one reason (its OpenAPI schema says
/// which combinations are accepted).
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayRequest {
    /// These dead letters.
    #[serde(default)]
    pub seq: Vec<u64>,
    /// Every dead letter refused for this reason (oldest first, at most `limit`).
    pub reason: Option<String>,
    /// At most this many for a reason: 1–10,000, default 1,000.
    pub limit: Option<usize>,
}

/// The most sequences one replay takes, and the most dead letters of a reason.
const MAX_REPLAY: usize = 10_000;

impl utoipa::PartialSchema for ReplayRequest {
    /// Either `seq` (1–10,000 sequences) or `reason`, never both; `limit` (1–10,000) in either.
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
        use utoipa::openapi::schema::{AdditionalProperties, ArrayBuilder, ObjectBuilder, OneOfBuilder, Type};
        let limit = || {
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(1))
                .maximum(Some(MAX_REPLAY as u64))
                .description(Some("At most this many for a reason: 1–10,000, default 1,000."))
        };
        let sequences = |min: usize, max: usize| {
            ArrayBuilder::new()
                .items(
                    ObjectBuilder::new()
                        .schema_type(Type::Integer)
                        .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(utoipa::openapi::KnownFormat::Int64)))
                        .minimum(Some(0)),
                )
                .min_items(Some(min))
                .max_items(Some(max))
        };
        let reasons = sgd_schemas::validate::RejectReason::ALL.iter().map(|r| r.as_str());
        let closed = || AdditionalProperties::FreeForm(false);
        OneOfBuilder::new()
            .description(Some("What to replay: `seq` (these dead letters), or `reason` (every dead letter refused for it, oldest first, at most `limit`)."))
            .item(
                ObjectBuilder::new()
                    .title(Some("By sequence"))
                    .property("seq", sequences(1, MAX_REPLAY).description(Some("These dead letters' sequences in SGD_DLQ.")))
                    .required("seq")
                    .property("limit", limit())
                    .additional_properties(Some(closed())),
            )
            .item(
                ObjectBuilder::new()
                    .title(Some("By reason"))
                    .property(
                        "reason",
                        ObjectBuilder::new()
                            .schema_type(Type::String)
                            .enum_values(Some(reasons))
                            .description(Some("Every dead letter refused for this reason.")),
                    )
                    .required("reason")
                    .property("seq", sequences(0, 0).description(Some("Empty, when given with a reason.")))
                    .property("limit", limit())
                    .additional_properties(Some(closed())),
            )
            .into()
    }
}

impl utoipa::ToSchema for ReplayRequest {}

/// `ReplayResult` of the DLQ under a name of its own (webhooks' parked replays have another).
pub struct DlqReplayResult;

impl utoipa::PartialSchema for DlqReplayResult {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
        <ReplayResult as utoipa::PartialSchema>::schema()
    }
}

impl utoipa::ToSchema for DlqReplayResult {
    fn schemas(schemas: &mut Vec<(String, utoipa::openapi::RefOr<utoipa::openapi::Schema>)>) {
        <ReplayResult as utoipa::ToSchema>::schemas(schemas)
    }
}

/// The answer of a replay.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = DlqReplayAnswer)]
pub struct ReplayAnswer {
    /// Now in the log (or found there already), their dead letters deleted.
    pub logged: usize,
    /// Refused again; they stay.
    pub refused: usize,
    /// Not replayable (redacted or cut bodies) or not found.
    pub skipped: usize,
    /// Whether more dead letters of the reason are left (run again).
    pub more: bool,
    /// Each one.
    #[schema(value_type = Vec<DlqReplayResult>)]
    pub results: Vec<ReplayResult>,
}

#[utoipa::path(post, path = "/api/v1/dlq/replay", tag = "operations", request_body = ReplayRequest, responses((status = 200, description = "What happened to each dead letter", body = ReplayAnswer), (status = 400, description = "Not one of the two shapes: neither or both of seq and reason, an unknown reason, a limit or a count of sequences out of range", body = super::ErrorBody), (status = 401, description = "No token, or an unknown or revoked one", body = super::ErrorBody), (status = 403, description = "The token's role may not do this", body = super::ErrorBody), (status = 503, description = "NATS unavailable; what was replayed before the failure is not undone, run again", body = super::ErrorBody), (status = 413, description = "Body too large", body = super::ErrorBody)))]
/// Validates dead letters again, by sequence or by reason, and logs those that now pass.
pub async fn replay_handler(
    State(state): State<ApiState>,
    caller: Caller,
    body: Result<Json<ReplayRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<ReplayAnswer>, ApiError> {
    caller.require(&[Role::Operator])?;
    let Json(request) = body.map_err(ApiError::from)?;
    let error = |e: ReplayError| match e {
        ReplayError::UnknownReason(_) => ApiError::bad_request(e.to_string()),
        ReplayError::Nats(_) => ApiError::unavailable(e.to_string()),
    };
    let limit = request.limit.unwrap_or(1000);
    if !(1..=MAX_REPLAY).contains(&limit) {
        return Err(ApiError::bad_request("limit must be 1–10,000"));
    }
    let (results, more) = match (request.seq.is_empty(), request.reason) {
        (false, None) => {
            if request.seq.len() > MAX_REPLAY {
                return Err(ApiError::bad_request("at most 10,000 sequences per replay"));
            }
            // The document's integers are int64.
            if request.seq.iter().any(|seq| i64::try_from(*seq).is_err()) {
                return Err(ApiError::bad_request("a sequence is at most 9223372036854775807"));
            }
            let results =
                replay::replay_sequences(&state.js, &request.seq, state.max_event_bytes, &state.metrics).await;
            (results.map_err(error)?, false)
        }
        (true, Some(reason)) => replay::replay_reason(&state.js, &reason, limit, state.max_event_bytes, &state.metrics)
            .await
            .map_err(error)?,
        _ => return Err(ApiError::bad_request("give either seq (a list of sequences) or reason")),
    };
    let count = |f: fn(&ReplayOutcome) -> bool| results.iter().filter(|r| f(&r.outcome)).count();
    Ok(Json(ReplayAnswer {
        logged: count(|o| matches!(o, ReplayOutcome::Logged | ReplayOutcome::AlreadyLogged)),
        refused: count(|o| matches!(o, ReplayOutcome::Refused)),
        skipped: count(|o| matches!(o, ReplayOutcome::NotReplayable | ReplayOutcome::NotFound)),
        more,
        results,
    }))
}
