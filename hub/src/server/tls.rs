//! TLS (rustls, with the `ring` provider async-nats already uses): HTTPS for the API when
//! `tls_cert` and `tls_key` are configured, and the CA file the hub trusts for NATS.
//!
//! The HTTPS listener does each TLS handshake in its own task, off the accept loop, so a client
//! that opens a connection and says nothing holds up no one (and is dropped after
//! [`HANDSHAKE_TIMEOUT`]). It implements axum's `Listener`, so `axum::serve` with its graceful
//! shutdown runs over TLS exactly as over plain TCP.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use tokio::{net::TcpStream, sync::mpsc};
use tokio_rustls::{
    rustls::{
        self,
        pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer},
    },
    server::TlsStream,
    TlsAcceptor,
};

/// A client must finish its TLS handshake within this time, or its connection is closed.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why TLS could not be set up → fix the file named; the hub does not start.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Only one of certificate and key was configured.
    #[error("HTTPS needs both tls_cert and tls_key (--tls-cert, --tls-key); only {given} is set")]
    Half {
        /// The one that was given.
        given: &'static str,
    },
    /// A file could not be read.
    #[error("cannot read {what} {path}: {source}")]
    Read {
        /// What the file should hold.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file holds no PEM item of the kind needed, or broken PEM.
    #[error("{path} holds no usable {what} (PEM expected): {source}")]
    Pem {
        /// What the file should hold.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What the PEM reader said.
        source: rustls::pki_types::pem::Error,
    },
    /// A certificate file holds no certificate.
    #[error("{path} holds no usable certificate (PEM expected): no CERTIFICATE section found")]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// rustls refused the certificate and key (they do not match, or an unsupported key type).
    #[error("the certificate {cert} and key {key} cannot be used together: {source}")]
    Refused {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// What rustls said.
        source: rustls::Error,
    },
}

/// The API's TLS configuration from the configured files: `None` for plain HTTP (neither given).
pub fn server_config(cert: Option<&Path>, key: Option<&Path>) -> Result<Option<Arc<rustls::ServerConfig>>, TlsError> {
    let (cert, key) = match (cert, key) {
        (None, None) => return Ok(None),
        (Some(_), None) => return Err(TlsError::Half { given: "tls_cert" }),
        (None, Some(_)) => return Err(TlsError::Half { given: "tls_key" }),
        (Some(cert), Some(key)) => (cert, key),
    };
    let chain = certificates(cert)?;
    let key_der = read(key, "private key")?;
    let private = PrivateKeyDer::from_pem_slice(&key_der).map_err(|source| TlsError::Pem {
        what: "private key",
        path: key.into(),
        source,
    })?;
    let refused = |source| TlsError::Refused { cert: cert.into(), key: key.into(), source };
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(refused)?
        .with_no_client_auth()
        .with_single_cert(chain, private)
        .map_err(refused)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Some(Arc::new(config)))
}

/// Every certificate in a PEM file; an error when there is none.
pub fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(path, "certificate")?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::Pem { what: "certificate", path: path.into(), source })?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate { path: path.into() });
    }
    Ok(chain)
}

fn read(path: &Path, what: &'static str) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read { what, path: path.into(), source })
}

/// A TCP listener that hands axum only connections whose TLS handshake has completed.
pub struct TlsListener {
    local_addr: SocketAddr,
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    accept_loop: tokio::task::AbortHandle,
}

impl TlsListener {
    /// Accepts on `listener` and does the handshakes with `config` in the background.
    pub fn new(listener: tokio::net::TcpListener, config: Arc<rustls::ServerConfig>) -> std::io::Result<Self> {
        let local_addr = listener.local_addr()?;
        let acceptor = TlsAcceptor::from(config);
        let (sender, ready) = mpsc::channel(64);
        let accept_loop = tokio::spawn(async move {
            loop {
                let (tcp, peer) = match listener.accept().await {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Out of file descriptors and the like: wait, as axum's own listener does.
                        tracing::warn!(error = %e, "accepting a connection failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let (acceptor, sender) = (acceptor.clone(), sender.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(tls)) => {
                            let _ = sender.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        })
        .abort_handle();
        Ok(Self { local_addr, ready, accept_loop })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.accept_loop.abort();
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(accepted) => accepted,
            // The accept loop only ends when this listener is dropped; never here.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local_addr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_missing_and_unreadable_files_are_errors_not_panics() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        assert!(server_config(None, None).unwrap().is_none());
        assert!(matches!(server_config(Some(&cert), None), Err(TlsError::Half { .. })));
        assert!(matches!(server_config(None, Some(&key)), Err(TlsError::Half { .. })));
        let missing = server_config(Some(&cert), Some(&key)).unwrap_err();
        assert!(matches!(missing, TlsError::Read { .. }), "{missing}");
        assert!(missing.to_string().contains("cert.pem"), "{missing}");
        std::fs::write(&cert, "not pem at all\n").unwrap();
        std::fs::write(&key, "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n").unwrap();
        let empty = server_config(Some(&cert), Some(&key)).unwrap_err();
        assert!(matches!(empty, TlsError::NoCertificate { .. }), "{empty}");
        assert!(empty.to_string().contains("holds no usable certificate"), "{empty}");
    }
}
