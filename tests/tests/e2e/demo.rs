//! `hub demo`, as a newcomer runs it: its own nats-server, a sample of every type, an analyst token.

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    time::Duration,
};

use anyhow::{Context, Result};
use sgd_tests::{hub_binary, Api};

struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    /// SIGTERM first, so `hub demo` stops the nats-server it started (a SIGKILL left that server
    /// running after every suite run); SIGKILL after 15 s.
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.0.id()) {
            // SAFETY: a signal to our own child, not yet reaped.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let started = std::time::Instant::now();
        while started.elapsed() < Duration::from_secs(15) {
            if matches!(self.0.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn the_demo_shows_usage_for_all_six_areas_most_principals_and_dead_letters() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let port = sgd_tests::nats_server::free_port()?;
    let mut child = KillOnDrop(
        Command::new(hub_binary()?)
            .args(["demo", "--per-type", "1", "--simulated", "3000", "--http-addr", &format!("127.0.0.1:{port}")])
            .arg("--data-dir")
            .arg(dir.path())
            .env_remove("HUB_NATS_URL")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?,
    );
    let stdout = child.0.stdout.take().context("demo stdout")?;
    // Read the demo's output until the analyst token (its last line) on a blocking thread.
    let lines = tokio::task::spawn_blocking(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let line = line?;
            let done = lines.last().is_some_and(|l: &String| l == "analyst token:");
            lines.push(line);
            if done {
                break;
            }
        }
        anyhow::Ok(lines)
    });
    let lines =
        tokio::time::timeout(Duration::from_secs(120), lines).await.context("demo did not print its token")???;
    let output = lines.join("\n");
    let analyst = lines.last().context("no output")?.clone();
    assert!(analyst.starts_with("sgd_"), "{output}");
    assert!(output.contains(&format!("http://127.0.0.1:{port}")), "{output}");
    let operator = output
        .lines()
        .find_map(|l| l.split("operator token (DLQ, metrics): ").nth(1))
        .context("no operator token printed")?
        .to_string();

    let addr = format!("127.0.0.1:{port}").parse()?;
    let api = Api::new(addr, analyst);
    for area in ["npo", "sdk", "plans", "decision", "deviation", "video"] {
        assert!(api.usage_total(&format!("area={area}")).await? > 0, "no usage for {area}:\n{output}");
    }
    let usage = api.get_json("/api/v1/usage").await?;
    let active: std::collections::BTreeSet<&str> =
        usage["rows"].as_array().unwrap().iter().filter_map(|r| r["principal"].as_str()).collect();
    assert!(active.len() >= 30, "only {} of 34 principals show activity: {active:?}", active.len());
    let goals = api.get_json("/api/v1/goals").await?;
    assert_eq!(goals["goals"].as_array().unwrap().len(), 11, "{goals}");
    let dlq = Api::new(addr, operator).get_json("/api/v1/dlq").await?;
    assert_eq!(dlq["total"], 4, "the demo's four refused samples: {dlq}");
    Ok(())
}
