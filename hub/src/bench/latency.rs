//! Publish → visible latency at a steady rate. Events are published at fixed times (`k / rate`
//! after the start, acks awaited aside); a poller asks `/readyz` every millisecond for the
//! checkpoint the API serves. Event `k` of the phase is visible at the first answer whose
//! checkpoint reaches the log's length before the phase plus `k + 1` (one validator keeps the
//! publish order). A reading is late by at most one poll interval plus one round trip.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use async_nats::jetstream;
use bytes::Bytes;
use tokio::sync::Mutex;

use super::{err, hub_process::BenchHub, publish, quantile, BenchError};

/// How often the poller asks for the checkpoint.
const POLL_EVERY: Duration = Duration::from_millis(1);

/// What a steady-rate run measured.
pub struct Latency {
    /// Median, milliseconds.
    pub p50_ms: f64,
    /// 99th percentile, milliseconds.
    pub p99_ms: f64,
    /// Largest, milliseconds.
    pub max_ms: f64,
    /// The publish rate actually reached.
    pub rate: f64,
    /// Each event's publish time (Unix seconds) and latency (milliseconds).
    pub series: Vec<(f64, f64)>,
}

/// Publishes `events` at `rate` per second and measures when each becomes visible in the API.
pub async fn measure(
    js: &jetstream::Context,
    hub: &BenchHub,
    events: &[(String, String, Bytes)],
    rate: u64,
) -> Result<Latency, BenchError> {
    let base = hub.checkpoint().await?;
    let target = base + events.len() as u64;
    let samples: Arc<Mutex<Vec<(Instant, u64)>>> = Arc::default();
    let poller = {
        let samples = samples.clone();
        let (http, url, token) = (hub.http.clone(), format!("{}/readyz", hub.base), hub.operator.clone());
        tokio::spawn(async move {
            // Every millisecond rather than back to back: polling flat out, the bench process
            // alone used 0.3–0.4 of a core at 1,000/s (sampled), loading what it measured.
            let mut every = tokio::time::interval(POLL_EVERY);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                let answer = http.get(&url).bearer_auth(&token).send().await.map_err(err)?;
                let body: serde_json::Value = answer.json().await.map_err(err)?;
                let checkpoint = body["checkpoint"].as_u64().unwrap_or(0);
                samples.lock().await.push((Instant::now(), checkpoint));
                if checkpoint >= target {
                    return Ok::<(), BenchError>(());
                }
            }
        })
    };
    let (ack_tx, mut ack_rx) = tokio::sync::mpsc::unbounded_channel::<jetstream::context::PublishAckFuture>();
    let acks = tokio::spawn(async move {
        while let Some(ack) = ack_rx.recv().await {
            ack.await.map_err(err)?;
        }
        Ok::<(), BenchError>(())
    });
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let started = Instant::now();
    let started_unix = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_err(err)?.as_secs_f64();
    let mut published_at = Vec::with_capacity(events.len());
    for (k, (subject, msg_id, body)) in events.iter().enumerate() {
        let due = started + interval * k as u32;
        tokio::time::sleep_until(due.into()).await;
        published_at.push(Instant::now());
        let ack = publish(js, subject.clone(), msg_id, body).await?;
        let _ = ack_tx.send(ack);
    }
    let reached = events.len() as f64 / started.elapsed().as_secs_f64();
    drop(ack_tx);
    acks.await.map_err(err)??;
    tokio::time::timeout(Duration::from_secs(120), poller)
        .await
        .map_err(|_| BenchError(format!("the hub did not reach checkpoint {target} within 2 min")))?
        .map_err(err)??;

    let samples = samples.lock().await;
    let series: Vec<(f64, f64)> = published_at
        .iter()
        .enumerate()
        .map(|(k, at)| {
            let needed = base + k as u64 + 1;
            let first = samples.partition_point(|(_, checkpoint)| *checkpoint < needed);
            let seen = samples.get(first).map(|(when, _)| *when).unwrap_or_else(Instant::now);
            (
                started_unix + at.duration_since(started).as_secs_f64(),
                seen.saturating_duration_since(*at).as_secs_f64() * 1000.0,
            )
        })
        .collect();
    let mut latencies: Vec<f64> = series.iter().map(|(_, ms)| *ms).collect();
    latencies.sort_by(f64::total_cmp);
    Ok(Latency {
        p50_ms: quantile(&latencies, 0.5),
        p99_ms: quantile(&latencies, 0.99),
        max_ms: latencies.last().copied().unwrap_or(f64::NAN),
        rate: reached,
        series,
    })
}
