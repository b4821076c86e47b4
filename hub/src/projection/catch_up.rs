//! Catching up from the log without the live runner: a rebuild's replay into a fresh read model
//! up to a given sequence, and the views' replay up to the checkpoint at start.

use std::{
    sync::{atomic::Ordering, Arc},
    time::Duration,
};

use async_nats::jetstream;
use futures::StreamExt;
use sgd_schemas::upcast;
use tokio::sync::RwLock;

use super::{
    batch::{blocking, flush_views, project_batch},
    consumer::{log_consumer, PULL_AHEAD},
    runner::{
        consumer_error, identity_digest, task_error, ProjectorError, ProjectorSettings, ProjectorStatus, RunnerState,
        SharedViews,
    },
};
use crate::{
    log::streams,
    metrics::Metrics,
    projections::{DomainViews, ProjectedEvent},
    store::read_model::{ReadModel, ReadModelError},
};

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
    let (mut state, usage) = tokio::task::spawn_blocking(move || RunnerState::load_with_usage(&loader))
        .await
        .map_err(task_error("load"))??;
    let mut views = views;
    views.usage = usage;
    views.keep_on_disk(model.records().clone(), settings.hand_over.records);
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
                // Views are written at the end (and, the catch-up being long, every
                // CATCH_UP_SNAPSHOT_EVERY events), not every interval; the record runs handed over
                // meanwhile are merged with each hand-over (`ReadModel::merge_records_after_views`).
                let never = Duration::from_secs(u64::MAX / 4);
                project_batch(&mut state, &batch, model, &views, (never, settings.hand_over), &metrics, &status)
                    .await?;
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

/// How many replayed events between two looks at the views' budgets.
const RECORDS_CHECK_EVERY: u64 = 1000;

/// Brings the views from what sled holds (`from`) up to the checkpoint (`to`) by replaying that
/// part of the log into the views only. Exactly the events applied the first time are applied
/// again: those whose identity digests the batches after `from` recorded, each once. Returns
/// whether every one of them was found in the log.
pub(super) async fn replay_views(
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
    if to - from >= views.records() as u64 {
        // Longer than the views are big: stored whole at its end (see `project_batch`), so
        // neither the changed keys nor those of the records that leave memory are kept.
        views.mark_all_changed();
    }
    let mut replayed = 0u64;
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
                    replayed += 1;
                }
            }
        }
        if replayed.is_multiple_of(RECORDS_CHECK_EVERY) {
            views.tick();
            // The views hold no record read as absent (a failed read) when handed over.
            if let Some(failure) = model.records().take_failure() {
                return Err(ReadModelError::RecordLookup(failure).into());
            }
            blocking(|| {
                views.hand_over_now(model.records(), sequence)?;
                model.merge_records_after_views()
            })?;
        }
        if sequence == to {
            break;
        }
    }
    if let Some(failure) = model.records().take_failure() {
        return Err(ReadModelError::RecordLookup(failure).into());
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
