//! `adapter`: publishes a local system's native input (FHIR R4 JSON, CSV) to sgd-hub for one area,
//! through the durable outbox; `adapter simulate` produces realistic load for all 34 principals.
//! Thin: parse the command line, set up tracing, call the library.

use std::{path::PathBuf, sync::Arc, time::Duration};

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use sgd_adapters::{
    ingest::{Area, Ingestor},
    outbox::{Outbox, OutboxPublisher},
    pseudonym::Pseudonymiser,
    publisher, simulator, SourceSystem,
};

#[derive(Parser)]
#[command(name = "adapter", version, about = "Publishes a local system's events to sgd-hub")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// NPÖ: FHIR Consent, AuditEvent; CSV of role activations.
    Npo(AreaArgs),
    /// SDK: FHIR Communication; CSV of function addresses.
    Sdk(AreaArgs),
    /// Mina Planer: FHIR CarePlan, Encounter.
    Plans(AreaArgs),
    /// Decision support: FHIR Observation (vital signs panel, NEWS2), RiskAssessment.
    Decision(AreaArgs),
    /// Deviations: FHIR AdverseEvent; CSV of historical deviations.
    Deviation(AreaArgs),
    /// Video: FHIR Appointment.
    Video(AreaArgs),
    /// Realistic, seeded load for all 34 principals across all six areas.
    Simulate(SimulateArgs),
}

#[derive(Args)]
struct Connection {
    /// NATS URL of the hub.
    #[arg(long, env = "HUB_NATS_URL", default_value = "nats://127.0.0.1:4222")]
    nats_url: String,
    /// Directory of the durable outbox (one per running adapter).
    #[arg(long, env = "SGD_OUTBOX_DIR", default_value = "adapter-outbox")]
    outbox_dir: PathBuf,
    /// Seconds to wait for the outbox to drain before exiting (file input).
    #[arg(long, default_value_t = 300)]
    drain_timeout: u64,
}

#[derive(Args)]
struct AreaArgs {
    /// The principal code (12 Region Skåne, 1214…1293 the municipalities).
    #[arg(long)]
    principal: String,
    /// The local system's name (the events' source is /principals/<principal>/systems/<name>).
    #[arg(long)]
    source_system: String,
    #[command(flatten)]
    connection: Connection,
    /// The pseudonym key file (needed for FHIR input).
    #[arg(long, env = "SGD_PSEUDONYM_KEY_FILE")]
    key_file: Option<PathBuf>,
    /// A file or a directory of files to publish, then exit (.csv is CSV, anything else FHIR JSON).
    #[arg(long, conflicts_with_all = ["watch", "listen"], required_unless_present_any = ["watch", "listen"])]
    file: Option<PathBuf>,
    /// A directory to watch: files renamed into it are published and moved to .done/ or .failed/.
    #[arg(long, conflicts_with = "listen")]
    watch: Option<PathBuf>,
    /// An address for the HTTP webhook (POST / or /fhir with a FHIR resource or Bundle, or text/csv).
    #[arg(long)]
    listen: Option<std::net::SocketAddr>,
    /// Seconds between heartbeats (0: none).
    #[arg(long, default_value_t = 60)]
    heartbeat_s: u64,
}

#[derive(Args)]
struct SimulateArgs {
    #[command(flatten)]
    connection: Connection,
    /// Random seed: the same seed gives the same events.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Events to produce (0: until stopped).
    #[arg(long, default_value_t = 10_000)]
    events: u64,
    /// Events per second (0: as fast as possible).
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// Publish typed events directly instead of native inputs through the real mappings.
    #[arg(long)]
    direct: bool,
    /// Simulated days the load spans (event times).
    #[arg(long, default_value_t = 30)]
    days: u32,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,async_nats=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(Cli::parse()).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("adapter: {e:#}");
            std::process::ExitCode::from(1)
        }
    }
}

async fn connect(url: &str) -> anyhow::Result<async_nats::jetstream::Context> {
    let client = async_nats::ConnectOptions::new()
        .name("sgd-adapter")
        .retry_on_initial_connect()
        .max_reconnects(None)
        .connect(url)
        .await
        .with_context(|| format!("connecting to {url}"))?;
    Ok(async_nats::jetstream::new(client))
}

async fn shutdown_signal() -> tokio::sync::watch::Receiver<bool> {
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        let _ = tx.send(true);
    });
    rx
}

async fn run(cli: Cli) -> anyhow::Result<std::process::ExitCode> {
    let (area, args) = match cli.command {
        Command::Npo(a) => (Area::Npo, a),
        Command::Sdk(a) => (Area::Sdk, a),
        Command::Plans(a) => (Area::Plans, a),
        Command::Decision(a) => (Area::Decision, a),
        Command::Deviation(a) => (Area::Deviation, a),
        Command::Video(a) => (Area::Video, a),
        Command::Simulate(s) => return simulate(s).await,
    };
    let source = SourceSystem::new(&args.principal, &args.source_system)?;
    let pseudonymiser = match &args.key_file {
        Some(path) => Some(Pseudonymiser::from_key_file(path)?),
        None => {
            tracing::warn!("no pseudonym key (SGD_PSEUDONYM_KEY_FILE): FHIR input will be refused");
            None
        }
    };
    let outbox = Outbox::open(&args.connection.outbox_dir)?;
    let js = connect(&args.connection.nats_url).await?;
    let publisher = OutboxPublisher::new(js, source.clone(), outbox);
    let left = publisher.outbox().len();
    if left > 0 {
        tracing::info!(left, "resuming: events left in the outbox are sent first");
    }
    let ingestor = Arc::new(Ingestor::new(area, pseudonymiser, publisher));
    let shutdown = shutdown_signal().await;
    if args.heartbeat_s > 0 {
        let ingestor = ingestor.clone();
        let name = format!("{}-{:?}", args.source_system, area).to_lowercase();
        let every = Duration::from_secs(args.heartbeat_s);
        tokio::spawn(async move {
            loop {
                if let Err(e) = ingestor.publisher().enqueue(&publisher::heartbeat(&name)).await {
                    tracing::warn!(error = %e, "heartbeat not enqueued");
                }
                tokio::time::sleep(every).await;
            }
        });
    }
    let drain = Duration::from_secs(args.connection.drain_timeout);
    if let Some(path) = &args.file {
        let results = ingestor.ingest_path(path).await;
        let refused = results.iter().filter(|(_, r)| r.is_err()).count();
        let unmapped: usize = results.iter().filter_map(|(_, r)| r.as_ref().ok()).map(|r| r.errors.len()).sum();
        let enqueued: usize = results.iter().filter_map(|(_, r)| r.as_ref().ok()).map(|r| r.enqueued).sum();
        ingestor.publisher().wait_empty(drain).await?;
        eprintln!("{enqueued} events published; {unmapped} resources not mapped; {refused} files refused");
        let code = if refused + unmapped > 0 { 2 } else { 0 };
        return Ok(std::process::ExitCode::from(code));
    }
    if let Some(dir) = &args.watch {
        tracing::info!(dir = %dir.display(), "watching");
        ingestor.watch(dir, shutdown).await?;
    } else if let Some(addr) = args.listen {
        let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("binding {addr}"))?;
        tracing::info!(addr = %listener.local_addr()?, "webhook listening");
        let mut stop = shutdown.clone();
        axum::serve(listener, ingestor.clone().router())
            .with_graceful_shutdown(async move {
                let _ = stop.wait_for(|s| *s).await;
            })
            .await?;
    }
    let _ = ingestor.publisher().wait_empty(Duration::from_secs(5)).await;
    Ok(std::process::ExitCode::SUCCESS)
}

async fn simulate(args: SimulateArgs) -> anyhow::Result<std::process::ExitCode> {
    let js = connect(&args.connection.nats_url).await?;
    let config = simulator::SimulatorConfig { days: args.days, native: !args.direct, ..Default::default() };
    let shutdown = shutdown_signal().await;
    let limit = (args.events > 0).then_some(args.events);
    let report = simulator::run(js, &args.connection.outbox_dir, args.seed, config, limit, args.rate, shutdown).await?;
    eprintln!("{report}");
    Ok(std::process::ExitCode::SUCCESS)
}
