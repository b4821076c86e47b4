//! `nats-server` processes the tests can kill, stop gracefully and restart on the same port with
//! the same storage, or start from a configuration file written elsewhere (one `hub nats-config`
//! wrote). Built on the hub's embedded server ([`sgd_hub::server::embedded_nats`]): the same
//! configuration file and the same wait until it accepts clients.

use std::{
    path::{Path, PathBuf},
    process::Child,
    time::{Duration, Instant},
};

pub use sgd_hub::server::embedded_nats::{free_port, NatsServerError, NatsServerOptions};
use sgd_hub::server::embedded_nats::{spawn, write_config};

/// A running `nats-server`, killed when dropped; its storage stays until its directory goes.
#[derive(Debug)]
pub struct NatsServer {
    child: Option<Child>,
    port: u16,
    store_dir: PathBuf,
    config_file: PathBuf,
    log_file: PathBuf,
}

impl NatsServer {
    /// Starts a server and waits until it accepts clients.
    pub fn start(options: NatsServerOptions) -> Result<Self, NatsServerError> {
        let port = match options.port {
            Some(port) => port,
            None => free_port()?,
        };
        let config_file = write_config(&options, port)?;
        Self::launch(config_file, port, options.store_dir)
    }

    /// Starts a server with a configuration file of its own (one `hub nats-config` wrote, say),
    /// which must listen on 127.0.0.1:`port`; its log goes to `log_dir`. Waits until it accepts
    /// clients.
    pub fn start_with_config_file(config_file: &Path, port: u16, log_dir: &Path) -> Result<Self, NatsServerError> {
        std::fs::create_dir_all(log_dir)?;
        Self::launch(config_file.into(), port, log_dir.into())
    }

    fn launch(config_file: PathBuf, port: u16, store_dir: PathBuf) -> Result<Self, NatsServerError> {
        let log_file = store_dir.join("nats-server.log");
        let child = spawn(&config_file, port, &log_file)?;
        Ok(Self { child: Some(child), port, store_dir, config_file, log_file })
    }

    /// The client URL, `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The client port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The JetStream storage directory.
    pub fn store_dir(&self) -> &Path {
        &self.store_dir
    }

    /// Kills the server (SIGKILL) and waits for it; its storage stays.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the server the way an operator does (SIGTERM: it closes clients and flushes its
    /// storage), waiting at most `limit` before killing it; its storage stays.
    pub fn stop(&mut self, limit: Duration) {
        let Some(mut child) = self.child.take() else { return };
        if let Ok(pid) = i32::try_from(child.id()) {
            // SAFETY: sending a signal to our own child process, which has not been reaped yet.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let started = Instant::now();
        while started.elapsed() < limit {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Starts the server again on the same port with the same storage.
    pub fn restart(&mut self) -> Result<(), NatsServerError> {
        self.kill();
        self.child = Some(spawn(&self.config_file, self.port, &self.log_file)?);
        Ok(())
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}
