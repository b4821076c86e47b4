//! Routing and delivery: the router copies each event to the principals it concerns
//! (`SGD_ROUTED`), each principal reads only its own copies over NATS, webhooks deliver them
//! signed (checked by an independent receiver: `scripts/webhook_receiver.py`, Python's `hmac`)
//! in order, through a receiver's outage and a SIGKILLed hub, park what always fails and replay
//! it once fixed; senders get answers (NATS ingest requests) and their own dead letters.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use anyhow::{bail, Context as _, Result};
use async_nats::jetstream::{self, consumer::pull};
use futures::StreamExt;
use serde_json::{json, Value};
use sgd_hub::tokens::Role;
use sgd_tests::{nats_server::free_port, wait_until, Api, HubProcess, InProcessHub, TestNats};

use crate::security::{adapter, secured_nats, TestCertificates};

/// A secret both the hub and the receiver know (the subscription is made with it).
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwMfKQ9r8GKYo=";

/// `scripts/webhook_receiver.py` over HTTPS on a free port, killed on drop.
struct Receiver {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
    certificates: (PathBuf, PathBuf),
}

impl Receiver {
    fn start(dir: &Path, certificates: &TestCertificates) -> Result<Self> {
        std::fs::create_dir_all(dir)?;
        let mut receiver = Self {
            child: None,
            port: free_port()?,
            dir: dir.into(),
            certificates: (certificates.cert_file.clone(), certificates.key_file.clone()),
        };
        receiver.spawn()?;
        Ok(receiver)
    }

    fn spawn(&mut self) -> Result<()> {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/webhook_receiver.py");
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.dir.join("receiver.log"))?;
        let child = Command::new("python3")
            .arg(script)
            .args(["--port", &self.port.to_string(), "--secret", SECRET])
            .arg("--cert")
            .arg(&self.certificates.0)
            .arg("--key")
            .arg(&self.certificates.1)
            .arg("--out")
            .arg(self.dir.join("received.jsonl"))
            .arg("--mode-file")
            .arg(self.dir.join("mode"))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting python3 scripts/webhook_receiver.py")?;
        self.child = Some(child);
        // Up when it accepts a connection.
        let started = std::time::Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if started.elapsed() > Duration::from_secs(10) {
                bail!("the receiver did not start: {}", std::fs::read_to_string(self.dir.join("receiver.log"))?);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    fn url(&self) -> String {
        format!("https://127.0.0.1:{}/hook", self.port)
    }

    /// Down: the process is killed (connections refused).
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Answers 500 (`true`) or verifies and records (`false`).
    fn fail(&self, failing: bool) -> Result<()> {
        Ok(std::fs::write(self.dir.join("mode"), if failing { "500" } else { "ok" })?)
    }

    /// Every delivery it accepted or refused for its signature, in arrival order.
    fn records(&self) -> Result<Vec<Value>> {
        let text = std::fs::read_to_string(self.dir.join("received.jsonl")).unwrap_or_default();
        text.lines().filter(|l| !l.trim().is_empty()).map(|l| Ok(serde_json::from_str(l)?)).collect()
    }

    /// How many distinct event ids it accepted.
    fn distinct(&self) -> Result<usize> {
        let mut ids: Vec<String> =
            self.records()?.iter().filter_map(|r| r["id"].as_str().map(str::to_string)).collect();
        ids.sort();
        ids.dedup();
        Ok(ids.len())
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.kill();
    }
}

fn cloud_event(principal: &str, event_type: &str, id: &str, subject: &str, data: Value) -> Value {
    json!({
        "specversion": "1.0",
        "id": id,
        "source": format!("/principals/{principal}/systems/test"),
        "type": event_type,
        "time": "2026-03-12T22:17:00+01:00",
        "subject": subject,
        "datacontenttype": "application/json",
        "principal": principal,
        "data": data,
    })
}

fn unit_of(principal: &str, unit: &str) -> Value {
    cloud_event(
        principal,
        "se.sgd.npo.role.activated",
        &format!("unit-{unit}"),
        unit,
        json!({"unit": unit, "role": "consumer"}),
    )
}

fn risk_flag(principal: &str, n: usize, unit: &str) -> Value {
    cloud_event(
        principal,
        "se.sgd.decision.risk.flagged",
        &format!("flag-{n}"),
        &format!("risk-{n}"),
        json!({
            "person": format!("{:064x}", n + 1),
            "flag_id": format!("risk-{n}"),
            "primary_care_unit": unit,
            "setting": "emergency_department",
        }),
    )
}

/// Publishes events to ingress with pipelined acknowledgements.
async fn publish_all(js: &jetstream::Context, events: impl IntoIterator<Item = Value>) -> Result<()> {
    let mut pending = futures::stream::FuturesOrdered::new();
    for event in events {
        let area = event["type"].as_str().unwrap_or_default().split('.').nth(2).unwrap_or_default().to_string();
        let subject = format!("sgd.in.{}.{area}", event["principal"].as_str().unwrap_or_default());
        pending.push_back(std::future::IntoFuture::into_future(
            js.publish(subject, serde_json::to_vec(&event)?.into()).await?,
        ));
        if pending.len() >= 2000 {
            pending.next().await.context("an ack")??;
        }
    }
    while let Some(ack) = pending.next().await {
        ack?;
    }
    Ok(())
}

async fn post_json(api: &Api, path: &str, body: &Value) -> Result<(u16, Value)> {
    let response = api.client.post(format!("{}{path}", api.base)).bearer_auth(&api.token).json(body).send().await?;
    let status = response.status().as_u16();
    let text = response.text().await?;
    Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
}

async fn subscribe(api: &Api, url: &str, areas: &[&str]) -> Result<String> {
    let (status, answer) =
        post_json(api, "/api/v1/subscriptions", &json!({"url": url, "areas": areas, "secret": SECRET})).await?;
    if status != 201 {
        bail!("subscribing: {status}: {answer}");
    }
    assert_eq!(answer["secret"], SECRET);
    Ok(answer["id"].as_str().context("an id")?.to_string())
}

/// Creates the durable consumer `name` on `stream` with `filter`, as the client `js` may.
async fn durable(
    js: &jetstream::Context,
    stream: &str,
    name: &str,
    filter: &str,
) -> Result<jetstream::consumer::PullConsumer> {
    js.create_consumer_on_stream(
        pull::Config { durable_name: Some(name.into()), filter_subject: filter.into(), ..Default::default() },
        stream,
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))
}

fn webhook_config(dir: &Path, certificates: &TestCertificates, extra: &str) -> Result<PathBuf> {
    let file = dir.join("hub.toml");
    std::fs::write(
        &file,
        format!(
            "[webhook]\nallow_private_targets = true\nca_file = {:?}\n{extra}\n",
            certificates.ca_file.to_str().context("a UTF-8 path")?
        ),
    )?;
    Ok(file)
}

/// A risk flag published by 1280 naming a unit of 1283 reaches 1283's webhook and its NATS
/// consumer, and no one else's; each principal's NATS user reads only its own copies and dead
/// letters; the flag's sender gets an immediate answer to its NATS request.
#[tokio::test]
async fn a_risk_flag_reaches_the_primary_care_principal_only_over_nats_and_webhook() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (generated, server) = secured_nats(dir.path(), 2)?;
    let url = server.url();
    let certificates = TestCertificates::new(&dir.path().join("tls"))?;
    let (hub_seed, ca_file) = (generated.hub_seed.clone(), certificates.ca_file.clone());
    let hub = InProcessHub::start(&url, move |c| {
        c.nats_nkey_file = Some(hub_seed);
        c.webhook.allow_private_targets = true;
        c.webhook.ca_file = Some(ca_file);
    })
    .await?;
    let seed = |code: &str| generated.adapter_seeds.iter().find(|(p, _)| p == code).map(|(_, s)| s.clone());
    let (as_1280, as_1281, as_1283) = (
        adapter(&url, &seed("1280").context("seed")?, "1280").await?,
        adapter(&url, &seed("1281").context("seed")?, "1281").await?,
        adapter(&url, &seed("1283").context("seed")?, "1283").await?,
    );

    // Webhooks of 1283 and of 1281, each through its own integrator token.
    let receiver_1283 = Receiver::start(&dir.path().join("r1283"), &certificates)?;
    let receiver_1281 = Receiver::start(&dir.path().join("r1281"), &certificates)?;
    subscribe(&hub.api(Role::Integrator, Some("1283"))?, &receiver_1283.url(), &[]).await?;
    subscribe(&hub.api(Role::Integrator, Some("1281"))?, &receiver_1281.url(), &[]).await?;

    // Each principal's own durable consumer on SGD_ROUTED, named as nats-config allows.
    let own_1283 =
        durable(&as_1283, "SGD_ROUTED", "to_1283_1", "sgd.to.1283.>").await.context("1283 creates its own consumer")?;
    let own_1281 =
        durable(&as_1281, "SGD_ROUTED", "to_1281_1", "sgd.to.1281.>").await.context("1281 creates its own consumer")?;

    // Units: 1283's and 1281's primary care units, introduced by them.
    publish_all(&as_1283, [unit_of("1283", "SE2120001283-VC1")]).await?;
    publish_all(&as_1281, [unit_of("1281", "SE2120001281-VC1")]).await?;
    let analyst = hub.api(Role::Analyst, None)?;
    wait_until(Duration::from_secs(20), || async { Ok(analyst.usage_total("area=npo").await? == 2) }).await?;

    // 1280 flags a person whose vårdcentral is 1283's, as a NATS request: answered at once.
    let flag = risk_flag("1280", 1, "SE2120001283-VC1");
    let answer = as_1280
        .client()
        .request("sgd.ingest.1280.decision", serde_json::to_vec(&flag)?.into())
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let answer: Value = serde_json::from_slice(&answer.payload)?;
    assert_eq!(answer["accepted"], true, "{answer}");
    assert!(answer["sequence"].as_u64().is_some_and(|s| s >= 3), "{answer}");
    // A refused one is answered with its reasons.
    let mut bad = risk_flag("1280", 2, "SE2120001283-VC1");
    bad["data"]["person"] = json!("19121212-1212");
    let refusal = as_1280
        .client()
        .request("sgd.ingest.1280.decision", serde_json::to_vec(&bad)?.into())
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let refusal: Value = serde_json::from_slice(&refusal.payload)?;
    assert_eq!(refusal["accepted"], false, "{refusal}");
    assert!(!refusal["problems"].as_array().context("problems")?.is_empty(), "{refusal}");
    assert!(!refusal.to_string().contains("19121212"), "a personal identity number came back: {refusal}");

    // 1283's webhook receives it, signed (verified by the receiver's own HMAC).
    wait_until(Duration::from_secs(20), || async { Ok(receiver_1283.distinct()? == 1) }).await?;
    let records = receiver_1283.records()?;
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0]["id"], "flag-1");
    assert_eq!(records[0]["type"], "se.sgd.decision.risk.flagged");
    assert!(records[0].get("verified").is_none(), "the signature did not verify: {records:?}");
    assert!(records[0]["content_type"].as_str().unwrap_or_default().starts_with("application/cloudevents+json"));
    // … and 1283's own NATS consumer has it, with the log's bytes.
    let mut messages = own_1283.fetch().max_messages(10).expires(Duration::from_secs(2)).messages().await?;
    let message = messages.next().await.context("1283's copy")?.map_err(|e| anyhow::anyhow!("{e}"))?;
    assert_eq!(message.subject.as_str(), "sgd.to.1283.decision.risk.flagged");
    assert_eq!(serde_json::from_slice::<Value>(&message.payload)?["id"], "flag-1");
    message.ack().await.map_err(|e| anyhow::anyhow!("{e}"))?;

    // No one else: 1281's receiver and consumer stay empty, and the stream holds one copy.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(receiver_1281.records()?.len(), 0, "1281's webhook received a flag for 1283's unit");
    let mut own_1281 = own_1281;
    assert_eq!(own_1281.info().await?.num_pending, 0, "1281's consumer holds a copy");
    let hub_js = jetstream::new(sgd_hub::server::connect::connect(&url, Some(&generated.hub_seed)).await?);
    let mut routed = hub_js.get_stream("SGD_ROUTED").await?;
    assert_eq!(routed.info().await?.state.messages, 1, "one copy, for 1283");

    // 1280 cannot read 1281's copies: neither a consumer of its own on 1281's subjects, nor one
    // named as 1281's, nor a pull from 1281's consumer.
    let on_others = durable(&as_1280, "SGD_ROUTED", "to_1280_1", "sgd.to.1281.>").await;
    assert!(on_others.is_err(), "1280 made a consumer on 1281's subjects");
    let named_as_others = durable(&as_1280, "SGD_ROUTED", "to_1281_2", "sgd.to.1281.>").await;
    assert!(named_as_others.is_err(), "1280 made a consumer named as 1281's");
    let pull_others = tokio::time::timeout(
        Duration::from_secs(3),
        as_1280.client().request("$JS.API.CONSUMER.MSG.NEXT.SGD_ROUTED.to_1281_1", "1".into()),
    )
    .await;
    assert!(!matches!(pull_others, Ok(Ok(_))), "1280 pulled from 1281's consumer");
    // Its own dead letters it may read: the refused flag is there.
    let dead = durable(&as_1280, "SGD_DLQ", "dlq_1280_1", "sgd.dlq.1280.>").await;
    assert!(dead.is_ok(), "1280 cannot read its own dead letters: {:?}", dead.err());

    // Over HTTP, an integrator sees its own principal's dead letters only.
    for (js, principal) in [(&as_1280, "1280"), (&as_1281, "1281")] {
        let broken = json!({"specversion": "1.0", "id": format!("broken-{principal}"), "principal": principal});
        js.publish(format!("sgd.in.{principal}.decision"), serde_json::to_vec(&broken)?.into()).await?.await?;
    }
    let integrator_1280 = hub.api(Role::Integrator, Some("1280"))?;
    wait_until(Duration::from_secs(10), || async {
        Ok(integrator_1280.get_json("/api/v1/dlq").await?["total"].as_u64() == Some(1))
    })
    .await?;
    let own = integrator_1280.get_json("/api/v1/dlq").await?;
    let items = own["items"].as_array().context("items")?;
    assert!(
        !items.is_empty() && items.iter().all(|i| i["subject"].as_str().unwrap_or_default().contains("1280")),
        "{own}"
    );
    assert_eq!(integrator_1280.get("/api/v1/dlq?principal=1281").await?.status(), 403);
    Ok(())
}

/// 50,000 events to one webhook: the receiver is down for 20 s, then answers 500 for 10 s, and
/// the hub is SIGKILLed mid-delivery and started again. Every event arrives at least once with
/// its original id, in order of first arrival, and repeats stay inside the documented window.
#[tokio::test]
async fn every_routed_event_reaches_a_webhook_through_an_outage_and_a_killed_hub() -> Result<()> {
    const EVENTS: usize = 50_000;
    const WINDOW: usize = 100;
    let nats = TestNats::start().await?;
    let dir = tempfile::tempdir()?;
    let certificates = TestCertificates::new(&dir.path().join("tls"))?;
    let config = webhook_config(
        dir.path(),
        &certificates,
        &format!("attempts = 10000\ninitial_delay_ms = 100\nmax_delay_ms = 2000\ntimeout_ms = 5000\nwindow = {WINDOW}"),
    )?;
    let config = config.to_str().context("a UTF-8 path")?.to_string();
    let mut hub = HubProcess::start(&nats.url(), &["--config", &config]).await?;
    let mut receiver = Receiver::start(&dir.path().join("receiver"), &certificates)?;
    let id = subscribe(&hub.api(Role::Integrator, Some("1283"))?, &receiver.url(), &["decision"]).await?;

    let js = nats.jetstream().await?;
    publish_all(&js, [unit_of("1283", "SE2120001283-VC1")]).await?;
    let publisher = {
        let js = js.clone();
        tokio::spawn(
            async move { publish_all(&js, (0..EVENTS).map(|n| risk_flag("1280", n, "SE2120001283-VC1"))).await },
        )
    };

    // Down for 20 s, then 500 for 10 s, then well.
    wait_until(Duration::from_secs(120), || async { Ok(receiver.distinct()? >= 3_000) }).await?;
    receiver.kill();
    tokio::time::sleep(Duration::from_secs(20)).await;
    receiver.fail(true)?;
    receiver.spawn()?;
    tokio::time::sleep(Duration::from_secs(10)).await;
    let during_outage = receiver.distinct()?;
    receiver.fail(false)?;
    let operator = hub.api(Role::Operator, None)?;
    let metrics = operator.get("/metrics").await?.text().await?;
    assert!(
        metrics.lines().any(|l| l.starts_with("sgd_webhook_failures_total{") && l.contains(&id) && !l.ends_with(" 0")),
        "the failures are not counted:\n{metrics}"
    );

    // SIGKILL mid-delivery, and a new hub.
    wait_until(Duration::from_secs(180), || async { Ok(receiver.distinct()? >= during_outage + 5_000) }).await?;
    hub.restart().await?;
    publisher.await??;
    let limit = Duration::from_secs(300);
    let waited = wait_until(limit, || async { Ok(receiver.distinct()? == EVENTS) }).await;
    let records = receiver.records()?;
    waited.with_context(|| {
        format!("{} of {EVENTS} delivered; hub log:\n{}", receiver.distinct().unwrap_or(0), hub.log())
    })?;

    // Every event once at least, with its id; every signature verified; repeats within the window.
    assert!(records.iter().all(|r| r.get("verified").is_none()), "a delivery's signature did not verify");
    let mut seen: HashMap<String, usize> = HashMap::new();
    for record in &records {
        *seen.entry(record["id"].as_str().unwrap_or_default().to_string()).or_default() += 1;
        let webhook_id = record["webhook_id"].as_str().unwrap_or_default();
        assert!(webhook_id.ends_with(">1283"), "webhook-id {webhook_id}");
    }
    for n in 0..EVENTS {
        assert!(seen.contains_key(&format!("flag-{n}")), "flag-{n} was never delivered");
    }
    let repeats = records.len() - seen.len();
    // At most the window of the killed hub, and one for each receiver kill mid-answer.
    assert!(repeats <= WINDOW + 1, "{repeats} repeats, more than the window of {WINDOW} (+1)");
    // Order: first arrivals follow the log, across the outage and the killed hub (the new
    // deliverer waits for what the dead one held before it takes anything later).
    let firsts: Vec<usize> = {
        let mut first_seen = std::collections::HashSet::new();
        records
            .iter()
            .filter_map(|r| r["id"].as_str()?.strip_prefix("flag-")?.parse::<usize>().ok())
            .filter(|n| first_seen.insert(*n))
            .collect()
    };
    let out_of_order = firsts.windows(2).filter(|w| w[1] < w[0]).count();
    assert_eq!(out_of_order, 0, "deliveries arrived before an earlier event");
    eprintln!("delivered {} events in {} deliveries ({repeats} repeats)", seen.len(), records.len());
    Ok(())
}

/// A receiver that always fails: each event is parked after its attempts, the subscription goes
/// on (and shows its failures), and the parked ones are delivered by a replay once the receiver
/// is fixed. Pause holds deliveries back; only the subscription's own principal sees it.
#[tokio::test]
async fn a_failing_receiver_gets_its_events_parked_and_replayed_once_fixed() -> Result<()> {
    let nats = TestNats::start().await?;
    let dir = tempfile::tempdir()?;
    let certificates = TestCertificates::new(&dir.path().join("tls"))?;
    let ca_file = certificates.ca_file.clone();
    let hub = InProcessHub::start(&nats.url(), move |c| {
        c.webhook.allow_private_targets = true;
        c.webhook.ca_file = Some(ca_file);
        c.webhook.attempts = 3;
        c.webhook.initial_delay_ms = 50;
        c.webhook.max_delay_ms = 200;
    })
    .await?;
    let receiver = Receiver::start(&dir.path().join("receiver"), &certificates)?;
    receiver.fail(true)?;
    let owner = hub.api(Role::Integrator, Some("1283"))?;
    let id = subscribe(&owner, &receiver.url(), &["decision"]).await?;
    let js = nats.jetstream().await?;
    publish_all(&js, [unit_of("1283", "SE2120001283-VC1")]).await?;
    publish_all(&js, (0..5).map(|n| risk_flag("1280", n, "SE2120001283-VC1"))).await?;

    let parked_path = format!("/api/v1/subscriptions/{id}/parked");
    wait_until(Duration::from_secs(30), || async { Ok(owner.get_json(&parked_path).await?["total"] == 5) }).await?;
    let parked = owner.get_json(&parked_path).await?;
    let items = parked["items"].as_array().context("items")?;
    assert_eq!(items.len(), 5);
    assert!(
        items.iter().all(|p| p["attempts"] == 3 && p["reason"].as_str().unwrap_or_default().contains("500")),
        "{parked}"
    );
    assert_eq!(items[0]["event_id"], "flag-0", "oldest first");
    let listed = owner.get_json("/api/v1/subscriptions").await?;
    let delivery = &listed["items"][0]["delivery"];
    assert_eq!(delivery["parked"], 5, "{listed}");
    assert!(delivery["failures"].as_u64().unwrap_or(0) >= 15, "{listed}");
    assert!(delivery["last_error"].as_str().unwrap_or_default().contains("500"), "{listed}");
    assert_eq!(receiver.records()?.len(), 0);

    // Another principal cannot see it.
    let other = hub.api(Role::Integrator, Some("1281"))?;
    assert_eq!(other.get(&format!("/api/v1/subscriptions/{id}")).await?.status(), 404);
    assert_eq!(other.get_json("/api/v1/subscriptions").await?["items"].as_array().map(Vec::len), Some(0));

    // Fixed: new events flow again, and a replay delivers the parked ones.
    receiver.fail(false)?;
    publish_all(&js, [risk_flag("1280", 5, "SE2120001283-VC1")]).await?;
    wait_until(Duration::from_secs(20), || async { Ok(receiver.distinct()? == 1) }).await?;
    let (status, replay) = post_json(&owner, &format!("/api/v1/subscriptions/{id}/parked/replay"), &json!({})).await?;
    assert_eq!(status, 200, "{replay}");
    assert_eq!(replay["delivered"], 5, "{replay}");
    assert_eq!(receiver.distinct()?, 6);
    assert_eq!(owner.get_json(&parked_path).await?["total"], 0);
    assert!(receiver.records()?.iter().all(|r| r.get("verified").is_none()));

    // Paused: held back; resumed: delivered.
    let (status, _) = post_json(&owner, &format!("/api/v1/subscriptions/{id}/pause"), &json!({})).await?;
    assert_eq!(status, 200);
    publish_all(&js, [risk_flag("1280", 6, "SE2120001283-VC1")]).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(receiver.distinct()?, 6, "delivered while paused");
    let (status, _) = post_json(&owner, &format!("/api/v1/subscriptions/{id}/resume"), &json!({})).await?;
    assert_eq!(status, 200);
    wait_until(Duration::from_secs(20), || async { Ok(receiver.distinct()? == 7) }).await?;

    // Removed: gone for its owner too.
    let removed = owner
        .client
        .delete(format!("{}/api/v1/subscriptions/{id}", owner.base))
        .bearer_auth(&owner.token)
        .send()
        .await?;
    assert_eq!(removed.status(), 204);
    assert_eq!(owner.get(&format!("/api/v1/subscriptions/{id}")).await?.status(), 404);
    // Refused at once: an internal URL on a hub that allows none, plain http, a bad secret.
    let (status, body) = post_json(&owner, "/api/v1/subscriptions", &json!({"url": "http://example.se/hook"})).await?;
    assert_eq!(status, 400, "{body}");
    Ok(())
}

/// A hub that starts with no routing state (a new replica, a removed store) replays the log into
/// its rules' state without copying again what `SGD_ROUTED` holds, even past the duplicate
/// window, and then routes new events with that state (a plan's participants from the log).
#[tokio::test]
async fn a_new_hub_rebuilds_its_routing_state_without_routing_the_log_again() -> Result<()> {
    let nats = TestNats::start().await?;
    let js = nats.jetstream().await?;
    let plan = |id: &str| {
        cloud_event(
            "12",
            "se.sgd.plans.plan.created",
            &format!("plan-{id}"),
            id,
            json!({"plan_id": id, "kind": "svu", "person": format!("{:064x}", 7), "participants": ["12", "1283"]}),
        )
    };
    let first = InProcessHub::start(&nats.url(), |c| c.dedup_window_secs = 1).await?;
    publish_all(&js, [plan("p1"), plan("p2")]).await?;
    let mut routed = js.get_stream("SGD_ROUTED").await?;
    wait_until(Duration::from_secs(20), || {
        let mut routed = routed.clone();
        async move { Ok(routed.info().await?.state.messages == 4) }
    })
    .await?;
    first.stop().await?;
    tokio::time::sleep(Duration::from_secs(2)).await; // past the duplicate window

    let second = InProcessHub::start(&nats.url(), |c| c.dedup_window_secs = 1).await?;
    let closed = cloud_event("12", "se.sgd.plans.plan.closed", "closed-p1", "p1", json!({"plan_id": "p1"}));
    publish_all(&js, [closed]).await?;
    wait_until(Duration::from_secs(20), || {
        let mut routed = routed.clone();
        async move { Ok(routed.info().await?.state.messages >= 6) }
    })
    .await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let info = routed.info().await?;
    assert_eq!(info.state.messages, 6, "the log was copied again, or the closing went to the wrong principals");
    for (seq, recipient) in [(5, "12"), (6, "1283")] {
        let message = routed.get_raw_message(seq).await?;
        assert_eq!(message.subject.as_str(), format!("sgd.to.{recipient}.plans.plan.closed"));
    }
    second.stop().await
}
