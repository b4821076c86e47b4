//! The operator commands behind `hub tail`, `hub status` and `hub dlq`: they print for people
//! (one line per item) or, with `--json`, for programs.

use std::{io::Write, time::Duration};

use async_nats::jetstream;
use futures::StreamExt;

use super::client::{ApiClient, ClientError};
use crate::{
    api::{
        dlq::{DlqAnswer, DlqItem, ReplayAnswer, ReplayRequest},
        status::HubStatus,
    },
    log::tail::{StartAt, TailError, TailFilter},
};

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// Following a stream failed.
    #[error(transparent)]
    Tail(#[from] TailError),
    /// The hub's API failed.
    #[error(transparent)]
    Api(#[from] ClientError),
    /// Writing the output failed (a closed pipe).
    #[error("output: {0}")]
    Output(#[from] std::io::Error),
    /// The rebuild failed (the hub's report says why) → exit status 2.
    #[error("rebuild failed: {0}; the served read model is untouched")]
    RebuildFailed(String),
    /// `hub rebuild --check` found differences → exit status 2.
    #[error("the served read model differs from a rebuild in {0} records")]
    RebuildDiffers(usize),
}

/// `hub tail`: prints each followed message (a line, or the raw JSON with `json`) until `limit`
/// messages were printed or the stream ends.
pub async fn tail(
    js: &jetstream::Context,
    filter: &TailFilter,
    start: StartAt,
    json: bool,
    limit: Option<usize>,
) -> Result<(), CommandError> {
    let mut items = Box::pin(crate::log::tail::follow(js, filter, start).await?);
    let mut out = std::io::stdout().lock();
    let mut printed = 0;
    while limit.is_none_or(|limit| printed < limit) {
        let Some(item) = items.next().await else { break };
        let item = item?;
        if json {
            out.write_all(item.raw())?;
            out.write_all(b"\n")?;
        } else {
            writeln!(out, "{}", item.line())?;
        }
        out.flush()?;
        printed += 1;
    }
    Ok(())
}

/// `hub status`: prints the status once (or every `watch`), with rates from two samples a
/// second apart.
pub async fn status(client: &ApiClient, json: bool, watch: Option<Duration>) -> Result<(), CommandError> {
    loop {
        let first: HubStatus = client.get("/api/v1/status").await?;
        if json {
            println!("{}", serde_json::to_string_pretty(&first).unwrap_or_default());
        } else {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let second: HubStatus = client.get("/api/v1/status").await?;
            print!("{}", render_status(&first, &second));
        }
        match watch {
            Some(every) => tokio::time::sleep(every).await,
            None => return Ok(()),
        }
    }
}

/// The status as text; rates from the difference of two samples.
pub fn render_status(first: &HubStatus, now: &HubStatus) -> String {
    use std::fmt::Write as _;
    let seconds = (now.totals.uptime_seconds - first.totals.uptime_seconds).max(0.001);
    let rate = |a: u64, b: u64| b.saturating_sub(a) as f64 / seconds;
    let mut s = String::new();
    let _ = writeln!(s, "hub {} at {}", now.instance, now.at.format("%Y-%m-%d %H:%M:%S UTC"));
    let _ = writeln!(s, "\nstreams            messages        bytes   first seq    last seq  consumers");
    for st in &now.streams {
        let _ = writeln!(
            s,
            "  {:<14} {:>10} {:>12} {:>11} {:>11} {:>10}",
            st.name, st.messages, st.bytes, st.first_seq, st.last_seq, st.consumers
        );
    }
    match &now.validator {
        Some(v) => {
            let _ = writeln!(
                s,
                "\nvalidator          {} waiting, {} in flight, oldest waiting {:.1} s",
                v.pending, v.ack_pending, v.lag_seconds
            );
        }
        None => {
            let _ = writeln!(s, "\nvalidator          no validator consumer yet");
        }
    }
    match &now.projection {
        Some(p) => {
            let _ = writeln!(
                s,
                "projection         checkpoint {}, lag {} events / {:.1} s{}",
                p.checkpoint,
                p.lag_events,
                p.lag_seconds,
                if p.caught_up { ", caught up" } else { "" }
            );
        }
        None => {
            let _ = writeln!(s, "projection         not run by this hub");
        }
    }
    let (a, b) = (&first.totals, &now.totals);
    let _ = writeln!(
        s,
        "rates              {:.0} validated/s, {:.0} refused/s, {:.0} projected/s (totals since start: {}, {}, {})",
        rate(a.validated, b.validated),
        rate(a.refused, b.refused),
        rate(a.projected, b.projected),
        b.validated,
        b.refused,
        b.projected
    );
    if let Some(r) = &now.routing {
        let _ = writeln!(
            s,
            "routing            checkpoint {}, lag {} events, {} open cases and units remembered",
            r.checkpoint, r.lag_events, r.state_entries
        );
    }
    let dead: u64 = now.dlq_by_reason.values().sum();
    let _ = writeln!(s, "\ndead letters       {dead}");
    for (reason, count) in now.dlq_by_reason.iter().filter(|(_, c)| **c > 0) {
        let _ = writeln!(s, "  {reason:<20} {count:>8}");
    }
    let _ = writeln!(s, "\nsubscriptions      {}", now.subscriptions.len());
    for sub in &now.subscriptions {
        let d = &sub.delivery;
        let _ = writeln!(
            s,
            "  {} {:<4} {:<7} lag {} events / {:.1} s, delivered {}, failures {}, parked {}{}",
            sub.id,
            sub.principal,
            if sub.paused {
                "paused"
            } else if d.running {
                "active"
            } else {
                "elsewhere"
            },
            d.lag_events,
            d.lag_seconds,
            d.delivered,
            d.failures,
            d.parked,
            d.last_error.as_deref().map(|e| format!("; last error: {e}")).unwrap_or_default()
        );
    }
    let _ = writeln!(s, "\nadapters           {} (longest silent first)", now.adapters.len());
    for adapter in &now.adapters {
        let age = adapter.age_seconds.map(|a| humantime::format_duration(Duration::from_secs(a.max(0.0) as u64)));
        let _ = writeln!(
            s,
            "  {:<4} {:<16} {:<24} {:<10} last heard {} ago",
            adapter.principal,
            adapter.principal_name,
            adapter.adapter,
            adapter.version,
            age.map(|a| a.to_string()).unwrap_or_else(|| "never".into())
        );
    }
    s
}

/// `hub dlq list`.
pub async fn dlq_list(
    client: &ApiClient,
    reason: Option<&str>,
    principal: Option<&str>,
    limit: usize,
    json: bool,
) -> Result<(), CommandError> {
    let mut query = format!("/api/v1/dlq?limit={limit}");
    if let Some(reason) = reason {
        query.push_str(&format!("&reason={}", urlencode(reason)));
    }
    if let Some(principal) = principal {
        query.push_str(&format!("&principal={}", urlencode(principal)));
    }
    let answer: DlqAnswer = client.get(&query).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&answer).unwrap_or_default());
        return Ok(());
    }
    println!("{} dead letters in all; newest {} shown", answer.total, answer.items.len());
    for item in &answer.items {
        let summary = crate::log::tail::DeadLetterSummary::new(item.seq, &item.dead_letter);
        let first = item.dead_letter.problems.first().map(|p| format!("{}: {}", p.path, p.message));
        println!(
            "{}  {}{}",
            summary.line(),
            first.unwrap_or_default(),
            if item.replayable { "" } else { "  [not replayable]" }
        );
    }
    Ok(())
}

/// `hub dlq show SEQ`.
pub async fn dlq_show(client: &ApiClient, seq: u64) -> Result<(), CommandError> {
    let item: DlqItem = client.get(&format!("/api/v1/dlq/{seq}")).await?;
    println!("{}", serde_json::to_string_pretty(&item).unwrap_or_default());
    Ok(())
}

/// `hub dlq replay`: prints each result and the totals; returns the answer.
pub async fn dlq_replay(client: &ApiClient, request: &ReplayRequest) -> Result<ReplayAnswer, CommandError> {
    let answer: ReplayAnswer = client.post("/api/v1/dlq/replay", request).await?;
    for result in &answer.results {
        let outcome = serde_json::to_value(&result.outcome).ok().and_then(|v| v.as_str().map(str::to_string));
        let problems: Vec<String> = result.problems.iter().map(|p| format!("{}: {}", p.path, p.message)).collect();
        println!(
            "{:>8}  {:<15} {} {}",
            result.seq,
            outcome.unwrap_or_default(),
            result.reason.as_deref().unwrap_or(""),
            problems.join("; ")
        );
    }
    println!(
        "{} logged, {} refused again (kept), {} skipped{}",
        answer.logged,
        answer.refused,
        answer.skipped,
        if answer.more { "; more are left: run again" } else { "" }
    );
    Ok(answer)
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `hub rebuild` against a running hub: starts the rebuild and follows it with a progress bar
/// until it is done; returns the final report.
pub async fn rebuild_online(
    client: &ApiClient,
    check: bool,
) -> Result<crate::projection::rebuild::RebuildReport, CommandError> {
    use crate::projection::rebuild::{RebuildPhase, RebuildReport};
    let request = crate::api::admin::RebuildRequest { check };
    let _: RebuildReport = client.post("/api/v1/admin/rebuild", &request).await?;
    let bar = progress_bar();
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let report: RebuildReport = client.get("/api/v1/admin/rebuild").await?;
        show_progress(&bar, &report);
        if matches!(report.phase, RebuildPhase::Done | RebuildPhase::Failed) {
            bar.finish_and_clear();
            return Ok(report);
        }
    }
}

/// `hub rebuild --offline`: rebuilds a stopped hub's read model with a progress bar.
pub async fn rebuild_offline(
    js: &jetstream::Context,
    data_dir: &std::path::Path,
    settings: crate::projection::runner::ProjectorSettings,
    check: bool,
) -> Result<crate::projection::rebuild::RebuildReport, crate::projection::rebuild::RebuildError> {
    let progress = std::sync::Arc::new(crate::projection::rebuild::Progress::default());
    let bar = progress_bar();
    let ticker = {
        let (progress, bar) = (progress.clone(), bar.clone());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(200)).await;
                show_progress(&bar, &progress.report());
            }
        })
    };
    let result = crate::projection::rebuild::offline(js, data_dir, settings, check, &progress).await;
    ticker.abort();
    bar.finish_and_clear();
    result
}

fn progress_bar() -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(0);
    let style =
        indicatif::ProgressStyle::with_template("{msg:>10} [{bar:40}] {pos}/{len} events, {per_sec}, {eta} left")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> ");
    bar.set_style(style);
    bar
}

fn show_progress(bar: &indicatif::ProgressBar, report: &crate::projection::rebuild::RebuildReport) {
    bar.set_length(report.target.max(1));
    bar.set_position(report.reached);
    let phase = serde_json::to_value(report.phase).ok().and_then(|v| v.as_str().map(str::to_string));
    bar.set_message(phase.unwrap_or_default());
}

/// The outcome of a rebuild for people; `Err` when it failed or (`check`) found differences.
pub fn rebuild_outcome(report: &crate::projection::rebuild::RebuildReport) -> Result<(), CommandError> {
    use crate::projection::rebuild::RebuildPhase;
    let seconds = match (report.started_at, report.finished_at) {
        (Some(a), Some(b)) => (b - a).num_milliseconds() as f64 / 1000.0,
        _ => 0.0,
    };
    if report.phase == RebuildPhase::Failed {
        return Err(CommandError::RebuildFailed(report.error.clone().unwrap_or_else(|| "unknown error".into())));
    }
    let rate = if seconds > 0.0 { report.reached as f64 / seconds } else { 0.0 };
    if report.check {
        let differences = report.differences.unwrap_or(0);
        println!(
            "rebuilt {} events in {seconds:.1} s ({rate:.0} events/s) and compared with the served model: {differences} differences",
            report.reached
        );
        for example in &report.examples {
            println!("  {example}");
        }
        if differences > 0 {
            return Err(CommandError::RebuildDiffers(differences));
        }
    } else {
        println!(
            "rebuilt {} events in {seconds:.1} s ({rate:.0} events/s); now serving {}",
            report.reached,
            report.dir.as_deref().unwrap_or("the rebuilt model")
        );
    }
    Ok(())
}
