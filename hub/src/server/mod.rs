//! Starting and running the hub: connecting to NATS, setting up the streams, and spawning the
//! parts the configuration turns on (validator and NATS ingest, router, webhook deliveries,
//! projection runner, HTTP API) as tasks that run until shutdown.
//!
//! - [`connect`]: the NATS connection (nkey, TLS, the nodes of a cluster).
//! - [`tls`]: HTTPS for the API (rustls) and the CA the hub trusts for NATS.
//! - [`embedded_nats`]: a `nats-server` process the demo and the benchmark start themselves.

pub mod connect;
pub mod embedded_nats;
pub mod tls;

use std::{net::SocketAddr, sync::Arc, time::Duration};

use async_nats::jetstream;
use tokio::{sync::watch, task::JoinSet};

use crate::{
    api,
    config::HubConfig,
    log::{ingest_requests, streams, validator},
    metrics,
    projection::{rebuild, runner},
    routing,
    store::read_model,
    tokens, webhooks,
};

/// Why the hub stopped.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    /// NATS could not be reached → check `--nats-url` and that the server runs with JetStream.
    #[error(transparent)]
    Nats(#[from] connect::ConnectError),
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
    Projector(#[from] runner::ProjectorError),
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
    /// A part of the hub panicked (a bug) → the hub stops; its log says where.
    #[error("a hub task panicked: {0}")]
    Panicked(tokio::task::JoinError),
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

/// Starts the configured parts: streams, validator, projection runner, API.
pub async fn start(config: &HubConfig, shutdown: watch::Receiver<bool>) -> Result<RunningHub, HubError> {
    // A bad certificate stops the hub before anything else starts.
    let tls = tls::server_config(config.tls_cert.as_deref(), config.tls_key.as_deref())?;
    let nats =
        connect::connect_with_tls(&config.nats_url, config.nats_nkey_file.as_deref(), config.nats_ca_file.as_deref());
    let waited = Duration::from_secs(15);
    let client = tokio::time::timeout(waited, nats)
        .await
        .map_err(|_| connect::ConnectError::Timeout { url: config.nats_url.clone(), waited })??;
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
            .map_err(HubError::Panicked)??;
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
            match dirs.remove_stale(&Default::default()) {
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
                .map_err(HubError::Panicked)??,
        )))
    } else {
        None
    };

    let views: runner::SharedViews = match &model {
        Some(model) => {
            let loader = model.get();
            let limits = config.followup;
            let records_in_memory = config.records_in_memory.max(4);
            let loaded = tokio::task::spawn_blocking(move || {
                let mut views = loader.load_views_to_project(records_in_memory)?;
                // Before the API is served: usage answers read these totals from the views.
                views.usage = loader.usage_totals()?;
                let cases = views.records();
                if views.count_with(limits) && cases > 0 {
                    tracing::info!(
                        records = cases,
                        "the goals' and follow-up aggregates were counted again from the stored cases (stored without \
                         them, or with other follow-up limits)"
                    );
                }
                Ok::<_, read_model::ReadModelError>(views)
            })
            .await
            .map_err(HubError::Panicked)??;
            Arc::new(tokio::sync::RwLock::new(loaded))
        }
        None => Default::default(),
    };

    let status = config.projector.then(|| Arc::new(runner::ProjectorStatus::default()));
    let mut rebuilder = None;
    if let (Some(model), Some(status)) = (&model, &status) {
        let settings = runner::ProjectorSettings::of(config);
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
            let signals = runner::Signals { control: control_rx, shutdown };
            Ok(runner::run(js, model, views, settings, metrics, status, signals).await?)
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
                Err(e) => return Err(HubError::Panicked(e)),
            }
        }
        Ok(())
    }
}

/// Runs the hub until `shutdown` turns true.
pub async fn run(config: HubConfig, shutdown: watch::Receiver<bool>) -> Result<(), HubError> {
    start(&config, shutdown).await?.wait().await
}
