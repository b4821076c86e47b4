//! Tracing export (docs/operations.md, "Tracing"): with an OTLP endpoint the pipeline's spans reach
//! a collector (a tiny OTLP/HTTP receiver here, decoding what it gets with `opentelemetry-proto`)
//! in each event's trace with the parents the docs name, and a webhook receiver gets the delivery
//! span's `traceparent`; without one nothing is exported, and in neither case do the log lines
//! carry the pipeline's spans, even with `RUST_LOG` asking for them.

use std::{
    collections::HashMap,
    path::Path,
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::{bail, Context as _, Result};
use opentelemetry_proto::tonic::{
    collector::trace::v1::ExportTraceServiceRequest,
    common::v1::{any_value, AnyValue},
};
use prost::Message as _;
use serde_json::{json, Value};
use sgd_hub::tokens::Role;
use sgd_tests::{wait_until, Api, HubProcess, TestNats};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

/// A secret for the webhook subscription (the test's receiver does not check signatures).
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwMfKQ9r8GKYo=";

/// Logging as verbose as it gets for the pipeline's target and the code that runs inside its
/// spans: were the spans not kept out of the log lines, these would print them.
const VERBOSE_LOG: &str = "info,async_nats=warn,sgd_pipeline=trace,sgd_hub=trace,reqwest=debug";

/// What would show in a log line if a pipeline span leaked into it (text format: `name{fields}:`).
const SPAN_NOISE: [&str; 8] = [
    "ingest.http",
    "ingest.nats",
    "validate{",
    "project{",
    "route{",
    "deliver.webhook",
    "sgd_pipeline",
    "log.sequence",
];

/// One request a [`Recorder`] answered.
struct Recorded {
    path: String,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

/// A minimal HTTP/1.1 server on a free loopback port: answers 200 to every request (keep-alive,
/// `Content-Length` bodies) and keeps each one. Stands in for the OTLP collector and for a
/// webhook receiver.
struct Recorder {
    port: u16,
    requests: Arc<Mutex<Vec<Recorded>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Recorder {
    async fn start() -> Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let kept = requests.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(answer_each(stream, kept.clone()));
            }
        });
        Ok(Self { port, requests, task })
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// How many requests it answered.
    fn count(&self) -> usize {
        self.requests.lock().unwrap().len()
    }

    /// The `traceparent` header of each request to `path`, in arrival order.
    fn traceparents(&self, path: &str) -> Vec<Option<String>> {
        let requests = self.requests.lock().unwrap();
        requests.iter().filter(|r| r.path == path).map(|r| r.headers.get("traceparent").cloned()).collect()
    }

    /// The bodies of the requests to `path`, with their `traceparent` header.
    fn bodies(&self, path: &str) -> Vec<(Vec<u8>, Option<String>)> {
        let requests = self.requests.lock().unwrap();
        requests
            .iter()
            .filter(|r| r.path == path)
            .map(|r| (r.body.clone(), r.headers.get("traceparent").cloned()))
            .collect()
    }

    /// Every span of every OTLP export it received, with each export's `service.name`.
    fn spans(&self) -> Result<Vec<ExportedSpan>> {
        let requests = self.requests.lock().unwrap();
        let mut out = Vec::new();
        for request in requests.iter().filter(|r| r.path == "/v1/traces") {
            let export = ExportTraceServiceRequest::decode(request.body.as_slice()).context("an OTLP export")?;
            for resource in export.resource_spans {
                let attributes = resource.resource.map(|r| r.attributes).unwrap_or_default();
                let service = attributes.iter().find(|a| a.key == "service.name").map(|a| text(&a.value));
                for scope in resource.scope_spans {
                    for span in scope.spans {
                        out.push(ExportedSpan {
                            service: service.clone().unwrap_or_default(),
                            name: span.name,
                            trace_id: hex(&span.trace_id),
                            span_id: hex(&span.span_id),
                            parent: hex(&span.parent_span_id),
                            attributes: span.attributes.iter().map(|a| (a.key.clone(), text(&a.value))).collect(),
                        });
                    }
                }
            }
        }
        Ok(out)
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn answer_each(stream: tokio::net::TcpStream, kept: Arc<Mutex<Vec<Recorded>>>) -> Result<()> {
    let mut stream = BufReader::new(stream);
    loop {
        let mut line = String::new();
        if stream.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let path = line.split_whitespace().nth(1).unwrap_or_default().to_string();
        let mut headers = HashMap::new();
        loop {
            let mut header = String::new();
            if stream.read_line(&mut header).await? == 0 {
                return Ok(());
            }
            let Some((name, value)) = header.trim_end().split_once(':') else { break };
            headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_string());
        }
        let length = headers.get("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
        let mut body = vec![0; length];
        stream.read_exact(&mut body).await?;
        kept.lock().unwrap().push(Recorded { path, headers, body });
        stream.get_mut().write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").await?;
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// An attribute's value as text.
fn text(value: &Option<AnyValue>) -> String {
    match value.as_ref().and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        other => format!("{other:?}"),
    }
}

/// A span as the collector received it (ids in hex; `parent` empty for a trace's root).
#[derive(Debug, Clone)]
struct ExportedSpan {
    service: String,
    name: String,
    trace_id: String,
    span_id: String,
    parent: String,
    attributes: HashMap<String, String>,
}

impl ExportedSpan {
    fn attribute(&self, key: &str) -> &str {
        self.attributes.get(key).map(String::as_str).unwrap_or_default()
    }
}

/// A W3C traceparent of the test's own: trace `4bf9…<n>`, span `00f0…<n>`, sampled.
fn traceparent(n: u8) -> (String, String, String) {
    let (trace, span) = (format!("4bf92f3577b34da6a3ce929d0e0e47{n:02x}"), format!("00f067aa0ba902{n:02x}"));
    (format!("00-{trace}-{span}-01"), trace, span)
}

/// A plan made by principal 12 with 1283: routed to both.
fn plan(name: &str, traceparent: Option<&str>) -> Result<Value> {
    let path = format!("{}/../schemas/examples/plans/plan.created.v1.valid.json", env!("CARGO_MANIFEST_DIR"));
    let mut event: Value = serde_json::from_slice(&std::fs::read(path)?)?;
    event["id"] = json!(name);
    event["subject"] = json!(format!("svu-{name}"));
    event["data"]["plan_id"] = json!(format!("svu-{name}"));
    if let Some(traceparent) = traceparent {
        event["traceparent"] = json!(traceparent);
    }
    Ok(event)
}

/// Posts `event` over HTTP (structured mode), with `traceparent` as the request's header if given.
async fn post(api: &Api, event: &Value, traceparent: Option<&str>) -> Result<()> {
    let mut request = api
        .client
        .post(format!("{}/api/v1/events", api.base))
        .bearer_auth(&api.token)
        .header("Content-Type", "application/cloudevents+json")
        .body(serde_json::to_vec(event)?);
    if let Some(traceparent) = traceparent {
        request = request.header("traceparent", traceparent);
    }
    let response = request.send().await?;
    let status = response.status();
    if status != 202 {
        bail!("POST /api/v1/events: {status}: {}", response.text().await?);
    }
    Ok(())
}

/// A hub with webhooks allowed to the test's plain-HTTP loopback receiver, started with `env`.
async fn start_hub(nats: &TestNats, dir: &Path, env: &[(&str, &str)]) -> Result<HubProcess> {
    let config = dir.join("hub.toml");
    std::fs::write(&config, "[webhook]\nallow_http = true\nallow_private_targets = true\n")?;
    HubProcess::start_with_env(&nats.url(), &["--config", config.to_str().context("a UTF-8 path")?], env).await
}

/// `text` without its ANSI colour sequences (`ESC [ … m`), as the text log format writes them.
fn without_colours(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            chars.by_ref().find(|&c| c == 'm');
        } else {
            out.push(c);
        }
    }
    out
}

/// Subscribes `url` to what is routed to 1283.
async fn subscribe_1283(hub: &HubProcess, url: &str) -> Result<()> {
    let api = hub.api(Role::Integrator, Some("1283"))?;
    let response = api
        .client
        .post(format!("{}/api/v1/subscriptions", api.base))
        .bearer_auth(&api.token)
        .json(&json!({"url": url, "secret": SECRET}))
        .send()
        .await?;
    let status = response.status();
    if status != 201 {
        bail!("subscribing: {status}: {}", response.text().await?);
    }
    Ok(())
}

fn assert_no_span_noise(log: &str) {
    let log = without_colours(log);
    for noise in SPAN_NOISE {
        let line = log.lines().find(|l| l.contains(noise));
        assert!(line.is_none(), "a log line carries the pipeline's spans ({noise}): {}", line.unwrap_or_default());
    }
}

/// Five plans, each routed to 12 and 1283 and delivered to 1283's webhook, each by another way
/// in: over HTTP with a traceparent of its own (A), as a NATS request with one (B), published to
/// ingress with only a `traceparent` NATS header (C), over HTTP with only the request's header
/// (D), over HTTP with none at all (E). Each trace holds exactly the spans the docs list, with
/// their parents; the exporter is flushed when the hub stops (SIGTERM), as its guard drops.
#[tokio::test]
async fn each_event_is_one_trace_from_ingest_through_projection_routing_and_delivery() -> Result<()> {
    let started = std::time::Instant::now();
    let nats = TestNats::start().await?;
    let (collector, receiver) = (Recorder::start().await?, Recorder::start().await?);
    let dir = tempfile::tempdir()?;
    let endpoint = collector.url("/v1/traces");
    // The standard variable: the hub's own (`otlp_endpoint`, HUB_OTLP_ENDPOINT) is not set.
    let env = [("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", endpoint.as_str()), ("RUST_LOG", VERBOSE_LOG)];
    let mut hub = start_hub(&nats, dir.path(), &env).await?;
    subscribe_1283(&hub, &receiver.url("/hook")).await?;
    let integrator = hub.api(Role::Integrator, Some("12"))?;
    let (tp_a, trace_a, span_a) = traceparent(0xa);
    let (tp_b, trace_b, span_b) = traceparent(0xb);
    let (tp_c, trace_c, span_c) = traceparent(0xc);
    let (tp_d, trace_d, span_d) = traceparent(0xd);

    post(&integrator, &plan("trace-a", Some(&tp_a))?, None).await?;
    let client = async_nats::connect(nats.url()).await?;
    let answer =
        client.request("sgd.ingest.12.plans", serde_json::to_vec(&plan("trace-b", Some(&tp_b))?)?.into()).await?;
    let answer: Value = serde_json::from_slice(&answer.payload)?;
    assert_eq!(answer["accepted"], true, "{answer}");
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Msg-Id", "trace-c");
    headers.insert("traceparent", tp_c.as_str());
    let js = async_nats::jetstream::new(client);
    js.publish_with_headers("sgd.in.12.plans", headers, serde_json::to_vec(&plan("trace-c", None)?)?.into())
        .await?
        .await?;
    post(&integrator, &plan("trace-d", None)?, Some(&tp_d)).await?;
    post(&integrator, &plan("trace-e", None)?, None).await?;

    wait_until(Duration::from_secs(15), || async { Ok(receiver.traceparents("/hook").len() >= 5) })
        .await
        .context("five deliveries to 1283's webhook")?;
    let analyst = hub.api(Role::Analyst, None)?;
    wait_until(Duration::from_secs(10), || async {
        Ok(analyst.usage_total("type=se.sgd.plans.plan.created").await? == 5)
    })
    .await?;
    // The spans still queued are flushed when the hub stops (its telemetry guard drops).
    assert!(hub.terminate().await?, "the hub did not stop cleanly:\n{}", hub.log());
    wait_until(Duration::from_secs(5), || async {
        let spans = collector.spans()?;
        Ok(spans.iter().filter(|s| s.name == "deliver.webhook").count() >= 5
            && spans.iter().filter(|s| s.name == "project").count() >= 5)
    })
    .await
    .context("every span exported by the time the hub exits")?;

    let spans = collector.spans()?;
    assert!(spans.iter().all(|s| s.service == "sgd-hub"), "service.name: {spans:#?}");
    let trace_of = |event_id: &str| -> String {
        let first = spans.iter().find(|s| s.attribute("event.id") == event_id && s.name != "deliver.webhook");
        first.map(|s| s.trace_id.clone()).unwrap_or_default()
    };
    let in_trace =
        |trace: &str| -> Vec<ExportedSpan> { spans.iter().filter(|s| s.trace_id == trace).cloned().collect() };
    let names = |trace: &[ExportedSpan]| -> Vec<String> {
        let mut names: Vec<String> = trace.iter().map(|s| s.name.clone()).collect();
        names.sort();
        names
    };
    let one = |trace: &[ExportedSpan], name: &str, recipient: Option<&str>| -> ExportedSpan {
        let found: Vec<&ExportedSpan> = trace
            .iter()
            .filter(|s| s.name == name && recipient.is_none_or(|r| s.attribute("recipient") == r))
            .collect();
        assert_eq!(found.len(), 1, "one {name} ({recipient:?}) in {trace:#?}");
        found[0].clone()
    };
    let expected = |ingest: &str| {
        let mut names = vec![ingest, "project", "route", "route", "deliver.webhook"];
        names.sort();
        names.into_iter().map(String::from).collect::<Vec<_>>()
    };

    // A and B carry their own traceparent: every stage is its child.
    for (id, ingest, trace, parent) in
        [("trace-a", "ingest.http", &trace_a, &span_a), ("trace-b", "ingest.nats", &trace_b, &span_b)]
    {
        let trace_spans = in_trace(trace);
        assert_eq!(names(&trace_spans), expected(ingest), "{id}: {trace_spans:#?}");
        for span in &trace_spans {
            assert_eq!(&span.parent, parent, "{id}: {} is not a child of the event's traceparent", span.name);
        }
        let ingested = one(&trace_spans, ingest, None);
        assert_eq!((ingested.attribute("event.id"), ingested.attribute("outcome")), (id, "accepted"));
        assert_eq!(ingested.attribute("event.type"), "se.sgd.plans.plan.created");
        let routed: Vec<&str> =
            trace_spans.iter().filter(|s| s.name == "route").map(|s| s.attribute("recipient")).collect();
        assert!(routed.contains(&"12") && routed.contains(&"1283"), "{id}: routed to {routed:?}");
    }

    // C has only a NATS header on its ingress message: `validate` is the header's child and
    // passes itself on in the log message's header, which projection and routing follow; the
    // routed copy carries the `route` span, which the delivery follows.
    // D has only the HTTP request's header: `ingest.http` is its child, the rest the same.
    // E has none: `ingest.http` starts a trace.
    let trace_e = trace_of("trace-e");
    assert!(!trace_e.is_empty() && trace_e != trace_d, "E's trace: {spans:#?}");
    for (id, first, trace, parent) in [
        ("trace-c", "validate", trace_c.as_str(), span_c.as_str()),
        ("trace-d", "ingest.http", trace_d.as_str(), span_d.as_str()),
        ("trace-e", "ingest.http", trace_e.as_str(), ""),
    ] {
        let trace_spans = in_trace(trace);
        assert_eq!(names(&trace_spans), expected(first), "{id}: {trace_spans:#?}");
        let first = one(&trace_spans, first, None);
        assert_eq!((first.parent.as_str(), first.attribute("event.id")), (parent, id), "{id}: {first:#?}");
        for name in ["project", "route"] {
            for span in trace_spans.iter().filter(|s| s.name == name) {
                assert_eq!(span.parent, first.span_id, "{id}: {name} follows the log message's header");
            }
        }
        let route_1283 = one(&trace_spans, "route", Some("1283"));
        let deliver = one(&trace_spans, "deliver.webhook", None);
        assert_eq!(deliver.parent, route_1283.span_id, "{id}: the delivery follows the routed copy's header");
    }

    // Each delivery told the receiver its own span, in the event's trace.
    let deliveries: Vec<ExportedSpan> = spans.iter().filter(|s| s.name == "deliver.webhook").cloned().collect();
    assert_eq!(deliveries.len(), 5, "{deliveries:#?}");
    for (body, header) in receiver.bodies("/hook") {
        let event: Value = serde_json::from_slice(&body)?;
        let header = header.with_context(|| format!("no traceparent header delivering {}", event["id"]))?;
        let deliver = deliveries
            .iter()
            .find(|s| header == format!("00-{}-{}-01", s.trace_id, s.span_id))
            .with_context(|| format!("the header {header} names no delivery span"))?;
        assert_eq!(deliver.attribute("outcome"), "delivered");
        assert_eq!(deliver.attribute("recipient"), "1283");
        assert_eq!(deliver.trace_id, trace_of(event["id"].as_str().unwrap_or_default()), "{}", event["id"]);
    }

    // The log keeps E's bytes as posted; the `ingest.http` span rides in its message's header.
    let ingest_e = one(&in_trace(&trace_e), "ingest.http", None);
    let sequence: u64 = ingest_e.attribute("log.sequence").parse().context("E's log.sequence")?;
    let logged = js.get_stream("SGD_EVENTS").await?.get_raw_message(sequence).await?;
    let logged_event: Value = serde_json::from_slice(&logged.payload)?;
    assert_eq!(logged_event["id"], "trace-e");
    assert!(logged_event.get("traceparent").is_none(), "the log's bytes changed: {logged_event}");
    assert_eq!(
        logged.headers.get("traceparent").map(|v| v.as_str().to_string()),
        Some(format!("00-{}-{}-01", ingest_e.trace_id, ingest_e.span_id))
    );

    let log = hub.log();
    assert!(log.contains("exporting the pipeline's spans over OTLP"), "{log}");
    assert!(log.contains("sgd_hub::projection::batch"), "RUST_LOG did not reach the code inside the spans:\n{log}");
    assert_no_span_noise(&log);
    eprintln!("tracing export: {} spans checked in {:?}", spans.len(), started.elapsed());
    Ok(())
}

/// Off by default: no endpoint (the generic `OTEL_EXPORTER_OTLP_ENDPOINT` does not turn it on),
/// nothing is exported, and the log has no span in it; a receiver still gets the event's own
/// traceparent (the routed copy's header), and none for an event without one.
#[tokio::test]
async fn without_an_endpoint_nothing_is_exported_and_the_log_carries_no_spans() -> Result<()> {
    let nats = TestNats::start().await?;
    let (collector, receiver) = (Recorder::start().await?, Recorder::start().await?);
    let dir = tempfile::tempdir()?;
    let base = collector.url("");
    let mut hub = start_hub(
        &nats,
        dir.path(),
        &[("OTEL_EXPORTER_OTLP_ENDPOINT", &base), ("OTEL_BSP_SCHEDULE_DELAY", "50"), ("RUST_LOG", VERBOSE_LOG)],
    )
    .await?;
    subscribe_1283(&hub, &receiver.url("/hook")).await?;
    let integrator = hub.api(Role::Integrator, Some("12"))?;
    let (tp_a, _, _) = traceparent(0xa);
    post(&integrator, &plan("quiet-a", Some(&tp_a))?, None).await?;
    post(&integrator, &plan("quiet-e", None)?, Some(&traceparent(0xd).0)).await?;
    wait_until(Duration::from_secs(15), || async { Ok(receiver.traceparents("/hook").len() >= 2) }).await?;
    let mut told: Vec<(String, Option<String>)> = receiver
        .bodies("/hook")
        .into_iter()
        .map(|(body, header)| {
            Ok((serde_json::from_slice::<Value>(&body)?["id"].as_str().unwrap_or_default().to_string(), header))
        })
        .collect::<Result<_>>()?;
    told.sort();
    assert_eq!(told, vec![("quiet-a".to_string(), Some(tp_a)), ("quiet-e".to_string(), None)]);
    assert!(hub.terminate().await?, "the hub did not stop cleanly:\n{}", hub.log());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(collector.count(), 0, "something was exported with no endpoint configured");
    let log = hub.log();
    assert!(!log.contains("exporting the pipeline's spans"), "{log}");
    assert!(log.contains("sgd_hub::projection::batch"), "RUST_LOG did not reach the code inside the spans:\n{log}");
    assert_no_span_noise(&log);
    Ok(())
}
