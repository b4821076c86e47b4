//! Shared answers for the routes that still build much per answer (usage and adoption go through
//! every usage row of their range, a year by month is a ~413-KB answer; the open follow-up cases
//! walk every case): many analysts and dashboards ask the same few questions. The goals and the
//! follow-up summary are not shared: they sum the aggregates ([`crate::projections::aggregates`])
//! and are computed for each request, exact at the checkpoint the request sees.
//! An answer is kept for the same question (route, query string, role and principal of the
//! caller) while the read model's checkpoint is unchanged and for at most [`MAX_AGE`] (answers
//! "as of now" move with the clock). Requests that arrive while an answer is being computed wait
//! for that one computation instead of starting their own.
//!
//! Once an answer is [`REFRESH_AFTER`] old (and the checkpoint has not moved), the next request
//! starts its successor in the background and is served the answer in hand, as are the requests
//! after it until the successor is ready: while a question keeps being asked, nobody waits for its
//! recomputation (at a million events one takes tens to hundreds of milliseconds, see
//! docs/performance.md). When the checkpoint has
//! moved, requests wait for an answer that reflects it, as before: an answer never reflects an
//! older checkpoint than the one the API reported when the request came.
//!
//! An answer of [`GZIP_FROM`] bytes or more is also kept gzipped (compressed once, when it is
//! computed), and served so to callers that accept it (`Accept-Encoding: gzip`, as browsers send):
//! a year of usage by month is ~370 KB of JSON and ~19 KB gzipped, for dashboards across a
//! network. On one machine, clients that unzip on the hub's own cores lose more than they gain
//! (measured in docs/performance.md, "Queries").
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
    http::{header, HeaderMap, HeaderValue, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
};
use tokio::sync::{oneshot, watch};

use super::{auth::Caller, ApiState};

/// The routes whose answers are shared.
pub const CACHED_ROUTES: [&str; 3] = ["/api/v1/usage", "/api/v1/adoption", "/api/v1/followup/open"];

/// The longest an answer is reused, even when nothing new was projected (an answer "as of now"
/// is at most this much behind the clock; one computed at 1,000,000 events takes tens to hundreds
/// of milliseconds, see docs/performance.md).
pub const MAX_AGE: Duration = Duration::from_secs(5);

/// Age at which an answer's successor is computed in the background (while the answer itself is
/// still served): late enough that a question asked all the time is computed about as often as
/// before (every 4 instead of every 5 s), early enough that the successor is ready before
/// [`MAX_AGE`].
pub const REFRESH_AFTER: Duration = Duration::from_secs(4);

/// Distinct questions remembered before stale ones are forgotten.
const MAX_QUESTIONS: usize = 1024;

/// Largest answer kept (bigger ones, e.g. a year of daily usage of every type, are computed for
/// each request).
const MAX_ANSWER_BYTES: usize = 4 << 20;

/// Answers at least this large are also kept gzipped (below it, the headers weigh as much).
pub const GZIP_FROM: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Question {
    route_and_query: String,
    role: crate::tokens::Role,
    principal: Option<String>,
}

#[derive(Debug)]
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
    /// The body gzipped, when it is [`GZIP_FROM`] bytes or more.
    gzipped: Option<Bytes>,
}

/// What a computation ended with: an answer for everyone, or one only its own request gets (an
/// error, or too big to keep): the others then ask on their own.
#[derive(Debug, Clone)]
enum Outcome {
    Shared(Arc<Answer>),
    Unshared,
}

/// A computation under way; `None` until it ends.
type Pending = watch::Receiver<Option<Outcome>>;

#[derive(Debug)]
struct Ready {
    answer: Arc<Answer>,
    checkpoint: u64,
    /// When its computation began.
    made: Instant,
}

#[derive(Debug, Default)]
struct Entry {
    ready: Option<Ready>,
    computing: Option<(u64, Pending)>,
}

/// What a request does.
#[derive(Debug)]
enum Plan {
    /// Gets this answer.
    Serve(Arc<Answer>),
    /// Waits for this computation.
    Wait(Pending),
    /// Starts a computation at its checkpoint (and publishes its end with the sender), then is
    /// served the answer in hand if there is one, or waits for its own.
    Compute(watch::Sender<Option<Outcome>>, Option<Arc<Answer>>),
}

/// The shared answers.
pub struct AnswerCache {
    entries: Mutex<HashMap<Question, Entry>>,
    max_age: Duration,
    refresh_after: Duration,
}

impl Default for AnswerCache {
    fn default() -> Self {
        Self::with_ages(MAX_AGE, REFRESH_AFTER)
    }
}

impl AnswerCache {
    /// Answers reused for at most `max_age`, recomputed in the background after `refresh_after`.
    pub fn with_ages(max_age: Duration, refresh_after: Duration) -> Self {
        Self { entries: Mutex::default(), max_age, refresh_after }
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<Question, Entry>> {
        self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// What a request for `question` at `checkpoint` does.
    fn plan(&self, question: Question, checkpoint: u64) -> Plan {
        let mut entries = self.entries();
        if entries.len() >= MAX_QUESTIONS && !entries.contains_key(&question) {
            let max_age = self.max_age;
            entries.retain(|_, e| {
                e.computing.as_ref().is_some_and(|(_, p)| p.borrow().is_none() && p.has_changed().is_ok())
                    || e.ready.as_ref().is_some_and(|r| r.made.elapsed() < max_age)
            });
            if entries.len() >= MAX_QUESTIONS {
                entries.clear();
            }
        }
        let entry = entries.entry(question).or_default();
        // A computation whose task ended without an outcome (it panicked) is not waited for.
        let in_flight = entry
            .computing
            .as_ref()
            .filter(|(at, pending)| *at == checkpoint && pending.borrow().is_none() && pending.has_changed().is_ok())
            .map(|(_, pending)| pending.clone());
        let current = entry
            .ready
            .as_ref()
            .filter(|r| r.checkpoint == checkpoint && r.made.elapsed() < self.max_age)
            .map(|r| (r.answer.clone(), r.made.elapsed() >= self.refresh_after));
        match (current, in_flight) {
            (Some((answer, false)), _) | (Some((answer, true)), Some(_)) => Plan::Serve(answer),
            (None, Some(pending)) => Plan::Wait(pending),
            (current, None) => {
                let (done, pending) = watch::channel(None);
                entry.computing = Some((checkpoint, pending));
                Plan::Compute(done, current.map(|(answer, _)| answer))
            }
        }
    }

    /// Keeps `answer`, computed from `made` at `checkpoint`, unless a newer one is kept already.
    fn keep(&self, question: &Question, answer: Arc<Answer>, checkpoint: u64, made: Instant) {
        let mut entries = self.entries();
        let entry = entries.entry(question.clone()).or_default();
        if entry.ready.as_ref().is_none_or(|r| (r.checkpoint, r.made) <= (checkpoint, made)) {
            entry.ready = Some(Ready { answer, checkpoint, made });
        }
    }
}

/// The middleware (a route layer, so the matched route is known).
pub async fn share_answers(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned());
    if !route.as_deref().is_some_and(|r| CACHED_ROUTES.contains(&r)) || request.method() != axum::http::Method::GET {
        return next.run(request).await;
    }
    let (mut parts, body) = request.into_parts();
    let gzip = accepts_gzip(&parts.headers);
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
    let pending = match state.answers.plan(question.clone(), checkpoint) {
        Plan::Serve(answer) => return served(&answer, gzip),
        Plan::Wait(pending) => pending,
        Plan::Compute(done, in_hand) => {
            // In a task of its own, so a caller that goes away does not cancel what others wait for.
            let (own_tx, own_rx) = oneshot::channel();
            let cache = state.answers.clone();
            let made = Instant::now();
            let pending = done.subscribe();
            tokio::spawn(async move {
                let response = next.run(request).await;
                tracing::debug!(
                    question = %question.route_and_query,
                    checkpoint,
                    ms = made.elapsed().as_secs_f64() * 1000.0,
                    "answer computed"
                );
                let (outcome, own) = match share(response).await {
                    Ok(answer) => {
                        cache.keep(&question, answer.clone(), checkpoint, made);
                        (Outcome::Shared(answer), None)
                    }
                    Err(response) => (Outcome::Unshared, Some(response)),
                };
                let _ = done.send(Some(outcome));
                if let Some(response) = own {
                    let _ = own_tx.send(response);
                }
            });
            if let Some(answer) = in_hand {
                return served(&answer, gzip);
            }
            return match wait(pending).await {
                Some(Outcome::Shared(answer)) => served(&answer, gzip),
                _ => own_rx.await.unwrap_or_else(|_| unavailable()),
            };
        }
    };
    match wait(pending).await {
        Some(Outcome::Shared(answer)) => served(&answer, gzip),
        // Not shareable: this request asks on its own.
        Some(Outcome::Unshared) => next.run(request).await,
        None => unavailable(),
    }
}

/// A successful answer small enough to keep, or the response as it is.
async fn share(response: Response) -> Result<Arc<Answer>, Response> {
    let size = axum::body::HttpBody::size_hint(response.body()).exact();
    if !response.status().is_success() || size.is_none_or(|n| n > MAX_ANSWER_BYTES as u64) {
        return Err(response);
    }
    let (parts, body) = response.into_parts();
    let Ok(body) = axum::body::to_bytes(body, MAX_ANSWER_BYTES).await else {
        return Err(unavailable());
    };
    let gzipped = if body.len() >= GZIP_FROM && !parts.headers.contains_key(header::CONTENT_ENCODING) {
        let plain = body.clone();
        // Tens of milliseconds for the largest answers: not on a runtime worker.
        tokio::task::spawn_blocking(move || gzipped(&plain)).await.ok().flatten()
    } else {
        None
    };
    Ok(Arc::new(Answer { status: parts.status, headers: parts.headers, body, gzipped }))
}

/// `body` gzipped (`None` only if the encoder failed, which writing to memory does not).
fn gzipped(body: &[u8]) -> Option<Bytes> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::with_capacity(body.len() / 8), flate2::Compression::default());
    encoder.write_all(body).ok()?;
    encoder.finish().ok().map(Bytes::from)
}

/// Whether `Accept-Encoding` accepts gzip (`gzip` or `*`, with a quality above 0).
fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers.get_all(header::ACCEPT_ENCODING).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).any(
        |coding| {
            let mut params = coding.split(';');
            let name = params.next().unwrap_or_default().trim();
            let refused = params.any(|p| {
                p.trim().strip_prefix("q=").and_then(|q| q.trim().parse::<f32>().ok()).is_some_and(|q| q <= 0.0)
            });
            (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
        },
    )
}

/// The computation's outcome (`None` when its task ended without one).
async fn wait(mut pending: Pending) -> Option<Outcome> {
    pending.wait_for(Option::is_some).await.ok().and_then(|outcome| outcome.clone())
}

/// The answer, gzipped when the caller accepts it and it is kept so.
fn served(answer: &Answer, gzip: bool) -> Response {
    let mut headers = answer.headers.clone();
    headers.append(header::VARY, HeaderValue::from_static("accept-encoding"));
    match (&answer.gzipped, gzip) {
        (Some(gzipped), true) => {
            headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            headers.remove(header::CONTENT_LENGTH);
            (answer.status, headers, gzipped.clone()).into_response()
        }
        _ => (answer.status, headers, answer.body.clone()).into_response(),
    }
}

fn unavailable() -> Response {
    super::ApiError::unavailable("the answer could not be read; try again").into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn question(query: &str) -> Question {
        Question { route_and_query: query.into(), role: crate::tokens::Role::Analyst, principal: None }
    }

    fn answer(body: &'static str) -> Arc<Answer> {
        Arc::new(Answer {
            status: StatusCode::OK,
            headers: HeaderMap::new(),
            body: Bytes::from_static(body.as_bytes()),
            gzipped: None,
        })
    }

    /// Plans a request; a computation it starts ends at once with `body`.
    fn ask(cache: &AnswerCache, query: &str, checkpoint: u64, body: &'static str) -> Plan {
        let plan = cache.plan(question(query), checkpoint);
        if let Plan::Compute(done, _) = &plan {
            cache.keep(&question(query), answer(body), checkpoint, Instant::now());
            let _ = done.send(Some(Outcome::Shared(answer(body))));
        }
        plan
    }

    fn body(plan: &Plan) -> Option<&[u8]> {
        match plan {
            Plan::Serve(answer) => Some(&answer.body),
            _ => None,
        }
    }

    #[test]
    fn an_answer_is_shared_until_the_checkpoint_moves() {
        let cache = AnswerCache::default();
        assert!(matches!(ask(&cache, "/api/v1/goals", 7, "a"), Plan::Compute(_, None)));
        assert_eq!(body(&ask(&cache, "/api/v1/goals", 7, "b")), Some(&b"a"[..]));
        // A new checkpoint: computed again, and meanwhile nobody gets the old answer.
        let plan = cache.plan(question("/api/v1/goals"), 8);
        assert!(matches!(plan, Plan::Compute(_, None)));
        assert!(matches!(cache.plan(question("/api/v1/goals"), 8), Plan::Wait(_)));
        assert!(matches!(ask(&cache, "/api/v1/goals?as_of=2026-01-01", 7, "c"), Plan::Compute(_, None)));
    }

    #[test]
    fn callers_with_another_scope_do_not_share() {
        let cache = AnswerCache::default();
        ask(&cache, "/api/v1/usage", 1, "all");
        let bound = Question { principal: Some("1280".into()), ..question("/api/v1/usage") };
        assert!(matches!(cache.plan(bound, 1), Plan::Compute(_, None)));
    }

    #[test]
    fn an_aging_answer_is_served_while_its_successor_is_computed() {
        let cache = AnswerCache::with_ages(Duration::from_millis(400), Duration::from_millis(100));
        ask(&cache, "/api/v1/goals", 7, "old");
        std::thread::sleep(Duration::from_millis(150));
        // The first request after REFRESH_AFTER starts the successor and gets the old answer…
        let plan = cache.plan(question("/api/v1/goals"), 7);
        let Plan::Compute(done, Some(in_hand)) = plan else { panic!("expected a refresh, got {plan:?}") };
        assert_eq!(&in_hand.body[..], b"old");
        // …as do the requests while it runs, without waiting.
        assert_eq!(body(&cache.plan(question("/api/v1/goals"), 7)), Some(&b"old"[..]));
        cache.keep(&question("/api/v1/goals"), answer("new"), 7, Instant::now());
        let _ = done.send(Some(Outcome::Shared(answer("new"))));
        assert_eq!(body(&cache.plan(question("/api/v1/goals"), 7)), Some(&b"new"[..]));
    }

    #[test]
    fn an_answer_expires_with_age() {
        let cache = AnswerCache::with_ages(Duration::from_millis(50), Duration::from_millis(50));
        ask(&cache, "/api/v1/goals", 7, "a");
        std::thread::sleep(Duration::from_millis(70));
        assert!(matches!(cache.plan(question("/api/v1/goals"), 7), Plan::Compute(_, None)));
    }

    #[test]
    fn a_computation_that_ended_without_an_outcome_is_not_waited_for() {
        let cache = AnswerCache::default();
        let Plan::Compute(done, None) = cache.plan(question("/api/v1/goals"), 7) else {
            panic!("expected a computation")
        };
        assert!(matches!(cache.plan(question("/api/v1/goals"), 7), Plan::Wait(_)));
        drop(done); // its task panicked
        assert!(matches!(cache.plan(question("/api/v1/goals"), 7), Plan::Compute(_, None)));
    }

    #[test]
    fn gzip_is_accepted_only_when_asked_for_with_a_quality_above_zero() {
        let accepts = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::ACCEPT_ENCODING, HeaderValue::from_str(value).unwrap());
            accepts_gzip(&headers)
        };
        for yes in ["gzip", "gzip, deflate, br, zstd", "br;q=1.0, GZIP;q=0.5", "*", "identity, *;q=0.1"] {
            assert!(accepts(yes), "{yes}");
        }
        for no in ["", "identity", "br, deflate", "gzip;q=0", "gzip; q=0.000", "x-gzip-like", "*;q=0"] {
            assert!(!accepts(no), "{no}");
        }
        assert!(!accepts_gzip(&HeaderMap::new()));
    }

    #[tokio::test]
    async fn a_large_answer_is_kept_gzipped_and_served_so_to_whoever_accepts_it() {
        use std::io::Read;
        let json = format!("[{}]", vec![r#"{"bucket":"2026-01","count":1}"#; 200].join(","));
        let answer = share(([(header::CONTENT_TYPE, "application/json")], json.clone()).into_response()).await.unwrap();
        let gzipped = answer.gzipped.clone().expect("kept gzipped");
        assert!(gzipped.len() < json.len() / 10, "{} of {} bytes", gzipped.len(), json.len());

        let plain = served(&answer, false);
        assert_eq!(plain.headers().get(header::CONTENT_ENCODING), None);
        assert_eq!(plain.headers()[header::VARY], "accept-encoding");
        assert_eq!(axum::body::to_bytes(plain.into_body(), usize::MAX).await.unwrap(), json.as_bytes());

        let zipped = served(&answer, true);
        assert_eq!(zipped.headers()[header::CONTENT_ENCODING], "gzip");
        assert_eq!(zipped.headers()[header::CONTENT_TYPE], "application/json");
        assert_eq!(zipped.headers()[header::VARY], "accept-encoding");
        let wire = axum::body::to_bytes(zipped.into_body(), usize::MAX).await.unwrap();
        let mut unzipped = String::new();
        flate2::read::GzDecoder::new(&wire[..]).read_to_string(&mut unzipped).unwrap();
        assert_eq!(unzipped, json);

        // A small answer is served as it is, whatever the caller accepts.
        let small = share("{}".into_response()).await.unwrap();
        assert!(small.gzipped.is_none());
        assert_eq!(served(&small, true).headers().get(header::CONTENT_ENCODING), None);
    }

    #[test]
    fn the_number_of_questions_is_bounded() {
        let cache = AnswerCache::default();
        for i in 0..(MAX_QUESTIONS * 2) {
            ask(&cache, &format!("/api/v1/usage?principal={i}"), 1, "a");
        }
        assert!(cache.entries().len() <= MAX_QUESTIONS);
    }
}
