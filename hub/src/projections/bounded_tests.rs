//! Views that keep only a few records in memory, handing the others over to disk, written to and
//! loaded from their files as the projection runner does (with restarts that lose the runs
//! handed over after the last stored frame), answer exactly as views that keep every record.

use sgd_schemas::{upcast, DomainEvent, Envelope};

use super::{followup, DomainViews, ProjectedEvent};
use crate::store::{record_runs::RecordRuns, views_store::ViewsStore};

fn simulator_events(n: usize) -> Vec<(u64, Envelope, DomainEvent)> {
    crate::bench::simulator_bodies(n)
        .into_iter()
        .enumerate()
        .map(|(i, (_, _, body))| {
            let (envelope, event) = upcast::decode_logged(&body).expect("simulator bodies are envelopes");
            (i as u64 + 1, envelope, event.expect("simulator events decode"))
        })
        .collect()
}

fn apply(views: &mut DomainViews, events: &[(u64, Envelope, DomainEvent)]) {
    views.tick();
    for (sequence, envelope, event) in events {
        views.apply_logged(&ProjectedEvent::new(envelope, event), *sequence);
        views.applied_through = *sequence;
    }
}

const BUDGET: usize = 5;
const CHUNK: usize = 250;

#[test]
fn views_keeping_a_few_records_in_memory_answer_as_views_keeping_all_across_restarts() {
    let events = simulator_events(24_000);
    let mut reference = DomainViews::default();
    apply(&mut reference, &events);

    let dir = tempfile::tempdir().unwrap();
    let records = std::sync::Arc::new(RecordRuns::open(&dir.path().join("records")).unwrap());
    let views_dir = dir.path().join("views");
    let mut store = ViewsStore::open(&views_dir).unwrap().with_min_journal_bytes(20_000);
    let mut views = DomainViews::default();
    views.keep_on_disk(records.clone(), BUDGET);
    let mut handed_over = 0;
    let mut restarts = 0;
    let mut snapshots = 0;
    let chunks: Vec<&[(u64, Envelope, DomainEvent)]> = events.chunks(CHUNK).collect();
    let mut next = 0;
    while next < chunks.len() {
        let chunk = chunks[next];
        let through = chunk.last().map(|(sequence, _, _)| *sequence).unwrap();
        apply(&mut views, chunk);
        handed_over += views.hand_over_now(&records, through).unwrap();
        assert!(!views.over_budget());
        if next % 24 == 12 {
            // A catch-up: every record counts as changed, and the views are stored whole.
            views.mark_all_changed();
        }
        if next % 3 == 2 && views.needs_snapshot() {
            store.write_all(through, &views).unwrap();
            views.clear_changes();
            snapshots += 1;
        } else if next % 3 == 2 {
            let shared = tokio::sync::RwLock::new(std::mem::take(&mut views));
            let changes = shared.blocking_write().drain_changes();
            store.append(through, &changes, &shared).unwrap();
            views = shared.into_inner();
            if next % 9 == 8 {
                records.merge(through).unwrap();
            }
        }
        if next % 23 == 22 {
            // A restart: the views as stored, the runs handed over after them removed, and the
            // log since replayed.
            drop(store);
            store = ViewsStore::open(&views_dir).unwrap().with_min_journal_bytes(20_000);
            let mut loaded = store.load().unwrap();
            records.discard_after(loaded.applied_through).unwrap();
            loaded.keep_on_disk(records.clone(), BUDGET);
            let replay: Vec<_> =
                events.iter().filter(|(s, _, _)| *s > loaded.applied_through && *s <= through).cloned().collect();
            apply(&mut loaded, &replay);
            views = loaded;
            restarts += 1;
        }
        next += 1;
    }
    assert!(records.take_failure().is_none());
    assert!(handed_over > 10_000, "records went to disk and back: {handed_over}");
    assert!(restarts >= 3);
    assert!(snapshots >= 3, "catch-ups stored whole: {snapshots}");
    assert!(records.size().0 >= 1);
    let cases = |views: &DomainViews| -> usize {
        views.tables().iter().filter(|t| t.prefix() != "v/timeline/").map(|t| t.records()).sum()
    };
    assert!(cases(&views) < cases(&reference) / 4, "{} records in memory of {}", cases(&views), cases(&reference));

    assert_eq!(
        views.all_records(),
        reference.all_records(),
        "every record, in memory or on disk, as if kept in memory"
    );
    let limits = followup::FollowupLimits::default();
    let last = events.last().unwrap().1.time;
    for as_of in
        [events[events.len() / 3].1.time, events[events.len() / 2].1.time, last, last + chrono::Duration::days(30)]
    {
        assert_eq!(followup::summary(&views, as_of), followup::summary(&reference, as_of), "summary as of {as_of}");
        assert_eq!(
            followup::open_cases(&views, as_of, &limits),
            followup::open_cases(&reference, as_of, &limits),
            "open cases as of {as_of}"
        );
    }
    // Counted again from every case, in memory and on disk.
    let mut recounted = views.clone();
    assert!(recounted.count_with(followup::FollowupLimits { receipt_hours: 12, ..limits }));
    let mut reference_recounted = reference.clone();
    reference_recounted.count_with(followup::FollowupLimits { receipt_hours: 12, ..limits });
    assert_eq!(followup::summary(&recounted, last), followup::summary(&reference_recounted, last));
}
