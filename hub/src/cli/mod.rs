//! The `hub` command line: parses arguments, sets up logging, calls the library. The operator
//! commands that talk to a live hub's API are in their own modules.
//!
//! - [`client`]: the hub's API as the operator commands use it.
//! - [`commands`]: `hub tail|status|dlq|rebuild`, printed for people or, with `--json`, programs.
//! - [`subscriptions`]: `hub subscription …`, webhook subscriptions through the API.

pub mod client;
pub mod commands;
pub mod subscriptions;

use std::{net::SocketAddr, path::PathBuf, process::ExitCode};

use clap::{Args, Parser, Subcommand};
use tokio::sync::watch;

use crate::{
    config::{HubConfig, LogFormat},
    telemetry::LogLines,
    tokens::Role,
};

/// sgd-hub: the event-sourced integration hub for Skåne's shared digital services.
#[derive(Debug, Parser)]
#[command(name = "hub", version, about)]
pub struct Cli {
    /// Log format.
    #[arg(long, global = true, env = "HUB_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the validator, the projection runner and the API.
    Serve(ServeArgs),
    /// Start a hub with its own nats-server (unless --nats-url is given) and a sample of every
    /// event type; print the URL and an analyst token.
    Demo(DemoArgs),
    /// Check event files (a CloudEvent or an array of them per file) offline.
    Validate {
        /// The files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Manage API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Configuration helpers.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Follow the log (or the dead letters) live: one line per event (time, principal, type,
    /// subject), or the raw CloudEvent with --json. Talks to NATS.
    Tail(TailArgs),
    /// Dead letters: list, show, replay after a fix. Talks to the hub's API (operator token).
    #[command(subcommand)]
    Dlq(DlqCommand),
    /// Rebuild the read model from the log beside the served one, with a progress bar, and swap
    /// when it has caught up (the API keeps answering meanwhile); --check compares instead.
    Rebuild(RebuildArgs),
    /// Stream sizes, validator and projection lag, rates, dead letters by reason, adapters'
    /// heartbeats. Talks to the hub's API (operator token).
    Status {
        /// How to reach the hub's API.
        #[command(flatten)]
        api: ApiArgs,
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
        /// Print again every this long (e.g. 5s).
        #[arg(long, value_parser = humantime::parse_duration)]
        watch: Option<std::time::Duration>,
    },
    /// Write a nats-server configuration with one nkey user per principal's adapter (publish only
    /// to sgd.in.<principal>.>) and one for the hub; anonymous clients cannot connect.
    NatsConfig {
        /// Directory for nats-server.conf and seeds/ (seeds are kept and reused).
        #[arg(long)]
        out: PathBuf,
        /// Client listen address.
        #[arg(long, default_value = "0.0.0.0:4222")]
        listen: String,
        /// JetStream storage directory.
        #[arg(long, default_value = "/var/lib/nats-server/jetstream")]
        store_dir: PathBuf,
        /// Server certificate (PEM) for TLS.
        #[arg(long)]
        tls_cert: Option<PathBuf>,
        /// Server key (PEM) for TLS.
        #[arg(long)]
        tls_key: Option<PathBuf>,
        /// Durable consumers each principal may name on SGD_ROUTED (to_<principal>_<n>) and
        /// on SGD_DLQ (dlq_<principal>_<n>).
        #[arg(long, default_value_t = 4)]
        consumers: usize,
    },
    /// Webhook subscriptions: add, list, pause, resume, remove; parked deliveries. Talks to the
    /// hub's API (an integrator token manages its own principal's; an operator's, all).
    #[command(subcommand)]
    Subscription(SubscriptionCommand),
}

/// `hub subscription …`
#[derive(Debug, Subcommand)]
pub enum SubscriptionCommand {
    /// Subscribe a URL to the events routed to a principal; prints the id and the secret.
    Add {
        /// How to reach the hub's API.
        #[command(flatten)]
        api: ApiArgs,
        /// The receiver (https).
        #[arg(long)]
        url: String,
        /// Only these areas (repeat or comma-separate).
        #[arg(long, value_delimiter = ',')]
        area: Vec<String>,
        /// Only these event types (repeat or comma-separate).
        #[arg(long = "type", value_delimiter = ',')]
        event_type: Vec<String>,
        /// The signing secret (whsec_…); made by the hub when absent.
        #[arg(long, env = "HUB_WEBHOOK_SECRET", hide_env_values = true)]
        secret: Option<String>,
        /// The principal (operator tokens only).
        #[arg(long)]
        principal: Option<String>,
    },
    /// The subscriptions with their delivery figures.
    List {
        /// How to reach the hub's API.
        #[command(flatten)]
        api: ApiArgs,
        /// JSON instead of lines.
        #[arg(long)]
        json: bool,
    },
    /// Stop delivering; routed events wait at the subscription's position.
    Pause {
        /// How to reach the hub's API.
        #[command(flatten)]
        api: ApiArgs,
        /// The subscription's id.
        id: String,
    },
    /// Deliver again from where it paused.
    Resume {
        /// How to reach the hub's API.
        #[command(flatten)]
        api: ApiArgs,
        /// The subscription's id.
        id: String,
    },
    /// Remove a subscription (its position and parked deliveries go with it).
    Remove {
        /// How to reach the hub's API.
        #[command(flatten)]
        api: ApiArgs,
        /// The subscription's id.
        id: String,
    },
    /// Deliveries parked after their last attempt.
    Parked {
        /// How to reach the hub's API.
        #[command(flatten)]
        api: ApiArgs,
        /// The subscription's id.
        id: String,
        /// JSON instead of lines.
        #[arg(long)]
        json: bool,
    },
    /// Deliver the parked ones again, oldest first; stops at the first failure.
    Replay {
        /// How to reach the hub's API.
        #[command(flatten)]
        api: ApiArgs,
        /// The subscription's id.
        id: String,
        /// At most this many (1–1000).
        #[arg(long, default_value_t = 1000)]
        limit: usize,
    },
}

/// How operator commands reach NATS.
#[derive(Debug, Args)]
pub struct NatsArgs {
    /// NATS server URL.
    #[arg(long, env = "HUB_NATS_URL", default_value = "nats://127.0.0.1:4222")]
    pub nats_url: String,
    /// An nkey seed file (when nats-server requires authentication).
    #[arg(long, env = "HUB_NATS_NKEY_FILE")]
    pub nats_nkey_file: Option<PathBuf>,
    /// The CA certificate (PEM) of nats-server's TLS certificate: connect over TLS only.
    #[arg(long, env = "HUB_NATS_CA_FILE")]
    pub nats_ca_file: Option<PathBuf>,
}

/// How operator commands reach the hub's API.
#[derive(Debug, Args)]
pub struct ApiArgs {
    /// The hub's API.
    #[arg(long = "api", env = "HUB_API_URL", default_value = "http://127.0.0.1:8080")]
    pub api_url: String,
    /// An operator token (or an integrator's, for `hub subscription` and `hub dlq list`).
    #[arg(long, env = "HUB_TOKEN", hide_env_values = true)]
    pub token: String,
}

impl ApiArgs {
    pub(crate) fn client(&self) -> crate::cli::client::ApiClient {
        crate::cli::client::ApiClient::new(&self.api_url, &self.token)
    }
}

/// Flags of `hub tail`.
#[derive(Debug, Args)]
pub struct TailArgs {
    #[command(flatten)]
    nats: NatsArgs,
    /// Only this area (npo, sdk, plans, decision, deviation, video, hub).
    #[arg(long)]
    area: Option<String>,
    /// Only this principal (its code, e.g. 1280).
    #[arg(long)]
    principal: Option<String>,
    /// Only this event type (e.g. se.sgd.npo.consent.given).
    #[arg(long = "type")]
    event_type: Option<String>,
    /// The dead letters instead of the log.
    #[arg(long)]
    dlq: bool,
    /// The copies routed to this principal (SGD_ROUTED) instead of the log.
    #[arg(long, value_name = "PRINCIPAL", conflicts_with_all = ["dlq", "principal"])]
    routed_to: Option<String>,
    /// Start at this stream sequence (default: only new messages).
    #[arg(long, conflicts_with = "since")]
    from_seq: Option<u64>,
    /// Start this long ago (e.g. 15m, 2h, 1d).
    #[arg(long)]
    since: Option<String>,
    /// Print each message's raw JSON (the CloudEvent, or the dead letter) instead of a line.
    #[arg(long)]
    json: bool,
    /// Stop after this many messages.
    #[arg(long)]
    limit: Option<usize>,
}

/// `hub dlq …`
#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// The newest dead letters, one line each.
    List {
        /// How to reach the hub's API.
        #[command(flatten)]
        api: ApiArgs,
        /// Only this reason code.
        #[arg(long)]
        reason: Option<String>,
        /// Only this principal.
        #[arg(long)]
        principal: Option<String>,
        /// How many (1–1000).
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// JSON instead of lines.
        #[arg(long)]
        json: bool,
    },
    /// One dead letter in full: every problem with its JSON path, the redacted body.
    Show {
        /// How to reach the hub's API.
        #[command(flatten)]
        api: ApiArgs,
        /// Its sequence in SGD_DLQ.
        seq: u64,
    },
    /// Send dead letters through validation again: one that passes lands in the log once and
    /// leaves the DLQ; one that fails again stays.
    Replay {
        /// How to reach the hub's API.
        #[command(flatten)]
        api: ApiArgs,
        /// Their sequences in SGD_DLQ.
        #[arg(required_unless_present = "reason", conflicts_with = "reason")]
        seq: Vec<u64>,
        /// Every dead letter refused for this reason.
        #[arg(long)]
        reason: Option<String>,
        /// At most this many for a reason.
        #[arg(long, default_value_t = 1000)]
        limit: usize,
    },
}

/// Flags of `hub rebuild`.
#[derive(Debug, Args)]
pub struct RebuildArgs {
    /// Compare a fresh rebuild with the served model instead of swapping (fails when they differ).
    #[arg(long)]
    check: bool,
    /// Rebuild a stopped hub's read model directly (e.g. one that will not open) instead of
    /// asking a running hub through its API.
    #[arg(long)]
    offline: bool,
    /// The hub's API (online).
    #[arg(long = "api", env = "HUB_API_URL", default_value = "http://127.0.0.1:8080")]
    api_url: String,
    /// An operator token (online).
    #[arg(long, env = "HUB_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// TOML configuration file (offline).
    #[arg(long, env = "HUB_CONFIG")]
    config: Option<PathBuf>,
    /// NATS server URL (offline).
    #[arg(long, env = "HUB_NATS_URL")]
    nats_url: Option<String>,
    /// The hub's nkey seed file (offline).
    #[arg(long, env = "HUB_NATS_NKEY_FILE")]
    nats_nkey_file: Option<PathBuf>,
    /// The CA certificate (PEM) of nats-server's TLS certificate (offline).
    #[arg(long, env = "HUB_NATS_CA_FILE")]
    nats_ca_file: Option<PathBuf>,
    /// The stopped hub's data directory (offline).
    #[arg(long, env = "HUB_DATA_DIR")]
    data_dir: Option<PathBuf>,
}

/// Flags of `hub serve`; each overrides the environment, which overrides the config file.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// TOML configuration file (see `hub config example`).
    #[arg(long, env = "HUB_CONFIG")]
    pub config: Option<PathBuf>,
    /// NATS server URL.
    #[arg(long, env = "HUB_NATS_URL")]
    pub nats_url: Option<String>,
    /// The hub's nkey seed file (when nats-server requires authentication).
    #[arg(long, env = "HUB_NATS_NKEY_FILE")]
    pub nats_nkey_file: Option<PathBuf>,
    /// The CA certificate (PEM) of nats-server's TLS certificate: connect over TLS only.
    #[arg(long, env = "HUB_NATS_CA_FILE")]
    pub nats_ca_file: Option<PathBuf>,
    /// Data directory (read model).
    #[arg(long, env = "HUB_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// HTTP API address.
    #[arg(long, env = "HUB_HTTP_ADDR")]
    pub http_addr: Option<SocketAddr>,
    /// The API's certificate chain (PEM); with --tls-key the API serves HTTPS only.
    #[arg(long, env = "HUB_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// The API's private key (PEM).
    #[arg(long, env = "HUB_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// Tokens file.
    #[arg(long, env = "HUB_TOKENS_FILE")]
    pub tokens_file: Option<PathBuf>,
    /// Do not run the validator in this process.
    #[arg(long)]
    pub no_validator: bool,
    /// Do not run the projection runner in this process.
    #[arg(long)]
    pub no_projector: bool,
    /// Do not serve the API from this process.
    #[arg(long)]
    pub no_api: bool,
    /// Do not run the router in this process.
    #[arg(long)]
    pub no_router: bool,
    /// Do not deliver webhooks from this process (another hub of the deployment does).
    #[arg(long)]
    pub no_webhooks: bool,
    /// Export the pipeline's spans to this OTLP/HTTP traces endpoint (e.g.
    /// http://collector:4318/v1/traces); else OTEL_EXPORTER_OTLP_TRACES_ENDPOINT; off when neither.
    #[arg(long, env = "HUB_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
}

impl ServeArgs {
    /// The configuration: file, then environment and flags.
    pub fn to_config(&self) -> Result<HubConfig, crate::config::ConfigError> {
        let mut config = match &self.config {
            Some(path) => HubConfig::from_file(path)?,
            None => HubConfig::default(),
        };
        if let Some(v) = &self.nats_url {
            config.nats_url = v.clone();
        }
        if let Some(v) = &self.nats_nkey_file {
            config.nats_nkey_file = Some(v.clone());
        }
        if let Some(v) = &self.nats_ca_file {
            config.nats_ca_file = Some(v.clone());
        }
        if let Some(v) = &self.tls_cert {
            config.tls_cert = Some(v.clone());
        }
        if let Some(v) = &self.tls_key {
            config.tls_key = Some(v.clone());
        }
        if let Some(v) = &self.data_dir {
            config.data_dir = v.clone();
        }
        if let Some(v) = self.http_addr {
            config.http_addr = v;
        }
        if let Some(v) = &self.tokens_file {
            config.tokens_file = Some(v.clone());
        }
        if let Some(v) = &self.otlp_endpoint {
            config.otlp_endpoint = Some(v.clone());
        }
        config.validator &= !self.no_validator;
        config.projector &= !self.no_projector;
        config.api &= !self.no_api;
        config.router &= !self.no_router;
        config.webhooks &= !self.no_webhooks;
        Ok(config.with_otlp_fallback(std::env::var(crate::config::OTEL_TRACES_ENDPOINT).ok()))
    }
}

/// Flags of `hub demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Use this NATS server instead of starting one.
    #[arg(long, env = "HUB_NATS_URL")]
    pub nats_url: Option<String>,
    /// The hub's nkey seed file, when that server requires one (`hub nats-config`).
    #[arg(long, env = "HUB_NATS_NKEY_FILE")]
    pub nats_nkey_file: Option<PathBuf>,
    /// Data directory.
    #[arg(long, env = "HUB_DATA_DIR", default_value = "demo-data")]
    pub data_dir: PathBuf,
    /// HTTP API address (a free port is used if it is taken).
    #[arg(long, env = "HUB_HTTP_ADDR", default_value = "127.0.0.1:8080")]
    pub http_addr: SocketAddr,
    /// Sample events per type and principal (eight principals, every type).
    #[arg(long, default_value_t = 2)]
    pub per_type: usize,
    /// Simulated events for all 34 principals (FHIR and CSV through the adapters' mappings).
    #[arg(long, default_value_t = 20_000)]
    pub simulated: u64,
}

/// `hub token …`
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token; its secret is the last line of output.
    Add {
        /// Its role.
        #[arg(long, value_enum)]
        role: Role,
        /// The principal an integrator token is bound to.
        #[arg(long)]
        principal: Option<String>,
        /// The tokens file.
        #[arg(long, env = "HUB_TOKENS_FILE")]
        tokens_file: PathBuf,
    },
    /// Revoke a token by its public id (`hub token list`): a running hub refuses it from its
    /// next request on.
    Revoke {
        /// The token's id.
        id: String,
        /// The tokens file.
        #[arg(long, env = "HUB_TOKENS_FILE")]
        tokens_file: PathBuf,
    },
    /// List the tokens: id, role, principal, when made (never a secret: only hashes are kept).
    List {
        /// The tokens file.
        #[arg(long, env = "HUB_TOKENS_FILE")]
        tokens_file: PathBuf,
    },
}

/// `hub config …`
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print a full, commented example configuration.
    Example,
}

/// Runs the command line; the binary's `main` calls only this.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // Only `hub serve` runs the pipeline, so only its configuration may turn the export of spans
    // on; the guard lives to the end of `main`, flushing the spans still queued at exit.
    let mut serve_config = match &cli.command {
        Command::Serve(args) => Some(args.to_config()),
        _ => None,
    };
    let otlp = serve_config.as_ref().and_then(|c| c.as_ref().ok()).and_then(|c| c.otlp_endpoint.clone());
    let lines = match cli.log_format {
        LogFormat::Text => LogLines::Text,
        LogFormat::Json => LogLines::Json,
    };
    let _telemetry = match crate::telemetry::init(lines, otlp.as_deref(), "sgd-hub") {
        Ok(telemetry) => telemetry,
        Err(e) => return fail(&e),
    };
    match cli.command {
        Command::Validate { files } => {
            let mut out = std::io::stdout().lock();
            match crate::offline::validate_files(&files, &mut out) {
                Ok(0) => ExitCode::SUCCESS,
                Ok(_) => ExitCode::from(1),
                Err(e) => fail(&e),
            }
        }
        Command::Token(TokenCommand::Add { role, principal, tokens_file }) => {
            match crate::tokens::add(&tokens_file, role, principal.as_deref()) {
                Ok((record, secret)) => {
                    println!("added {} token {} to {}", record.role.as_str(), record.id, tokens_file.display());
                    println!("{secret}");
                    ExitCode::SUCCESS
                }
                Err(e) => fail(&e),
            }
        }
        Command::Token(TokenCommand::Revoke { id, tokens_file }) => match crate::tokens::revoke(&tokens_file, &id) {
            Ok(record) => {
                println!("revoked {} token {} in {}", record.role.as_str(), record.id, tokens_file.display());
                ExitCode::SUCCESS
            }
            Err(e) => fail(&e),
        },
        Command::Token(TokenCommand::List { tokens_file }) => match crate::tokens::list(&tokens_file) {
            Ok(records) => {
                for record in records {
                    println!(
                        "{}\t{}\t{}\t{}",
                        record.id,
                        record.role.as_str(),
                        record.principal.as_deref().unwrap_or("-"),
                        record.created_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                    );
                }
                ExitCode::SUCCESS
            }
            Err(e) => fail(&e),
        },
        Command::Subscription(command) => {
            run_async(|_| async move { Ok(crate::cli::subscriptions::run(command).await?) })
        }
        Command::NatsConfig { out, listen, store_dir, tls_cert, tls_key, consumers } => {
            let options =
                crate::nats_config::NatsConfigOptions { out_dir: out, listen, store_dir, tls_cert, tls_key, consumers };
            match crate::nats_config::generate(&options) {
                Ok(generated) => {
                    println!("wrote {}", generated.config_file.display());
                    println!("hub seed: {} (connect with nkey)", generated.hub_seed.display());
                    println!(
                        "adapter seeds: {}/adapter-<principal>.nk; adapters connect with their seed and the inbox prefix _INBOX_<principal>",
                        options.out_dir.join("seeds").display()
                    );
                    println!("run: nats-server -c {}", generated.config_file.display());
                    ExitCode::SUCCESS
                }
                Err(e) => fail(&e),
            }
        }
        Command::Config(ConfigCommand::Example) => {
            print!("{}", crate::config::EXAMPLE);
            ExitCode::SUCCESS
        }
        Command::Serve(_) => {
            let config = match serve_config.take().unwrap_or_else(|| unreachable!("read above for serve")) {
                Ok(config) => config,
                Err(e) => return fail(&e),
            };
            run_async(|shutdown| async move { Ok(crate::server::run(config, shutdown).await?) })
        }
        Command::Tail(args) => {
            let filter = crate::log::tail::TailFilter {
                area: args.area,
                principal: args.principal,
                event_type: args.event_type,
                dlq: args.dlq,
                routed_to: args.routed_to,
            };
            let start = match crate::log::tail::StartAt::from_parameters(args.from_seq, args.since.as_deref()) {
                Ok(start) => start,
                Err(e) => return fail(&e),
            };
            let (json, limit, nats) = (args.json, args.limit, args.nats);
            run_async(|shutdown| async move {
                let client = crate::server::connect::connect_with_tls(
                    &nats.nats_url,
                    nats.nats_nkey_file.as_deref(),
                    nats.nats_ca_file.as_deref(),
                )
                .await?;
                let js = async_nats::jetstream::new(client);
                until_stopped(shutdown, crate::cli::commands::tail(&js, &filter, start, json, limit)).await
            })
        }
        Command::Status { api, json, watch } => run_async(|shutdown| async move {
            until_stopped(shutdown, crate::cli::commands::status(&api.client(), json, watch)).await
        }),
        Command::Dlq(DlqCommand::List { api, reason, principal, limit, json }) => run_async(|_| async move {
            Ok(crate::cli::commands::dlq_list(&api.client(), reason.as_deref(), principal.as_deref(), limit, json)
                .await?)
        }),
        Command::Dlq(DlqCommand::Show { api, seq }) => {
            run_async(|_| async move { Ok(crate::cli::commands::dlq_show(&api.client(), seq).await?) })
        }
        Command::Dlq(DlqCommand::Replay { api, seq, reason, limit }) => run_async(|_| async move {
            let request = crate::api::dlq::ReplayRequest { seq, reason, limit: Some(limit) };
            let answer = crate::cli::commands::dlq_replay(&api.client(), &request).await?;
            if answer.refused > 0 {
                anyhow::bail!("{} dead letters were refused again", answer.refused);
            }
            Ok(())
        }),
        Command::Rebuild(args) if !args.offline => {
            let Some(token) = args.token else {
                return fail(&"an operator token is needed: --token or HUB_TOKEN (or --offline for a stopped hub)");
            };
            let client = crate::cli::client::ApiClient::new(&args.api_url, &token);
            run_async(|_| async move {
                let report = crate::cli::commands::rebuild_online(&client, args.check).await?;
                Ok(crate::cli::commands::rebuild_outcome(&report)?)
            })
        }
        Command::Rebuild(args) => {
            let serve = ServeArgs {
                config: args.config,
                nats_url: args.nats_url,
                nats_nkey_file: args.nats_nkey_file,
                nats_ca_file: args.nats_ca_file,
                data_dir: args.data_dir,
                http_addr: None,
                tls_cert: None,
                tls_key: None,
                tokens_file: None,
                no_validator: true,
                no_projector: false,
                no_api: true,
                no_router: true,
                no_webhooks: true,
                otlp_endpoint: None,
            };
            let config = match serve.to_config() {
                Ok(config) => config,
                Err(e) => return fail(&e),
            };
            let check = args.check;
            run_async(|_| async move {
                let client = crate::server::connect::connect_with_tls(
                    &config.nats_url,
                    config.nats_nkey_file.as_deref(),
                    config.nats_ca_file.as_deref(),
                )
                .await?;
                let js = async_nats::jetstream::new(client);
                let settings = crate::projection::runner::ProjectorSettings::of(&config);
                let report = crate::cli::commands::rebuild_offline(&js, &config.data_dir, settings, check).await?;
                Ok(crate::cli::commands::rebuild_outcome(&report)?)
            })
        }
        Command::Demo(args) => {
            let options = crate::demo::DemoOptions {
                data_dir: args.data_dir,
                nats_url: args.nats_url,
                nats_nkey_file: args.nats_nkey_file,
                http_addr: args.http_addr,
                per_type: args.per_type,
                simulated: args.simulated,
            };
            run_async(|shutdown| async move { Ok(crate::demo::run(options, shutdown).await?) })
        }
    }
}

/// Runs `work` until it ends or Ctrl-C/SIGTERM; a stop is a normal end.
async fn until_stopped<E: Into<anyhow::Error>>(
    mut shutdown: watch::Receiver<bool>,
    work: impl std::future::Future<Output = Result<(), E>>,
) -> anyhow::Result<()> {
    tokio::select! {
        result = work => result.map_err(Into::into),
        _ = shutdown.wait_for(|stop| *stop) => Ok(()),
    }
}

fn run_async<F, Fut>(body: F) -> ExitCode
where
    F: FnOnce(watch::Receiver<bool>) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => return fail(&e),
    };
    runtime.block_on(async move {
        let (stop, shutdown) = watch::channel(false);
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("shutting down");
            let _ = stop.send(true);
        });
        match body(shutdown).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        }
    })
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(term) => term,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

fn fail(e: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::from(2)
}
