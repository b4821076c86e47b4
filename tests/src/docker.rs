//! Containers for the tests: the project's images, a way for testcontainers to reach an older
//! Docker engine, compose projects, and a NATS cluster of containers whose nodes can be cut off
//! their network and healed. Every container, network and volume started here is removed on
//! `Drop`; the images are kept as a cache (their tags name their content, so a stale one is never
//! used).
//!
//! Nothing is pulled: `scripts/images.sh` builds the images on this machine (a Debian base made
//! with debootstrap, the official static nats-server, the suite's own `hub` binary).

use std::{
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    path::PathBuf,
    process::{Command, Output, Stdio},
    sync::OnceLock,
    time::Duration,
};

use anyhow::{bail, Context as _, Result};
use testcontainers::{
    core::{ContainerPort, WaitFor},
    runners::AsyncRunner,
    ContainerAsync, GenericImage, ImageExt,
};

use crate::nats_server;

/// The Docker engine's version, or `None` (with the reason) when there is none to talk to. Tests
/// that need containers skip with that message only then.
pub fn engine() -> std::result::Result<String, String> {
    static ENGINE: OnceLock<std::result::Result<String, String>> = OnceLock::new();
    ENGINE
        .get_or_init(|| match docker().args(["version", "--format", "{{.Server.Version}}"]).output() {
            Ok(out) if out.status.success() => Ok(String::from_utf8_lossy(&out.stdout).trim().to_string()),
            Ok(out) => Err(format!("no Docker engine answers: {}", String::from_utf8_lossy(&out.stderr).trim())),
            Err(e) => Err(format!("no docker command: {e}")),
        })
        .clone()
}

/// Whether a test needing containers must skip: prints why (there is no Docker engine) and
/// returns `true`.
pub fn skip(test: &str) -> bool {
    match engine() {
        Ok(_) => false,
        Err(why) => {
            eprintln!("SKIPPED {test}: {why} (the container tests need a Docker engine)");
            true
        }
    }
}

/// The `docker` command, talking to the engine the user configured (not to [`api_shim`]'s).
pub fn docker() -> Command {
    let mut cmd = Command::new("docker");
    match original_docker_host() {
        Some(host) => cmd.env("DOCKER_HOST", host),
        None => cmd.env_remove("DOCKER_HOST"),
    };
    cmd
}

fn original_docker_host() -> Option<String> {
    static ORIGINAL: OnceLock<Option<String>> = OnceLock::new();
    ORIGINAL.get_or_init(|| std::env::var("DOCKER_HOST").ok()).clone()
}

/// Runs `cmd`, failing with its stderr when it fails.
pub fn run(cmd: &mut Command) -> Result<Output> {
    let output = cmd.stdin(Stdio::null()).output().with_context(|| format!("running {cmd:?}"))?;
    if !output.status.success() {
        bail!(
            "{cmd:?} failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(output)
}

/// The images the container tests use.
#[derive(Debug, Clone)]
pub struct Images {
    /// nats-server (`sgd-nats:<version>-<hash>`).
    pub nats: String,
    /// The hub with this suite's `hub` binary (`sgd-hub:<hash>`).
    pub hub: String,
}

impl Images {
    /// The nats image's name and tag, apart.
    pub fn nats_name_tag(&self) -> (&str, &str) {
        self.nats.split_once(':').unwrap_or((&self.nats, "latest"))
    }
}

/// Builds (once per test process, and only what is missing) the nats and hub images with
/// `scripts/images.sh`, the hub image from [`crate::hub_binary`].
pub fn images() -> Result<Images> {
    static IMAGES: OnceLock<std::result::Result<Images, String>> = OnceLock::new();
    IMAGES
        .get_or_init(|| {
            let build = || -> Result<Images> {
                let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
                let started = std::time::Instant::now();
                let output = run(docker_env(Command::new(root.join("scripts/images.sh")))
                    .args(["nats", "hub"])
                    .env("HUB_BIN", crate::hub_binary()?)
                    .current_dir(&root)
                    .stderr(Stdio::inherit()))?;
                let stdout = String::from_utf8_lossy(&output.stdout);
                let find = |key: &str| {
                    stdout
                        .lines()
                        .find_map(|l| l.strip_prefix(key)?.strip_prefix('=').map(str::to_string))
                        .with_context(|| format!("scripts/images.sh printed no {key}: {stdout}"))
                };
                let images = Images { nats: find("SGD_NATS_IMAGE")?, hub: find("SGD_HUB_IMAGE")? };
                eprintln!("images: {images:?} ready in {:.1?}", started.elapsed());
                Ok(images)
            };
            build().map_err(|e| format!("{e:#}"))
        })
        .clone()
        .map_err(|e| anyhow::anyhow!("building the images: {e}"))
}

fn docker_env(mut cmd: Command) -> Command {
    match original_docker_host() {
        Some(host) => cmd.env("DOCKER_HOST", host),
        None => cmd.env_remove("DOCKER_HOST"),
    };
    cmd
}

/// Makes testcontainers able to talk to this engine, once per process. testcontainers 0.27 asks
/// for the Docker API its bollard was written for (1.52, Docker 29) and does not negotiate; an
/// older engine (Debian 12's Docker 20.10 speaks up to 1.41) refuses every such request ("client
/// version 1.52 is too new"). Then a small proxy on a loopback port forwards to the engine's socket,
/// rewriting the version in each request's path to the engine's, and `DOCKER_HOST` points
/// testcontainers at it. Nothing else changes: the requests testcontainers makes (create, start,
/// logs, inspect, remove, networks) mean the same at 1.41. The harness's own `docker` commands
/// keep talking to the engine directly ([`docker`]).
pub fn api_shim() -> Result<()> {
    static SHIM: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    SHIM.get_or_init(|| start_api_shim().map_err(|e| format!("{e:#}"))).clone().map_err(|e| anyhow::anyhow!(e))
}

fn start_api_shim() -> Result<()> {
    let _ = original_docker_host();
    let engine_api = String::from_utf8(run(docker().args(["version", "--format", "{{.Server.APIVersion}}"]))?.stdout)?
        .trim()
        .to_string();
    let client_api = testcontainers::bollard::API_DEFAULT_VERSION.to_string();
    let as_pair = |v: &str| -> Option<(u32, u32)> {
        let (major, minor) = v.split_once('.')?;
        Some((major.parse().ok()?, minor.parse().ok()?))
    };
    let (Some(engine), Some(client)) = (as_pair(&engine_api), as_pair(&client_api)) else {
        bail!("cannot compare the engine's API {engine_api} with testcontainers' {client_api}");
    };
    if engine >= client {
        return Ok(());
    }
    let socket = match original_docker_host() {
        None => PathBuf::from("/var/run/docker.sock"),
        Some(host) => match host.strip_prefix("unix://") {
            Some(path) => PathBuf::from(path),
            None => bail!("the engine (API {engine_api}) is older than testcontainers' (API {client_api}) and DOCKER_HOST={host} is not a unix socket the harness can stand in front of"),
        },
    };
    if client_api.len() != engine_api.len() {
        bail!("API versions {client_api} and {engine_api} differ in length: the path cannot be rewritten in place");
    }
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let (from, to) = (format!("/v{client_api}/").into_bytes(), format!("/v{engine_api}/").into_bytes());
    std::thread::Builder::new().name("docker-api-shim".into()).spawn(move || {
        for client in listener.incoming().flatten() {
            let (socket, from, to) = (socket.clone(), from.clone(), to.clone());
            std::thread::spawn(move || {
                if let Err(e) = shim_connection(client, &socket, &from, &to) {
                    eprintln!("docker api shim: {e}");
                }
            });
        }
    })?;
    eprintln!(
        "docker api shim: the engine speaks API {engine_api}, testcontainers {client_api}: testcontainers goes through {addr}"
    );
    // SAFETY-free in edition 2021; set once, before the first container is started through it.
    std::env::set_var("DOCKER_HOST", format!("tcp://{addr}"));
    Ok(())
}

/// Forwards one connection, rewriting `from` (`/v1.52/`) to `to` (same length) on the way in.
fn shim_connection(mut client: TcpStream, socket: &std::path::Path, from: &[u8], to: &[u8]) -> Result<()> {
    let mut engine = std::os::unix::net::UnixStream::connect(socket)?;
    let (mut client_read, mut engine_write) = (client.try_clone()?, engine.try_clone()?);
    let back = std::thread::spawn(move || {
        let _ = std::io::copy(&mut engine, &mut client);
        let _ = client.shutdown(std::net::Shutdown::Write);
    });
    let mut pending: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = client_read.read(&mut buf)?;
        if n == 0 {
            engine_write.write_all(&pending)?;
            let _ = engine_write.shutdown(std::net::Shutdown::Write);
            break;
        }
        pending.extend_from_slice(&buf[..n]);
        let mut i = 0;
        while i + from.len() <= pending.len() {
            if &pending[i..i + from.len()] == from {
                pending[i..i + from.len()].copy_from_slice(to);
                i += from.len();
            } else {
                i += 1;
            }
        }
        // Hold back a tail that may be the start of `from`, split across reads.
        let keep = (1..from.len()).rev().find(|k| pending.len() >= *k && pending.ends_with(&from[..*k])).unwrap_or(0);
        let send = pending.len() - keep;
        engine_write.write_all(&pending[..send])?;
        pending.drain(..send);
    }
    let _ = back.join();
    Ok(())
}

/// A `nats-server` container with JetStream (the [`crate::TestNats`] container backend), from
/// the project's nats image, removed on `Drop`.
pub async fn nats_container() -> Result<(ContainerAsync<GenericImage>, String)> {
    api_shim()?;
    let images = images()?;
    let (name, tag) = images.nats_name_tag();
    let container = GenericImage::new(name, tag)
        .with_exposed_port(ContainerPort::Tcp(4222))
        .with_wait_for(WaitFor::message_on_stderr("Server is ready"))
        .with_cmd(["-js", "-sd", "/data"])
        .with_startup_timeout(Duration::from_secs(60))
        .start()
        .await
        .context("starting a nats container")?;
    let port = container.get_host_port_ipv4(4222).await?;
    Ok((container, format!("nats://127.0.0.1:{port}")))
}

/// A compose project of `compose.yaml` under a name of its own, with host ports of its own; `down
/// -v` (containers, networks, volumes) on `Drop`.
pub struct ComposeProject {
    /// The project name (`sgd-test-<pid>-<n>`).
    pub name: String,
    env: Vec<(String, String)>,
    root: PathBuf,
}

impl ComposeProject {
    /// A project with the test images and `env` (ports, SGD_DEMO_SIMULATED …); nothing started.
    pub fn new(env: &[(&str, String)]) -> Result<Self> {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let images = images()?;
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut all = vec![("SGD_HUB_IMAGE".to_string(), images.hub), ("SGD_NATS_IMAGE".to_string(), images.nats)];
        all.extend(env.iter().map(|(k, v)| (k.to_string(), v.clone())));
        Ok(Self {
            name: format!("sgd-test-{}-{n}", std::process::id()),
            env: all,
            root: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".."),
        })
    }

    /// `docker compose` (or Debian 12's `docker-compose`) for this project, with `args`.
    pub fn command(&self, args: &[&str]) -> Command {
        static PLUGIN: OnceLock<bool> = OnceLock::new();
        let plugin = *PLUGIN.get_or_init(|| {
            docker().args(["compose", "version"]).output().map(|o| o.status.success()).unwrap_or(false)
        });
        let mut cmd = if plugin {
            let mut cmd = docker();
            cmd.arg("compose");
            cmd
        } else {
            docker_env(Command::new("docker-compose"))
        };
        cmd.current_dir(&self.root).args(["--project-name", &self.name, "--file", "compose.yaml"]).args(args);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    /// Runs `args` and returns stdout; fails with the output.
    pub fn run(&self, args: &[&str]) -> Result<String> {
        Ok(String::from_utf8_lossy(&run(&mut self.command(args))?.stdout).into_owned())
    }

    /// The logs of `service` (stdout and stderr, no prefixes).
    pub fn logs(&self, service: &str) -> String {
        self.command(&["logs", "--no-color", "--no-log-prefix", service])
            .output()
            .map(|o| format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)))
            .unwrap_or_default()
    }
}

impl Drop for ComposeProject {
    fn drop(&mut self) {
        let _ = self
            .command(&["--profile", "cluster", "down", "--volumes", "--remove-orphans", "--timeout", "5"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Three `nats-server` containers (JetStream, routes between all three) on a Docker network of
/// their own, their client ports published on fixed loopback ports (so a node cut off and healed
/// answers at the same address). A node can be cut off the network altogether
/// ([`NatsContainerCluster::disconnect`]) or have only its routes to the others dropped
/// ([`NatsContainerCluster::cut_routes`]), and healed. Containers and network are removed on
/// `Drop`.
pub struct NatsContainerCluster {
    nodes: Vec<ContainerAsync<GenericImage>>,
    names: Vec<String>,
    network: String,
    ports: Vec<u16>,
}

impl NatsContainerCluster {
    /// Starts three nodes and waits until JetStream answers on each.
    pub async fn start() -> Result<Self> {
        api_shim()?;
        let images = images()?;
        let (image, tag) = images.nats_name_tag();
        let id = &uuid::Uuid::new_v4().simple().to_string()[..8];
        let network = format!("sgd-test-{id}");
        let names: Vec<String> = (0..3).map(|i| format!("sgd-test-{id}-n{i}")).collect();
        let routes = names.iter().map(|n| format!("nats://{n}:6222")).collect::<Vec<_>>().join(",");
        let mut nodes = Vec::new();
        let mut ports = Vec::new();
        for (i, name) in names.iter().enumerate() {
            let port = nats_server::free_port()?;
            let server_name = Self::server_name(i);
            let node = GenericImage::new(image, tag)
                .with_wait_for(WaitFor::message_on_stderr("Server is ready"))
                .with_cmd([
                    "-js",
                    "-sd",
                    "/data",
                    "--name",
                    &server_name,
                    "--cluster_name",
                    "sgd",
                    "--cluster",
                    "nats://0.0.0.0:6222",
                    "--routes",
                    &routes,
                    // Clients keep to the published addresses the test gives them, not the
                    // containers' own.
                    "--no_advertise",
                ])
                .with_network(&network)
                .with_container_name(name)
                .with_mapped_port(port, ContainerPort::Tcp(4222))
                .with_startup_timeout(Duration::from_secs(60))
                .start()
                .await
                .with_context(|| format!("starting nats container {name}"))?;
            nodes.push(node);
            ports.push(port);
        }
        let cluster = Self { nodes, names, network, ports };
        for i in 0..3 {
            cluster.wait_jetstream(i, Duration::from_secs(60)).await?;
        }
        Ok(cluster)
    }

    /// The server name of node `i` (`sgd-n<i>`, as [`crate::TestCluster`]'s).
    pub fn server_name(i: usize) -> String {
        format!("sgd-n{i}")
    }

    /// The client URLs of the three nodes.
    pub fn urls(&self) -> Vec<String> {
        self.ports.iter().map(|p| format!("nats://127.0.0.1:{p}")).collect()
    }

    /// All three, comma-separated (what `hub serve --nats-url` takes).
    pub fn url(&self) -> String {
        self.urls().join(",")
    }

    /// Waits until node `i` answers JetStream requests (a meta leader is known to it).
    pub async fn wait_jetstream(&self, i: usize, limit: Duration) -> Result<()> {
        crate::wait_for_jetstream(self.urls()[i].as_str(), limit)
            .await
            .with_context(|| format!("JetStream on node {i} did not come up"))
    }

    /// A JetStream context on a connection that knows all three nodes (and fails over).
    pub async fn jetstream(&self) -> Result<async_nats::jetstream::Context> {
        Ok(async_nats::jetstream::new(crate::connect_retrying(self.urls()).await?))
    }

    /// A JetStream context on node `i` alone (to ask the majority side during a partition).
    pub async fn jetstream_on(&self, i: usize) -> Result<async_nats::jetstream::Context> {
        let client = async_nats::connect(self.urls()[i].as_str()).await.map_err(|e| anyhow::anyhow!("connect: {e}"))?;
        Ok(async_nats::jetstream::new(client))
    }

    /// Cuts node `i` off: its container leaves the network, so neither the other nodes nor any
    /// client reach it (packets to it go nowhere; its published port closes).
    pub fn disconnect(&self, i: usize) -> Result<()> {
        run(docker().args(["network", "disconnect", &self.network, &self.names[i]]))?;
        Ok(())
    }

    /// Puts node `i` back on the network (its published port opens again).
    pub fn reconnect(&self, i: usize) -> Result<()> {
        run(docker().args(["network", "connect", &self.network, &self.names[i]]))?;
        Ok(())
    }

    /// Drops every packet of node `i`'s routes (port 6222 either way) inside its network
    /// namespace: the node stays reachable for its clients but cannot talk to the other nodes.
    /// Needs root (nsenter, iptables), as the suite runs.
    pub fn cut_routes(&self, i: usize) -> Result<()> {
        self.route_rules(i, "-A")
    }

    /// Removes what [`NatsContainerCluster::cut_routes`] added.
    pub fn restore_routes(&self, i: usize) -> Result<()> {
        self.route_rules(i, "-D")
    }

    fn route_rules(&self, i: usize, action: &str) -> Result<()> {
        let pid =
            String::from_utf8(run(docker().args(["inspect", "--format", "{{.State.Pid}}", &self.names[i]]))?.stdout)?;
        let pid = pid.trim();
        for rule in [["INPUT", "--dport"], ["INPUT", "--sport"], ["OUTPUT", "--dport"], ["OUTPUT", "--sport"]] {
            run(Command::new("nsenter").args([
                "--target", pid, "--net", "iptables", action, rule[0], "-p", "tcp", rule[1], "6222", "-j", "DROP",
            ]))
            .context("changing the node's firewall (needs root, nsenter and iptables)")?;
        }
        Ok(())
    }

    /// Node `i`'s log (nats-server writes to stderr).
    pub async fn node_log(&self, i: usize) -> String {
        let stderr = self.nodes[i].stderr_to_vec().await.unwrap_or_default();
        String::from_utf8_lossy(&stderr).into_owned()
    }
}
