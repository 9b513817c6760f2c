//! Decoding wire-format messages with the schema each projection was built
//! with as the reader schema.
//!
//! A message names the schema it was written with (the Confluent wire
//! format: magic byte 0, a 4-byte schema id, the Avro body). The writer's
//! schema comes from the registry (cached by id); the reader's is this
//! build's schema of the topic. Avro's schema resolution turns one into
//! the other: a field the writer lacks gets the reader's default, a field
//! the reader lacks is skipped. So events written by an older or a newer
//! compatible version of a schema read the same way, and the registry's
//! BACKWARD rule is what makes that safe.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use apache_avro::Schema;
use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::types::Value;
use tributary_projection::Change;
use tributary_schemas::{DataType, Event, ManifestEvent, SyncRunEvent};

/// Why a message could not be decoded.
#[derive(Debug, Clone, PartialEq)]
pub enum DecodeError {
    /// The registry could not be reached: try the same message again later.
    Retry(String),
    /// The message itself is bad (not the wire format, unknown schema, does
    /// not fit its topic's type): it goes to the dead-letter topic.
    Poison(String),
}

/// What a topic's messages are read as.
struct Reader {
    schema: Schema,
    name: String,
    canonical: String,
    kind: Kind,
}

/// What a topic holds.
#[derive(Clone, Copy)]
enum Kind {
    Record(DataType),
    SyncRun,
    Manifest,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Record(data_type) => data_type.as_str(),
            Kind::SyncRun => "sync_runs",
            Kind::Manifest => "manifests",
        }
    }
}

impl Reader {
    fn of(schema: Schema, kind: Kind) -> Reader {
        Reader {
            name: full_name(&schema),
            canonical: schema.canonical_form(),
            schema,
            kind,
        }
    }
}

/// A writer's schema, as the registry has it.
#[derive(Clone)]
struct Writer {
    schema: Arc<Schema>,
    /// The writer's full record name, to name a wrong type plainly.
    name: String,
    canonical: String,
}

/// Decodes wire-format messages through the schema registry.
pub struct Decoder {
    registry: String,
    http: reqwest::Client,
    readers: HashMap<String, Reader>,
    /// Writers' schemas by registry id: a schema id never changes meaning.
    writers: RwLock<HashMap<u32, Writer>>,
    /// Record name -> data type name, for "a customers event cannot be read as invoices".
    data_type_of_name: HashMap<String, &'static str>,
}

fn full_name(schema: &Schema) -> String {
    match schema {
        Schema::Record(r) => r.name.fullname(None),
        other => format!("{other:?}"),
    }
}

impl Decoder {
    /// A decoder for every topic this build knows, reading with this
    /// build's schemas.
    pub fn new(registry_url: &str) -> Self {
        let mut readers = HashMap::new();
        let mut data_type_of_name = HashMap::new();
        for data_type in DataType::ALL {
            // The schemas are compiled in and tested to parse.
            if let Ok(schema) = data_type.schema() {
                data_type_of_name.insert(full_name(&schema), data_type.as_str());
                readers.insert(
                    data_type.topic(),
                    Reader::of(schema, Kind::Record(data_type)),
                );
            }
        }
        for (topic, schema, kind) in [
            (SyncRunEvent::topic(), SyncRunEvent::schema(), Kind::SyncRun),
            (
                ManifestEvent::topic(),
                ManifestEvent::schema(),
                Kind::Manifest,
            ),
        ] {
            if let Ok(schema) = schema {
                data_type_of_name.insert(full_name(&schema), kind.name());
                readers.insert(topic, Reader::of(schema, kind));
            }
        }
        Decoder {
            registry: registry_url.trim_end_matches('/').to_string(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap_or_default(),
            readers,
            writers: RwLock::default(),
            data_type_of_name,
        }
    }

    /// Decodes one message of `topic`.
    pub async fn decode(&self, topic: &str, payload: Option<&[u8]>) -> Result<Change, DecodeError> {
        let poison = DecodeError::Poison;
        let payload = payload.ok_or_else(|| poison("message has no value".into()))?;
        // Checked here so a stray message never reaches the registry.
        let (id, mut body) = match payload {
            [0, a, b, c, d, body @ ..] => (u32::from_be_bytes([*a, *b, *c, *d]), body),
            _ => {
                return Err(poison(format!(
                    "not in the Confluent wire format ({} bytes)",
                    payload.len()
                )));
            }
        };
        let reader = self
            .readers
            .get(topic)
            .ok_or_else(|| poison(format!("unknown topic {topic}")))?;
        let writer = self.writer(id).await?;
        let reader_name = &reader.name;
        if writer.name != *reader_name {
            let found = self
                .data_type_of_name
                .get(&writer.name)
                .copied()
                .unwrap_or(writer.name.as_str());
            let wanted = reader.kind.name();
            return Err(poison(format!(
                "a {found} event cannot be read as {wanted} (schema {id} is {})",
                writer.name
            )));
        }
        // The same schema as this build's: no resolution needed.
        let same = writer.canonical == reader.canonical;
        let misfit = |e: apache_avro::Error| {
            poison(format!(
                "does not fit schema {id} read as {reader_name}: {e}"
            ))
        };
        let value: Value = GenericDatumReader::builder(&writer.schema)
            .maybe_reader_schema((!same).then_some(&reader.schema))
            .build()
            .map_err(misfit)?
            .read_value(&mut body)
            .map_err(misfit)?;
        if !body.is_empty() {
            return Err(poison(format!(
                "{} bytes left after the record (schema {id})",
                body.len()
            )));
        }
        match reader.kind {
            Kind::SyncRun => SyncRunEvent::from_avro(&value)
                .map(Change::SyncRun)
                .map_err(|e| poison(e.to_string())),
            Kind::Manifest => ManifestEvent::from_avro(&value)
                .map(Change::Manifest)
                .map_err(|e| poison(e.to_string())),
            Kind::Record(data_type) => Event::from_avro(data_type, &value)
                .map(Change::Record)
                .map_err(|e| poison(e.to_string())),
        }
    }

    /// The writer's schema `id`, from the cache or the registry.
    async fn writer(&self, id: u32) -> Result<Writer, DecodeError> {
        if let Some(found) = self.writers.read().ok().and_then(|w| w.get(&id).cloned()) {
            return Ok(found);
        }
        let url = format!("{}/schemas/ids/{id}", self.registry);
        let retry = |e: String| DecodeError::Retry(format!("schema registry {url}: {e}"));
        let response = self
            .http
            .get(&url)
            .send()
            .await
            .map_err(|e| retry(e.to_string()))?;
        let status = response.status();
        if status == reqwest::StatusCode::NOT_FOUND {
            return Err(DecodeError::Poison(format!(
                "unknown schema id {id} (the registry has none)"
            )));
        }
        if !status.is_success() {
            return Err(retry(format!("answered {status}")));
        }
        #[derive(serde::Deserialize)]
        struct Found {
            schema: String,
        }
        let found: Found = response
            .json()
            .await
            .map_err(|e| retry(format!("unreadable answer: {e}")))?;
        let schema = Schema::parse_str(&found.schema).map_err(|e| {
            DecodeError::Poison(format!("schema {id} from the registry does not parse: {e}"))
        })?;
        let writer = Writer {
            name: full_name(&schema),
            canonical: schema.canonical_form(),
            schema: Arc::new(schema),
        };
        if let Ok(mut writers) = self.writers.write() {
            writers.insert(id, writer.clone());
        }
        Ok(writer)
    }
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
            let Err(DecodeError::Poison(err)) = decoder.decode(&topic, payload).await else {
                panic!("{payload:?} should be poison")
            };
            assert!(err.contains(words), "{err}");
        }
    }

    #[tokio::test]
    async fn an_unreachable_registry_is_retried_not_poison() {
        let decoder = Decoder::new("http://127.0.0.1:1");
        let result = decoder
            .decode(&DataType::Invoice.topic(), Some(&[0, 0, 0, 0, 7, 1, 2]))
            .await;
        assert!(matches!(result, Err(DecodeError::Retry(_))), "{result:?}");
    }
}
