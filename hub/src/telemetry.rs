//! Logs on stderr and, when an OTLP endpoint is configured, OpenTelemetry spans of each event's way
//! through the hub: ingest (HTTP or NATS request), validation, projection, routing and webhook
//! delivery, each a child of the event's W3C `traceparent` when it carries one.
//!
//! The pipeline's spans use the target [`PIPELINE`]: they go to the OTLP exporter only, never into
//! the log lines, and cost nothing when no endpoint is set (their call sites are disabled). Spans
//! are exported over OTLP/HTTP (protobuf) in batches from a thread of their own.
//!
//! Each stage follows the event's own `traceparent` attribute when it has one; otherwise the
//! `traceparent` header of the message it reads, which the stage before wrote there
//! ([`pass_on`]): the event's bytes are never changed. What links to what is in
//! `docs/operations.md` ("Tracing").

use opentelemetry::{propagation::TextMapPropagator, trace::TracerProvider as _};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::{propagation::TraceContextPropagator, trace::SdkTracerProvider, Resource};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::{
    filter::{self, FilterExt},
    layer::SubscriberExt,
    util::SubscriberInitExt,
    Layer,
};

/// The target of the pipeline's spans.
pub const PIPELINE: &str = "sgd_pipeline";

/// The W3C trace context header, on NATS messages as on HTTP requests.
pub const TRACEPARENT: &str = "traceparent";

/// Set once spans are exported; read by [`exporting`].
static EXPORTING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether the pipeline's spans are exported (an OTLP endpoint is configured), for work that
/// only feeds spans and is not a span's own field (a batch's message headers).
pub fn exporting() -> bool {
    EXPORTING.load(std::sync::atomic::Ordering::Relaxed)
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLines {
    /// For people.
    Text,
    /// One JSON object per line.
    Json,
}

/// Why tracing could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The OTLP exporter could not be built (a malformed endpoint).
    #[error("OTLP endpoint {endpoint}: {source}")]
    Exporter {
        /// The endpoint as configured.
        endpoint: String,
        /// What the exporter said.
        source: opentelemetry_otlp::ExporterBuildError,
    },
}

/// Flushes and stops the exporter when dropped (at the end of `main`).
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            if let Err(e) = provider.shutdown() {
                eprintln!("OTLP spans not all exported at shutdown: {e}");
            }
        }
    }
}

/// Sets up logging (filtered by `RUST_LOG`, default `info,async_nats=warn`) and, with `otlp`, the
/// export of the pipeline's spans to that OTLP/HTTP traces endpoint (e.g.
/// `http://collector:4318/v1/traces`).
pub fn init(lines: LogLines, otlp: Option<&str>, service_name: &str) -> Result<Telemetry, TelemetryError> {
    let env_filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,async_nats=warn"));
    // One per-layer filter (`and`), not two nested ones: nested, a call site the environment
    // filter turns off (a debug span at `info`) was still "sometimes" wanted, and each such span
    // was built and dropped (~250-450 ns, measured) instead of skipped at its call site. The
    // level hint lets `and` keep the environment filter's, so call sites above it are skipped
    // by a static level check.
    let not_pipeline =
        filter::filter_fn(|metadata| metadata.target() != PIPELINE).with_max_level_hint(filter::LevelFilter::TRACE);
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let fmt = match lines {
        LogLines::Text => fmt.boxed(),
        LogLines::Json => fmt.json().boxed(),
    };
    let fmt = fmt.with_filter(env_filter.and(not_pipeline));
    let Some(endpoint) = otlp else {
        tracing_subscriber::registry().with(fmt).init();
        return Ok(Telemetry { provider: None });
    };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(endpoint)
        .build()
        .map_err(|source| TelemetryError::Exporter { endpoint: endpoint.into(), source })?;
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(Resource::builder().with_service_name(service_name.to_string()).build())
        .build();
    let otel = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("sgd-hub"))
        .with_filter(filter::Targets::new().with_target(PIPELINE, tracing::Level::INFO));
    tracing_subscriber::registry().with(fmt).with(otel).init();
    EXPORTING.store(true, std::sync::atomic::Ordering::Relaxed);
    tracing::info!(endpoint, "exporting the pipeline's spans over OTLP");
    Ok(Telemetry { provider: Some(provider) })
}

/// Makes `span` a child of the W3C trace context `traceparent` (an event's attribute or a
/// message's header); anything malformed is ignored (the span then starts a trace of its own).
pub fn follow(span: &tracing::Span, traceparent: Option<&str>) {
    let Some(traceparent) = traceparent.filter(|t| !t.is_empty()) else { return };
    if span.is_disabled() {
        return;
    }
    let carrier = std::collections::HashMap::from([("traceparent".to_string(), traceparent.to_string())]);
    let context = TraceContextPropagator::new().extract(&carrier);
    let _ = span.set_parent(context);
}

/// The W3C `traceparent` of `span`, to pass on (a NATS header, a webhook's HTTP header); `None`
/// when spans are not exported.
pub fn traceparent_of(span: &tracing::Span) -> Option<String> {
    if span.is_disabled() {
        return None;
    }
    let mut carrier = std::collections::HashMap::new();
    TraceContextPropagator::new().inject_context(&span.context(), &mut carrier);
    carrier.remove("traceparent")
}

/// Makes `span` a child of the event's own `traceparent`, else of the `traceparent` header of
/// the message that carried it; looks at nothing when spans are not exported.
pub fn follow_message(span: &tracing::Span, event: Option<&str>, headers: Option<&async_nats::HeaderMap>) {
    if span.is_disabled() {
        return;
    }
    follow(span, event.or_else(|| headers.and_then(|h| h.get(TRACEPARENT)).map(|v| v.as_str())));
}

/// Writes `span`'s context as the `traceparent` header of the message it publishes, when the
/// event has no `traceparent` of its own (which the next stage follows instead), so the next
/// stage's span is this one's child. Nothing when spans are not exported.
pub fn pass_on(span: &tracing::Span, event: Option<&str>, headers: &mut async_nats::HeaderMap) {
    if event.is_some() {
        return;
    }
    if let Some(traceparent) = traceparent_of(span) {
        headers.insert(TRACEPARENT, traceparent.as_str());
    }
}

/// [`pass_on`] for the current span, when it is one of the pipeline's (`validate`, `ingest.nats`
/// around [`crate::log::validator::publish_valid`]); looks at nothing when spans are not exported.
pub fn pass_on_current(event: Option<&str>, headers: &mut async_nats::HeaderMap) {
    if !exporting() || event.is_some() {
        return;
    }
    let span = tracing::Span::current();
    if span.metadata().is_some_and(|m| m.target() == PIPELINE) {
        pass_on(&span, event, headers);
    }
}

/// The `traceparent` headers of a batch of log messages by stream sequence, read only while
/// spans are exported (empty otherwise).
pub fn traceparents_by_sequence(batch: &[async_nats::jetstream::Message]) -> std::collections::HashMap<u64, &str> {
    if !exporting() {
        return std::collections::HashMap::new();
    }
    batch
        .iter()
        .filter_map(|message| {
            let traceparent = message.headers.as_ref()?.get(TRACEPARENT)?.as_str();
            Some((message.info().ok()?.stream_sequence, traceparent))
        })
        .collect()
}
