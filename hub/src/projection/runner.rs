//! The projection runner: reads `SGD_EVENTS` from the read model's checkpoint in large pull
//! batches, applies the pure projections, commits their updates together with the applied
//! identities and the last sequence in one atomic sled batch, then acks.
//!
//! The sled checkpoint, not the NATS ack, is the resume point: at start the runner opens an
//! ephemeral consumer at checkpoint + 1, and anything delivered at or below the checkpoint is
//! skipped. An event whose `source`/`id` identity was applied before (a retry days later, after
//! JetStream's duplicate window) is skipped too.
//!
//! Its parts are beside it: the consumers (`consumer`), one batch and the views' writes
//! (`batch`), and replays without the live runner ([`super::catch_up`]).

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use async_nats::jetstream;
use futures::StreamExt;
use sgd_schemas::Envelope;
use tokio::sync::{mpsc, oneshot, watch, RwLock};

use super::{
    batch::{finish_commit, finish_views_write, flush_views, project_batch},
    catch_up::replay_views,
    consumer::{LiveConsumer, REOPEN_PAUSE},
};
use crate::{
    log::streams,
    metrics::Metrics,
    projections::{usage::UsageTotals, DomainViews},
    store::{
        applied_identities::AppliedIdentities,
        read_model::{ReadModel, ReadModelError, ServingModel},
    },
};

/// Why projection stopped.
#[derive(Debug, thiserror::Error)]
pub enum ProjectorError {
    /// The read model could not be read or written (disk full, corrupt) → projection stops with
    /// no partial batch; fix the disk or `hub rebuild`.
    #[error(transparent)]
    ReadModel(#[from] ReadModelError),
    /// The log could not be consumed → restart when NATS is back.
    #[error("log consumer: {0}")]
    Consumer(#[source] async_nats::Error),
    /// A blocking part of the work (loading the state, a commit, a views write) panicked → a bug;
    /// projection stops with no partial batch.
    #[error("{what} task failed: {source}")]
    Task {
        /// Which part.
        what: &'static str,
        /// How it ended.
        source: tokio::task::JoinError,
    },
    /// The caught-up views were still shared when the catch-up wanted them back (a bug).
    #[error("log consumer: views still shared")]
    ViewsShared,
}

/// The log could not be consumed: `error` from NATS, its source kept.
pub(super) fn consumer_error(error: impl std::error::Error + Send + Sync + 'static) -> ProjectorError {
    ProjectorError::Consumer(Box::new(error))
}

/// A blocking task of `what` did not finish.
pub(super) fn task_error(what: &'static str) -> impl FnOnce(tokio::task::JoinError) -> ProjectorError {
    move |source| ProjectorError::Task { what, source }
}

/// Projection settings.
#[derive(Debug, Clone, Copy)]
pub struct ProjectorSettings {
    /// Largest batch.
    pub batch_max: usize,
    /// How long a batch waits to fill after its first event.
    pub batch_wait: Duration,
    /// How often the views' changed records are written (with the batch that ends the interval).
    pub views_flush: Duration,
    /// When what grows with the log leaves memory.
    pub hand_over: HandOverAt,
    /// The follow-up limits the aggregates count with.
    pub limits: crate::projections::followup::FollowupLimits,
}

/// How much of what grows with the log stays in memory before it is handed over to disk.
#[derive(Debug, Clone, Copy)]
pub struct HandOverAt {
    /// Applied identities.
    pub identities: usize,
    /// Timeline entries in the views.
    pub timeline_entries: usize,
    /// View records per bounded table ([`crate::projections::DomainViews::keep_on_disk`]).
    pub records: usize,
}

impl ProjectorSettings {
    /// The settings the configuration gives.
    pub fn of(config: &crate::config::HubConfig) -> Self {
        Self {
            batch_max: config.batch_max.max(1),
            batch_wait: config.batch_wait(),
            views_flush: Duration::from_millis(config.views_flush_ms),
            hand_over: HandOverAt {
                identities: config.identities_in_memory.max(1),
                timeline_entries: config.timeline_entries_in_memory.max(1),
                records: config.records_in_memory.max(4),
            },
            limits: config.followup,
        }
    }
}

/// What the API needs to know of the projection's progress (the checkpoint and the lag are in the
/// read model and the metrics).
#[derive(Debug, Default)]
pub struct ProjectorStatus {
    /// Whether the last look found nothing left to project.
    pub caught_up: AtomicBool,
}

/// Changed view records that start a views write before its interval is up (bounds the memory a
/// write takes, and the pause it makes, when the projection runs fast, e.g. in a rebuild).
pub const VIEWS_WRITE_RECORDS: usize = 10_000;

/// Events still to project above which the runner is catching up (a rebuild, a restart after a
/// long stop) and writes no views until it is nearly done: then all changed records at once, as a
/// snapshot. Frames written along the way would be superseded within seconds. A crash meanwhile
/// costs nothing extra: the views are replayed from the last ones written, which is what catching
/// up does anyway. (A catch-up longer than the views are big also stores them whole every
/// [`super::batch::CATCH_UP_SNAPSHOT_EVERY`] events, for the identities sled keeps until then.)
pub const CATCHING_UP_PENDING: u64 = 50_000;

/// The 128-bit digest of an event's identity (`<source>/<id>`) kept in the read model.
pub fn identity_digest(envelope: &Envelope) -> u128 {
    // Hashed piece by piece: the same digest as of the joined text, without building it.
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    hasher.update(envelope.source.as_bytes());
    hasher.update(b"/");
    hasher.update(envelope.id.as_bytes());
    hasher.digest128()
}

/// In-memory state of the runner: the applied identities, so the hot path never reads sled (the
/// runner is the read model's only writer; the usage totals are in the views, see
/// [`RunnerState::load_with_usage`]).
pub(super) struct RunnerState {
    pub(super) checkpoint: u64,
    pub(super) identities: AppliedIdentities,
    pub(super) views_flushed_at: std::time::Instant,
    /// Whether the last batch was [`CATCHING_UP_PENDING`] or more behind the log.
    pub(super) catching_up: bool,
    /// Whether the current catch-up counts every record as changed (it is longer than the views
    /// are big), to be stored whole: at its end, and every [`super::batch::CATCH_UP_SNAPSHOT_EVERY`] events.
    pub(super) catch_up_whole: bool,
    /// The views write in flight, if any (one at a time, awaited before the next and at stops).
    pub(super) views_write: Option<tokio::task::JoinHandle<Result<(), ReadModelError>>>,
    /// The commit of the last batch while catching up, which runs beside the next batch's
    /// decoding and applying; awaited before the next commit, views writes and pauses.
    pub(super) commit: Option<CommitInFlight>,
}

/// A batch's commit running on a blocking thread; it ends with how long the commit took.
pub(super) struct CommitInFlight {
    pub(super) task: tokio::task::JoinHandle<Result<Duration, ReadModelError>>,
    pub(super) last_sequence: u64,
    pub(super) applied: usize,
}

impl RunnerState {
    /// The state of `model`, and the usage totals it holds, for the views that go with it (the
    /// runner adds to them there).
    pub(super) fn load_with_usage(model: &ReadModel) -> Result<(Self, UsageTotals), ReadModelError> {
        Ok((Self::load(model)?, model.usage_totals()?))
    }

    pub(super) fn load(model: &ReadModel) -> Result<Self, ReadModelError> {
        Ok(Self {
            checkpoint: model.checkpoint()?,
            identities: model.applied_identities()?,
            views_flushed_at: std::time::Instant::now(),
            catching_up: false,
            catch_up_whole: false,
            views_write: None,
            commit: None,
        })
    }
}

/// The domain views, shared between the projection runner (the only writer) and the API.
pub type SharedViews = Arc<RwLock<DomainViews>>;

/// What a rebuild asks of the running projection.
pub enum Control {
    /// Stop after the current batch, answer the checkpoint reached on `paused`, and wait for
    /// `resume`: with a model (at exactly that checkpoint) and its views to carry on with, or with
    /// `None` to carry on as before. Dropping `resume` also carries on as before.
    Pause {
        /// Receives the checkpoint at which the projection stopped.
        paused: oneshot::Sender<u64>,
        /// What to carry on with.
        resume: oneshot::Receiver<Option<Handover>>,
    },
}

/// What the running projection listens to besides the log.
pub struct Signals {
    /// Requests of a rebuild.
    pub control: mpsc::Receiver<Control>,
    /// Turns true at shutdown.
    pub shutdown: watch::Receiver<bool>,
}

/// A model and its views that take over from the running projection's.
pub struct Handover {
    /// The new read model, at the paused checkpoint (`CURRENT` names it already).
    pub model: Arc<ReadModel>,
    /// Its views.
    pub views: DomainViews,
    /// What the API serves: switched to `model` when the views are.
    pub serving: ServingModel,
    /// Receives the replaced model once the projection has let go of it (nothing writes to it
    /// any more; requests may still read it until they end).
    pub retired: oneshot::Sender<Arc<ReadModel>>,
}

/// Runs the projection until `shutdown` turns true. `views` must hold what the read model holds
/// (see [`ReadModel::load_views`]), its usage totals included ([`ReadModel::usage_totals`]).
pub async fn run(
    js: jetstream::Context,
    model: Arc<ReadModel>,
    views: SharedViews,
    settings: ProjectorSettings,
    metrics: Arc<Metrics>,
    status: Arc<ProjectorStatus>,
    signals: Signals,
) -> Result<(), ProjectorError> {
    let Signals { mut control, mut shutdown } = signals;
    let mut model = model;
    let loader = model.clone();
    // The views came with the model's usage totals (see `server::start`).
    let mut state =
        tokio::task::spawn_blocking(move || RunnerState::load(&loader)).await.map_err(task_error("load"))??;
    metrics.checkpoint.set(state.checkpoint as i64);

    let mut stream = js.get_stream(streams::EVENTS).await.map_err(consumer_error)?;
    let views_sequence = views.read().await.applied_through;
    metrics.views_sequence.set(views_sequence as i64);
    // Written at once when complete, so a hub killed again soon after (before its next views
    // write) does not replay the same stretch at every start; likewise aggregates counted again
    // at start (other follow-up limits), so the stored views say what the hub answers.
    let write_views = if views_sequence < state.checkpoint {
        replay_views(&stream, &model, &views, views_sequence, state.checkpoint).await?
    } else {
        views.read().await.changed() > 0
    };
    if write_views {
        flush_views(&model, &views, &mut state, &metrics).await?;
    }
    let last_sequence = stream.info().await.map_err(consumer_error)?.state.last_sequence;
    let lag = last_sequence.saturating_sub(state.checkpoint);
    status.caught_up.store(lag == 0, Ordering::Relaxed);
    metrics.lag_events.set(lag as i64);
    let mut live = LiveConsumer::open(&stream, state.checkpoint, settings).await?;
    tracing::info!(checkpoint = state.checkpoint, lag, "projection runner consuming {}", streams::EVENTS);

    loop {
        let waiting = std::time::Instant::now();
        let first = tokio::select! {
            next = live.messages.next() => next,
            _ = shutdown.changed() => return flush_views(&model, &views, &mut state, &metrics).await,
            Some(Control::Pause { paused, resume }) = control.recv() => {
                finish_commit(&mut state, &metrics).await?;
                let _ = paused.send(state.checkpoint);
                let handover = tokio::select! {
                    handover = resume => handover.ok().flatten(),
                    _ = shutdown.changed() => return flush_views(&model, &views, &mut state, &metrics).await,
                };
                if let Some(Handover { model: rebuilt, views: rebuilt_views, serving, retired }) = handover {
                    // `CURRENT` names the rebuilt model already: nothing more is written to this
                    // one, once the views write in flight (if any) has ended. The rebuilt model
                    // stands at this checkpoint too, so the consumer's position holds.
                    finish_views_write(&mut state).await?;
                    let loader = rebuilt.clone();
                    state = tokio::task::spawn_blocking(move || RunnerState::load(&loader))
                        .await
                        .map_err(task_error("load"))??;
                    {
                        // The API is handed the model and its views together: a request that
                        // holds the views meanwhile gets the model that goes with them.
                        let mut shared = views.write().await;
                        *shared = rebuilt_views;
                        serving.replace(rebuilt.clone());
                    }
                    metrics.views_sequence.set(state.checkpoint as i64);
                    let replaced = std::mem::replace(&mut model, rebuilt);
                    tracing::info!(checkpoint = state.checkpoint, "projection carries on with the rebuilt read model");
                    // Only now may the rebuild retire the replaced model (and start another).
                    let _ = retired.send(replaced);
                }
                continue;
            }
        };
        let mut broken = None;
        let mut batch = match first {
            Some(Ok(message)) => match live.check(&message) {
                Ok(()) => {
                    let mut batch = Vec::with_capacity(settings.batch_max);
                    batch.push(message);
                    batch
                }
                Err(gap) => {
                    broken = Some(gap.to_string());
                    Vec::new()
                }
            },
            Some(Err(e)) => {
                broken = Some(e.to_string());
                Vec::new()
            }
            None => {
                broken = Some("log message stream ended".into());
                Vec::new()
            }
        };
        let deadline = tokio::time::Instant::now() + settings.batch_wait;
        while broken.is_none() && !batch.is_empty() && batch.len() < settings.batch_max {
            match tokio::time::timeout_at(deadline, live.messages.next()).await {
                Ok(Some(Ok(message))) => match live.check(&message) {
                    Ok(()) => batch.push(message),
                    Err(gap) => broken = Some(gap.to_string()),
                },
                Ok(Some(Err(e))) => broken = Some(e.to_string()),
                Ok(None) => broken = Some("log message stream ended".into()),
                Err(_) => break,
            }
        }
        if !batch.is_empty() {
            // How long the batch took to arrive and fill (debug: with the batch's timings).
            tracing::debug!(len = batch.len(), waited_ms = waiting.elapsed().as_secs_f64() * 1000.0, "batch received");
            project_batch(
                &mut state,
                &batch,
                &model,
                &views,
                (settings.views_flush, settings.hand_over),
                &metrics,
                &status,
            )
            .await?;
            if let Some(last) = batch.last() {
                if let Err(e) = last.ack().await {
                    // Harmless: the checkpoint is the resume point; redelivered messages are skipped.
                    tracing::warn!(error = %e, "ack of projected batch failed");
                }
            }
        }
        if let Some(reason) = broken {
            // What follows the checkpoint is read again from a new consumer: nothing is skipped
            // (a message lost in flight would otherwise be passed by the checkpoint) and nothing
            // is applied twice (the checkpoint and the identities guard the batch path).
            tracing::warn!(error = %reason, checkpoint = state.checkpoint, "log consumer broken; reading again from the checkpoint");
            live.retire(&stream);
            live = loop {
                tokio::select! {
                    opened = LiveConsumer::open(&stream, state.checkpoint, settings) => match opened {
                        Ok(opened) => break opened,
                        Err(e) => tracing::warn!(error = %e, "cannot open the log consumer yet; retrying"),
                    },
                    _ = shutdown.changed() => return flush_views(&model, &views, &mut state, &metrics).await,
                }
                tokio::select! {
                    _ = tokio::time::sleep(REOPEN_PAUSE) => {}
                    _ = shutdown.changed() => return flush_views(&model, &views, &mut state, &metrics).await,
                }
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_identity_digest_is_the_digest_of_the_identity_text() {
        // Digests already stored in read models were taken of the joined text.
        let envelope: Envelope = serde_json::from_value(serde_json::json!({
            "id": "e-1", "source": "/principals/1280/systems/cosmic", "type": "se.sgd.plans.plan.closed",
            "time": "2026-03-01T10:00:00Z", "principal": "1280", "data": {"plan_id": "p"}
        }))
        .unwrap();
        assert_eq!(identity_digest(&envelope), xxhash_rust::xxh3::xxh3_128(envelope.identity().as_bytes()));
    }
}
