//! A durable outbox in sled: events are written to local disk before they are sent and removed
//! only when JetStream has acknowledged them, so a NATS outage or an adapter crash loses nothing.
//!
//! - [`Outbox`] is the store: one sled tree keyed by a monotonically increasing sequence (big-endian
//!   `u64`, so key order is enqueue order); each value holds the ingress subject, the `Nats-Msg-Id`
//!   and the CloudEvents body, encoded once at enqueue time. A retry therefore sends the very same
//!   bytes with the very same `Nats-Msg-Id`.
//! - [`OutboxPublisher`] encodes drafts into the outbox and runs a background sender that drains it
//!   with pipelined acknowledgements; on any failure it drops what is in flight, backs off and starts
//!   again from the oldest entry still in the outbox. Entries sent but not yet removed when the
//!   adapter dies are sent again after a restart; the hub counts an identity once (JetStream's
//!   duplicate window on the log, then the read model's identity set), so nothing counts twice.
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use sgd_adapters::{outbox::{Outbox, OutboxPublisher}, Draft, SourceSystem};
//! use sgd_schemas::events::plans::PlanClosed;
//!
//! let client = async_nats::connect("nats://127.0.0.1:4222").await?;
//! let outbox = Outbox::open("/var/lib/sgd-adapter/outbox")?;
//! let source = SourceSystem::new("1280", "treserva")?;
//! let publisher = OutboxPublisher::new(async_nats::jetstream::new(client), source, outbox);
//! publisher.enqueue(&Draft::now(PlanClosed { plan_id: "svu-1".into() }.into())).await?;
//! publisher.wait_empty(std::time::Duration::from_secs(30)).await?;
//! publisher.close().await;
//! # Ok(()) }
//! ```

use std::{
    collections::VecDeque,
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use async_nats::{
    jetstream::{self, context::PublishAckFuture},
    HeaderMap,
};
use bytes::Bytes;
use tokio::sync::{watch, Notify};

use crate::{
    cloudevent::{BuildError, Draft, SourceSystem},
    publisher::{encode, MSG_ID_HEADER},
};

/// Why the outbox failed.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    /// The store could not be opened (another adapter holds it, or the directory is not writable) →
    /// fix the `--outbox-dir`, or stop the other adapter; one outbox belongs to one process.
    #[error("cannot open the outbox at {path}: {source}")]
    Open {
        /// The directory.
        path: PathBuf,
        /// What sled said.
        source: sled::Error,
    },
    /// Reading or writing the store failed (disk full, I/O error) → the event is not enqueued; stop
    /// taking input and alert, since nothing can be kept safely.
    #[error("outbox storage failed: {0}")]
    Storage(#[from] sled::Error),
    /// A stored entry cannot be decoded (a corrupt store) → move the directory aside and alert.
    #[error("outbox entry {seq} is corrupt")]
    Corrupt {
        /// Its sequence.
        seq: u64,
    },
    /// The event could not be built → a configuration or programming error; nothing was enqueued.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// The outbox did not drain in time → NATS or the hub is unreachable; the entries stay and are
    /// sent when it comes back.
    #[error("{left} events still in the outbox after {waited:?}")]
    NotDrained {
        /// Entries left.
        left: usize,
        /// How long we waited.
        waited: Duration,
    },
}

/// One event as it goes on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The ingress subject, `sgd.in.<principal>.<area>`.
    pub subject: String,
    /// The `Nats-Msg-Id`, `<source>/<id>`.
    pub msg_id: String,
    /// The CloudEvents JSON.
    pub body: Bytes,
}

impl Entry {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + self.subject.len() + self.msg_id.len() + self.body.len());
        for part in [self.subject.as_bytes(), self.msg_id.as_bytes()] {
            out.extend_from_slice(&(part.len() as u32).to_be_bytes());
            out.extend_from_slice(part);
        }
        out.extend_from_slice(&self.body);
        out
    }

    fn decode(seq: u64, bytes: &[u8]) -> Result<Self, OutboxError> {
        let corrupt = || OutboxError::Corrupt { seq };
        let mut rest = bytes;
        let mut next = || -> Result<String, OutboxError> {
            let len_bytes: [u8; 4] = rest.get(..4).and_then(|b| b.try_into().ok()).ok_or_else(corrupt)?;
            let len = u32::from_be_bytes(len_bytes) as usize;
            let text = rest.get(4..4 + len).ok_or_else(corrupt)?;
            let text = std::str::from_utf8(text).map_err(|_| corrupt())?.to_string();
            rest = &rest[4 + len..];
            Ok(text)
        };
        let subject = next()?;
        let msg_id = next()?;
        Ok(Self { subject, msg_id, body: Bytes::copy_from_slice(rest) })
    }
}

/// The durable store of events not yet acknowledged by JetStream. Cheap to clone (shares the store).
#[derive(Clone)]
pub struct Outbox {
    db: sled::Db,
    tree: sled::Tree,
    added: Arc<Notify>,
    /// Held from taking sequences to writing them, so entries become visible in sequence order
    /// and the sender's cursor never passes a sequence that is still to be written.
    writing: Arc<std::sync::Mutex<()>>,
    /// Entries waiting (sled's own `len` walks the whole tree).
    waiting: Arc<AtomicU64>,
}

/// Opens a sled database, waiting up to 5 s for its file lock. A database closed a moment ago in
/// this process may still hold the lock while its background flusher finishes (seen in the suite:
/// an outbox reopened right after a drop failed with "could not acquire lock").
pub fn open_sled(config: &sled::Config) -> sled::Result<sled::Db> {
    let mut attempts = 0;
    loop {
        match config.open() {
            Err(sled::Error::Io(e)) if e.to_string().contains("could not acquire lock") && attempts < 100 => {
                attempts += 1;
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            other => return other,
        }
    }
}

impl Outbox {
    /// Opens (or creates) the outbox in `dir`. What an earlier run left is still there and is sent
    /// first.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, OutboxError> {
        let path = dir.as_ref().to_path_buf();
        let db = open_sled(&sled::Config::new().path(&path))
            .map_err(|source| OutboxError::Open { path: path.clone(), source })?;
        let tree = db.open_tree("outbox").map_err(|source| OutboxError::Open { path, source })?;
        let waiting = Arc::new(AtomicU64::new(tree.len() as u64));
        Ok(Self { db, tree, added: Arc::new(Notify::new()), writing: Arc::default(), waiting })
    }

    /// Writes `entries` in one atomic batch and waits until they are on disk. Returns their sequences.
    pub async fn push_all(&self, entries: impl IntoIterator<Item = Entry>) -> Result<Vec<u64>, OutboxError> {
        let encoded: Vec<Vec<u8>> = entries.into_iter().map(|e| e.encode()).collect();
        if encoded.is_empty() {
            return Ok(Vec::new());
        }
        let seqs = {
            let _writing = self.writing.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            let mut batch = sled::Batch::default();
            let mut seqs = Vec::with_capacity(encoded.len());
            for value in encoded {
                let seq = self.db.generate_id()?;
                batch.insert(&seq.to_be_bytes(), value);
                seqs.push(seq);
            }
            self.tree.apply_batch(batch)?;
            self.waiting.fetch_add(seqs.len() as u64, Ordering::Relaxed);
            seqs
        };
        self.tree.flush_async().await?;
        self.added.notify_one();
        Ok(seqs)
    }

    /// Up to `limit` entries with a sequence ≥ `from`, oldest first.
    pub fn pending_from(&self, from: u64, limit: usize) -> Result<Vec<(u64, Entry)>, OutboxError> {
        let mut out = Vec::with_capacity(limit.min(4096));
        for item in self.tree.range(from.to_be_bytes()..).take(limit) {
            let (key, value) = item?;
            let seq = key.as_ref().try_into().map(u64::from_be_bytes).map_err(|_| OutboxError::Corrupt { seq: 0 })?;
            out.push((seq, Entry::decode(seq, &value)?));
        }
        Ok(out)
    }

    /// Removes the entry `seq` (JetStream acknowledged it).
    pub fn remove(&self, seq: u64) -> Result<(), OutboxError> {
        if self.tree.remove(seq.to_be_bytes())?.is_some() {
            self.waiting.fetch_sub(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// How many entries wait.
    pub fn len(&self) -> usize {
        self.waiting.load(Ordering::Relaxed) as usize
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.tree.is_empty()
    }

    /// Writes what is buffered to disk (removals are made durable lazily: a lost removal only means
    /// one more send of an already delivered event, which the hub counts once).
    pub async fn flush(&self) -> Result<(), OutboxError> {
        self.tree.flush_async().await?;
        Ok(())
    }
}

/// How the background sender works.
#[derive(Debug, Clone, Copy)]
pub struct SenderOptions {
    /// Acknowledgements outstanding at most.
    pub window: usize,
    /// Wait after the first failure; doubles on each further failure in a row.
    pub first_backoff: Duration,
    /// Longest wait between attempts.
    pub max_backoff: Duration,
    /// How long one send may take to be handed to the client before it counts as failed.
    pub send_timeout: Duration,
}

impl Default for SenderOptions {
    fn default() -> Self {
        Self {
            window: 1024,
            first_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
            send_timeout: Duration::from_secs(5),
        }
    }
}

/// Counters of the background sender.
#[derive(Debug, Default)]
pub struct SenderStats {
    acknowledged: AtomicU64,
    failures: AtomicU64,
}

impl SenderStats {
    /// Entries acknowledged and removed.
    pub fn acknowledged(&self) -> u64 {
        self.acknowledged.load(Ordering::Relaxed)
    }

    /// Times the sender had to back off and start again from the oldest entry.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }
}

/// Publishes one source system's events through an [`Outbox`]: [`enqueue`](Self::enqueue) returns
/// once the event is on local disk; a background task sends it and removes it on acknowledgement.
pub struct OutboxPublisher {
    source: SourceSystem,
    outbox: Outbox,
    stats: Arc<SenderStats>,
    stop: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl OutboxPublisher {
    /// Starts the sender for `outbox` (must run inside a Tokio runtime).
    pub fn new(jetstream: jetstream::Context, source: SourceSystem, outbox: Outbox) -> Self {
        Self::with_options(jetstream, source, outbox, SenderOptions::default())
    }

    /// Starts the sender with `options`.
    pub fn with_options(
        jetstream: jetstream::Context,
        source: SourceSystem,
        outbox: Outbox,
        options: SenderOptions,
    ) -> Self {
        let stats = Arc::new(SenderStats::default());
        let (stop, stopped) = watch::channel(false);
        let sender = Sender { jetstream, outbox: outbox.clone(), options, stats: stats.clone(), stopped };
        let task = tokio::spawn(sender.run());
        Self { source, outbox, stats, stop, task: Some(task) }
    }

    /// The source system this publisher speaks for.
    pub fn source(&self) -> &SourceSystem {
        &self.source
    }

    /// The outbox.
    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    /// The sender's counters.
    pub fn stats(&self) -> &SenderStats {
        &self.stats
    }

    /// Writes one event to the outbox (durably); it is sent in the background.
    pub async fn enqueue(&self, draft: &Draft) -> Result<u64, OutboxError> {
        let seqs = self.enqueue_all(std::iter::once(draft)).await?;
        Ok(seqs[0])
    }

    /// Writes many events to the outbox in one atomic, durable batch (all or none).
    pub async fn enqueue_all<'a>(&self, drafts: impl IntoIterator<Item = &'a Draft>) -> Result<Vec<u64>, OutboxError> {
        self.enqueue_all_from(drafts.into_iter().map(|d| (&self.source, d))).await
    }

    /// As [`enqueue_all`](Self::enqueue_all), each draft from its own source (the outbox itself
    /// keeps finished wire messages, so one outbox can serve many sources, as the simulator does).
    pub async fn enqueue_all_from<'a>(
        &self,
        drafts: impl IntoIterator<Item = (&'a SourceSystem, &'a Draft)>,
    ) -> Result<Vec<u64>, OutboxError> {
        let entries = drafts
            .into_iter()
            .map(|(source, draft)| encode(source, draft).map(|(subject, msg_id, body)| Entry { subject, msg_id, body }))
            .collect::<Result<Vec<_>, _>>()?;
        self.outbox.push_all(entries).await
    }

    /// Waits until every entry is acknowledged, at most `limit`.
    pub async fn wait_empty(&self, limit: Duration) -> Result<(), OutboxError> {
        let started = Instant::now();
        while !self.outbox.is_empty() {
            if started.elapsed() >= limit {
                return Err(OutboxError::NotDrained { left: self.outbox.len(), waited: limit });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.outbox.flush().await
    }

    /// Stops the sender and waits for it; what is not acknowledged stays in the outbox.
    pub async fn close(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        let _ = self.outbox.flush().await;
    }
}

impl Drop for OutboxPublisher {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

struct Sender {
    jetstream: jetstream::Context,
    outbox: Outbox,
    options: SenderOptions,
    stats: Arc<SenderStats>,
    stopped: watch::Receiver<bool>,
}

impl Sender {
    async fn run(mut self) {
        let window = self.options.window.max(1);
        let mut backoff = self.options.first_backoff;
        // Next sequence to send; entries below it are in flight (or were enqueued late, see below).
        let mut cursor = 0u64;
        let mut in_flight: VecDeque<(u64, PublishAckFuture)> = VecDeque::new();
        while !*self.stopped.borrow() {
            let mut failure: Option<String> = None;
            if in_flight.len() <= window / 2 {
                match self.outbox.pending_from(cursor, window - in_flight.len()) {
                    Ok(entries) => {
                        for (seq, entry) in entries {
                            match self.send(&entry).await {
                                Ok(ack) => {
                                    in_flight.push_back((seq, ack));
                                    cursor = seq + 1;
                                }
                                Err(e) => {
                                    failure = Some(e);
                                    break;
                                }
                            }
                        }
                    }
                    Err(e) => failure = Some(e.to_string()),
                }
            }
            if failure.is_none() {
                match in_flight.pop_front() {
                    Some((seq, ack)) => match tokio::select! {
                        result = ack => result.map_err(|e| e.to_string()),
                        _ = self.stopped.changed() => break,
                    } {
                        Ok(_) => {
                            if let Err(e) = self.outbox.remove(seq) {
                                failure = Some(e.to_string());
                            } else {
                                self.stats.acknowledged.fetch_add(1, Ordering::Relaxed);
                                backoff = self.options.first_backoff;
                            }
                        }
                        Err(e) => failure = Some(e),
                    },
                    None => {
                        // Nothing in flight and nothing at or after the cursor: start from the oldest
                        // again (a safety net: entries are written in sequence order, so nothing
                        // should be below the cursor), and sleep only when the outbox is empty.
                        cursor = 0;
                        if self.outbox.is_empty() {
                            let added = self.outbox.added.clone();
                            tokio::select! {
                                _ = added.notified() => {}
                                _ = self.stopped.changed() => {}
                                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                            }
                        }
                    }
                }
            }
            if let Some(error) = failure {
                self.stats.failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%error, in_flight = in_flight.len(), waiting = self.outbox.len(), ?backoff,
                    "outbox send not acknowledged; backing off and resending from the oldest entry");
                in_flight.clear();
                cursor = 0;
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = self.stopped.changed() => {}
                }
                backoff = (backoff * 2).min(self.options.max_backoff);
            }
        }
    }

    async fn send(&self, entry: &Entry) -> Result<PublishAckFuture, String> {
        let mut headers = HeaderMap::new();
        headers.insert(MSG_ID_HEADER, entry.msg_id.as_str());
        let publish = self.jetstream.publish_with_headers(entry.subject.clone(), headers, entry.body.clone());
        match tokio::time::timeout(self.options.send_timeout, publish).await {
            Ok(result) => result.map_err(|e| e.to_string()),
            Err(_) => Err(format!("the client did not take the message within {:?}", self.options.send_timeout)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sgd_schemas::events::plans::PlanClosed;

    fn entry(i: usize) -> Entry {
        Entry {
            subject: "sgd.in.1280.plans".into(),
            msg_id: format!("/principals/1280/systems/t/{i}"),
            body: Bytes::from(format!("{{\"n\":{i}}}")),
        }
    }

    #[test]
    fn an_entry_survives_encoding() {
        let e = entry(7);
        assert_eq!(Entry::decode(1, &e.encode()).unwrap(), e);
        assert!(matches!(Entry::decode(1, &[0, 0, 0, 9, b'a']), Err(OutboxError::Corrupt { seq: 1 })));
        assert!(matches!(Entry::decode(1, &[0, 0]), Err(OutboxError::Corrupt { .. })));
    }

    #[tokio::test]
    async fn entries_keep_their_order_and_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let seqs = {
            let outbox = Outbox::open(dir.path()).unwrap();
            let first = outbox.push_all((0..10).map(entry)).await.unwrap();
            let second = outbox.push_all((10..20).map(entry)).await.unwrap();
            assert!(first.windows(2).all(|w| w[0] < w[1]));
            assert!(first.last() < second.first(), "sequences increase");
            outbox.remove(first[0]).unwrap();
            outbox.flush().await.unwrap();
            [first, second].concat()
        };
        let outbox = Outbox::open(dir.path()).unwrap();
        assert_eq!(outbox.len(), 19);
        let pending = outbox.pending_from(0, 100).unwrap();
        assert_eq!(pending.iter().map(|(s, _)| *s).collect::<Vec<_>>(), seqs[1..]);
        assert_eq!(pending.iter().map(|(_, e)| e.clone()).collect::<Vec<_>>(), (1..20).map(entry).collect::<Vec<_>>());
        let more = outbox.push_all([entry(20)]).await.unwrap();
        assert!(more[0] > seqs[19], "sequences keep increasing after a reopen");
    }

    #[test]
    fn an_unusable_directory_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        std::fs::write(&file, b"x").unwrap();
        assert!(matches!(Outbox::open(&file), Err(OutboxError::Open { .. })));
    }

    /// A `nats-server` with JetStream on a free port, killed on drop.
    struct Server {
        child: Option<std::process::Child>,
        port: u16,
        dir: tempfile::TempDir,
    }

    impl Server {
        fn start() -> Self {
            let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
            let mut server = Self { child: None, port, dir: tempfile::tempdir().unwrap() };
            server.spawn();
            server
        }

        fn spawn(&mut self) {
            let binary = std::env::var("NATS_SERVER_BIN").unwrap_or_else(|_| "nats-server".into());
            let child = std::process::Command::new(binary)
                .args(["-js", "-a", "127.0.0.1", "-p", &self.port.to_string(), "-sd"])
                .arg(self.dir.path())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("nats-server on the PATH");
            self.child = Some(child);
            let started = Instant::now();
            while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
                assert!(started.elapsed() < Duration::from_secs(10), "nats-server did not start");
                std::thread::sleep(Duration::from_millis(20));
            }
        }

        fn kill(&mut self) {
            if let Some(mut child) = self.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }

        fn url(&self) -> String {
            format!("nats://127.0.0.1:{}", self.port)
        }
    }

    impl Drop for Server {
        fn drop(&mut self) {
            self.kill();
        }
    }

    async fn jetstream(url: &str) -> jetstream::Context {
        let client = async_nats::ConnectOptions::new()
            .retry_on_initial_connect()
            .max_reconnects(None)
            .connect(url)
            .await
            .unwrap();
        let js = jetstream::new(client);
        let mut ready = false;
        for _ in 0..100 {
            if js
                .get_or_create_stream(jetstream::stream::Config {
                    name: "T".into(),
                    subjects: vec!["sgd.in.>".into()],
                    duplicate_window: Duration::from_secs(600),
                    ..Default::default()
                })
                .await
                .is_ok()
            {
                ready = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(ready, "stream T could not be made");
        js
    }

    async fn stream_messages(js: &jetstream::Context) -> u64 {
        js.get_stream("T").await.unwrap().info().await.unwrap().state.messages
    }

    fn drafts(range: std::ops::Range<usize>) -> Vec<Draft> {
        let time = chrono::DateTime::parse_from_rfc3339("2026-01-01T08:00:00+01:00").unwrap();
        range.map(|i| Draft::at(format!("e-{i}"), time, PlanClosed { plan_id: format!("p-{i}") }.into())).collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn everything_enqueued_is_sent_once_and_removed() {
        let server = Server::start();
        let js = jetstream(&server.url()).await;
        let dir = tempfile::tempdir().unwrap();
        let source = SourceSystem::new("1280", "t").unwrap();
        let publisher = OutboxPublisher::new(js.clone(), source, Outbox::open(dir.path()).unwrap());
        let all = drafts(0..3000);
        for chunk in all.chunks(250) {
            publisher.enqueue_all(chunk).await.unwrap();
        }
        publisher.enqueue(&all[0]).await.unwrap(); // the same event again: same Nats-Msg-Id
        publisher.wait_empty(Duration::from_secs(30)).await.unwrap();
        assert_eq!(publisher.stats().acknowledged(), 3001);
        assert_eq!(stream_messages(&js).await, 3000);
        publisher.close().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_crashed_adapter_resumes_from_its_outbox_without_duplicates() {
        let server = Server::start();
        let js = jetstream(&server.url()).await;
        let dir = tempfile::tempdir().unwrap();
        let source = SourceSystem::new("1280", "t").unwrap();
        let all = drafts(0..500);
        // First run: a NATS that nobody listens on, so nothing is acknowledged; the first 100
        // were really delivered before the "crash" (sent, ack lost), so they must not count twice.
        let dead = Server::start();
        let dead_url = dead.url();
        drop(dead);
        {
            let client = async_nats::ConnectOptions::new().retry_on_initial_connect().connect(dead_url).await.unwrap();
            let publisher =
                OutboxPublisher::new(jetstream::new(client), source.clone(), Outbox::open(dir.path()).unwrap());
            publisher.enqueue_all(&all).await.unwrap();
            tokio::time::sleep(Duration::from_millis(300)).await;
            assert_eq!(publisher.outbox().len(), 500);
            publisher.close().await;
        }
        let direct = crate::Publisher::new(js.clone(), source.clone());
        direct.publish_pipelined(&all[..100], 100).await.unwrap();
        // Second run: resumes from the outbox.
        let publisher = OutboxPublisher::new(js.clone(), source, Outbox::open(dir.path()).unwrap());
        publisher.wait_empty(Duration::from_secs(30)).await.unwrap();
        assert_eq!(stream_messages(&js).await, 500);
        publisher.close().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_nats_outage_mid_stream_loses_nothing_and_sends_nothing_twice() {
        let mut server = Server::start();
        let mut js = jetstream(&server.url()).await;
        js.set_timeout(Duration::from_millis(500)); // so that the 2 s outage fails acknowledgements
        let dir = tempfile::tempdir().unwrap();
        let source = SourceSystem::new("1280", "t").unwrap();
        let options = SenderOptions { send_timeout: Duration::from_secs(1), ..Default::default() };
        let publisher = OutboxPublisher::with_options(js.clone(), source, Outbox::open(dir.path()).unwrap(), options);
        let all = drafts(0..6000);
        publisher.enqueue_all(&all[..2000]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        server.kill();
        publisher.enqueue_all(&all[2000..4000]).await.unwrap();
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(!publisher.outbox().is_empty());
        server.spawn();
        publisher.enqueue_all(&all[4000..]).await.unwrap();
        publisher.wait_empty(Duration::from_secs(60)).await.unwrap();
        assert_eq!(stream_messages(&js).await, 6000);
        assert!(publisher.stats().failures() > 0, "the outage was noticed");
        publisher.close().await;
    }
}
