//! The benchmark's query phase against a hub that is already running (for profiling it):
//! `cargo run --release -p sgd-hub --example query_load -- http://127.0.0.1:8080 <analyst token> [seconds]
//! [clients] [gzip]` (with `gzip`, the clients accept gzipped answers).

use std::time::Duration;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(base), Some(token)) = (args.first(), args.get(1)) else {
        eprintln!("usage: query_load <base url> <analyst token> [seconds (30)] [clients (50)] [gzip]");
        std::process::exit(2);
    };
    let seconds = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(30);
    let clients = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(50);
    let gzip = args.get(4).is_some_and(|a| a == "gzip");
    match sgd_hub::bench::queries::measure(base, token, clients, Duration::from_secs(seconds), gzip).await {
        Ok(figures) => {
            for q in figures {
                println!(
                    "{:<40} p50 {:>6.1} ms  p99 {:>6.1} ms  {:>8.1} req/s",
                    q.name, q.p50_ms, q.p99_ms, q.per_second
                );
            }
        }
        Err(e) => {
            eprintln!("query_load: {e}");
            std::process::exit(1);
        }
    }
}
