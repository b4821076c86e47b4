//! `hub nats-config`: a `nats-server` configuration where each principal's adapter has its own
//! nkey user, allowed to publish only to `sgd.in.<principal>.>` and `sgd.ingest.<principal>.>`
//! and to receive only the replies (acknowledgements, answers) on its own inbox prefix
//! `_INBOX_<principal>.>`; the hub has a user of its own; anonymous clients cannot connect. TLS
//! is configured when a certificate is given.
//!
//! Each principal's user may also read what is its own in JetStream: durable consumers named
//! `to_<principal>_<n>` on `SGD_ROUTED` whose filter lies under `sgd.to.<principal>.>`, and
//! `dlq_<principal>_<n>` on `SGD_DLQ` under `sgd.dlq.<principal>.>` (n = 1 … `consumers`). The
//! server checks the filter against the create request's subject
//! (`$JS.API.CONSUMER.CREATE.<stream>.<name>.<filter>`), and the names are the user's alone, so
//! no principal can create a consumer on another's subjects or pull from another's consumer.
//!
//! Seeds are written once, one file per user (mode 0600), and reused when the command runs again,
//! so adapters keep working when the configuration is regenerated (e.g. for a new principal).

use std::{
    fmt::Write as _,
    path::{Path, PathBuf},
};

/// Why the configuration could not be written.
#[derive(Debug, thiserror::Error)]
pub enum NatsConfigError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A stored seed is not an nkey seed → delete the file to make a new one (and hand it out).
    #[error("{path} is not a valid nkey seed: {source}")]
    BadSeed {
        /// The file.
        path: PathBuf,
        /// What nkeys said.
        source: nkeys::error::Error,
    },
    /// Only one of certificate and key was given.
    #[error("TLS needs both --tls-cert and --tls-key")]
    HalfTls,
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct NatsConfigOptions {
    /// Directory for `nats-server.conf` and `seeds/`.
    pub out_dir: PathBuf,
    /// Client listen address.
    pub listen: String,
    /// JetStream storage directory.
    pub store_dir: PathBuf,
    /// Server certificate (PEM) for TLS.
    pub tls_cert: Option<PathBuf>,
    /// Server key (PEM) for TLS.
    pub tls_key: Option<PathBuf>,
    /// Durable consumers each principal may name on `SGD_ROUTED` and on `SGD_DLQ`.
    pub consumers: usize,
}

/// The name of a principal's `n`th consumer (1-based) on `SGD_ROUTED`.
pub fn routed_consumer(principal: &str, n: usize) -> String {
    format!("to_{principal}_{n}")
}

/// The name of a principal's `n`th consumer (1-based) on `SGD_DLQ`.
pub fn dlq_consumer(principal: &str, n: usize) -> String {
    format!("dlq_{principal}_{n}")
}

/// The JetStream API subjects a principal's user may publish to, for its own consumers.
fn jetstream_permissions(principal: &str, consumers: usize) -> Vec<String> {
    let mut allow = vec![
        format!("$JS.API.STREAM.INFO.{}", crate::log::streams::ROUTED),
        format!("$JS.API.STREAM.INFO.{}", crate::log::streams::DLQ),
    ];
    for n in 1..=consumers {
        for (stream, name, filter) in [
            (crate::log::streams::ROUTED, routed_consumer(principal, n), format!("sgd.to.{principal}.>")),
            (crate::log::streams::DLQ, dlq_consumer(principal, n), format!("sgd.dlq.{principal}.>")),
        ] {
            // The filter in the subject is the consumer's, checked by the server: `>` here
            // admits the principal's whole subtree and any narrower filter inside it.
            allow.push(format!("$JS.API.CONSUMER.CREATE.{stream}.{name}.{filter}"));
            for action in ["INFO", "DELETE", "MSG.NEXT"] {
                allow.push(format!("$JS.API.CONSUMER.{action}.{stream}.{name}"));
            }
            allow.push(format!("$JS.ACK.{stream}.{name}.>"));
        }
    }
    allow
}

/// What was generated.
#[derive(Debug, Clone)]
pub struct GeneratedNatsConfig {
    /// The full server configuration file.
    pub config_file: PathBuf,
    /// The `authorization { … }` block (also inside the file).
    pub authorization: String,
    /// The hub's seed file.
    pub hub_seed: PathBuf,
    /// Each principal's adapter seed file, by principal code.
    pub adapter_seeds: Vec<(String, PathBuf)>,
}

/// The inbox prefix an adapter of `principal` must connect with (async-nats:
/// `ConnectOptions::custom_inbox_prefix`) to receive its acknowledgements.
pub fn adapter_inbox_prefix(principal: &str) -> String {
    format!("_INBOX_{principal}")
}

/// Writes the configuration and any missing seeds.
pub fn generate(options: &NatsConfigOptions) -> Result<GeneratedNatsConfig, NatsConfigError> {
    if options.tls_cert.is_some() != options.tls_key.is_some() {
        return Err(NatsConfigError::HalfTls);
    }
    let seeds_dir = options.out_dir.join("seeds");
    std::fs::create_dir_all(&seeds_dir).map_err(|source| NatsConfigError::Io { path: seeds_dir.clone(), source })?;

    let mut users = String::new();
    let hub_seed = seeds_dir.join("hub.nk");
    let hub_key = seed_file(&hub_seed)?;
    let _ = writeln!(
        users,
        "    # the hub: validator, projection runner, API\n    {{ nkey: \"{hub_key}\", permissions: {{ publish: {{ allow: [\">\"] }}, subscribe: {{ allow: [\">\"] }} }} }}"
    );
    let mut adapter_seeds = Vec::new();
    for principal in sgd_schemas::principals::all() {
        let path = seeds_dir.join(format!("adapter-{}.nk", principal.code));
        let key = seed_file(&path)?;
        let mut publish = vec![format!("sgd.in.{}.>", principal.code), format!("sgd.ingest.{}.>", principal.code)];
        publish.extend(jetstream_permissions(principal.code, options.consumers));
        let publish = publish.iter().map(|s| format!("{s:?}")).collect::<Vec<_>>().join(", ");
        let _ = writeln!(
            users,
            "    # adapters and consumers of {name} ({code})\n    {{ nkey: \"{key}\", permissions: {{ publish: {{ allow: [{publish}] }}, subscribe: {{ allow: [\"{inbox}.>\"] }} }} }}",
            name = principal.name,
            code = principal.code,
            inbox = adapter_inbox_prefix(principal.code),
        );
        adapter_seeds.push((principal.code.to_string(), path));
    }
    let authorization = format!("authorization {{\n  users = [\n{users}  ]\n}}\n");
    let tls = match (&options.tls_cert, &options.tls_key) {
        (Some(cert), Some(key)) => format!("tls {{\n  cert_file: {cert:?}\n  key_file: {key:?}\n}}\n"),
        _ => String::new(),
    };
    let config = format!(
        "# nats-server configuration for sgd-hub, written by `hub nats-config`.\n\
         # Anonymous clients cannot connect: every client is one of the nkey users below.\n\
         listen: {listen}\n\
         jetstream {{\n  store_dir: {store:?}\n}}\n\
         {tls}{authorization}",
        listen = options.listen,
        store = options.store_dir,
    );
    let config_file = options.out_dir.join("nats-server.conf");
    std::fs::write(&config_file, config).map_err(|source| NatsConfigError::Io { path: config_file.clone(), source })?;
    Ok(GeneratedNatsConfig { config_file, authorization, hub_seed, adapter_seeds })
}

/// The public key of the seed in `path`, creating the seed (mode 0600) when the file is missing.
fn seed_file(path: &Path) -> Result<String, NatsConfigError> {
    match std::fs::read_to_string(path) {
        Ok(seed) => nkeys::KeyPair::from_seed(seed.trim())
            .map(|pair| pair.public_key())
            .map_err(|e| NatsConfigError::BadSeed { path: path.into(), source: e }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let pair = nkeys::KeyPair::new_user();
            let seed = pair.seed().map_err(|e| NatsConfigError::BadSeed { path: path.into(), source: e })?;
            write_private(path, &seed)?;
            Ok(pair.public_key())
        }
        Err(source) => Err(NatsConfigError::Io { path: path.into(), source }),
    }
}

fn write_private(path: &Path, content: &str) -> Result<(), NatsConfigError> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(|source| NatsConfigError::Io { path: path.into(), source })?;
    file.write_all(content.as_bytes()).map_err(|source| NatsConfigError::Io { path: path.into(), source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_are_made_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let options = NatsConfigOptions {
            out_dir: dir.path().into(),
            listen: "127.0.0.1:4222".into(),
            store_dir: dir.path().join("js"),
            tls_cert: None,
            tls_key: None,
            consumers: 2,
        };
        let first = generate(&options).unwrap();
        let second = generate(&options).unwrap();
        assert_eq!(first.authorization, second.authorization);
        assert_eq!(first.adapter_seeds.len(), 34);
        assert!(first.authorization.contains("sgd.in.1280.>"));
        assert!(first.authorization.contains("\"$JS.API.CONSUMER.CREATE.SGD_ROUTED.to_1280_2.sgd.to.1280.>\""));
        assert!(first.authorization.contains("\"$JS.ACK.SGD_DLQ.dlq_1280_1.>\""));
        assert!(!first.authorization.contains("to_1280_3"), "only the configured number of names");
        let text = std::fs::read_to_string(&first.config_file).unwrap();
        for (_, seed_file) in &first.adapter_seeds {
            let seed = std::fs::read_to_string(seed_file).unwrap();
            assert!(seed.starts_with("SU") && !text.contains(seed.trim()), "a seed leaked into the config");
        }
        assert!(matches!(
            generate(&NatsConfigOptions { tls_cert: Some("c.pem".into()), ..options }),
            Err(NatsConfigError::HalfTls)
        ));
    }
}
