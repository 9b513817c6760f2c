//! Operator tooling for the dead-letter topic: read every dead letter, and
//! replay one to the topic it came from.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use tributary_schemas::{dead_letter, dead_letter_topic};

use crate::BrokerError;

/// One message of the dead-letter topic.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    pub partition: i32,
    pub offset: i64,
    pub headers: BTreeMap<String, String>,
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    /// Already handled by a `replay --all`.
    pub replayed: bool,
}

impl DeadLetter {
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).map(String::as_str).unwrap_or("")
    }

    pub fn replays(&self) -> u32 {
        self.header(dead_letter::REPLAYS).parse().unwrap_or(0)
    }
}

fn admin_err(client: &ClientConfig, message: String) -> BrokerError {
    BrokerError::Admin {
        bootstrap: client.get("bootstrap.servers").unwrap_or("?").to_string(),
        message,
    }
}

/// A message in the dead-letter topic that is not a dead letter but marks
/// others as replayed: its value lists them as `partition@offset,…`. Kept in
/// the topic itself, so the marks are as durable as the letters.
const REPLAYED_MARK: &str = "tributary.replayed";

/// Records that the dead letters at `positions` (partition, offset) were
/// handled by `replay --all`, which will not send them again.
pub async fn mark_replayed(
    client: &ClientConfig,
    positions: &[(i32, i64)],
) -> Result<(), BrokerError> {
    if positions.is_empty() {
        return Ok(());
    }
    let list: Vec<String> = positions.iter().map(|(p, o)| format!("{p}@{o}")).collect();
    let list = list.join(",");
    let producer: FutureProducer = client
        .create()
        .map_err(|e| admin_err(client, e.to_string()))?;
    let topic = dead_letter_topic();
    let headers = OwnedHeaders::new().insert(Header {
        key: REPLAYED_MARK,
        value: Some(b"1"),
    });
    let record: FutureRecord<'_, str, str> = FutureRecord::to(&topic)
        .key(REPLAYED_MARK)
        .payload(list.as_str())
        .headers(headers);
    producer
        .send(record, Duration::from_secs(30))
        .await
        .map(|_| ())
        .map_err(|(e, _)| admin_err(client, format!("mark replayed dead letters: {e}")))
}

/// Reads the whole dead-letter topic as it is now.
pub async fn read_all(client: &ClientConfig) -> Result<Vec<DeadLetter>, BrokerError> {
    let client = client.clone();
    tokio::task::spawn_blocking(move || read_all_blocking(&client))
        .await
        .map_err(|e| BrokerError::Admin {
            bootstrap: "?".into(),
            message: e.to_string(),
        })?
}

fn read_all_blocking(client: &ClientConfig) -> Result<Vec<DeadLetter>, BrokerError> {
    let topic = dead_letter_topic();
    let mut config = client.clone();
    config
        .set("group.id", "tributary-dlq-reader")
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "50");
    let consumer: BaseConsumer = config
        .create()
        .map_err(|e| admin_err(client, e.to_string()))?;
    let metadata = consumer
        .fetch_metadata(Some(&topic), Duration::from_secs(10))
        .map_err(|e| admin_err(client, format!("metadata of {topic}: {e}")))?;
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
            .map_err(|e| admin_err(client, format!("watermarks of {topic}/{partition}: {e}")))?;
        if high > low {
            remaining.insert(partition, high);
            assignment
                .add_partition_offset(&topic, partition, Offset::Beginning)
                .map_err(|e| admin_err(client, e.to_string()))?;
        }
    }
    let mut letters = Vec::new();
    if remaining.is_empty() {
        return Ok(letters);
    }
    consumer
        .assign(&assignment)
        .map_err(|e| admin_err(client, e.to_string()))?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !remaining.is_empty() {
        if Instant::now() > deadline {
            return Err(admin_err(
                client,
                format!("timed out reading {topic}; unread partitions {remaining:?}"),
            ));
        }
        let Some(received) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let message = received.map_err(|e| admin_err(client, format!("read {topic}: {e}")))?;
        let headers = message
            .headers()
            .map(|h| {
                h.iter()
                    .map(|h| {
                        (
                            h.key.to_string(),
                            h.value
                                .map(|v| String::from_utf8_lossy(v).to_string())
                                .unwrap_or_default(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        letters.push(DeadLetter {
            partition: message.partition(),
            offset: message.offset(),
            headers,
            key: message.key().map(<[u8]>::to_vec),
            payload: message.payload().unwrap_or_default().to_vec(),
            replayed: false,
        });
        if remaining
            .get(&message.partition())
            .is_some_and(|high| message.offset() + 1 >= *high)
        {
            remaining.remove(&message.partition());
        }
    }
    // Marks are not letters: they say which letters were replayed.
    let mut marked = std::collections::BTreeSet::new();
    letters.retain(|l| {
        if l.headers.contains_key(REPLAYED_MARK) {
            marked.extend(
                String::from_utf8_lossy(&l.payload)
                    .split(',')
                    .map(str::to_string),
            );
            false
        } else {
            true
        }
    });
    for letter in &mut letters {
        letter.replayed = marked.contains(&format!("{}@{}", letter.partition, letter.offset));
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
    Failed(BrokerError),
}

/// Sends a `decode` or `store` dead letter back to the topic it was read
/// from, with its replay count raised. Refuses once it was replayed
/// [`dead_letter::MAX_REPLAYS`] times, so a message that always fails
/// cannot loop, and refuses `map` dead letters, which need their connector.
/// A replayed message reaches every projection again; those that applied it
/// before ignore it (same version).
pub async fn replay(client: &ClientConfig, letter: &DeadLetter) -> Result<String, ReplayError> {
    let at = format!("{}@{}", letter.partition, letter.offset);
    if !["decode", "store"].contains(&letter.header(dead_letter::STAGE)) {
        return Err(ReplayError::Refused(format!(
            "dead letter {at} is from stage {:?}: only decode- and store-stage letters can be replayed; a map-stage record is fetched again by the next sync once its connector is fixed",
            letter.header(dead_letter::STAGE)
        )));
    }
    let replays = letter.replays();
    if replays >= dead_letter::MAX_REPLAYS {
        return Err(ReplayError::Refused(format!(
            "dead letter {at} was replayed {replays} times already; it will not be replayed again"
        )));
    }
    let topic = letter.header(dead_letter::SOURCE_TOPIC).to_string();
    if topic.is_empty() {
        return Err(ReplayError::Refused(format!(
            "dead letter {at} does not say which topic it came from"
        )));
    }
    let mut config = client.clone();
    config.set("enable.idempotence", "true").set("acks", "all");
    if config.get("compression.type").is_none() {
        config.set("compression.type", "none");
    }
    let producer: FutureProducer = config
        .create()
        .map_err(|e| ReplayError::Failed(admin_err(client, e.to_string())))?;
    let count = (replays + 1).to_string();
    let headers = OwnedHeaders::new().insert(Header {
        key: dead_letter::REPLAYS,
        value: Some(count.as_bytes()),
    });
    let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(&topic)
        .payload(letter.payload.as_slice())
        .headers(headers);
    if let Some(key) = &letter.key {
        record = record.key(key);
    }
    producer
        .send(record, Duration::from_secs(30))
        .await
        .map_err(|(e, _)| {
            ReplayError::Failed(admin_err(client, format!("replay {at} to {topic}: {e}")))
        })?;
    Ok(topic)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn letter(stage: &str, replays: u32) -> DeadLetter {
        let headers = [
            (dead_letter::STAGE, stage.to_string()),
            (
                dead_letter::SOURCE_TOPIC,
                "tributary.v1.invoices".to_string(),
            ),
            (dead_letter::REPLAYS, replays.to_string()),
        ];
        DeadLetter {
            partition: 0,
            offset: 7,
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
            key: None,
            payload: b"bad".to_vec(),
            replayed: false,
        }
    }

    #[tokio::test]
    async fn replays_stop_at_the_limit_and_map_letters_are_refused() {
        // Nothing listens here: both refusals must come before any Kafka call.
        let mut client = ClientConfig::new();
        client.set("bootstrap.servers", "127.0.0.1:1");
        let err = replay(&client, &letter("decode", dead_letter::MAX_REPLAYS))
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("replayed 3 times already"),
            "{err}"
        );
        let err = replay(&client, &letter("map", 0)).await.unwrap_err();
        assert!(
            err.to_string()
                .contains("only decode- and store-stage letters can be replayed"),
            "{err}"
        );
    }
}
