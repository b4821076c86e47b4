//! The pipeline benchmark: the hub measured against raw JetStream on the same `nats-server`, in
//! the same run, so the ratios hold on a noisy machine. `cargo bench -p sgd-hub --bench pipeline`
//! runs it (`-- --events N` to choose the size, `-- --scaling 100000,1000000` for the per-size
//! series); a CI-sized smoke run is in the test suite (`hub/tests/bench_smoke.rs`).
//!
//! The hub runs as its own `hub serve` process (so its memory is its own), with every projection.
//! Phases: raw publish (async, `Nats-Msg-Id`, pipelined acks) and raw pull-consume (batches,
//! `AckPolicy::All`) of the same bodies; ingest (publish to `sgd.in.…` until the hub's checkpoint
//! reaches the last event); latency (once the hub has settled, steady rates, publish → the
//! checkpoint `/readyz` reports);
//! webhook delivery (a burst to one subscription for throughput, then 1,000/s for publish →
//! delivered); queries (concurrent clients on goals, usage and the follow-up summary, then the same clients on
//! a floor server that only sends the hub's answers back from memory); rebuild (a second hub,
//! running the projection and the API only, with an empty read model replaying the log). The
//! hub's peak RSS is taken per phase (the peak is reset between phases through
//! `/proc/<pid>/clear_refs`).

mod floor;
mod hub_process;
mod latency;
pub mod queries;
mod webhook;

use std::{
    collections::VecDeque,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use async_nats::{
    jetstream::{self, consumer::pull, stream},
    HeaderMap,
};
use bytes::Bytes;
use futures::StreamExt;
use serde::Serialize;

pub use hub_process::{BenchHub, HubParts};

use crate::server::embedded_nats;

/// The figure with the read model's size per event at rest (the target's): after the hub's phases,
/// with the hub stopped.
pub const DISK_AT_REST: &str = "read model on disk per event, at rest";
/// The figure with the router's store (its state: open cases and units, and its checkpoint).
pub const ROUTING_AT_REST: &str = "routing store on disk, at rest";
/// The figure with the largest size per event the read model reached during ingest.
pub const DISK_LARGEST: &str = "read model on disk per event, largest during ingest";

/// Benchmark settings.
#[derive(Debug, Clone)]
pub struct BenchSettings {
    /// Events of the ingest and rebuild phases.
    pub events: usize,
    /// Outstanding publish acknowledgements.
    pub publish_window: usize,
    /// Raw consumer batch size.
    pub consume_batch: usize,
    /// The `hub` binary to run.
    pub hub_binary: PathBuf,
    /// Seconds of each steady rate in the latency phase (0 skips the phase).
    pub latency_seconds: u64,
    /// The steady rates of the latency phase, events per second.
    pub latency_rates: Vec<u64>,
    /// Seconds of the query phase (0 skips it).
    pub query_seconds: u64,
    /// Concurrent clients of the query phase.
    pub query_clients: usize,
    /// Events of the webhook phase's burst (0 skips the phase).
    pub webhook_events: usize,
    /// Seconds of the webhook phase's steady 1,000/s.
    pub webhook_seconds: u64,
}

impl BenchSettings {
    /// The full benchmark of issue 6 with `hub_binary`.
    pub fn new(hub_binary: PathBuf) -> Self {
        Self {
            events: 1_000_000,
            publish_window: 4096,
            consume_batch: 5000,
            hub_binary,
            latency_seconds: 20,
            latency_rates: vec![1000, 5000],
            query_seconds: 10,
            query_clients: 50,
            webhook_events: 20_000,
            webhook_seconds: 10,
        }
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
    /// Ratio to the raw limit it is compared with, when there is one: a rate to raw JetStream's
    /// (the higher the better), a query's p99 to the floor server's (how many times slower).
    pub ratio: Option<f64>,
    /// The target of issue 6, as text, when there is one.
    pub target: Option<String>,
    /// Whether the target is met, when there is one.
    pub met: Option<bool>,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// Events of the ingest and rebuild phases.
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
        out.push_str(&format!("{:<52} {:>12} {:<9} {:>6}  {}\n", "figure", "value", "unit", "× raw", "target"));
        for f in &self.figures {
            let ratio = f.ratio.map(|r| format!("{r:.2}")).unwrap_or_default();
            let target = match (&f.target, f.met) {
                (Some(t), Some(true)) => format!("{t} met"),
                (Some(t), _) => format!("{t} NOT MET"),
                _ => String::new(),
            };
            out.push_str(&format!("{:<52} {:>12.1} {:<9} {:>6}  {}\n", f.name, f.value, f.unit, ratio, target));
        }
        out
    }

    /// The figure named `name`.
    pub fn figure(&self, name: &str) -> Option<&Figure> {
        self.figures.iter().find(|f| f.name == name)
    }
}

/// Why the benchmark failed.
#[derive(Debug, thiserror::Error)]
#[error("benchmark: {0}")]
pub struct BenchError(pub String);

fn err(e: impl std::fmt::Display) -> BenchError {
    BenchError(e.to_string())
}

/// Collects figures, checking each against its target.
#[derive(Default)]
struct Figures(Vec<Figure>);

impl Figures {
    fn plain(&mut self, name: &str, value: f64, unit: &str) {
        self.0.push(Figure { name: name.into(), value, unit: unit.into(), ratio: None, target: None, met: None });
    }

    /// A rate compared with a raw rate: the target is a minimum ratio.
    fn ratio(&mut self, name: &str, value: f64, raw: f64, min_ratio: f64) {
        let ratio = value / raw;
        self.0.push(Figure {
            name: name.into(),
            value,
            unit: "events/s".into(),
            ratio: Some(ratio),
            target: Some(format!("≥ {min_ratio} × raw")),
            met: Some(ratio >= min_ratio),
        });
    }

    /// A figure with a maximum, beside the same figure of a raw floor (its ratio: how many times
    /// the floor's).
    fn at_most_against(&mut self, name: &str, value: f64, unit: &str, max: f64, raw: f64) {
        self.at_most(name, value, unit, max);
        if let Some(figure) = self.0.last_mut() {
            figure.ratio = Some(value / raw);
        }
    }

    /// A figure with a maximum.
    fn at_most(&mut self, name: &str, value: f64, unit: &str, max: f64) {
        self.0.push(Figure {
            name: name.into(),
            value,
            unit: unit.into(),
            ratio: None,
            target: Some(format!("≤ {max}")),
            met: Some(value <= max),
        });
    }
}

/// Runs every phase in `work_dir` and returns the report.
pub async fn run(settings: &BenchSettings, work_dir: &Path) -> Result<BenchReport, BenchError> {
    let server = embedded_nats::NatsServer::start(embedded_nats::NatsServerOptions {
        store_dir: work_dir.join("nats"),
        port: None,
        extra_config: String::new(),
    })
    .map_err(err)?;
    let version = std::process::Command::new(embedded_nats::binary())
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let client = async_nats::connect(server.url()).await.map_err(err)?;
    let js = jetstream::new(client);

    let extra = settings.latency_rates.iter().map(|r| *r as usize * settings.latency_seconds as usize).sum::<usize>();
    let mut events = simulator_bodies(settings.events + extra);
    let steady = events.split_off(settings.events);
    let mut figures = Figures::default();

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
    let server_cpu = CpuTime::of(server.pid());
    let started = Instant::now();
    publish_all(
        &js,
        events.iter().map(|(subject, msg_id, body)| (format!("bench.raw.{subject}"), msg_id, body)),
        settings.publish_window,
    )
    .await?;
    let raw_publish = events.len() as f64 / started.elapsed().as_secs_f64();
    figures.plain("raw publish with Nats-Msg-Id", raw_publish, "events/s");
    let raw_server_cpu = server_cpu.per_thousand(events.len());
    figures.plain(SERVER_CPU_RAW, raw_server_cpu, "ms");
    let raw_consume = consume_all(&js, "BENCH_RAW", events.len(), settings.consume_batch).await?;
    figures.plain("raw pull consume, AckPolicy::All", raw_consume, "events/s");
    // The raw copy is not needed any more; the server should not carry it through the hub's phases.
    js.delete_stream("BENCH_RAW").await.map_err(err)?;

    // Ingest: publish to the ingress until the hub's read model holds every event.
    let hub = BenchHub::start(&settings.hub_binary, &server.url(), &work_dir.join("hub"), HubParts::All).await?;
    let disk_peak = DiskPeak::watch(hub.data_dir());
    let (server_cpu, hub_cpu) = (CpuTime::of(server.pid()), CpuTime::of(hub.pid()?));
    let started = Instant::now();
    publish_all(
        &js,
        events.iter().map(|(subject, msg_id, body)| (subject.clone(), msg_id, body)),
        settings.publish_window,
    )
    .await?;
    tokio::select! {
        caught_up = hub.wait_for_checkpoint(events.len() as u64) => caught_up?,
        refused = dead_letters_appear(&js) => return Err(refused),
    }
    let ingest = events.len() as f64 / started.elapsed().as_secs_f64();
    figures.ratio("ingest: published → validated → projected", ingest, raw_publish, 0.35);
    // Throughput above moves with whatever else the machine runs; the CPU each process spent per
    // event does much less, and says whose work bounds ingest (docs/performance.md, "Ingest").
    let ingest_server_cpu = server_cpu.per_thousand(events.len());
    figures.plain(SERVER_CPU_INGEST, ingest_server_cpu, "ms");
    if let Some(figure) = figures.0.last_mut() {
        figure.ratio = Some(raw_server_cpu / ingest_server_cpu);
    }
    figures.plain("hub CPU per 1000 events, ingest", hub_cpu.per_thousand(events.len()), "ms");
    figures.at_most("hub peak RSS, ingest", hub.peak_rss_mb()?, "MB", 128.0);
    figures.plain(DISK_LARGEST, disk_peak.stop().await as f64 / events.len() as f64, "bytes");

    // Latency at steady rates, on the same hub, once it has settled: the ingest leaves work behind
    // it (the router's backlog, the views' snapshot, hand-overs to disk), during which the first
    // seconds at 1,000/s had a p99 twice that of the rest (docs/performance.md, "Latency").
    if settings.latency_seconds > 0 {
        figures.plain(SETTLED, settle(hub.pid()?).await, "s");
    }
    let mut offset = 0;
    for rate in settings.latency_rates.iter().copied().filter(|_| settings.latency_seconds > 0) {
        hub.reset_peak_rss();
        let n = rate as usize * settings.latency_seconds as usize;
        let slice = &steady[offset..offset + n];
        offset += n;
        let measured = latency::measure(&js, &hub, slice, rate).await?;
        // For reading beside the hub's log (kept with SGD_BENCH_KEEP_DIR): when the slow ones came.
        let series: String = measured.series.iter().map(|(at, ms)| format!("{at:.4},{ms:.3}\n")).collect();
        std::fs::write(work_dir.join(format!("latency-{rate}.csv")), format!("published_unix_s,latency_ms\n{series}"))
            .map_err(err)?;
        let max_p99 = if rate <= 1000 { 10.0 } else { 50.0 };
        figures.plain(&format!("latency at {rate}/s: p50"), measured.p50_ms, "ms");
        figures.at_most(&format!("latency at {rate}/s: p99"), measured.p99_ms, "ms", max_p99);
        figures.plain(&format!("latency at {rate}/s: max"), measured.max_ms, "ms");
        figures.plain(&format!("latency at {rate}/s: rate reached"), measured.rate, "events/s");
        figures.at_most(&format!("hub peak RSS, latency at {rate}/s"), hub.peak_rss_mb()?, "MB", 128.0);
    }

    // Webhook delivery to one subscription.
    let mut webhook_logged = 0;
    if settings.webhook_events > 0 {
        hub.reset_peak_rss();
        let measured = webhook::measure(&js, &hub, settings.webhook_events, settings.webhook_seconds.max(1)).await?;
        figures.plain("webhook: published → delivered, burst", measured.throughput, "events/s");
        if let Some(figure) = figures.0.last_mut() {
            figure.ratio = Some(measured.throughput / raw_publish);
        }
        figures.plain("webhook at 1000/s: publish → delivered p50", measured.p50_ms, "ms");
        figures.plain("webhook at 1000/s: publish → delivered p99", measured.p99_ms, "ms");
        figures.plain("webhook at 1000/s: rate reached", measured.rate, "events/s");
        figures.at_most("hub peak RSS, webhook", hub.peak_rss_mb()?, "MB", 128.0);
        webhook_logged = settings.webhook_events + (1000 * settings.webhook_seconds.max(1)) as usize;
    }

    // Queries under concurrent clients.
    if settings.query_seconds > 0 {
        hub.reset_peak_rss();
        let measured =
            // Plain answers: on the hub's own two cores, the clients' unzipping cost more than the
            // bytes it saved (docs/performance.md, "Queries").
            queries::measure(
                &hub.base,
                &hub.analyst,
                settings.query_clients,
                Duration::from_secs(settings.query_seconds),
                false,
            )
            .await?;
        let peak_rss = hub.peak_rss_mb()?;
        // The floor: the same clients, the same answers, sent back from memory by a server that
        // does nothing else (see bench/floor.rs).
        let paths: Vec<&str> = queries::QUERIES.iter().map(|(_, path)| *path).collect();
        let floor = floor::FloorServer::start(floor::answers_of(&hub.base, &hub.analyst, &paths).await?)?;
        let floor_measured = queries::measure(
            &floor.base,
            "not checked",
            settings.query_clients,
            Duration::from_secs(settings.query_seconds),
            false,
        )
        .await?;
        // Stopping waits for the floor's connections to close (up to 10 s): not on a worker.
        tokio::task::spawn_blocking(move || floor.stop()).await.map_err(err)?;
        for (q, raw) in measured.iter().zip(&floor_measured) {
            figures.plain(&format!("query {}: p50", q.name), q.p50_ms, "ms");
            figures.at_most_against(&format!("query {}: p99", q.name), q.p99_ms, "ms", 10.0, raw.p99_ms);
            figures.plain(&format!("query {}: requests/s", q.name), q.per_second, "req/s");
        }
        for q in &floor_measured {
            figures.plain(&format!("floor {}: p50", q.name), q.p50_ms, "ms");
            figures.plain(&format!("floor {}: p99", q.name), q.p99_ms, "ms");
            figures.plain(&format!("floor {}: requests/s", q.name), q.per_second, "req/s");
        }
        figures.at_most("hub peak RSS, queries", peak_rss, "MB", 128.0);
    }
    // The read model at rest: while the hub runs, its views' files hold, for a moment, the snapshot
    // being written beside the one it replaces and the journal since (views_store.rs).
    let data_dir = hub.data_dir();
    hub.stop().await?;
    let log_length = (events.len() + offset + webhook_logged) as u64;
    figures.at_most(DISK_AT_REST, read_model_size(&data_dir) as f64 / log_length as f64, "bytes", 150.0);
    figures.plain(ROUTING_AT_REST, dir_size(&data_dir.join("routing")) as f64 / 1e6, "MB");

    // Rebuild: a second hub with an empty read model replays the log.
    let started = Instant::now();
    let rebuilt =
        BenchHub::start(&settings.hub_binary, &server.url(), &work_dir.join("rebuild"), HubParts::ReadModel).await?;
    rebuilt.wait_for_checkpoint(log_length).await?;
    let rebuild = log_length as f64 / started.elapsed().as_secs_f64();
    figures.ratio("rebuild: log → empty read model", rebuild, raw_consume, 0.6);
    figures.at_most("hub peak RSS, rebuild", rebuilt.peak_rss_mb()?, "MB", 128.0);
    rebuilt.stop().await?;

    Ok(BenchReport { events: events.len(), nats_server: version, figures: figures.0 })
}

/// nats-server CPU time per 1,000 events while the bench publishes to a plain stream.
pub const SERVER_CPU_RAW: &str = "nats-server CPU per 1000 events, raw publish";
/// nats-server CPU time per 1,000 events during ingest; its × raw is raw's figure over this one.
pub const SERVER_CPU_INGEST: &str = "nats-server CPU per 1000 events, ingest";

/// The CPU time (user + system) a process has used since [`CpuTime::of`].
struct CpuTime {
    pid: u32,
    start: Option<f64>,
}

impl CpuTime {
    fn of(pid: u32) -> Self {
        Self { pid, start: cpu_seconds(pid) }
    }

    /// Milliseconds of CPU per 1,000 of `events` since the start (NaN when `/proc` cannot tell).
    fn per_thousand(&self, events: usize) -> f64 {
        match (self.start, cpu_seconds(self.pid)) {
            (Some(start), Some(now)) => (now - start) * 1000.0 * 1000.0 / events.max(1) as f64,
            _ => f64::NAN,
        }
    }
}

/// The figure with how long the hub took to settle after the ingest.
pub const SETTLED: &str = "hub settled after ingest (CPU < 15% of a core for 1 s)";

/// Waits until process `pid` uses less than 15% of a core for a second (two minutes at most: the
/// phases then start anyway, and the figure says so); returns the seconds waited.
async fn settle(pid: u32) -> f64 {
    let started = Instant::now();
    let (step, mut quiet) = (Duration::from_millis(250), 0);
    let mut last = cpu_seconds(pid);
    while quiet < 4 && started.elapsed() < Duration::from_secs(120) {
        tokio::time::sleep(step).await;
        let now = cpu_seconds(pid);
        let used = match (last, now) {
            (Some(last), Some(now)) => (now - last) / step.as_secs_f64(),
            // `/proc` cannot tell: nothing to wait for.
            _ => 0.0,
        };
        quiet = if used < 0.15 { quiet + 1 } else { 0 };
        last = now;
    }
    started.elapsed().as_secs_f64()
}

/// User + system CPU seconds of a process (Linux `/proc/<pid>/stat`, fields 14 and 15).
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: count after its end.
    let fields: Vec<&str> = stat.get(stat.rfind(')')? + 1..)?.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    // SAFETY: sysconf reads a constant of the running system.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    (per_second > 0.0).then(|| ticks / per_second)
}

/// Returns (as the error to report) once the validator has refused any event: the ingest would
/// otherwise wait for events that never reach the log.
async fn dead_letters_appear(js: &jetstream::Context) -> BenchError {
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let refused = match js.get_stream(crate::log::streams::DLQ).await {
            Ok(stream) => stream.cached_info().state.messages,
            Err(_) => 0, // not created yet
        };
        if refused > 0 {
            return BenchError(format!(
                "{refused} generated events were refused (dead-lettered): the bench's load is wrong; see `hub dlq list`"
            ));
        }
    }
}

/// Simulated time between scenarios: the simulator's default (60 s), or less for loads that would
/// otherwise reach beyond what the validator accepts (`time` at most 366 days after its clock; a
/// scenario is ~3 events, so 5,000,000 events at 60 s would span over three years).
fn spacing(n: usize) -> chrono::Duration {
    const SPAN_SECONDS: usize = 300 * 86_400;
    const EVENTS_PER_SCENARIO: usize = 3;
    let fitting = SPAN_SECONDS * EVENTS_PER_SCENARIO / n.max(1);
    chrono::Duration::seconds(fitting.clamp(1, 60) as i64)
}

/// (ingress subject, msg id, body) of `n` simulator events (all 34 principals, six areas): the
/// bench's load, also used by `examples/views_footprint.rs`.
pub fn simulator_bodies(n: usize) -> Vec<(String, String, Bytes)> {
    simulator_stream(n).collect()
}

/// The events of [`simulator_bodies`], made one at a time (for loads too large to hold).
pub fn simulator_stream(n: usize) -> impl Iterator<Item = (String, String, Bytes)> {
    use sgd_adapters::simulator::{Simulator, SimulatorConfig};
    Simulator::new(7, SimulatorConfig { spacing: spacing(n), ..SimulatorConfig::default() })
        .filter_map(|(source, draft)| sgd_adapters::publisher::encode(&source, &draft).ok())
        .take(n)
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
        pending.push_back(publish(js, subject, msg_id, body).await?);
    }
    for ack in pending {
        ack.await.map_err(err)?;
    }
    Ok(())
}

/// Publishes one body with its `Nats-Msg-Id`, not waiting for the acknowledgement.
async fn publish(
    js: &jetstream::Context,
    subject: String,
    msg_id: &str,
    body: &Bytes,
) -> Result<jetstream::context::PublishAckFuture, BenchError> {
    let mut headers = HeaderMap::new();
    headers.insert(crate::log::streams::MSG_ID_HEADER, msg_id);
    js.publish_with_headers(subject, headers, body.clone()).await.map_err(err)
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

/// The largest size a directory reached while it was watched (sampled every 200 ms).
struct DiskPeak {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<u64>,
}

impl DiskPeak {
    fn watch(dir: PathBuf) -> Self {
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let mut largest = 0;
            loop {
                let size = {
                    let dir = dir.clone();
                    tokio::task::spawn_blocking(move || read_model_size(&dir)).await.unwrap_or(0)
                };
                largest = largest.max(size);
                tokio::select! {
                    _ = &mut stopped => return largest,
                    _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                }
            }
        });
        Self { stop, task }
    }

    /// Stops watching; the largest size seen, in bytes.
    async fn stop(self) -> u64 {
        let _ = self.stop.send(());
        self.task.await.unwrap_or(0)
    }
}

/// The value at quantile `q` (0..=1) of sorted `values`.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

/// The read model's size in a hub's data directory: everything but the router's store
/// (`routing/`, measured apart as [`ROUTING_AT_REST`]).
fn read_model_size(data_dir: &Path) -> u64 {
    dir_size(data_dir).saturating_sub(dir_size(&data_dir.join("routing")))
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

    #[test]
    fn large_loads_are_spaced_to_stay_within_what_the_validator_accepts() {
        assert_eq!(spacing(1_000_000), chrono::Duration::seconds(60));
        let five_million = spacing(5_000_000);
        assert!(five_million < chrono::Duration::seconds(60));
        // 5,000,000 events in ~1.7 million scenarios end within the 300 days.
        assert!(five_million * (5_000_000 / 3) <= chrono::Duration::days(300));
    }

    #[test]
    fn quantiles_pick_from_sorted_values() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&values, 0.5), 51.0);
        assert_eq!(quantile(&values, 0.99), 99.0);
        assert_eq!(quantile(&values, 1.0), 100.0);
        assert!(quantile(&[], 0.5).is_nan());
    }

    #[test]
    fn a_target_not_met_says_so_in_the_table() {
        let mut figures = Figures::default();
        figures.ratio("ingest", 10.0, 100.0, 0.35);
        figures.at_most("p99", 5.0, "ms", 10.0);
        let report = BenchReport { events: 1, nats_server: "x".into(), figures: figures.0 };
        let table = report.table();
        assert!(table.contains("≥ 0.35 × raw NOT MET"), "{table}");
        assert!(table.contains("≤ 10 met"), "{table}");
    }
}
