//! The `adapter` binary against a real `nats-server`: `--file`, `--listen`, `--watch` and
//! `simulate`, each counted in a stream that takes the ingress subjects.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use async_nats::jetstream;

/// A `nats-server` with JetStream on a free port, killed on drop.
struct Server {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Server {
    fn start() -> Self {
        let port = free_port();
        let dir = tempfile::tempdir().unwrap();
        let binary = std::env::var("NATS_SERVER_BIN").unwrap_or_else(|_| "nats-server".into());
        let child = Command::new(binary)
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server on the PATH");
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(started.elapsed() < Duration::from_secs(10), "nats-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self { child, port, _dir: dir }
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    async fn stream(&self) -> jetstream::Context {
        let js = jetstream::new(async_nats::connect(self.url()).await.unwrap());
        js.get_or_create_stream(jetstream::stream::Config {
            name: "T".into(),
            subjects: vec!["sgd.in.>".into()],
            duplicate_window: Duration::from_secs(600),
            ..Default::default()
        })
        .await
        .unwrap();
        js
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A child process killed on drop.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn adapter(server: &Server, dir: &Path, args: &[&str]) -> Command {
    adapter_at(&server.url(), dir, args)
}

fn adapter_at(url: &str, dir: &Path, args: &[&str]) -> Command {
    let key = dir.join("key");
    std::fs::write(&key, "a test key of more than sixteen bytes\n").unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_adapter"));
    cmd.args(args)
        .arg("--nats-url")
        .arg(url)
        .arg("--outbox-dir")
        .arg(dir.join("outbox"))
        .env("SGD_PSEUDONYM_KEY_FILE", &key)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null());
    cmd
}

async fn messages(js: &jetstream::Context) -> u64 {
    js.get_stream("T").await.unwrap().info().await.unwrap().state.messages
}

async fn wait_for(js: &jetstream::Context, expected: u64) {
    let started = Instant::now();
    while messages(js).await < expected {
        assert!(started.elapsed() < Duration::from_secs(30), "only {} of {expected} messages", messages(js).await);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(messages(js).await, expected);
}

#[tokio::test]
async fn file_input_publishes_a_directory_and_exits_2_when_something_was_not_mapped() {
    let server = Server::start();
    let js = server.stream().await;
    let dir = tempfile::tempdir().unwrap();
    let common = ["--principal", "12", "--source-system", "cosmic", "--heartbeat-s", "0"];
    let file = |path: &str| fixtures().join(path).to_string_lossy().into_owned();
    let plans = file("plans");
    let status =
        adapter(&server, dir.path(), &[&["plans"], &common[..], &["--file", &plans]].concat()).status().unwrap();
    // careplan 2 + encounter-svu 3 + encounter-bundle 2 (and one resource not mapped)
    assert_eq!(status.code(), Some(2));
    assert_eq!(messages(&js).await, 7);
    // the same files again: the same identities (the hub counts them once; here a 10 min window)
    let careplan = file("plans/careplan.json");
    let status =
        adapter(&server, dir.path(), &[&["plans"], &common[..], &["--file", &careplan]].concat()).status().unwrap();
    assert_eq!(status.code(), Some(0));
    assert_eq!(messages(&js).await, 7);
    // CSV into an area that has one
    let addresses = file("sdk-addresses.csv");
    let status =
        adapter(&server, dir.path(), &[&["sdk"], &common[..], &["--file", &addresses]].concat()).status().unwrap();
    assert_eq!(status.code(), Some(0));
    assert_eq!(messages(&js).await, 9);
}

#[tokio::test]
async fn the_webhook_takes_fhir_and_csv_and_refuses_garbage() {
    let server = Server::start();
    let js = server.stream().await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _adapter = Running(
        adapter(
            &server,
            dir.path(),
            &["npo", "--principal", "1280", "--source-system", "npo-log", "--heartbeat-s", "0"],
        )
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .stderr(Stdio::null())
        .spawn()
        .unwrap(),
    );
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let started = Instant::now();
    while client.get(format!("{base}/healthz")).send().await.is_err() {
        assert!(started.elapsed() < Duration::from_secs(10), "webhook did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let post = |path: &str, content_type: &str, body: Vec<u8>| {
        client.post(format!("{base}{path}")).header("content-type", content_type).body(body).send()
    };
    let response =
        post("/fhir", "application/fhir+json", std::fs::read(fixtures().join("npo/consent-bundle.json")).unwrap())
            .await
            .unwrap();
    assert_eq!(response.status(), 200);
    let report: serde_json::Value = response.json().await.unwrap();
    assert_eq!(report["enqueued"], 2);
    assert_eq!(report["errors"][0]["field"], "Consent.provision.actor");
    let response = post("/", "text/csv", std::fs::read(fixtures().join("npo-roles.csv")).unwrap()).await.unwrap();
    assert_eq!(response.status(), 200);
    let response = post("/", "application/json", b"{not json".to_vec()).await.unwrap();
    assert_eq!(response.status(), 400);
    wait_for(&js, 6).await;
}

#[tokio::test]
async fn a_watched_directory_publishes_files_renamed_into_it() {
    let server = Server::start();
    let js = server.stream().await;
    let dir = tempfile::tempdir().unwrap();
    let inbox = dir.path().join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    std::fs::copy(fixtures().join("video/appointment.json"), inbox.join("early.json")).unwrap();
    let _adapter = Running(
        adapter(&server, dir.path(), &["video", "--principal", "12", "--source-system", "video", "--heartbeat-s", "0"])
            .arg("--watch")
            .arg(&inbox)
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for(&js, 5).await;
    // write under a dot name, then rename in
    std::fs::copy(fixtures().join("decision/observation-vitals.json"), inbox.join(".part")).unwrap();
    std::fs::rename(inbox.join(".part"), inbox.join("late.json")).unwrap();
    std::fs::write(inbox.join(".part2"), b"garbage").unwrap();
    std::fs::rename(inbox.join(".part2"), inbox.join("bad.json")).unwrap();
    let started = Instant::now();
    while !inbox.join(".failed/bad.json").exists() || !inbox.join(".done/late.json.errors.json").exists() {
        assert!(started.elapsed() < Duration::from_secs(20), "files not moved");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(inbox.join(".done/early.json").exists());
    // an Observation is not a video resource: reported beside the file, nothing published
    let errors = std::fs::read_to_string(inbox.join(".done/late.json.errors.json")).unwrap();
    assert!(errors.contains("not mapped by the video adapter"), "{errors}");
    assert_eq!(messages(&js).await, 5);
}

#[tokio::test]
async fn simulate_publishes_the_asked_number_of_events() {
    let server = Server::start();
    let js = server.stream().await;
    let dir = tempfile::tempdir().unwrap();
    let output = adapter(&server, dir.path(), &["simulate", "--events", "3000", "--seed", "5"]).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    wait_for(&js, 3000).await;
    let output = adapter(&server, dir.path(), &["simulate", "--events", "500", "--seed", "6", "--rate", "2000"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(String::from_utf8_lossy(&output.stderr).contains("0 mapping errors"));
}

#[tokio::test]
async fn a_sigkilled_adapter_resumes_from_its_outbox() {
    let server = Server::start();
    let js = server.stream().await;
    let dir = tempfile::tempdir().unwrap();
    // First run: NATS unreachable, so everything waits in the outbox; then SIGKILL.
    let dead = Server::start();
    let dead_url = dead.url();
    drop(dead);
    let mut first = adapter_at(&dead_url, dir.path(), &["simulate", "--events", "3000", "--seed", "9"]);
    first.stderr(Stdio::null());
    let mut first = Running(first.spawn().unwrap());
    let started = Instant::now();
    // simulate enqueues everything first (durably, batch by batch), then waits to drain
    while !dir.path().join("outbox").exists() || started.elapsed() < Duration::from_secs(3) {
        assert!(started.elapsed() < Duration::from_secs(20));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    first.0.kill().unwrap(); // SIGKILL
    let _ = first.0.wait();
    assert_eq!(messages(&js).await, 0);
    // Second run, another command on the same outbox: what was left goes first.
    let careplan = fixtures().join("plans/careplan.json").to_string_lossy().into_owned();
    let status = adapter(
        &server,
        dir.path(),
        &["plans", "--principal", "12", "--source-system", "cosmic", "--heartbeat-s", "0", "--file", &careplan],
    )
    .status()
    .unwrap();
    assert_eq!(status.code(), Some(0));
    assert_eq!(messages(&js).await, 3002, "3000 left by the killed run and the care plan's 2");
}
