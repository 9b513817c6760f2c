//! Outbound webhooks: subscribers are told when their data changed
//! instead of polling.
//!
//! - [`Outbox`] is a projection over the sync runs, connections and
//!   dead-letter topics: it turns what it reads into events
//!   ([`events`]) and queues one delivery per subscription that wants
//!   each, in the state store, in the same transaction as its checkpoint.
//!   So every event is queued exactly once, whatever crashes, and the
//!   dispatcher scales by partition like any projector.
//! - [`Dispatcher`] sends what is queued, signed the Standard Webhooks way
//!   ([`sign`]), and retries failures by a schedule spanning a day or more
//!   before giving up; every attempt is logged.
//! - [`Webhooks`] manages subscriptions and the delivery log for the API
//!   and the CLI: subscribe (the signing secret is shown once and stored
//!   sealed, like connection credentials), test, list deliveries, replay.

pub mod admin;
pub mod dispatch;
pub mod events;
pub mod metrics;
pub mod reconcile;
pub mod sign;

use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::Notify;
use tributary_producer::StateStore;
use tributary_projection::{Batch, Checkpoint, Projection, ProjectionError};
use tributary_schemas::{ManifestEvent, SyncRunEvent, Timestamp};

pub use admin::Webhooks;
pub use dispatch::{DeliveryStore, DispatchSettings, Dispatcher, HttpTransport, Transport};

/// The topics the dispatcher reads.
pub fn topics() -> Vec<String> {
    vec![
        SyncRunEvent::topic(),
        tributary_schemas::DataType::Connection.topic(),
        tributary_schemas::dead_letter_topic(),
        ManifestEvent::topic(),
    ]
}

/// What a subscription's sealed secret is bound to: a ciphertext copied
/// onto another row does not open.
pub(crate) fn secret_aad(subscription_id: &str) -> String {
    format!("webhook-subscription:{subscription_id}")
}

/// The dispatcher's time: the wall clock at its start plus tokio's time
/// since, so that a test under a paused tokio clock runs the retry
/// schedule of a day in an instant.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    at_start: Timestamp,
    start: tokio::time::Instant,
}

impl Clock {
    pub fn start() -> Clock {
        Clock {
            at_start: Timestamp::now(),
            start: tokio::time::Instant::now(),
        }
    }

    pub fn now(&self) -> Timestamp {
        let since = i64::try_from(self.start.elapsed().as_millis()).unwrap_or(i64::MAX / 2);
        Timestamp(self.at_start.millis() + since)
    }
}

/// Queues deliveries of what it reads (see the crate docs).
pub struct Outbox {
    state: StateStore,
    clock: Clock,
    /// What it queued, by the stored checkpoint and its own applies.
    applied: Checkpoint,
    /// Rung after queueing, so the dispatcher sends at once.
    wake: Arc<Notify>,
    /// How long after a manifest the store is checked against it.
    grace: std::time::Duration,
}

impl Outbox {
    pub fn new(
        state: StateStore,
        clock: Clock,
        wake: Arc<Notify>,
        grace: std::time::Duration,
    ) -> Outbox {
        Outbox {
            state,
            clock,
            applied: Checkpoint::new(),
            wake,
            grace,
        }
    }
}

const NAME: &str = "webhooks";

fn unavailable(e: tributary_producer::ProducerError) -> ProjectionError {
    ProjectionError::Unavailable {
        projection: NAME,
        source: Box::new(e),
    }
}

#[async_trait]
impl Projection for Outbox {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn checkpoint(&mut self) -> Result<Checkpoint, ProjectionError> {
        let mut checkpoint = Checkpoint::new();
        for (topic, partition, next) in
            self.state.webhook_checkpoint().await.map_err(unavailable)?
        {
            checkpoint.advance(&topic, partition, next);
        }
        self.applied = checkpoint.clone();
        Ok(checkpoint)
    }

    async fn apply(&mut self, batch: &Batch) -> Result<(), ProjectionError> {
        let now = self.clock.now();
        let occurrences = events::occurrences(self.applied.unapplied(batch));
        let due = Timestamp(now.millis() + i64::try_from(self.grace.as_millis()).unwrap_or(0));
        let checks = events::checks(self.applied.unapplied(batch), due);
        let positions: Vec<(String, i32, i64)> = batch
            .positions
            .iter()
            .map(|(topic, partition, next)| (topic.to_string(), partition, next))
            .collect();
        let queued = self
            .state
            .queue_occurrences(&occurrences, &checks, &positions, now)
            .await
            .map_err(unavailable)?;
        self.applied.advance_all(&batch.positions);
        if queued > 0 {
            metrics::queued(queued);
            self.wake.notify_one();
        }
        Ok(())
    }
}
