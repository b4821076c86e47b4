//! Publishes two events from Region Skåne's Mina Planer to sgd-hub over NATS JetStream.
//!
//! Run it with `NATS_URL=nats://127.0.0.1:4222 cargo run -p sgd-adapters --example publish`.

use sgd_adapters::{Draft, Publisher, SourceSystem};
use sgd_schemas::events::plans::{AdmissionNotified, PlanCreated, PlanKind};

/// The person's pseudonym: lowercase hex HMAC-SHA256 of their personal identity number, keyed with
/// the region's secret. Never put the number itself in an event.
const PERSON: &str = "2b86d0522d6b9eda6480bd932f1489d4841b2864ebd4c4fc64096f6aa4ba981c";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    let client = async_nats::connect(url).await?;

    // Who speaks: the system `minaplaner` of principal 12 (Region Skåne). This fixes the events'
    // `source` and `principal` and the subject they go to: sgd.in.12.<area>.
    let source = SourceSystem::new("12", "minaplaner")?;
    let publisher = Publisher::new(async_nats::jetstream::new(client), source);

    let plan_id = "svu-2026-0815";
    let now = chrono::Utc::now().fixed_offset();

    // Build each event from a typed struct. The ids come from the local system (here: the plan id
    // and what happened to it), so publishing the same fact again never counts it twice.
    let created = Draft::at(
        format!("{plan_id}/created"),
        now,
        PlanCreated {
            plan_id: plan_id.into(),
            kind: PlanKind::Svu,
            person: PERSON.into(),
            participants: vec!["12".into(), "1280".into()],
        }
        .into(),
    );
    let notified = Draft::at(
        format!("{plan_id}/admission-notified"),
        now,
        AdmissionNotified { plan_id: plan_id.into(), need_assessed_at: now - chrono::Duration::hours(3), sent_at: now }
            .into(),
    );

    // `publish` waits for JetStream's acknowledgement and retries with backoff (same id each time).
    for draft in [&created, &notified] {
        let sequence = publisher.publish(draft).await?;
        println!("published {} ({}) as ingress sequence {sequence}", draft.id, draft.event.event_type());
    }

    // Publishing the same draft again, as after a timeout, is harmless: the hub's log recognises
    // its Nats-Msg-Id and the hub counts the event once.
    publisher.publish(&created).await?;
    println!("published {} again: counted once", created.id);
    Ok(())
}
