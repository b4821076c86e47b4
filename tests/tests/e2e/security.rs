//! NATS security from `hub nats-config`: each principal's adapter publishes only for its own
//! principal, anonymous clients cannot connect, and the hub runs with its own nkey.

use std::time::Duration;

use anyhow::Result;
use sgd_hub::{
    nats_config::{adapter_inbox_prefix, generate, NatsConfigOptions},
    nats_server::{NatsServer, NatsServerOptions},
    tokens::Role,
};
use sgd_tests::{wait_until, InProcessHub};

async fn adapter(url: &str, seed_file: &std::path::Path, principal: &str) -> Result<async_nats::jetstream::Context> {
    let seed = std::fs::read_to_string(seed_file)?;
    let client = async_nats::ConnectOptions::new()
        .nkey(seed.trim().to_string())
        .custom_inbox_prefix(adapter_inbox_prefix(principal))
        .connect(url)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut js = async_nats::jetstream::new(client);
    js.set_timeout(Duration::from_secs(2));
    Ok(js)
}

#[tokio::test]
async fn an_adapter_publishes_only_for_its_principal_and_anonymous_clients_are_refused() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let generated = generate(&NatsConfigOptions {
        out_dir: dir.path().join("conf"),
        listen: "127.0.0.1:0".into(),
        store_dir: dir.path().join("unused"),
        tls_cert: None,
        tls_key: None,
    })?;
    let server = NatsServer::start(NatsServerOptions {
        store_dir: dir.path().join("nats"),
        port: None,
        extra_config: generated.authorization.clone(),
    })?;
    let url = server.url();

    // anonymous: refused
    let anonymous = tokio::time::timeout(Duration::from_secs(5), async_nats::connect(&url)).await;
    assert!(!matches!(anonymous, Ok(Ok(_))), "an anonymous client connected");

    // the hub with its nkey
    let hub_seed = generated.hub_seed.clone();
    let hub = InProcessHub::start(&url, move |c| c.nats_nkey_file = Some(hub_seed)).await?;

    let seed = |code: &str| generated.adapter_seeds.iter().find(|(p, _)| p == code).unwrap().1.clone();
    let malmo = adapter(&url, &seed("1280"), "1280").await?;
    let body =
        std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../schemas/examples/plans/plan.closed.v1.valid.json"))?;
    let event: serde_json::Value = serde_json::from_slice(&body)?;
    let mut own = event.clone();
    own["principal"] = "1280".into();
    own["source"] = "/principals/1280/systems/treserva".into();
    let ack = malmo.publish("sgd.in.1280.plans", serde_json::to_vec(&own)?.into()).await?.await;
    assert!(ack.is_ok(), "1280 could not publish for itself: {ack:?}");

    // for Lund: not permitted, so never stored
    let mut foreign = own.clone();
    foreign["principal"] = "1281".into();
    foreign["source"] = "/principals/1281/systems/treserva".into();
    let refused = match malmo.publish("sgd.in.1281.plans", serde_json::to_vec(&foreign)?.into()).await {
        Ok(ack) => ack.await.is_err(),
        Err(_) => true,
    };
    assert!(refused, "1280 published for 1281");

    let analyst = hub.api(Role::Analyst, None)?;
    wait_until(Duration::from_secs(20), || async { Ok(analyst.usage_total("").await? == 1) }).await?;
    assert_eq!(analyst.usage_total("principal=1281").await?, 0);
    hub.stop().await
}
