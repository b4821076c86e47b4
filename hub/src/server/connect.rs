//! The hub's NATS connection: its nkey, TLS against the CA it trusts, and the nodes of a cluster.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use super::tls;

/// Why the hub could not connect to NATS → check `--nats-url`, `nats_nkey_file`, `nats_ca_file`,
/// and that the server runs with JetStream.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The CA file for NATS is missing or holds no certificate → fix `nats_ca_file`.
    #[error("cannot connect to NATS at {url}: {source}")]
    Ca {
        /// The URL.
        url: String,
        /// Why the file is unusable.
        source: tls::TlsError,
    },
    /// The nkey seed could not be read → fix `nats_nkey_file`.
    #[error("cannot connect to NATS at {url}: cannot read the nkey seed {}: {source}", path.display())]
    NkeySeed {
        /// The URL.
        url: String,
        /// The seed file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The client refused the options or the server (a bad seed, a TLS mismatch).
    #[error("cannot connect to NATS at {url}: {source}")]
    Client {
        /// The URL.
        url: String,
        /// What the client said.
        source: async_nats::ConnectError,
    },
    /// No server answered in time (the hub waits 15 s at start).
    #[error("cannot connect to NATS at {url}: no answer within {} s", waited.as_secs())]
    Timeout {
        /// The URL.
        url: String,
        /// How long the hub waited.
        waited: Duration,
    },
}

/// Connects to NATS, with the hub's nkey when `nkey_file` is given. `url` may list several
/// servers separated by commas (the nodes of a cluster): the client starts with any that answers
/// and fails over to the others (and to those the cluster announces) when one goes away.
pub async fn connect(url: &str, nkey_file: Option<&Path>) -> Result<async_nats::Client, ConnectError> {
    connect_with_tls(url, nkey_file, None).await
}

/// [`connect`], over TLS when `ca_file` is given: the client then refuses a server that does not
/// speak TLS or whose certificate that CA (PEM, one or more certificates) did not sign.
pub async fn connect_with_tls(
    url: &str,
    nkey_file: Option<&Path>,
    ca_file: Option<&Path>,
) -> Result<async_nats::Client, ConnectError> {
    let mut options = async_nats::ConnectOptions::new();
    if let Some(ca_file) = ca_file {
        // Read here, so a missing or broken file is a clear error now rather than a connection
        // that retries for ever in the background.
        tls::certificates(ca_file).map_err(|source| ConnectError::Ca { url: url.into(), source })?;
        options = options.add_root_certificates(ca_file.to_path_buf()).require_tls(true);
    }
    if let Some(file) = nkey_file {
        let seed = std::fs::read_to_string(file).map_err(|source| ConnectError::NkeySeed {
            url: url.into(),
            path: file.into(),
            source,
        })?;
        options = options.nkey(seed.trim().to_string());
    }
    options
        .name("sgd-hub")
        .connection_timeout(Duration::from_secs(5))
        .retry_on_initial_connect()
        .max_reconnects(None)
        .connect(url.split(',').map(str::trim).filter(|s| !s.is_empty()).collect::<Vec<_>>())
        .await
        .map_err(|source| ConnectError::Client { url: url.into(), source })
}
