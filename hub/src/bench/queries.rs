//! Query latency under concurrent clients: each client asks the three analyst questions in turn
//! (goals, a year of usage by month, the follow-up summary) as fast as answers come, for a while.

use std::time::{Duration, Instant};

use super::{err, hub_process::BenchHub, quantile, BenchError};

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

/// Runs `clients` concurrent clients for `period`.
pub async fn measure(hub: &BenchHub, clients: usize, period: Duration) -> Result<Vec<QueryFigures>, BenchError> {
    // One connection per client, as 50 analysts' browsers would have.
    let mut tasks = Vec::with_capacity(clients);
    for client in 0..clients {
        let http = reqwest::Client::builder().pool_max_idle_per_host(1).build().map_err(err)?;
        let (base, token) = (hub.base.clone(), hub.analyst.clone());
        tasks.push(tokio::spawn(async move {
            let mut timings: [Vec<f64>; 3] = Default::default();
            let started = Instant::now();
            let mut turn = client; // clients start on different questions
            while started.elapsed() < period {
                let which = turn % QUERIES.len();
                turn += 1;
                let asked = Instant::now();
                let answer = http.get(format!("{base}{}", QUERIES[which].1)).bearer_auth(&token).send().await;
                let answer = answer.map_err(err)?;
                let status = answer.status();
                answer.bytes().await.map_err(err)?;
                if !status.is_success() {
                    return Err(BenchError(format!("{} answered {status}", QUERIES[which].1)));
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
