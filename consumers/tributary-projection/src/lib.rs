//! The projection contract, apart from any message broker: what a store or
//! index backend implements ([`Projection`]), what it is given ([`Batch`]),
//! and the one rule for what a batch still has to apply ([`Checkpoint`]).
//!
//! A projection owns its checkpoint: the next offset to read for each topic
//! partition, stored atomically with the data it wrote (in the same SQL
//! transaction, or in the same index commit). The consumer loop that feeds
//! projections (`tributary-projector`) starts from that checkpoint, so a
//! broker's committed offsets are never trusted for correctness.
//!
//! Delivery guarantee: effectively exactly-once per projection. A crash
//! before `apply` returns loses the whole batch's writes and its checkpoint
//! together, and the batch is read again; a crash after it re-reads nothing,
//! and what is re-read anyway is below the checkpoint and skipped
//! ([`Checkpoint::unapplied`]). Projections also ignore versions older than
//! or equal to what they hold ([`newest_per_record`] within a batch), so a
//! re-sent event (the producers are at-least-once) changes nothing.

mod checkpoint;
#[cfg(feature = "conformance")]
pub mod conformance;

use async_trait::async_trait;
use tributary_schemas::{Event, ManifestEvent, SyncRunEvent};

pub use checkpoint::{Checkpoint, Partition, newest_per_record};

/// What one message says.
// Nearly every message is a record: boxing it would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Record(Event),
    SyncRun(SyncRunEvent),
    /// Read only by consumers that subscribe to the manifests topic.
    Manifest(ManifestEvent),
    /// A message of the dead-letter topic, by its headers (read only by
    /// consumers that subscribe to it).
    DeadLetter(DeadLetterSeen),
}

/// What a dead-letter message says about itself: its stage, why, and
/// where the failed message came from (each when its headers say).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeadLetterSeen {
    /// `map`, `decode` or `store`; `unknown` when its headers are unreadable.
    pub stage: String,
    pub reason: String,
    /// The message key: the company the failed record belongs to.
    pub company_id: Option<String>,
    /// `map`: the connection and data type it came through.
    pub connection_id: Option<String>,
    pub data_type: Option<String>,
    /// `decode` and `store`: the projection that gave up, and where.
    pub projection: Option<String>,
    pub source_topic: Option<String>,
    pub source_partition: Option<i32>,
    pub source_offset: Option<i64>,
}

/// One decoded message and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub change: Change,
}

/// Messages to apply together, and the checkpoint after them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Batch {
    pub items: Vec<Item>,
    /// Next offset per partition this batch read from (including messages
    /// that could not be decoded, which are in the dead-letter topic).
    pub positions: Checkpoint,
}

impl Batch {
    /// `events` read in a row from one partition, the first at offset
    /// `first`, and the checkpoint just past them.
    pub fn of_events(topic: &str, partition: i32, first: i64, events: Vec<Event>) -> Batch {
        let next = first + events.len() as i64;
        let items = (first..)
            .zip(events)
            .map(|(offset, event)| Item {
                topic: topic.to_string(),
                partition,
                offset,
                change: Change::Record(event),
            })
            .collect();
        let mut positions = Checkpoint::new();
        positions.advance(topic, partition, next);
        Batch { items, positions }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    /// The store is unreachable or busy: the loop retries the same batch.
    #[error("{projection}: store unavailable: {source}")]
    Unavailable {
        projection: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The store refused the data itself (a value it cannot hold, a broken
    /// constraint): retrying cannot help. The loop applies the batch's items
    /// one by one, sends each refused one to the dead-letter topic and moves
    /// on, so one bad record never stops its partition.
    #[error("{projection}: refused: {source}")]
    Rejected {
        projection: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl ProjectionError {
    /// `Rejected` when the store refused the data itself, `Unavailable`
    /// otherwise (so the batch is retried).
    pub fn of_store<E>(projection: &'static str, refused_data: bool, source: E) -> Self
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        let source = Box::new(source);
        if refused_data {
            ProjectionError::Rejected { projection, source }
        } else {
            ProjectionError::Unavailable { projection, source }
        }
    }
}

/// A store or index kept up to date from the event topics.
#[async_trait]
pub trait Projection: Send {
    /// Stable name: the key of its checkpoint and its consumer group.
    fn name(&self) -> &'static str;

    /// The stored checkpoint; empty on first start.
    async fn checkpoint(&mut self) -> Result<Checkpoint, ProjectionError>;

    /// Applies `batch` and stores `batch.positions`, all or nothing.
    /// Items the stored checkpoint says were applied before must be skipped
    /// ([`Checkpoint::unapplied`]), so applying a batch twice changes nothing.
    async fn apply(&mut self, batch: &Batch) -> Result<(), ProjectionError>;
}

/// A boxed projection is a projection, so the runtime can pick a backend
/// from configuration.
#[async_trait]
impl<P: Projection + ?Sized> Projection for Box<P> {
    fn name(&self) -> &'static str {
        (**self).name()
    }

    async fn checkpoint(&mut self) -> Result<Checkpoint, ProjectionError> {
        (**self).checkpoint().await
    }

    async fn apply(&mut self, batch: &Batch) -> Result<(), ProjectionError> {
        (**self).apply(batch).await
    }
}
