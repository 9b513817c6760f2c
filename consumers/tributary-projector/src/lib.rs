//! The consumer loop that feeds projections from the event topics:
//! assignment (all partitions from the projection's own checkpoint, or a
//! share in a consumer group), decoding through the schema registry,
//! batching, retries, lag, and dead letters for what cannot be decoded or
//! is refused by the store. The contract it drives (`Projection`, batches,
//! checkpoints) lives in `tributary-projection`, which knows no Kafka.
//!
//! Delivery guarantee: effectively exactly-once per projection (see
//! `tributary-projection`): the loop starts every partition at the
//! projection's checkpoint, never moves a position past a message that is
//! neither applied nor in the dead-letter topic, and retries a batch the
//! store could not take.

mod decode;
pub mod metrics;

pub use decode::{DecodeError, Decoder};

use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::BorrowedMessage;
use rdkafka::producer::FutureProducer;
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use tokio::sync::watch;
use tracing::Instrument;
use tributary_kafka::{DeadLetter, Origin};
use tributary_projection::{Batch, Checkpoint, Item, Partition, Projection, ProjectionError};
use tributary_schemas::{DeadLetterStage, dead_letter};

#[derive(Debug, thiserror::Error)]
pub enum ProjectorError {
    #[error("kafka: cannot {what}: {source}")]
    Kafka {
        what: String,
        #[source]
        source: rdkafka::error::KafkaError,
    },
    #[error("topic {0} does not exist")]
    MissingTopic(String),
    #[error("{projection} refused even a checkpoint alone: {reason}")]
    CheckpointRefused {
        projection: &'static str,
        reason: String,
    },
    #[error("a blocking task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// Wraps a Kafka error with what was being done.
fn kafka(what: impl Into<String>) -> impl FnOnce(rdkafka::error::KafkaError) -> ProjectorError {
    let what = what.into();
    move |source| ProjectorError::Kafka { what, source }
}

/// How the loop batches.
#[derive(Debug, Clone)]
pub struct ProjectorSettings {
    pub batch_size: usize,
    pub linger: Duration,
    pub topics: Vec<String>,
    pub assignment: Assignment,
}

/// Which partitions a projector reads.
#[derive(Debug, Clone, PartialEq)]
pub enum Assignment {
    /// All of them, from the projection's own checkpoint: for a projection
    /// only one process may write (a tantivy index, a SQLite file).
    All,
    /// A share, in the consumer group with this id, so that several
    /// processes split the partitions and rebalance when one comes or goes.
    /// The id must change when the store is replaced by an empty one, or the
    /// group's committed offsets would skip what the new store never saw.
    Group(String),
}

/// Logs what the group gives and takes away.
pub struct ProjectorContext {
    projection: &'static str,
}

impl rdkafka::ClientContext for ProjectorContext {}

impl rdkafka::consumer::ConsumerContext for ProjectorContext {
    fn post_rebalance(
        &self,
        _: &rdkafka::consumer::BaseConsumer<Self>,
        rebalance: &rdkafka::consumer::Rebalance<'_>,
    ) {
        match rebalance {
            rdkafka::consumer::Rebalance::Assign(tpl) => {
                let partitions: Vec<String> = tpl
                    .elements()
                    .iter()
                    .map(|e| format!("{}/{}", e.topic(), e.partition()))
                    .collect();
                tracing::info!(projection = self.projection, count = partitions.len(), partitions = ?partitions, "partitions assigned");
            }
            rdkafka::consumer::Rebalance::Revoke(tpl) => {
                tracing::info!(
                    projection = self.projection,
                    count = tpl.count(),
                    "partitions revoked"
                );
            }
            rdkafka::consumer::Rebalance::Error(e) => {
                metrics::error(self.projection, "rebalance", &e.to_string());
            }
        }
    }
}

/// Tells the group how far this member got, so a partition's next owner
/// starts near there. Only a hint: correctness rests on the projection's
/// checkpoint, so a failed commit (say, mid-rebalance) is harmless.
fn commit_hint(consumer: &StreamConsumer<ProjectorContext>, positions: &Checkpoint) {
    let mut tpl = TopicPartitionList::new();
    for (topic, partition, next) in positions.iter() {
        if tpl
            .add_partition_offset(topic, partition, Offset::Offset(next))
            .is_err()
        {
            return;
        }
    }
    if let Err(e) = consumer.commit(&tpl, rdkafka::consumer::CommitMode::Async) {
        tracing::debug!(error = %e, "offset commit hint failed");
    }
}

/// A message as it was read, kept until its batch is applied, so that a
/// record the store refuses can still be dead-lettered byte for byte.
#[derive(Debug, Clone)]
struct Raw {
    topic: String,
    partition: i32,
    offset: i64,
    key: Option<Vec<u8>>,
    payload: Vec<u8>,
    replays: u32,
}

impl Raw {
    fn of(message: &BorrowedMessage<'_>) -> Raw {
        let replays = tributary_kafka::read_headers(message)
            .get(dead_letter::REPLAYS)
            .and_then(|r| r.parse().ok())
            .unwrap_or(0);
        Raw {
            topic: message.topic().to_string(),
            partition: message.partition(),
            offset: message.offset(),
            key: message.key().map(<[u8]>::to_vec),
            payload: message.payload().unwrap_or_default().to_vec(),
            replays,
        }
    }
}

/// Sends messages a projection cannot decode, or its store refuses, to the
/// dead-letter topic with where they came from, so the partition keeps
/// flowing and an operator can inspect and replay them (`tributary dlq`).
struct DeadLetters {
    producer: FutureProducer,
    projection: &'static str,
    max_message_bytes: usize,
}

impl DeadLetters {
    /// Sends until the broker takes it; false when shutdown came first. The
    /// position must not move past a message that is nowhere.
    async fn send_until_done(
        &self,
        raw: &Raw,
        stage: DeadLetterStage,
        reason: &str,
        shutdown: &mut watch::Receiver<bool>,
    ) -> bool {
        let letter = DeadLetter {
            stage,
            reason: reason.to_string(),
            origin: Origin::Topic {
                projection: self.projection.to_string(),
                topic: raw.topic.clone(),
                partition: raw.partition,
                offset: raw.offset,
            },
            replays: raw.replays,
            key: raw.key.clone(),
            payload: raw.payload.clone(),
            cut: None,
        }
        .fit(self.max_message_bytes);
        loop {
            match letter.send(&self.producer).await {
                Ok(()) => {
                    metrics::dead_lettered(
                        self.projection,
                        stage.as_str(),
                        &raw.topic,
                        reason,
                        raw.partition,
                        raw.offset,
                    );
                    return true;
                }
                Err(e) => metrics::error(self.projection, "dead_letter", &e),
            }
            if wait_or_shutdown(shutdown, Duration::from_secs(1)).await {
                return false;
            }
        }
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
    let group_id = match &settings.assignment {
        Assignment::All => format!("tributary-projector-{name}"),
        Assignment::Group(id) => id.clone(),
    };
    let config = tributary_kafka::consumer_config(client, &group_id);
    let consumer: Arc<StreamConsumer<ProjectorContext>> = Arc::new(
        config
            .create_with_context(ProjectorContext { projection: name })
            .map_err(kafka("create consumer"))?,
    );
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
    match &settings.assignment {
        Assignment::All => {
            // Every partition, from exactly where the projection's checkpoint says.
            let partitions = partitions_of(&consumer, &settings.topics).await?;
            let mut assignment = TopicPartitionList::new();
            for (topic, partition) in &partitions {
                let offset = match checkpoint.next_offset(topic, *partition) {
                    Some(next) => Offset::Offset(next),
                    None => Offset::Beginning,
                };
                assignment
                    .add_partition_offset(topic, *partition, offset)
                    .map_err(kafka(format!("assign {topic}/{partition}")))?;
            }
            consumer.assign(&assignment).map_err(kafka("assign"))?;
            tracing::info!(
                projection = name,
                partitions = partitions.len(),
                resumed = checkpoint.len(),
                "projector started"
            );
        }
        Assignment::Group(_) => {
            // The group splits the partitions; each starts at the group's
            // committed offset, which never passes the projection's
            // checkpoint (it is committed after it), so anything read twice
            // is below the checkpoint and skipped by the projection.
            let topics: Vec<&str> = settings.topics.iter().map(String::as_str).collect();
            consumer.subscribe(&topics).map_err(kafka("subscribe"))?;
            tracing::info!(projection = name, group = %group_id, "projector joined its consumer group");
        }
    }
    let decoder = Decoder::new(registry_url);
    let dead_letters = DeadLetters {
        producer: tributary_kafka::producer_config(client)
            .create()
            .map_err(kafka("create the dead-letter producer"))?,
        projection: name,
        max_message_bytes: tributary_kafka::max_message_bytes(client),
    };
    let mut positions = checkpoint;
    let mut last_lag = Instant::now();
    loop {
        let Some((batch, raws)) =
            next_batch(&consumer, &decoder, &dead_letters, &settings, &mut shutdown).await?
        else {
            return Ok(());
        };
        if batch.positions.is_empty() {
            continue;
        }
        let started = Instant::now();
        let span = tracing::info_span!("apply", projection = name, items = batch.items.len(), positions = ?batch.positions);
        if !apply_until_done(&mut projection, &batch, &raws, &dead_letters, &mut shutdown)
            .instrument(span)
            .await?
        {
            return Ok(());
        }
        metrics::applied(name, batch.items.len(), started.elapsed().as_secs_f64());
        if let Assignment::Group(_) = settings.assignment {
            commit_hint(&consumer, &batch.positions);
        }
        positions.advance_all(&batch.positions);
        if last_lag.elapsed() > Duration::from_secs(5) {
            last_lag = Instant::now();
            record_lag(&consumer, name, &positions).await;
        }
    }
}

/// What became of one apply.
enum Outcome {
    Applied,
    /// The store refused the data; the reason.
    Rejected(String),
    Shutdown,
}

/// Applies `batch`, retrying while the store is unavailable.
async fn apply_retrying<P: Projection>(
    projection: &mut P,
    batch: &Batch,
    shutdown: &mut watch::Receiver<bool>,
) -> Outcome {
    loop {
        match projection.apply(batch).await {
            Ok(()) => return Outcome::Applied,
            Err(e @ ProjectionError::Rejected { .. }) => return Outcome::Rejected(e.to_string()),
            Err(e) => {
                metrics::error(projection.name(), "apply", &e.to_string());
                if wait_or_shutdown(shutdown, Duration::from_secs(1)).await {
                    return Outcome::Shutdown;
                }
            }
        }
    }
}

/// Applies `batch` (whose items came from `raws`, one for one): a batch is
/// never skipped. When the store refuses it, the items are applied one at a
/// time and each refused one goes to the dead-letter topic (stage `store`)
/// before the checkpoint moves past it. False when shutdown came first.
async fn apply_until_done<P: Projection>(
    projection: &mut P,
    batch: &Batch,
    raws: &[Raw],
    dead_letters: &DeadLetters,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<bool, ProjectorError> {
    let reason = match apply_retrying(projection, batch, shutdown).await {
        Outcome::Applied => return Ok(true),
        Outcome::Shutdown => return Ok(false),
        Outcome::Rejected(reason) => reason,
    };
    let name = projection.name();
    tracing::warn!(projection = name, items = batch.items.len(), error = %reason, "store refused a batch; applying its items one by one");
    for (item, raw) in batch.items.iter().zip(raws) {
        let mut position = Checkpoint::new();
        position.advance(&item.topic, item.partition, item.offset + 1);
        let one = Batch {
            items: vec![item.clone()],
            positions: position.clone(),
        };
        match apply_retrying(projection, &one, shutdown).await {
            Outcome::Applied => continue,
            Outcome::Shutdown => return Ok(false),
            Outcome::Rejected(reason) => {
                if !dead_letters
                    .send_until_done(raw, DeadLetterStage::Store, &reason, shutdown)
                    .await
                {
                    return Ok(false);
                }
            }
        }
        if !apply_positions(projection, position, shutdown).await? {
            return Ok(false);
        }
    }
    // Messages dead-lettered at decode have positions but no items.
    apply_positions(projection, batch.positions.clone(), shutdown).await
}

/// Stores `positions` alone, moving the checkpoint past messages that are
/// in the dead-letter topic. A store that refuses even that is broken.
async fn apply_positions<P: Projection>(
    projection: &mut P,
    positions: Checkpoint,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<bool, ProjectorError> {
    let empty = Batch {
        items: Vec::new(),
        positions,
    };
    match apply_retrying(projection, &empty, shutdown).await {
        Outcome::Applied => Ok(true),
        Outcome::Shutdown => Ok(false),
        Outcome::Rejected(reason) => Err(ProjectorError::CheckpointRefused {
            projection: projection.name(),
            reason,
        }),
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
/// first one, with the raw message behind each item. `None` on shutdown.
async fn next_batch(
    consumer: &StreamConsumer<ProjectorContext>,
    decoder: &Decoder,
    dead_letters: &DeadLetters,
    settings: &ProjectorSettings,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<Option<(Batch, Vec<Raw>)>, ProjectorError> {
    let name = dead_letters.projection;
    let mut batch = Batch::default();
    let mut raws = Vec::new();
    let first = tokio::select! {
        m = consumer.recv() => m,
        _ = shutdown.changed() => return Ok(None),
    };
    let deadline = tokio::time::Instant::now() + settings.linger;
    let mut next = Some(first);
    while let Some(received) = next {
        let message = match received {
            Ok(m) => m,
            Err(e) => {
                // The broker went away or a fetch failed: librdkafka
                // reconnects by itself; keep what this batch has so far.
                metrics::error(name, "receive", &e.to_string());
                if batch.positions.is_empty()
                    && wait_or_shutdown(shutdown, Duration::from_millis(500)).await
                {
                    return Ok(None);
                }
                break;
            }
        };
        let raw = Raw::of(&message);
        let (topic, partition, offset) = (raw.topic.clone(), raw.partition, raw.offset);
        loop {
            match decoder.decode(&topic, message.payload()).await {
                Ok(change) => {
                    batch.items.push(Item {
                        topic: topic.clone(),
                        partition,
                        offset,
                        change,
                    });
                    raws.push(raw);
                    break;
                }
                Err(DecodeError::Poison(reason)) => {
                    // Kept in the dead-letter topic before the position moves past it.
                    if !dead_letters
                        .send_until_done(&raw, DeadLetterStage::Decode, &reason, shutdown)
                        .await
                    {
                        return Ok(None);
                    }
                    break;
                }
                Err(DecodeError::Retry(reason)) => metrics::error(
                    name,
                    "decode",
                    &format!("{topic}/{partition}@{offset}: {reason}"),
                ),
            }
            if wait_or_shutdown(shutdown, Duration::from_secs(1)).await {
                return Ok(None);
            }
        }
        batch.positions.advance(&topic, partition, offset + 1);
        if batch.items.len() >= settings.batch_size {
            break;
        }
        next = tokio::time::timeout_at(deadline, consumer.recv())
            .await
            .ok();
    }
    Ok(Some((batch, raws)))
}

async fn partitions_of(
    consumer: &Arc<StreamConsumer<ProjectorContext>>,
    topics: &[String],
) -> Result<Vec<Partition>, ProjectorError> {
    let consumer = Arc::clone(consumer);
    let topics = topics.to_vec();
    tokio::task::spawn_blocking(move || {
        let metadata = consumer
            .fetch_metadata(None, Duration::from_secs(10))
            .map_err(kafka("fetch metadata"))?;
        let mut out = Vec::new();
        for topic in &topics {
            let found = metadata
                .topics()
                .iter()
                .find(|t| t.name() == topic)
                .filter(|t| !t.partitions().is_empty())
                .ok_or_else(|| ProjectorError::MissingTopic(topic.clone()))?;
            out.extend(found.partitions().iter().map(|p| (topic.clone(), p.id())));
        }
        Ok(out)
    })
    .await?
}

async fn record_lag(
    consumer: &Arc<StreamConsumer<ProjectorContext>>,
    name: &'static str,
    positions: &Checkpoint,
) {
    let consumer = Arc::clone(consumer);
    let positions = positions.clone();
    let _ = tokio::task::spawn_blocking(move || {
        // Only partitions this member still owns.
        let owned: Vec<Partition> = match consumer.assignment() {
            Ok(tpl) => tpl
                .elements()
                .iter()
                .map(|e| (e.topic().to_string(), e.partition()))
                .collect(),
            Err(_) => return,
        };
        let mut lag = 0i64;
        let owns =
            |topic: &str, partition: i32| owned.iter().any(|(t, p)| t == topic && *p == partition);
        for (topic, partition, next) in positions.iter().filter(|(t, p, _)| owns(t, *p)) {
            if let Ok((_, high)) =
                consumer.fetch_watermarks(topic, partition, Duration::from_secs(2))
            {
                lag += (high - next).max(0);
            }
        }
        metrics::lag(name, lag);
    })
    .await;
}
