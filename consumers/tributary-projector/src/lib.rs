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

/// Histogram of freshness by stage (label `stage`; `apply` also by
/// `projection`), in seconds.
pub const FRESHNESS_STAGE: &str = "tributary_freshness_stage_seconds";
/// Histogram of freshness from a change at the source to its commit in a
/// projection (label `projection`), in seconds.
pub const FRESHNESS: &str = "tributary_freshness_seconds";

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
use tributary_projection::{
    Batch, Change, Checkpoint, DeadLetterSeen, Item, Partition, Projection, ProjectionError,
};
use tributary_schemas::{DataType, DeadLetterStage, dead_letter};

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
    #[error("no projection to feed")]
    NoProjection,
    #[error("{0}: a consumer group feeds one projection (an index reads every partition)")]
    GroupOfMany(String),
}

/// Wraps a Kafka error with what was being done.
fn kafka(what: impl Into<String>) -> impl FnOnce(rdkafka::error::KafkaError) -> ProjectorError {
    let what = what.into();
    move |source| ProjectorError::Kafka { what, source }
}

/// How the loop batches, what it reads, and when it rests.
#[derive(Debug, Clone)]
pub struct ProjectorSettings {
    pub batch_size: usize,
    pub linger: Duration,
    pub topics: Vec<String>,
    pub assignment: Assignment,
    /// When to stop fetching: `None` fetches all the time.
    pub rest: Option<Rest>,
}

/// Resting: with nothing read for `after` and nothing left to read (the
/// broker's partition ends asked in one request), the loop gives up its
/// partitions (no fetch reaches the broker) until `wake` rings (this
/// process published something), or until a look every `poll` at the
/// partition ends finds something (publishers in other processes ring no
/// bell here), then takes them again where it stopped. Only when it reads
/// every partition (`Assignment::All`).
#[derive(Debug, Clone)]
pub struct Rest {
    pub after: Duration,
    pub poll: Duration,
    pub wake: tributary_kafka::Listener,
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
    projection: String,
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
                tracing::info!(projection = %self.projection, count = partitions.len(), partitions = ?partitions, "partitions assigned");
            }
            rdkafka::consumer::Rebalance::Revoke(tpl) => {
                tracing::info!(
                    projection = %self.projection,
                    count = tpl.count(),
                    "partitions revoked"
                );
            }
            rdkafka::consumer::Rebalance::Error(e) => {
                metrics::error(&self.projection, "rebalance", &e.to_string());
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
///
/// Its producer is made on first use: most runs dead-letter nothing, and an
/// idle producer still costs its polling thread's wake-ups.
struct DeadLetters {
    config: ClientConfig,
    producer: std::sync::OnceLock<FutureProducer>,
    max_message_bytes: usize,
}

impl DeadLetters {
    fn new(client: &ClientConfig) -> DeadLetters {
        DeadLetters {
            config: tributary_kafka::producer_config(client),
            producer: std::sync::OnceLock::new(),
            max_message_bytes: tributary_kafka::max_message_bytes(client),
        }
    }

    fn producer(&self) -> Result<&FutureProducer, String> {
        if let Some(producer) = self.producer.get() {
            return Ok(producer);
        }
        let made = self
            .config
            .create()
            .map_err(|e| format!("cannot create the dead-letter producer: {e}"))?;
        Ok(self.producer.get_or_init(|| made))
    }

    /// Sends until the broker takes it; false when shutdown came first. The
    /// position must not move past a message that is nowhere.
    async fn send_until_done(
        &self,
        projection: &str,
        raw: &Raw,
        stage: DeadLetterStage,
        reason: &str,
        shutdown: &mut watch::Receiver<bool>,
    ) -> bool {
        let letter = DeadLetter {
            stage,
            reason: reason.to_string(),
            origin: Origin::Topic {
                projection: projection.to_string(),
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
            let sent = match self.producer() {
                Ok(producer) => letter.send(producer).await,
                Err(e) => Err(e),
            };
            match sent {
                Ok(()) => {
                    metrics::dead_lettered(
                        projection,
                        stage.as_str(),
                        &raw.topic,
                        reason,
                        raw.partition,
                        raw.offset,
                    );
                    return true;
                }
                Err(e) => metrics::error(projection, "dead_letter", &e),
            }
            if wait_or_shutdown(shutdown, Duration::from_secs(1)).await {
                return false;
            }
        }
    }
}

/// Consumes `settings.topics` into every one of `projections` until
/// `shutdown` turns true: one fetch and one decode per message, however
/// many projections. Each keeps its own checkpoint (so either can be
/// rebuilt alone): reading starts where all of them have applied, and each
/// skips what it applied before. A consumer group (`Assignment::Group`)
/// takes exactly one projection.
pub async fn run<P: Projection>(
    client: &ClientConfig,
    registry_url: &str,
    mut projections: Vec<P>,
    settings: ProjectorSettings,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), ProjectorError> {
    let names: Vec<&'static str> = projections.iter().map(|p| p.name()).collect();
    let name = names.join("+");
    let group_id = match &settings.assignment {
        _ if names.is_empty() => return Err(ProjectorError::NoProjection),
        Assignment::All => format!("tributary-projector-{name}"),
        Assignment::Group(_) if names.len() > 1 => {
            return Err(ProjectorError::GroupOfMany(name));
        }
        Assignment::Group(id) => id.clone(),
    };
    let config = tributary_kafka::consumer_config(client, &group_id);
    let consumer: Arc<StreamConsumer<ProjectorContext>> = Arc::new(
        config
            .create_with_context(ProjectorContext {
                projection: name.clone(),
            })
            .map_err(kafka("create consumer"))?,
    );
    let mut checkpoint: Option<Checkpoint> = None;
    for projection in &mut projections {
        let own = loop {
            match projection.checkpoint().await {
                Ok(c) => break c,
                Err(e) => {
                    tracing::warn!(projection = projection.name(), error = %e, "cannot read checkpoint; retrying");
                    if wait_or_shutdown(&mut shutdown, Duration::from_secs(1)).await {
                        return Ok(());
                    }
                }
            }
        };
        checkpoint = Some(match checkpoint {
            None => own,
            Some(so_far) => so_far.common(&own),
        });
    }
    let checkpoint = checkpoint.unwrap_or_default();
    // Every partition (`Assignment::All`); none when the group assigns.
    let mut partitions = Vec::new();
    match &settings.assignment {
        Assignment::All => {
            // Every partition, from exactly where the checkpoints say.
            partitions = partitions_of(&consumer, &settings.topics).await?;
            consumer
                .assign(&assignment(&partitions, &checkpoint)?)
                .map_err(kafka("assign"))?;
            tracing::info!(
                projection = %name,
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
            tracing::info!(projection = %name, group = %group_id, "projector joined its consumer group");
        }
    }
    let reader = Reader {
        dead_letter_topic: tributary_schemas::dead_letter_topic(),
        consumer: Arc::clone(&consumer),
        decoder: Decoder::new(registry_url),
        dead_letters: DeadLetters::new(client),
        name: name.clone(),
        partitions,
    };
    // A group member does not rest: the group assigns its partitions.
    let mut rest = match settings.assignment {
        Assignment::All => settings.rest.clone(),
        Assignment::Group(_) => None,
    };
    let mut positions = checkpoint;
    let mut last_lag = Instant::now();
    let mut behind = true;
    loop {
        let Some((batch, raws, consumed_at)) = reader
            .next_batch(&settings, rest.as_mut(), &positions, &mut shutdown)
            .await?
        else {
            return Ok(());
        };
        if batch.positions.is_empty() {
            continue;
        }
        for projection in &mut projections {
            let started = Instant::now();
            let span = tracing::info_span!("apply", projection = projection.name(), items = batch.items.len(), positions = ?batch.positions);
            if !apply_until_done(
                projection,
                &batch,
                &raws,
                &reader.dead_letters,
                &mut shutdown,
            )
            .instrument(span)
            .await?
            {
                return Ok(());
            }
            metrics::applied(
                projection.name(),
                batch.items.len(),
                started.elapsed().as_secs_f64(),
            );
            metrics::applied_freshness(projection.name(), &batch, consumed_at);
        }
        if let Assignment::Group(_) = settings.assignment {
            commit_hint(&consumer, &batch.positions);
        }
        positions.advance_all(&batch.positions);
        if last_lag.elapsed() > Duration::from_secs(5) {
            last_lag = Instant::now();
            // A batch that did not fill means the reader caught up
            // (librdkafka fetches ahead): no need to ask the broker for
            // every partition's end, which costs the local broker a query
            // each. Once behind, ask until caught up.
            behind = if batch.items.len() >= settings.batch_size || behind {
                record_lag(&consumer, &names, &positions).await > 0
            } else {
                for name in &names {
                    metrics::lag(name, 0);
                }
                false
            };
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
                    .send_until_done(name, raw, DeadLetterStage::Store, &reason, shutdown)
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

/// The one consumer, its decoder and dead letters, shared by every
/// projection it feeds.
struct Reader {
    consumer: Arc<StreamConsumer<ProjectorContext>>,
    decoder: Decoder,
    dead_letters: DeadLetters,
    /// The projections' names, joined.
    name: String,
    /// Every partition it reads, when it reads them all.
    partitions: Vec<Partition>,
    /// Its messages are read by their headers, never dead-lettered again.
    dead_letter_topic: String,
}

/// A dead-letter message as its headers describe it. Never fails: one
/// whose headers do not make a dead letter is seen as stage `unknown`.
fn dead_letter_seen(message: &BorrowedMessage<'_>) -> DeadLetterSeen {
    let headers = tributary_kafka::read_headers(message);
    let company_id = message
        .key()
        .map(|k| String::from_utf8_lossy(k).into_owned());
    match DeadLetter::read(&headers, None, Vec::new()) {
        Ok(letter) => {
            let mut seen = DeadLetterSeen {
                stage: letter.stage.as_str().to_string(),
                reason: letter.reason,
                company_id,
                ..DeadLetterSeen::default()
            };
            match letter.origin {
                Origin::Source {
                    connection_id,
                    data_type,
                    ..
                } => {
                    seen.connection_id = Some(connection_id);
                    seen.data_type = Some(data_type);
                }
                Origin::Topic {
                    projection,
                    topic,
                    partition,
                    offset,
                } => {
                    seen.data_type = DataType::from_topic(&topic).map(|d| d.as_str().to_string());
                    seen.projection = Some(projection);
                    seen.source_topic = Some(topic);
                    seen.source_partition = Some(partition);
                    seen.source_offset = Some(offset);
                }
            }
            seen
        }
        Err(why) => DeadLetterSeen {
            stage: "unknown".into(),
            reason: format!("unreadable dead letter: {why}"),
            company_id,
            ..DeadLetterSeen::default()
        },
    }
}

impl Reader {
    /// Reads up to `batch_size` messages, waiting at most `linger` after
    /// the first one, with the raw message behind each item and when the
    /// first arrived. `None` on shutdown.
    async fn next_batch(
        &self,
        settings: &ProjectorSettings,
        rest: Option<&mut Rest>,
        positions: &Checkpoint,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<Option<(Batch, Vec<Raw>, Instant)>, ProjectorError> {
        let name = self.name.as_str();
        let mut batch = Batch::default();
        let mut raws = Vec::new();
        let Some(first) = self.first_message(rest, positions, shutdown).await? else {
            return Ok(None);
        };
        let consumed_at = Instant::now();
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
                let decoded = if topic == self.dead_letter_topic {
                    Ok(Change::DeadLetter(dead_letter_seen(&message)))
                } else {
                    self.decoder.decode(&topic, message.payload()).await
                };
                match decoded {
                    Ok(change) => {
                        metrics::arrived(&change, message.timestamp().to_millis());
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
                        if !self
                            .dead_letters
                            .send_until_done(name, &raw, DeadLetterStage::Decode, &reason, shutdown)
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
            next = tokio::time::timeout_at(deadline, self.consumer.recv())
                .await
                .ok();
        }
        Ok(Some((batch, raws, consumed_at)))
    }

    /// The next message, resting while there is none (see [`Rest`]):
    /// resting gives the partitions up and takes them again at `positions`
    /// (everything before them applied). Not librdkafka's pause: a resumed
    /// partition waits up to a second for its broker thread to notice, an
    /// assigned one is fetched at once. It rests only once caught up, by
    /// the broker's own partition ends: quiet is not enough, since a fetch
    /// far behind can take longer than `after` on a busy local broker.
    /// `None` on shutdown.
    async fn first_message(
        &self,
        rest: Option<&mut Rest>,
        positions: &Checkpoint,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<Option<rdkafka::error::KafkaResult<BorrowedMessage<'_>>>, ProjectorError> {
        let Some(rest) = rest else {
            return Ok(tokio::select! {
                m = self.consumer.recv() => Some(m),
                _ = shutdown.changed() => None,
            });
        };
        loop {
            // A ring from now on means something may be unread.
            rest.wake.mark_heard();
            tokio::select! {
                m = self.consumer.recv() => return Ok(Some(m)),
                _ = shutdown.changed() => return Ok(None),
                _ = tokio::time::sleep(rest.after) => {}
            }
            if self.unread(positions).await {
                continue;
            }
            self.consumer
                .unassign()
                .map_err(kafka("unassign to rest"))?;
            metrics::resting(&self.name, true);
            loop {
                let rung = tokio::select! {
                    rung = rest.wake.wait(rest.poll) => rung,
                    _ = shutdown.changed() => return Ok(None),
                };
                // Not rung: what did other processes publish meanwhile?
                if rung || self.unread(positions).await {
                    break;
                }
            }
            metrics::resting(&self.name, false);
            self.consumer
                .assign(&assignment(&self.partitions, positions)?)
                .map_err(kafka("assign after resting"))?;
        }
    }

    /// Whether the broker holds messages past `positions` in any
    /// partition: one request for all of them (`ListOffsets`, latest).
    /// True when it cannot tell.
    async fn unread(&self, positions: &Checkpoint) -> bool {
        // Asked by timestamp: -1 (`Offset::End`) is the latest.
        let mut latest = TopicPartitionList::new();
        for (topic, partition) in &self.partitions {
            if let Err(e) = latest.add_partition_offset(topic, *partition, Offset::End) {
                tracing::debug!(error = %e, "cannot ask the partition ends: not resting");
                return true;
            }
        }
        let consumer = self.consumer.clone();
        let ends = tokio::task::spawn_blocking(move || {
            consumer.offsets_for_times(latest, Duration::from_secs(5))
        })
        .await;
        let ends = match ends {
            Ok(Ok(ends)) => ends,
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "cannot ask the partition ends: not resting");
                return true;
            }
            Err(_) => return true,
        };
        ends.elements().iter().any(|e| {
            let next = positions.next_offset(e.topic(), e.partition()).unwrap_or(0);
            let unread = match (e.error(), e.offset()) {
                (Err(_), _) => true,
                (Ok(()), Offset::Offset(end)) => end > next,
                // No offset at all: an empty partition.
                (Ok(()), _) => false,
            };
            if unread {
                tracing::debug!(topic = e.topic(), partition = e.partition(), end = ?e.offset(), next, error = ?e.error(), "unread messages: not resting");
            }
            unread
        })
    }
}

/// Every one of `partitions`, each from its position in `from`, else from
/// the beginning.
fn assignment(
    partitions: &[Partition],
    from: &Checkpoint,
) -> Result<TopicPartitionList, ProjectorError> {
    let mut list = TopicPartitionList::new();
    for (topic, partition) in partitions {
        let offset = match from.next_offset(topic, *partition) {
            Some(next) => Offset::Offset(next),
            None => Offset::Beginning,
        };
        list.add_partition_offset(topic, *partition, offset)
            .map_err(kafka(format!("assign {topic}/{partition}")))?;
    }
    Ok(list)
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

/// Messages behind the end of the log over the partitions this member
/// owns, asked of the broker, set as every projection's lag.
async fn record_lag(
    consumer: &Arc<StreamConsumer<ProjectorContext>>,
    names: &[&'static str],
    positions: &Checkpoint,
) -> i64 {
    let consumer = Arc::clone(consumer);
    let positions = positions.clone();
    let names = names.to_vec();
    tokio::task::spawn_blocking(move || {
        // Only partitions this member still owns.
        let owned: Vec<Partition> = match consumer.assignment() {
            Ok(tpl) => tpl
                .elements()
                .iter()
                .map(|e| (e.topic().to_string(), e.partition()))
                .collect(),
            Err(_) => return 0,
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
        for name in names {
            metrics::lag(name, lag);
        }
        lag
    })
    .await
    .unwrap_or(0)
}
