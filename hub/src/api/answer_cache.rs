//! Shared answers for the aggregate routes (goals, usage, adoption, follow-up): many analysts and
//! dashboards ask the same few questions, and each answer is computed from the whole read model.
//! An answer is kept for the same question (route, query string, role and principal of the
//! caller) while the read model's checkpoint is unchanged and for at most [`MAX_AGE`] (answers
//! "as of now" move with the clock). Requests that arrive while an answer is being computed wait
//! for that one computation instead of starting their own.
//!
//! The caller is authenticated (and rate limited) here, before anything is served; the handler
//! finds the caller in the request's extensions and does not authenticate again. Person-level
//! routes are never cached: each of their reads is authorised and audited on its own.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{
    body::Bytes,
    extract::{FromRequestParts, MatchedPath, Request, State},
    http::{HeaderMap, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
};
use tokio::sync::OnceCell;

use super::{auth::Caller, ApiState};

/// The routes whose answers are shared.
pub const CACHED_ROUTES: [&str; 5] =
    ["/api/v1/goals", "/api/v1/usage", "/api/v1/adoption", "/api/v1/followup/summary", "/api/v1/followup/open"];

/// The longest an answer is reused, even when nothing new was projected (an answer "as of now"
/// is at most this much behind the clock; one computed at 1,000,000 events takes hundreds of
/// milliseconds, see docs/performance.md).
pub const MAX_AGE: Duration = Duration::from_secs(5);

/// Distinct questions remembered before stale ones are forgotten.
const MAX_QUESTIONS: usize = 1024;

/// Largest answer kept (bigger ones, e.g. a year of daily usage of every type, are computed for
/// each request).
const MAX_ANSWER_BYTES: usize = 4 << 20;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Question {
    route_and_query: String,
    role: crate::tokens::Role,
    principal: Option<String>,
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

struct Slot {
    checkpoint: u64,
    made: Instant,
    answer: OnceCell<Option<Arc<Answer>>>,
}

/// The shared answers.
pub struct AnswerCache {
    slots: Mutex<HashMap<Question, Arc<Slot>>>,
    max_age: Duration,
}

impl Default for AnswerCache {
    fn default() -> Self {
        Self::with_max_age(MAX_AGE)
    }
}

impl AnswerCache {
    /// Answers reused for at most `max_age`.
    pub fn with_max_age(max_age: Duration) -> Self {
        Self { slots: Mutex::default(), max_age }
    }

    /// The slot for `question` at `checkpoint`: the current one, or a fresh one replacing it.
    fn slot(&self, question: Question, checkpoint: u64) -> Arc<Slot> {
        let mut slots = self.slots.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(slot) = slots.get(&question) {
            if slot.checkpoint == checkpoint && slot.made.elapsed() < self.max_age {
                return slot.clone();
            }
        }
        if slots.len() >= MAX_QUESTIONS {
            slots.retain(|_, slot| slot.made.elapsed() < self.max_age);
            if slots.len() >= MAX_QUESTIONS {
                slots.clear();
            }
        }
        let slot = Arc::new(Slot { checkpoint, made: Instant::now(), answer: OnceCell::new() });
        slots.insert(question, slot.clone());
        slot
    }
}

/// The middleware (a route layer, so the matched route is known).
pub async fn share_answers(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned());
    if !route.as_deref().is_some_and(|r| CACHED_ROUTES.contains(&r)) || request.method() != axum::http::Method::GET {
        return next.run(request).await;
    }
    let (mut parts, body) = request.into_parts();
    let caller = match Caller::from_request_parts(&mut parts, &state).await {
        Ok(caller) => caller,
        Err(e) => return e.into_response(),
    };
    let question = Question {
        route_and_query: parts.uri.path_and_query().map(|p| p.as_str().to_owned()).unwrap_or_default(),
        role: caller.0.role,
        principal: caller.0.principal.clone(),
    };
    parts.extensions.insert(caller);
    let request = Request::from_parts(parts, body);
    let model = state.model.get();
    let Ok(checkpoint) = model.checkpoint() else {
        return next.run(request).await;
    };
    let slot = state.answers.slot(question, checkpoint);
    // Only the first request's `next` runs; the others wait for its answer. An answer too big to
    // keep goes to its own request only, and the waiters compute theirs.
    let mut request = Some(request);
    let mut own = None;
    let answer = slot
        .answer
        .get_or_init(|| async {
            let request = request.take()?;
            let response = next.clone().run(request).await;
            let size = axum::body::HttpBody::size_hint(response.body()).exact();
            if size.is_none_or(|n| n > MAX_ANSWER_BYTES as u64) {
                own = Some(response);
                return None;
            }
            let (parts, body) = response.into_parts();
            let body = axum::body::to_bytes(body, MAX_ANSWER_BYTES).await.ok()?;
            Some(Arc::new(Answer { status: parts.status, headers: parts.headers, body }))
        })
        .await
        .clone();
    match (answer, own, request) {
        (Some(answer), _, _) => (answer.status, answer.headers.clone(), answer.body.clone()).into_response(),
        (None, Some(response), _) => response,
        (None, None, Some(request)) => next.run(request).await,
        (None, None, None) => super::ApiError::unavailable("the answer could not be read; try again").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn question(query: &str) -> Question {
        Question { route_and_query: query.into(), role: crate::tokens::Role::Analyst, principal: None }
    }

    #[test]
    fn a_slot_is_shared_until_the_checkpoint_moves() {
        let cache = AnswerCache::default();
        let first = cache.slot(question("/api/v1/goals"), 7);
        assert!(Arc::ptr_eq(&first, &cache.slot(question("/api/v1/goals"), 7)));
        assert!(!Arc::ptr_eq(&first, &cache.slot(question("/api/v1/goals"), 8)));
        assert!(!Arc::ptr_eq(&first, &cache.slot(question("/api/v1/goals?as_of=2026-01-01"), 7)));
    }

    #[test]
    fn callers_with_another_scope_do_not_share() {
        let cache = AnswerCache::default();
        let analyst = cache.slot(question("/api/v1/usage"), 1);
        let bound = Question { principal: Some("1280".into()), ..question("/api/v1/usage") };
        assert!(!Arc::ptr_eq(&analyst, &cache.slot(bound, 1)));
    }

    #[test]
    fn a_slot_expires_with_age() {
        let cache = AnswerCache::with_max_age(Duration::from_millis(50));
        let first = cache.slot(question("/api/v1/goals"), 7);
        std::thread::sleep(Duration::from_millis(70));
        assert!(!Arc::ptr_eq(&first, &cache.slot(question("/api/v1/goals"), 7)));
    }

    #[test]
    fn the_number_of_questions_is_bounded() {
        let cache = AnswerCache::default();
        for i in 0..(MAX_QUESTIONS * 2) {
            cache.slot(question(&format!("/api/v1/usage?principal={i}")), 1);
        }
        assert!(cache.slots.lock().unwrap().len() <= MAX_QUESTIONS);
    }
}
