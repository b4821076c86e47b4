//! `hub subscription …`: webhook subscriptions through the hub's API.

use crate::{
    api::subscriptions::{CreatedSubscription, ParkedList, ReplayAnswer, SubscriptionItem, SubscriptionList},
    cli::client::ClientError,
    cli::SubscriptionCommand,
    webhooks::subscription::NewSubscription,
};

/// Why a subscription command failed.
#[derive(Debug, thiserror::Error)]
pub enum SubscriptionCommandError {
    /// The API refused or failed.
    #[error(transparent)]
    Api(#[from] ClientError),
    /// Not a subscription id.
    #[error("{0:?} is not a subscription id (wh- and 16 hex digits; `hub subscription list` shows them)")]
    BadId(String),
    /// Some parked deliveries failed again.
    #[error("{0} parked deliveries failed again (the receiver still fails); they stay parked")]
    StillFailing(usize),
}

fn checked(id: String) -> Result<String, SubscriptionCommandError> {
    if crate::webhooks::store::valid_id(&id) {
        Ok(id)
    } else {
        Err(SubscriptionCommandError::BadId(id))
    }
}

fn line(item: &SubscriptionItem) -> String {
    let (s, d) = (&item.subscription, &item.delivery);
    format!(
        "{}  {:<4}  {:<7}  {}  areas={} types={}  delivered={} failures={} parked={} lag={} events/{:.1} s{}",
        s.id,
        s.principal,
        if s.paused { "paused" } else { "active" },
        s.url,
        if s.areas.is_empty() { "all".into() } else { s.areas.join(",") },
        if s.types.is_empty() { "all".into() } else { s.types.join(",") },
        d.delivered,
        d.failures,
        d.parked,
        d.lag_events,
        d.lag_seconds,
        d.last_error.as_deref().map(|e| format!("  last error: {e}")).unwrap_or_default(),
    )
}

/// Runs one command.
pub async fn run(command: SubscriptionCommand) -> Result<(), SubscriptionCommandError> {
    match command {
        SubscriptionCommand::Add { api, url, area, event_type, secret, principal } => {
            let request = NewSubscription { url, areas: area, types: event_type, secret, principal };
            let made: CreatedSubscription = api.client().post("/api/v1/subscriptions", &request).await?;
            println!(
                "subscription {} for {} → {}",
                made.subscription.id, made.subscription.principal, made.subscription.url
            );
            println!("secret (shown once; the receiver verifies webhook-signature with it): {}", made.secret);
        }
        SubscriptionCommand::List { api, json } => {
            let list: SubscriptionList = api.client().get("/api/v1/subscriptions").await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list).unwrap_or_default());
            } else if list.items.is_empty() {
                println!("no subscriptions");
            } else {
                list.items.iter().for_each(|item| println!("{}", line(item)));
            }
        }
        SubscriptionCommand::Pause { api, id } => {
            let item: SubscriptionItem =
                api.client().post(&format!("/api/v1/subscriptions/{}/pause", checked(id)?), &()).await?;
            println!("{}", line(&item));
        }
        SubscriptionCommand::Resume { api, id } => {
            let item: SubscriptionItem =
                api.client().post(&format!("/api/v1/subscriptions/{}/resume", checked(id)?), &()).await?;
            println!("{}", line(&item));
        }
        SubscriptionCommand::Remove { api, id } => {
            let id = checked(id)?;
            api.client().delete(&format!("/api/v1/subscriptions/{id}")).await?;
            println!("removed {id}");
        }
        SubscriptionCommand::Parked { api, id, json } => {
            let list: ParkedList = api.client().get(&format!("/api/v1/subscriptions/{}/parked", checked(id)?)).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list).unwrap_or_default());
            } else {
                println!("{} parked", list.total);
                for p in &list.items {
                    println!(
                        "{:>8}  {}  {:<36}  {}  attempts={}  {}",
                        p.seq, p.parked_at, p.event_type, p.event_id, p.attempts, p.reason
                    );
                }
            }
        }
        SubscriptionCommand::Replay { api, id, limit } => {
            let path = format!("/api/v1/subscriptions/{}/parked/replay?limit={limit}", checked(id)?);
            let answer: ReplayAnswer = api.client().post(&path, &()).await?;
            println!("delivered {}, still failing {}", answer.delivered, answer.failed);
            if answer.failed > 0 {
                return Err(SubscriptionCommandError::StillFailing(answer.failed));
            }
        }
    }
    Ok(())
}
