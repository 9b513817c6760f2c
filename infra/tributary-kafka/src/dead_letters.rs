//! The dead-letter record, written by the producer (stage `map`) and the
//! projector (stages `decode` and `store`) and read back by the operator
//! tooling: read every dead letter, replay one to the topic it came from.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use std::fmt;

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use tributary_schemas::{DeadLetterStage, dead_letter, dead_letter_topic};

use crate::{KafkaError, client_error};

/// Where a dead letter came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// Stage `map`: a source record a connection fetched and its connector
    /// could not map (or whose event was too large).
    Source {
        connection_id: String,
        data_type: String,
        /// Its id at the source, when known (it mapped, but its event was
        /// too large): a letter cut to fit is replayed by fetching the
        /// record again by this id.
        record_id: Option<String>,
    },
    /// Stages `decode` and `store`: a message a projection could not decode,
    /// or whose record its store refused.
    Topic {
        projection: String,
        topic: String,
        partition: i32,
        offset: i64,
    },
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Source {
                connection_id,
                data_type,
                ..
            } => write!(f, "{connection_id} {data_type}"),
            Origin::Topic {
                topic,
                partition,
                offset,
                ..
            } => write!(f, "{topic}/{partition}@{offset}"),
        }
    }
}

/// What failed, as it was (the raw source JSON for `map`, the original
/// Kafka value for `decode` and `store`), and why: the value and key of a
/// dead-letter message, its headers the rest.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    pub stage: DeadLetterStage,
    pub reason: String,
    pub origin: Origin,
    /// How many times an operator replayed it already.
    pub replays: u32,
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    /// Set when `payload` is only the start of what failed, cut so the
    /// letter fits in a message: what the whole was.
    pub cut: Option<Cut>,
}

/// What a dead letter's payload was before it was cut to fit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cut {
    pub original_size: usize,
    /// SHA-256 of the whole payload, lowercase hex.
    pub sha256: String,
}

/// Header of a map letter's record id at the source, when known.
const RECORD_ID: &str = "tributary.source_record_id";

/// Header names of a cut payload.
const ORIGINAL_SIZE: &str = "tributary.payload.original_size";
const ORIGINAL_SHA256: &str = "tributary.payload.sha256";

impl DeadLetter {
    /// The letter cut, if need be, to fit in a message of `max_bytes`: a
    /// letter must never fail to be written (its page would wait forever
    /// behind it), so what does not fit is cut, and its size and digest
    /// kept.
    pub fn fit(mut self, max_bytes: usize) -> DeadLetter {
        let key = self.key.as_deref().unwrap_or_default();
        let size = crate::message_size(&self.payload, key, &self.header_pairs());
        if size <= max_bytes {
            return self;
        }
        use sha2::Digest;
        let cut = Cut {
            original_size: self.payload.len(),
            sha256: hex(&sha2::Sha256::digest(&self.payload)),
        };
        self.cut = Some(cut);
        // The reason too may be huge (a source's error text): keep its start.
        if self.reason.len() > 4_096 {
            let mut end = 4_096;
            while !self.reason.is_char_boundary(end) {
                end -= 1;
            }
            self.reason.truncate(end);
        }
        let key = self.key.as_deref().unwrap_or_default();
        let others = crate::message_size(&[], key, &self.header_pairs());
        self.payload.truncate(max_bytes.saturating_sub(others));
        self
    }

    /// The headers it is written with.
    pub fn header_pairs(&self) -> Vec<(&'static str, String)> {
        let mut pairs = vec![
            (dead_letter::STAGE, self.stage.as_str().to_string()),
            (dead_letter::REASON, self.reason.clone()),
        ];
        match &self.origin {
            Origin::Source {
                connection_id,
                data_type,
                record_id,
            } => {
                pairs.push((dead_letter::CONNECTION_ID, connection_id.clone()));
                pairs.push((dead_letter::DATA_TYPE, data_type.clone()));
                if let Some(id) = record_id {
                    pairs.push((RECORD_ID, id.clone()));
                }
            }
            Origin::Topic {
                projection,
                topic,
                partition,
                offset,
            } => {
                pairs.push((dead_letter::PROJECTION, projection.clone()));
                pairs.push((dead_letter::SOURCE_TOPIC, topic.clone()));
                pairs.push((dead_letter::SOURCE_PARTITION, partition.to_string()));
                pairs.push((dead_letter::SOURCE_OFFSET, offset.to_string()));
            }
        }
        pairs.push((dead_letter::REPLAYS, self.replays.to_string()));
        if let Some(cut) = &self.cut {
            pairs.push((ORIGINAL_SIZE, cut.original_size.to_string()));
            pairs.push((ORIGINAL_SHA256, cut.sha256.clone()));
        }
        pairs
    }

    /// Reads one back from a message's headers, key and value; the reason
    /// when the headers do not make a dead letter.
    pub fn read(
        headers: &BTreeMap<String, String>,
        key: Option<Vec<u8>>,
        payload: Vec<u8>,
    ) -> Result<DeadLetter, String> {
        let header = |name: &str| headers.get(name).map(String::as_str);
        let required = |name: &str| header(name).ok_or_else(|| format!("no {name} header"));
        let stage: DeadLetterStage = required(dead_letter::STAGE)?
            .parse()
            .map_err(|e: tributary_schemas::UnknownState| e.to_string())?;
        let origin = match stage {
            DeadLetterStage::Map => Origin::Source {
                connection_id: required(dead_letter::CONNECTION_ID)?.to_string(),
                data_type: required(dead_letter::DATA_TYPE)?.to_string(),
                record_id: header(RECORD_ID).map(str::to_string),
            },
            DeadLetterStage::Decode | DeadLetterStage::Store => Origin::Topic {
                projection: header(dead_letter::PROJECTION)
                    .unwrap_or_default()
                    .to_string(),
                topic: required(dead_letter::SOURCE_TOPIC)?.to_string(),
                partition: required(dead_letter::SOURCE_PARTITION)?
                    .parse()
                    .map_err(|e| format!("{}: {e}", dead_letter::SOURCE_PARTITION))?,
                offset: required(dead_letter::SOURCE_OFFSET)?
                    .parse()
                    .map_err(|e| format!("{}: {e}", dead_letter::SOURCE_OFFSET))?,
            },
        };
        Ok(DeadLetter {
            stage,
            reason: header(dead_letter::REASON).unwrap_or_default().to_string(),
            origin,
            replays: header(dead_letter::REPLAYS)
                .and_then(|r| r.parse().ok())
                .unwrap_or(0),
            key,
            payload,
            cut: match (header(ORIGINAL_SIZE), header(ORIGINAL_SHA256)) {
                (Some(size), Some(sha256)) => Some(Cut {
                    original_size: size.parse().map_err(|e| format!("{ORIGINAL_SIZE}: {e}"))?,
                    sha256: sha256.to_string(),
                }),
                _ => None,
            },
        })
    }

    /// Writes it to the dead-letter topic and waits for the broker's ack.
    pub async fn send(&self, producer: &FutureProducer) -> Result<(), String> {
        let topic = dead_letter_topic();
        let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(&topic)
            .payload(self.payload.as_slice())
            .headers(crate::headers(&self.header_pairs()));
        if let Some(key) = &self.key {
            record = record.key(key.as_slice());
        }
        producer
            .send(record, Duration::from_secs(30))
            .await
            .map(|_| ())
            .map_err(|(e, _)| format!("cannot dead-letter {}: {e}", self.origin))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A message of the dead-letter topic as read back.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredLetter {
    pub partition: i32,
    pub offset: i64,
    /// The dead letter, or why its headers do not make one.
    pub letter: Result<DeadLetter, String>,
    /// Already handled by a `replay --all`.
    pub replayed: bool,
}

impl StoredLetter {
    /// Where it is in the dead-letter topic: `PARTITION@OFFSET`.
    pub fn at(&self) -> String {
        format!("{}@{}", self.partition, self.offset)
    }
}

/// A message in the dead-letter topic that is not a dead letter but marks
/// others as replayed: its value lists them as `partition@offset,…`. Kept in
/// the topic itself, so the marks are as durable as the letters.
const REPLAYED_MARK: &str = "tributary.replayed";

fn broker_err(client: &ClientConfig, message: String) -> KafkaError {
    KafkaError::Broker {
        bootstrap: crate::bootstrap_of(client),
        message,
    }
}

/// Records that the dead letters at `positions` (partition, offset) were
/// handled by `replay --all`, which will not send them again.
pub async fn mark_replayed(
    client: &ClientConfig,
    positions: &[(i32, i64)],
) -> Result<(), KafkaError> {
    if positions.is_empty() {
        return Ok(());
    }
    let list: Vec<String> = positions.iter().map(|(p, o)| format!("{p}@{o}")).collect();
    let list = list.join(",");
    let producer = crate::producer(client)?;
    let topic = dead_letter_topic();
    let record: FutureRecord<'_, str, str> = FutureRecord::to(&topic)
        .key(REPLAYED_MARK)
        .payload(list.as_str())
        .headers(crate::headers(&[(REPLAYED_MARK, "1")]));
    producer
        .send(record, Duration::from_secs(30))
        .await
        .map(|_| ())
        .map_err(|(e, _)| broker_err(client, format!("mark replayed dead letters: {e}")))
}

/// Reads the whole dead-letter topic as it is now, in (partition, offset)
/// order. Letters written by earlier versions read back the same way: the
/// header names have not changed.
pub async fn read_all(client: &ClientConfig) -> Result<Vec<StoredLetter>, KafkaError> {
    let client = client.clone();
    tokio::task::spawn_blocking(move || read_all_blocking(&client)).await?
}

fn read_all_blocking(client: &ClientConfig) -> Result<Vec<StoredLetter>, KafkaError> {
    let topic = dead_letter_topic();
    let mut config = crate::consumer_config(client, "tributary-dlq-reader");
    config.set("queued.max.messages.kbytes", "65536");
    let consumer: BaseConsumer = config
        .create()
        .map_err(client_error(client, "create a consumer"))?;
    let metadata = consumer
        .fetch_metadata(Some(&topic), Duration::from_secs(10))
        .map_err(client_error(
            client,
            format!("read the metadata of {topic}"),
        ))?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .map(|t| t.partitions().iter().map(|p| p.id()).collect())
        .unwrap_or_default();
    let mut remaining: BTreeMap<i32, i64> = BTreeMap::new();
    let mut assignment = TopicPartitionList::new();
    for partition in partitions {
        let (low, high) = consumer
            .fetch_watermarks(&topic, partition, Duration::from_secs(10))
            .map_err(client_error(
                client,
                format!("read the watermarks of {topic}/{partition}"),
            ))?;
        if high > low {
            remaining.insert(partition, high);
            assignment
                .add_partition_offset(&topic, partition, Offset::Beginning)
                .map_err(client_error(client, format!("assign {topic}/{partition}")))?;
        }
    }
    let mut letters = Vec::new();
    let mut marked = std::collections::BTreeSet::new();
    if remaining.is_empty() {
        return Ok(letters);
    }
    consumer
        .assign(&assignment)
        .map_err(client_error(client, format!("assign {topic}")))?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !remaining.is_empty() {
        if Instant::now() > deadline {
            return Err(broker_err(
                client,
                format!("timed out reading {topic}; unread partitions {remaining:?}"),
            ));
        }
        let Some(received) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let message = received.map_err(client_error(client, format!("read {topic}")))?;
        let headers = crate::read_headers(&message);
        let payload = message.payload().unwrap_or_default().to_vec();
        if headers.contains_key(REPLAYED_MARK) {
            // Marks are not letters: they say which letters were replayed.
            marked.extend(
                String::from_utf8_lossy(&payload)
                    .split(',')
                    .map(str::to_string),
            );
        } else {
            letters.push(StoredLetter {
                partition: message.partition(),
                offset: message.offset(),
                letter: DeadLetter::read(&headers, message.key().map(<[u8]>::to_vec), payload),
                replayed: false,
            });
        }
        if remaining
            .get(&message.partition())
            .is_some_and(|high| message.offset() + 1 >= *high)
        {
            remaining.remove(&message.partition());
        }
    }
    for stored in &mut letters {
        stored.replayed = marked.contains(&stored.at());
    }
    letters.sort_by_key(|l| (l.partition, l.offset));
    Ok(letters)
}

/// Why a dead letter was not replayed.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// By rule, for good: it will never be replayed.
    #[error("{0}")]
    Refused(String),
    /// The broker failed: try again.
    #[error(transparent)]
    Failed(KafkaError),
}

/// Whether `stored` may be replayed, and to which topic: only `decode` and
/// `store` letters (a `map` letter needs its connector), and only until it
/// was replayed [`dead_letter::MAX_REPLAYS`] times, so a message that always
/// fails cannot loop.
pub fn replay_target(stored: &StoredLetter) -> Result<(&DeadLetter, &str), ReplayError> {
    let at = stored.at();
    let letter = stored
        .letter
        .as_ref()
        .map_err(|why| ReplayError::Refused(format!("dead letter {at} cannot be read: {why}")))?;
    let Origin::Topic { topic, .. } = &letter.origin else {
        return Err(ReplayError::Refused(format!(
            "dead letter {at} is from stage {}: only decode- and store-stage letters can be replayed; a map-stage record is fetched again by the next sync once its connector is fixed",
            letter.stage
        )));
    };
    if let Some(cut) = &letter.cut {
        return Err(ReplayError::Refused(format!(
            "dead letter {at} holds only the first {} of {} bytes: the message cannot be sent again",
            letter.payload.len(),
            cut.original_size
        )));
    }
    if letter.replays >= dead_letter::MAX_REPLAYS {
        return Err(ReplayError::Refused(format!(
            "dead letter {at} was replayed {} times already; it will not be replayed again",
            letter.replays
        )));
    }
    Ok((letter, topic))
}

/// Sends a `decode` or `store` dead letter back to the topic it was read
/// from, with its replay count raised (see [`replay_target`]). A replayed
/// message reaches every projection again; those that applied it before
/// ignore it (same version).
pub async fn replay(client: &ClientConfig, stored: &StoredLetter) -> Result<String, ReplayError> {
    let (letter, topic) = replay_target(stored)?;
    let producer = crate::producer(client).map_err(ReplayError::Failed)?;
    let count = (letter.replays + 1).to_string();
    let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic)
        .payload(letter.payload.as_slice())
        .headers(crate::headers(&[(dead_letter::REPLAYS, count.as_str())]));
    if let Some(key) = &letter.key {
        record = record.key(key);
    }
    producer
        .send(record, Duration::from_secs(30))
        .await
        .map_err(|(e, _)| {
            ReplayError::Failed(broker_err(
                client,
                format!("replay {} to {topic}: {e}", stored.at()),
            ))
        })?;
    Ok(topic.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(letter: DeadLetter) -> StoredLetter {
        StoredLetter {
            partition: 0,
            offset: 7,
            letter: Ok(letter),
            replayed: false,
        }
    }

    fn decode_letter(replays: u32) -> DeadLetter {
        DeadLetter {
            stage: DeadLetterStage::Decode,
            reason: "not in the Confluent wire format (3 bytes)".into(),
            origin: Origin::Topic {
                projection: "sql-store".into(),
                topic: "tributary.v1.invoices".into(),
                partition: 2,
                offset: 41,
            },
            replays,
            key: Some(b"acme".to_vec()),
            payload: b"bad".to_vec(),
            cut: None,
        }
    }

    fn map_letter() -> DeadLetter {
        DeadLetter {
            stage: DeadLetterStage::Map,
            reason: "Type is not ACCPAY".into(),
            origin: Origin::Source {
                connection_id: "conn-xero-acme".into(),
                data_type: "bills".into(),
                record_id: Some("x".into()),
            },
            replays: 0,
            key: None,
            payload: br#"{"InvoiceID": "x"}"#.to_vec(),
            cut: None,
        }
    }

    #[test]
    fn a_dead_letter_reads_back_as_it_was_written() {
        for letter in [decode_letter(2), map_letter()] {
            let headers: BTreeMap<String, String> = letter
                .header_pairs()
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect();
            let back = DeadLetter::read(&headers, letter.key.clone(), letter.payload.clone());
            assert_eq!(back, Ok(letter));
        }
    }

    #[test]
    fn a_letter_too_large_is_cut_to_fit_and_says_what_it_was() {
        let mut letter = map_letter();
        letter.payload = vec![b'x'; 3_000_000];
        letter.reason = "r".repeat(10_000);
        let fitted = letter.clone().fit(1_000_000);
        let key = fitted.key.clone().unwrap_or_default();
        let size = crate::message_size(&fitted.payload, &key, &fitted.header_pairs());
        assert!(size <= 1_000_000, "{size}");
        assert!(fitted.payload.len() > 900_000, "{}", fitted.payload.len());
        assert!(letter.payload.starts_with(&fitted.payload));
        let cut = fitted.cut.clone().unwrap();
        assert_eq!(cut.original_size, 3_000_000);
        assert_eq!(cut.sha256.len(), 64);
        assert!(fitted.reason.len() <= 4_096);
        // Written and read back, the cut is still known.
        let headers: BTreeMap<String, String> = fitted
            .header_pairs()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        let back = DeadLetter::read(&headers, fitted.key.clone(), fitted.payload.clone()).unwrap();
        assert_eq!(back, fitted);
        // What fits is left alone.
        assert_eq!(map_letter().fit(1_000_000), map_letter());
    }

    #[test]
    fn letters_written_before_the_type_read_back() {
        // Exactly the headers the projector wrote before this type existed.
        let headers: BTreeMap<String, String> = [
            ("tributary.stage", "store"),
            ("tributary.reason", "refused: invalid byte sequence"),
            ("tributary.projection", "sql-store"),
            ("tributary.source.topic", "tributary.v1.invoices"),
            ("tributary.source.partition", "1"),
            ("tributary.source.offset", "17"),
            ("tributary.replays", "0"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let letter = DeadLetter::read(&headers, None, b"x".to_vec()).unwrap();
        assert_eq!(letter.stage, DeadLetterStage::Store);
        assert_eq!(letter.origin.to_string(), "tributary.v1.invoices/1@17");
        let mut broken = headers.clone();
        broken.insert("tributary.stage".into(), "lost".into());
        assert!(
            DeadLetter::read(&broken, None, vec![])
                .unwrap_err()
                .contains("not a dead-letter stage")
        );
    }

    #[tokio::test]
    async fn replays_stop_at_the_limit_and_map_letters_are_refused() {
        // Nothing listens here: both refusals must come before any Kafka call.
        let mut client = ClientConfig::new();
        client.set("bootstrap.servers", "127.0.0.1:1");
        let err = replay(&client, &stored(decode_letter(dead_letter::MAX_REPLAYS)))
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("replayed 3 times already"),
            "{err}"
        );
        let err = replay(&client, &stored(map_letter())).await.unwrap_err();
        assert!(
            err.to_string()
                .contains("only decode- and store-stage letters can be replayed"),
            "{err}"
        );
    }
}
