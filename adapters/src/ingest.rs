//! Running an adapter for one area: native input from a file or directory, a watched directory, or
//! an HTTP webhook (FHIR rest-hook style), mapped by the area's module and enqueued in the durable
//! outbox. The `adapter` binary is a thin shell around this.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use axum::{
    body::Bytes,
    extract::State,
    http::{header, HeaderMap, StatusCode},
    response::IntoResponse,
    routing::{get, post},
    Json, Router,
};
use serde::Serialize;
use tokio::sync::watch;

use crate::{
    fhir::{self, Mapped, Mapper, MappingError},
    outbox::{OutboxError, OutboxPublisher},
    pseudonym::Pseudonymiser,
    tabular::CsvError,
};

/// Reads one kind of CSV file into events.
pub type CsvReader = fn(&[u8]) -> Result<Mapped, CsvError>;

/// The six areas an adapter can speak for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Area {
    /// Nationell patientöversikt.
    Npo,
    /// Säker digital kommunikation.
    Sdk,
    /// Mina Planer.
    Plans,
    /// Beslutsstöd (ViSam, risk profiling).
    Decision,
    /// Deviations.
    Deviation,
    /// Secure video meetings.
    Video,
}

impl Area {
    /// The FHIR mapper of the area.
    pub fn mapper(self) -> Mapper {
        match self {
            Area::Npo => crate::npo::map_fhir,
            Area::Sdk => crate::sdk::map_fhir,
            Area::Plans => crate::plans::map_fhir,
            Area::Decision => crate::decision::map_fhir,
            Area::Deviation => crate::deviation::map_fhir,
            Area::Video => crate::video::map_fhir,
        }
    }

    /// The area's CSV reader, if it has one.
    pub fn csv(self) -> Option<CsvReader> {
        match self {
            Area::Npo => Some(crate::npo::map_roles_csv),
            Area::Sdk => Some(crate::sdk::map_addresses_csv),
            Area::Deviation => Some(crate::deviation::map_history_csv),
            _ => None,
        }
    }
}

/// The kind of an input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// FHIR R4 JSON.
    Fhir,
    /// The area's CSV.
    Csv,
}

impl Format {
    /// By file extension (`.csv` is CSV, anything else FHIR JSON).
    pub fn of_path(path: &Path) -> Self {
        match path.extension().and_then(|e| e.to_str()) {
            Some(ext) if ext.eq_ignore_ascii_case("csv") => Format::Csv,
            _ => Format::Fhir,
        }
    }
}

/// Why an input was refused as a whole (nothing in it was enqueued).
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// Not FHIR JSON → fix the input (HTTP 400).
    #[error(transparent)]
    Fhir(#[from] fhir::InputError),
    /// Not the documented CSV → fix the input (HTTP 400).
    #[error(transparent)]
    Csv(#[from] CsvError),
    /// CSV for an area without a CSV kind → send FHIR (HTTP 415).
    #[error("the {0:?} adapter takes no CSV")]
    NoCsv(Area),
    /// FHIR input but no pseudonym key → configure `SGD_PSEUDONYM_KEY_FILE` (HTTP 503).
    #[error("FHIR input needs the pseudonym key: set SGD_PSEUDONYM_KEY_FILE or --key-file")]
    NoKey,
    /// The outbox failed → nothing was enqueued; retry later (HTTP 503).
    #[error(transparent)]
    Outbox(#[from] OutboxError),
    /// The file could not be read → check the path.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// What one input gave.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    /// Resources or rows read.
    pub resources: usize,
    /// Events enqueued (durably) for sending.
    pub enqueued: usize,
    /// What could not be mapped.
    pub errors: Vec<ErrorReport>,
}

/// One [`MappingError`] as JSON.
#[derive(Debug, Serialize)]
pub struct ErrorReport {
    /// Which resource or line.
    pub resource: String,
    /// Which field.
    pub field: String,
    /// Why.
    pub reason: String,
}

impl From<MappingError> for ErrorReport {
    fn from(e: MappingError) -> Self {
        Self { resource: e.resource, field: e.field, reason: e.reason }
    }
}

/// An adapter for one area: maps inputs and enqueues their events.
pub struct Ingestor {
    area: Area,
    pseudonymiser: Option<Pseudonymiser>,
    publisher: OutboxPublisher,
}

impl Ingestor {
    /// An adapter for `area` publishing through `publisher`.
    pub fn new(area: Area, pseudonymiser: Option<Pseudonymiser>, publisher: OutboxPublisher) -> Self {
        Self { area, pseudonymiser, publisher }
    }

    /// The publisher.
    pub fn publisher(&self) -> &OutboxPublisher {
        &self.publisher
    }

    /// Maps `bytes` without publishing.
    pub fn map(&self, format: Format, bytes: &[u8]) -> Result<Mapped, IngestError> {
        match format {
            Format::Csv => Ok(self.area.csv().ok_or(IngestError::NoCsv(self.area))?(bytes)?),
            Format::Fhir => {
                let pseudonymiser = self.pseudonymiser.as_ref().ok_or(IngestError::NoKey)?;
                Ok(fhir::map_input(bytes, pseudonymiser, self.area.mapper())?)
            }
        }
    }

    /// Maps `bytes` and enqueues what could be mapped.
    pub async fn ingest(&self, format: Format, bytes: &[u8]) -> Result<Report, IngestError> {
        let mapped = self.map(format, bytes)?;
        self.publisher.enqueue_all(&mapped.drafts).await?;
        Ok(Report {
            resources: mapped.resources,
            enqueued: mapped.drafts.len(),
            errors: mapped.errors.into_iter().map(ErrorReport::from).collect(),
        })
    }

    /// Ingests a file, or every file of a directory (not recursing, skipping names that start
    /// with `.`), in name order. Returns each file's report.
    pub async fn ingest_path(&self, path: &Path) -> Vec<(PathBuf, Result<Report, IngestError>)> {
        let files = if path.is_dir() { files_in(path) } else { vec![path.to_path_buf()] };
        let mut out = Vec::new();
        for file in files {
            let result = match std::fs::read(&file) {
                Ok(bytes) => self.ingest(Format::of_path(&file), &bytes).await,
                Err(source) => Err(IngestError::Read { path: file.clone(), source }),
            };
            log_report(&file, &result);
            out.push((file, result));
        }
        out
    }

    /// Watches `dir`: every file that appears in it (write it elsewhere or under a `.` name, then
    /// rename it in) is ingested and moved to `dir/.done/` (with a `<name>.errors.json` beside it
    /// when something could not be mapped) or, when refused as a whole, to `dir/.failed/`. Files
    /// already there at start are ingested first. Runs until `shutdown` turns true.
    pub async fn watch(&self, dir: &Path, mut shutdown: watch::Receiver<bool>) -> Result<(), notify::Error> {
        use notify::Watcher;
        let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(16);
        let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            if event.is_ok() {
                let _ = tx.try_send(());
            }
        })?;
        watcher.watch(dir, notify::RecursiveMode::NonRecursive)?;
        for sub in [".done", ".failed"] {
            std::fs::create_dir_all(dir.join(sub)).map_err(notify::Error::io)?;
        }
        loop {
            for file in files_in(dir) {
                let result = match std::fs::read(&file) {
                    Ok(bytes) => self.ingest(Format::of_path(&file), &bytes).await,
                    Err(source) => Err(IngestError::Read { path: file.clone(), source }),
                };
                log_report(&file, &result);
                let name = file.file_name().map(|n| n.to_os_string()).unwrap_or_default();
                let target = match &result {
                    Ok(report) => {
                        if !report.errors.is_empty() {
                            let mut errors_name = name.clone();
                            errors_name.push(".errors.json");
                            let json = serde_json::to_vec_pretty(&report.errors).unwrap_or_default();
                            let _ = std::fs::write(dir.join(".done").join(errors_name), json);
                        }
                        dir.join(".done").join(&name)
                    }
                    Err(IngestError::Outbox(_)) => continue, // keep the file; try again next round
                    Err(_) => dir.join(".failed").join(&name),
                };
                if let Err(e) = std::fs::rename(&file, &target) {
                    tracing::error!(file = %file.display(), error = %e, "cannot move an ingested file away; stopping");
                    return Err(notify::Error::io(e));
                }
            }
            tokio::select! {
                _ = rx.recv() => {}
                _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                _ = shutdown.changed() => return Ok(()),
            }
            // let a burst of events settle
            tokio::time::sleep(Duration::from_millis(50)).await;
            while rx.try_recv().is_ok() {}
        }
    }

    /// The webhook: `POST /` or `POST /fhir` with a FHIR resource or Bundle (`application/fhir+json`
    /// or JSON), or with the area's CSV (`text/csv`). Answers 200 with a [`Report`] once the events
    /// are in the outbox (errors per resource listed in it), 400 for input that is not FHIR or not
    /// the documented CSV, 503 when the outbox or key is missing. `GET /healthz` answers 200.
    pub fn router(self: Arc<Self>) -> Router {
        Router::new()
            .route("/", post(webhook))
            .route("/fhir", post(webhook))
            .route("/healthz", get(|| async { "ok" }))
            .with_state(self)
    }
}

async fn webhook(State(ingestor): State<Arc<Ingestor>>, headers: HeaderMap, body: Bytes) -> impl IntoResponse {
    let csv =
        headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("text/csv"));
    let format = if csv { Format::Csv } else { Format::Fhir };
    match ingestor.ingest(format, &body).await {
        Ok(report) => (StatusCode::OK, Json(serde_json::to_value(report).unwrap_or_default())),
        Err(e) => {
            let status = match e {
                IngestError::Fhir(_) | IngestError::Csv(_) => StatusCode::BAD_REQUEST,
                IngestError::NoCsv(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
                _ => StatusCode::SERVICE_UNAVAILABLE,
            };
            (status, Json(serde_json::json!({ "error": e.to_string() })))
        }
    }
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file() && !p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with('.')))
        .collect();
    files.sort();
    files
}

fn log_report(file: &Path, result: &Result<Report, IngestError>) {
    match result {
        Ok(report) => {
            tracing::info!(file = %file.display(), resources = report.resources, enqueued = report.enqueued,
                errors = report.errors.len(), "ingested");
            for e in &report.errors {
                tracing::warn!(file = %file.display(), resource = %e.resource, field = %e.field, reason = %e.reason,
                    "not mapped");
            }
        }
        Err(e) => tracing::error!(file = %file.display(), error = %e, "refused"),
    }
}
