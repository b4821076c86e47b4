//! Query latency under concurrent clients: each client asks the three analyst questions in turn
//! (goals, a year of usage by month, the follow-up summary) as fast as answers come, for a while.

use std::time::{Duration, Instant};

use super::{err, quantile, BenchError};

/// The questions asked.
pub const QUERIES: [(&str, &str); 3] = [
    ("/api/v1/goals", "/api/v1/goals"),
    ("/api/v1/usage (a year by month)", "/api/v1/usage?from=2026-01-01&to=2026-12-31&bucket=month"),
    ("/api/v1/followup/summary", "/api/v1/followup/summary"),
];

/// What one question measured.
pub struct QueryFigures {
    /// Its name.
    pub name: &'static str,
    /// Median, milliseconds.
    pub p50_ms: f64,
    /// 99th percentile, milliseconds.
    pub p99_ms: f64,
    /// Answers per second (all clients).
    pub per_second: f64,
}

/// Runs `clients` concurrent clients for `period` against the hub at `base` (`http://host:port`),
/// asking with the analyst token `token`; with `gzip`, they accept gzipped answers (and unzip
/// them, on the same cores as the hub).
pub async fn measure(
    base: &str,
    token: &str,
    clients: usize,
    period: Duration,
    gzip: bool,
) -> Result<Vec<QueryFigures>, BenchError> {
    // One connection per client, as 50 analysts' browsers would have.
    let mut tasks = Vec::with_capacity(clients);
    for client in 0..clients {
        let http = reqwest::Client::builder().pool_max_idle_per_host(1).gzip(gzip).build().map_err(err)?;
        let (base, token) = (base.to_owned(), token.to_owned());
        tasks.push(tokio::spawn(async move {
            let mut timings: [Vec<f64>; 3] = Default::default();
            let started = Instant::now();
            let mut turn = client; // clients start on different questions
            while started.elapsed() < period {
                let which = turn % QUERIES.len();
                turn += 1;
                let asked = Instant::now();
                let answer = http.get(format!("{base}{}", QUERIES[which].1)).bearer_auth(&token).send().await;
                let mut answer = answer.map_err(err)?;
                let status = answer.status();
                if !status.is_success() {
                    return Err(BenchError(format!("{} answered {status}", QUERIES[which].1)));
                }
                // Every byte is received and counted, as it arrives: collecting a 370-KB answer
                // into one buffer (reqwest's `bytes()`) cost the clients, on the hub's two cores,
                // a copy of every answer (docs/performance.md, "Queries").
                let length = answer.content_length();
                let mut received = 0u64;
                while let Some(chunk) = answer.chunk().await.map_err(err)? {
                    received += chunk.len() as u64;
                }
                if length.is_some_and(|length| length != received) {
                    return Err(BenchError(format!("{} answered {received} of {length:?} bytes", QUERIES[which].1)));
                }
                timings[which].push(asked.elapsed().as_secs_f64() * 1000.0);
            }
            Ok(timings)
        }));
    }
    let mut all: [Vec<f64>; 3] = Default::default();
    for task in tasks {
        let timings = task.await.map_err(err)??;
        for (into, from) in all.iter_mut().zip(timings) {
            into.extend(from);
        }
    }
    Ok(all
        .into_iter()
        .zip(QUERIES)
        .map(|(mut timings, (name, _))| {
            timings.sort_by(f64::total_cmp);
            QueryFigures {
                name,
                p50_ms: quantile(&timings, 0.5),
                p99_ms: quantile(&timings, 0.99),
                per_second: timings.len() as f64 / period.as_secs_f64(),
            }
        })
        .collect())
}
