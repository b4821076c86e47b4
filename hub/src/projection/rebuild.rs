//! Rebuilding the read model from the log, beside the served one.
//!
//! A rebuild replays `SGD_EVENTS` into a fresh directory ([`ModelDirs::fresh`]) while the API
//! keeps answering from the served model and the projection keeps it current. When the fresh
//! model is close to the end of the log, the projection pauses after its current batch at some
//! checkpoint S, the fresh model is brought to exactly S, and then either
//! - **swap**: `CURRENT` is switched to the fresh directory (one atomic rename), then the
//!   projection takes the fresh model and its views, hands them to the API together and carries on
//!   from S; it lets go of the old model, whose directory is removed once nothing in the process
//!   holds it any more (no request, no write in flight). The rebuild ends only when the projection
//!   has taken over, so another one can start at once: it leaves directories still being retired
//!   alone; or
//! - **check**: every usage cell and every view record of both models at S are compared, the
//!   differences reported, the fresh model thrown away, and the projection carries on as before.
//!
//! A rebuild killed at any moment leaves the served model as it was; the next start removes the
//! abandoned directory. [`offline`] does the same for a stopped hub (e.g. when its read model
//! will not open), with no projection to pause.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex, Weak,
    },
    time::{Duration, Instant},
};

use async_nats::jetstream;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use crate::{
    log::streams,
    projection::{
        catch_up::catch_up,
        runner::{Control, Handover, ProjectorError, ProjectorSettings, SharedViews},
    },
    projections::DomainViews,
    store::read_model::{ModelDirs, ReadModel, ReadModelError, ServingModel},
};

/// Why a rebuild failed (the served model is untouched).
#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    /// A rebuild is already running.
    #[error("a rebuild is already running")]
    Running,
    /// The fresh read model could not be written.
    #[error(transparent)]
    ReadModel(#[from] ReadModelError),
    /// Replaying the log failed.
    #[error(transparent)]
    Projection(#[from] ProjectorError),
    /// The log could not be read → run it again when NATS is back.
    #[error("log: {0}")]
    Nats(#[source] async_nats::Error),
    /// The log ended before the checkpoint the projection paused at (messages removed from the
    /// stream) → check the stream; the served model is untouched.
    #[error("log: the log ended at {reached} before the projection's checkpoint {paused_at}; is the stream intact?")]
    LogEnded {
        /// Where the fresh model stopped.
        reached: u64,
        /// Where the projection paused.
        paused_at: u64,
    },
    /// An offline check found views that trail the checkpoint, which it cannot compare → start the
    /// hub once, or check it while it runs.
    #[error(
        "log: the stored views trail the checkpoint (the hub stopped without writing them): start the hub \
         once, or check it while it runs with `hub rebuild --check`"
    )]
    ViewsTrail,
    /// An offline check found no served model to compare with.
    #[error("log: no served model to compare")]
    NoServedModel,
    /// A blocking part of the rebuild (opening, loading, comparing) panicked → a bug.
    #[error("log: {what} task failed: {source}")]
    Task {
        /// Which part.
        what: &'static str,
        /// How it ended.
        source: tokio::task::JoinError,
    },
    /// The data directory could not be changed.
    #[error("data directory {path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The projection did not answer the pause, or did not take over the rebuilt model (it
    /// stopped: the hub is stopping or failed) → the next start serves what `CURRENT` names.
    #[error("the projection is not running: it did not pause, or did not take over the rebuilt model")]
    ProjectionGone,
    /// An offline rebuild found a hub running on the data directory.
    #[error("a hub is running on {0}: stop it for an offline rebuild, or run `hub rebuild` against its API")]
    HubRunning(String),
}

/// Where a rebuild is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RebuildPhase {
    /// None has run in this process.
    Idle,
    /// Replaying the log into the fresh model.
    Replaying,
    /// The projection is paused; the fresh model is brought to its checkpoint.
    Pausing,
    /// Comparing the fresh model with the served one (`check`).
    Comparing,
    /// Switching the served model.
    Swapping,
    /// Finished.
    Done,
    /// Failed; the served model is untouched.
    Failed,
}

/// A rebuild's progress and outcome.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RebuildReport {
    /// Where it is.
    pub phase: RebuildPhase,
    /// Whether it compares instead of swapping.
    pub check: bool,
    /// When it started.
    pub started_at: Option<DateTime<Utc>>,
    /// When it finished.
    pub finished_at: Option<DateTime<Utc>>,
    /// Log sequence the fresh model has reached.
    pub reached: u64,
    /// Log sequence it is heading for (moves while the log grows).
    pub target: u64,
    /// Events per second so far.
    pub events_per_second: f64,
    /// Seconds left at that rate.
    pub eta_seconds: Option<f64>,
    /// The fresh model's directory.
    pub dir: Option<String>,
    /// `check`: how many records differ.
    pub differences: Option<usize>,
    /// `check`: the first differences, described.
    #[serde(default)]
    pub examples: Vec<String>,
    /// Why it failed.
    pub error: Option<String>,
}

impl Default for RebuildReport {
    fn default() -> Self {
        Self {
            phase: RebuildPhase::Idle,
            check: false,
            started_at: None,
            finished_at: None,
            reached: 0,
            target: 0,
            events_per_second: 0.0,
            eta_seconds: None,
            dir: None,
            differences: None,
            examples: vec![],
            error: None,
        }
    }
}

/// Live progress, shared between the rebuild and whoever watches it.
#[derive(Debug, Default)]
pub struct Progress {
    reached: AtomicU64,
    target: AtomicU64,
    report: Mutex<RebuildReport>,
    started: Mutex<Option<(Instant, u64)>>,
}

impl Progress {
    fn begin(&self, check: bool) {
        *self.lock() =
            RebuildReport { phase: RebuildPhase::Replaying, check, started_at: Some(Utc::now()), ..Default::default() };
        self.reached.store(0, Ordering::Relaxed);
        self.target.store(0, Ordering::Relaxed);
        *self.started.lock().unwrap_or_else(|p| p.into_inner()) = Some((Instant::now(), 0));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RebuildReport> {
        self.report.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set(&self, change: impl FnOnce(&mut RebuildReport)) {
        change(&mut self.lock());
    }

    /// The report now.
    pub fn report(&self) -> RebuildReport {
        let mut report = self.lock().clone();
        report.reached = self.reached.load(Ordering::Relaxed);
        report.target = self.target.load(Ordering::Relaxed).max(report.reached);
        if let Some((started, from)) = *self.started.lock().unwrap_or_else(|p| p.into_inner()) {
            let seconds = started.elapsed().as_secs_f64().max(0.001);
            report.events_per_second = report.reached.saturating_sub(from) as f64 / seconds;
            if report.events_per_second > 0.0 && report.finished_at.is_none() {
                report.eta_seconds =
                    Some(report.target.saturating_sub(report.reached) as f64 / report.events_per_second);
            }
        }
        report
    }
}

/// Runs rebuilds inside a serving hub (`POST /api/v1/admin/rebuild`).
pub struct Rebuilder {
    js: jetstream::Context,
    dirs: ModelDirs,
    serving: ServingModel,
    views: SharedViews,
    control: mpsc::Sender<Control>,
    settings: ProjectorSettings,
    running: AtomicBool,
    /// Directories being removed once nothing in the process holds them (a replaced model, the
    /// fresh one of a check or of a failed rebuild): a rebuild's cleanup leaves them alone.
    retiring: Arc<Mutex<BTreeSet<PathBuf>>>,
    /// The progress of the running (or last) rebuild.
    pub progress: Progress,
}

impl Rebuilder {
    /// A rebuilder for the hub serving `serving` and `views` from `data_dir`, whose projection
    /// listens on `control`.
    pub fn new(
        js: jetstream::Context,
        data_dir: &Path,
        serving: ServingModel,
        views: SharedViews,
        control: mpsc::Sender<Control>,
        settings: ProjectorSettings,
    ) -> Self {
        Self {
            js,
            dirs: ModelDirs::new(data_dir),
            serving,
            views,
            control,
            settings,
            running: AtomicBool::new(false),
            retiring: Arc::default(),
            progress: Progress::default(),
        }
    }

    /// Starts a rebuild in the background (`check`: compare instead of swapping).
    pub fn start(self: &Arc<Self>, check: bool) -> Result<RebuildReport, RebuildError> {
        if self.running.swap(true, Ordering::SeqCst) {
            return Err(RebuildError::Running);
        }
        self.progress.begin(check);
        let this = self.clone();
        tokio::spawn(async move {
            let outcome = this.run(check).await;
            this.progress.set(|r| {
                r.finished_at = Some(Utc::now());
                r.eta_seconds = None;
                match outcome {
                    Ok(()) => r.phase = RebuildPhase::Done,
                    Err(e) => {
                        tracing::error!(error = %e, "rebuild failed; the served read model is untouched");
                        r.phase = RebuildPhase::Failed;
                        r.error = Some(e.to_string());
                    }
                }
                // With the report's lock held: whoever reads this report as ended may start the
                // next rebuild, and the next one's report cannot be overwritten by this one's end.
                this.running.store(false, Ordering::SeqCst);
            });
        });
        Ok(self.progress.report())
    }

    async fn run(&self, check: bool) -> Result<(), RebuildError> {
        let io = |path: &Path| {
            let path = path.display().to_string();
            move |source| RebuildError::Io { path, source }
        };
        let retiring = self.retiring.lock().unwrap_or_else(|p| p.into_inner()).clone();
        for stale in self.dirs.remove_stale(&retiring).map_err(io(&self.dirs.serving()))? {
            tracing::info!(dir = %stale.display(), "removed a read model left by an earlier rebuild");
        }
        let dir = self.dirs.fresh().map_err(io(&self.dirs.serving()))?;
        self.progress.set(|r| r.dir = Some(dir.display().to_string()));
        tracing::info!(dir = %dir.display(), check, "rebuild started");
        let model = match open(&dir).await {
            Ok(model) => Arc::new(model),
            Err(e) => {
                self.remove_when_closed(dir, Weak::new());
                return Err(e);
            }
        };
        let fresh = Arc::downgrade(&model);
        let result = self.build_and_hand_over(&dir, model, check).await;
        match result {
            Ok(Some(replaced)) => {
                let replaced_dir = replaced.dir();
                let held = Arc::downgrade(&replaced);
                drop(replaced);
                self.remove_when_closed(replaced_dir, held);
                Ok(())
            }
            Ok(None) => {
                self.remove_when_closed(dir, fresh);
                Ok(())
            }
            // Once `CURRENT` names it, the fresh model is the one the next start serves.
            Err(e) if self.dirs.serving() == dir => Err(e),
            Err(e) => {
                self.remove_when_closed(dir, fresh);
                Err(e)
            }
        }
    }

    /// Fills `model` (in `dir`) from the log and swaps it in, returning the replaced model once
    /// the projection has let go of it; or, with `check`, compares it and returns `None`.
    async fn build_and_hand_over(
        &self,
        dir: &Path,
        model: Arc<ReadModel>,
        check: bool,
    ) -> Result<Option<Arc<ReadModel>>, RebuildError> {
        let mut views = DomainViews::counting_with(self.settings.limits);
        // Replay towards the end of the log until it is close, then pause the projection.
        loop {
            let last = last_sequence(&self.js).await?;
            self.progress.target.store(last, Ordering::Relaxed);
            views = catch_up(&self.js, &model, views, last, self.settings, &self.progress.reached).await?;
            let reached = self.progress.reached.load(Ordering::Relaxed);
            if last_sequence(&self.js).await?.saturating_sub(reached) <= self.settings.batch_max as u64 {
                break;
            }
        }
        self.progress.set(|r| r.phase = RebuildPhase::Pausing);
        let (paused_tx, paused_rx) = oneshot::channel();
        let (resume_tx, resume_rx) = oneshot::channel();
        self.control
            .send(Control::Pause { paused: paused_tx, resume: resume_rx })
            .await
            .map_err(|_| RebuildError::ProjectionGone)?;
        let at = paused_rx.await.map_err(|_| RebuildError::ProjectionGone)?;
        // From here the projection waits; dropping `resume_tx` on any error lets it carry on.
        self.progress.target.store(at, Ordering::Relaxed);
        let views = catch_up(&self.js, &model, views, at, self.settings, &self.progress.reached).await?;
        let reached = model.checkpoint()?;
        if reached != at {
            return Err(RebuildError::LogEnded { reached, paused_at: at });
        }
        if check {
            self.progress.set(|r| r.phase = RebuildPhase::Comparing);
            let served = self.serving.get();
            let served_views = self.views.read().await.all_records();
            let differences = compare(&served, served_views, &model, views.all_records()).await?;
            let _ = resume_tx.send(None);
            self.progress.set(|r| {
                r.differences = Some(differences.len());
                r.examples = differences.into_iter().take(20).collect();
            });
            return Ok(None);
        }
        self.progress.set(|r| r.phase = RebuildPhase::Swapping);
        // A kill from here on leaves `CURRENT` naming one of the two models, both at `at`.
        self.dirs.promote(dir).map_err(|source| RebuildError::Io { path: dir.display().to_string(), source })?;
        let (retired_tx, retired_rx) = oneshot::channel();
        let handover = Handover { model, views, serving: self.serving.clone(), retired: retired_tx };
        resume_tx.send(Some(handover)).map_err(|_| RebuildError::ProjectionGone)?;
        let replaced = retired_rx.await.map_err(|_| RebuildError::ProjectionGone)?;
        tracing::info!(dir = %dir.display(), checkpoint = at, "rebuilt read model now served");
        Ok(Some(replaced))
    }

    /// Removes the read model directory `dir` once nothing in this process holds its model
    /// (`model` no longer upgrades) and sled has closed its files; until then no rebuild's cleanup
    /// touches it. A directory that will not close is left to the next start.
    fn remove_when_closed(&self, dir: PathBuf, model: Weak<ReadModel>) {
        self.retiring.lock().unwrap_or_else(|p| p.into_inner()).insert(dir.clone());
        let retiring = self.retiring.clone();
        tokio::spawn(async move {
            let began = Instant::now();
            let mut warned = false;
            let mut probes = 0;
            loop {
                tokio::time::sleep(Duration::from_millis(200)).await;
                if !warned && began.elapsed() > Duration::from_secs(60) {
                    tracing::warn!(dir = %dir.display(), "a replaced read model is still open; it is removed once closed");
                    warned = true;
                }
                // A request still reading it, or a views write still running.
                if model.strong_count() > 0 {
                    continue;
                }
                // sled lets go of its lock a moment after its last handle (its flusher ends).
                let probe = dir.clone();
                let closed =
                    tokio::task::spawn_blocking(move || sled::Config::new().path(&probe).open().map(drop).is_ok())
                        .await
                        .unwrap_or(false);
                if !closed {
                    probes += 1;
                    if probes < 300 {
                        continue;
                    }
                    // Still kept from the rebuilds' cleanup: something in the process may hold it.
                    tracing::warn!(dir = %dir.display(), "a replaced read model stays locked; the next start removes it");
                    return;
                }
                match std::fs::remove_dir_all(&dir) {
                    Ok(()) => tracing::info!(dir = %dir.display(), "removed the replaced read model"),
                    Err(e) => {
                        tracing::warn!(dir = %dir.display(), error = %e, "could not remove a replaced read model")
                    }
                }
                retiring.lock().unwrap_or_else(|p| p.into_inner()).remove(&dir);
                return;
            }
        });
    }
}

async fn open(dir: &Path) -> Result<ReadModel, RebuildError> {
    let dir = dir.to_path_buf();
    Ok(tokio::task::spawn_blocking(move || ReadModel::open(&dir))
        .await
        .map_err(|source| RebuildError::Task { what: "open", source })??)
}

async fn last_sequence(js: &jetstream::Context) -> Result<u64, RebuildError> {
    let mut stream = js.get_stream(streams::EVENTS).await.map_err(|e| RebuildError::Nats(Box::new(e)))?;
    Ok(stream.info().await.map_err(|e| RebuildError::Nats(Box::new(e)))?.state.last_sequence)
}

/// Compares two models at the same checkpoint: usage cells and every view record. Returns each
/// difference described (empty when they agree).
pub async fn compare(
    a: &Arc<ReadModel>,
    a_views: BTreeMap<String, serde_json::Value>,
    b: &Arc<ReadModel>,
    b_views: BTreeMap<String, serde_json::Value>,
) -> Result<Vec<String>, RebuildError> {
    let (a_model, b_model) = (a.clone(), b.clone());
    // Each model hands timeline entries over to disk at its own moments: compare whole timelines.
    let (a_views, b_views) = tokio::task::spawn_blocking(move || -> Result<_, ReadModelError> {
        Ok((with_timelines_on_disk(&a_model, a_views)?, with_timelines_on_disk(&b_model, b_views)?))
    })
    .await
    .map_err(|source| RebuildError::Task { what: "compare", source })??;
    let (a_model, b_model) = (a.clone(), b.clone());
    let usage = tokio::task::spawn_blocking(move || -> Result<_, ReadModelError> {
        let cells = |m: &ReadModel| -> Result<BTreeMap<String, u64>, ReadModelError> {
            Ok(m.usage_cells()?
                .into_iter()
                .map(|c| (format!("usage/{}/{}/{}", c.day, c.principal, c.event_type), c.count))
                .collect())
        };
        Ok((a_model.checkpoint()?, cells(&a_model)?, b_model.checkpoint()?, cells(&b_model)?))
    })
    .await
    .map_err(|source| RebuildError::Task { what: "compare", source })??;
    let (a_checkpoint, a_usage, b_checkpoint, b_usage) = usage;
    let mut differences = Vec::new();
    if a_checkpoint != b_checkpoint {
        differences.push(format!("checkpoint: served {a_checkpoint}, rebuilt {b_checkpoint}"));
    }
    differ(&a_usage, &b_usage, &mut differences);
    differ(&a_views, &b_views, &mut differences);
    Ok(differences)
}

/// The views' records with each person's timeline entries on disk added to their record, each
/// timeline sorted and without repeats.
fn with_timelines_on_disk(
    model: &ReadModel,
    mut views: BTreeMap<String, serde_json::Value>,
) -> Result<BTreeMap<String, serde_json::Value>, ReadModelError> {
    let mut timelines: BTreeMap<String, Vec<(i64, u64)>> = BTreeMap::new();
    for (key, value) in views.iter().filter(|(key, _)| key.starts_with(TIMELINE_PREFIX)) {
        let entries: Vec<(i64, u64)> = serde_json::from_value(value.clone()).unwrap_or_default();
        timelines.insert(key.clone(), entries);
    }
    model.timelines().for_each(|person, at, sequence| {
        timelines.entry(format!("{TIMELINE_PREFIX}{person}")).or_default().push((at, sequence));
    })?;
    for (key, mut entries) in timelines {
        entries.sort_unstable();
        entries.dedup();
        views.insert(key, serde_json::to_value(entries).unwrap_or_default());
    }
    Ok(views)
}

/// Where the views keep each person's timeline entries.
const TIMELINE_PREFIX: &str = "v/timeline/";

fn differ<V: PartialEq + std::fmt::Display>(a: &BTreeMap<String, V>, b: &BTreeMap<String, V>, out: &mut Vec<String>) {
    for (key, value) in a {
        match b.get(key) {
            None => out.push(format!("{key}: only in the served model")),
            Some(other) if other != value => out.push(format!("{key}: served {value}, rebuilt {other}")),
            Some(_) => {}
        }
    }
    for key in b.keys().filter(|k| !a.contains_key(*k)) {
        out.push(format!("{key}: only in the rebuilt model"));
    }
}

/// `hub rebuild --offline`: rebuilds the read model of a stopped hub from the log; with `check`,
/// compares a fresh rebuild with the stored model (at the stored checkpoint) instead of swapping.
/// Returns the report (for `check`, its differences).
pub async fn offline(
    js: &jetstream::Context,
    data_dir: &Path,
    settings: ProjectorSettings,
    check: bool,
    progress: &Progress,
) -> Result<RebuildReport, RebuildError> {
    let dirs = ModelDirs::new(data_dir);
    let serving_dir = dirs.serving();
    std::fs::create_dir_all(data_dir)
        .map_err(|source| RebuildError::Io { path: data_dir.display().to_string(), source })?;
    // The served model may not open (that is often why one rebuilds), but a lock means a hub runs.
    let served = match open(&serving_dir).await {
        Ok(model) => Some(Arc::new(model)),
        Err(RebuildError::ReadModel(ReadModelError::Storage { source: sled::Error::Io(e), .. }))
            if e.to_string().contains("could not acquire lock") =>
        {
            return Err(RebuildError::HubRunning(data_dir.display().to_string()));
        }
        Err(e) if check => return Err(e),
        Err(e) => {
            tracing::warn!(error = %e, "the served read model does not open; rebuilding it from the log");
            None
        }
    };
    if let (Some(served), true) = (&served, check) {
        if served.views_sequence()? != served.checkpoint()? {
            return Err(RebuildError::ViewsTrail);
        }
    }
    for stale in dirs
        .remove_stale(&BTreeSet::new())
        .map_err(|source| RebuildError::Io { path: data_dir.display().to_string(), source })?
    {
        tracing::info!(dir = %stale.display(), "removed a read model left by an earlier rebuild");
    }
    progress.begin(check);
    let dir = dirs.fresh().map_err(|source| RebuildError::Io { path: data_dir.display().to_string(), source })?;
    progress.set(|r| r.dir = Some(dir.display().to_string()));
    let result = async {
        let model = Arc::new(open(&dir).await?);
        let stop_at = match (&served, check) {
            (Some(served), true) => served.checkpoint()?,
            _ => last_sequence(js).await?,
        };
        progress.target.store(stop_at, Ordering::Relaxed);
        let views =
            catch_up(js, &model, DomainViews::counting_with(settings.limits), stop_at, settings, &progress.reached)
                .await?;
        if check {
            progress.set(|r| r.phase = RebuildPhase::Comparing);
            let served = served.as_ref().ok_or(RebuildError::NoServedModel)?;
            let served_views = {
                let loader = served.clone();
                tokio::task::spawn_blocking(move || loader.load_views())
                    .await
                    .map_err(|source| RebuildError::Task { what: "views load", source })??
                    .all_records()
            };
            let differences = compare(served, served_views, &model, views.all_records()).await?;
            progress.set(|r| {
                r.differences = Some(differences.len());
                r.examples = differences.into_iter().take(20).collect();
            });
        } else {
            progress.set(|r| r.phase = RebuildPhase::Swapping);
            drop(served);
            dirs.promote(&dir).map_err(|source| RebuildError::Io { path: dir.display().to_string(), source })?;
        }
        Ok::<_, RebuildError>(())
    }
    .await;
    progress.set(|r| {
        r.finished_at = Some(Utc::now());
        r.eta_seconds = None;
        r.phase = if result.is_ok() { RebuildPhase::Done } else { RebuildPhase::Failed };
        r.error = result.as_ref().err().map(|e| e.to_string());
    });
    if check || result.is_err() {
        let _ = std::fs::remove_dir_all(&dir);
    } else {
        let _ = dirs.remove_stale(&BTreeSet::new());
    }
    result.map(|()| progress.report())
}
