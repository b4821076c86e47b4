//! The floor of the query phase: what the same clients measure when a server does nothing but send
//! the hub's answers back from memory. It is the query phase's "raw" figure, as raw JetStream is
//! the ingest's: the difference between the hub's times and these is what the hub itself adds
//! (routing, authentication, the answer cache, its metrics), and the rest is the clients, the
//! kernel and the two cores they share.
//!
//! The floor is axum, as the hub is, on a runtime of its own with as many workers as the hub's
//! (one per core), in the bench's process. It answers each question's path with the bytes and
//! content type the hub gave for it, whatever the query string and whoever asks.

use std::{net::SocketAddr, sync::mpsc, thread::JoinHandle, time::Duration};

use axum::{http::header, routing::get, Router};
use bytes::Bytes;
use tokio::sync::oneshot;

use super::{err, BenchError};

/// One answer the floor sends back: the path it answers (without the query string), the content
/// type and the body.
#[derive(Debug, Clone)]
pub struct FixedAnswer {
    /// The path, e.g. `/api/v1/usage`.
    pub path: String,
    /// The `Content-Type` the hub sent.
    pub content_type: String,
    /// The bytes the hub sent.
    pub body: Bytes,
}

/// A running floor server; stopped on drop.
pub struct FloorServer {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    /// Told when the server's thread is about to end.
    ended: mpsc::Receiver<()>,
}

/// How long stopping waits for open connections to close before leaving the thread behind.
const STOP_WAIT: Duration = Duration::from_secs(10);

impl FloorServer {
    /// Starts serving `answers` on a free port of 127.0.0.1.
    pub fn start(answers: Vec<FixedAnswer>) -> Result<Self, BenchError> {
        let mut router = Router::new();
        for answer in answers {
            let FixedAnswer { path, content_type, body } = answer;
            router = router.route(
                &path,
                get(move || {
                    let (content_type, body) = (content_type.clone(), body.clone());
                    async move { ([(header::CONTENT_TYPE, content_type)], body) }
                }),
            );
        }
        let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(err)?;
        listener.set_nonblocking(true).map_err(err)?;
        let address: SocketAddr = listener.local_addr().map_err(err)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(std::thread::available_parallelism().map_or(2, |n| n.get()))
            .thread_name("bench-floor")
            .enable_all()
            .build()
            .map_err(err)?;
        let (stop, stopped) = oneshot::channel::<()>();
        let (ready, is_ready) = mpsc::channel::<Result<(), String>>();
        let (ending, ended) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("bench-floor".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let listener = match tokio::net::TcpListener::from_std(listener) {
                        Ok(listener) => listener,
                        Err(e) => {
                            let _ = ready.send(Err(e.to_string()));
                            return;
                        }
                    };
                    let _ = ready.send(Ok(()));
                    let served = axum::serve(listener, router).with_graceful_shutdown(async move {
                        let _ = stopped.await;
                    });
                    if let Err(e) = served.await {
                        tracing::warn!("bench floor server: {e}");
                    }
                });
                let _ = ending.send(());
            })
            .map_err(err)?;
        is_ready.recv().map_err(err)?.map_err(BenchError)?;
        Ok(Self { base: format!("http://{address}"), stop: Some(stop), thread: Some(thread), ended })
    }

    /// Stops the server and waits for its thread (at most [`STOP_WAIT`]: a connection a client
    /// left open would otherwise hold the benchmark).
    pub fn stop(mut self) {
        self.shut_down();
    }

    fn shut_down(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            match self.ended.recv_timeout(STOP_WAIT) {
                Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let _ = thread.join();
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    tracing::warn!("bench floor server still had open connections after {STOP_WAIT:?}; left running");
                }
            }
        }
    }
}

impl Drop for FloorServer {
    fn drop(&mut self) {
        self.shut_down();
    }
}

/// Asks the hub at `base` each of `questions` (path with query string) once with `token` and
/// keeps what it answered, for the floor to send back.
pub async fn answers_of(base: &str, token: &str, questions: &[&str]) -> Result<Vec<FixedAnswer>, BenchError> {
    let http = reqwest::Client::new();
    let mut answers = Vec::with_capacity(questions.len());
    for question in questions {
        let response = http.get(format!("{base}{question}")).bearer_auth(token).send().await.map_err(err)?;
        if !response.status().is_success() {
            return Err(BenchError(format!("{question} answered {}", response.status())));
        }
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/json")
            .to_string();
        let body = response.bytes().await.map_err(err)?;
        let path = question.split('?').next().unwrap_or(question).to_string();
        answers.push(FixedAnswer { path, content_type, body });
    }
    Ok(answers)
}
