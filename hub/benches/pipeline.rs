//! `cargo bench -p sgd-hub --bench pipeline [-- --events N] [-- --scaling 100000,1000000,5000000]`
//! (`--latency-seconds N` and `--query-seconds N` shorten those phases, 0 skips them;
//! `--webhook-events N` sizes the webhook phase's burst, 0 skips it, `--webhook-seconds N` its
//! steady 1,000/s):
//! the hub (its own `hub serve` process) against raw JetStream. Prints a table and writes it as
//! JSON to `target/bench/pipeline.json` (`pipeline-scaling.json` for the series).

use std::process::ExitCode;

use sgd_hub::bench::{self, BenchReport, BenchSettings};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this without it (the suite's
    // smoke run of the benchmark is `hub/tests/bench_smoke.rs`), so do nothing then.
    if !args.iter().any(|a| a == "--bench") {
        println!("run with: cargo bench -p sgd-hub --bench pipeline [-- --events N | --scaling N,N,…]");
        return ExitCode::SUCCESS;
    }
    let value = |flag: &str| args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1)).cloned();
    let mut settings = BenchSettings::new(env!("CARGO_BIN_EXE_hub").into());
    if let Some(n) = value("--events") {
        match n.parse() {
            Ok(n) => settings.events = n,
            Err(_) => return usage("--events needs a number"),
        }
    }
    for (flag, field) in [
        ("--latency-seconds", &mut settings.latency_seconds),
        ("--query-seconds", &mut settings.query_seconds),
        ("--webhook-seconds", &mut settings.webhook_seconds),
    ] {
        if let Some(n) = value(flag) {
            match n.parse() {
                Ok(n) => *field = n,
                Err(_) => return usage("--latency-seconds, --query-seconds and --webhook-seconds need a number"),
            }
        }
    }
    if let Some(n) = value("--webhook-events") {
        match n.parse() {
            Ok(n) => settings.webhook_events = n,
            Err(_) => return usage("--webhook-events needs a number (0 skips the webhook phase)"),
        }
    }
    let scaling =
        match value("--scaling").map(|list| list.split(',').map(str::parse).collect::<Result<Vec<usize>, _>>()) {
            None => None,
            Some(Ok(sizes)) if !sizes.is_empty() => Some(sizes),
            Some(_) => return usage("--scaling needs a comma-separated list of event counts"),
        };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => return failed(e),
    };
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench");
    let _ = std::fs::create_dir_all(&out);
    match scaling {
        None => {
            let report = match runtime.block_on(run_in_tempdir(&settings)) {
                Ok(report) => report,
                Err(e) => return failed(e),
            };
            print!("{}", report.table());
            write(&out.join("pipeline.json"), &report);
        }
        Some(sizes) => {
            // Ingest and rebuild only: the per-event cost at each size.
            let mut reports = Vec::new();
            for events in sizes {
                let settings = BenchSettings {
                    events,
                    latency_seconds: 0,
                    query_seconds: 0,
                    webhook_events: 0,
                    ..settings.clone()
                };
                match runtime.block_on(run_in_tempdir(&settings)) {
                    Ok(report) => {
                        print!("{}", report.table());
                        reports.push(report);
                    }
                    Err(e) => return failed(e),
                }
            }
            print!("{}", scaling_table(&reports));
            write(&out.join("pipeline-scaling.json"), &reports);
        }
    }
    ExitCode::SUCCESS
}

async fn run_in_tempdir(settings: &BenchSettings) -> Result<BenchReport, String> {
    // SGD_BENCH_KEEP_DIR=/some/dir keeps the run's files (hub logs, latency series) there.
    if let Some(dir) = std::env::var_os("SGD_BENCH_KEEP_DIR") {
        let dir = std::path::PathBuf::from(dir);
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        return bench::run(settings, &dir).await.map_err(|e| e.to_string());
    }
    let work = tempfile::tempdir().map_err(|e| e.to_string())?;
    bench::run(settings, work.path()).await.map_err(|e| e.to_string())
}

fn scaling_table(reports: &[BenchReport]) -> String {
    let mut out = String::from(
        "\nscaling: events | ingest/s (× raw) | rebuild/s (× raw) | ingest RSS MB | rebuild RSS MB | bytes/event at rest (largest)\n",
    );
    for r in reports {
        let value = |name: &str| r.figure(name).map(|f| f.value).unwrap_or(f64::NAN);
        let ratio = |name: &str| r.figure(name).and_then(|f| f.ratio).unwrap_or(f64::NAN);
        let ingest = "ingest: published → validated → projected";
        let rebuild = "rebuild: log → empty read model";
        out.push_str(&format!(
            "{:>9} | {:>8.0} ({:.2}) | {:>8.0} ({:.2}) | {:>6.0} | {:>6.0} | {:>5.0} ({:.0})\n",
            r.events,
            value(ingest),
            ratio(ingest),
            value(rebuild),
            ratio(rebuild),
            value("hub peak RSS, ingest"),
            value("hub peak RSS, rebuild"),
            value(bench::DISK_AT_REST),
            value(bench::DISK_LARGEST),
        ));
    }
    out
}

fn write(file: &std::path::Path, value: &impl serde::Serialize) {
    match serde_json::to_vec_pretty(value).map(|json| std::fs::write(file, json)) {
        Ok(Ok(())) => println!("written to {}", file.display()),
        Ok(Err(e)) => eprintln!("could not write {}: {e}", file.display()),
        Err(e) => eprintln!("could not serialise the report: {e}"),
    }
}

fn usage(message: &str) -> ExitCode {
    eprintln!("{message}");
    ExitCode::from(2)
}

fn failed(e: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::from(1)
}
