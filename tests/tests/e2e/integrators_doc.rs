//! The integrators' guide works as printed: each worked example of `docs/integrators.md` (the
//! fenced block right after a `<!-- tested: NAME -->` line) runs against a real hub, and the hub
//! counts exactly the events it publishes.

use std::{
    ffi::OsStr,
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, SystemTime},
};

use anyhow::{bail, Context as _, Result};
use sgd_hub::tokens::Role;
use sgd_tests::{wait_until, Api, InProcessHub, TestNats};

/// The workspace root.
fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The body of the one fenced block marked `<!-- tested: name -->` in `docs/integrators.md`.
fn tested_block(name: &str) -> Result<String> {
    let path = root().join("docs/integrators.md");
    let doc = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let marker = format!("<!-- tested: {name} -->");
    let mut blocks = Vec::new();
    let mut lines = doc.lines();
    while let Some(line) = lines.next() {
        if line.trim() != marker {
            continue;
        }
        let fence = lines.by_ref().find(|l| !l.trim().is_empty()).unwrap_or_default();
        if !fence.starts_with("```") {
            bail!("{marker} is not followed by a fenced block but by {fence:?}");
        }
        let mut body = String::new();
        let mut closed = false;
        for line in lines.by_ref() {
            if line == "```" {
                closed = true;
                break;
            }
            body.push_str(line);
            body.push('\n');
        }
        if !closed {
            bail!("the block after {marker} is not closed");
        }
        blocks.push(body);
    }
    match blocks.len() {
        1 => Ok(blocks.remove(0)),
        n => bail!("docs/integrators.md has {n} blocks marked {marker}; expected exactly 1"),
    }
}

/// Runs `program args` with `env`, failing with its output unless it exits with 0 within 2 minutes.
async fn run(program: &Path, args: &[&OsStr], env: &[(&str, &str)]) -> Result<String> {
    let mut command = tokio::process::Command::new(program);
    command.args(args).stdin(Stdio::null()).kill_on_drop(true);
    for (key, value) in env {
        command.env(key, value);
    }
    let what =
        format!("{} {}", program.display(), args.iter().map(|a| a.to_string_lossy()).collect::<Vec<_>>().join(" "));
    let output = tokio::time::timeout(Duration::from_secs(120), command.output())
        .await
        .with_context(|| format!("{what} did not finish within 2 minutes"))?
        .with_context(|| format!("cannot run {what}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        bail!("{what} failed ({}):\n--- stdout\n{stdout}--- stderr\n{stderr}", output.status);
    }
    eprintln!("{what}:\n{stdout}{stderr}");
    Ok(stdout)
}

/// Waits until each usage query totals what is expected, then checks that it stays so and that
/// nothing was dead-lettered.
async fn expect_counted(hub: &InProcessHub, expected: &[(&str, u64)]) -> Result<()> {
    let analyst = hub.api(Role::Analyst, None)?;
    let matches = |analyst: Api| async move {
        for (query, count) in expected {
            if analyst.usage_total(query).await? != *count {
                return Ok(false);
            }
        }
        Ok(true)
    };
    let waited = wait_until(Duration::from_secs(20), || matches(analyst.clone())).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut actual = Vec::new();
    for (query, _) in expected {
        actual.push((*query, analyst.usage_total(query).await?));
    }
    assert_eq!(actual, expected, "usage totals (query, count)");
    waited?;
    let operator = hub.api(Role::Operator, None)?;
    let dlq = operator.get_json("/api/v1/dlq").await?;
    assert_eq!(dlq["total"], 0, "the example's events were dead-lettered: {dlq}");
    Ok(())
}

#[tokio::test]
async fn the_curl_example_posts_three_events_and_is_refused_once() -> Result<()> {
    let script = tested_block("curl")?;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("example.sh");
    std::fs::write(&path, script)?;

    let nats = TestNats::start().await?;
    let hub = InProcessHub::start(&nats.url(), |_| {}).await?;
    let integrator = hub.api(Role::Integrator, Some("1280"))?;
    let args = [OsStr::new("-euo"), OsStr::new("pipefail"), path.as_os_str()];
    let env = [("HUB_URL", integrator.base.as_str()), ("HUB_TOKEN", integrator.token.as_str())];
    let output = run(Path::new("bash"), &args, &env).await?;
    assert_eq!(output.lines().filter(|l| l.starts_with("HTTP 202 ")).count(), 3, "{output}");
    assert_eq!(output.lines().filter(|l| l.starts_with("HTTP 400 ")).count(), 1, "{output}");

    expect_counted(
        &hub,
        &[
            ("", 3),
            ("principal=1280", 3),
            ("type=se.sgd.plans.plan.created", 1),
            ("type=se.sgd.plans.sip.held", 1),
            ("type=se.sgd.sdk.message.delivered", 1),
        ],
    )
    .await?;
    hub.stop().await
}

#[tokio::test]
async fn the_python_example_publishes_two_events_over_nats() -> Result<()> {
    let program = tested_block("python")?;
    let python = Path::new("python3");
    let check = tokio::process::Command::new(python)
        .args(["-c", "import nats, cloudevents"])
        .stdin(Stdio::null())
        .output()
        .await
        .context("cannot run python3; the Python example of docs/integrators.md needs Python 3")?;
    if !check.status.success() {
        bail!(
            "the Python example of docs/integrators.md needs the packages nats-py and cloudevents: run \
             `pip install nats-py cloudevents` (scripts/install-deps.sh --with-python does it)\n{}",
            String::from_utf8_lossy(&check.stderr)
        );
    }
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("publish.py");
    std::fs::write(&path, program)?;

    let nats = TestNats::start().await?;
    let hub = InProcessHub::start(&nats.url(), |_| {}).await?;
    let output = run(python, &[path.as_os_str()], &[("NATS_URL", &nats.url())]).await?;
    assert_eq!(output.matches("published visam-a-77d1e0/completed").count(), 2, "{output}");

    expect_counted(
        &hub,
        &[
            ("", 2),
            ("principal=1290&area=decision", 2),
            ("type=se.sgd.decision.assessment.completed", 1),
            ("type=se.sgd.decision.score.raised", 1),
        ],
    )
    .await?;
    hub.stop().await
}

/// `target/<profile>/examples/publish`, built when missing or older than its source.
fn publish_example_binary() -> Result<PathBuf> {
    // Test executables live in target/<profile>/deps/.
    let exe = std::env::current_exe()?;
    let profile_dir = exe.parent().and_then(Path::parent).context("test executable has no profile dir")?;
    let binary = profile_dir.join("examples").join(format!("publish{}", std::env::consts::EXE_SUFFIX));
    let source = root().join("adapters/examples/publish.rs");
    let modified = |path: &Path| std::fs::metadata(path).and_then(|m| m.modified()).unwrap_or(SystemTime::UNIX_EPOCH);
    if !binary.exists() || modified(&binary) < modified(&source) {
        let mut cargo = std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        // The profile and features the suite's `cargo test --workspace` built everything with, so
        // nothing is compiled twice: a plain `cargo build -p sgd-adapters --example publish` (dev
        // profile, one package's features) rebuilt the whole dependency tree, 10 CPU-minutes.
        let profile =
            if profile_dir.file_name().and_then(|n| n.to_str()) == Some("release") { "bench" } else { "test" };
        cargo.args(["build", "--workspace", "--bins", "--examples", "--profile", profile]);
        let status = cargo.status().context("cannot run cargo to build the publish example")?;
        if !status.success() {
            bail!("cargo build --workspace --bins --examples (for the publish example) failed: {status}");
        }
    }
    if !binary.exists() {
        bail!("the publish example is not at {}", binary.display());
    }
    Ok(binary)
}

#[tokio::test]
async fn the_rust_example_is_adapters_examples_publish_rs_and_publishes_two_events() -> Result<()> {
    let block = tested_block("rust")?;
    let file = std::fs::read_to_string(root().join("adapters/examples/publish.rs"))?;
    assert!(
        block == file,
        "the rust block of docs/integrators.md must be adapters/examples/publish.rs byte for byte; copy the file \
         into the block"
    );
    let binary = publish_example_binary()?;

    let nats = TestNats::start().await?;
    let hub = InProcessHub::start(&nats.url(), |_| {}).await?;
    run(&binary, &[], &[("NATS_URL", &nats.url())]).await?;

    expect_counted(
        &hub,
        &[
            ("", 2),
            ("principal=12&area=plans", 2),
            ("type=se.sgd.plans.plan.created", 1),
            ("type=se.sgd.plans.admission.notified", 1),
        ],
    )
    .await?;
    hub.stop().await
}
