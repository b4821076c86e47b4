//! The hub's configuration: one typed struct read from a TOML file, then `HUB_*` environment
//! variables, then command-line flags (each overriding the one before).

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use serde::{Deserialize, Serialize};

/// Why the configuration could not be read → fix the file or flag named.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this struct (unknown keys are refused).
    #[error("config file {path} is invalid: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        source: Box<toml::de::Error>,
    },
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable text.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Everything `hub serve` needs. Every field has a default; see `hub config example`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HubConfig {
    /// NATS server URL (`HUB_NATS_URL`). Default `nats://127.0.0.1:4222`.
    pub nats_url: String,
    /// File holding the hub's nkey seed, when the server requires one (`hub nats-config` writes
    /// `seeds/hub.nk`) (`HUB_NATS_NKEY_FILE`). Default none.
    pub nats_nkey_file: Option<PathBuf>,
    /// CA certificate (PEM) that signed the NATS server's certificate: when set, the hub connects
    /// only over TLS and only to a server that CA vouches for (`HUB_NATS_CA_FILE`). Default none.
    pub nats_ca_file: Option<PathBuf>,
    /// Directory of the read model (sled) and, for `hub demo`, its own nats-server (`HUB_DATA_DIR`).
    /// Default `./hub-data`.
    pub data_dir: PathBuf,
    /// Address of the HTTP API (`HUB_HTTP_ADDR`). Default `127.0.0.1:8080`.
    pub http_addr: SocketAddr,
    /// Certificate chain (PEM) of the HTTP API: with `tls_key`, the API serves HTTPS only
    /// (`HUB_TLS_CERT`). Default none: plain HTTP.
    pub tls_cert: Option<PathBuf>,
    /// Private key (PEM: PKCS#8, PKCS#1 or SEC1) of `tls_cert` (`HUB_TLS_KEY`). Default none.
    pub tls_key: Option<PathBuf>,
    /// File of hashed API tokens (`HUB_TOKENS_FILE`). Default `<data_dir>/tokens.json`.
    pub tokens_file: Option<PathBuf>,
    /// Run the validator (ingress → log / DLQ). Default true.
    pub validator: bool,
    /// Run the projection runner (log → read model). Default true.
    pub projector: bool,
    /// Serve the HTTP API. Default true.
    pub api: bool,
    /// Run the router (log → `SGD_ROUTED`, a copy per principal an event concerns). Default true.
    pub router: bool,
    /// Deliver the webhook subscriptions from this hub. Turn it on in one hub of a deployment
    /// only: two would share each subscription's consumer and lose its order. Default true.
    pub webhooks: bool,
    /// How long `SGD_ROUTED` keeps a routed copy, in days. Default 30.
    pub routed_retention_days: u64,
    /// JetStream duplicate window of `SGD_EVENTS` and `SGD_DLQ`, in seconds. Default 900.
    pub dedup_window_secs: u64,
    /// Replicas of each stream (3 on a JetStream cluster). Default 1.
    pub stream_replicas: usize,
    /// Largest accepted event in bytes. Default 262144.
    pub max_event_bytes: usize,
    /// Largest projection batch. Default 5000.
    pub batch_max: usize,
    /// How long the projection runner waits for a batch to fill after its first event, in
    /// milliseconds (the latency floor). Default 2.
    pub batch_wait_ms: u64,
    /// How often the goals/follow-up views' changed records are written to disk, in milliseconds;
    /// after a crash the log since then is replayed into them. Default 2000.
    pub views_flush_ms: u64,
    /// Applied identities kept in memory; beyond this they are handed over to sorted runs on
    /// disk (16 bytes each there). Default 262144.
    pub identities_in_memory: usize,
    /// Persons' timeline entries kept in the views; beyond this they are handed over to sorted
    /// runs on disk (48 bytes each there). Default 100000.
    pub timeline_entries_in_memory: usize,
    /// View records (cases, persons' consents and plans) kept in memory per table, the most
    /// recently changed; the others are handed over to runs on disk and read back when asked
    /// for. Default 5000 (10,000 held ~8 MB more at the peak of a 1,000,000-event rebuild, and
    /// was no faster: docs/performance.md, "Memory").
    pub records_in_memory: usize,
    /// Name of this hub instance, used in consumer names and logs. Default the host name.
    pub instance: String,
    /// Counts about persons below this are suppressed in statistics. Default 5.
    pub privacy_threshold: u64,
    /// API requests per second allowed to one token (0: no limit). Default 100.
    pub rate_limit_per_second: u32,
    /// Requests one token may make at once above that rate. Default 200.
    pub rate_limit_burst: u32,
    /// OTLP/HTTP traces endpoint (e.g. `http://collector:4318/v1/traces`) to export the pipeline's
    /// spans to (`HUB_OTLP_ENDPOINT`, `--otlp-endpoint`; when none of these sets it, the standard
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`). Default none: no spans are made.
    pub otlp_endpoint: Option<String>,
    /// The goals: the agreed NPÖ minimum and the targets.
    pub goals: crate::projections::goals::GoalSettings,
    /// The follow-up limits (defaults from EVENTS.md).
    pub followup: crate::projections::followup::FollowupLimits,
    /// Webhook delivery: attempts, delays, timeout, which URLs are allowed.
    pub webhook: crate::webhooks::WebhookSettings,
}

impl Default for HubConfig {
    fn default() -> Self {
        Self {
            nats_url: "nats://127.0.0.1:4222".into(),
            nats_nkey_file: None,
            nats_ca_file: None,
            data_dir: PathBuf::from("hub-data"),
            http_addr: "127.0.0.1:8080".parse().expect("literal address"),
            tls_cert: None,
            tls_key: None,
            tokens_file: None,
            validator: true,
            projector: true,
            api: true,
            router: true,
            webhooks: true,
            routed_retention_days: 30,
            dedup_window_secs: 900,
            stream_replicas: 1,
            max_event_bytes: sgd_schemas::validate::DEFAULT_MAX_EVENT_BYTES,
            batch_max: 5000,
            batch_wait_ms: 2,
            views_flush_ms: 2000,
            identities_in_memory: 262_144,
            timeline_entries_in_memory: 100_000,
            records_in_memory: 5_000,
            instance: hostname(),
            privacy_threshold: 5,
            rate_limit_per_second: 100,
            rate_limit_burst: 200,
            otlp_endpoint: None,
            goals: Default::default(),
            followup: Default::default(),
            webhook: Default::default(),
        }
    }
}

impl HubConfig {
    /// Reads a TOML file; missing keys take their defaults.
    pub fn from_file(path: &std::path::Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.into(), source })?;
        toml::from_str(&text).map_err(|source| ConfigError::Parse { path: path.into(), source: Box::new(source) })
    }

    /// The tokens file, defaulting to `<data_dir>/tokens.json`.
    pub fn tokens_path(&self) -> PathBuf {
        self.tokens_file.clone().unwrap_or_else(|| self.data_dir.join("tokens.json"))
    }

    /// The served read model's directory (see [`crate::store::read_model::ModelDirs`]).
    pub fn read_model_dir(&self) -> PathBuf {
        crate::store::read_model::ModelDirs::new(&self.data_dir).serving()
    }

    /// The duplicate window.
    pub fn dedup_window(&self) -> Duration {
        Duration::from_secs(self.dedup_window_secs.max(1))
    }

    /// How long `SGD_ROUTED` keeps a copy.
    pub fn routed_max_age(&self) -> Duration {
        Duration::from_secs(self.routed_retention_days.max(1).saturating_mul(86_400))
    }

    /// The directory of the router's state and checkpoint.
    pub fn routing_dir(&self) -> PathBuf {
        self.data_dir.join("routing")
    }

    /// The projection batch wait.
    pub fn batch_wait(&self) -> Duration {
        Duration::from_millis(self.batch_wait_ms)
    }

    /// Takes `otlp_endpoint` from `standard` (the value of [`OTEL_TRACES_ENDPOINT`]) when the file,
    /// `HUB_OTLP_ENDPOINT` and `--otlp-endpoint` left it unset; an empty value is no endpoint.
    pub fn with_otlp_fallback(mut self, standard: Option<String>) -> Self {
        self.otlp_endpoint = self.otlp_endpoint.filter(|e| !e.trim().is_empty());
        if self.otlp_endpoint.is_none() {
            self.otlp_endpoint = standard.filter(|e| !e.trim().is_empty());
        }
        self
    }
}

/// The standard OpenTelemetry variable naming a traces endpoint, honoured when `otlp_endpoint`
/// is not set otherwise.
pub const OTEL_TRACES_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT";

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "hub".into())
}

/// A full, commented example configuration (`hub config example`).
pub const EXAMPLE: &str = r#"# sgd-hub configuration (TOML). Every key is optional; shown are the defaults.
# Precedence: this file < HUB_* environment variables < command-line flags.

# NATS server URL (HUB_NATS_URL, --nats-url).
nats_url = "nats://127.0.0.1:4222"
# The hub's nkey seed file when the server requires authentication (see `hub nats-config`)
# (HUB_NATS_NKEY_FILE, --nats-nkey-file).
# nats_nkey_file = "nats/seeds/hub.nk"
# The CA certificate (PEM) that signed nats-server's certificate: the hub then connects only over
# TLS, to a server this CA vouches for (HUB_NATS_CA_FILE, --nats-ca-file).
# nats_ca_file = "nats/ca.pem"
# Read model (sled) directory and demo nats-server storage (HUB_DATA_DIR, --data-dir).
data_dir = "hub-data"
# HTTP API address (HUB_HTTP_ADDR, --http-addr).
http_addr = "127.0.0.1:8080"
# HTTPS: the API's certificate chain and private key (PEM). With both set the API speaks only
# TLS; without them plain HTTP, e.g. behind a TLS-terminating proxy. A missing or unusable file
# stops the hub at start (HUB_TLS_CERT, --tls-cert; HUB_TLS_KEY, --tls-key).
# tls_cert = "/etc/sgd-hub/tls/cert.pem"
# tls_key = "/etc/sgd-hub/tls/key.pem"
# Hashed API tokens; default <data_dir>/tokens.json (HUB_TOKENS_FILE, --tokens-file).
# tokens_file = "hub-data/tokens.json"

# Which parts run in this process (turn parts off for scaled deployments:
# several validators share SGD_INGRESS; every replica projects the whole log).
validator = true
projector = true
api = true
# The router copies each logged event to SGD_ROUTED for the principals it concerns
# (docs/routing.md); several hubs may route (JetStream drops the repeated copies).
router = true
# Webhook deliveries: on in ONE hub of a deployment (two would share a subscription's order).
webhooks = true
# How long SGD_ROUTED keeps a routed copy, days.
routed_retention_days = 30

# JetStream duplicate window (Nats-Msg-Id) of SGD_EVENTS and SGD_DLQ, seconds.
# (SGD_INGRESS keeps none to speak of, 100 ms, so a refused event can be corrected and resent
# with its id.)
# The read model remembers every applied identity as well, so a retry after the window
# still changes nothing twice.
dedup_window_secs = 900
# Stream replicas: 1 on a single server, 3 on a JetStream cluster.
stream_replicas = 1
# Largest accepted event, bytes.
max_event_bytes = 262144
# Projection batches: up to batch_max events, waiting batch_wait_ms for a batch to fill.
batch_max = 5000
batch_wait_ms = 2
# The goals/follow-up views are written every views_flush_ms (not every batch); after a crash
# the log since then is replayed into them at start.
views_flush_ms = 2000
# What grows with the log stays in memory only up to these counts, then goes to sorted runs on
# disk beside the read model (the hub's memory does not grow with the log).
identities_in_memory = 262144
timeline_entries_in_memory = 100000
# View records (cases, persons' consents and plans) kept in memory per table; the least recently
# changed beyond this are read back from disk when an event or a question needs them.
records_in_memory = 5000
# Instance name (logs, metrics); default the host name.
# instance = "hub-1"
# Counts about persons below this are suppressed in statistics.
privacy_threshold = 5
# API requests per second per token (0: no limit), and how many may come at once above it;
# more get 429 rate_limited.
rate_limit_per_second = 100
rate_limit_burst = 200
# Tracing: export the pipeline's spans (ingest, validate, project, route, deliver.webhook) to this
# OTLP/HTTP traces endpoint. Off when unset: no span is made at all (docs/operations.md, "Tracing")
# (HUB_OTLP_ENDPOINT, --otlp-endpoint; else OTEL_EXPORTER_OTLP_TRACES_ENDPOINT).
# otlp_endpoint = "http://otel-collector:4318/v1/traces"

[goals]
# The agreed minimum of NPÖ information sets every producer principal shares (npo.minimum_sets).
npo_minimum_sets = ["GetCareDocumentation", "GetAlertInformation", "GetFunctionalStatus"]
# Targets by goal id; a goal not listed has target 1.0 (every principal, every case).
[goals.targets]
# "plans.admission_notice_24h" = 0.95

[webhook]
# Attempts per event before it is parked (listed and replayable: hub subscription parked/replay).
attempts = 10
# Delay before the second attempt; each further one doubles, up to max_delay_ms, and takes a
# random 50-100 % of it.
initial_delay_ms = 1000
max_delay_ms = 300000
# An attempt counts when the receiver answers 2xx within this long.
timeout_ms = 10000
# Events a deliverer takes at a time; after a crash at most this many are delivered again.
window = 100
# Plain http, and loopback/link-local/private addresses, are refused unless allowed here.
allow_http = false
allow_private_targets = false
# An extra CA (PEM) trusted for receivers' certificates, besides the system's.
# ca_file = "/etc/sgd-hub/receivers-ca.pem"

[followup]
# Limits of the follow-up rules; local agreements set them.
admission_notice_hours = 24
warning_follow_up_hours = 48
risk_acknowledge_days = 3
receipt_hours = 24
deviation_answer_days = 14
deviation_analysis_days = 30
payment_threshold_days = 3
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_parses_to_the_defaults() {
        let parsed: HubConfig = toml::from_str(EXAMPLE).unwrap();
        assert_eq!(parsed, HubConfig { instance: parsed.instance.clone(), ..HubConfig::default() });
    }

    #[test]
    fn the_standard_otlp_variable_is_a_fallback_and_empty_is_off() {
        let standard = || Some("http://standard:4318/v1/traces".to_string());
        let set = HubConfig { otlp_endpoint: Some("http://hub:4318/v1/traces".into()), ..HubConfig::default() };
        assert_eq!(set.with_otlp_fallback(standard()).otlp_endpoint.as_deref(), Some("http://hub:4318/v1/traces"));
        let unset = HubConfig::default();
        assert_eq!(unset.clone().with_otlp_fallback(standard()).otlp_endpoint, standard());
        assert_eq!(unset.clone().with_otlp_fallback(None).otlp_endpoint, None);
        assert_eq!(unset.with_otlp_fallback(Some(" ".into())).otlp_endpoint, None);
        let empty = HubConfig { otlp_endpoint: Some(String::new()), ..HubConfig::default() };
        assert_eq!(empty.with_otlp_fallback(None).otlp_endpoint, None);
    }

    #[test]
    fn unknown_keys_are_refused() {
        assert!(toml::from_str::<HubConfig>("nats_urll = \"x\"").is_err());
    }
}
