//! The adapters' publisher SDK against a real hub: the durable outbox across a NATS outage.

use std::time::Duration;

use anyhow::Result;
use sgd_adapters::{
    outbox::{Outbox, OutboxPublisher, SenderOptions},
    Draft, SourceSystem,
};
use sgd_hub::tokens::Role;
use sgd_schemas::events::plans::PlanClosed;
use sgd_tests::{wait_until, InProcessHub, TestNats};

const EVENTS: usize = 50_000;

/// 50,000 events go through the outbox while `nats-server` is killed for 10 s in the middle; the
/// hub (which reconnects by itself) ends with exactly 50,000, and the log holds each once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbox_delivers_50k_events_exactly_once_across_a_10s_nats_outage() -> Result<()> {
    let mut nats = TestNats::start().await?;
    let Some(_) = nats.process() else {
        eprintln!("skipped: the outage needs a local nats-server process");
        return Ok(());
    };
    let hub = InProcessHub::start(&nats.url(), |_| {}).await?;
    let api = hub.api(Role::Operator, None)?;
    let client = sgd_tests::connect_retrying(nats.url()).await?;
    let outbox_dir = tempfile::tempdir()?;
    let outbox = Outbox::open(outbox_dir.path())?;
    let publisher = OutboxPublisher::with_options(
        async_nats::jetstream::new(client),
        SourceSystem::new("1280", "outbox-e2e")?,
        outbox,
        SenderOptions { send_timeout: Duration::from_secs(1), ..Default::default() },
    );
    let base = chrono::DateTime::parse_from_rfc3339("2026-01-01T08:00:00+01:00")?;
    let drafts: Vec<Draft> = (0..EVENTS)
        .map(|i| {
            Draft::at(
                format!("outbox-{i}"),
                base + chrono::Duration::seconds(i as i64),
                PlanClosed { plan_id: format!("plan-{i}") }.into(),
            )
        })
        .collect();
    let started = std::time::Instant::now();
    // The local system produces about 4,000 events a second whatever NATS does.
    let mut chunks = drafts.chunks(1_000);
    for chunk in chunks.by_ref().take(10) {
        publisher.enqueue_all(chunk).await?;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let before_outage = publisher.stats().acknowledged();
    nats.process().expect("a process").kill();
    let outage = std::time::Instant::now();
    for chunk in chunks.by_ref().take(30) {
        publisher.enqueue_all(chunk).await?;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    tokio::time::sleep(Duration::from_secs(10).saturating_sub(outage.elapsed())).await;
    let during_outage = publisher.stats().acknowledged();
    assert!(publisher.outbox().len() >= 20_000, "the outbox holds what NATS could not take");
    nats.process().expect("a process").restart()?;
    for chunk in chunks {
        publisher.enqueue_all(chunk).await?;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    publisher.wait_empty(Duration::from_secs(120)).await?;
    eprintln!(
        "{EVENTS} events through the outbox in {:?}: {before_outage} acknowledged before the outage, \
         {during_outage} by its end, {} send failures",
        started.elapsed(),
        publisher.stats().failures()
    );
    let result =
        wait_until(Duration::from_secs(120), || async { Ok(api.usage_total("").await? >= EVENTS as u64) }).await;
    let total = api.usage_total("").await?;
    result.map_err(|e| e.context(format!("usage total is {total}, expected {EVENTS}")))?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(api.usage_total("").await?, EVENTS as u64, "each event counted exactly once");
    let js = nats.jetstream().await?;
    let mut log = js.get_stream("SGD_EVENTS").await?;
    assert_eq!(log.info().await?.state.messages, EVENTS as u64, "the log holds each event once");
    publisher.close().await;
    hub.stop().await?;
    Ok(())
}

/// The simulator, through the real FHIR mappings, into a real hub: every event counted, every area
/// and nearly every principal active.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulator_shows_activity_in_every_area_and_most_principals() -> Result<()> {
    use sgd_adapters::simulator::{self, SimulatorConfig};

    const SIMULATED: u64 = 6_000;
    let nats = TestNats::start().await?;
    let hub = InProcessHub::start(&nats.url(), |_| {}).await?;
    let api = hub.api(Role::Operator, None)?;
    let outbox_dir = tempfile::tempdir()?;
    let (_stop, shutdown) = tokio::sync::watch::channel(false);
    let config = SimulatorConfig { native: true, ..Default::default() };
    let report =
        simulator::run(nats.jetstream().await?, outbox_dir.path(), 11, config, Some(SIMULATED), 0.0, shutdown).await?;
    assert_eq!((report.events, report.mapping_errors), (SIMULATED, 0), "{report}");
    let result = wait_until(Duration::from_secs(60), || async { Ok(api.usage_total("").await? >= SIMULATED) }).await;
    let total = api.usage_total("").await?;
    result.map_err(|e| e.context(format!("usage total is {total}, expected {SIMULATED}")))?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(api.usage_total("").await?, SIMULATED, "every simulated event accepted once");
    for area in ["npo", "sdk", "plans", "decision", "deviation", "video"] {
        assert!(api.usage_total(&format!("area={area}")).await? > 0, "no activity in {area}");
    }
    let mut active = 0;
    for principal in sgd_schemas::principals::all() {
        if api.usage_total(&format!("principal={}", principal.code)).await? > 0 {
            active += 1;
        }
    }
    assert!(active >= 30, "only {active} of 34 principals active");
    hub.stop().await?;
    Ok(())
}
