//! Operations end to end: `hub tail` and the live stream, `hub status` and the metrics, dead
//! letters replayed after a fix, and `hub rebuild` (online swap, `--check`, killed midway,
//! `--offline` for a read model that will not open, rebuilds started back to back).

use std::{
    process::{Command, Output, Stdio},
    time::Duration,
};

use anyhow::{bail, ensure, Context, Result};
use async_nats::jetstream;
use serde_json::{json, Value};
use sgd_adapters::simulator::{Simulator, SimulatorConfig};
use sgd_hub::tokens::Role;
use sgd_tests::{hub_binary, wait_until, Api, HubProcess, InProcessHub, TestNats};

/// Simulator events as an adapter would put them on the wire: (subject, msg id, body).
fn simulated(seed: u64, n: usize) -> Vec<(String, String, bytes::Bytes)> {
    Simulator::new(seed, SimulatorConfig::default())
        .take(n)
        .map(|(source, draft)| sgd_adapters::publisher::encode(&source, &draft).expect("simulator events encode"))
        .collect()
}

/// Publishes with at most 1,000 acknowledgements outstanding.
async fn publish(js: &jetstream::Context, events: &[(String, String, bytes::Bytes)]) -> Result<()> {
    let mut pending = std::collections::VecDeque::new();
    for (subject, msg_id, body) in events {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", msg_id.as_str());
        let ack = js
            .publish_with_headers(subject.clone(), headers, body.clone())
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        pending.push_back(ack);
        if pending.len() >= 1000 {
            pending.pop_front().expect("pending").await.map_err(|e| anyhow::anyhow!("{e}"))?;
        }
    }
    for ack in pending {
        ack.await.map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    Ok(())
}

async fn publish_json(js: &jetstream::Context, event: &Value) -> Result<()> {
    let area = event["type"].as_str().context("type")?.split('.').nth(2).context("area")?;
    let subject = format!("sgd.in.{}.{area}", event["principal"].as_str().context("principal")?);
    let msg_id =
        format!("{}/{}", event["source"].as_str().unwrap_or_default(), event["id"].as_str().unwrap_or_default());
    publish(js, &[(subject, msg_id, serde_json::to_vec(event)?.into())]).await
}

/// Runs `hub <args>` to its end (at most two minutes) with extra environment.
async fn hub_command(args: &[&str], env: &[(&str, &str)]) -> Result<Output> {
    let mut command = Command::new(hub_binary()?);
    command.args(args).env("RUST_LOG", "warn").stdout(Stdio::piped()).stderr(Stdio::piped());
    for (k, v) in env {
        command.env(k, v);
    }
    let mut child = command.spawn()?;
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while child.try_wait()?.is_none() {
        if std::time::Instant::now() > deadline {
            child.kill()?;
            let output = child.wait_with_output()?;
            bail!("hub {} did not end within two minutes: {}", args.join(" "), text(&output));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(child.wait_with_output()?)
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

/// Waits until the hub has applied the whole log, its views too: a hub restarted after a kill
/// has its checkpoint at the end at once, but answers from the stored views until the projection
/// has replayed the log into them (it reports `caught_up` only then).
async fn wait_projected(api: &Api, js: &jetstream::Context, limit: Duration) -> Result<()> {
    wait_until(limit, || async {
        let last = js.get_stream("SGD_EVENTS").await?.info().await?.state.last_sequence;
        let projection = api.get_json("/api/v1/status").await?["projection"].clone();
        let checkpoint = projection["checkpoint"].as_u64().context("checkpoint in /api/v1/status")?;
        Ok(last > 0 && checkpoint >= last && projection["caught_up"] == true)
    })
    .await
}

fn valid_event(id: &str, principal: &str) -> Value {
    json!({
        "specversion": "1.0", "id": id, "source": format!("/principals/{principal}/systems/ops-test"),
        "type": "se.sgd.sdk.address.published", "time": "2026-03-02T10:15:00+01:00", "principal": principal,
        "datacontenttype": "application/json",
        "data": {"unit": "SE2120001124-HT1", "function_address": "SE2120001124-FA1"},
    })
}

/// `hub tail` prints one line per log event (principal name, type, subject) with its filters, the
/// raw CloudEvent with --json, and refuses a filter that names nothing; `/api/v1/stream` sends the
/// same events as Server-Sent Events, and only operators may follow the dead letters.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_and_the_live_stream_follow_the_log_with_filters() -> Result<()> {
    let nats = TestNats::start().await?;
    let hub = InProcessHub::start(&nats.url(), |_| {}).await?;
    let js = nats.jetstream().await?;
    let analyst = hub.api(Role::Analyst, None)?;
    for (i, principal) in ["1280", "1281", "1280", "12"].iter().enumerate() {
        publish_json(&js, &valid_event(&format!("tail-{i}"), principal)).await?;
    }
    wait_projected(&hub.api(Role::Operator, None)?, &js, Duration::from_secs(20)).await?;

    let url = nats.url();
    let env = [("HUB_NATS_URL", url.as_str())];
    let output = hub_command(&["tail", "--principal", "1280", "--from-seq", "1", "--limit", "2"], &env).await?;
    ensure!(output.status.success(), "hub tail failed: {}", text(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    ensure!(lines.len() == 2, "two lines for 1280: {stdout}");
    for line in &lines {
        ensure!(
            line.contains("1280")
                && line.contains("Malmö")
                && line.contains("se.sgd.sdk.address.published")
                && line.contains("sgd.events.1280.sdk.address.published"),
            "a tail line lacks principal, name, type or subject: {line}"
        );
    }
    let output = hub_command(
        &["tail", "--type", "se.sgd.sdk.address.published", "--since", "1h", "--json", "--limit", "4"],
        &env,
    )
    .await?;
    ensure!(output.status.success(), "hub tail --json failed: {}", text(&output));
    let ids: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).map(|v| v["id"].as_str().unwrap_or_default().to_string()))
        .collect::<Result<_, _>>()?;
    ensure!(ids == ["tail-0", "tail-1", "tail-2", "tail-3"], "raw events in log order: {ids:?}");
    let output = hub_command(&["tail", "--area", "npx", "--limit", "1"], &env).await?;
    ensure!(!output.status.success() && text(&output).contains("unknown area"), "{}", text(&output));

    // The live stream: the two old 1280 events from sequence 1, then a new one as it arrives.
    let response = analyst
        .client
        .get(format!("{}/api/v1/stream?principal=1280&from_seq=1", analyst.base))
        .bearer_auth(&analyst.token)
        .send()
        .await?;
    ensure!(response.status() == 200, "stream: {}", response.status());
    ensure!(
        response.headers().get("content-type").and_then(|v| v.to_str().ok()) == Some("text/event-stream"),
        "content type"
    );
    let mut response = response;
    let mut received = String::new();
    let mut events: Vec<Value> = Vec::new();
    let mut published_new = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while events.len() < 3 {
        if events.len() == 2 && !published_new {
            publish_json(&js, &valid_event("tail-live", "1280")).await?;
            publish_json(&js, &valid_event("tail-other", "1281")).await?;
            published_new = true;
        }
        let chunk = tokio::time::timeout_at(deadline, response.chunk()).await.context("the live stream went quiet")?;
        received.push_str(&String::from_utf8_lossy(&chunk?.context("stream ended")?));
        while let Some(end) = received.find("\n\n") {
            let message: String = received.drain(..end + 2).collect();
            if let Some(data) =
                message.lines().find_map(|l| l.strip_prefix("data: ").or_else(|| l.strip_prefix("data:")))
            {
                ensure!(message.contains("event: event"), "an SSE message without its event name: {message}");
                events.push(serde_json::from_str(data)?);
            }
        }
    }
    let ids: Vec<&str> = events.iter().map(|e| e["id"].as_str().unwrap_or_default()).collect();
    ensure!(ids == ["tail-0", "tail-2", "tail-live"], "SSE ids: {ids:?}");
    ensure!(events.iter().all(|e| e["principal_name"] == "Malmö" && e["seq"].as_u64().is_some()), "{events:?}");
    ensure!(events.iter().all(|e| e.get("data").is_none()), "the stream must not carry event data");

    let forbidden = analyst.get("/api/v1/stream?dlq=true").await?;
    ensure!(forbidden.status() == 403, "an analyst following dead letters: {}", forbidden.status());
    let bad = analyst.get("/api/v1/stream?type=se.sgd.nothing.here").await?;
    ensure!(bad.status() == 400, "an unknown type: {}", bad.status());
    // A live stream still open does not hold the hub up at shutdown: it ends.
    tokio::time::timeout(Duration::from_secs(30), hub.stop()).await.context("shutdown waited for a live stream")??;
    let rest =
        tokio::time::timeout(Duration::from_secs(5), response.chunk()).await.context("the stream did not end")?;
    ensure!(matches!(rest, Ok(None) | Err(_)), "the live stream went on after shutdown");
    Ok(())
}

/// A dead letter refused for its size is replayed after the limit is raised and lands in the log
/// once; one that fails again stays; one whose copy was redacted is not replayable. `hub status`
/// and the metrics show the dead letters by reason and the adapters' heartbeats.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_replayed_after_a_fix_and_status_shows_them() -> Result<()> {
    let nats = TestNats::start().await?;
    let js = nats.jetstream().await?;
    // A hub with a limit too small for ordinary events refuses them as too large.
    let strict = InProcessHub::start(&nats.url(), |c| c.max_event_bytes = 200).await?;
    let operator = strict.api(Role::Operator, None)?;
    publish_json(&js, &valid_event("replay-size", "1280")).await?;
    let mut personal = valid_event("replay-pii", "1280");
    personal["data"]["unit"] = json!("191212121212");
    publish_json(&js, &personal).await?;
    wait_until(Duration::from_secs(20), || async {
        Ok(operator.get_json("/api/v1/dlq").await?["total"].as_u64() == Some(2))
    })
    .await?;
    strict.stop().await?;

    // The fix: a hub with the default limit. An event without a required field is refused by it.
    let hub = InProcessHub::start(&nats.url(), |_| {}).await?;
    let operator = hub.api(Role::Operator, None)?;
    let mut broken = valid_event("replay-broken", "1281");
    broken["data"] = json!({"unit": "SE2120001124-HT1"});
    publish_json(&js, &broken).await?;
    wait_until(Duration::from_secs(20), || async {
        Ok(operator.get_json("/api/v1/dlq").await?["total"].as_u64() == Some(3))
    })
    .await?;
    let status = operator.get_json("/api/v1/status").await?;
    ensure!(status["dlq_by_reason"]["too_large"] == 1, "{status}");
    ensure!(status["dlq_by_reason"]["pii"] == 1 && status["dlq_by_reason"]["schema"] == 1, "{status}");
    let listed = operator.get_json("/api/v1/dlq?reason=too_large").await?;
    ensure!(listed["items"].as_array().map(Vec::len) == Some(1), "{listed}");
    ensure!(listed["items"][0]["replayable"] == true, "{listed}");
    let size_seq = listed["items"][0]["seq"].as_u64().context("seq")?;
    let seq_of = |reason: &'static str| {
        let operator = operator.clone();
        async move {
            let listed = operator.get_json(&format!("/api/v1/dlq?reason={reason}")).await?;
            listed["items"][0]["seq"].as_u64().with_context(|| format!("no {reason} dead letter: {listed}"))
        }
    };
    let (broken_seq, pii_seq) = (seq_of("schema").await?, seq_of("pii").await?);
    let shown = operator.get_json(&format!("/api/v1/dlq/{pii_seq}")).await?;
    ensure!(shown["replayable"] == false && !shown.to_string().contains("191212121212"), "{shown}");

    // `hub dlq replay` through the CLI: one lands, one is refused again (the command fails), one is skipped.
    let api_url = operator.base.clone();
    let env = [("HUB_API_URL", api_url.as_str()), ("HUB_TOKEN", operator.token.as_str())];
    let (a, b, c) = (size_seq.to_string(), broken_seq.to_string(), pii_seq.to_string());
    let output = hub_command(&["dlq", "replay", &a, &b, &c], &env).await?;
    let out = text(&output);
    ensure!(!output.status.success(), "a replay with a refusal must fail: {out}");
    ensure!(out.contains("1 logged, 1 refused again (kept), 1 skipped"), "{out}");
    wait_projected(&operator, &js, Duration::from_secs(20)).await?;
    ensure!(operator.usage_total("").await? == 1, "the replayed event is counted once");
    // Replayed again: it is gone from the DLQ; the one refused again is still there.
    let again: Value = operator
        .client
        .post(format!("{}/api/v1/dlq/replay", operator.base))
        .bearer_auth(&operator.token)
        .json(&json!({"seq": [size_seq, broken_seq]}))
        .send()
        .await?
        .json()
        .await?;
    ensure!(again["results"][0]["outcome"] == "not_found" && again["results"][1]["outcome"] == "refused", "{again}");
    let events = js.get_stream("SGD_EVENTS").await?.info().await?.state.messages;
    ensure!(events == 1, "the log holds the replayed event once, not {events}");
    let output = hub_command(&["dlq", "list"], &env).await?;
    ensure!(output.status.success() && text(&output).contains("2 dead letters in all"), "{}", text(&output));

    // A heartbeat, then the status and the metrics show it.
    let source = sgd_adapters::cloudevent::SourceSystem::new("1283", "ops-adapter").context("source")?;
    let (subject, msg_id, body) =
        sgd_adapters::publisher::encode(&source, &sgd_adapters::publisher::heartbeat("ops-adapter"))?;
    publish(&js, &[(subject, msg_id, body)]).await?;
    wait_projected(&operator, &js, Duration::from_secs(20)).await?;
    let output = hub_command(&["status"], &env).await?;
    let out = text(&output);
    ensure!(output.status.success(), "{out}");
    for expected in
        ["SGD_EVENTS", "checkpoint 2", "dead letters       2", "pii", "schema", "ops-adapter", "Helsingborg"]
    {
        ensure!(out.contains(expected), "hub status lacks {expected:?}:\n{out}");
    }
    let metrics = operator.get("/metrics").await?.text().await?;
    for expected in [
        "sgd_dlq_messages{reason=\"schema\"} 1",
        "sgd_dlq_messages{reason=\"pii\"} 1",
        "sgd_adapter_heartbeat_age_seconds{principal=\"1283\",adapter=\"ops-adapter\"}",
        "sgd_projection_batch_size_bucket",
        "sgd_projection_commit_seconds_bucket",
        "sgd_http_request_duration_seconds_bucket{le=",
    ] {
        ensure!(metrics.contains(expected), "/metrics lacks {expected}");
    }
    hub.stop().await
}

/// `hub rebuild --check` finds no difference; `hub rebuild` swaps in a fresh model while events
/// keep arriving and the API keeps answering; a hub killed mid-rebuild comes back with its served
/// model untouched; a read model that will not open is recovered by `hub rebuild --offline`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebuild_swaps_checks_survives_a_kill_and_recovers_a_broken_model() -> Result<()> {
    const FIRST: usize = 30_000;
    let nats = TestNats::start().await?;
    let js = nats.jetstream().await?;
    let mut hub = HubProcess::start(&nats.url(), &[]).await?;
    let operator = hub.api(Role::Operator, None)?;
    let events = simulated(5, FIRST + 10_000);
    publish(&js, &events[..FIRST]).await?;
    wait_projected(&operator, &js, Duration::from_secs(120)).await?;
    let before = served_answers(&operator).await?;
    let api_url = operator.base.clone();
    let env = [("HUB_API_URL", api_url.as_str()), ("HUB_TOKEN", operator.token.as_str())];

    let output = hub_command(&["rebuild", "--check"], &env).await?;
    ensure!(output.status.success(), "rebuild --check: {}", text(&output));
    ensure!(text(&output).contains(": 0 differences"), "{}", text(&output));

    // A rebuild with swap while more events arrive and the API is asked all along.
    let publisher = {
        let (js, rest) = (js.clone(), events[FIRST..].to_vec());
        tokio::spawn(async move { publish(&js, &rest).await })
    };
    let asking = {
        let api = operator.clone();
        tokio::spawn(async move {
            let mut answered = 0;
            for _ in 0..40 {
                let status = api.get("/api/v1/goals").await?.status();
                ensure!(status == 200, "the API stopped answering during a rebuild: {status}");
                answered += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            anyhow::Ok(answered)
        })
    };
    let output = hub_command(&["rebuild"], &env).await?;
    ensure!(output.status.success(), "rebuild: {}", text(&output));
    ensure!(text(&output).contains("now serving"), "{}", text(&output));
    publisher.await??;
    asking.await??;
    wait_projected(&operator, &js, Duration::from_secs(120)).await?;
    ensure!(operator.usage_total("").await? == (FIRST + 10_000) as u64, "usage after the swap");
    let current = std::fs::read_to_string(hub.data_dir.join("CURRENT")).context("CURRENT after a swap")?;
    wait_until(Duration::from_secs(60), || async { Ok(!hub.data_dir.join("read-model").exists()) })
        .await
        .context("the replaced read model was not removed")?;
    let output = hub_command(&["rebuild", "--check"], &env).await?;
    ensure!(text(&output).contains(": 0 differences"), "after the swap: {}", text(&output));

    // Killed mid-rebuild: the served model is untouched and the abandoned one removed at start.
    let before_kill = served_answers(&operator).await?;
    let started: Value = operator
        .client
        .post(format!("{}/api/v1/admin/rebuild", operator.base))
        .bearer_auth(&operator.token)
        .json(&json!({}))
        .send()
        .await?
        .json()
        .await?;
    ensure!(started["phase"] == "replaying", "{started}");
    wait_until(Duration::from_secs(30), || async {
        Ok(operator.get_json("/api/v1/admin/rebuild").await?["reached"].as_u64().unwrap_or(0) > 0)
    })
    .await?;
    hub.kill();
    hub.restart().await?;
    let operator = hub.api(Role::Operator, None)?;
    ensure!(std::fs::read_to_string(hub.data_dir.join("CURRENT"))? == current, "CURRENT moved");
    let dirs: Vec<_> = std::fs::read_dir(&hub.data_dir)?
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("read-model"))
        .collect();
    ensure!(dirs.len() == 1, "the abandoned rebuild was not removed: {dirs:?}");
    wait_projected(&operator, &js, Duration::from_secs(60)).await?;
    ensure!(served_answers(&operator).await? == before_kill, "the served model changed after a killed rebuild");
    ensure!(before_kill != before, "the answers did not move with the new events");

    // A read model that will not open: a clear error, then `hub rebuild --offline` recovers it.
    hub.kill();
    let served = hub.data_dir.join(current.trim());
    {
        let db = sled::open(&served)?;
        db.insert("meta/format", &2u32.to_be_bytes())?;
        db.flush()?;
    }
    let failed = HubProcess::launch(&nats.url(), &hub.data_dir, &[]);
    let mut failed = failed?;
    let status = failed.wait_exit(Duration::from_secs(30)).await?;
    ensure!(status.is_some_and(|s| !s.success()), "a hub on a read model of another format must stop");
    ensure!(failed.log().contains("rebuild it from the log"), "no clear error: {}", failed.log());
    drop(failed);
    let data_dir = hub.data_dir.display().to_string();
    let url = nats.url();
    let output =
        hub_command(&["rebuild", "--offline"], &[("HUB_NATS_URL", url.as_str()), ("HUB_DATA_DIR", data_dir.as_str())])
            .await?;
    ensure!(output.status.success(), "rebuild --offline: {}", text(&output));
    hub.restart().await?;
    let operator = hub.api(Role::Operator, None)?;
    wait_projected(&operator, &js, Duration::from_secs(60)).await?;
    ensure!(served_answers(&operator).await? == before_kill, "the recovered model answers differently");
    if !hub.data_dir.join("CURRENT").exists() {
        bail!("no CURRENT after an offline rebuild");
    }
    Ok(())
}

/// Follows the running rebuild to its end and returns its last report: calmly while it replays,
/// then every few milliseconds, so that what the caller does next comes right after the end.
async fn follow_rebuild(api: &Api) -> Result<Value> {
    let ended = |report: &Value| report["phase"] == "done" || report["phase"] == "failed";
    wait_until(Duration::from_secs(60), || async {
        let report = api.get_json("/api/v1/admin/rebuild").await?;
        Ok(ended(&report) || !(report["phase"] == "replaying" || report["phase"] == "pausing"))
    })
    .await?;
    loop {
        let response = api.get("/api/v1/admin/rebuild").await?;
        // Asked this often, the token may meet its rate limit: ask again.
        if response.status() != 429 {
            let report: Value = response.error_for_status()?.json().await?;
            if ended(&report) {
                return Ok(report);
            }
        }
        tokio::time::sleep(Duration::from_micros(500)).await;
    }
}

/// Regression: a rebuild started right after another one swapped in its model removed the
/// directory the projection still wrote its views to, and the hub stopped ("views store at
/// …/read-model/views/journal-….bin: No such file or directory"). Rebuilds (swaps, and a check
/// now and then) are started back to back while events arrive, each right after the one before
/// ends; a start while one runs is refused with 409. The hub keeps running, every rebuild
/// finishes, the served model answers as a clean rebuild does (also after a kill right after a
/// swap), and only its directory is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebuilds_started_back_to_back_keep_the_hub_running_and_its_answers_exact() -> Result<()> {
    const EVENTS: usize = 12_000;
    const REBUILDS: usize = 8;
    let nats = TestNats::start().await?;
    let js = nats.jetstream().await?;
    // The views are written only at stops and after 10,000 changed records, so the first model
    // has no journal file yet at the first swap: the hub that failed wrote the replaced model's
    // views there, creating that file, while the next rebuild removed the directory (about one
    // run in three on 2 busy cores). Identities and timeline entries go to disk every 3,000.
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("hub.toml");
    std::fs::write(
        &config,
        "views_flush_ms = 3600000\nidentities_in_memory = 3000\ntimeline_entries_in_memory = 3000\n",
    )?;
    let mut hub = HubProcess::start(&nats.url(), &["--config", config.to_str().context("utf-8 path")?]).await?;
    // Separate tokens: the close watching stays within each token's rate limit.
    let (operator, watcher) = (hub.api(Role::Operator, None)?, hub.api(Role::Operator, None)?);
    let events = simulated(11, EVENTS);
    publish(&js, &events[..EVENTS / 4]).await?;
    wait_projected(&operator, &js, Duration::from_secs(60)).await?;
    // The rest arrives in small bursts all through the rebuilds.
    let publisher = {
        let (js, rest) = (js.clone(), events[EVENTS / 4..].to_vec());
        tokio::spawn(async move {
            for chunk in rest.chunks(100) {
                publish(&js, chunk).await?;
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            anyhow::Ok(())
        })
    };
    let start = |check: bool| {
        let api = operator.clone();
        async move {
            let response = api
                .client
                .post(format!("{}/api/v1/admin/rebuild", api.base))
                .bearer_auth(&api.token)
                .json(&json!({ "check": check }))
                .send()
                .await?;
            anyhow::Ok(response.status().as_u16())
        }
    };
    // The first rebuild: the next start is asked for without a pause from its swap on, so it
    // comes the moment the first one lets it.
    ensure!(start(false).await? == 202, "the first rebuild did not start");
    ensure!(start(false).await? == 409, "a second rebuild started while the first ran");
    wait_until(Duration::from_secs(60), || async {
        let phase = watcher.get_json("/api/v1/admin/rebuild").await?["phase"].clone();
        Ok(!(phase == "replaying" || phase == "pausing"))
    })
    .await?;
    let starter = [operator.clone(), hub.api(Role::Operator, None)?, hub.api(Role::Operator, None)?];
    let mut asked = 0usize;
    loop {
        // Several tokens, each under its rate limit; 409 while the first still runs.
        let api = &starter[asked % starter.len()];
        asked += 1;
        let response = api
            .client
            .post(format!("{}/api/v1/admin/rebuild", api.base))
            .bearer_auth(&api.token)
            .json(&json!({}))
            .send()
            .await
            .with_context(|| format!("the hub stopped:\n{}", hub.log()))?;
        match response.status().as_u16() {
            202 => break,
            409 | 429 => tokio::time::sleep(Duration::from_micros(300)).await,
            other => bail!("starting the second rebuild: {other}"),
        }
    }
    for round in 1..=REBUILDS {
        let report = follow_rebuild(&watcher)
            .await
            .with_context(|| format!("rebuild {round} did not end; hub log:\n{}", hub.log()))?;
        ensure!(report["phase"] == "done", "rebuild {round} failed: {report}");
        ensure!(
            hub.wait_exit(Duration::ZERO).await?.is_none(),
            "the hub stopped after rebuild {round}:\n{}",
            hub.log()
        );
        let check = round % 3 == 2;
        ensure!(start(check).await? == 202, "rebuild {} did not start", round + 1);
        ensure!(start(false).await? == 409, "a second rebuild started while rebuild {} ran", round + 1);
    }
    let report = follow_rebuild(&watcher).await?;
    ensure!(report["phase"] == "done", "the last rebuild failed: {report}");
    publisher.await??;
    ensure!(hub.wait_exit(Duration::from_millis(500)).await?.is_none(), "the hub stopped:\n{}", hub.log());
    wait_projected(&operator, &js, Duration::from_secs(60)).await?;
    ensure!(operator.usage_total("").await? == EVENTS as u64, "usage after the rebuilds");
    let env = [("HUB_API_URL", operator.base.as_str()), ("HUB_TOKEN", operator.token.as_str())];
    let output = hub_command(&["rebuild", "--check"], &env).await?;
    ensure!(text(&output).contains(": 0 differences"), "after the rebuilds: {}", text(&output));
    let read_models = |data_dir: &std::path::Path| -> Result<Vec<String>> {
        let mut dirs: Vec<_> = std::fs::read_dir(data_dir)?
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|name| name.starts_with("read-model"))
            .collect();
        dirs.sort();
        Ok(dirs)
    };
    let current = std::fs::read_to_string(hub.data_dir.join("CURRENT")).context("CURRENT after the rebuilds")?;
    wait_until(Duration::from_secs(60), || async { Ok(read_models(&hub.data_dir)? == [current.trim()]) })
        .await
        .with_context(|| format!("replaced read models were left behind: {:?}", read_models(&hub.data_dir)))?;

    // Killed right after a swap: the restarted hub answers as before, and as a clean rebuild.
    let before_kill = served_answers(&operator).await?;
    ensure!(start(false).await? == 202, "the rebuild before the kill did not start");
    let report = follow_rebuild(&watcher).await?;
    hub.kill();
    ensure!(report["phase"] == "done", "the rebuild before the kill failed: {report}");
    hub.restart().await?;
    let operator = hub.api(Role::Operator, None)?;
    wait_projected(&operator, &js, Duration::from_secs(60)).await?;
    ensure!(served_answers(&operator).await? == before_kill, "the served model changed after a kill");
    let env = [("HUB_API_URL", operator.base.as_str()), ("HUB_TOKEN", operator.token.as_str())];
    let output = hub_command(&["rebuild", "--check"], &env).await?;
    ensure!(text(&output).contains(": 0 differences"), "after the restart: {}", text(&output));
    Ok(())
}

/// The goals, monthly usage and follow-up summary a hub serves, as text.
async fn served_answers(api: &Api) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for path in
        ["/api/v1/goals?as_of=2026-06-30", "/api/v1/usage?bucket=month", "/api/v1/followup/summary?as_of=2026-06-30"]
    {
        out.push(api.get(path).await?.text().await?);
    }
    Ok(out)
}
