//! `GET /api/v1/persons/{pseudonym}/timeline`: one person's events across areas, for coordinators
//! only, and only while an unrevoked, unexpired NPÖ consent exists for the person. Every read that
//! reaches this handler with a valid token, allowed or refused, is first written to `SGD_AUDIT`
//! (`sgd.audit.<principal>`); if the audit record cannot be stored, nothing is served.

use axum::{
    extract::{Path, State},
    http::StatusCode,
    Json,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{auth::Caller, ApiError, ApiState};
use crate::{
    log::streams,
    projections::{ids::PersonId, TimelineEntry},
    tokens::Role,
};

/// One audit record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditRecord {
    /// When the read was asked for.
    pub at: DateTime<Utc>,
    /// The token's public id.
    pub token_id: String,
    /// The token's role.
    pub role: String,
    /// The principal the reader acts for (`none` for roles without one).
    pub principal: String,
    /// The person's pseudonym.
    pub person: String,
    /// What was read.
    pub resource: String,
    /// `allowed` or `refused`.
    pub outcome: String,
    /// Why it was refused, or how many entries were served.
    pub detail: String,
}

/// A person's timeline: every event about them across areas.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Timeline {
    /// The person's pseudonym.
    pub person: String,
    /// Every event about the person, oldest first.
    pub entries: Vec<TimelineEntry>,
}

#[utoipa::path(get, path = "/api/v1/persons/{pseudonym}/timeline", tag = "follow-up", params(("pseudonym" = String, Path, description = "The person's pseudonym: 64 lowercase hex digits", pattern = "^[0-9a-f]{64}$")), responses((status = 200, description = "The person's events across areas, oldest first", body = Timeline), (status = 400, description = "Not a pseudonym", body = super::ErrorBody), (status = 401, description = "No token, or an unknown or revoked one", body = super::ErrorBody), (status = 403, description = "Not a coordinator (forbidden), or no unrevoked, unexpired consent (no_consent)", body = super::ErrorBody), (status = 503, description = "The audit log is unavailable: nothing is served unaudited", body = super::ErrorBody)))]
/// A person's events across areas, oldest first: coordinators only, with the person's consent, audited.
pub async fn timeline(
    State(state): State<ApiState>,
    caller: Caller,
    Path(person): Path<String>,
) -> Result<Json<Timeline>, ApiError> {
    let refuse =
        |status: StatusCode, code: &'static str, message: String| ApiError { status, code, message, details: None };
    let mut record = AuditRecord {
        at: Utc::now(),
        token_id: caller.0.id.clone(),
        role: caller.0.role.as_str().into(),
        principal: caller.0.principal.clone().unwrap_or_else(|| "none".into()),
        person: person.clone(),
        resource: "timeline".into(),
        outcome: "refused".into(),
        detail: String::new(),
    };
    // Anything but a pseudonym (a personal identity number, say) is refused and audited without
    // being written anywhere.
    let Some(person_id) = PersonId::parse(&person) else {
        record.person = "(not a pseudonym)".into();
        record.detail = "the path does not name a 64-hex pseudonym".into();
        audit(&state, &record).await?;
        return Err(ApiError::bad_request("a person is named by a 64-hex pseudonym"));
    };
    let decision = if caller.require(&[Role::Coordinator]).is_err() {
        Err(refuse(StatusCode::FORBIDDEN, "forbidden", "only a coordinator token may read a person's timeline".into()))
    } else if !state.views.read().await.npo.has_valid_consent(&person_id, Utc::now().fixed_offset()) {
        Err(refuse(
            StatusCode::FORBIDDEN,
            "no_consent",
            "no unrevoked, unexpired NPÖ consent exists for this person".into(),
        ))
    } else {
        read_timeline(&state, &person_id).await
    };
    match &decision {
        Ok(entries) => {
            record.outcome = "allowed".into();
            record.detail = format!("{} entries", entries.len());
        }
        Err(e) => record.detail = e.message.clone(),
    }
    audit(&state, &record).await?;
    decision.map(|entries| Json(Timeline { person, entries }))
}

/// Stores an audit record and waits for JetStream's acknowledgement.
pub async fn audit(state: &ApiState, record: &AuditRecord) -> Result<(), ApiError> {
    let subject = format!("sgd.audit.{}", record.principal);
    let body = serde_json::to_vec(record).unwrap_or_default();
    let unavailable = |e: &dyn std::fmt::Display| {
        tracing::error!(error = %e, "audit record not stored; refusing the read");
        ApiError::unavailable(format!("the audit log is unavailable ({e}); nothing was read"))
    };
    state.js.publish(subject, body.into()).await.map_err(|e| unavailable(&e))?.await.map_err(|e| unavailable(&e))?;
    Ok(())
}

/// The person's events, read from the log by the sequences the read model keeps: the newest in
/// the views, the older in the read model's timeline runs on disk (the views first: an entry the
/// runner hands over meanwhile is then in the runs).
async fn read_timeline(state: &ApiState, person: &PersonId) -> Result<Vec<TimelineEntry>, ApiError> {
    let mut refs: Vec<(i64, u64)> =
        state.views.read().await.timelines.get(person).map(|refs| refs.into_owned()).unwrap_or_default();
    let model = state.model.get();
    let person_id = *person;
    let on_disk = tokio::task::spawn_blocking(move || model.timelines().of(&person_id))
        .await
        .map_err(|e| ApiError::unavailable(format!("the timeline could not be read: {e}")))?
        .map_err(|e| ApiError::unavailable(format!("the timeline could not be read: {e}")))?;
    refs.extend(on_disk);
    refs.sort_unstable();
    refs.dedup();
    let sequences: Vec<u64> = refs.into_iter().map(|(_, sequence)| sequence).collect();
    let stream = state.js.get_stream(streams::EVENTS).await.map_err(|e| ApiError::unavailable(e.to_string()))?;
    let mut entries = Vec::with_capacity(sequences.len());
    for sequence in sequences {
        let message = stream.get_raw_message(sequence).await.map_err(|e| {
            ApiError::unavailable(format!("event {sequence} of the timeline could not be read from the log: {e}"))
        })?;
        let envelope: sgd_schemas::Envelope = serde_json::from_slice(&message.payload)
            .map_err(|e| ApiError::unavailable(format!("event {sequence} in the log is unreadable: {e}")))?;
        entries.push(TimelineEntry::of(&envelope));
    }
    Ok(entries)
}
