//! Publishes events to Kafka as Avro in the Confluent wire format.

use std::collections::HashMap;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use schema_registry_converter::async_impl::avro::AvroEncoder;
use schema_registry_converter::async_impl::schema_registry::SrSettings;
use schema_registry_converter::avro_common::get_supplied_schema;
use schema_registry_converter::schema_registry_common::SubjectNameStrategy;
use serde::Serialize;
use tributary_kafka::{DeadLetter, Origin};
use tributary_schemas::{
    DataType, DeadLetterStage, Event, ManifestEvent, SyncRunEvent, dead_letter_topic,
};

use crate::{ProducerError, metrics};

/// One message ready to send.
struct Outgoing {
    topic: String,
    key: String,
    payload: Vec<u8>,
    headers: Vec<(&'static str, String)>,
}

/// An idempotent Kafka producer with a schema-registry-backed Avro encoder.
///
/// Every value schema is registered (or found) under `<topic>-value` on
/// first use, so an incompatible schema change fails loudly here, before
/// anything is written.
pub struct Publisher {
    /// Replaced when it fails fatally (an idempotent producer does when the
    /// broker forgets its sequence numbers, as after a broker restart).
    producer: std::sync::RwLock<FutureProducer>,
    config: ClientConfig,
    encoder: AvroEncoder,
    strategies: HashMap<String, SubjectNameStrategy>,
    /// Each topic's value schema text, for [`Publisher::register_schemas`].
    schemas: Vec<(String, String)>,
    registry_url: String,
    bootstrap: String,
    max_message_bytes: usize,
    /// Rung after each acknowledged send, for this process's projectors.
    doorbell: Option<tributary_kafka::Doorbell>,
}

/// An event not sent because its message would be larger than the broker
/// takes: the caller sets its record aside instead.
#[derive(Debug, Clone, PartialEq)]
pub struct TooLarge {
    pub event_id: String,
    /// The message's size, value, key and headers.
    pub size: usize,
    pub limit: usize,
}

impl std::fmt::Display for TooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the record's event is {} bytes, over the {}-byte limit of a message (kafka message.max.bytes)",
            self.size, self.limit
        )
    }
}

/// A source record set aside as a `map` dead letter.
#[derive(Debug, Clone)]
pub struct SetAside<'a> {
    pub reason: String,
    pub raw: &'a serde_json::Value,
    /// Its id at the source, when known (it mapped, but its event was too
    /// large): a replay of its letter, cut to fit, fetches it by this id.
    pub record_id: Option<String>,
}

impl<'a> SetAside<'a> {
    /// A record that cannot be mapped.
    pub fn unmapped(reason: String, raw: &'a serde_json::Value) -> Self {
        SetAside {
            reason,
            raw,
            record_id: None,
        }
    }
}

impl Publisher {
    pub fn new(client: &ClientConfig, registry_url: &str) -> Result<Self, ProducerError> {
        // Idempotence: broker-side dedupe of retried sends, in order per partition.
        let config = tributary_kafka::producer_config(client);
        let max_message_bytes = tributary_kafka::max_message_bytes(&config);
        let bootstrap = config.get("bootstrap.servers").unwrap_or("?").to_string();
        let producer: FutureProducer = config
            .create()
            .map_err(|e| ProducerError::Kafka(format!("create producer for {bootstrap}: {e}")))?;
        // Each topic's schema, registered and encoded with in the same text
        // (the registry tells versions apart by text).
        let schema_err = |e: tributary_schemas::SchemaError| ProducerError::Schema(e.to_string());
        let mut topic_schemas = vec![
            (
                SyncRunEvent::topic(),
                SyncRunEvent::schema().map_err(schema_err)?,
            ),
            (
                ManifestEvent::topic(),
                ManifestEvent::schema().map_err(schema_err)?,
            ),
        ];
        for data_type in DataType::ALL {
            let schema = data_type
                .schema()
                .map_err(|e| ProducerError::Schema(e.to_string()))?;
            topic_schemas.push((data_type.topic(), schema));
        }
        let mut strategies = HashMap::new();
        let mut schemas = Vec::new();
        for (topic, schema) in topic_schemas {
            let supplied = get_supplied_schema(&schema);
            schemas.push((topic.clone(), supplied.schema.clone()));
            strategies.insert(
                topic.clone(),
                SubjectNameStrategy::TopicNameStrategyWithSchema(topic, false, supplied),
            );
        }
        Ok(Publisher {
            producer: std::sync::RwLock::new(producer),
            config,
            encoder: AvroEncoder::new(SrSettings::new(
                registry_url.trim_end_matches('/').to_string(),
            )),
            strategies,
            schemas,
            registry_url: registry_url.trim_end_matches('/').to_string(),
            max_message_bytes,
            bootstrap,
            doorbell: None,
        })
    }

    /// Rings `doorbell` after every acknowledged send, so projectors of
    /// this process that rest while idle read at once.
    pub fn ring_on_publish(mut self, doorbell: tributary_kafka::Doorbell) -> Self {
        self.doorbell = Some(doorbell);
        self
    }

    /// Registers every topic's value schema under `<topic>-value`, before
    /// anything is sent: a schema the registry calls incompatible with what
    /// the subject holds is refused here, with the registry's reason, and
    /// the worker does not start (rather than failing page after page).
    pub async fn register_schemas(&self) -> Result<(), ProducerError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| ProducerError::Registry(format!("cannot build an HTTP client: {e}")))?;
        for (topic, text) in &self.schemas {
            let subject = format!("{topic}-value");
            let url = format!("{}/subjects/{subject}/versions", self.registry_url);
            let response = http
                .post(&url)
                .header("Content-Type", "application/vnd.schemaregistry.v1+json")
                .json(&serde_json::json!({ "schema": text }))
                .send()
                .await
                .map_err(|e| {
                    ProducerError::Registry(format!("register {subject} at {url}: {e}"))
                })?;
            let status = response.status();
            if status.is_success() {
                continue;
            }
            let body = response.text().await.unwrap_or_default();
            let reason = serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["message"].as_str().map(str::to_string))
                .unwrap_or(body);
            return Err(if status == reqwest::StatusCode::CONFLICT {
                ProducerError::IncompatibleSchema { subject, reason }
            } else {
                ProducerError::Registry(format!("register {subject}: {status}: {reason}"))
            });
        }
        Ok(())
    }

    async fn encode<T: Serialize>(&self, topic: &str, item: &T) -> Result<Vec<u8>, ProducerError> {
        let strategy = self
            .strategies
            .get(topic)
            .ok_or_else(|| ProducerError::Schema(format!("no schema for topic {topic}")))?;
        self.encoder
            .encode_struct(item, strategy)
            .await
            .map_err(|e| ProducerError::Registry(format!("encode for {topic}: {e}")))
    }

    /// Publishes `events`, each to its data type's topic keyed by company,
    /// and returns only once the broker acknowledged every one, except those
    /// whose message would be over the size limit: those are not sent (one
    /// would fail its whole page, for ever), and returned, for the caller
    /// to set their records aside.
    pub async fn publish_events(&self, events: &[Event]) -> Result<Vec<TooLarge>, ProducerError> {
        let mut outgoing = Vec::with_capacity(events.len());
        let mut too_large = Vec::new();
        for event in events {
            let data_type = event
                .data_type()
                .map_err(|e| ProducerError::Schema(e.to_string()))?;
            let topic = data_type.topic();
            let payload = self.encode(&topic, event).await?;
            let headers = vec![("tributary.event_id", event.event_id.clone())];
            let size =
                tributary_kafka::message_size(&payload, event.company_id.as_bytes(), &headers);
            if size > self.max_message_bytes {
                too_large.push(TooLarge {
                    event_id: event.event_id.clone(),
                    size,
                    limit: self.max_message_bytes,
                });
                continue;
            }
            outgoing.push(Outgoing {
                topic,
                key: event.company_id.clone(),
                payload,
                headers,
            });
        }
        self.send_all(outgoing).await?;
        Ok(too_large)
    }

    /// Publishes a round's sync-run outcomes and manifests together,
    /// waiting for every ack once.
    pub async fn publish_round(
        &self,
        runs: &[SyncRunEvent],
        manifests: &[ManifestEvent],
    ) -> Result<(), ProducerError> {
        let mut outgoing = Vec::with_capacity(runs.len() + manifests.len());
        let runs_topic = SyncRunEvent::topic();
        for run in runs {
            outgoing.push(Outgoing {
                topic: runs_topic.clone(),
                key: run.company_id.clone(),
                payload: self.encode(&runs_topic, run).await?,
                headers: vec![],
            });
        }
        let manifests_topic = ManifestEvent::topic();
        for manifest in manifests {
            outgoing.push(Outgoing {
                topic: manifests_topic.clone(),
                key: manifest.company_id.clone(),
                payload: self.encode(&manifests_topic, manifest).await?,
                headers: vec![],
            });
        }
        self.send_all(outgoing).await
    }

    /// Sends source records that could not be mapped to the dead-letter
    /// topic, all at once: each raw record as the value, why (`failed` pairs
    /// a reason with its record) and where from in headers.
    pub async fn publish_dead_letters(
        &self,
        company_id: &str,
        connection_id: &str,
        data_type: DataType,
        failed: &[SetAside<'_>],
    ) -> Result<(), ProducerError> {
        let mut outgoing = Vec::with_capacity(failed.len());
        for set_aside in failed {
            let letter = DeadLetter {
                stage: DeadLetterStage::Map,
                reason: set_aside.reason.clone(),
                origin: Origin::Source {
                    connection_id: connection_id.to_string(),
                    data_type: data_type.as_str().to_string(),
                    record_id: set_aside.record_id.clone(),
                },
                replays: 0,
                key: Some(company_id.as_bytes().to_vec()),
                payload: serde_json::to_vec(set_aside.raw)
                    .map_err(|e| ProducerError::Schema(e.to_string()))?,
                cut: None,
            }
            .fit(self.max_message_bytes);
            outgoing.push(Outgoing {
                topic: dead_letter_topic(),
                key: company_id.to_string(),
                headers: letter.header_pairs(),
                payload: letter.payload,
            });
        }
        self.send_all(outgoing).await?;
        crate::metrics::dead_lettered(DeadLetterStage::Map, failed.len());
        Ok(())
    }

    fn producer(&self) -> FutureProducer {
        match self.producer.read() {
            Ok(p) => p.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Swaps in a new producer after a failed send. An idempotent
    /// producer's session can be broken for good, by a fatal error or by a
    /// broker that forgot its sequence numbers (as Tansu does when it
    /// restarts); a new producer has a new id and starts clean. Safe: the
    /// failed page is published again with the same event ids.
    fn renew_producer(&self, error: &ProducerError) {
        let fatal = self.producer().client().fatal_error();
        tracing::warn!(%error, ?fatal, "kafka send failed; replacing the producer");
        match self.config.create::<FutureProducer>() {
            Ok(fresh) => match self.producer.write() {
                Ok(mut p) => *p = fresh,
                Err(poisoned) => *poisoned.into_inner() = fresh,
            },
            Err(e) => tracing::error!(error = %e, "cannot create a new kafka producer"),
        }
    }

    async fn send_all(&self, outgoing: Vec<Outgoing>) -> Result<(), ProducerError> {
        if outgoing.is_empty() {
            return Ok(());
        }
        let result = self.send_with(&self.producer(), outgoing).await;
        match (&result, &self.doorbell) {
            (Err(e), _) => self.renew_producer(e),
            (Ok(()), Some(doorbell)) => doorbell.ring(),
            (Ok(()), None) => {}
        }
        result
    }

    async fn send_with(
        &self,
        producer: &FutureProducer,
        outgoing: Vec<Outgoing>,
    ) -> Result<(), ProducerError> {
        let mut pending: Vec<(String, DeliveryFuture)> = Vec::with_capacity(outgoing.len());
        for message in &outgoing {
            loop {
                let record = FutureRecord::to(&message.topic)
                    .key(&message.key)
                    .payload(&message.payload)
                    .headers(tributary_kafka::headers(&message.headers));
                match producer.send_result(record) {
                    Ok(delivery) => {
                        pending.push((message.topic.clone(), delivery));
                        break;
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                        // The local queue is full: let deliveries drain, then retry.
                        producer.poll(Duration::from_millis(100));
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    Err((e, _)) => {
                        return Err(ProducerError::Kafka(format!(
                            "send to {} on {}: {e}",
                            message.topic, self.bootstrap
                        )));
                    }
                }
            }
        }
        let mut per_topic: HashMap<String, usize> = HashMap::new();
        for (topic, delivery) in pending {
            match delivery.await {
                Ok(Ok(_)) => *per_topic.entry(topic).or_default() += 1,
                Ok(Err((e, _))) => {
                    return Err(ProducerError::Kafka(format!(
                        "delivery to {topic} on {}: {e}",
                        self.bootstrap
                    )));
                }
                Err(_) => {
                    return Err(ProducerError::Kafka(format!(
                        "delivery to {topic} was cancelled"
                    )));
                }
            }
        }
        for (topic, n) in per_topic {
            metrics::events_published(&topic, n);
        }
        Ok(())
    }

    /// Waits for every queued message to be delivered.
    pub fn flush(&self, timeout: Duration) -> Result<(), ProducerError> {
        self.producer()
            .flush(timeout)
            .map_err(|e| ProducerError::Kafka(format!("flush: {e}")))
    }
}
