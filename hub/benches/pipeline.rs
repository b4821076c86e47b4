//! `cargo bench -p sgd-hub --bench pipeline [-- --events N]`: the hub against raw JetStream.
//! Prints a table and writes it as JSON to `target/bench/pipeline.json`.

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().collect();
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this without it, and the
    // suite's smoke run of the benchmark is a library test, so do nothing then.
    if !args.iter().any(|a| a == "--bench") {
        println!("run with: cargo bench -p sgd-hub --bench pipeline [-- --events N]");
        return std::process::ExitCode::SUCCESS;
    }
    let mut settings = sgd_hub::bench::BenchSettings::default();
    if let Some(i) = args.iter().position(|a| a == "--events") {
        match args.get(i + 1).and_then(|n| n.parse().ok()) {
            Some(n) => settings.events = n,
            None => {
                eprintln!("--events needs a number");
                return std::process::ExitCode::from(2);
            }
        }
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let work = match tempfile::tempdir() {
        Ok(dir) => dir,
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    match runtime.block_on(sgd_hub::bench::run(settings, work.path())) {
        Ok(report) => {
            print!("{}", report.table());
            let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench");
            let _ = std::fs::create_dir_all(&out);
            let file = out.join("pipeline.json");
            if std::fs::write(&file, serde_json::to_vec_pretty(&report).unwrap_or_default()).is_ok() {
                println!("written to {}", file.display());
            }
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::from(1)
        }
    }
}
