//! The projection runner: reads `SGD_EVENTS` from the read model's checkpoint in large pull
//! batches, applies the pure projections, commits their updates together with the applied
//! identities and the last sequence in one atomic sled batch, then acks.
//!
//! The sled checkpoint, not the NATS ack, is the resume point: at start the runner opens an
//! ephemeral consumer at checkpoint + 1, and anything delivered at or below the checkpoint is
//! skipped. An event whose `source`/`id` identity was applied before (a retry days later, after
//! JetStream's duplicate window) is skipped too.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use async_nats::jetstream::{
    self,
    consumer::{pull, AckPolicy, DeliverPolicy},
};
use futures::StreamExt;
use sgd_schemas::{upcast, Envelope};
use tokio::sync::{mpsc, oneshot, watch, RwLock};

use crate::{
    log::streams,
    metrics::{Metrics, TypeLabels},
    projections::{
        usage::{TypeCounts, UsageDay, UsageDelta},
        DomainViews, ProjectedEvent,
    },
    store::digest_set::DigestSet,
    store::read_model::{ReadModel, ReadModelError},
    store::sharded::ShardedMap,
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
fn consumer_error(error: impl std::error::Error + Send + Sync + 'static) -> ProjectorError {
    ProjectorError::Consumer(Box::new(error))
}

/// A blocking task of `what` did not finish.
fn task_error(what: &'static str) -> impl FnOnce(tokio::task::JoinError) -> ProjectorError {
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
/// snapshot. Frames and snapshots written along the way would be superseded within seconds (a
/// snapshot of a million events' views is ~2 s of a core). A crash meanwhile costs nothing extra:
/// the views are replayed from the last ones written, which is what catching up does anyway.
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

/// In-memory state of the runner: the applied identities and the usage totals, so the hot path
/// never reads sled (the runner is the read model's only writer).
struct RunnerState {
    checkpoint: u64,
    identities: DigestSet,
    usage_totals: ShardedMap<UsageDay, TypeCounts>,
    views_flushed_at: std::time::Instant,
    /// Whether the last batch was [`CATCHING_UP_PENDING`] or more behind the log.
    catching_up: bool,
    /// The views write in flight, if any (one at a time, awaited before the next and at stops).
    views_write: Option<tokio::task::JoinHandle<Result<(), ReadModelError>>>,
    /// The commit of the last batch while catching up, which runs beside the next batch's
    /// decoding and applying; awaited before the next commit, views writes and pauses.
    commit: Option<CommitInFlight>,
}

/// A batch's commit running on a blocking thread; it ends with how long the commit took.
struct CommitInFlight {
    task: tokio::task::JoinHandle<Result<Duration, ReadModelError>>,
    last_sequence: u64,
    applied: usize,
}

impl RunnerState {
    fn load(model: &ReadModel) -> Result<Self, ReadModelError> {
        let mut usage_totals: ShardedMap<UsageDay, TypeCounts> = ShardedMap::default();
        for cell in model.usage_cells()? {
            usage_totals
                .entry_or_default(UsageDay { day: cell.day, principal: cell.principal })
                .add(&cell.event_type, cell.count);
        }
        Ok(Self {
            checkpoint: model.checkpoint()?,
            identities: model.identities()?,
            usage_totals,
            views_flushed_at: std::time::Instant::now(),
            catching_up: false,
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
    /// The new read model, at the paused checkpoint.
    pub model: Arc<ReadModel>,
    /// Its views.
    pub views: DomainViews,
}

/// Runs the projection until `shutdown` turns true. `views` must hold what the read model holds
/// (see [`ReadModel::load_views`]).
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
    let mut state =
        tokio::task::spawn_blocking(move || RunnerState::load(&loader)).await.map_err(task_error("load"))??;
    metrics.checkpoint.set(state.checkpoint as i64);

    let mut stream = js.get_stream(streams::EVENTS).await.map_err(consumer_error)?;
    let views_sequence = views.read().await.applied_through;
    metrics.views_sequence.set(views_sequence as i64);
    if views_sequence < state.checkpoint {
        // Written at once when complete, so a hub killed again soon after (before its next views
        // write) does not replay the same stretch at every start.
        if replay_views(&stream, &model, &views, views_sequence, state.checkpoint).await? {
            flush_views(&model, &views, &mut state, &metrics).await?;
        }
    }
    let last_sequence = stream.info().await.map_err(consumer_error)?.state.last_sequence;
    let lag = last_sequence.saturating_sub(state.checkpoint);
    status.caught_up.store(lag == 0, Ordering::Relaxed);
    metrics.lag_events.set(lag as i64);
    let mut live = LiveConsumer::open(&stream, state.checkpoint, settings).await?;
    tracing::info!(checkpoint = state.checkpoint, lag, "projection runner consuming {}", streams::EVENTS);

    loop {
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
                if let Some(handover) = handover {
                    // The new model stands at this checkpoint too, so the consumer's position holds.
                    flush_views(&model, &views, &mut state, &metrics).await?;
                    let loader = handover.model.clone();
                    state = tokio::task::spawn_blocking(move || RunnerState::load(&loader))
                        .await
                        .map_err(task_error("load"))??;
                    *views.write().await = handover.views;
                    model = handover.model;
                    tracing::info!(checkpoint = state.checkpoint, "projection carries on with the rebuilt read model");
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
            project_batch(&mut state, &batch, &model, &views, settings.views_flush, &metrics, &status).await?;
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

/// Pull requests ask for this many projection batches at a time. The client asks again when half
/// of a request is left undelivered to the projection, so the server keeps delivering while a
/// batch is applied instead of stopping one batch ahead.
const PULL_AHEAD: usize = 2;

/// Idle heartbeat of the live consumer's pull requests; two missed in a row break the consumer.
const HEARTBEAT: Duration = Duration::from_secs(2);

/// Pause between attempts to open the live consumer again (no quorum during an election).
const REOPEN_PAUSE: Duration = Duration::from_millis(500);

/// An ephemeral pull consumer on the log from `after` + 1, the one setup of the live runner, the
/// rebuild's catch-up and the views' replay. `live` (the largest batch) makes it the runner's:
/// acked (all up to the last of each batch) and kept while the hub is away for a while.
async fn log_consumer(
    stream: &jetstream::stream::Stream,
    after: u64,
    live: Option<usize>,
    description: &str,
) -> Result<jetstream::consumer::Consumer<pull::Config>, ProjectorError> {
    let deliver_policy =
        if after == 0 { DeliverPolicy::All } else { DeliverPolicy::ByStartSequence { start_sequence: after + 1 } };
    let config = match live {
        Some(batch_max) => pull::Config {
            ack_policy: AckPolicy::All,
            max_ack_pending: (batch_max * 4) as i64,
            ack_wait: Duration::from_secs(60),
            inactive_threshold: Duration::from_secs(300),
            ..Default::default()
        },
        None => pull::Config {
            ack_policy: AckPolicy::None,
            inactive_threshold: Duration::from_secs(60),
            ..Default::default()
        },
    };
    stream
        .create_consumer(pull::Config { deliver_policy, description: Some(description.into()), ..config })
        .await
        .map_err(consumer_error)
}

/// The live runner's consumer and its pull, with what it takes to notice that it broke.
///
/// The checkpoint skips whatever is delivered at or below it, so a message lost in flight (a
/// pull answered while the hub's connection to a dying node went down) must not be passed by a
/// later one: the consumer numbers its deliveries, and a number skipped means a lost delivery.
/// A missed heartbeat (the pull request or the consumer, an R1 ephemeral, lived on a node that
/// went away) breaks it too. Either way the runner opens a new one at checkpoint + 1.
struct LiveConsumer {
    name: String,
    messages: pull::Stream,
    next_delivery: u64,
}

/// Deliveries of the live consumer that never arrived: the consumer is broken and reopened.
#[derive(Debug, thiserror::Error)]
#[error("deliveries {first}..{last} lost in flight (stream sequence {arrived} arrived)")]
struct LostDeliveries {
    first: u64,
    last: u64,
    /// The stream sequence of the delivery that came after the gap.
    arrived: u64,
}

impl LiveConsumer {
    async fn open(
        stream: &jetstream::stream::Stream,
        checkpoint: u64,
        settings: ProjectorSettings,
    ) -> Result<Self, ProjectorError> {
        let consumer = log_consumer(stream, checkpoint, Some(settings.batch_max), "sgd-hub projection runner").await?;
        let name = consumer.cached_info().name.clone();
        let messages = consumer
            .stream()
            .max_messages_per_batch(settings.batch_max * PULL_AHEAD)
            .heartbeat(HEARTBEAT)
            .expires(Duration::from_secs(30))
            .messages()
            .await
            .map_err(consumer_error)?;
        Ok(Self { name, messages, next_delivery: 1 })
    }

    /// Whether `message` is the next delivery (a redelivery of an earlier one is fine).
    fn check(&mut self, message: &jetstream::Message) -> Result<(), LostDeliveries> {
        let Ok(info) = message.info() else { return Ok(()) };
        if info.consumer_sequence > self.next_delivery {
            return Err(LostDeliveries {
                first: self.next_delivery,
                last: info.consumer_sequence - 1,
                arrived: info.stream_sequence,
            });
        }
        self.next_delivery = self.next_delivery.max(info.consumer_sequence + 1);
        Ok(())
    }

    /// Deletes the consumer in the background, where its node still answers (otherwise its
    /// inactivity threshold removes it).
    fn retire(&self, stream: &jetstream::stream::Stream) {
        let (stream, name) = (stream.clone(), self.name.clone());
        if !name.is_empty() {
            tokio::spawn(async move {
                let _ = tokio::time::timeout(Duration::from_secs(10), stream.delete_consumer(&name)).await;
            });
        }
    }
}

async fn project_batch(
    state: &mut RunnerState,
    batch: &[jetstream::Message],
    model: &Arc<ReadModel>,
    views_shared: &SharedViews,
    views_flush: Duration,
    metrics: &Metrics,
    status: &ProjectorStatus,
) -> Result<(), ProjectorError> {
    let began = std::time::Instant::now();
    // Decoded before the views are locked (readers wait less), on every core for large batches.
    let decoded = decode_batch(batch, state.checkpoint);
    let mut views = views_shared.write().await;
    let mut delta = UsageDelta::default();
    let mut digests = Vec::with_capacity(batch.len());
    // Counted per type (a static name, no allocation per event); areas are derived once per batch.
    let mut projected: hashbrown::HashMap<&'static str, u64> = hashbrown::HashMap::new();
    let mut last_sequence = state.checkpoint;
    let mut last_info = None;
    for logged in &decoded {
        let &LoggedEvent { sequence, pending, published, ref decoded } = logged;
        last_info = Some((pending, published));
        let Some(decoded) = decoded else {
            continue; // delivered again after a restart or an ack timeout: already applied
        };
        last_sequence = last_sequence.max(sequence);
        let (envelope, event) = match decoded {
            Ok(decoded) => decoded,
            Err(e) => {
                metrics.decode_errors.inc();
                tracing::error!(sequence, error = %e, "log event is not a readable envelope; skipped");
                continue;
            }
        };
        let _span = tracing::debug_span!(
            "projected",
            sequence,
            id = %envelope.id,
            traceparent = envelope.traceparent.as_deref().unwrap_or("")
        )
        .entered();
        let digest = identity_digest(envelope);
        if !state.identities.insert(digest) {
            metrics.duplicates.inc();
            tracing::debug!(sequence, id = %envelope.id, "identity applied before; skipped");
            continue;
        }
        digests.push(digest);
        let event = match event {
            Ok(event) => event,
            Err(e) => {
                metrics.decode_errors.inc();
                tracing::error!(sequence, error = %e, "log event does not decode to its typed event; skipped");
                continue;
            }
        };
        let projected_event = ProjectedEvent::new(envelope, event);
        delta.apply(&projected_event);
        views.apply_logged(&projected_event, sequence);
        tracing::trace!(event_type = event.event_type(), "projected");
        *projected.entry(event.event_type()).or_default() += 1;
    }
    if last_sequence == state.checkpoint {
        return Ok(());
    }
    views.applied_through = last_sequence;
    // Each touched row is written whole: one sled key per principal and day, not one per type.
    let totals: Vec<_> = delta
        .into_rows()
        .map(|(key, added)| {
            let total = state.usage_totals.entry_or_default(key.clone());
            for (event_type, n) in &added.0 {
                total.add(event_type, *n);
            }
            (key, total.clone())
        })
        .collect();
    // View records are written every `views_flush` (or once VIEWS_WRITE_RECORDS changed), not
    // every batch: a record touched by many batches is written once, and batches write only
    // counters, digests and the checkpoint. The views write runs beside the next batches.
    let pending = last_info.map_or(0, |(pending, _)| pending);
    let catching_up = pending >= CATCHING_UP_PENDING;
    if catching_up && !state.catching_up && pending >= views.records() as u64 {
        // A catch-up longer than the views are big (a rebuild, a start far behind) is stored
        // whole at its end: the changed keys need not be kept. After a shorter one (a burst on
        // large views) only the changed records are written, so those are still tracked.
        views.mark_all_changed();
    }
    let changed = views.changed();
    let flush = !catching_up && (state.views_flushed_at.elapsed() >= views_flush || changed >= VIEWS_WRITE_RECORDS);
    // Only at the end of a catch-up: elsewhere a snapshot while the projection waits would stall it.
    let whole = state.catching_up && !catching_up && changed > SNAPSHOT_INSTEAD_OF_FRAME;
    state.catching_up = catching_up;
    drop(views);
    // Commits go in order, one at a time.
    finish_commit(state, metrics).await?;
    let writer = model.clone();
    let applied = digests.len();
    let started = std::time::Instant::now();
    let task = tokio::task::spawn_blocking(move || {
        let began = std::time::Instant::now();
        writer.commit(&totals, &digests, last_sequence).map(|()| began.elapsed())
    });
    state.commit = Some(CommitInFlight { task, last_sequence, applied });
    // While catching up, the commit runs beside the next batch (the projection used one core
    // and left the other partly idle); otherwise it is awaited now, so that what is applied is
    // on disk (and in /readyz's checkpoint) without waiting for another batch. Views writes
    // only start below, after it: stored views never run ahead of the checkpoint.
    if !catching_up {
        finish_commit(state, metrics).await?;
    }
    // Field values are computed only when debug is on. `behind_ms`: how far behind the log the
    // batch was when applied (from the last event's store time).
    tracing::debug!(
        last_sequence,
        applied,
        flush,
        apply_ms = (started - began).as_secs_f64() * 1000.0,
        commit_ms = (!catching_up).then(|| started.elapsed().as_secs_f64() * 1000.0),
        behind_ms =
            last_info.map(|(_, published)| (time::OffsetDateTime::now_utc() - published).as_seconds_f64() * 1000.0),
        "projection batch applied"
    );
    state.checkpoint = last_sequence;
    if whole {
        // (`whole` implies `flush`.) The end of a catch-up: one snapshot of everything (the projection waits for it once).
        flush_views(model, views_shared, state, metrics).await?;
    } else if flush {
        start_views_write(state, model, views_shared, metrics).await?;
    }

    metrics.batches.inc();
    for (event_type, n) in projected {
        let area = sgd_schemas::catalogue::TypeName::parse(event_type).map(|t| t.area).unwrap_or("unknown");
        metrics.projected.get_or_create(&TypeLabels { area: area.into(), r#type: event_type.into() }).inc_by(n);
    }
    if let Some((pending, published)) = last_info {
        status.caught_up.store(pending == 0, Ordering::Relaxed);
        metrics.lag_events.set(pending as i64);
        let age =
            if pending == 0 { 0.0 } else { (time_now_unix() - published.unix_timestamp_nanos() as f64 / 1e9).max(0.0) };
        metrics.lag_seconds.set(age);
    }
    Ok(())
}

/// One log message as the batch applies it.
struct LoggedEvent {
    sequence: u64,
    /// Messages left in the consumer after this one, and when this one was stored.
    pending: u64,
    published: time::OffsetDateTime,
    /// `None` when at or below the checkpoint (already applied).
    decoded: Option<Result<upcast::Logged, serde_json::Error>>,
}

/// Batches this large are decoded on several threads (a thread costs tens of microseconds; an
/// event takes a few to decode).
const PARALLEL_DECODE_FROM: usize = 512;

/// The batch's messages with their log positions, decoded (those above `checkpoint`), in order;
/// messages without JetStream metadata (none come from a pull consumer) are left out.
fn decode_batch(batch: &[jetstream::Message], checkpoint: u64) -> Vec<LoggedEvent> {
    let decode = |messages: &[jetstream::Message]| -> Vec<LoggedEvent> {
        messages
            .iter()
            .filter_map(|message| {
                let info = message.info().ok()?;
                let sequence = info.stream_sequence;
                Some(LoggedEvent {
                    sequence,
                    pending: info.pending,
                    published: info.published,
                    decoded: (sequence > checkpoint).then(|| upcast::decode_logged(&message.payload)),
                })
            })
            .collect()
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(4);
    if threads < 2 || batch.len() < PARALLEL_DECODE_FROM {
        return decode(batch);
    }
    let chunk = batch.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let mut parts = batch.chunks(chunk);
        let first = parts.next().unwrap_or_default();
        let others: Vec<_> = parts.map(|part| scope.spawn(move || decode(part))).collect();
        let mut out = decode(first);
        for other in others {
            // A panic while decoding is a bug; carry it to this thread as any other would be.
            out.extend(other.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)));
        }
        out
    })
}

/// Replays the log into `model` (a fresh one, or one a rebuild filled before) from its checkpoint
/// up to exactly `stop_at` (or the end of the log, when it holds less), with the same batches and
/// commits as the projection runner; `progress` follows the sequence reached. Returns the views.
pub async fn catch_up(
    js: &jetstream::Context,
    model: &Arc<ReadModel>,
    views: DomainViews,
    stop_at: u64,
    settings: ProjectorSettings,
    progress: &std::sync::atomic::AtomicU64,
) -> Result<DomainViews, ProjectorError> {
    let loader = model.clone();
    let mut state =
        tokio::task::spawn_blocking(move || RunnerState::load(&loader)).await.map_err(task_error("load"))??;
    let views: SharedViews = Arc::new(RwLock::new(views));
    progress.store(state.checkpoint, Ordering::Relaxed);
    // Counted apart from the serving hub's metrics, which a rebuild must not move.
    let metrics = Metrics::default();
    if state.checkpoint < stop_at {
        let stream = js.get_stream(streams::EVENTS).await.map_err(consumer_error)?;
        let consumer = log_consumer(&stream, state.checkpoint, None, "sgd-hub rebuild").await?;
        let mut messages = consumer
            .stream()
            .max_messages_per_batch(settings.batch_max * PULL_AHEAD)
            .messages()
            .await
            .map_err(consumer_error)?;
        let status = ProjectorStatus::default();
        'replay: while state.checkpoint < stop_at {
            let mut batch = Vec::with_capacity(settings.batch_max);
            let mut ended = false;
            while batch.len() < settings.batch_max {
                // Nothing for a while: the log holds less than `stop_at` (or a sequence is gone).
                match tokio::time::timeout(Duration::from_secs(5), messages.next()).await {
                    Ok(Some(Ok(message))) => {
                        let sequence = message.info().map(|i| i.stream_sequence).unwrap_or(0);
                        if sequence > stop_at {
                            ended = true;
                            break;
                        }
                        batch.push(message);
                        if sequence == stop_at {
                            ended = true;
                            break;
                        }
                    }
                    Ok(Some(Err(e))) => return Err(consumer_error(e)),
                    Ok(None) | Err(_) => {
                        ended = true;
                        break;
                    }
                }
            }
            if !batch.is_empty() {
                // Views are written once, at the end, not every interval.
                let never = Duration::from_secs(u64::MAX / 4);
                project_batch(&mut state, &batch, model, &views, never, &metrics, &status).await?;
                progress.store(state.checkpoint, Ordering::Relaxed);
            }
            if ended {
                break 'replay;
            }
        }
    }
    flush_views(model, &views, &mut state, &metrics).await?;
    let views = Arc::try_unwrap(views).map(RwLock::into_inner).map_err(|_| ProjectorError::ViewsShared)?;
    Ok(views)
}

/// Brings the views from what sled holds (`from`) up to the checkpoint (`to`) by replaying that
/// part of the log into the views only. Exactly the events applied the first time are applied
/// again: those whose identity digests the batches after `from` recorded, each once. Returns
/// whether every one of them was found in the log.
async fn replay_views(
    stream: &jetstream::stream::Stream,
    model: &Arc<ReadModel>,
    views: &SharedViews,
    from: u64,
    to: u64,
) -> Result<bool, ProjectorError> {
    let reader = model.clone();
    let mut applied =
        tokio::task::spawn_blocking(move || reader.identities_after(from)).await.map_err(task_error("load"))??;
    tracing::info!(from, to, "replaying the log into the views up to the checkpoint");
    let consumer = log_consumer(stream, from, None, "sgd-hub view replay").await?;
    let mut messages = consumer.stream().max_messages_per_batch(5000).messages().await.map_err(consumer_error)?;
    let mut views = views.write().await;
    // A missing sequence (removed by retention) must not make the replay wait forever.
    while let Ok(Some(message)) = tokio::time::timeout(Duration::from_secs(5), messages.next()).await {
        let message = message.map_err(consumer_error)?;
        let Ok(info) = message.info() else { continue };
        let sequence = info.stream_sequence;
        if sequence > to {
            break;
        }
        if let Ok((envelope, event)) = upcast::decode_logged(&message.payload) {
            if applied.remove(&identity_digest(&envelope)) {
                if let Ok(event) = event {
                    views.apply_logged(&ProjectedEvent::new(&envelope, &event), sequence);
                }
            }
        }
        if sequence == to {
            break;
        }
    }
    views.applied_through = to;
    if !applied.is_empty() {
        tracing::warn!(
            missing = applied.len(),
            "events applied before were not found again in the log; views stay as replayed"
        );
    }
    Ok(applied.is_empty())
}

/// Starts writing the views' changed records as of the checkpoint, beside the next batches. While
/// the previous write still runs (a snapshot, at most a second or two at a million events), the
/// changes wait for the next batch: the projection never waits for the views' files.
async fn start_views_write(
    state: &mut RunnerState,
    model: &Arc<ReadModel>,
    views: &SharedViews,
    metrics: &Metrics,
) -> Result<(), ProjectorError> {
    if state.views_write.as_ref().is_some_and(|write| !write.is_finished()) {
        return Ok(());
    }
    finish_views_write(state).await?;
    let changes = views.write().await.drain_changes();
    let (writer, sequence, views) = (model.clone(), state.checkpoint, views.clone());
    let stored = metrics.views_sequence.clone();
    state.views_write = Some(tokio::task::spawn_blocking(move || {
        writer.write_views(sequence, &changes, &views)?;
        // Set here, not when awaited: no later batch may come to await it.
        stored.set(sequence as i64);
        Ok(())
    }));
    state.views_flushed_at = std::time::Instant::now();
    Ok(())
}

/// Waits for the commit in flight, if any, and counts it.
async fn finish_commit(state: &mut RunnerState, metrics: &Metrics) -> Result<(), ProjectorError> {
    if let Some(commit) = state.commit.take() {
        let took = commit.task.await.map_err(task_error("commit"))??;
        metrics.commit_seconds.observe(took.as_secs_f64());
        metrics.batch_size.observe(commit.applied as f64);
        metrics.totals.projected.fetch_add(commit.applied as u64, Ordering::Relaxed);
        metrics.checkpoint.set(commit.last_sequence as i64);
    }
    Ok(())
}

/// Waits for the views write in flight, if any.
async fn finish_views_write(state: &mut RunnerState) -> Result<(), ProjectorError> {
    if let Some(write) = state.views_write.take() {
        write.await.map_err(task_error("views write"))??;
    }
    Ok(())
}

/// Changed records above which [`flush_views`] writes a whole snapshot instead of a journal frame
/// (after a rebuild or a replay of the whole log, when most records changed).
const SNAPSHOT_INSTEAD_OF_FRAME: usize = 50_000;

/// Writes the views' changed records and flushes the model to disk (at shutdown, before a
/// handover, at the end of a catch-up), so the next start has nothing to replay.
async fn flush_views(
    model: &Arc<ReadModel>,
    views: &SharedViews,
    state: &mut RunnerState,
    metrics: &Metrics,
) -> Result<(), ProjectorError> {
    finish_commit(state, metrics).await?;
    finish_views_write(state).await?;
    let (writer, sequence) = (model.clone(), state.checkpoint);
    let mut held = views.clone().write_owned().await;
    let task = if held.changed() > SNAPSHOT_INSTEAD_OF_FRAME {
        // Encoded shard by shard into the snapshot, not all at once into one frame; the API
        // reads meanwhile (only this runner writes, and it waits here).
        held.clear_changes();
        let held = held.downgrade();
        tokio::task::spawn_blocking(move || writer.write_all_views(sequence, &held).and_then(|()| writer.flush()))
    } else {
        let changes = held.drain_changes();
        drop(held);
        let views = views.clone();
        tokio::task::spawn_blocking(move || {
            writer.write_views(sequence, &changes, &views).and_then(|()| writer.flush())
        })
    };
    task.await.map_err(task_error("views write"))??;
    metrics.views_sequence.set(sequence as i64);
    state.views_flushed_at = std::time::Instant::now();
    Ok(())
}

fn time_now_unix() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or_default()
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
