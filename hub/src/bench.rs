//! The pipeline benchmark: the hub measured against raw JetStream on the same `nats-server`, in
//! the same run, so the ratios hold on a noisy machine. `cargo bench -p sgd-hub --bench pipeline`
//! runs it (`-- --events N` to choose the size); a CI-sized smoke run is in the test suite.
//!
//! Phases: raw publish (async, `Nats-Msg-Id`, pipelined acks) and raw pull-consume (batches,
//! `AckPolicy::All`) of the same bodies; ingest (publish to `sgd.in.…` until every event is
//! projected: validator and projection runner together); rebuild (an empty read model replaying
//! the log). Peak RSS after each phase and the read model's size on disk are reported too.

use std::{
    collections::VecDeque,
    path::Path,
    time::{Duration, Instant},
};

use async_nats::{
    jetstream::{self, consumer::pull, stream},
    HeaderMap,
};
use bytes::Bytes;
use futures::StreamExt;
use serde::Serialize;

use crate::{nats_server, HubConfig};

/// Benchmark settings.
#[derive(Debug, Clone, Copy)]
pub struct BenchSettings {
    /// Events per phase.
    pub events: usize,
    /// Outstanding publish acknowledgements.
    pub publish_window: usize,
    /// Raw consumer batch size.
    pub consume_batch: usize,
}

impl Default for BenchSettings {
    fn default() -> Self {
        Self { events: 1_000_000, publish_window: 4096, consume_batch: 5000 }
    }
}

/// One measured figure.
#[derive(Debug, Clone, Serialize)]
pub struct Figure {
    /// What was measured.
    pub name: String,
    /// Its value.
    pub value: f64,
    /// Its unit.
    pub unit: String,
    /// Ratio to the raw JetStream limit it is compared with, when there is one.
    pub ratio: Option<f64>,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// Events per phase.
    pub events: usize,
    /// The `nats-server` version.
    pub nats_server: String,
    /// Every figure.
    pub figures: Vec<Figure>,
}

impl BenchReport {
    /// The report as an aligned text table.
    pub fn table(&self) -> String {
        let mut out = format!("sgd-hub pipeline benchmark: {} events, {}\n", self.events, self.nats_server);
        out.push_str(&format!("{:<44} {:>14} {:<10} {:>8}\n", "figure", "value", "unit", "× raw"));
        for f in &self.figures {
            let ratio = f.ratio.map(|r| format!("{r:.2}")).unwrap_or_default();
            out.push_str(&format!("{:<44} {:>14.1} {:<10} {:>8}\n", f.name, f.value, f.unit, ratio));
        }
        out
    }
}

/// Why the benchmark failed.
#[derive(Debug, thiserror::Error)]
#[error("benchmark: {0}")]
pub struct BenchError(pub String);

fn err(e: impl std::fmt::Display) -> BenchError {
    BenchError(e.to_string())
}

/// Runs every phase in `work_dir` and returns the report.
pub async fn run(settings: BenchSettings, work_dir: &Path) -> Result<BenchReport, BenchError> {
    let server = nats_server::NatsServer::start(nats_server::NatsServerOptions {
        store_dir: work_dir.join("nats"),
        port: None,
        extra_config: String::new(),
    })
    .map_err(err)?;
    let version = std::process::Command::new(nats_server::binary())
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let client = async_nats::connect(server.url()).await.map_err(err)?;
    let js = jetstream::new(client);

    let events = bodies(settings.events);
    let mut figures = Vec::new();

    // Raw limits.
    js.create_stream(stream::Config {
        name: "BENCH_RAW".into(),
        subjects: vec!["bench.raw.>".into()],
        storage: stream::StorageType::File,
        duplicate_window: Duration::from_secs(120),
        ..Default::default()
    })
    .await
    .map_err(err)?;
    let started = Instant::now();
    publish_all(
        &js,
        events.iter().map(|(subject, msg_id, body)| (format!("bench.raw.{subject}"), msg_id, body)),
        settings.publish_window,
    )
    .await?;
    let raw_publish = events.len() as f64 / started.elapsed().as_secs_f64();
    figures.push(figure("raw publish with Nats-Msg-Id", raw_publish, "events/s", None));
    let raw_consume = consume_all(&js, "BENCH_RAW", events.len(), settings.consume_batch).await?;
    figures.push(figure("raw pull consume, AckPolicy::All", raw_consume, "events/s", None));
    figures.push(figure("peak RSS after raw phases", peak_rss_mb(), "MB", None));

    // Ingest: publish to the ingress until the read model holds every event.
    let config = HubConfig {
        nats_url: server.url(),
        data_dir: work_dir.join("hub"),
        http_addr: "127.0.0.1:0".parse().map_err(err)?,
        ..Default::default()
    };
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let hub = crate::start(&config, shutdown.clone()).await.map_err(err)?;
    let model = hub.model.as_ref().map(|m| m.get()).ok_or_else(|| BenchError("no read model".into()))?;
    let task = tokio::spawn(hub.wait());
    let started = Instant::now();
    publish_all(
        &js,
        events.iter().map(|(subject, msg_id, body)| (subject.clone(), msg_id, body)),
        settings.publish_window,
    )
    .await?;
    wait_for_checkpoint(&model, events.len() as u64).await?;
    let ingest = events.len() as f64 / started.elapsed().as_secs_f64();
    figures.push(figure("ingest: published → validated → projected", ingest, "events/s", Some(ingest / raw_publish)));
    figures.push(figure("peak RSS after ingest (publisher and hub)", peak_rss_mb(), "MB", None));
    let disk = dir_size(&config.read_model_dir()) as f64;
    figures.push(figure("read model on disk per event", disk / events.len() as f64, "bytes", None));
    let _ = stop.send(true);
    let _ = task.await;

    // Rebuild: an empty read model replays the log.
    let rebuild_config = HubConfig { data_dir: work_dir.join("rebuild"), validator: false, api: false, ..config };
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let started = Instant::now();
    let hub = crate::start(&rebuild_config, shutdown).await.map_err(err)?;
    let model = hub.model.as_ref().map(|m| m.get()).ok_or_else(|| BenchError("no read model".into()))?;
    let task = tokio::spawn(hub.wait());
    wait_for_checkpoint(&model, events.len() as u64).await?;
    let rebuild = events.len() as f64 / started.elapsed().as_secs_f64();
    figures.push(figure("rebuild: log → empty read model", rebuild, "events/s", Some(rebuild / raw_consume)));
    figures.push(figure("peak RSS after rebuild", peak_rss_mb(), "MB", None));
    let _ = stop.send(true);
    let _ = task.await;

    Ok(BenchReport { events: events.len(), nats_server: version, figures })
}

fn figure(name: &str, value: f64, unit: &str, ratio: Option<f64>) -> Figure {
    Figure { name: name.into(), value, unit: unit.into(), ratio }
}

/// (ingress subject, msg id, body) of `n` simulator events (all 34 principals, six areas).
fn bodies(n: usize) -> Vec<(String, String, Bytes)> {
    use sgd_adapters::simulator::{Simulator, SimulatorConfig};
    Simulator::new(7, SimulatorConfig::default())
        .filter_map(|(source, draft)| sgd_adapters::publisher::encode(&source, &draft).ok())
        .take(n)
        .collect()
}

async fn publish_all<'a>(
    js: &jetstream::Context,
    messages: impl Iterator<Item = (String, &'a String, &'a Bytes)>,
    window: usize,
) -> Result<(), BenchError> {
    let mut pending = VecDeque::with_capacity(window);
    for (subject, msg_id, body) in messages {
        if pending.len() >= window {
            if let Some(ack) = pending.pop_front() {
                let ack: jetstream::context::PublishAckFuture = ack;
                ack.await.map_err(err)?;
            }
        }
        let mut headers = HeaderMap::new();
        headers.insert(crate::MSG_ID_HEADER, msg_id.as_str());
        pending.push_back(js.publish_with_headers(subject, headers, body.clone()).await.map_err(err)?);
    }
    for ack in pending {
        ack.await.map_err(err)?;
    }
    Ok(())
}

async fn consume_all(js: &jetstream::Context, stream: &str, n: usize, batch: usize) -> Result<f64, BenchError> {
    let stream = js.get_stream(stream).await.map_err(err)?;
    let consumer = stream
        .create_consumer(pull::Config {
            ack_policy: jetstream::consumer::AckPolicy::All,
            max_ack_pending: (batch * 4) as i64,
            ..Default::default()
        })
        .await
        .map_err(err)?;
    let started = Instant::now();
    let mut messages = consumer.stream().max_messages_per_batch(batch).messages().await.map_err(err)?;
    let mut seen = 0;
    while seen < n {
        let message = messages.next().await.ok_or_else(|| BenchError("consumer ended".into()))?.map_err(err)?;
        seen += 1;
        if seen % batch == 0 || seen == n {
            message.ack().await.map_err(err)?;
        }
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

async fn wait_for_checkpoint(model: &crate::read_model::ReadModel, sequence: u64) -> Result<(), BenchError> {
    let started = Instant::now();
    while model.checkpoint().map_err(err)? < sequence {
        if started.elapsed() > Duration::from_secs(3600) {
            return Err(BenchError("the read model did not catch up within an hour".into()));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

/// Peak resident set size of this process so far (VmHWM), in MB.
pub fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).map(str::to_string))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|kb| kb.parse::<f64>().ok()))
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

fn dir_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => dir_size(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A CI-sized smoke run so the benchmark cannot rot; no figure is asserted.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_benchmark_runs_end_to_end_on_a_small_load() {
        let dir = tempfile::tempdir().unwrap();
        let report =
            run(BenchSettings { events: 2000, publish_window: 256, consume_batch: 500 }, dir.path()).await.unwrap();
        assert_eq!(report.events, 2000);
        assert!(report.table().contains("ingest"));
        assert!(report.figures.iter().all(|f| f.value.is_finite()));
    }
}
