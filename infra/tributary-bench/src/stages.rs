//! Each stage alone, in this process, on the same records: fetch+map,
//! Avro encode/decode, publish, consume+decode, store apply (SQLite and
//! PostgreSQL), index apply; and the raw limits beside them: PostgreSQL COPY
//! of the same rows, librdkafka produce and consume of the same bytes, on
//! the same broker.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use tokio::sync::watch;
use tributary_connector_api::{
    ConnectionInfo, ConnectorError, ConnectorFactory, CredentialVault, Credentials, PageRequest,
};
use tributary_projection::{Batch, Checkpoint, Projection, ProjectionError};
use tributary_schemas::{DataType, Event, Timestamp, event_id};

use crate::source::{Source, tenant_id};

/// One measured stage: records and seconds.
pub(crate) struct Measured {
    pub name: String,
    pub records: usize,
    pub seconds: f64,
}

impl Measured {
    pub(crate) fn rate(&self) -> f64 {
        self.records as f64 / self.seconds.max(1e-9)
    }
}

fn measured(name: &str, records: usize, since: Instant) -> Measured {
    Measured {
        name: name.to_string(),
        records,
        seconds: since.elapsed().as_secs_f64(),
    }
}

struct Vault;

#[async_trait::async_trait]
impl CredentialVault for Vault {
    async fn load(&self) -> Result<Option<Credentials>, ConnectorError> {
        Ok(Some(Credentials(serde_json::json!({
            "access_token": "bench-access", "refresh_token": "bench-refresh",
            "expires_at": Timestamp::now().millis() + 86_400_000
        }))))
    }
    async fn save(&self, _: &Credentials) -> Result<(), ConnectorError> {
        Ok(())
    }
}

/// Fetches and maps every invoice of the source with the real Xero
/// connector; keeps the first `keep` as events for the other stages.
pub(crate) async fn fetch_and_map(
    source: &Source,
    keep: usize,
) -> anyhow::Result<(Measured, Vec<Event>)> {
    let mut app = tributary_connector_xero::XeroApp::new("bench", "bench", "http://127.0.0.1/cb");
    app.api_url = source.api_url();
    app.token_url = format!("{}/connect/token", source.url);
    app.connections_url = format!("{}/connections", source.url);
    app.authorize_url = format!("{}/authorize", source.url);
    app.network = tributary_connector_http::NetworkPolicy {
        allow_private: true,
    };
    let factory = tributary_connector_xero::XeroFactory::new(app)?;
    let started = Instant::now();
    let mut events = Vec::with_capacity(keep);
    let mut n = 0;
    for (t, tenant) in source.tenants.iter().enumerate() {
        let info = ConnectionInfo {
            connection_id: format!("conn-{t}"),
            company_id: crate::e2e::company(t),
            source: "xero".into(),
            settings: serde_json::json!({ "tenant_id": tenant_id(t) }),
        };
        let connector = factory.build(&info, Arc::new(Vault))?;
        let mut cursor = None;
        loop {
            let now = Timestamp::now();
            let page = connector
                .fetch_page(&PageRequest {
                    data_type: DataType::Invoice,
                    cursor: cursor.clone(),
                    now,
                    page_size: 1000,
                })
                .await?;
            for raw in &page.records {
                let m = connector.map(DataType::Invoice, raw)?;
                n += 1;
                if events.len() < keep {
                    events.push(Event {
                        event_id: event_id(
                            &info.connection_id,
                            DataType::Invoice,
                            &m.source_record_id,
                            m.source_modified_at,
                            m.deleted,
                            0,
                        ),
                        company_id: info.company_id.clone(),
                        connection_id: info.connection_id.clone(),
                        data_type: DataType::Invoice.as_str().into(),
                        source: "xero".into(),
                        source_record_id: m.source_record_id,
                        source_modified_at: m.source_modified_at,
                        fetched_at: now,
                        deleted: m.deleted,
                        revision: 0,
                        record: m.record,
                    });
                }
            }
            cursor = page.next_cursor;
            if !page.has_more {
                break;
            }
        }
        anyhow::ensure!(
            n >= tenant.invoices,
            "tenant {t}: fetched fewer invoices than served"
        );
    }
    Ok((measured("fetch + map (Xero connector)", n, started), events))
}

/// Avro encode and decode of every event, bare datums.
pub(crate) fn avro(events: &[Event]) -> anyhow::Result<(Measured, Measured, Vec<Vec<u8>>)> {
    let schema = DataType::Invoice.schema()?;
    let started = Instant::now();
    let encoded: Vec<Vec<u8>> = events
        .iter()
        .map(|e| tributary_schemas::to_avro_datum(&schema, e))
        .collect::<Result<_, _>>()?;
    let encode = measured("Avro encode", events.len(), started);
    let started = Instant::now();
    for bytes in &encoded {
        let value = tributary_schemas::from_avro_datum(&schema, bytes)?;
        Event::from_avro(DataType::Invoice, &value)?;
    }
    let decode = measured("Avro decode", events.len(), started);
    Ok((encode, decode, encoded))
}

/// Batches of events as a projector would hand them over.
pub(crate) fn batches(events: &[Event], size: usize) -> Vec<Batch> {
    let topic = DataType::Invoice.topic();
    events
        .chunks(size)
        .enumerate()
        .map(|(b, chunk)| Batch::of_events(&topic, 0, (b * size) as i64, chunk.to_vec()))
        .collect()
}

pub(crate) async fn apply<P: Projection>(
    name: &str,
    mut projection: P,
    batches: &[Batch],
) -> anyhow::Result<Measured> {
    let n = batches.iter().map(|b| b.items.len()).sum();
    let started = Instant::now();
    for batch in batches {
        projection.apply(batch).await?;
    }
    Ok(measured(name, n, started))
}

/// PostgreSQL COPY of the same rows into a table of the store's shape.
pub(crate) async fn copy(url: &str, events: &[Event]) -> anyhow::Result<Measured> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(url).await?;
    sqlx::query(
        "CREATE TABLE copy_records (company_id TEXT NOT NULL, data_type TEXT NOT NULL, record_id TEXT NOT NULL, \
         connection_id TEXT NOT NULL, source TEXT NOT NULL, event_id TEXT NOT NULL, source_modified_at BIGINT NOT NULL, \
         fetched_at BIGINT NOT NULL, deleted BOOLEAN NOT NULL, data JSONB, PRIMARY KEY (company_id, data_type, record_id))",
    )
    .execute(&mut conn)
    .await?;
    sqlx::query("CREATE INDEX copy_by_version ON copy_records (company_id, data_type, source_modified_at, record_id)")
        .execute(&mut conn)
        .await?;
    let started = Instant::now();
    for chunk in events.chunks(10_000) {
        let mut text = String::new();
        for e in chunk {
            let data = serde_json::to_string(&e.record)?;
            // COPY text format: tabs separate, backslashes escape.
            let data = data
                .replace('\\', "\\\\")
                .replace('\t', "\\t")
                .replace('\n', "\\n");
            text.push_str(&format!(
                "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\n",
                e.company_id,
                e.data_type,
                e.source_record_id,
                e.connection_id,
                e.source,
                e.event_id,
                e.source_modified_at.millis(),
                e.fetched_at.millis(),
                if e.deleted { "t" } else { "f" },
                data
            ));
        }
        let mut copy = conn.copy_in_raw("COPY copy_records FROM STDIN").await?;
        copy.send(text.into_bytes()).await?;
        copy.finish().await?;
    }
    Ok(measured("PostgreSQL COPY (limit)", events.len(), started))
}

/// When consuming started (at its first batch, so consumer start-up is
/// excluded), how many records that batch had, and when the last arrived.
type Timing = std::sync::Arc<std::sync::Mutex<Option<(Instant, usize, Instant)>>>;

/// A projection that only counts, to time consume + decode alone.
struct Count {
    seen: usize,
    want: usize,
    done: watch::Sender<bool>,
    first: Option<(Instant, usize)>,
    timing: Timing,
}

#[async_trait::async_trait]
impl Projection for Count {
    fn name(&self) -> &'static str {
        "bench-count"
    }
    async fn checkpoint(&mut self) -> Result<Checkpoint, ProjectionError> {
        Ok(Checkpoint::new())
    }
    async fn apply(&mut self, batch: &Batch) -> Result<(), ProjectionError> {
        self.seen += batch.items.len();
        let (first, first_batch) = *self
            .first
            .get_or_insert_with(|| (Instant::now(), batch.items.len()));
        if self.seen >= self.want {
            *self.timing.lock().unwrap() = Some((first, first_batch, Instant::now()));
            let _ = self.done.send(true);
        }
        Ok(())
    }
}

/// Publishes the events (idempotent producer, Avro with the registry), then
/// consumes and decodes them with the projector's loop.
pub(crate) async fn publish_and_consume(
    client: &ClientConfig,
    registry: &str,
    events: &[Event],
) -> anyhow::Result<(Measured, Measured)> {
    let publisher = tributary_producer::Publisher::new(client, registry)?;
    // Registration and connection happen once, before the clock starts.
    publisher.publish_events(&events[..1]).await?;
    let started = Instant::now();
    for chunk in events.chunks(1000) {
        publisher.publish_events(chunk).await?;
    }
    let publish = measured("publish (idempotent, acked)", events.len(), started);
    drop(publisher);
    let (tx, rx) = watch::channel(false);
    let timing = Timing::default();
    let count = Count {
        seen: 0,
        want: events.len() + 1,
        done: tx,
        first: None,
        timing: std::sync::Arc::clone(&timing),
    };
    let settings = tributary_projector::ProjectorSettings {
        batch_size: 2000,
        linger: Duration::from_millis(50),
        topics: vec![DataType::Invoice.topic()],
        assignment: tributary_projector::Assignment::All,
        rest: None,
    };
    tokio::time::timeout(
        Duration::from_secs(600),
        tributary_projector::run(client, registry, vec![count], settings, rx),
    )
    .await
    .context("consume did not finish in 10 minutes")??;
    let timing = timing.lock().unwrap().take();
    let (first, first_batch, finished) = timing.context("consume saw no records")?;
    let consume = Measured {
        name: "consume + decode".into(),
        records: events.len() + 1 - first_batch,
        seconds: (finished - first).as_secs_f64(),
    };
    Ok((publish, consume))
}

/// librdkafka alone: produce the same encoded bytes, then consume them.
pub(crate) fn raw_kafka(
    client: &ClientConfig,
    topic: &str,
    payloads: &[Vec<u8>],
) -> anyhow::Result<(Measured, Measured)> {
    let mut producer_config = client.clone();
    producer_config
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .set("queue.buffering.max.messages", "1000000");
    let producer: BaseProducer = producer_config.create()?;
    // Connection and producer id before the clock starts, as for publish.
    producer
        .send(BaseRecord::to(topic).key("warm-up").payload(&payloads[0]))
        .map_err(|(e, _)| e)?;
    producer.flush(Duration::from_secs(30))?;
    let started = Instant::now();
    for (i, payload) in payloads.iter().enumerate() {
        let key = format!("company-{:03}", i % 10);
        loop {
            match producer.send(BaseRecord::to(topic).key(&key).payload(payload)) {
                Ok(()) => break,
                Err((e, _))
                    if e.rdkafka_error_code()
                        == Some(rdkafka::types::RDKafkaErrorCode::QueueFull) =>
                {
                    producer.poll(Duration::from_millis(10));
                }
                Err((e, _)) => return Err(e.into()),
            }
        }
        producer.poll(Duration::ZERO);
    }
    producer.flush(Duration::from_secs(120))?;
    let produce = measured("librdkafka produce (limit)", payloads.len(), started);
    drop(producer);

    let mut consumer_config = client.clone();
    consumer_config
        .set("group.id", "tributary-bench-raw")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", "10");
    let consumer: BaseConsumer = consumer_config.create()?;
    consumer.subscribe(&[topic])?;
    let started = Instant::now();
    let mut n = 0;
    let deadline = Instant::now() + Duration::from_secs(600);
    while n < payloads.len() && Instant::now() < deadline {
        if let Some(message) = consumer.poll(Duration::from_millis(100)) {
            message?;
            n += 1;
        }
    }
    anyhow::ensure!(
        n == payloads.len(),
        "consumed {n} of {} raw messages",
        payloads.len()
    );
    Ok((produce, measured("librdkafka consume (limit)", n, started)))
}
