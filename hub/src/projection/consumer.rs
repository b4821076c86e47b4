//! The log consumers of the projection: the live runner's, which notices when it broke (a
//! delivery lost in flight, a missed heartbeat), and the plain ones of the catch-up and the
//! views' replay.

use std::time::Duration;

use async_nats::jetstream::{
    self,
    consumer::{pull, AckPolicy, DeliverPolicy},
};

use super::runner::{consumer_error, ProjectorError, ProjectorSettings};

/// Pull requests ask for this many projection batches at a time. The client asks again when half
/// of a request is left undelivered to the projection, so the server keeps delivering while a
/// batch is applied. One: two (10,000 messages pulled ahead) held ~7 MB more at the peak of a
/// rebuild, which was no faster (docs/performance.md, "Memory").
pub(super) const PULL_AHEAD: usize = 1;

/// Idle heartbeat of the live consumer's pull requests; two missed in a row break the consumer.
pub(super) const HEARTBEAT: Duration = Duration::from_secs(2);

/// Pause between attempts to open the live consumer again (no quorum during an election).
pub(super) const REOPEN_PAUSE: Duration = Duration::from_millis(500);

/// An ephemeral pull consumer on the log from `after` + 1, the one setup of the live runner, the
/// rebuild's catch-up and the views' replay. `live` (the largest batch) makes it the runner's:
/// acked (all up to the last of each batch) and kept while the hub is away for a while.
pub(super) async fn log_consumer(
    stream: &jetstream::stream::Stream,
    after: u64,
    live: Option<usize>,
    description: &str,
) -> Result<jetstream::consumer::Consumer<pull::Config>, ProjectorError> {
    let deliver_policy =
        if after == 0 { DeliverPolicy::All } else { DeliverPolicy::ByStartSequence { start_sequence: after + 1 } };
    let config = match live {
        Some(batch_max) => pull::Config {
            ack_policy: AckPolicy::All,
            max_ack_pending: (batch_max * 4) as i64,
            ack_wait: Duration::from_secs(60),
            inactive_threshold: Duration::from_secs(300),
            ..Default::default()
        },
        None => pull::Config {
            ack_policy: AckPolicy::None,
            inactive_threshold: Duration::from_secs(60),
            ..Default::default()
        },
    };
    stream
        .create_consumer(pull::Config { deliver_policy, description: Some(description.into()), ..config })
        .await
        .map_err(consumer_error)
}

/// The live runner's consumer and its pull, with what it takes to notice that it broke.
///
/// The checkpoint skips whatever is delivered at or below it, so a message lost in flight (a
/// pull answered while the hub's connection to a dying node went down) must not be passed by a
/// later one: the consumer numbers its deliveries, and a number skipped means a lost delivery.
/// A missed heartbeat (the pull request or the consumer, an R1 ephemeral, lived on a node that
/// went away) breaks it too. Either way the runner opens a new one at checkpoint + 1.
pub(super) struct LiveConsumer {
    name: String,
    pub(super) messages: pull::Stream,
    next_delivery: u64,
}

/// Deliveries of the live consumer that never arrived: the consumer is broken and reopened.
#[derive(Debug, thiserror::Error)]
#[error("deliveries {first}..{last} lost in flight (stream sequence {arrived} arrived)")]
pub(super) struct LostDeliveries {
    first: u64,
    last: u64,
    /// The stream sequence of the delivery that came after the gap.
    arrived: u64,
}

impl LiveConsumer {
    pub(super) async fn open(
        stream: &jetstream::stream::Stream,
        checkpoint: u64,
        settings: ProjectorSettings,
    ) -> Result<Self, ProjectorError> {
        let consumer = log_consumer(stream, checkpoint, Some(settings.batch_max), "sgd-hub projection runner").await?;
        let name = consumer.cached_info().name.clone();
        let messages = consumer
            .stream()
            .max_messages_per_batch(settings.batch_max * PULL_AHEAD)
            .heartbeat(HEARTBEAT)
            .expires(Duration::from_secs(30))
            .messages()
            .await
            .map_err(consumer_error)?;
        Ok(Self { name, messages, next_delivery: 1 })
    }

    /// Whether `message` is the next delivery (a redelivery of an earlier one is fine).
    pub(super) fn check(&mut self, message: &jetstream::Message) -> Result<(), LostDeliveries> {
        let Ok(info) = message.info() else { return Ok(()) };
        if info.consumer_sequence > self.next_delivery {
            return Err(LostDeliveries {
                first: self.next_delivery,
                last: info.consumer_sequence - 1,
                arrived: info.stream_sequence,
            });
        }
        self.next_delivery = self.next_delivery.max(info.consumer_sequence + 1);
        Ok(())
    }

    /// Deletes the consumer in the background, where its node still answers (otherwise its
    /// inactivity threshold removes it).
    pub(super) fn retire(&self, stream: &jetstream::stream::Stream) {
        let (stream, name) = (stream.clone(), self.name.clone());
        if !name.is_empty() {
            tokio::spawn(async move {
                let _ = tokio::time::timeout(Duration::from_secs(10), stream.delete_consumer(&name)).await;
            });
        }
    }
}
