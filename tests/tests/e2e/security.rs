//! NATS security from `hub nats-config`: each principal's adapter publishes only for its own
//! principal, anonymous clients cannot connect, and the hub runs with its own nkey; with a
//! certificate, NATS admits only TLS clients that trust it. HTTP: a token over its rate is refused
//! without slowing the others; with a certificate the API speaks only HTTPS, and a bad certificate
//! stops the hub at start.

use std::time::Duration;

use anyhow::{Context as _, Result};
use sgd_hub::{
    nats_config::{adapter_inbox_prefix, generate, NatsConfigOptions},
    tokens::Role,
};
use sgd_tests::{
    nats_server::{NatsServer, NatsServerOptions},
    wait_until, InProcessHub,
};

pub(crate) async fn adapter(
    url: &str,
    seed_file: &std::path::Path,
    principal: &str,
) -> Result<async_nats::jetstream::Context> {
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

/// A `nats-server` in `dir` with the authorization `hub nats-config` writes (each principal may
/// name `consumers` consumers of its own), and what was generated.
pub(crate) fn secured_nats(
    dir: &std::path::Path,
    consumers: usize,
) -> Result<(sgd_hub::nats_config::GeneratedNatsConfig, NatsServer)> {
    let generated = generate(&NatsConfigOptions {
        out_dir: dir.join("conf"),
        listen: "127.0.0.1:0".into(),
        store_dir: dir.join("unused"),
        tls_cert: None,
        tls_key: None,
        consumers,
    })?;
    let server = NatsServer::start(NatsServerOptions {
        store_dir: dir.join("nats"),
        port: None,
        extra_config: generated.authorization.clone(),
    })?;
    Ok((generated, server))
}

#[tokio::test]
async fn an_adapter_publishes_only_for_its_principal_and_anonymous_clients_are_refused() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (generated, server) = secured_nats(dir.path(), 4)?;
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

/// A test CA and a certificate it signed for `localhost` and 127.0.0.1, as PEM files.
pub(crate) struct TestCertificates {
    pub(crate) ca_pem: String,
    pub(crate) ca_file: std::path::PathBuf,
    pub(crate) cert_file: std::path::PathBuf,
    pub(crate) key_file: std::path::PathBuf,
}

impl TestCertificates {
    pub(crate) fn new(dir: &std::path::Path) -> Result<Self> {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
        let ca_key = KeyPair::generate()?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(DnType::CommonName, "sgd-hub test CA");
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = ca_params.self_signed(&ca_key)?;
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])?;
        params.distinguished_name.push(DnType::CommonName, "localhost");
        let cert = params.signed_by(&key, &ca, &ca_key)?;
        std::fs::create_dir_all(dir)?;
        let certificates = Self {
            ca_pem: ca.pem(),
            ca_file: dir.join("ca.pem"),
            cert_file: dir.join("cert.pem"),
            key_file: dir.join("key.pem"),
        };
        std::fs::write(&certificates.ca_file, &certificates.ca_pem)?;
        std::fs::write(&certificates.cert_file, cert.pem())?;
        std::fs::write(&certificates.key_file, key.serialize_pem())?;
        Ok(certificates)
    }
}

fn path_str(path: &std::path::Path) -> &str {
    path.to_str().expect("temporary paths are UTF-8")
}

/// With `--tls-cert` and `--tls-key` the API speaks HTTPS: a client trusting the certificate is
/// served (and refused without a token), a plain-HTTP request or a client that trusts another CA
/// gets no answer; SIGTERM still ends an open live stream and the process, as over plain HTTP.
#[tokio::test]
async fn the_api_serves_https_with_its_certificate_and_nothing_in_plain_http() -> Result<()> {
    let nats = sgd_tests::TestNats::start().await?;
    let dir = tempfile::tempdir()?;
    let certificates = TestCertificates::new(&dir.path().join("tls"))?;
    let args = ["--tls-cert", path_str(&certificates.cert_file), "--tls-key", path_str(&certificates.key_file)];
    let mut hub = sgd_tests::HubProcess::start_https(&nats.url(), &args, certificates.ca_pem.as_bytes()).await?;
    assert!(hub.base.starts_with("https://"), "{}", hub.base);

    let analyst = hub.api(Role::Analyst, None)?;
    let goals = analyst.get("/api/v1/goals").await?;
    assert_eq!(goals.status(), 200, "{}", goals.text().await?);
    let anonymous = hub.client.get(format!("{}/api/v1/goals", hub.base)).send().await?;
    assert_eq!(anonymous.status(), 401);
    assert!(hub.log().contains(&format!("API listening on https://{}", hub.http_addr)), "{}", hub.log());

    // Plain HTTP to the TLS port: no HTTP answer at all.
    let plain = reqwest::Client::new()
        .get(format!("http://{}/healthz", hub.http_addr))
        .timeout(Duration::from_secs(5))
        .send()
        .await;
    assert!(plain.is_err(), "plain HTTP was answered: {:?}", plain.map(|r| r.status()));
    // A client that trusts another CA refuses the hub's certificate.
    let stranger = TestCertificates::new(&dir.path().join("other"))?;
    let untrusting = sgd_tests::https_client(stranger.ca_pem.as_bytes())?;
    let refused = untrusting.get(format!("{}/healthz", hub.base)).timeout(Duration::from_secs(5)).send().await;
    assert!(refused.is_err(), "a client trusting another CA was served");
    // The TLS port still serves after those failed handshakes.
    assert_eq!(analyst.get("/api/v1/me").await?.status(), 200);

    // Graceful shutdown over TLS: an open live stream ends and the process exits cleanly.
    let mut live = analyst.get("/api/v1/stream").await?;
    assert_eq!(live.status(), 200);
    let pid = hub.pid().context("the hub runs")?;
    // SAFETY: a signal to our own child process, which has not been reaped.
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    let ended =
        tokio::time::timeout(Duration::from_secs(15), async { while let Ok(Some(_)) = live.chunk().await {} }).await;
    assert!(ended.is_ok(), "the live stream did not end at SIGTERM");
    let status = hub.wait_exit(Duration::from_secs(15)).await?.context("the hub did not exit after SIGTERM")?;
    assert!(status.success(), "exit {status:?}; log:\n{}", hub.log());
    Ok(())
}

/// A missing, half-given or mismatched certificate or key, or a missing NATS CA file, stops
/// `hub serve` at once with a message naming the problem: no panic, nothing served.
#[tokio::test]
async fn a_bad_certificate_key_or_ca_file_stops_the_hub_with_a_clear_error() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let good = TestCertificates::new(&dir.path().join("good"))?;
    let other = TestCertificates::new(&dir.path().join("other"))?;
    let missing = dir.path().join("missing.pem");
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "this is no certificate\n")?;
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--tls-cert", path_str(&missing), "--tls-key", path_str(&good.key_file)], "missing.pem"),
        (vec!["--tls-cert", path_str(&garbage), "--tls-key", path_str(&good.key_file)], "no usable certificate"),
        (vec!["--tls-cert", path_str(&good.cert_file), "--tls-key", path_str(&garbage)], "no usable private key"),
        (vec!["--tls-cert", path_str(&good.cert_file)], "needs both"),
        (
            vec!["--tls-cert", path_str(&good.cert_file), "--tls-key", path_str(&other.key_file)],
            "cannot be used together",
        ),
        (vec!["--nats-ca-file", path_str(&missing)], "missing.pem"),
    ];
    // Nothing listens on this NATS URL: the hub must fail on its files before it gets that far.
    let nats_url = format!("nats://127.0.0.1:{}", sgd_tests::nats_server::free_port()?);
    for (i, (args, expected)) in cases.iter().enumerate() {
        let mut hub = sgd_tests::HubProcess::launch(&nats_url, &dir.path().join(format!("data-{i}")), args)?;
        let status = hub.wait_exit(Duration::from_secs(20)).await?;
        let log = hub.log();
        let status = status.with_context(|| format!("{args:?}: the hub did not stop; log:\n{log}"))?;
        assert!(!status.success(), "{args:?}: exit {status:?}");
        assert!(log.contains("error:") && log.contains(expected), "{args:?}: expected {expected:?} in:\n{log}");
        assert!(!log.contains("panicked"), "{args:?}: {log}");
    }
    Ok(())
}

/// NATS over TLS, configured by `hub nats-config --tls-cert --tls-key`: a client that trusts the
/// certificate connects, one that does not (or speaks no TLS) is refused, and the hub connects
/// with `--nats-ca-file` and carries events.
#[tokio::test]
async fn nats_with_tls_from_hub_nats_config_admits_only_tls_clients_that_trust_it() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let certificates = TestCertificates::new(&dir.path().join("tls"))?;
    let port = sgd_tests::nats_server::free_port()?;
    let out = dir.path().join("conf");
    let written = std::process::Command::new(sgd_tests::hub_binary()?)
        .args(["nats-config", "--out", path_str(&out), "--listen", &format!("127.0.0.1:{port}")])
        .args(["--store-dir", path_str(&dir.path().join("jetstream"))])
        .args(["--tls-cert", path_str(&certificates.cert_file), "--tls-key", path_str(&certificates.key_file)])
        .output()?;
    assert!(written.status.success(), "hub nats-config: {}", String::from_utf8_lossy(&written.stderr));
    let config_file = out.join("nats-server.conf");
    assert!(std::fs::read_to_string(&config_file)?.contains("tls {"), "no tls block written");
    let _server = NatsServer::start_with_config_file(&config_file, port, &dir.path().join("nats"))?;
    let url = format!("nats://127.0.0.1:{port}");
    let hub_seed = out.join("seeds/hub.nk");
    let seed = std::fs::read_to_string(&hub_seed)?.trim().to_string();

    // Trusting the CA: connected, and a round trip to the server works.
    let trusted = async_nats::ConnectOptions::new()
        .nkey(seed.clone())
        .add_root_certificates(certificates.ca_file.clone())
        .require_tls(true)
        .connect(&url)
        .await
        .map_err(|e| anyhow::anyhow!("a client trusting the CA could not connect: {e}"))?;
    trusted.flush().await.map_err(|e| anyhow::anyhow!("{e}"))?;

    // Trusting another CA: the handshake fails.
    let stranger = TestCertificates::new(&dir.path().join("other"))?;
    let untrusting = tokio::time::timeout(
        Duration::from_secs(10),
        async_nats::ConnectOptions::new()
            .nkey(seed.clone())
            .add_root_certificates(stranger.ca_file.clone())
            .require_tls(true)
            .connect(&url),
    )
    .await;
    assert!(!matches!(untrusting, Ok(Ok(_))), "a client trusting another CA connected");

    // No TLS at all: the server says TLS is required and answers a plain CONNECT with nothing.
    let plain = tokio::time::timeout(Duration::from_secs(10), plain_nats_session(port)).await;
    match plain {
        Ok(Ok(answer)) => assert!(!answer.contains("PONG"), "a client without TLS was served: {answer:?}"),
        Ok(Err(e)) => return Err(e),
        Err(_) => {} // the server waits for a TLS handshake that never comes: not served either
    }

    // The hub over TLS with its nkey and the CA: an event posted over HTTP reaches the log.
    let hub = sgd_tests::HubProcess::start(
        &url,
        &["--nats-nkey-file", path_str(&hub_seed), "--nats-ca-file", path_str(&certificates.ca_file)],
    )
    .await?;
    let body =
        std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../schemas/examples/plans/plan.closed.v1.valid.json"))?;
    let event: serde_json::Value = serde_json::from_slice(&body)?;
    let principal = event["principal"].as_str().context("example has a principal")?;
    let integrator = hub.api(Role::Integrator, Some(principal))?;
    let posted = integrator
        .client
        .post(format!("{}/api/v1/events", integrator.base))
        .bearer_auth(&integrator.token)
        .header("Content-Type", "application/cloudevents+json")
        .body(body)
        .send()
        .await?;
    assert_eq!(posted.status(), 202, "{}", posted.text().await?);
    let analyst = hub.api(Role::Analyst, None)?;
    wait_until(Duration::from_secs(20), || async { Ok(analyst.usage_total("").await? == 1) }).await?;
    Ok(())
}

/// Reads the server's INFO over plain TCP, checks it demands TLS, sends a plain CONNECT and PING
/// and returns whatever comes back before the server closes the connection.
async fn plain_nats_session(port: u16) -> Result<String> {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    let mut reader = tokio::io::BufReader::new(stream);
    let mut info = String::new();
    reader.read_line(&mut info).await?;
    assert!(info.starts_with("INFO") && info.contains("\"tls_required\":true"), "{info}");
    reader.get_mut().write_all(b"CONNECT {\"verbose\":false}\r\nPING\r\n").await?;
    let mut answer = Vec::new();
    let _ = reader.read_to_end(&mut answer).await; // a reset is as good as a close
    Ok(String::from_utf8_lossy(&answer).into_owned())
}
