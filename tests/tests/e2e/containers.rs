//! Containers (issue 24): the images built here (scripts/images.sh, nothing pulled), the
//! testcontainers backend of the harness, `compose.yaml` as a user runs it (the demo with NATS on
//! the nkeys of `hub nats-config`; the "cluster" profile: three nodes at R3 and two hubs), and a
//! partition: a node of a containerised cluster cut off its network during ingest and healed,
//! then another cut off from its peers only (its clients still connected) and healed: no event
//! lost, none doubled. Each test skips, saying so, only where no Docker engine answers.

use std::time::{Duration, Instant};

use anyhow::{ensure, Context as _, Result};
use async_nats::jetstream;
use serde_json::Value;
use sgd_adapters::outbox::{Outbox, OutboxPublisher, SenderOptions};
use sgd_adapters::SourceSystem;
use sgd_hub::server::embedded_nats::free_port;
use sgd_hub::tokens::Role;
use sgd_tests::docker::{self, ComposeProject, NatsContainerCluster};
use sgd_tests::{log_census, wait_until, Api, HubProcess, TestNats};

use super::cluster::{enqueue, keep_asking, log_leader, replicas_current};
use super::faults::{
    answers, assert_same_answers, metric_sum, publish_all, simulated, simulated_drafts, wait_for_total,
};
use super::{ingress_subject, publish_raw};

/// Publishes every valid example to ingress; returns how many.
pub(crate) async fn publish_examples(js: &jetstream::Context) -> Result<u64> {
    let examples = sgd_tests::valid_examples();
    for (path, bytes) in &examples {
        let event: Value = serde_json::from_slice(bytes)?;
        let msg_id = format!("{}/{}", event["source"].as_str().unwrap(), event["id"].as_str().unwrap());
        publish_raw(js, &ingress_subject(&event), &msg_id, bytes.clone())
            .await
            .map_err(|e| e.context(path.display().to_string()))?;
    }
    Ok(examples.len() as u64)
}

/// Waits until `GET {base}/healthz` answers 2xx.
async fn wait_healthy(base: &str, limit: Duration, log: impl Fn() -> String) -> Result<()> {
    let client = reqwest::Client::new();
    let url = format!("{base}/healthz");
    wait_until(limit, || {
        let (client, url) = (client.clone(), url.clone());
        async move { Ok(client.get(&url).send().await.map(|r| r.status().is_success()).unwrap_or(false)) }
    })
    .await
    .with_context(|| format!("{base} did not come up; its log:\n{}", super::faults::tail(&log(), 40)))
}

/// A JetStream context as the hub's nkey user of a compose project (its seed read from the
/// project's nats-config volume through `service`).
async fn as_hub_user(project: &ComposeProject, service: &str, urls: Vec<String>) -> Result<jetstream::Context> {
    let seed = project.run(&["exec", "-T", service, "cat", "/etc/sgd-nats/seeds/hub.nk"])?;
    let client = async_nats::ConnectOptions::with_nkey(seed.trim().to_string())
        .retry_on_initial_connect()
        .connect(urls)
        .await
        .map_err(|e| anyhow::anyhow!("connect with the hub's nkey: {e}"))?;
    Ok(jetstream::new(client))
}

/// The harness's container backend (testcontainers, the project's nats image): the hub binary
/// against it takes every valid example into its read model.
#[tokio::test]
async fn the_testcontainers_backend_serves_a_hub() -> Result<()> {
    if docker::skip("containers::the_testcontainers_backend_serves_a_hub") {
        return Ok(());
    }
    let started = Instant::now();
    let nats = TestNats::start_container().await?;
    ensure!(nats.url().starts_with("nats://127.0.0.1:"), "{}", nats.url());
    let hub = HubProcess::start(&nats.url(), &[]).await?;
    let published = publish_examples(&nats.jetstream().await?).await?;
    let api = hub.api(Role::Analyst, None)?;
    wait_for_total(&api, published, Duration::from_secs(60), || hub.log()).await?;
    eprintln!("containers: testcontainers backend, {published} events through a hub in {:.1?}", started.elapsed());
    Ok(())
}

/// `docker compose up`: `hub nats-config` writes the NATS configuration and the seeds into a
/// volume, NATS runs with it (anonymous clients refused), the hub runs the demo as uid 10001 and
/// writes its volume, and an adapter with its principal's seed publishes into it.
#[tokio::test]
async fn compose_up_serves_the_demo_on_nats_with_nkeys() -> Result<()> {
    if docker::skip("containers::compose_up_serves_the_demo_on_nats_with_nkeys") {
        return Ok(());
    }
    let started = Instant::now();
    let (nats_port, hub_port) = (free_port()?, free_port()?);
    let project = ComposeProject::new(&[
        ("SGD_NATS_PORT", nats_port.to_string()),
        ("SGD_NATS_MONITOR_PORT", free_port()?.to_string()),
        ("SGD_HUB_PORT", hub_port.to_string()),
        ("SGD_DEMO_SIMULATED", "2000".into()),
    ])?;
    project.run(&["up", "-d"])?;
    let base = format!("http://127.0.0.1:{hub_port}");
    // The demo prints its analyst token as the last line once it has published and projected.
    let mut token = None;
    wait_until(Duration::from_secs(240), || {
        let logs = project.logs("hub");
        let found = logs.split_once("analyst token:").and_then(|(_, rest)| rest.split_whitespace().next());
        token = found.map(str::to_string);
        let found = token.is_some();
        async move { Ok(found) }
    })
    .await
    .with_context(|| {
        format!("the demo printed no token; hub log:\n{}\nnats log:\n{}", project.logs("hub"), project.logs("nats"))
    })?;
    wait_healthy(&base, Duration::from_secs(30), || project.logs("hub")).await?;
    let analyst = Api { base: base.clone(), token: token.context("token")?, client: reqwest::Client::new() };
    let demo_total = analyst.usage_total("").await?;
    ensure!(demo_total > 2000, "the demo's usage total is {demo_total}");

    // NATS takes nkey users only.
    let nats_url = format!("nats://127.0.0.1:{nats_port}");
    let anonymous = async_nats::connect(nats_url.as_str()).await;
    ensure!(anonymous.is_err(), "an anonymous client connected to the compose NATS");
    // The adapter of 1280, with its seed from the volume, publishes one of its events.
    let seed = project.run(&["exec", "-T", "hub", "cat", "/etc/sgd-nats/seeds/adapter-1280.nk"])?;
    let client = async_nats::ConnectOptions::with_nkey(seed.trim().to_string())
        .custom_inbox_prefix("_INBOX_1280")
        .connect(nats_url.as_str())
        .await
        .map_err(|e| anyhow::anyhow!("the adapter of 1280 could not connect with its seed: {e}"))?;
    let adapter = sgd_adapters::Publisher::new(jetstream::new(client), SourceSystem::new("1280", "compose-test")?);
    let (_, draft) = simulated_drafts(7, 200)
        .into_iter()
        .find(|(source, _)| source.principal() == "1280")
        .context("no simulated event of 1280")?;
    adapter.publish(&draft).await.map_err(|e| anyhow::anyhow!("publishing as 1280: {e}"))?;
    wait_until(Duration::from_secs(30), || async { Ok(analyst.usage_total("").await? == demo_total + 1) })
        .await
        .context("the adapter's event did not reach the read model")?;

    // The image's user (not root) owns and writes the data volume.
    let uid = project.run(&["exec", "-T", "hub", "id", "-u"])?;
    ensure!(uid.trim() == "10001", "the hub runs as uid {uid}");
    let data = project.run(&["exec", "-T", "hub", "ls", "-ln", "/data"])?;
    ensure!(data.contains("tokens.json") && data.contains("read-model"), "/data holds:\n{data}");
    ensure!(data.lines().skip(1).all(|l| l.split_whitespace().nth(2) == Some("10001")), "/data holds:\n{data}");
    let nats_uid = project.run(&["exec", "-T", "nats", "id", "-u"])?;
    ensure!(nats_uid.trim() == "10002", "nats-server runs as uid {nats_uid}");
    eprintln!(
        "containers: compose up: demo served {demo_total} events, nkeys enforced, hub as uid 10001; {:.1?}",
        started.elapsed()
    );
    Ok(())
}

/// `docker compose --profile cluster up`: three nodes with routes, both hubs at R3, sharing the
/// validator and each answering for the whole log.
#[tokio::test]
async fn compose_cluster_profile_runs_three_nodes_at_r3_and_two_hubs() -> Result<()> {
    if docker::skip("containers::compose_cluster_profile_runs_three_nodes_at_r3_and_two_hubs") {
        return Ok(());
    }
    let started = Instant::now();
    let nats_ports = [free_port()?, free_port()?, free_port()?];
    let (port_a, port_b) = (free_port()?, free_port()?);
    let project = ComposeProject::new(&[
        ("SGD_NATS_1_PORT", nats_ports[0].to_string()),
        ("SGD_NATS_2_PORT", nats_ports[1].to_string()),
        ("SGD_NATS_3_PORT", nats_ports[2].to_string()),
        ("SGD_HUB_A_PORT", port_a.to_string()),
        ("SGD_HUB_B_PORT", port_b.to_string()),
    ])?;
    project.run(&["--profile", "cluster", "up", "-d", "nats-1", "nats-2", "nats-3", "hub-a", "hub-b"])?;
    let up = started.elapsed();
    let (base_a, base_b) = (format!("http://127.0.0.1:{port_a}"), format!("http://127.0.0.1:{port_b}"));
    wait_healthy(&base_a, Duration::from_secs(120), || project.logs("hub-a")).await?;
    wait_healthy(&base_b, Duration::from_secs(120), || project.logs("hub-b")).await?;
    let healthy = started.elapsed();
    let token = |service: &str| -> Result<Api> {
        let out = project.run(&["exec", "-T", service, "hub", "token", "add", "--role", "operator"])?;
        let token = out.lines().last().context("no token printed")?.trim().to_string();
        let port = if service == "hub-a" { port_a } else { port_b };
        Ok(Api { base: format!("http://127.0.0.1:{port}"), token, client: reqwest::Client::new() })
    };
    let (a, b) = (token("hub-a")?, token("hub-b")?);

    let urls: Vec<String> = nats_ports.iter().map(|p| format!("nats://127.0.0.1:{p}")).collect();
    let js = as_hub_user(&project, "hub-a", urls).await?;
    for name in ["SGD_INGRESS", "SGD_EVENTS", "SGD_DLQ", "SGD_AUDIT", "SGD_ROUTED"] {
        let replicas = js.get_stream(name).await?.info().await?.config.num_replicas;
        ensure!(replicas == 3, "{name} has {replicas} replicas");
    }
    wait_until(Duration::from_secs(60), || replicas_current(&js)).await.context("the streams' replicas")?;
    let published = publish_examples(&js).await?;
    let log = || format!("hub-a:\n{}\nhub-b:\n{}", project.logs("hub-a"), project.logs("hub-b"));
    wait_for_total(&a, published, Duration::from_secs(60), log).await?;
    wait_for_total(&b, published, Duration::from_secs(60), log).await?;
    let validated = |text: &str| metric_sum(text, "sgd_events_validated_total");
    let (by_a, by_b) =
        (validated(&a.get("/metrics").await?.text().await?), validated(&b.get("/metrics").await?.text().await?));
    ensure!(by_a + by_b == published, "validated {by_a} + {by_b} times, {published} published");
    eprintln!(
        "containers: compose cluster profile: 5 streams at R3, {published} events validated {by_a} + {by_b} times, \
         both hubs at {published}; {:.1?} (compose up returned after {up:.1?}, both hubs healthy after {healthy:.1?})",
        started.elapsed()
    );
    Ok(())
}

const EVENTS: usize = 18_000;
/// Published first, with nothing failing.
const QUIET: usize = 3_000;
const CHUNK: usize = 500;
/// How long each partition lasts while the adapters publish.
const PARTITION: Duration = Duration::from_secs(6);

/// A partition, not a crash: two hubs on a three-node cluster of containers, streams at R3. During
/// ingest through two adapters' outboxes, the log's leader is cut off the network altogether (the
/// other nodes and every client lose it; it keeps running) and put back; then the next leader is
/// cut off from its peers only, its clients still connected to it, and healed. Every event is in
/// the log once, both hubs hold all and answer the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_cut_off_and_healed_loses_and_doubles_nothing() -> Result<()> {
    if docker::skip("containers::a_node_cut_off_and_healed_loses_and_doubles_nothing") {
        return Ok(());
    }
    let started = Instant::now();
    let cluster = NatsContainerCluster::start().await?;
    let (dir, hub_a, hub_b) = sgd_tests::two_hubs_at_three_replicas(&cluster.url()).await?;
    let (a, b) = (hub_a.api(Role::Operator, None)?, hub_b.api(Role::Operator, None)?);
    let js = cluster.jetstream().await?;
    let log = || format!("hub a:\n{}\nhub b:\n{}", hub_a.log(), hub_b.log());

    let region = simulated(31, EVENTS);
    let (quiet, drafts) = (&region[..QUIET], simulated_drafts(31, EVENTS).split_off(QUIET));
    publish_all(&js, quiet, 1024).await?;
    wait_for_total(&a, QUIET as u64, Duration::from_secs(120), log).await?;
    wait_for_total(&b, QUIET as u64, Duration::from_secs(120), log).await?;

    let mut adapters = Vec::new();
    for i in 0..2 {
        let client = sgd_tests::connect_retrying(cluster.urls()).await?;
        adapters.push(OutboxPublisher::with_options(
            jetstream::new(client),
            SourceSystem::new("12", "partition-adapter")?,
            Outbox::open(dir.path().join(format!("outbox-{i}")))?,
            SenderOptions { send_timeout: Duration::from_secs(2), ..Default::default() },
        ));
    }
    let chunks: Vec<_> = drafts.chunks(CHUNK).collect();
    let third = chunks.len().div_ceil(3);
    enqueue(&adapters, &chunks, 0..third).await?;

    let mut rounds = Vec::new();
    let mut victims: Vec<usize> = Vec::new();
    for round in 0..2 {
        let leader = log_leader(&js).await?;
        let victim = if victims.contains(&leader) { (leader + 1) % 3 } else { leader };
        let how = if round == 0 { "cut off the network" } else { "cut off from its peers (clients kept)" };
        if round == 0 {
            cluster.disconnect(victim)?;
        } else {
            cluster.cut_routes(victim)?;
        }
        let cut = Instant::now();
        victims.push(victim);
        let released = (round + 1) * third..((round + 2) * third).min(chunks.len());
        let both = [&a, &b];
        let (released, (answered, failed)) =
            tokio::join!(enqueue(&adapters, &chunks, released), keep_asking(&both, PARTITION));
        released?;
        // The majority's view before healing: the log has a leader, and it is not the node cut off.
        let majority = cluster.jetstream_on((victim + 1) % 3).await?;
        let asked_since = Instant::now();
        let leader_during = loop {
            let leader = log_leader(&majority).await.ok();
            if leader.is_some_and(|l| l != victim) || asked_since.elapsed() > Duration::from_secs(20) {
                break leader;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        ensure!(
            leader_during.is_some_and(|l| l != victim),
            "the majority still has node {victim} (or nobody) as the log's leader: {leader_during:?}"
        );
        if round == 0 {
            cluster.reconnect(victim)?;
        } else {
            cluster.restore_routes(victim)?;
        }
        let healed_after = cut.elapsed();
        wait_until(Duration::from_secs(120), || replicas_current(&js))
            .await
            .with_context(|| format!("node {victim} did not catch up after the partition"))?;
        eprintln!(
            "partition: round {}: node {victim} (the log's leader: {}) {how} for {healed_after:.1?}; the majority's \
             leader meanwhile: node {}; the hubs answered {answered} queries and failed {failed}; current again after \
             {:.1?}",
            round + 1,
            leader == victim,
            leader_during.unwrap_or(usize::MAX),
            cut.elapsed()
        );
        ensure!(failed == 0, "the hubs failed {failed} queries while node {victim} was cut off");
        rounds.push((victim, how, cut.elapsed()));
    }
    enqueue(&adapters, &chunks, (3 * third).min(chunks.len())..chunks.len()).await?;
    for adapter in &adapters {
        adapter.wait_empty(Duration::from_secs(180)).await?;
    }
    let acknowledged: u64 = adapters.iter().map(|adapter| adapter.stats().acknowledged()).sum();
    let failures: u64 = adapters.iter().map(|adapter| adapter.stats().failures()).sum();
    for api in [&a, &b] {
        wait_for_total(api, EVENTS as u64, Duration::from_secs(120), log).await?;
    }
    let census = log_census(&js, "SGD_EVENTS").await?;
    let (from_a, from_b) =
        (answers(&hub_a.api(Role::Analyst, None)?).await?, answers(&hub_b.api(Role::Analyst, None)?).await?);
    let lost = (EVENTS as u64).saturating_sub(census.distinct);
    eprintln!(
        "partition: {EVENTS} events sent ({QUIET} quiet, {} through outboxes: {acknowledged} acknowledgements, \
         {failures} send failures retried); partitions {rounds:.1?}; log: {} messages, {} distinct; lost {lost}, \
         doubled {}; both hubs at {EVENTS}; test took {:.1?}",
        EVENTS - QUIET,
        census.messages,
        census.distinct,
        census.duplicates(),
        started.elapsed()
    );
    ensure!(lost == 0 && census.duplicates() == 0 && census.messages == EVENTS as u64, "{census:?}");
    assert_same_answers(&from_a, &from_b, "hub a", "hub b")?;
    for adapter in adapters {
        adapter.close().await;
    }
    Ok(())
}
