//! Projections of the event topics, and the consumer loop that feeds them.
//!
//! A [`Projection`] owns its checkpoint: the next offset to read for each
//! topic partition, stored atomically with the data it wrote (in the same SQL
//! transaction, or in the same index commit). On start the loop asks the
//! projection for its checkpoint and assigns exactly those positions, so
//! Kafka's committed offsets are never trusted for correctness.
//!
//! Delivery guarantee: effectively exactly-once per projection. A crash
//! before `apply` returns loses the whole batch's writes and its checkpoint
//! together, and the batch is read again; a crash after it re-reads nothing.
//! Projections also ignore versions older than what they hold, so a re-sent
//! event (the producers are at-least-once) changes nothing.

#[cfg(feature = "conformance")]
pub mod conformance;
pub mod metrics;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use schema_registry_converter::async_impl::avro::AvroDecoder;
use schema_registry_converter::async_impl::schema_registry::SrSettings;
use tokio::sync::watch;
use tracing::Instrument;
use tributary_schemas::{DataType, Event, SyncRunEvent};

/// A topic partition.
pub type Partition = (String, i32);

/// Next offset to read, per partition.
pub type Checkpoint = BTreeMap<Partition, i64>;

/// What one message says.
// Nearly every message is a record: boxing it would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Record(Event),
    SyncRun(SyncRunEvent),
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
    /// that could not be decoded, which are skipped with an error).
    pub positions: Checkpoint,
}

#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    /// The store is unreachable or busy: the loop retries the same batch.
    #[error("{projection}: store unavailable: {message}")]
    Unavailable { projection: String, message: String },
    /// The store refused the data itself: the loop stops rather than skip
    /// or corrupt anything.
    #[error("{projection}: {message}")]
    Fatal { projection: String, message: String },
}

#[derive(Debug, thiserror::Error)]
pub enum ProjectorError {
    #[error("kafka: {0}")]
    Kafka(String),
    #[error(transparent)]
    Projection(#[from] ProjectionError),
}

/// A store or index kept up to date from the event topics.
#[async_trait]
pub trait Projection: Send {
    /// Stable name: the key of its checkpoint and its consumer group.
    fn name(&self) -> &'static str;

    /// The stored checkpoint; empty on first start.
    async fn checkpoint(&mut self) -> Result<Checkpoint, ProjectionError>;

    /// Applies `batch` and stores `batch.positions`, all or nothing.
    /// Items at offsets below the stored checkpoint were applied before and
    /// must be skipped, so applying a batch twice changes nothing.
    async fn apply(&mut self, batch: &Batch) -> Result<(), ProjectionError>;
}

/// How the loop batches.
#[derive(Debug, Clone)]
pub struct ProjectorSettings {
    pub batch_size: usize,
    pub linger: Duration,
    pub topics: Vec<String>,
}

/// Decodes wire-format messages through the schema registry.
pub struct Decoder {
    inner: AvroDecoder,
}

impl Decoder {
    pub fn new(registry_url: &str) -> Self {
        Decoder {
            inner: AvroDecoder::new(SrSettings::new(
                registry_url.trim_end_matches('/').to_string(),
            )),
        }
    }

    /// Decodes one message of `topic`.
    pub async fn decode(&self, topic: &str, payload: Option<&[u8]>) -> Result<Change, String> {
        let payload = payload.ok_or("message has no value")?;
        if payload.len() < 5 || payload[0] != 0 {
            return Err(format!(
                "not in the Confluent wire format ({} bytes)",
                payload.len()
            ));
        }
        let decoded = self
            .inner
            .decode(Some(payload))
            .await
            .map_err(|e| e.to_string())?;
        if topic == SyncRunEvent::topic() {
            return SyncRunEvent::from_avro(&decoded.value)
                .map(Change::SyncRun)
                .map_err(|e| e.to_string());
        }
        let data_type =
            DataType::from_topic(topic).ok_or_else(|| format!("unknown topic {topic}"))?;
        Event::from_avro(data_type, &decoded.value)
            .map(Change::Record)
            .map_err(|e| e.to_string())
    }
}

/// Consumes `settings.topics` into `projection` until `shutdown` turns true.
pub async fn run<P: Projection>(
    client: &ClientConfig,
    registry_url: &str,
    mut projection: P,
    settings: ProjectorSettings,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), ProjectorError> {
    let name = projection.name();
    let mut config = client.clone();
    config
        .set("group.id", format!("tributary-projector-{name}"))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false");
    if config.get("fetch.wait.max.ms").is_none() {
        config.set("fetch.wait.max.ms", "50");
    }
    let consumer: Arc<StreamConsumer> = Arc::new(
        config
            .create()
            .map_err(|e| ProjectorError::Kafka(format!("create consumer: {e}")))?,
    );
    let partitions = partitions_of(&consumer, &settings.topics).await?;
    let checkpoint = loop {
        match projection.checkpoint().await {
            Ok(c) => break c,
            Err(e) => {
                tracing::warn!(projection = name, error = %e, "cannot read checkpoint; retrying");
                if wait_or_shutdown(&mut shutdown, Duration::from_secs(1)).await {
                    return Ok(());
                }
            }
        }
    };
    let mut assignment = TopicPartitionList::new();
    for (topic, partition) in &partitions {
        let offset = match checkpoint.get(&(topic.clone(), *partition)) {
            Some(next) => Offset::Offset(*next),
            None => Offset::Beginning,
        };
        assignment
            .add_partition_offset(topic, *partition, offset)
            .map_err(|e| ProjectorError::Kafka(format!("assign {topic}/{partition}: {e}")))?;
    }
    consumer
        .assign(&assignment)
        .map_err(|e| ProjectorError::Kafka(format!("assign: {e}")))?;
    tracing::info!(
        projection = name,
        partitions = partitions.len(),
        resumed = checkpoint.len(),
        "projector started"
    );

    let decoder = Decoder::new(registry_url);
    let mut positions = checkpoint;
    let mut last_lag = Instant::now();
    loop {
        let Some(batch) = next_batch(&consumer, &decoder, &settings, &mut shutdown, name).await?
        else {
            return Ok(());
        };
        if batch.positions.is_empty() {
            continue;
        }
        let started = Instant::now();
        let span = tracing::info_span!("apply", projection = name, items = batch.items.len(), positions = ?batch.positions);
        if !apply_until_done(&mut projection, &batch, &mut shutdown)
            .instrument(span)
            .await?
        {
            return Ok(());
        }
        metrics::applied(name, batch.items.len(), started.elapsed().as_secs_f64());
        positions.extend(batch.positions.clone());
        if last_lag.elapsed() > Duration::from_secs(5) {
            last_lag = Instant::now();
            record_lag(&consumer, name, &positions).await;
        }
    }
}

/// Applies `batch`, retrying while the store is unavailable: a batch is
/// never skipped. False when shutdown came first.
async fn apply_until_done<P: Projection>(
    projection: &mut P,
    batch: &Batch,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<bool, ProjectorError> {
    loop {
        match projection.apply(batch).await {
            Ok(()) => return Ok(true),
            Err(e @ ProjectionError::Fatal { .. }) => return Err(e.into()),
            Err(e) => {
                metrics::error(projection.name(), "apply", &e.to_string());
                if wait_or_shutdown(shutdown, Duration::from_secs(1)).await {
                    return Ok(false);
                }
            }
        }
    }
}

/// Waits `delay`; true when shutdown was asked for meanwhile.
async fn wait_or_shutdown(shutdown: &mut watch::Receiver<bool>, delay: Duration) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(delay) => {}
        _ = shutdown.changed() => {}
    }
    *shutdown.borrow()
}

/// Reads up to `batch_size` messages, waiting at most `linger` after the
/// first one. `None` on shutdown.
async fn next_batch(
    consumer: &StreamConsumer,
    decoder: &Decoder,
    settings: &ProjectorSettings,
    shutdown: &mut watch::Receiver<bool>,
    name: &'static str,
) -> Result<Option<Batch>, ProjectorError> {
    let mut batch = Batch::default();
    let first = tokio::select! {
        m = consumer.recv() => m,
        _ = shutdown.changed() => return Ok(None),
    };
    let deadline = tokio::time::Instant::now() + settings.linger;
    let mut next = Some(first);
    while let Some(received) = next {
        let message = received.map_err(|e| ProjectorError::Kafka(format!("receive: {e}")))?;
        let (topic, partition, offset) = (
            message.topic().to_string(),
            message.partition(),
            message.offset(),
        );
        match decoder.decode(&topic, message.payload()).await {
            Ok(change) => batch.items.push(Item {
                topic: topic.clone(),
                partition,
                offset,
                change,
            }),
            Err(reason) => {
                // The message stays in Kafka at this offset; the log names it.
                metrics::error(
                    name,
                    "decode",
                    &format!("{topic}/{partition}@{offset}: {reason}"),
                );
            }
        }
        batch.positions.insert((topic, partition), offset + 1);
        if batch.items.len() >= settings.batch_size {
            break;
        }
        next = tokio::time::timeout_at(deadline, consumer.recv())
            .await
            .ok();
    }
    Ok(Some(batch))
}

async fn partitions_of(
    consumer: &Arc<StreamConsumer>,
    topics: &[String],
) -> Result<Vec<Partition>, ProjectorError> {
    let consumer = Arc::clone(consumer);
    let topics = topics.to_vec();
    tokio::task::spawn_blocking(move || {
        let metadata = consumer
            .fetch_metadata(None, Duration::from_secs(10))
            .map_err(|e| ProjectorError::Kafka(format!("metadata: {e}")))?;
        let mut out = Vec::new();
        for topic in &topics {
            let found = metadata
                .topics()
                .iter()
                .find(|t| t.name() == topic)
                .filter(|t| !t.partitions().is_empty())
                .ok_or_else(|| ProjectorError::Kafka(format!("topic {topic} does not exist")))?;
            out.extend(found.partitions().iter().map(|p| (topic.clone(), p.id())));
        }
        Ok(out)
    })
    .await
    .map_err(|e| ProjectorError::Kafka(e.to_string()))?
}

async fn record_lag(consumer: &Arc<StreamConsumer>, name: &'static str, positions: &Checkpoint) {
    let consumer = Arc::clone(consumer);
    let positions = positions.clone();
    let _ = tokio::task::spawn_blocking(move || {
        let mut lag = 0i64;
        for ((topic, partition), next) in &positions {
            if let Ok((_, high)) =
                consumer.fetch_watermarks(topic, *partition, Duration::from_secs(2))
            {
                lag += (high - next).max(0);
            }
        }
        metrics::lag(name, lag);
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn refuses_what_is_not_the_confluent_wire_format() {
        // No registry is reachable: these must fail before asking it.
        let decoder = Decoder::new("http://127.0.0.1:1");
        let topic = DataType::Invoice.topic();
        for (payload, words) in [
            (None, "no value"),
            (
                Some(&b"\x00\x00\x01"[..]),
                "not in the Confluent wire format (3 bytes)",
            ),
            (
                Some(&b"{\"json\": true}"[..]),
                "not in the Confluent wire format",
            ),
        ] {
            let err = decoder.decode(&topic, payload).await.unwrap_err();
            assert!(err.contains(words), "{err}");
        }
    }
}
