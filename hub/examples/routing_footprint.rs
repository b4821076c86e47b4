//! How many open cases the router's rules remember after N simulator events, and the heap they
//! take, kind by kind.
//!
//! `cargo run --release -p sgd-hub --example routing_footprint -- 10000000`
//!
//! Routes the bench's simulator events (the router's decode path, no NATS) through the rules
//! into a `RoutingState`, printing its entries, the live heap (a counting allocator) and the
//! process's RSS every million events: with the state in the router's sled store (in a
//! temporary directory, written every 1,000 events as the router writes each batch), or with
//! `--in-memory`, held whole in memory.

#[path = "support/measure.rs"]
mod measure;

use sgd_hub::routing::{route, store::RouterStore, RoutingState};
use sgd_schemas::upcast;

fn main() {
    let n: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(1_000_000);
    let in_memory = std::env::args().any(|a| a == "--in-memory");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = RouterStore::open(dir.path()).expect("the store opens");
    let before = measure::live();
    let mut state = if in_memory { RoutingState::default() } else { store.load().expect("the store loads").0 };
    println!(
        "{:>10} {:>7} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9} {:>8}",
        "events", "units", "plans", "persons", "deviat.", "messages", "meetings", "heap MB", "RSS MB"
    );
    let started = std::time::Instant::now();
    for (i, (_, _, body)) in sgd_hub::bench::simulator_stream(n).enumerate() {
        let (envelope, event) = upcast::decode_logged(&body).expect("simulator bodies are envelopes");
        let event = event.expect("simulator events decode");
        route(&mut state, &envelope.principal, &event).expect("the store reads");
        if (i + 1) % 1_000 == 0 && !in_memory {
            store.commit(&mut state, (i + 1) as u64).expect("the store writes");
        }
        if (i + 1) % 1_000_000 == 0 || i + 1 == n {
            println!(
                "{:>10} {:>7} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9.1} {:>8.1}",
                i + 1,
                state.units.len(),
                state.plans.len(),
                state.person_plans.len(),
                state.deviations.len(),
                state.messages.len(),
                state.meetings.len(),
                measure::mb(measure::live() - before),
                measure::rss_mb()
            );
        }
    }
    println!("{n} events generated, decoded and routed in {:.1} s", started.elapsed().as_secs_f64());
}
