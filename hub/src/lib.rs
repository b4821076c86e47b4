//! sgd-hub: the event-sourced integration hub for the shared digital services of Skåne's 34
//! care principals.
//!
//! # Layout
//! - [`config`]: the one typed configuration (file, `HUB_*` environment, flags).
//! - [`streams`]: the JetStream streams, created or updated at start.
//! - [`validator`]: `SGD_INGRESS` → `SGD_EVENTS` or `SGD_DLQ`.
//! - [`dead_letter`]: what a refused event looks like in `SGD_DLQ`.
//! - [`projections`]: pure projections (one module per view), tested without I/O.
//! - [`projector`]: the projection runner, `SGD_EVENTS` → the read model, exactly once.
//! - [`read_model`]: the sled read model.
//! - [`digest_set`]: the applied identities, 16 bytes each.
//! - [`routing`]: who an event concerns, and the router that copies it to `SGD_ROUTED` for them.
//! - [`webhooks`]: subscriptions and their signed, retried, ordered HTTP deliveries.
//! - [`ingest_requests`]: NATS request/reply ingest (`sgd.ingest.<principal>.<area>`), answered at once.
//! - [`rebuild`]: the read model rebuilt from the log beside the served one, then swapped or compared.
//! - [`api`]: the HTTP API (axum).
//! - [`bench`]: the pipeline benchmark against raw JetStream (`cargo bench -p sgd-hub --bench pipeline`).
//! - [`tokens`]: hashed API tokens and roles.
//! - [`tls`]: HTTPS for the API (rustls) and the CA the hub trusts for NATS.
//! - [`metrics`]: Prometheus metrics.
//! - [`nats_config`]: `hub nats-config`: per-principal nkey users for `nats-server`.
//! - [`nats_server`]: runs a real `nats-server` (the demo's embedded default, the tests' harness).
//! - [`demo`]: `hub demo`: a sample of every event type for several principals.
//! - [`offline`]: `hub validate FILE…`.
//! - [`ops`]: what operators run against a live hub (tail, status, dead letters, rebuild).
//! - [`privacy`]: small-count suppression in statistics about persons.
//! - [`cli`]: the `hub` command line.
#![deny(missing_docs)]

pub mod api;
pub mod bench;
pub mod cli;
pub mod config;
pub mod dead_letter;
pub mod demo;
pub mod digest_set;
pub mod ingest_requests;
pub mod metrics;
pub mod nats_config;
pub mod nats_server;
pub mod offline;
pub mod ops;
pub mod privacy;
pub mod projections;
pub mod projector;
pub mod read_model;
pub mod rebuild;
pub mod routing;
pub mod sharded;
pub mod store;
pub mod streams;
pub mod telemetry;
pub mod tls;
pub mod tokens;
pub mod validator;
pub mod views_store;
pub mod webhooks;

use std::{net::SocketAddr, sync::Arc, time::Duration};

use async_nats::jetstream;
use tokio::{sync::watch, task::JoinSet};

pub use config::HubConfig;

/// The header JetStream deduplicates on.
pub const MSG_ID_HEADER: &str = "Nats-Msg-Id";

/// Why the hub stopped.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    /// NATS could not be reached → check `--nats-url` and that the server runs with JetStream.
    #[error("cannot connect to NATS at {url}: {message}")]
    Nats {
        /// The URL.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// The streams could not be set up.
    #[error(transparent)]
    Streams(#[from] streams::StreamSetupError),
    /// The read model could not be opened.
    #[error(transparent)]
    ReadModel(#[from] read_model::ReadModelError),
    /// The HTTP address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The validator stopped.
    #[error("validator: {0}")]
    Validator(#[from] validator::ValidatorError),
    /// The projection runner stopped.
    #[error("projection: {0}")]
    Projector(#[from] projector::ProjectorError),
    /// The router's store could not be opened or written → check the data directory's disk.
    #[error("router: {0}")]
    Router(#[from] routing::store::RouterStoreError),
    /// The subscriptions' bucket could not be opened.
    #[error(transparent)]
    Subscriptions(#[from] webhooks::store::StoreError),
    /// The webhook client could not be built → fix `webhook.ca_file`.
    #[error(transparent)]
    WebhookClient(#[from] webhooks::ClientError),
    /// The NATS ingest responder stopped.
    #[error("ingest requests: {0}")]
    IngestRequests(ingest_requests::IngestRequestError),
    /// The HTTP server stopped.
    #[error("http server: {0}")]
    Http(std::io::Error),
    /// The API's certificate or key is missing or unusable → fix `tls_cert` / `tls_key`.
    #[error("HTTPS: {0}")]
    Tls(#[from] tls::TlsError),
}

/// A started hub: its parts run as tasks until shutdown.
pub struct RunningHub {
    /// Where the API listens, when it runs.
    pub http_addr: Option<SocketAddr>,
    /// The served read model.
    pub model: Option<read_model::ServingModel>,
    /// JetStream.
    pub js: jetstream::Context,
    tasks: JoinSet<Result<(), HubError>>,
}

/// Connects to NATS, with the hub's nkey when `nkey_file` is given. `url` may list several
/// servers separated by commas (the nodes of a cluster): the client starts with any that answers
/// and fails over to the others (and to those the cluster announces) when one goes away.
pub async fn connect(url: &str, nkey_file: Option<&std::path::Path>) -> Result<async_nats::Client, HubError> {
    connect_with_tls(url, nkey_file, None).await
}

/// [`connect`], over TLS when `ca_file` is given: the client then refuses a server that does not
/// speak TLS or whose certificate that CA (PEM, one or more certificates) did not sign.
pub async fn connect_with_tls(
    url: &str,
    nkey_file: Option<&std::path::Path>,
    ca_file: Option<&std::path::Path>,
) -> Result<async_nats::Client, HubError> {
    let mut options = async_nats::ConnectOptions::new();
    if let Some(ca_file) = ca_file {
        // Read here, so a missing or broken file is a clear error now rather than a connection
        // that retries for ever in the background.
        tls::certificates(ca_file).map_err(|e| HubError::Nats { url: url.into(), message: e.to_string() })?;
        options = options.add_root_certificates(ca_file.to_path_buf()).require_tls(true);
    }
    if let Some(file) = nkey_file {
        let seed = std::fs::read_to_string(file).map_err(|e| HubError::Nats {
            url: url.into(),
            message: format!("cannot read the nkey seed {}: {e}", file.display()),
        })?;
        options = options.nkey(seed.trim().to_string());
    }
    options
        .name("sgd-hub")
        .connection_timeout(Duration::from_secs(5))
        .retry_on_initial_connect()
        .max_reconnects(None)
        .connect(url.split(',').map(str::trim).filter(|s| !s.is_empty()).collect::<Vec<_>>())
        .await
        .map_err(|e| HubError::Nats { url: url.into(), message: e.to_string() })
}

/// Starts the configured parts: streams, validator, projection runner, API.
pub async fn start(config: &HubConfig, shutdown: watch::Receiver<bool>) -> Result<RunningHub, HubError> {
    // A bad certificate stops the hub before anything else starts.
    let tls = tls::server_config(config.tls_cert.as_deref(), config.tls_key.as_deref())?;
    let nats = connect_with_tls(&config.nats_url, config.nats_nkey_file.as_deref(), config.nats_ca_file.as_deref());
    let client = tokio::time::timeout(Duration::from_secs(15), nats)
        .await
        .map_err(|_| HubError::Nats { url: config.nats_url.clone(), message: "no answer within 15 s".into() })??;
    let js = jetstream::new(client);
    streams::ensure(
        &js,
        streams::StreamSettings {
            dedup_window: config.dedup_window(),
            replicas: config.stream_replicas,
            routed_max_age: config.routed_max_age(),
        },
    )
    .await?;
    let metrics = Arc::new(metrics::Metrics::default());
    let mut tasks = JoinSet::new();

    if config.validator {
        let settings = validator::ValidatorSettings { max_event_bytes: config.max_event_bytes, pull_batch: 1000 };
        {
            let (js, metrics, shutdown) = (js.clone(), metrics.clone(), shutdown.clone());
            tasks.spawn(async move { Ok(validator::run(js, settings, metrics, shutdown).await?) });
        }
        // The NATS ingest requests are answered where the validator runs, with its validation.
        let (client, metrics, shutdown, js) = (js.client(), metrics.clone(), shutdown.clone(), js.clone());
        let settings = ingest_requests::IngestSettings { max_event_bytes: config.max_event_bytes };
        tasks.spawn(async move {
            ingest_requests::run(client, js, settings, metrics, shutdown).await.map_err(HubError::IngestRequests)
        });
    }

    if config.router {
        std::fs::create_dir_all(&config.data_dir).map_err(|source| {
            HubError::Router(routing::store::RouterStoreError::Storage {
                path: config.data_dir.clone(),
                source: sled::Error::Io(source),
            })
        })?;
        let dir = config.routing_dir();
        let store = tokio::task::spawn_blocking(move || routing::store::RouterStore::open(&dir))
            .await
            .map_err(|e| HubError::Http(std::io::Error::other(e.to_string())))??;
        let (js, metrics, shutdown) = (js.clone(), metrics.clone(), shutdown.clone());
        tasks.spawn(async move {
            Ok(routing::router::run(js, store, routing::router::RouterSettings::default(), metrics, shutdown).await?)
        });
    }

    let webhook_statuses: webhooks::delivery::Statuses = Arc::default();
    let subscriptions = webhooks::store::SubscriptionStore::open(&js, config.webhook.window).await?;
    let attempt = webhooks::delivery::Attempt::new(webhooks::client(&config.webhook)?, config.webhook.policy());
    if config.webhooks {
        let ctx = webhooks::delivery::DeliveryContext {
            js: js.clone(),
            store: subscriptions.clone(),
            attempt: attempt.clone(),
            settings: config.webhook.clone(),
            metrics: metrics.clone(),
            statuses: webhook_statuses.clone(),
        };
        let shutdown = shutdown.clone();
        tasks.spawn(async move {
            webhooks::supervisor::run(ctx, shutdown).await;
            Ok(())
        });
    }

    let model = if config.projector || config.api {
        std::fs::create_dir_all(&config.data_dir).map_err(|source| {
            HubError::ReadModel(read_model::ReadModelError::Storage {
                path: config.data_dir.display().to_string(),
                source: sled::Error::Io(source),
            })
        })?;
        if config.projector {
            // Only the hub that projects may remove what a killed rebuild left behind.
            let dirs = read_model::ModelDirs::new(&config.data_dir);
            match dirs.remove_stale() {
                Ok(removed) => {
                    removed.iter().for_each(|dir| tracing::info!(dir = %dir.display(), "removed a stale read model"))
                }
                Err(e) => tracing::warn!(error = %e, "could not remove stale read models"),
            }
        }
        let dir = config.read_model_dir();
        Some(read_model::ServingModel::new(Arc::new(
            tokio::task::spawn_blocking(move || read_model::ReadModel::open(&dir))
                .await
                .map_err(|e| HubError::Http(std::io::Error::other(e.to_string())))??,
        )))
    } else {
        None
    };

    let views: projector::SharedViews = match &model {
        Some(model) => {
            let loader = model.get();
            let loaded = tokio::task::spawn_blocking(move || loader.load_views())
                .await
                .map_err(|e| HubError::Http(std::io::Error::other(e.to_string())))??;
            Arc::new(tokio::sync::RwLock::new(loaded))
        }
        None => Default::default(),
    };

    let status = config.projector.then(|| Arc::new(projector::ProjectorStatus::default()));
    let mut rebuilder = None;
    if let (Some(model), Some(status)) = (&model, &status) {
        let settings = projector::ProjectorSettings {
            batch_max: config.batch_max.max(1),
            batch_wait: config.batch_wait(),
            views_flush: Duration::from_millis(config.views_flush_ms),
        };
        let (control, control_rx) = tokio::sync::mpsc::channel(1);
        rebuilder = Some(Arc::new(rebuild::Rebuilder::new(
            js.clone(),
            &config.data_dir,
            model.clone(),
            views.clone(),
            control,
            settings,
        )));
        let (js, metrics, shutdown, model, status, views) =
            (js.clone(), metrics.clone(), shutdown.clone(), model.get(), status.clone(), views.clone());
        tasks.spawn(async move {
            let signals = projector::Signals { control: control_rx, shutdown };
            Ok(projector::run(js, model, views, settings, metrics, status, signals).await?)
        });
    }

    let mut http_addr = None;
    if let (true, Some(model)) = (config.api, &model) {
        let listener = tokio::net::TcpListener::bind(config.http_addr)
            .await
            .map_err(|source| HubError::Listen { addr: config.http_addr, source })?;
        let addr = listener.local_addr().map_err(|source| HubError::Listen { addr: config.http_addr, source })?;
        http_addr = Some(addr);
        let state = api::ApiState::new(api::ApiParts {
            model: model.clone(),
            tokens: Arc::new(tokens::TokenStore::new(config.tokens_path())),
            metrics: metrics.clone(),
            projector: status.clone(),
            js: js.clone(),
            max_event_bytes: config.max_event_bytes,
            views: views.clone(),
            settings: Arc::new(config.clone()),
            started: std::time::Instant::now(),
            rebuilder: rebuilder.clone(),
            shutdown: shutdown.clone(),
            answers: Arc::default(),
            log_last_sequence: Arc::default(),
            subscriptions: subscriptions.clone(),
            webhook_attempt: attempt.clone(),
            webhook_statuses: webhook_statuses.clone(),
            rate_limit: Arc::new(api::rate_limit::TokenRateLimit::new(
                config.rate_limit_per_second,
                config.rate_limit_burst,
            )),
        });
        let mut shutdown = shutdown.clone();
        let stopping = async move {
            let _ = shutdown.wait_for(|stop| *stop).await;
        };
        let scheme = if tls.is_some() { "https" } else { "http" };
        match tls {
            Some(tls) => {
                let listener = tls::TlsListener::new(listener, tls)
                    .map_err(|source| HubError::Listen { addr: config.http_addr, source })?;
                tasks.spawn(async move {
                    axum::serve(listener, api::router(state))
                        .with_graceful_shutdown(stopping)
                        .await
                        .map_err(HubError::Http)
                });
            }
            None => {
                tasks.spawn(async move {
                    axum::serve(listener, api::router(state))
                        .with_graceful_shutdown(stopping)
                        .await
                        .map_err(HubError::Http)
                });
            }
        }
        tracing::info!("API listening on {scheme}://{addr}");
    }
    Ok(RunningHub { http_addr, model, js, tasks })
}

impl RunningHub {
    /// Waits until every part has stopped (after shutdown), or returns the first failure.
    pub async fn wait(mut self) -> Result<(), HubError> {
        while let Some(joined) = self.tasks.join_next().await {
            match joined {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    self.tasks.abort_all();
                    return Err(e);
                }
                Err(e) if e.is_cancelled() => {}
                Err(e) => return Err(HubError::Http(std::io::Error::other(format!("a hub task panicked: {e}")))),
            }
        }
        Ok(())
    }
}

/// Runs the hub until `shutdown` turns true.
pub async fn run(config: HubConfig, shutdown: watch::Receiver<bool>) -> Result<(), HubError> {
    start(&config, shutdown).await?.wait().await
}
