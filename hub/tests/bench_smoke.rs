//! A CI-sized run of the pipeline benchmark (`hub/benches/pipeline.rs`), so it cannot rot: every
//! phase runs against a real `nats-server` and a real `hub serve`; no figure is asserted.

use sgd_hub::bench::{run, BenchSettings};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_benchmark_runs_every_phase_on_a_small_load() {
    let dir = tempfile::tempdir().expect("temp dir");
    let settings = BenchSettings {
        events: 2000,
        publish_window: 256,
        consume_batch: 500,
        latency_seconds: 1,
        latency_rates: vec![200],
        query_seconds: 1,
        query_clients: 4,
        webhook_events: 200,
        webhook_seconds: 1,
        ..BenchSettings::new(env!("CARGO_BIN_EXE_hub").into())
    };
    let report = run(&settings, dir.path()).await.expect("the benchmark runs");
    let table = report.table();
    assert_eq!(report.events, 2000);
    for figure in [
        "ingest",
        "rebuild",
        "latency at 200/s: p99",
        "query /api/v1/goals: p99",
        "floor /api/v1/usage (a year by month): p99",
        "hub peak RSS, rebuild",
        "webhook: published → delivered, burst",
        "webhook at 1000/s: publish → delivered p99",
        sgd_hub::bench::DISK_AT_REST,
        sgd_hub::bench::DISK_LARGEST,
        sgd_hub::bench::SERVER_CPU_RAW,
        sgd_hub::bench::SERVER_CPU_INGEST,
        "hub CPU per 1000 events, ingest",
    ] {
        assert!(table.contains(figure), "{figure} missing from\n{table}");
    }
    assert!(report.figures.iter().all(|f| f.value.is_finite() && f.value >= 0.0), "{table}");
}
