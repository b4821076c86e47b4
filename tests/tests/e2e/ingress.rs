//! The ingress on a current `nats-server`: an interest stream whose validators' consumer acks up
//! to a sequence at a time and pins one hub's validator (the others stand by), and the move from
//! the work-queue ingress older hubs made. Real `nats-server` and `hub` processes.

use std::time::{Duration, Instant};

use anyhow::{ensure, Result};
use async_nats::jetstream::{
    self,
    consumer::{pull, AckPolicy, PriorityPolicy},
    stream::{self, RetentionPolicy},
};
use sgd_hub::tokens::Role;
use sgd_tests::{log_census, wait_until, HubProcess, TestNats};

use crate::faults::{metric_sum, publish_all, simulated};

/// The ingress's retention and the validators' consumer's ack and priority policies.
async fn ingress_shape(js: &jetstream::Context) -> Result<(RetentionPolicy, AckPolicy, PriorityPolicy)> {
    let mut ingress = js.get_stream("SGD_INGRESS").await?;
    let retention = ingress.info().await?.config.retention;
    let consumer = ingress.consumer_info("validator").await?;
    Ok((retention, consumer.config.ack_policy, consumer.config.priority_policy))
}

/// Waits until the log holds `n` distinct events and the ingress is empty; fails on a repeat.
async fn logged_once(js: &jetstream::Context, n: u64, limit: Duration, log: impl Fn() -> String) -> Result<()> {
    let waited = wait_until(limit, || async {
        let census = log_census(js, "SGD_EVENTS").await?;
        let ingress = js.get_stream("SGD_INGRESS").await?.info().await?.state.messages;
        Ok(census.distinct >= n && ingress == 0)
    })
    .await;
    let census = log_census(js, "SGD_EVENTS").await?;
    ensure!(waited.is_ok(), "{} of {n} events logged in {limit:?}; hub log:\n{}", census.distinct, log());
    ensure!(
        census.messages == n && census.duplicates() == 0,
        "the log holds {} messages, {} distinct, for {n} events",
        census.messages,
        census.distinct
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_work_queue_ingress_is_validated_as_before_and_replaced_once_empty() -> Result<()> {
    let nats = TestNats::start().await?;
    let js = nats.jetstream().await?;
    // What an older hub made: a work-queue ingress with a consumer acking each message, holding
    // events published while no hub ran.
    let ingress = js
        .create_stream(stream::Config {
            name: "SGD_INGRESS".into(),
            subjects: vec!["sgd.in.>".into()],
            retention: RetentionPolicy::WorkQueue,
            storage: stream::StorageType::File,
            duplicate_window: Duration::from_millis(100),
            ..Default::default()
        })
        .await?;
    ingress
        .create_consumer(pull::Config {
            durable_name: Some("validator".into()),
            ack_policy: AckPolicy::Explicit,
            ..Default::default()
        })
        .await?;
    let events = simulated(41, 600);
    publish_all(&js, &events[..300], 256).await?;

    let mut hub = HubProcess::start(&nats.url(), &[]).await?;
    logged_once(&js, 300, Duration::from_secs(60), || hub.log()).await?;
    ensure!(hub.log().contains("still a work queue holding events"), "no word of the kept work queue:\n{}", hub.log());
    ensure!(
        ingress_shape(&js).await? == (RetentionPolicy::WorkQueue, AckPolicy::Explicit, PriorityPolicy::None),
        "the work queue holding events was changed"
    );

    // Empty now: the next start replaces it with an interest stream and a pinned consumer.
    ensure!(hub.terminate().await?, "the hub did not stop cleanly:\n{}", hub.log());
    hub.restart().await?;
    ensure!(hub.log().contains("replaced by an interest stream"), "no word of the replacement:\n{}", hub.log());
    ensure!(
        ingress_shape(&js).await? == (RetentionPolicy::Interest, AckPolicy::All, PriorityPolicy::PinnedClient),
        "the empty work queue was not replaced: {:?}",
        ingress_shape(&js).await?
    );
    publish_all(&js, &events[300..], 256).await?;
    logged_once(&js, 600, Duration::from_secs(60), || hub.log()).await?;
    let usage = hub.api(Role::Analyst, None)?.usage_total("").await?;
    ensure!(usage == 600, "the read model counts {usage} events, not 600");
    eprintln!("ingress: 300 events validated from the kept work queue, 300 from the interest stream that replaced it");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_validator_holds_the_ingress_and_another_takes_over_when_it_is_killed() -> Result<()> {
    const QUIET: usize = 3_000;
    const EVENTS: usize = 9_000;
    let nats = TestNats::start().await?;
    let js = nats.jetstream().await?;
    let a = HubProcess::start(&nats.url(), &[]).await?;
    let b = HubProcess::start(&nats.url(), &[]).await?;
    let (ops_a, ops_b) = (a.api(Role::Operator, None)?, b.api(Role::Operator, None)?);
    let validated = |text: String| metric_sum(&text, "sgd_events_validated_total");
    let events = simulated(43, EVENTS);

    // Quiet: one hub's validator holds the pin and takes every event.
    publish_all(&js, &events[..QUIET], 512).await?;
    logged_once(&js, QUIET as u64, Duration::from_secs(60), || a.log()).await?;
    let by_a = validated(ops_a.get("/metrics").await?.text().await?);
    let by_b = validated(ops_b.get("/metrics").await?.text().await?);
    eprintln!("ingress: quiet phase, {QUIET} events validated {by_a} times by hub a, {by_b} by hub b");
    ensure!(
        by_a + by_b == QUIET as u64 && by_a.min(by_b) == 0,
        "the pinned consumer shared the ingress: a {by_a}, b {by_b}"
    );
    let (mut holder, standby, standby_ops) = if by_a > 0 { (a, b, ops_b) } else { (b, a, ops_a) };

    // The holder is killed mid-ingest, with events delivered to it and not yet acked.
    let publishing = tokio::spawn({
        let (js, rest) = (js.clone(), events[QUIET..].to_vec());
        async move {
            for chunk in rest.chunks(500) {
                publish_all(&js, chunk, 512).await?;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Ok::<(), anyhow::Error>(())
        }
    });
    wait_until(Duration::from_secs(30), || async {
        Ok(log_census(&js, "SGD_EVENTS").await?.distinct >= QUIET as u64 + 1_000)
    })
    .await?;
    holder.kill();
    let killed = Instant::now();
    publishing.await??;
    logged_once(&js, EVENTS as u64, Duration::from_secs(120), || standby.log()).await?;
    let taken_over = validated(standby_ops.get("/metrics").await?.text().await?);
    eprintln!(
        "ingress: validator holder killed; the standby validated {taken_over} events; all {EVENTS} logged once, \
         {:.1?} after the kill",
        killed.elapsed()
    );
    ensure!(taken_over > 0, "the standby validator never took over");
    Ok(())
}
