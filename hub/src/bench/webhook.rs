//! Webhook delivery: a receiver in the bench's process (plain HTTP on loopback, answering 204 at
//! once) subscribed to one principal's routed events; events routed to that principal only are
//! published (1) as fast as the publisher goes, for the delivery throughput, and (2) at a steady
//! 1,000/s, for publish → delivered latency (publish to the ingress until the receiver has the
//! event: validation, the log, routing, `SGD_ROUTED`, the deliverer, HTTP).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use async_nats::jetstream;
use bytes::Bytes;
use serde_json::json;

use super::{err, hub_process::BenchHub, publish, quantile, BenchError};

/// The principal whose events the subscription receives.
const RECIPIENT: &str = "1283";

/// What the phase measured.
pub struct Delivery {
    /// Events delivered per second in the burst.
    pub throughput: f64,
    /// Publish → delivered at the steady rate: median, ms.
    pub p50_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// The steady rate reached.
    pub rate: f64,
}

type Arrivals = Arc<Mutex<HashMap<String, Instant>>>;

/// Plan events whose one participant is [`RECIPIENT`], each routed to it once.
fn bodies(prefix: &str, n: usize) -> Vec<(String, String, Bytes)> {
    (0..n)
        .map(|i| {
            let id = format!("{prefix}-{i}");
            let event = json!({
                "specversion": "1.0", "id": id, "source": "/principals/12/systems/bench-webhook",
                "type": "se.sgd.plans.plan.created", "time": "2026-06-01T10:00:00+02:00",
                "subject": id, "datacontenttype": "application/json", "principal": "12",
                "data": {"plan_id": id, "kind": "sip", "person": format!("{:064x}", i + 1), "participants": [RECIPIENT]},
            });
            ("sgd.in.12.plans".to_string(), format!("/principals/12/systems/bench-webhook/{id}"), Bytes::from(event.to_string()))
        })
        .collect()
}

/// Runs the phase against `hub` (which must allow plain-HTTP loopback webhooks).
pub async fn measure(
    js: &jetstream::Context,
    hub: &BenchHub,
    burst: usize,
    steady_seconds: u64,
) -> Result<Delivery, BenchError> {
    let arrivals: Arrivals = Arc::default();
    let receiver = {
        let arrivals = arrivals.clone();
        axum::Router::new().route(
            "/hook",
            axum::routing::post(move |body: Bytes| {
                let arrivals = arrivals.clone();
                async move {
                    let now = Instant::now();
                    if let Ok(event) = serde_json::from_slice::<serde_json::Value>(&body) {
                        if let Some(id) = event["id"].as_str() {
                            if let Ok(mut arrivals) = arrivals.lock() {
                                arrivals.entry(id.to_string()).or_insert(now);
                            }
                        }
                    }
                    axum::http::StatusCode::NO_CONTENT
                }
            }),
        )
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(err)?;
    let url = format!("http://{}/hook", listener.local_addr().map_err(err)?);
    let server = tokio::spawn(async move { axum::serve(listener, receiver).await });
    let integrator = hub.token(crate::tokens::Role::Integrator, Some(RECIPIENT))?;
    let made = hub
        .http
        .post(format!("{}/api/v1/subscriptions", hub.base))
        .bearer_auth(&integrator)
        .json(&json!({"url": url, "areas": ["plans"]}))
        .send()
        .await
        .map_err(err)?;
    if made.status() != 201 {
        return Err(BenchError(format!("subscribing: {}: {}", made.status(), made.text().await.unwrap_or_default())));
    }

    // Throughput: a burst, published as fast as acknowledgements allow.
    let events = bodies("bench-webhook-burst", burst);
    let started = Instant::now();
    super::publish_all(js, events.iter().map(|(s, m, b)| (s.clone(), m, b)), 4096).await?;
    wait_for(&arrivals, burst, Duration::from_secs(600)).await?;
    let throughput = burst as f64 / started.elapsed().as_secs_f64();

    // Latency at 1,000/s.
    let rate = 1000u64;
    let steady = bodies("bench-webhook-steady", (rate * steady_seconds) as usize);
    let mut published = Vec::with_capacity(steady.len());
    // Acknowledgements are awaited aside: the client holds back publishes while too many wait.
    let (ack_tx, mut ack_rx) = tokio::sync::mpsc::unbounded_channel::<jetstream::context::PublishAckFuture>();
    let acks = tokio::spawn(async move {
        while let Some(ack) = ack_rx.recv().await {
            ack.await.map_err(err)?;
        }
        Ok::<(), BenchError>(())
    });
    let start = Instant::now();
    for (k, (subject, msg_id, body)) in steady.iter().enumerate() {
        tokio::time::sleep_until((start + Duration::from_secs_f64(k as f64 / rate as f64)).into()).await;
        published.push(Instant::now());
        let _ = ack_tx.send(publish(js, subject.clone(), msg_id, body).await?);
    }
    let reached = steady.len() as f64 / start.elapsed().as_secs_f64();
    drop(ack_tx);
    acks.await.map_err(err)??;
    wait_for(&arrivals, burst + steady.len(), Duration::from_secs(120)).await?;
    let mut latencies: Vec<f64> = {
        let arrivals = arrivals.lock().map_err(|_| BenchError("the receiver's lock is poisoned".into()))?;
        steady
            .iter()
            .zip(&published)
            .filter_map(|((_, _, body), at)| {
                let id = serde_json::from_slice::<serde_json::Value>(body).ok()?["id"].as_str()?.to_string();
                Some(arrivals.get(&id)?.duration_since(*at).as_secs_f64() * 1000.0)
            })
            .collect()
    };
    server.abort();
    latencies.sort_by(f64::total_cmp);
    Ok(Delivery { throughput, p50_ms: quantile(&latencies, 0.5), p99_ms: quantile(&latencies, 0.99), rate: reached })
}

async fn wait_for(arrivals: &Arrivals, n: usize, limit: Duration) -> Result<(), BenchError> {
    let started = Instant::now();
    loop {
        let have = arrivals.lock().map(|a| a.len()).unwrap_or(0);
        if have >= n {
            return Ok(());
        }
        if started.elapsed() > limit {
            return Err(BenchError(format!("the webhook received {have} of {n} events within {limit:?}")));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
