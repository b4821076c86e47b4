//! How much memory the in-memory views take after N simulator events, table by table.
//!
//! `cargo run --release -p sgd-hub --example views_footprint -- 1000000 [records in memory]`
//!
//! Applies the bench's simulator events (the projector's decode path, no NATS) to
//! `DomainViews`, then reports live heap bytes (a counting allocator) for the views, for the keys
//! of their changed records and for each table (measured as the heap a clone of the table
//! allocates), and the process's RSS. With a number of records in memory (the hub's
//! `records_in_memory`), the views keep that many per bounded table and hand the others over to
//! record runs in a temporary directory after each batch of 5,000 events, as the projection
//! runner does.

#[path = "support/measure.rs"]
mod measure;

use sgd_hub::{
    projections::{table::StoredTable, DomainViews, ProjectedEvent},
    store::record_runs::RecordRuns,
};
use sgd_schemas::{upcast, DomainEvent, Envelope};

fn main() {
    let n: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(1_000_000);
    let bodies = sgd_hub::bench::simulator_bodies(n);
    let value_path = |body: &[u8]| {
        let mut envelope: Envelope = serde_json::from_slice(body).expect("simulator bodies are envelopes");
        let data = std::mem::take(&mut envelope.data);
        let version = envelope.version();
        let event = DomainEvent::decode(&envelope.event_type, upcast::to_newest(&envelope, version, data))
            .expect("simulator events decode");
        (envelope, event)
    };
    let direct_path = |body: &[u8]| {
        let (envelope, event) = upcast::decode_logged(body).expect("simulator bodies are envelopes");
        (envelope, event.expect("simulator events decode"))
    };
    // Decoding alone, each event dropped at once (as the projector does), the two ways taken in
    // turn five times and the fastest pass of each kept: this machine's timings vary by a third.
    let mut fastest = [std::time::Duration::MAX; 2];
    for _ in 0..5 {
        for (way, slot) in fastest.iter_mut().enumerate() {
            let started = std::time::Instant::now();
            for (_, _, body) in &bodies {
                if way == 0 {
                    std::hint::black_box(value_path(body));
                } else {
                    std::hint::black_box(direct_path(body));
                }
            }
            *slot = (*slot).min(started.elapsed());
        }
    }
    println!(
        "decoding {n} events: through a serde_json::Value {:.2} s, typed from the text (decode_logged) {:.2} s",
        fastest[0].as_secs_f64(),
        fastest[1].as_secs_f64()
    );
    let decoded: Vec<(Envelope, DomainEvent)> = bodies.iter().map(|(_, _, body)| direct_path(body)).collect();
    drop(bodies);
    let before = measure::live();
    let rss_before = measure::rss_mb();
    let started = std::time::Instant::now();
    let mut views = DomainViews::default();
    let records_in_memory: Option<usize> = std::env::args().nth(2).and_then(|a| a.parse().ok());
    let disk_dir = tempfile::tempdir().expect("a temporary directory");
    let disk = std::sync::Arc::new(RecordRuns::open(disk_dir.path()).expect("record runs open"));
    if let Some(records) = records_in_memory {
        views.keep_on_disk(disk.clone(), records);
    }
    for (batch, events) in decoded.chunks(5000).enumerate() {
        views.tick();
        for (i, (envelope, event)) in events.iter().enumerate() {
            views.apply_logged(&ProjectedEvent::new(envelope, event), (batch * 5000 + i) as u64 + 1);
        }
        let through = ((batch + 1) * 5000) as u64;
        if views.hand_over_now(&disk, through).expect("a run written") > 0 {
            disk.merge(through).expect("runs merged");
        }
    }
    let applied = started.elapsed();
    let views_heap = measure::live() - before;
    println!(
        "{n} events applied in {:.2} s; views heap {:.1} MB ({:.0} B/event); RSS {:.1} -> {:.1} MB",
        applied.as_secs_f64(),
        measure::mb(views_heap),
        views_heap as f64 / n as f64,
        rss_before,
        measure::rss_mb()
    );
    if records_in_memory.is_some() {
        let (runs, bytes) = disk.size();
        println!("records on disk: {runs} runs, {:.1} MB", measure::mb(bytes as usize));
    }
    // The answers over the views, as the API computes them (its serialising and sending apart).
    let as_of = chrono::Utc::now().fixed_offset();
    let settings = sgd_hub::projections::goals::GoalSettings::default();
    let goals = |views: &DomainViews| {
        let publishers = views.publishers.until(as_of.date_naive());
        std::hint::black_box(sgd_hub::projections::goals::goals(views, &publishers, as_of, &settings));
    };
    let summary = |views: &DomainViews| {
        std::hint::black_box(sgd_hub::projections::followup::summary(views, as_of));
    };
    type Answer<'a> = &'a dyn Fn(&DomainViews);
    let answers: [(&str, Answer); 2] = [("goals", &goals), ("follow-up summary", &summary)];
    let mut timings = Vec::new();
    for (name, answer) in answers {
        let started = std::time::Instant::now();
        for _ in 0..100 {
            answer(&views);
        }
        timings.push(format!("{name} {:.3} ms", started.elapsed().as_secs_f64() * 10.0));
    }
    println!("computing an answer (mean of 100): {}", timings.join(", "));
    // The keys of the changed records, kept until the next views write (a live hub writes every
    // 2 s; in a rebuild it tracks none and stores the views whole): not part of the tables below.
    let tracked = measure::live();
    views.clear_changes();
    println!("of which the changed keys (all of them here) {:.1} MB", measure::mb(tracked - measure::live()));
    println!("{:<24} {:>9} {:>9} {:>8}", "table", "records", "heap MB", "B/rec");
    for table in views.tables() {
        let records: usize = (0..table.slices()).map(|i| table.encode_slice(i).len()).sum();
        let heap = table_heap(&views, table.prefix());
        println!(
            "{:<24} {:>9} {:>9.1} {:>8.0}",
            table.prefix(),
            records,
            measure::mb(heap),
            heap as f64 / records.max(1) as f64
        );
    }
}

/// The heap a clone of the table stored under `prefix` allocates (its records, keys and hash
/// tables; an empty table still has its 256 shards).
fn table_heap(views: &DomainViews, prefix: &str) -> usize {
    macro_rules! heap_of_clone {
        ($($table:expr),* $(,)?) => {{
            $(
                if $table.prefix() == prefix {
                    let at = measure::live();
                    let copy = $table.clone();
                    let heap = measure::live() - at;
                    drop(copy);
                    return heap;
                }
            )*
            0
        }};
    }
    heap_of_clone!(
        views.npo.roles,
        views.npo.consents,
        views.sdk.addresses,
        views.sdk.messages,
        views.plans.plans,
        views.plans.by_person,
        views.decision.warnings,
        views.decision.flags,
        views.decision.by_person,
        views.deviation.deviations,
        views.video.meetings,
        views.heartbeats.adapters,
        views.publishers.first,
        views.timelines,
        views.aggregates.days,
        views.aggregates.months,
    )
}
