//! Test harness for sgd-hub: real `nats-server` processes on free ports (or containers), the `hub` binary as a child process that tests can SIGKILL, an in-process
//! hub, and small helpers. Everything started here is stopped and deleted on `Drop`.
//!
//! # Layout
//! - [`nats_server`]: `nats-server` processes that tests kill, stop and restart.
//! - [`TestNats`]: a `nats-server` with JetStream and its own storage directory.
//! - [`HubProcess`]: the `hub serve` binary against a [`TestNats`], killable and restartable.
//! - [`InProcessHub`]: the hub's library started inside the test.
//! - [`Api`]: an HTTP client with a token.
//! - [`wait_until`]: polls a condition with a deadline.
//! - [`docker`]: the project's images, compose projects and a NATS cluster of containers that can
//!   be partitioned (the container tests).

use std::{
    future::Future,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _, Result};
use sgd_hub::{config::HubConfig, tokens::Role};
use tempfile::TempDir;

pub mod docker;
pub mod nats_server;

/// A JetStream-enabled NATS server for one test.
pub struct TestNats {
    backend: Backend,
    _dir: TempDir,
}

enum Backend {
    Process(nats_server::NatsServer),
    /// The container is held so that dropping the backend removes it.
    Container {
        _container: Box<testcontainers::ContainerAsync<testcontainers::GenericImage>>,
        url: String,
    },
}

impl TestNats {
    /// Starts a server: a local `nats-server` process, or with `SGD_TEST_DOCKER=1` a container
    /// ([`TestNats::start_container`]).
    pub async fn start() -> Result<Self> {
        if std::env::var("SGD_TEST_DOCKER").as_deref() == Ok("1") {
            return Self::start_container().await;
        }
        let dir = tempfile::tempdir()?;
        let server = nats_server::NatsServer::start(nats_server::NatsServerOptions {
            store_dir: dir.path().join("nats"),
            port: None,
            extra_config: String::new(),
        })?;
        Ok(Self { backend: Backend::Process(server), _dir: dir })
    }

    /// Starts a server in a container of the project's nats image, through testcontainers
    /// ([`docker::nats_container`]); the image is built first when missing.
    pub async fn start_container() -> Result<Self> {
        let (container, url) = docker::nats_container().await?;
        Ok(Self { backend: Backend::Container { _container: Box::new(container), url }, _dir: tempfile::tempdir()? })
    }

    /// The client URL.
    pub fn url(&self) -> String {
        match &self.backend {
            Backend::Process(server) => server.url(),
            Backend::Container { url, .. } => url.clone(),
        }
    }

    /// A JetStream context on a fresh connection.
    pub async fn jetstream(&self) -> Result<async_nats::jetstream::Context> {
        let client = async_nats::connect(self.url()).await.map_err(|e| anyhow::anyhow!("connect: {e}"))?;
        Ok(async_nats::jetstream::new(client))
    }

    /// The local process (not available for containers).
    pub fn process(&mut self) -> Option<&mut nats_server::NatsServer> {
        match &mut self.backend {
            Backend::Process(server) => Some(server),
            Backend::Container { .. } => None,
        }
    }
}

/// The newest modification time of any file under `dir`.
fn newest_under(dir: &Path) -> std::time::SystemTime {
    let mut newest = std::time::SystemTime::UNIX_EPOCH;
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            let time = if path.is_dir() {
                newest_under(&path)
            } else {
                entry.metadata().and_then(|m| m.modified()).unwrap_or(std::time::SystemTime::UNIX_EPOCH)
            };
            newest = newest.max(time);
        }
    }
    newest
}

/// Path of the `hub` binary (`SGD_HUB_BIN` overrides). `cargo test --workspace` builds it; it is
/// built here only when missing or older than the sources it is made of.
pub fn hub_binary() -> Result<PathBuf> {
    if let Ok(path) = std::env::var("SGD_HUB_BIN") {
        return Ok(PathBuf::from(path));
    }
    // Test executables live in target/<profile>/deps/.
    let exe = std::env::current_exe()?;
    let profile_dir = exe.parent().and_then(Path::parent).context("test executable has no profile dir")?;
    let candidate = profile_dir.join("hub");
    let profile = profile_dir.file_name().and_then(|n| n.to_str()).unwrap_or("debug").to_string();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let sources = ["hub/src", "schemas/src", "schemas/json", "adapters/src"]
        .iter()
        .map(|dir| newest_under(&root.join(dir)))
        .max()
        .unwrap_or(std::time::SystemTime::UNIX_EPOCH);
    let built = std::fs::metadata(&candidate).and_then(|m| m.modified()).ok();
    if built.is_some_and(|built| built >= sources) {
        return Ok(candidate);
    }
    static BUILD: std::sync::Once = std::sync::Once::new();
    let mut result = Ok(());
    BUILD.call_once(|| {
        let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        // The profile (`test`, or `bench` under --release) and features (dev-dependencies on, as
        // examples need them) the suite's `cargo test --workspace` built with, so no dependency
        // is compiled again: a `cargo build` in the dev profile rebuilt the whole tree.
        let profile = if profile == "release" { "bench" } else { "test" };
        cmd.args(["build", "--workspace", "--bins", "--examples", "--profile", profile]);
        result = match cmd.status() {
            Ok(status) if status.success() => Ok(()),
            Ok(status) => Err(anyhow::anyhow!("cargo build of hub failed: {status}")),
            Err(e) => Err(anyhow::anyhow!("cannot run cargo to build hub: {e}")),
        };
    });
    result?;
    if !candidate.exists() {
        bail!("hub binary not found at {}", candidate.display());
    }
    Ok(candidate)
}

/// Adds a token of `role` to `tokens_file` and returns its secret.
pub fn token(tokens_file: &Path, role: Role, principal: Option<&str>) -> Result<String> {
    Ok(sgd_hub::tokens::add(tokens_file, role, principal)?.1)
}

/// The `hub serve` binary as a child process.
pub struct HubProcess {
    child: Option<Child>,
    /// Its data directory.
    pub data_dir: PathBuf,
    /// Its API address.
    pub http_addr: SocketAddr,
    /// Its tokens file.
    pub tokens_file: PathBuf,
    /// Its API's base URL: `http://…`, or `https://…` for [`HubProcess::start_https`].
    pub base: String,
    /// An HTTP client for it (trusting its certificate, for HTTPS).
    pub client: reqwest::Client,
    nats_url: String,
    extra_args: Vec<String>,
    extra_env: Vec<(String, String)>,
    _dir: TempDir,
}

impl HubProcess {
    /// Starts `hub serve` against `nats_url` and waits for `/healthz`.
    pub async fn start(nats_url: &str, extra_args: &[&str]) -> Result<Self> {
        Self::start_with_client(nats_url, extra_args, "http", reqwest::Client::new()).await
    }

    /// [`HubProcess::start`] with these environment variables besides the harness's own (which
    /// they override, e.g. `RUST_LOG`), kept across restarts.
    pub async fn start_with_env(nats_url: &str, extra_args: &[&str], env: &[(&str, &str)]) -> Result<Self> {
        let mut hub = Self::new(nats_url, extra_args, "http", reqwest::Client::new())?;
        hub.extra_env = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        hub.spawn().await?;
        Ok(hub)
    }

    /// Starts `hub serve` whose API speaks HTTPS (`extra_args` name its `--tls-cert` and
    /// `--tls-key`), trusting `ca_pem`, and waits for `/healthz` over HTTPS.
    pub async fn start_https(nats_url: &str, extra_args: &[&str], ca_pem: &[u8]) -> Result<Self> {
        Self::start_with_client(nats_url, extra_args, "https", https_client(ca_pem)?).await
    }

    async fn start_with_client(
        nats_url: &str,
        extra_args: &[&str],
        scheme: &str,
        client: reqwest::Client,
    ) -> Result<Self> {
        let mut hub = Self::new(nats_url, extra_args, scheme, client)?;
        hub.spawn().await?;
        Ok(hub)
    }

    fn new(nats_url: &str, extra_args: &[&str], scheme: &str, client: reqwest::Client) -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let port = nats_server::free_port()?;
        let http_addr = SocketAddr::from(([127, 0, 0, 1], port));
        Ok(Self {
            child: None,
            data_dir: dir.path().join("data"),
            http_addr,
            tokens_file: dir.path().join("tokens.json"),
            base: format!("{scheme}://{http_addr}"),
            client,
            nats_url: nats_url.into(),
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
            extra_env: Vec::new(),
            _dir: dir,
        })
    }

    async fn spawn(&mut self) -> Result<()> {
        self.spawn_child()?;
        self.wait_healthy(Duration::from_secs(30)).await
    }

    fn spawn_child(&mut self) -> Result<()> {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self._dir.path().join("hub.log"))?;
        let child = Command::new(hub_binary()?)
            .arg("serve")
            .args(&self.extra_args)
            .env("HUB_NATS_URL", &self.nats_url)
            .env("HUB_DATA_DIR", &self.data_dir)
            .env("HUB_HTTP_ADDR", self.http_addr.to_string())
            .env("HUB_TOKENS_FILE", &self.tokens_file)
            .env("RUST_LOG", "info,async_nats=warn")
            // Spans are exported only by the tests that ask for it.
            .env_remove("HUB_OTLP_ENDPOINT")
            .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            .envs(self.extra_env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("spawning hub")?;
        self.child = Some(child);
        Ok(())
    }

    /// Waits until `/healthz` answers, at most `limit`.
    pub async fn wait_healthy(&self, limit: Duration) -> Result<()> {
        let url = format!("{}/healthz", self.base);
        let client = self.client.clone();
        wait_until(limit, || {
            let client = client.clone();
            let url = url.clone();
            async move { Ok(client.get(&url).send().await.map(|r| r.status().is_success()).unwrap_or(false)) }
        })
        .await
        .with_context(|| format!("hub did not come up; log:\n{}", self.log()))
    }

    /// Spawns `hub serve` with its read model in `data_dir` (a directory the test prepared: a
    /// small `tmpfs`, a damaged read model, …) without waiting for it to come up: follow with
    /// [`HubProcess::wait_healthy`] or [`HubProcess::wait_exit`].
    pub fn launch(nats_url: &str, data_dir: &Path, extra_args: &[&str]) -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let port = nats_server::free_port()?;
        let http_addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut hub = Self {
            child: None,
            data_dir: data_dir.to_path_buf(),
            http_addr,
            tokens_file: dir.path().join("tokens.json"),
            base: format!("http://{http_addr}"),
            client: reqwest::Client::new(),
            nats_url: nats_url.into(),
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
            extra_env: Vec::new(),
            _dir: dir,
        };
        hub.spawn_child()?;
        Ok(hub)
    }

    /// Waits until the process exits, at most `limit`; `None` if it still runs.
    pub async fn wait_exit(&mut self, limit: Duration) -> Result<Option<std::process::ExitStatus>> {
        let started = Instant::now();
        loop {
            match self.child.as_mut() {
                None => bail!("the hub was not started or was killed"),
                Some(child) => {
                    if let Some(status) = child.try_wait()? {
                        self.child = None;
                        return Ok(Some(status));
                    }
                }
            }
            if started.elapsed() >= limit {
                return Ok(None);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Its process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Its peak resident set so far (`VmHWM`), in KiB, while it runs.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        proc_status_kib(self.pid()?, "VmHWM")
    }

    /// Its resident set now (`VmRSS`), in KiB, while it runs.
    pub fn rss_kib(&self) -> Option<u64> {
        proc_status_kib(self.pid()?, "VmRSS")
    }

    /// The hub's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("hub.log")).unwrap_or_default()
    }

    /// SIGKILLs the process.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops it with SIGTERM (it writes its views and flushes) and waits for it to exit, with a
    /// SIGKILL after 30 s. Returns whether it exited successfully.
    pub async fn terminate(&mut self) -> Result<bool> {
        let Some(mut child) = self.child.take() else { return Ok(false) };
        let pid = child.id();
        // SAFETY: kill(2) with a pid we spawned and still own (not yet reaped).
        unsafe { libc::kill(pid as i32, libc::SIGTERM) };
        let started = Instant::now();
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(status.success());
            }
            if started.elapsed() > Duration::from_secs(30) {
                let _ = child.kill();
                let _ = child.wait();
                bail!("the hub did not exit within 30 s of SIGTERM");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Starts it again with the same data.
    pub async fn restart(&mut self) -> Result<()> {
        self.kill();
        self.spawn().await
    }

    /// An API client with a new token of `role`.
    pub fn api(&self, role: Role, principal: Option<&str>) -> Result<Api> {
        let token = token(&self.tokens_file, role, principal)?;
        Ok(Api { base: self.base.clone(), token, client: self.client.clone() })
    }
}

/// An HTTP client that trusts `ca_pem` (a PEM certificate, e.g. a test's self-signed one).
pub fn https_client(ca_pem: &[u8]) -> Result<reqwest::Client> {
    let certificate = reqwest::Certificate::from_pem(ca_pem).context("the CA is not a PEM certificate")?;
    Ok(reqwest::Client::builder()
        .add_root_certificate(certificate)
        .tls_built_in_root_certs(false)
        .https_only(true)
        .build()?)
}

impl Drop for HubProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The hub library started inside the test process, stopped on `Drop`.
pub struct InProcessHub {
    /// Its API address.
    pub http_addr: SocketAddr,
    /// Its tokens file.
    pub tokens_file: PathBuf,
    /// Its configuration.
    pub config: HubConfig,
    stop: tokio::sync::watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<Result<(), sgd_hub::server::HubError>>>,
    _dir: TempDir,
}

impl InProcessHub {
    /// Starts validator, projector and API against `nats_url`; `adjust` may change the config.
    pub async fn start(nats_url: &str, adjust: impl FnOnce(&mut HubConfig)) -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let mut config = HubConfig {
            nats_url: nats_url.into(),
            data_dir: dir.path().join("data"),
            http_addr: "127.0.0.1:0".parse()?,
            tokens_file: Some(dir.path().join("tokens.json")),
            instance: "test".into(),
            ..Default::default()
        };
        adjust(&mut config);
        let (stop, shutdown) = tokio::sync::watch::channel(false);
        let running = sgd_hub::server::start(&config, shutdown).await?;
        let http_addr = running.http_addr.context("API not started")?;
        let task = tokio::spawn(running.wait());
        Ok(Self { http_addr, tokens_file: config.tokens_path(), config, stop, task: Some(task), _dir: dir })
    }

    /// An API client with a new token of `role`.
    pub fn api(&self, role: Role, principal: Option<&str>) -> Result<Api> {
        Ok(Api::new(self.http_addr, token(&self.tokens_file, role, principal)?))
    }

    /// Stops it and waits.
    pub async fn stop(mut self) -> Result<()> {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            task.await??;
        }
        Ok(())
    }
}

impl Drop for InProcessHub {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// An HTTP client for the hub's API with a bearer token.
#[derive(Clone)]
pub struct Api {
    /// Base URL, `http://127.0.0.1:<port>`.
    pub base: String,
    /// The token.
    pub token: String,
    /// The client.
    pub client: reqwest::Client,
}

impl Api {
    /// A client for `addr` with `token`.
    pub fn new(addr: SocketAddr, token: String) -> Self {
        Self { base: format!("http://{addr}"), token, client: reqwest::Client::new() }
    }

    /// GET `path` with the token.
    pub async fn get(&self, path: &str) -> Result<reqwest::Response> {
        Ok(self.client.get(format!("{}{path}", self.base)).bearer_auth(&self.token).send().await?)
    }

    /// GET `path` and parse JSON, failing on a non-2xx status.
    pub async fn get_json(&self, path: &str) -> Result<serde_json::Value> {
        let response = self.get(path).await?;
        let status = response.status();
        let text = response.text().await?;
        if !status.is_success() {
            bail!("GET {path}: {status}: {text}");
        }
        Ok(serde_json::from_str(&text)?)
    }

    /// The total of `/api/v1/usage` with `query` (e.g. `"area=npo"`), 0 if unavailable.
    pub async fn usage_total(&self, query: &str) -> Result<u64> {
        let value = self.get_json(&format!("/api/v1/usage?{query}")).await?;
        Ok(value["total"].as_u64().unwrap_or(0))
    }

    /// The log sequence the hub's stored views reflect (`sgd_projection_views_sequence` in
    /// `/metrics`; an operator's token).
    pub async fn stored_views_sequence(&self) -> Result<u64> {
        let response = self.get("/metrics").await?;
        let status = response.status();
        let metrics = response.text().await?;
        if !status.is_success() {
            bail!("GET /metrics: {status}: {metrics}");
        }
        metrics
            .lines()
            .find_map(|l| l.strip_prefix("sgd_projection_views_sequence ")?.trim().parse().ok())
            .context("no sgd_projection_views_sequence in /metrics")
    }
}

/// Polls `condition` every 50 ms until it is true or `limit` passes.
pub async fn wait_until<F, Fut>(limit: Duration, mut condition: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<bool>>,
{
    let started = Instant::now();
    let mut last_error = None;
    while started.elapsed() < limit {
        match condition().await {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(e) => last_error = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    match last_error {
        Some(e) => Err(e.context(format!("condition not met within {limit:?}"))),
        None => bail!("condition not met within {limit:?}"),
    }
}

/// Every valid example event shipped in `schemas/examples/` (path, bytes).
pub fn valid_examples() -> Vec<(PathBuf, Vec<u8>)> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../schemas/examples");
    let mut out = Vec::new();
    for area in std::fs::read_dir(&root).expect("schemas/examples exists").flatten() {
        for file in std::fs::read_dir(area.path()).expect("area dir").flatten() {
            let path = file.path();
            if path.to_string_lossy().ends_with(".valid.json") {
                let bytes = std::fs::read(&path).expect("readable example");
                out.push((path, bytes));
            }
        }
    }
    out.sort();
    out
}

/// A field of `/proc/<pid>/status` given in kB (`VmHWM`, `VmRSS`, …).
pub fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|line| {
        let rest = line.strip_prefix(field)?.strip_prefix(':')?;
        rest.trim().trim_end_matches("kB").trim().parse().ok()
    })
}

/// A three-node `nats-server` JetStream cluster on free loopback ports (routes between all
/// three, one storage directory per node). Each node can be killed and restarted with its own
/// storage; everything is stopped and removed on `Drop`.
pub struct TestCluster {
    nodes: Vec<nats_server::NatsServer>,
    _dir: TempDir,
}

impl TestCluster {
    /// Starts three nodes and waits until JetStream answers on each (a meta leader is elected).
    pub async fn start() -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let client_ports = [nats_server::free_port()?, nats_server::free_port()?, nats_server::free_port()?];
        let route_ports = [nats_server::free_port()?, nats_server::free_port()?, nats_server::free_port()?];
        let routes = route_ports.iter().map(|p| format!("nats-route://127.0.0.1:{p}")).collect::<Vec<_>>().join(", ");
        let mut nodes = Vec::new();
        for (i, (client, route)) in client_ports.iter().zip(route_ports).enumerate() {
            let extra_config = format!(
                "server_name: sgd-n{i}\ncluster {{\n  name: sgd\n  listen: 127.0.0.1:{route}\n  routes: [{routes}]\n}}\n"
            );
            nodes.push(nats_server::NatsServer::start(nats_server::NatsServerOptions {
                store_dir: dir.path().join(format!("n{i}")),
                port: Some(*client),
                extra_config,
            })?);
        }
        let cluster = Self { nodes, _dir: dir };
        for i in 0..3 {
            cluster.wait_jetstream(i, Duration::from_secs(60)).await?;
        }
        Ok(cluster)
    }

    /// Waits until node `i` answers JetStream requests.
    pub async fn wait_jetstream(&self, i: usize, limit: Duration) -> Result<()> {
        wait_for_jetstream(&self.nodes[i].url(), limit)
            .await
            .with_context(|| format!("JetStream on node {i} did not come up; its log:\n{}", self.node_log(i)))
    }

    /// The client URLs of the three nodes.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.url()).collect()
    }

    /// All three client URLs, comma-separated (what `hub serve --nats-url` takes).
    pub fn url(&self) -> String {
        self.urls().join(",")
    }

    /// Node `i` (0, 1 or 2): kill it, restart it.
    pub fn node(&mut self, i: usize) -> &mut nats_server::NatsServer {
        &mut self.nodes[i]
    }

    /// The server name of node `i` (`sgd-n<i>`).
    pub fn server_name(i: usize) -> String {
        format!("sgd-n{i}")
    }

    /// Node `i`'s log.
    pub fn node_log(&self, i: usize) -> String {
        std::fs::read_to_string(self.nodes[i].store_dir().join("nats-server.log")).unwrap_or_default()
    }

    /// A JetStream context on a connection that knows all three nodes (and fails over).
    pub async fn jetstream(&self) -> Result<async_nats::jetstream::Context> {
        Ok(async_nats::jetstream::new(crate::connect_retrying(self.urls()).await?))
    }
}

/// A `tmpfs` of a fixed size mounted on a directory (a small disk that fills up), unmounted on
/// `Drop`. Needs root (the test suite runs as root on Linux); without it, [`TmpfsMount::mount`]
/// fails with a message saying so.
pub struct TmpfsMount {
    path: PathBuf,
}

impl TmpfsMount {
    /// Creates `path` and mounts a `tmpfs` of `size_bytes` on it.
    pub fn mount(path: &Path, size_bytes: u64) -> Result<Self> {
        std::fs::create_dir_all(path)?;
        let output = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size_bytes}"), "sgd-test-tmpfs"])
            .arg(path)
            .output()
            .context("running mount")?;
        if !output.status.success() {
            bail!(
                "cannot mount a {size_bytes}-byte tmpfs on {} (this test needs root to simulate a full disk): {}",
                path.display(),
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(Self { path: path.to_path_buf() })
    }

    /// Changes its size (to free space: grow it).
    pub fn resize(&self, size_bytes: u64) -> Result<()> {
        let output = Command::new("mount")
            .args(["-o", &format!("remount,size={size_bytes}")])
            .arg(&self.path)
            .output()
            .context("running mount")?;
        if !output.status.success() {
            bail!("cannot resize the tmpfs on {}: {}", self.path.display(), String::from_utf8_lossy(&output.stderr));
        }
        Ok(())
    }

    /// Bytes still free on it.
    pub fn free_bytes(&self) -> Result<u64> {
        let path = std::ffi::CString::new(self.path.as_os_str().as_encoded_bytes())?;
        // SAFETY: `path` is a valid NUL-terminated string and `stat` a plain struct statvfs fills.
        let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
        if unsafe { libc::statvfs(path.as_ptr(), &mut stat) } != 0 {
            return Err(std::io::Error::last_os_error().into());
        }
        Ok(stat.f_bavail as u64 * stat.f_frsize as u64)
    }
}

impl Drop for TmpfsMount {
    fn drop(&mut self) {
        let unmounted = Command::new("umount").arg(&self.path).status().map(|s| s.success()).unwrap_or(false);
        if !unmounted {
            // Something still holds a file open on it: detach it now, free it when released.
            let _ = Command::new("umount").arg("-l").arg(&self.path).status();
        }
    }
}

/// What a stream holds: messages and distinct `Nats-Msg-Id` identities.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogCensus {
    /// Messages read.
    pub messages: u64,
    /// Distinct `Nats-Msg-Id` values among them.
    pub distinct: u64,
    /// Messages without a `Nats-Msg-Id`.
    pub without_id: u64,
}

impl LogCensus {
    /// Messages whose identity was already in the stream.
    pub fn duplicates(&self) -> u64 {
        self.messages - self.without_id - self.distinct
    }
}

/// Reads every message of `stream` (an ephemeral consumer, no acks) and counts messages and
/// distinct identities.
pub async fn log_census(js: &async_nats::jetstream::Context, stream: &str) -> Result<LogCensus> {
    use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy};
    use futures::StreamExt as _;
    let mut stream = js.get_stream(stream).await?;
    let expected = stream.info().await?.state.messages;
    let mut census = LogCensus { messages: 0, distinct: 0, without_id: 0 };
    if expected == 0 {
        return Ok(census);
    }
    let config = pull::Config {
        deliver_policy: DeliverPolicy::All,
        ack_policy: AckPolicy::None,
        inactive_threshold: Duration::from_secs(60),
        ..Default::default()
    };
    // Right after a cluster node comes back, JetStream's API can time out for a while (seen once
    // in CI: "timed out" creating this consumer, with both hubs already at the full count). That
    // is not what a census counts: ask again for up to a minute, then report the last error.
    let asking_since = std::time::Instant::now();
    let consumer = loop {
        match stream.create_consumer(config.clone()).await {
            Ok(consumer) => break consumer,
            Err(e) if asking_since.elapsed() < Duration::from_secs(60) => {
                eprintln!("census of {}: creating its consumer: {e}; asking again", stream.cached_info().config.name);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(e) => return Err(anyhow::Error::new(e).context("census: creating its consumer for a minute")),
        }
    };
    let mut messages = consumer.stream().max_messages_per_batch(5000).messages().await?;
    let mut seen = std::collections::HashSet::with_capacity(expected as usize);
    loop {
        let message = tokio::time::timeout(Duration::from_secs(30), messages.next())
            .await
            .context("reading the stream: nothing for 30 s")?
            .context("the stream's consumer ended")?
            .map_err(|e| anyhow::anyhow!("reading the stream: {e}"))?;
        census.messages += 1;
        match message.headers.as_ref().and_then(|h| h.get("Nats-Msg-Id")) {
            Some(id) => {
                if seen.insert(id.as_str().to_string()) {
                    census.distinct += 1;
                }
            }
            None => census.without_id += 1,
        }
        if message.info().map(|i| i.pending == 0).unwrap_or(false) {
            break;
        }
    }
    Ok(census)
}

/// Waits until the NATS server at `url` answers JetStream requests: a meta leader answers "stream
/// not found" (10059) for a stream that does not exist; without one the request fails.
/// A client that keeps trying to connect to `urls` and reconnects for ever, as an adapter does
/// (it fails over between the nodes of a cluster).
pub async fn connect_retrying(urls: impl async_nats::ToServerAddrs) -> Result<async_nats::Client> {
    async_nats::ConnectOptions::new()
        .retry_on_initial_connect()
        .max_reconnects(None)
        .connect(urls)
        .await
        .map_err(|e| anyhow::anyhow!("connect: {e}"))
}

/// Two hubs on `url` with `stream_replicas = 3` (a cluster's), and the directory of their
/// configuration, which must outlive them.
pub async fn two_hubs_at_three_replicas(url: &str) -> Result<(TempDir, HubProcess, HubProcess)> {
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("hub.toml");
    std::fs::write(&config, "stream_replicas = 3\n")?;
    let config = config.to_str().context("utf-8 path")?;
    let a = HubProcess::start(url, &["--config", config]).await?;
    let b = HubProcess::start(url, &["--config", config]).await?;
    Ok((dir, a, b))
}

pub async fn wait_for_jetstream(url: &str, limit: Duration) -> Result<()> {
    let client = async_nats::ConnectOptions::new()
        .retry_on_initial_connect()
        .connect(url)
        .await
        .map_err(|e| anyhow::anyhow!("connect to {url}: {e}"))?;
    let js = async_nats::jetstream::new(client);
    wait_until(limit, || {
        let js = js.clone();
        async move {
            match js.get_stream("SGD_PROBE_NO_SUCH_STREAM").await {
                Ok(_) => Ok(true),
                Err(e) if e.to_string().contains("10059") => Ok(true),
                Err(e) => Err(anyhow::anyhow!("JetStream request: {e}")),
            }
        }
    })
    .await
}
