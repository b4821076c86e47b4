//! The hub under test: `hub serve` as a child process with its own data directory, an API on a
//! free port with the rate limit off, and an operator token.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use super::{err, BenchError};
use crate::{server::embedded_nats, tokens::Role};

/// Which parts of the hub a bench phase runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HubParts {
    /// Every part (validator, router, webhooks, projection, API): the ingest, latency, query and
    /// webhook phases.
    All,
    /// The projection and the API only: the rebuild phase measures the read model rebuilt from the
    /// log, not the router's own store (`<data_dir>/routing`) replayed beside it.
    ReadModel,
}

/// A running `hub serve`, killed on drop.
pub struct BenchHub {
    /// `None` once stopped; behind a lock so a `&self` check can reap an early exit.
    child: std::sync::Mutex<Option<Child>>,
    pid: u32,
    data_dir: PathBuf,
    log: PathBuf,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// An operator token.
    pub operator: String,
    /// An analyst token.
    pub analyst: String,
    /// A client for the hub's API.
    pub http: reqwest::Client,
    tokens_file: PathBuf,
}

impl BenchHub {
    /// A new token of `role` (bound to `principal`).
    pub fn token(&self, role: Role, principal: Option<&str>) -> Result<String, BenchError> {
        crate::tokens::add(&self.tokens_file, role, principal).map(|(_, secret)| secret).map_err(err)
    }

    /// Starts `hub serve` with `parts` in `dir` and waits for `/healthz`.
    pub async fn start(binary: &Path, nats_url: &str, dir: &Path, parts: HubParts) -> Result<Self, BenchError> {
        std::fs::create_dir_all(dir).map_err(err)?;
        let port = embedded_nats::free_port().map_err(err)?;
        let data_dir = dir.join("data");
        let tokens_file = dir.join("tokens.json");
        let (_, operator) = crate::tokens::add(&tokens_file, Role::Operator, None).map_err(err)?;
        let (_, analyst) = crate::tokens::add(&tokens_file, Role::Analyst, None).map_err(err)?;
        let config = dir.join("hub.toml");
        // Extra settings for experiments, e.g. SGD_BENCH_HUB_CONFIG='views_flush_ms = 250'.
        let extra = std::env::var("SGD_BENCH_HUB_CONFIG").unwrap_or_default();
        let parts = match parts {
            HubParts::All => "validator = true",
            HubParts::ReadModel => "validator = false\nrouter = false\nwebhooks = false",
        };
        let toml = format!(
            "nats_url = {nats_url:?}\ndata_dir = {:?}\nhttp_addr = \"127.0.0.1:{port}\"\ntokens_file = {:?}\n\
             {parts}\nrate_limit_per_second = 0\n{extra}\n\n\
             # The webhook phase's receiver is plain HTTP on loopback.\n\
             [webhook]\nallow_http = true\nallow_private_targets = true\n",
            data_dir.display().to_string(),
            tokens_file.display().to_string(),
        );
        std::fs::write(&config, toml).map_err(err)?;
        let log = dir.join("hub.log");
        let out = std::fs::File::create(&log).map_err(err)?;
        // A profiler can wrap the hub: SGD_BENCH_HUB_WRAPPER="perf record -g -o /tmp/hub.perf --"
        // (the RSS figures then describe the wrapper's process, not the hub).
        let wrapper = std::env::var("SGD_BENCH_HUB_WRAPPER").unwrap_or_default();
        let mut words = wrapper.split_whitespace();
        let mut command = match words.next() {
            Some(program) => {
                let mut command = Command::new(program);
                command.args(words).arg(binary);
                command
            }
            None => Command::new(binary),
        };
        // Its own process group, so a stop reaches a wrapper's child (the hub) too.
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let child = command
            .arg("serve")
            .arg("--config")
            .arg(&config)
            // SGD_BENCH_HUB_LOG="warn,sgd_hub::store::read_model=debug" shows each views write's timing.
            .env("RUST_LOG", std::env::var("SGD_BENCH_HUB_LOG").unwrap_or_else(|_| "warn".into()))
            .stdin(Stdio::null())
            .stdout(out.try_clone().map_err(err)?)
            .stderr(out)
            .spawn()
            .map_err(|e| BenchError(format!("starting {}: {e}", binary.display())))?;
        let hub = Self {
            pid: child.id(),
            child: std::sync::Mutex::new(Some(child)),
            data_dir,
            log,
            base: format!("http://127.0.0.1:{port}"),
            operator,
            analyst,
            http: reqwest::Client::new(),
            tokens_file,
        };
        let started = Instant::now();
        loop {
            let up = hub.http.get(format!("{}/healthz", hub.base)).send().await.is_ok_and(|r| r.status().is_success());
            if up {
                return Ok(hub);
            }
            if started.elapsed() > Duration::from_secs(60) {
                return Err(BenchError(format!("the hub did not come up; its log:\n{}", hub.log_text())));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The hub's process id.
    pub fn pid(&self) -> Result<u32, BenchError> {
        match self.child.lock().map_err(err)?.is_some() {
            true => Ok(self.pid),
            false => Err(BenchError("the hub is not running".into())),
        }
    }

    /// Its checkpoint as `/readyz` reports it.
    pub async fn checkpoint(&self) -> Result<u64, BenchError> {
        let response =
            self.http.get(format!("{}/readyz", self.base)).bearer_auth(&self.operator).send().await.map_err(err)?;
        let body: serde_json::Value = response.json().await.map_err(err)?;
        body["checkpoint"].as_u64().ok_or_else(|| BenchError(format!("/readyz without a checkpoint: {body}")))
    }

    /// Waits until the checkpoint reaches `sequence` (an hour at most).
    pub async fn wait_for_checkpoint(&self, sequence: u64) -> Result<(), BenchError> {
        let started = Instant::now();
        while self.checkpoint().await? < sequence {
            if started.elapsed() > Duration::from_secs(3600) {
                return Err(BenchError("the read model did not catch up within an hour".into()));
            }
            if let Some(status) = self.exited()? {
                return Err(BenchError(format!("the hub exited ({status}); its log:\n{}", self.log_text())));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(())
    }

    /// How it ended, if it has.
    fn exited(&self) -> Result<Option<std::process::ExitStatus>, BenchError> {
        let mut child = self.child.lock().map_err(err)?;
        match child.as_mut() {
            Some(child) => child.try_wait().map_err(err),
            None => Ok(None),
        }
    }

    /// Its peak resident set since start or the last [`BenchHub::reset_peak_rss`], in MB.
    pub fn peak_rss_mb(&self) -> Result<f64, BenchError> {
        let pid = self.pid()?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).map_err(err)?;
        status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map(|kb| kb / 1024.0)
            .ok_or_else(|| BenchError("no VmHWM in /proc status".into()))
    }

    /// Resets the peak resident set to the current one (Linux: `5` into `clear_refs`).
    pub fn reset_peak_rss(&self) {
        if let Ok(pid) = self.pid() {
            if let Err(e) = std::fs::write(format!("/proc/{pid}/clear_refs"), "5") {
                eprintln!("could not reset the hub's peak RSS ({e}); the next figure includes earlier phases");
            }
        }
    }

    /// Its data directory (the read model; its tokens and log are kept beside it).
    pub fn data_dir(&self) -> PathBuf {
        self.data_dir.clone()
    }

    /// Its log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Stops it with SIGTERM and waits (30 s, then SIGKILL).
    pub async fn stop(self) -> Result<(), BenchError> {
        let Some(mut child) = self.child.lock().map_err(err)?.take() else { return Ok(()) };
        signal_group(&child, libc::SIGTERM);
        let started = Instant::now();
        loop {
            if child.try_wait().map_err(err)?.is_some() {
                return Ok(());
            }
            if started.elapsed() > Duration::from_secs(30) {
                signal_group(&child, libc::SIGKILL);
                let _ = child.wait();
                return Err(BenchError(format!("the hub did not stop within 30 s; its log:\n{}", self.log_text())));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Sends `signal` to the child's process group (the hub, and a profiler wrapping it).
fn signal_group(child: &Child, signal: libc::c_int) {
    // SAFETY: kill(2) on our own child's process group has no memory effects.
    unsafe { libc::kill(-(child.id() as libc::pid_t), signal) };
}

impl Drop for BenchHub {
    fn drop(&mut self) {
        let child = self.child.get_mut().map(Option::take).unwrap_or_else(|poisoned| poisoned.into_inner().take());
        if let Some(mut child) = child {
            signal_group(&child, libc::SIGKILL);
            let _ = child.wait();
        }
    }
}
