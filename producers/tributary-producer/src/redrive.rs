//! Dead-letter redrive for every stage. A `map` letter holds the raw record
//! a connector could not map: replaying it maps it again with the connector
//! as it is now (a fixed one) and publishes the event, at the connection
//! and data type's current revision, as a sync would; a letter cut to fit
//! (a record too large) holds only the record's start, so its replay queues
//! a refetch of the record by its id instead, where the source can. A
//! `decode` or `store` letter is sent back to the topic it was read from
//! ([`dead_letters::replay`]). A replayed letter is marked in the
//! dead-letter topic, so `replay --all` does not send it again.

use std::sync::Arc;

use rdkafka::ClientConfig;
use serde_json::{Value, json};
use tributary_connector_api::ConnectorRegistry;
use tributary_connector_api::admin::{AdminError, DeadLetterAdmin, LetterFilter, LetterView};
use tributary_connector_api::views::{self, LetterBody};
use tributary_kafka::dead_letters::{self, ReplayError, StoredLetter};
use tributary_kafka::{DeadLetter, Origin};
use tributary_schemas::{DataType, DeadLetterStage, SyncTrigger, Timestamp};

use crate::secrets::Cipher;
use crate::state::AlreadyOpen;
use crate::vault::StateVault;
use crate::{Admin, Publisher, StateStore, event_of};

/// What a replay did.
#[derive(Debug, Clone, PartialEq)]
pub enum Replayed {
    /// A `map` record mapped now, and its event published.
    Published {
        event_id: String,
        source_record_id: String,
    },
    /// A `map` letter cut to fit: its record is fetched again by id, by the
    /// refetch run queued.
    Refetching { run_id: String, record_id: String },
    /// A `decode` or `store` message sent back to `topic`.
    Resent { topic: String },
}

/// Why a letter was not replayed.
#[derive(Debug, thiserror::Error)]
pub enum RedriveError {
    /// By rule: it will never be replayed (cut, replayed too often, its
    /// connection gone).
    #[error("{0}")]
    Refused(String),
    /// The record still fails; the letter stays, to be replayed after a fix.
    #[error("{0}")]
    StillFails(String),
    /// The broker, the registry or the state store failed: try again.
    #[error("{0}")]
    Failed(String),
}

impl From<ReplayError> for RedriveError {
    fn from(e: ReplayError) -> Self {
        match e {
            ReplayError::Refused(m) => RedriveError::Refused(m),
            ReplayError::Failed(e) => RedriveError::Failed(e.to_string()),
        }
    }
}

/// Replays dead letters of every stage.
pub struct Redrive {
    pub client: ClientConfig,
    pub publisher: Arc<Publisher>,
    pub state: StateStore,
    pub registry: Arc<ConnectorRegistry>,
    pub cipher: Arc<Cipher>,
}

/// The company a letter belongs to: its key (events and letters are keyed
/// by company).
fn company_of(letter: &DeadLetter) -> Option<String> {
    letter
        .key
        .as_ref()
        .and_then(|k| String::from_utf8(k.clone()).ok())
}

/// The data type a letter is of: its origin's, or its topic's.
fn data_type_of(letter: &DeadLetter) -> Option<DataType> {
    match &letter.origin {
        Origin::Source { data_type, .. } => data_type.parse().ok(),
        Origin::Topic { topic, .. } => DataType::ALL.iter().copied().find(|t| t.topic() == *topic),
    }
}

/// A letter as the API shows it.
pub fn letter_view(stored: &StoredLetter) -> LetterView {
    let mut view = LetterBody {
        id: stored.at(),
        replayed: stored.replayed,
        ..LetterBody::default()
    };
    match &stored.letter {
        Err(why) => view.unreadable = Some(why.to_string()),
        Ok(l) => {
            view.stage = Some(l.stage.as_str().to_string());
            view.reason = Some(l.reason.clone());
            view.company_id = company_of(l);
            view.data_type = data_type_of(l).map(|t| t.as_str().to_string());
            view.replays = Some(i64::from(l.replays));
            view.payload_bytes = Some(l.payload.len() as i64);
            view.cut = l
                .cut
                .as_ref()
                .map(|c| json!({"original_size": c.original_size, "sha256": c.sha256}));
            view.origin = Some(match &l.origin {
                Origin::Source {
                    connection_id,
                    data_type,
                    record_id,
                } => {
                    json!({"connection_id": connection_id, "data_type": data_type, "record_id": record_id})
                }
                Origin::Topic {
                    projection,
                    topic,
                    partition,
                    offset,
                } => {
                    json!({"projection": projection, "topic": topic, "partition": partition, "offset": offset})
                }
            });
        }
    }
    views::json(&view)
}

impl Redrive {
    /// A redrive sharing `admin`'s state, connectors and cipher.
    pub fn new(client: ClientConfig, publisher: Arc<Publisher>, admin: &Admin) -> Redrive {
        Redrive {
            client,
            publisher,
            state: admin.state.clone(),
            registry: Arc::clone(&admin.registry),
            cipher: Arc::clone(&admin.cipher),
        }
    }

    /// Replays one letter (see the module's doc). Does not mark it.
    pub async fn replay(&self, stored: &StoredLetter) -> Result<Replayed, RedriveError> {
        let at = stored.at();
        let letter = stored.letter.as_ref().map_err(|why| {
            RedriveError::Refused(format!("dead letter {at} cannot be read: {why}"))
        })?;
        if letter.stage != DeadLetterStage::Map {
            let topic = dead_letters::replay(&self.client, stored).await?;
            return Ok(Replayed::Resent { topic });
        }
        let Origin::Source {
            connection_id,
            data_type,
            record_id,
        } = &letter.origin
        else {
            return Err(RedriveError::Refused(format!(
                "dead letter {at} is a map letter without its connection"
            )));
        };
        let data_type: DataType = data_type
            .parse()
            .map_err(|e| RedriveError::Refused(format!("dead letter {at}: {e}")))?;
        let failed = |e: crate::ProducerError| RedriveError::Failed(e.to_string());
        let stored_connection = self
            .state
            .connection(connection_id)
            .await
            .map_err(failed)?
            .ok_or_else(|| {
                RedriveError::Refused(format!(
                    "dead letter {at}: connection {connection_id} no longer exists"
                ))
            })?;
        let info = &stored_connection.info;
        let connector = self
            .registry
            .build(
                info,
                StateVault::new(&self.state, &self.cipher, connection_id),
            )
            .map_err(|e| RedriveError::StillFails(format!("dead letter {at}: {e}")))?;
        if let Some(cut) = &letter.cut {
            // Only the start of the record is here: fetch it again by id.
            let cannot = || {
                RedriveError::Refused(format!(
                    "dead letter {at} holds only the first {} of {} bytes of its record, and {} cannot fetch it by id: resync its data type to fetch it again",
                    letter.payload.len(),
                    cut.original_size,
                    info.source
                ))
            };
            let record_id = record_id.as_ref().ok_or_else(cannot)?;
            if !connector.can_fetch_record(data_type) {
                return Err(cannot());
            }
            let wanted = [(connection_id.as_str(), info.company_id.as_str(), data_type)];
            return match self
                .state
                .queue_runs(&wanted, SyncTrigger::Refetch, Some(record_id))
                .await
                .map_err(failed)?
            {
                Ok(runs) => Ok(Replayed::Refetching {
                    run_id: runs.first().map(|r| r.id.clone()).unwrap_or_default(),
                    record_id: record_id.clone(),
                }),
                Err(AlreadyOpen(open)) => Err(RedriveError::StillFails(format!(
                    "dead letter {at}: a {data_type} run of {connection_id} is {} ({}); replay it once that ended",
                    open.status, open.id
                ))),
            };
        }
        let raw: Value = serde_json::from_slice(&letter.payload).map_err(|e| {
            RedriveError::Refused(format!("dead letter {at} does not hold JSON: {e}"))
        })?;
        let mapped = connector.map(data_type, &raw).map_err(|e| {
            RedriveError::StillFails(format!("dead letter {at} still cannot be mapped: {e}"))
        })?;
        let revision = self
            .state
            .revision(connection_id, data_type)
            .await
            .map_err(failed)?;
        let now = Timestamp::now();
        let event = event_of(info, data_type, mapped, revision, now);
        let (event_id, source_record_id) = (event.event_id.clone(), event.source_record_id.clone());
        let seen = crate::worker::seen_of(&event);
        let too_large = self
            .publisher
            .publish_events(std::slice::from_ref(&event))
            .await
            .map_err(failed)?;
        if let Some(t) = too_large.first() {
            return Err(RedriveError::StillFails(format!("dead letter {at}: {t}")));
        }
        // Live now: a reconciliation knows it was published.
        self.state
            .track(connection_id, data_type, &[seen], now)
            .await
            .map_err(failed)?;
        Ok(Replayed::Published {
            event_id,
            source_record_id,
        })
    }

    async fn read(&self) -> Result<Vec<StoredLetter>, AdminError> {
        dead_letters::read_all(&self.client)
            .await
            .map_err(|e| AdminError::Failed(e.to_string()))
    }

    async fn find(&self, id: &str) -> Result<StoredLetter, AdminError> {
        self.read()
            .await?
            .into_iter()
            .find(|l| l.at() == id)
            .ok_or_else(|| AdminError::NotFound(format!("no dead letter {id:?}")))
    }
}

#[async_trait::async_trait]
impl DeadLetterAdmin for Redrive {
    async fn letters(&self, filter: &LetterFilter) -> Result<Vec<LetterView>, AdminError> {
        let after = match &filter.after {
            Some(id) => Some(parse_id(id)?),
            None => None,
        };
        Ok(self
            .read()
            .await?
            .iter()
            .filter(|l| after.is_none_or(|a| (l.partition, l.offset) > a))
            .filter(|l| {
                let letter = l.letter.as_ref().ok();
                let company = letter.and_then(company_of);
                filter
                    .companies
                    .as_ref()
                    .is_none_or(|allowed| company.as_ref().is_some_and(|c| allowed.contains(c)))
                    && filter
                        .stage
                        .is_none_or(|s| letter.is_some_and(|l| l.stage == s))
                    && filter
                        .data_type
                        .is_none_or(|t| letter.and_then(data_type_of) == Some(t))
            })
            .take(filter.limit as usize)
            .map(letter_view)
            .collect())
    }

    async fn letter(&self, id: &str) -> Result<LetterView, AdminError> {
        parse_id(id)?;
        Ok(letter_view(&self.find(id).await?))
    }

    async fn payload(&self, id: &str) -> Result<Vec<u8>, AdminError> {
        parse_id(id)?;
        match self.find(id).await?.letter {
            Ok(letter) => Ok(letter.payload),
            Err(why) => Err(AdminError::BadRequest(format!(
                "dead letter {id} cannot be read: {why}"
            ))),
        }
    }

    async fn replay(&self, id: &str) -> Result<Value, AdminError> {
        let (partition, offset) = parse_id(id)?;
        let stored = self.find(id).await?;
        if stored.replayed {
            return Err(AdminError::BadRequest(format!(
                "dead letter {id} was replayed already"
            )));
        }
        let outcome = match Redrive::replay(self, &stored).await {
            Ok(outcome) => outcome,
            Err(RedriveError::Failed(m)) => return Err(AdminError::Failed(m)),
            Err(e) => return Err(AdminError::BadRequest(e.to_string())),
        };
        dead_letters::mark_replayed(&self.client, &[(partition, offset)])
            .await
            .map_err(|e| AdminError::Failed(e.to_string()))?;
        tracing::info!(letter = %id, ?outcome, "dead letter replayed");
        Ok(match outcome {
            Replayed::Published {
                event_id,
                source_record_id,
            } => {
                json!({"id": id, "outcome": "published", "event_id": event_id, "source_record_id": source_record_id})
            }
            Replayed::Refetching { run_id, record_id } => {
                json!({"id": id, "outcome": "refetching", "run_id": run_id, "record_id": record_id})
            }
            Replayed::Resent { topic } => json!({"id": id, "outcome": "resent", "topic": topic}),
        })
    }
}

/// A letter id: `PARTITION@OFFSET`.
fn parse_id(id: &str) -> Result<(i32, i64), AdminError> {
    id.split_once('@')
        .and_then(|(p, o)| Some((p.parse().ok()?, o.parse().ok()?)))
        .ok_or_else(|| {
            AdminError::BadRequest(format!(
                "dead letter id {id:?} is not PARTITION@OFFSET (as listed)"
            ))
        })
}
