//! One batch of the projection: decode, skip what was applied before, apply to the views and the
//! usage totals, commit to sled in one atomic batch; and the views' writes beside the batches.

use std::{
    sync::{atomic::Ordering, Arc},
    time::Duration,
};

use async_nats::jetstream;
use sgd_schemas::upcast;

use super::runner::{
    identity_digest, task_error, CommitInFlight, HandOverAt, ProjectorError, ProjectorStatus, RunnerState, SharedViews,
    CATCHING_UP_PENDING, VIEWS_WRITE_RECORDS,
};
use crate::{
    metrics::{Metrics, TypeLabels},
    projections::{usage::UsageDelta, Leaving, ProjectedEvent},
    store::read_model::{ReadModel, ReadModelError},
};

pub(super) async fn project_batch(
    state: &mut RunnerState,
    batch: &[jetstream::Message],
    model: &Arc<ReadModel>,
    views_shared: &SharedViews,
    (views_flush, hand_over_at): (Duration, HandOverAt),
    metrics: &Metrics,
    status: &ProjectorStatus,
) -> Result<(), ProjectorError> {
    let began = std::time::Instant::now();
    // Decoded before the views are locked (readers wait less), on every core for large batches.
    let decoded = decode_batch(batch, state.checkpoint);
    let decode_ms = began.elapsed().as_secs_f64() * 1000.0;
    // Empty unless spans are exported: what an event without a traceparent of its own follows.
    let log_traceparents = crate::telemetry::traceparents_by_sequence(batch);
    let mut views = views_shared.write().await;
    views.tick();
    let mut delta = UsageDelta::default();
    let mut digests = Vec::with_capacity(batch.len());
    // Counted per type (a static name, no allocation per event); areas are derived once per batch.
    let mut projected: hashbrown::HashMap<&'static str, u64> = hashbrown::HashMap::new();
    let mut last_sequence = state.checkpoint;
    let mut last_info = None;
    for logged in decoded.iter().flatten() {
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
        // Trace, not debug: a span per event, built, costs a rebuild ~10% (the batch's debug line
        // below has the timings).
        let _span = tracing::trace_span!(
            "projected",
            sequence,
            id = %envelope.id,
            traceparent = envelope.traceparent.as_deref().unwrap_or("")
        )
        .entered();
        // The pipeline's `project` span, not while catching up (a start far behind, a rebuild).
        let project = if pending < CATCHING_UP_PENDING {
            tracing::info_span!(target: crate::telemetry::PIPELINE, "project", "log.sequence" = sequence,
                "event.id" = %envelope.id, "event.type" = %envelope.event_type, duplicate = false)
        } else {
            tracing::Span::none()
        };
        let traceparent = envelope.traceparent.as_deref().or_else(|| log_traceparents.get(&sequence).copied());
        crate::telemetry::follow(&project, traceparent);
        let project = project.entered();
        let digest = identity_digest(envelope);
        if !state.identities.insert(digest).map_err(ReadModelError::from)? {
            project.record("duplicate", true);
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
    if let Some(failure) = model.records().take_failure() {
        // The views may now hold a record read as absent: stop before anything of it is stored
        // (a restart loads the stored views and replays the log).
        return Err(ReadModelError::RecordLookup(failure).into());
    }
    if last_sequence == state.checkpoint {
        return Ok(());
    }
    views.applied_through = last_sequence;
    // Each touched row is written whole: one sled key per principal and day, not one per type.
    let totals: Vec<_> = delta
        .into_rows()
        .map(|(key, added)| {
            let total = views.usage.entry_or_default(key.clone());
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
        state.catch_up_whole = true;
    }
    let changed = views.changed();
    let flush = !catching_up && (state.views_flushed_at.elapsed() >= views_flush || changed >= VIEWS_WRITE_RECORDS);
    // Only at the end of a catch-up: elsewhere a snapshot while the projection waits would stall it.
    let whole = state.catching_up && !catching_up && (changed > SNAPSHOT_INSTEAD_OF_FRAME || views.needs_snapshot());
    // Such a catch-up is also stored whole every CATCH_UP_SNAPSHOT_EVERY events on its way: a
    // crash's replay then needs the `ids/` keys of that many events at most, and they leave sled
    // (whose memory held the digests of the whole catch-up: ~70 MB at 10,000,000 events).
    let midway = catching_up
        && state.catch_up_whole
        && model.views_written().is_some_and(|written| last_sequence >= written + CATCH_UP_SNAPSHOT_EVERY);
    state.catch_up_whole &= catching_up;
    state.catching_up = catching_up;
    drop(views);
    // Commits go in order, one at a time.
    let applied_at = std::time::Instant::now();
    finish_commit(state, metrics).await?;
    let commit_wait_ms = applied_at.elapsed().as_secs_f64() * 1000.0;
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
        decode_ms,
        apply_ms = (applied_at - began).as_secs_f64() * 1000.0 - decode_ms,
        commit_wait_ms,
        commit_ms = (!catching_up).then(|| started.elapsed().as_secs_f64() * 1000.0),
        behind_ms =
            last_info.map(|(_, published)| (time::OffsetDateTime::now_utc() - published).as_seconds_f64() * 1000.0),
        "projection batch applied"
    );
    state.checkpoint = last_sequence;
    hand_over(state, model, views_shared, hand_over_at, metrics).await?;
    if whole {
        // (`whole` implies `flush`.) The end of a catch-up: one snapshot of everything (the projection waits for it once).
        flush_views(model, views_shared, state, metrics).await?;
    } else if midway {
        flush_views(model, views_shared, state, metrics).await?;
        views_shared.write().await.mark_all_changed();
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
pub(super) struct LoggedEvent {
    sequence: u64,
    /// Messages left in the consumer after this one, and when this one was stored.
    pending: u64,
    published: time::OffsetDateTime,
    /// `None` when at or below the checkpoint (already applied).
    decoded: Option<Result<upcast::Logged, serde_json::Error>>,
}

/// Batches this large are decoded on several threads (a thread costs tens of microseconds; an
/// event takes a few to decode).
pub(super) const PARALLEL_DECODE_FROM: usize = 512;

/// The batch's messages with their log positions, decoded (those above `checkpoint`), in order,
/// in parts (one per thread that decoded them: joined, a batch's events would be held twice for a
/// moment, ~4 MB each for 5,000); messages without JetStream metadata (none come from a pull
/// consumer) are left out.
pub(super) fn decode_batch(batch: &[jetstream::Message], checkpoint: u64) -> Vec<Vec<LoggedEvent>> {
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
        return vec![decode(batch)];
    }
    let chunk = batch.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let mut parts = batch.chunks(chunk);
        let first = parts.next().unwrap_or_default();
        let others: Vec<_> = parts.map(|part| scope.spawn(move || decode(part))).collect();
        let mut out = Vec::with_capacity(threads);
        out.push(decode(first));
        for other in others {
            // A panic while decoding is a bug; carry it to this thread as any other would be.
            out.push(other.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)));
        }
        out
    })
}

/// Starts writing the views' changed records as of the checkpoint, beside the next batches. While
/// the previous write still runs (a snapshot, at most a second or two at a million events), the
/// changes wait for the next batch: the projection never waits for the views' files.
pub(super) async fn start_views_write(
    state: &mut RunnerState,
    model: &Arc<ReadModel>,
    views: &SharedViews,
    metrics: &Metrics,
) -> Result<(), ProjectorError> {
    if state.views_write.as_ref().is_some_and(|write| !write.is_finished()) {
        return Ok(());
    }
    finish_views_write(state).await?;
    if views.read().await.needs_snapshot() {
        // Records left memory during a catch-up without their keys kept: stored whole.
        return flush_views(model, views, state, metrics).await;
    }
    let drained = std::time::Instant::now();
    let changes = views.write().await.drain_changes();
    tracing::debug!(drain_ms = drained.elapsed().as_secs_f64() * 1000.0, "views' changes drained");
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

/// Moves what grows with the log out of memory once there is enough of it: the applied
/// identities (once every batch holding them is on disk, so a run never holds an identity a
/// crash could un-apply) and the views' timeline entries (which may run ahead of the stored
/// views: an entry handed over twice counts once).
async fn hand_over(
    state: &mut RunnerState,
    model: &Arc<ReadModel>,
    views: &SharedViews,
    at: HandOverAt,
    metrics: &Metrics,
) -> Result<(), ProjectorError> {
    if state.identities.recent() >= at.identities {
        let began = std::time::Instant::now();
        finish_commit(state, metrics).await?;
        let through = state.checkpoint;
        let identities = &mut state.identities;
        blocking(|| -> Result<(), ReadModelError> {
            model.flush()?;
            identities.hand_over(through)?;
            Ok(())
        })?;
        model.identities_handed_over(through);
        tracing::debug!(through, ms = began.elapsed().as_secs_f64() * 1000.0, "applied identities handed over to disk");
    }
    let entries = {
        let views = views.read().await;
        (views.timeline_entries() >= at.timeline_entries).then(|| views.timeline_refs())
    };
    if let Some(entries) = entries {
        let began = std::time::Instant::now();
        let through = state.checkpoint;
        let count = entries.len();
        blocking(|| model.timelines().hand_over(entries, through)).map_err(ReadModelError::from)?;
        // Only this runner changes the views, so they hold exactly the entries just written.
        views.write().await.take_timeline_entries();
        tracing::debug!(
            through,
            count,
            ms = began.elapsed().as_secs_f64() * 1000.0,
            "timeline entries handed over to disk"
        );
    }
    records_leave_memory(state, model, views).await
}

/// Hands the view records beyond their tables' budgets over to disk, as of log `through` (what
/// the views reflect now), then forgets them from memory, beside the next batches in the views
/// write's place (so the two never overlap, and a write in flight delays it to a later batch).
/// Readers meanwhile find the records still in memory, then on disk; a record the projection
/// changes meanwhile stays in memory.
async fn records_leave_memory(
    state: &mut RunnerState,
    model: &Arc<ReadModel>,
    views: &SharedViews,
) -> Result<(), ProjectorError> {
    if state.views_write.as_ref().is_some_and(|write| !write.is_finished()) {
        return Ok(());
    }
    finish_views_write(state).await?;
    let Some(Leaving { records, keys, batch }) = views.read().await.leaving() else { return Ok(()) };
    let (writer, views, through) = (model.clone(), views.clone(), state.checkpoint);
    state.views_write = Some(tokio::task::spawn_blocking(move || {
        let count = records.len();
        writer.records().add_run(records, through)?;
        views.blocking_write().forget(&keys, batch);
        writer.merge_records_after_views()?;
        tracing::debug!(through, count, "view records handed over to disk");
        Ok(())
    }));
    Ok(())
}

/// Runs blocking file work from the runner's task: on a multi-threaded runtime without holding up
/// the other tasks of its worker.
pub(super) fn blocking<T>(work: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|handle| handle.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(work),
        _ => work(),
    }
}

/// Waits for the commit in flight, if any, and counts it.
pub(super) async fn finish_commit(state: &mut RunnerState, metrics: &Metrics) -> Result<(), ProjectorError> {
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
pub(super) async fn finish_views_write(state: &mut RunnerState) -> Result<(), ProjectorError> {
    if let Some(write) = state.views_write.take() {
        write.await.map_err(task_error("views write"))??;
    }
    Ok(())
}

/// Events between two snapshots of the views during a catch-up longer than the views are big
/// (stored whole at its end anyway): bounds the applied identities kept in sled for a replay
/// (16 bytes each) and the replay a crash costs. At 10,000,000 events each took 0.1–1.7 s with
/// the waits around it, ~10% of the rebuild (docs/performance.md, "Scaling").
pub(super) const CATCH_UP_SNAPSHOT_EVERY: u64 = 500_000;

/// Changed records above which [`flush_views`] writes a whole snapshot instead of a journal frame
/// (after a rebuild or a replay of the whole log, when most records changed).
pub(super) const SNAPSHOT_INSTEAD_OF_FRAME: usize = 50_000;

/// Writes the views' changed records and flushes the model to disk (at shutdown, before a
/// handover, at the end of a catch-up), so the next start has nothing to replay.
pub(super) async fn flush_views(
    model: &Arc<ReadModel>,
    views: &SharedViews,
    state: &mut RunnerState,
    metrics: &Metrics,
) -> Result<(), ProjectorError> {
    finish_commit(state, metrics).await?;
    finish_views_write(state).await?;
    let (writer, sequence) = (model.clone(), state.checkpoint);
    let mut held = views.clone().write_owned().await;
    let task = if held.changed() > SNAPSHOT_INSTEAD_OF_FRAME || held.needs_snapshot() {
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

pub(super) fn time_now_unix() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or_default()
}
