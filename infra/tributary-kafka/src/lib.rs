//! Kafka plumbing in one place, for the producer, the projector and the
//! dead-letter tooling alike: how clients are set up (the local broker's
//! rules included), message headers, and the dead-letter record, written
//! and read back as one type.
//!
//! Delivery: the producers made here are idempotent and wait for every
//! in-sync replica (`acks=all`): a retried send is written once, in order
//! per partition. What a caller does after an acknowledgement (move a
//! cursor, a checkpoint) is the caller's guarantee.

pub mod dead_letters;
mod doorbell;

use std::collections::BTreeMap;

use rdkafka::ClientConfig;
use rdkafka::message::{BorrowedMessage, Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::FutureProducer;

pub use dead_letters::{Cut, DeadLetter, Origin};
pub use doorbell::{Doorbell, Listener};

#[derive(Debug, thiserror::Error)]
pub enum KafkaError {
    #[error("kafka on {bootstrap}: cannot {what}: {source}")]
    Client {
        bootstrap: String,
        what: String,
        #[source]
        source: Box<rdkafka::error::KafkaError>,
    },
    #[error("kafka on {bootstrap}: {message}")]
    Broker { bootstrap: String, message: String },
    #[error("a blocking task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// librdkafka's own default for `message.max.bytes`: the largest message
/// (value, key and headers) a producer sends; Kafka brokers' default limit
/// per message (`message.max.bytes`, topic `max.message.bytes`) is a little
/// above it.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 1_000_000;

/// What a message costs beyond its value, key and headers (librdkafka
/// counts record overhead too): room kept free when fitting one.
pub const MESSAGE_OVERHEAD_BYTES: usize = 1_024;

/// The largest message `client` may send: its `message.max.bytes`, or
/// librdkafka's default.
pub fn max_message_bytes(client: &ClientConfig) -> usize {
    client
        .get("message.max.bytes")
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_MAX_MESSAGE_BYTES)
}

/// The size a message of this value, key and headers counts against
/// [`max_message_bytes`].
pub fn message_size<K: AsRef<str>, V: AsRef<str>>(
    payload: &[u8],
    key: &[u8],
    headers: &[(K, V)],
) -> usize {
    let headers: usize = headers
        .iter()
        .map(|(k, v)| k.as_ref().len() + v.as_ref().len())
        .sum();
    payload.len() + key.len() + headers + MESSAGE_OVERHEAD_BYTES
}

/// The `bootstrap.servers` a client was made for, for error messages.
pub fn bootstrap_of(client: &ClientConfig) -> String {
    client.get("bootstrap.servers").unwrap_or("?").to_string()
}

/// Wraps an rdkafka error with the broker and what was being done.
pub fn client_error(
    client: &ClientConfig,
    what: impl Into<String>,
) -> impl FnOnce(rdkafka::error::KafkaError) -> KafkaError {
    let bootstrap = bootstrap_of(client);
    let what = what.into();
    move |source| KafkaError::Client {
        bootstrap,
        what,
        source: Box::new(source),
    }
}

/// Client settings every Kafka client of ours starts from: the brokers,
/// then the operator's pass-through settings (`kafka.client`: security,
/// SASL, TLS...).
pub fn client<'a>(
    bootstrap: &str,
    pass_through: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> ClientConfig {
    let mut client = ClientConfig::new();
    client.set("bootstrap.servers", bootstrap);
    for (key, value) in pass_through {
        client.set(key, value);
    }
    // Client metrics pushed to the broker (KIP-714): librdkafka asks the
    // broker for a subscription every few seconds, idle or not, and the
    // local broker answers each ask; nothing of ours reads them.
    default(&mut client, "enable.metrics.push", "false");
    client
}

/// Sets `key` unless the operator did.
fn default(config: &mut ClientConfig, key: &str, value: &str) {
    if config.get(key).is_none() {
        config.set(key, value);
    }
}

/// Settings of an idempotent, acknowledged producer. Idempotence and
/// `acks=all` are not negotiable; the rest are defaults an operator may
/// override in `kafka.client`.
pub fn producer_config(client: &ClientConfig) -> ClientConfig {
    let mut config = client.clone();
    config.set("enable.idempotence", "true").set("acks", "all");
    // The local broker (Tansu on SQLite) cannot read snappy batches back,
    // and lz4 cost more CPU than it saved (docs/BENCHMARKS.md, "The
    // publish path"); none is also the safe default elsewhere.
    default(&mut config, "compression.type", "none");
    // Each page waits for its acks: time spent lingering is time the page
    // waits (measured on the local broker: 20 ms publishes 27% slower than
    // 5, 1 about 9% faster; docs/BENCHMARKS.md, "The publish path").
    default(&mut config, "linger.ms", "1");
    default(&mut config, "message.timeout.ms", "60000");
    config
}

/// An idempotent, acknowledged producer (see [`producer_config`]).
pub fn producer(client: &ClientConfig) -> Result<FutureProducer, KafkaError> {
    producer_config(client)
        .create()
        .map_err(client_error(client, "create a producer"))
}

/// Settings of a consumer in `group` that commits nothing by itself: our
/// consumers keep their positions with the data they write.
pub fn consumer_config(client: &ClientConfig, group: &str) -> ClientConfig {
    let mut config = client.clone();
    config
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest");
    // How long the broker may hold a fetch when there is nothing new. The
    // local broker (Tansu 0.6) holds it that long even when data arrives,
    // so this is also the freshness floor; and it answers each fetch with
    // SQLite queries over every partition, so it is also the idle cost
    // (measured with two idle projections: 50 ms, 106% of a core and
    // freshness p99 1.1 s; 500 ms, 34% and 3.9 s; 5 s, 1% and 12 s).
    default(&mut config, "fetch.wait.max.ms", "50");
    default(&mut config, "session.timeout.ms", "6000");
    default(&mut config, "heartbeat.interval.ms", "1000");
    // Prefetch at most 16 MiB (librdkafka's default is 64 MiB per
    // consumer): a few batches ahead is enough, and memory stays flat
    // however far a consumer is behind.
    default(&mut config, "queued.max.messages.kbytes", "16384");
    config
}

/// Headers from names and values.
pub fn headers<K: AsRef<str>, V: AsRef<str>>(pairs: &[(K, V)]) -> OwnedHeaders {
    let mut headers = OwnedHeaders::new_with_capacity(pairs.len());
    for (key, value) in pairs {
        headers = headers.insert(Header {
            key: key.as_ref(),
            value: Some(value.as_ref().as_bytes()),
        });
    }
    headers
}

/// A message's headers as text (a repeated name keeps its last value).
pub fn read_headers(message: &BorrowedMessage<'_>) -> BTreeMap<String, String> {
    message
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
        .unwrap_or_default()
}
