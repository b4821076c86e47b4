//! NATS security from `hub nats-config`: each principal's adapter publishes only for its own
//! principal, anonymous clients cannot connect, and the hub runs with its own nkey. HTTP: a token
//! over its rate is refused without slowing the others.

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

/// A token making requests faster than its rate gets 429 `rate_limited` (with when to retry);
/// another token is served meanwhile, and the first is served again after a pause.
#[tokio::test]
async fn a_token_over_its_rate_is_refused_and_other_tokens_are_not() -> Result<()> {
    let nats = sgd_tests::TestNats::start().await?;
    let hub = InProcessHub::start(&nats.url(), |c| {
        c.rate_limit_per_second = 5;
        c.rate_limit_burst = 10;
    })
    .await?;
    let busy = hub.api(Role::Analyst, None)?;
    let calm = hub.api(Role::Analyst, None)?;
    let (mut served, mut refused) = (0, 0);
    for _ in 0..40 {
        let response = busy.get("/api/v1/goals").await?;
        match response.status().as_u16() {
            200 => served += 1,
            429 => {
                let body: serde_json::Value = response.json().await?;
                assert_eq!(body["error"], "rate_limited", "{body}");
                assert!(body["message"].as_str().unwrap_or_default().contains("retry in"), "{body}");
                refused += 1;
            }
            other => anyhow::bail!("unexpected status {other}"),
        }
    }
    // 10 at once plus 5 per second while the 40 requests ran.
    assert!(refused > 0 && (10..40).contains(&served), "served {served}, refused {refused}");
    assert_eq!(calm.get("/api/v1/goals").await?.status(), 200, "another token was slowed");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(busy.get("/api/v1/goals").await?.status(), 200, "the busy token was not served again");
    hub.stop().await
}
