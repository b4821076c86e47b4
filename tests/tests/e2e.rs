//! End-to-end tests: real `nats-server` processes, the real hub (in-process or as a child process),
//! read back through the HTTP API. One test binary, one module per concern.

use std::time::Duration;

use anyhow::Result;
use async_nats::jetstream;
use serde_json::{json, Value};
use sgd_hub::tokens::Role;
use sgd_tests::{wait_until, Api, InProcessHub, TestNats};

/// Publishes raw bytes to an ingress subject with a `Nats-Msg-Id`, waiting for the ack.
async fn publish_raw(js: &jetstream::Context, subject: &str, msg_id: &str, body: Vec<u8>) -> Result<()> {
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Msg-Id", msg_id);
    js.publish_with_headers(subject.to_string(), headers, body.into())
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(())
}

/// The ingress subject of an event (its principal and its type's area).
fn ingress_subject(event: &Value) -> String {
    let area = event["type"].as_str().unwrap().split('.').nth(2).unwrap();
    format!("sgd.in.{}.{area}", event["principal"].as_str().unwrap())
}

/// Waits until the usage total for `query` is `expected`, then checks it stays there.
async fn expect_usage(api: &Api, query: &str, expected: u64, limit: Duration) -> Result<()> {
    let result = wait_until(limit, || async { Ok(api.usage_total(query).await? >= expected) }).await;
    let total = api.usage_total(query).await?;
    result.map_err(|e| e.context(format!("usage total for {query:?} is {total}, expected {expected}")))?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(api.usage_total(query).await?, expected, "usage for {query:?}");
    Ok(())
}

/// Every message payload of a stream, read with direct gets.
async fn stream_payloads(js: &jetstream::Context, name: &str) -> Result<Vec<String>> {
    let mut stream = js.get_stream(name).await?;
    let info = stream.info().await?.clone();
    let mut out = Vec::new();
    if info.state.messages == 0 {
        return Ok(out);
    }
    for seq in info.state.first_sequence..=info.state.last_sequence {
        if let Ok(message) = stream.get_raw_message(seq).await {
            out.push(String::from_utf8_lossy(&message.payload).into_owned());
        }
    }
    Ok(out)
}

/// Publishing over NATS: every valid example of every type reaches the read model.
mod nats_ingest {
    use super::*;

    #[tokio::test]
    async fn every_valid_example_is_counted_in_usage_for_all_six_areas() -> Result<()> {
        let nats = TestNats::start().await?;
        let hub = InProcessHub::start(&nats.url(), |_| {}).await?;
        let js = nats.jetstream().await?;
        let examples = sgd_tests::valid_examples();
        for (path, bytes) in &examples {
            let event: Value = serde_json::from_slice(bytes)?;
            let msg_id = format!("{}/{}", event["source"].as_str().unwrap(), event["id"].as_str().unwrap());
            publish_raw(&js, &ingress_subject(&event), &msg_id, bytes.clone())
                .await
                .map_err(|e| e.context(path.display().to_string()))?;
        }
        let api = hub.api(Role::Analyst, None)?;
        expect_usage(&api, "", examples.len() as u64, Duration::from_secs(30)).await?;
        for area in ["npo", "sdk", "plans", "decision", "deviation", "video"] {
            assert!(api.usage_total(&format!("area={area}")).await? > 0, "no usage for {area}");
        }
        // v1 and v2 of sdk.message.delivered count as one type
        assert_eq!(api.usage_total("type=se.sgd.sdk.message.delivered").await?, 2);
        let ready = api.get("/readyz").await?;
        assert_eq!(ready.status(), 200);
        hub.stop().await
    }

    #[tokio::test]
    async fn usage_buckets_filters_and_csv() -> Result<()> {
        let nats = TestNats::start().await?;
        // exact small counts: suppression is tested in the read_model module
        let hub = InProcessHub::start(&nats.url(), |c| c.privacy_threshold = 0).await?;
        let js = nats.jetstream().await?;
        let base: Value = serde_json::from_slice(&std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../schemas/examples/plans/plan.closed.v1.valid.json"
        ))?)?;
        // 23:30 UTC on 31 March is 1 April in Sweden (CEST).
        for (i, time) in
            ["2026-03-31T23:30:00Z", "2026-03-31T10:00:00+02:00", "2026-04-02T10:00:00+02:00"].iter().enumerate()
        {
            let mut event = base.clone();
            event["id"] = json!(format!("bucket-{i}"));
            event["time"] = json!(time);
            let msg_id = format!("{}/bucket-{i}", event["source"].as_str().unwrap());
            publish_raw(&js, &ingress_subject(&event), &msg_id, serde_json::to_vec(&event)?).await?;
        }
        let api = hub.api(Role::Analyst, None)?;
        expect_usage(&api, "", 3, Duration::from_secs(20)).await?;
        let months = api.get_json("/api/v1/usage?bucket=month").await?;
        let buckets: Vec<(&str, u64)> = months["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (r["bucket"].as_str().unwrap(), r["count"].as_u64().unwrap()))
            .collect();
        assert_eq!(buckets, vec![("2026-03", 1), ("2026-04", 2)]);
        assert_eq!(api.usage_total("from=2026-04-01&to=2026-04-01").await?, 1);
        let principal = base["principal"].as_str().unwrap();
        assert_eq!(api.usage_total(&format!("principal={principal}&area=plans")).await?, 3);
        assert_eq!(api.usage_total("area=npo").await?, 0);
        let csv = api.get("/api/v1/usage?bucket=month&format=csv").await?.text().await?;
        let mut lines = csv.lines();
        assert_eq!(lines.next(), Some("bucket,area,type,principal,count"));
        assert_eq!(lines.next(), Some(format!("2026-03,plans,se.sgd.plans.plan.closed,{principal},1").as_str()));
        let via_accept = api
            .client
            .get(format!("{}/api/v1/usage", api.base))
            .bearer_auth(&api.token)
            .header("Accept", "text/csv")
            .send()
            .await?;
        assert!(via_accept.headers()["content-type"].to_str()?.starts_with("text/csv"));
        for bad in ["bucket=week", "from=yesterday", "area=nothing", "principal=9999", "unknown=1"] {
            let response = api.get(&format!("/api/v1/usage?{bad}")).await?;
            assert_eq!(response.status(), 400, "{bad}");
        }
        // `to` before `from` is an empty range (each parameter is valid on its own, as the
        // OpenAPI document says), not an error.
        assert_eq!(api.usage_total("from=2026-05-01&to=2026-04-01").await?, 0);
        hub.stop().await
    }
}

/// The HTTP binding: structured, binary and batch modes, and who may post what.
mod http_ingest {
    use super::*;

    fn example(path: &str) -> Value {
        let full = format!("{}/../schemas/examples/{path}", env!("CARGO_MANIFEST_DIR"));
        serde_json::from_slice(&std::fs::read(full).unwrap()).unwrap()
    }

    #[tokio::test]
    async fn structured_binary_and_batch_modes_reach_the_read_model() -> Result<()> {
        let nats = TestNats::start().await?;
        let hub = InProcessHub::start(&nats.url(), |_| {}).await?;
        let event = example("plans/plan.created.v1.valid.json");
        let principal = event["principal"].as_str().unwrap().to_string();
        let integrator = hub.api(Role::Integrator, Some(&principal))?;
        let url = format!("{}/api/v1/events", integrator.base);

        // structured
        let response = integrator
            .client
            .post(&url)
            .bearer_auth(&integrator.token)
            .header("Content-Type", "application/cloudevents+json")
            .body(serde_json::to_vec(&event)?)
            .send()
            .await?;
        assert_eq!(response.status(), 202);
        let body: Value = response.json().await?;
        assert_eq!(body["accepted"], json!([event["id"]]));

        // the same again: accepted, reported as a duplicate, not stored twice
        let again: Value = integrator
            .client
            .post(&url)
            .bearer_auth(&integrator.token)
            .header("Content-Type", "application/cloudevents+json")
            .body(serde_json::to_vec(&event)?)
            .send()
            .await?
            .json()
            .await?;
        assert_eq!(again["duplicates"], json!([event["id"]]));

        // binary
        let mut binary = integrator
            .client
            .post(&url)
            .bearer_auth(&integrator.token)
            .header("Content-Type", "application/json")
            .header("ce-specversion", "1.0")
            .header("ce-id", "binary-1")
            .header("ce-type", event["type"].as_str().unwrap())
            .header("ce-source", event["source"].as_str().unwrap())
            .header("ce-time", event["time"].as_str().unwrap())
            .header("ce-principal", &principal);
        binary = binary.header("ce-subject", "svu-binary");
        let mut data = event["data"].clone();
        data["plan_id"] = json!("svu-binary");
        let response = binary.body(serde_json::to_vec(&data)?).send().await?;
        let status = response.status();
        let text = response.text().await?;
        assert_eq!(status, 202, "{text}");

        // batch
        let batch: Vec<Value> = (0..3)
            .map(|i| {
                let mut e = event.clone();
                e["id"] = json!(format!("batch-{i}"));
                e
            })
            .collect();
        let response = integrator
            .client
            .post(&url)
            .bearer_auth(&integrator.token)
            .header("Content-Type", "application/cloudevents-batch+json")
            .body(serde_json::to_vec(&batch)?)
            .send()
            .await?;
        assert_eq!(response.status(), 202);
        assert_eq!(response.json::<Value>().await?["accepted"].as_array().unwrap().len(), 3);

        let analyst = hub.api(Role::Analyst, None)?;
        expect_usage(&analyst, "type=se.sgd.plans.plan.created", 5, Duration::from_secs(20)).await?;
        hub.stop().await
    }

    #[tokio::test]
    async fn refusals_list_every_reason_and_publish_nothing() -> Result<()> {
        let nats = TestNats::start().await?;
        let hub = InProcessHub::start(&nats.url(), |_| {}).await?;
        let event = example("plans/plan.created.v1.valid.json");
        let principal = event["principal"].as_str().unwrap().to_string();
        let other = if principal == "1281" { "1280" } else { "1281" };
        let integrator = hub.api(Role::Integrator, Some(&principal))?;
        let foreign = hub.api(Role::Integrator, Some(other))?;
        let url = format!("{}/api/v1/events", integrator.base);
        let post = |api: &Api, content_type: &str, body: Vec<u8>| {
            api.client.post(&url).bearer_auth(&api.token).header("Content-Type", content_type).body(body).send()
        };

        // another principal's event
        let response = post(&foreign, "application/cloudevents+json", serde_json::to_vec(&event)?).await?;
        assert_eq!(response.status(), 400);
        let body: Value = response.json().await?;
        assert_eq!(body["details"][0]["reason"], "principal_mismatch", "{body}");

        // a batch with one bad event: every reason listed, nothing published
        let mut bad = event.clone();
        bad["id"] = json!("bad-1");
        bad["data"]["kind"] = json!("rehab");
        bad["time"] = json!("soon");
        let mut good = event.clone();
        good["id"] = json!("good-1");
        let response =
            post(&integrator, "application/cloudevents-batch+json", serde_json::to_vec(&vec![good, bad])?).await?;
        assert_eq!(response.status(), 400);
        let body: Value = response.json().await?;
        let details = body["details"].as_array().unwrap();
        assert_eq!(details.len(), 1);
        assert_eq!(details[0]["index"], 1);
        let paths: Vec<&str> =
            details[0]["problems"].as_array().unwrap().iter().map(|p| p["path"].as_str().unwrap()).collect();
        assert!(paths.contains(&"/time") && paths.contains(&"/data/kind"), "{paths:?}");

        // a personal identity number is refused and never echoed back
        let mut pii = event.clone();
        pii["subject"] = json!("19121212-1212");
        let response = post(&integrator, "application/cloudevents+json", serde_json::to_vec(&pii)?).await?;
        assert_eq!(response.status(), 400);
        let text = response.text().await?;
        assert!(text.contains("\"pii\"") && !sgd_schemas::pii::contains(&text), "{text}");

        // not a CloudEvents content type
        let response = post(&integrator, "text/plain", b"hello".to_vec()).await?;
        assert_eq!(response.status(), 415);
        // not JSON
        let response = post(&integrator, "application/cloudevents+json", b"{oops".to_vec()).await?;
        assert_eq!(response.status(), 400);
        // an empty batch
        let response = post(&integrator, "application/cloudevents-batch+json", b"[]".to_vec()).await?;
        assert_eq!(response.status(), 400);

        let js = nats.jetstream().await?;
        assert!(stream_payloads(&js, "SGD_EVENTS").await?.is_empty(), "a refused request published something");
        hub.stop().await
    }

    #[tokio::test]
    async fn every_route_checks_token_and_role() -> Result<()> {
        let nats = TestNats::start().await?;
        let hub = InProcessHub::start(&nats.url(), |_| {}).await?;
        let analyst = hub.api(Role::Analyst, None)?;
        let operator = hub.api(Role::Operator, None)?;
        let integrator = hub.api(Role::Integrator, Some("1280"))?;
        let client = reqwest::Client::new();
        let base = analyst.base.clone();

        assert_eq!(client.get(format!("{base}/healthz")).send().await?.status(), 200);
        for path in ["/readyz", "/metrics", "/api/v1/usage", "/api/v1/dlq", "/api/v1/openapi.json"] {
            assert_eq!(client.get(format!("{base}{path}")).send().await?.status(), 401, "{path} without token");
            let wrong = client.get(format!("{base}{path}")).bearer_auth("sgd_00000000_wrong").send().await?;
            assert_eq!(wrong.status(), 401, "{path} with an unknown token");
        }
        assert_eq!(client.post(format!("{base}/api/v1/events")).send().await?.status(), 401);
        let expect = [
            ("/api/v1/usage", &analyst, 200),
            ("/api/v1/usage", &operator, 200),
            ("/api/v1/usage", &integrator, 403),
            ("/api/v1/dlq", &analyst, 403),
            ("/api/v1/dlq", &operator, 200),
            ("/metrics", &analyst, 403),
            ("/metrics", &operator, 200),
            ("/api/v1/openapi.json", &integrator, 200),
        ];
        for (path, api, status) in expect {
            assert_eq!(api.get(path).await?.status(), status, "{path}");
        }
        for api in [&analyst, &operator] {
            let response =
                api.client.post(format!("{base}/api/v1/events")).bearer_auth(&api.token).body("{}").send().await?;
            assert_eq!(response.status(), 403);
        }
        let metrics = operator.get("/metrics").await?.text().await?;
        for name in ["sgd_events_validated", "sgd_events_refused", "sgd_events_projected", "sgd_projection_lag_events"]
        {
            assert!(metrics.contains(name), "{name} missing from /metrics:\n{metrics}");
        }
        // a token removed from the file stops working at once
        std::fs::write(&hub.tokens_file, r#"{"tokens": []}"#)?;
        assert_eq!(analyst.get("/api/v1/usage").await?.status(), 401);
        hub.stop().await
    }
}

/// Identity: JetStream's window and the read model's memory of applied identities.
mod duplicates {
    use super::*;

    #[tokio::test]
    async fn the_same_identity_counts_once_even_after_the_dedup_window() -> Result<()> {
        let nats = TestNats::start().await?;
        let hub = InProcessHub::start(&nats.url(), |c| c.dedup_window_secs = 1).await?;
        let js = nats.jetstream().await?;
        let (_, bytes) =
            sgd_tests::valid_examples().into_iter().find(|(p, _)| p.ends_with("plan.closed.v1.valid.json")).unwrap();
        let event: Value = serde_json::from_slice(&bytes)?;
        let msg_id = format!("{}/{}", event["source"].as_str().unwrap(), event["id"].as_str().unwrap());
        let subject = ingress_subject(&event);
        publish_raw(&js, &subject, &msg_id, bytes.clone()).await?;
        publish_raw(&js, &subject, &msg_id, bytes.clone()).await?; // inside the window
        let operator = hub.api(Role::Operator, None)?;
        expect_usage(&operator, "", 1, Duration::from_secs(20)).await?;
        tokio::time::sleep(Duration::from_millis(2500)).await;
        // "days later": outside JetStream's window, so the log holds it twice
        publish_raw(&js, &subject, &msg_id, bytes.clone()).await?;
        wait_until(Duration::from_secs(20), || async {
            let ready = operator.get_json("/readyz").await?;
            Ok(ready["checkpoint"] == 2)
        })
        .await?;
        assert_eq!(operator.usage_total("").await?, 1);
        assert_eq!(stream_payloads(&js, "SGD_EVENTS").await?.len(), 2);
        let metrics = operator.get("/metrics").await?.text().await?;
        assert!(metrics.contains("sgd_events_duplicate_total 1"), "{metrics}");
        hub.stop().await
    }
}

/// The dead-letter stream: every reason, readable by a person, with no personal identity number.
mod dead_letters {
    use super::*;

    #[tokio::test]
    async fn every_refusal_reason_lands_in_the_dlq_and_no_stream_keeps_a_personal_number() -> Result<()> {
        let nats = TestNats::start().await?;
        let hub = InProcessHub::start(&nats.url(), |c| c.max_event_bytes = 8 * 1024).await?;
        let js = nats.jetstream().await?;
        let valid: Value = serde_json::from_slice(&std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../schemas/examples/plans/plan.created.v1.valid.json"
        ))?)?;
        let principal = valid["principal"].as_str().unwrap().to_string();
        let other = if principal == "1281" { "1280" } else { "1281" };
        let plans = format!("sgd.in.{principal}.plans");
        let with = |f: &dyn Fn(&mut Value)| {
            let mut e = valid.clone();
            f(&mut e);
            serde_json::to_vec(&e).unwrap()
        };
        let cases: Vec<(&str, String, Vec<u8>)> = vec![
            ("pii", plans.clone(), with(&|e| e["data"]["person"] = json!("19121212-1212"))),
            ("too_large", plans.clone(), with(&|e| e["note"] = json!("x".repeat(10_000)))),
            ("malformed", plans.clone(), b"\xff\xfe not even utf-8".to_vec()),
            ("unknown_type", plans.clone(), with(&|e| e["type"] = json!("se.sgd.plans.plan.archived"))),
            (
                "unknown_version",
                plans.clone(),
                with(&|e| e["dataschema"] = json!("urn:sgd:schema:plans.plan.created:v7")),
            ),
            ("principal_mismatch", format!("sgd.in.{other}.plans"), with(&|_| {})),
            ("area_mismatch", format!("sgd.in.{principal}.npo"), with(&|_| {})),
            (
                "envelope",
                plans.clone(),
                with(&|e| {
                    e.as_object_mut().unwrap().remove("time");
                }),
            ),
            ("schema", plans.clone(), with(&|e| e["data"]["kind"] = json!("rehab"))),
        ];
        for (i, (_, subject, body)) in cases.iter().enumerate() {
            publish_raw(&js, subject, &format!("case-{i}"), body.clone()).await?;
        }
        let operator = hub.api(Role::Operator, None)?;
        wait_until(Duration::from_secs(20), || async {
            Ok(operator.get_json("/api/v1/dlq?limit=100").await?["total"] == cases.len())
        })
        .await?;
        let dlq = operator.get_json("/api/v1/dlq?limit=100").await?;
        for (reason, subject, _) in &cases {
            let item = dlq["items"]
                .as_array()
                .unwrap()
                .iter()
                .find(|i| i["reason"] == *reason)
                .unwrap_or_else(|| panic!("no dead letter with reason {reason}: {dlq}"));
            assert_eq!(item["subject"], *subject);
            assert!(!item["problems"][0]["message"].as_str().unwrap().is_empty());
            assert!(item["received_at"].is_string());
        }
        let pii_item = dlq["items"].as_array().unwrap().iter().find(|i| i["reason"] == "pii").unwrap();
        assert!(pii_item["body"].as_str().unwrap().contains(sgd_schemas::pii::REDACTED));
        assert_eq!(pii_item["problems"][0]["path"], "/data/person");

        // nothing reached the log, ingress is drained, and no stream holds the number
        assert!(stream_payloads(&js, "SGD_EVENTS").await?.is_empty());
        wait_until(Duration::from_secs(10), || async { Ok(stream_payloads(&js, "SGD_INGRESS").await?.is_empty()) })
            .await?;
        for stream in ["SGD_EVENTS", "SGD_DLQ", "SGD_INGRESS"] {
            for payload in stream_payloads(&js, stream).await? {
                assert!(!sgd_schemas::pii::contains(&payload), "{stream} holds a personal number: {payload}");
            }
        }
        assert!(operator.get("/api/v1/dlq?limit=0").await?.status() == 400);
        hub.stop().await
    }

    /// Regression: with a duplicate window on `SGD_INGRESS`, a refused event corrected and resent
    /// with the same `Nats-Msg-Id` was acknowledged as a repeat and never validated nor counted.
    #[tokio::test]
    async fn regression_a_refused_event_corrected_and_resent_with_its_id_is_counted() -> Result<()> {
        let nats = TestNats::start().await?;
        let hub = InProcessHub::start(&nats.url(), |_| {}).await?;
        let js = nats.jetstream().await?;
        let mut event: Value = serde_json::from_slice(&std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../schemas/examples/plans/plan.created.v1.valid.json"
        ))?)?;
        let msg_id = format!("{}/{}", event["source"].as_str().unwrap(), event["id"].as_str().unwrap());
        let subject = ingress_subject(&event);
        let kind = event["data"]["kind"].clone();
        event["data"]["kind"] = json!("rehab");
        publish_raw(&js, &subject, &msg_id, serde_json::to_vec(&event)?).await?;
        let operator = hub.api(Role::Operator, None)?;
        wait_until(Duration::from_secs(20), || async { Ok(operator.get_json("/api/v1/dlq").await?["total"] == 1) })
            .await?;
        event["data"]["kind"] = kind;
        // Ingress keeps a 100 ms window, the least JetStream takes; a person correcting an event
        // takes longer than that.
        tokio::time::sleep(Duration::from_millis(150)).await;
        publish_raw(&js, &subject, &msg_id, serde_json::to_vec(&event)?).await?;
        expect_usage(&operator, "", 1, Duration::from_secs(20)).await?;
        hub.stop().await
    }
}

#[path = "e2e/integrators_doc.rs"]
mod integrators_doc;

#[path = "e2e/demo.rs"]
mod demo;

#[path = "e2e/adapters.rs"]
mod adapters;

#[path = "e2e/read_model.rs"]
mod read_model;

#[path = "e2e/security.rs"]
mod security;

#[path = "e2e/access.rs"]
mod access;

#[path = "e2e/operations.rs"]
mod operations;

#[path = "e2e/faults.rs"]
mod faults;

#[path = "e2e/cluster.rs"]
mod cluster;

#[path = "e2e/browser.rs"]
mod browser;

#[path = "e2e/hostile.rs"]
mod hostile;

#[path = "e2e/routing.rs"]
mod routing;

#[path = "e2e/containers.rs"]
mod containers;

#[path = "e2e/monitoring.rs"]
mod monitoring;

/// OpenTelemetry spans over OTLP: one trace per event from ingest to delivery; off by default.
#[path = "e2e/tracing_export.rs"]
mod tracing_export;
