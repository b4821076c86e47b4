//! Starts a deliverer for each subscription in `SGD_SUBSCRIPTIONS`, passes it the changes made
//! to its subscription (pause, resume) and stops it when the subscription is removed. Runs on
//! the hub whose configuration says `webhooks = true` (one hub of a deployment: two deliverers
//! of one subscription would share its consumer and lose its order).

use std::{collections::HashMap, time::Duration};

use async_nats::jetstream::kv::Operation;
use futures::StreamExt;
use tokio::{sync::watch, task::JoinSet};

use super::{delivery, subscription::Subscription};

struct Running {
    subscription: watch::Sender<Subscription>,
    stop: watch::Sender<bool>,
}

/// Runs until `shutdown` turns true.
pub async fn run(ctx: delivery::DeliveryContext, mut shutdown: watch::Receiver<bool>) {
    let mut running: HashMap<String, Running> = HashMap::new();
    let mut tasks = JoinSet::new();
    'watching: loop {
        // With history: every stored subscription first (its newest value), then each change.
        let mut watch = match ctx.store.bucket().watch_with_history(">").await {
            Ok(watch) => watch,
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch subscriptions; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    _ = shutdown.changed() => break,
                }
            }
        };
        tracing::info!("webhook deliveries watching {}", super::store::BUCKET);
        loop {
            let entry = tokio::select! {
                entry = watch.next() => entry,
                _ = shutdown.changed() => break 'watching,
            };
            let entry = match entry {
                Some(Ok(entry)) => entry,
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "subscription watch failed; watching again");
                    continue 'watching;
                }
                None => continue 'watching,
            };
            match entry.operation {
                Operation::Put => match serde_json::from_slice::<Subscription>(&entry.value) {
                    Ok(subscription) => match running.get(&entry.key) {
                        Some(worker) => {
                            worker.subscription.send_replace(subscription);
                        }
                        None => {
                            let (subscription_tx, subscription_rx) = watch::channel(subscription);
                            let (stop_tx, stop_rx) = watch::channel(false);
                            tracing::info!(subscription = %entry.key, "delivering webhook subscription");
                            tasks.spawn(delivery::run(ctx.clone(), subscription_rx, stop_rx));
                            running.insert(entry.key.clone(), Running { subscription: subscription_tx, stop: stop_tx });
                        }
                    },
                    Err(e) => {
                        tracing::error!(key = %entry.key, error = %e, "an unreadable subscription; not delivered")
                    }
                },
                Operation::Delete | Operation::Purge => {
                    if let Some(worker) = running.remove(&entry.key) {
                        let _ = worker.stop.send(true);
                    }
                    if let Ok(mut statuses) = ctx.statuses.lock() {
                        statuses.remove(&entry.key);
                    }
                }
            }
        }
    }
    for worker in running.values() {
        let _ = worker.stop.send(true);
    }
    while tasks.join_next().await.is_some() {}
}
