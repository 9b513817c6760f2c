//! The sandbox connector: deterministic synthetic accounting, commerce and
//! banking data for one company, served through the same [`Connector`]
//! contract as real sources.
//!
//! Its feed behaves like a real incremental API: records come ordered by
//! modification time then id; the cursor is the last `(modified, id)` seen;
//! a record changed twice since the cursor comes once, at its newest version;
//! deleted and voided records come flagged, not dropped. What a sync must end
//! with is [`Generator::expected_live`], which tests and operators can compare
//! the store against.

pub mod generator;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tributary_connector_api::{
    ConnectionInfo, Connector, ConnectorError, ConnectorFactory, CredentialVault, Cursor, Fault,
    MappedRecord, Page, PageRequest,
};
use tributary_schemas::model::*;
use tributary_schemas::{DataType, Record, Timestamp};

pub use generator::{
    BANKING_TYPES, COMMERCE_TYPES, DATA_TYPES, Generator, Kind, SandboxSettings, SourceFailure,
    Version, all_kinds,
};

pub const NAME: &str = "sandbox";

/// The wire shape of one sandbox record, like a source API's JSON.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRecord {
    id: String,
    updated_at: Timestamp,
    deleted: bool,
    data: serde_json::Value,
}

pub struct SandboxConnector {
    generator: Generator,
    /// Page requests so far, for `fail_every`.
    requests: AtomicU32,
}

impl SandboxConnector {
    pub fn new(settings: SandboxSettings, company_id: &str) -> Self {
        SandboxConnector {
            generator: Generator::new(settings, company_id),
            requests: AtomicU32::new(0),
        }
    }

    /// One version as the feed serves it.
    fn raw(v: Version) -> Result<serde_json::Value, ConnectorError> {
        let data = serde_json::to_value(&v.record).map_err(|e| {
            Self::err(
                Fault::Internal,
                format!("cannot encode record {}: {e}", v.id),
            )
        })?;
        serde_json::to_value(RawRecord {
            id: v.id,
            updated_at: v.modified_at,
            deleted: v.deleted,
            data,
        })
        .map_err(|e| Self::err(Fault::Internal, e))
    }

    /// Fails this request if it is one of every `fail_every`.
    async fn maybe_fail(&self) -> Result<(), ConnectorError> {
        let every = self.generator.settings.fail_every;
        let n = self.requests.fetch_add(1, Ordering::Relaxed) + 1;
        if every == 0 || !n.is_multiple_of(every) {
            return Ok(());
        }
        Err(match self.generator.settings.failure {
            SourceFailure::RateLimited => {
                Self::err(Fault::RateLimited, "429 Too Many Requests (injected)")
                    .with_retry_after(Duration::from_secs(1))
            }
            SourceFailure::ServerError => {
                Self::err(Fault::Source, "500 Internal Server Error (injected)")
            }
            SourceFailure::Timeout => {
                tokio::time::sleep(Duration::from_secs(2)).await;
                Self::err(Fault::Source, "no answer within 2 s (injected)")
            }
        })
    }

    fn err(fault: Fault, message: impl std::fmt::Display) -> ConnectorError {
        ConnectorError::new(NAME, fault, message)
    }
}

fn encode_cursor(modified: Timestamp, id: &str) -> Cursor {
    Cursor(format!("{}|{id}", modified.millis()))
}

fn decode_cursor(cursor: &Cursor) -> Result<(Timestamp, String), ConnectorError> {
    cursor
        .0
        .split_once('|')
        .and_then(|(ms, id)| Some((Timestamp(ms.parse().ok()?), id.to_string())))
        .ok_or_else(|| {
            SandboxConnector::err(
                Fault::Internal,
                format!("malformed sandbox cursor {:?}", cursor.0),
            )
        })
}

#[async_trait]
impl Connector for SandboxConnector {
    fn data_types(&self) -> Vec<DataType> {
        self.generator.data_types()
    }

    async fn authenticate(&self) -> Result<(), ConnectorError> {
        Ok(())
    }

    async fn fetch_page(&self, request: &PageRequest) -> Result<Page, ConnectorError> {
        self.maybe_fail().await?;
        if !self.generator.data_types().contains(&request.data_type) {
            return Err(Self::err(
                Fault::User,
                format!("the sandbox has no {}", request.data_type),
            ));
        }
        let after = request.cursor.as_ref().map(decode_cursor).transpose()?;
        let Some(generation) = self.generator.visible_generation(request.now) else {
            return Ok(Page {
                records: vec![],
                next_cursor: request.cursor.clone(),
                has_more: false,
            });
        };
        let page_size = request
            .page_size
            .min(self.generator.settings.max_page_size)
            .max(1) as usize;
        let hard_deletes = self.generator.settings.hard_deletes;
        let pending: Vec<Version> = self
            .generator
            .versions(request.data_type, generation)
            .into_iter()
            .filter(|v| !(hard_deletes && v.deleted))
            .filter(|v| match &after {
                Some((modified, id)) => (v.modified_at, &v.id) > (*modified, id),
                None => true,
            })
            .collect();
        let has_more = pending.len() > page_size;
        let page: Vec<Version> = pending.into_iter().take(page_size).collect();
        let next_cursor = match page.last() {
            Some(last) => Some(encode_cursor(last.modified_at, &last.id)),
            None => request.cursor.clone(),
        };
        let records = page.into_iter().map(Self::raw).collect::<Result<_, _>>()?;
        Ok(Page {
            records,
            next_cursor,
            has_more,
        })
    }

    fn can_fetch_record(&self, data_type: DataType) -> bool {
        self.generator.data_types().contains(&data_type)
    }

    async fn fetch_record(
        &self,
        data_type: DataType,
        id: &str,
        now: Timestamp,
    ) -> Result<Option<serde_json::Value>, ConnectorError> {
        self.maybe_fail().await?;
        let Some(generation) = self.generator.visible_generation(now) else {
            return Ok(None);
        };
        let hard_deletes = self.generator.settings.hard_deletes;
        self.generator
            .versions(data_type, generation)
            .into_iter()
            .find(|v| v.id == id && !(hard_deletes && v.deleted))
            .map(Self::raw)
            .transpose()
    }

    fn map(
        &self,
        data_type: DataType,
        raw: &serde_json::Value,
    ) -> Result<MappedRecord, ConnectorError> {
        let raw: RawRecord = serde_json::from_value(raw.clone())
            .map_err(|e| Self::err(Fault::Data, format!("malformed {data_type} record: {e}")))?;
        let bad = |e: serde_json::Error| {
            Self::err(
                Fault::Data,
                format!("malformed {data_type} record {}: {e}", raw.id),
            )
        };
        let data = raw.data.clone();
        let record = match data_type {
            DataType::Company => Record::Company(serde_json::from_value(data).map_err(bad)?),
            DataType::Account => Record::Account(serde_json::from_value(data).map_err(bad)?),
            DataType::Customer => Record::Customer(serde_json::from_value(data).map_err(bad)?),
            DataType::Supplier => Record::Supplier(serde_json::from_value(data).map_err(bad)?),
            DataType::Invoice => Record::Invoice(serde_json::from_value(data).map_err(bad)?),
            DataType::Bill => Record::Bill(serde_json::from_value(data).map_err(bad)?),
            DataType::Payment => Record::Payment(serde_json::from_value(data).map_err(bad)?),
            DataType::BankTransaction => {
                Record::BankTransaction(serde_json::from_value(data).map_err(bad)?)
            }
            DataType::JournalEntry => {
                let entry: JournalEntry = serde_json::from_value(data).map_err(bad)?;
                if !entry.is_balanced() {
                    return Err(Self::err(
                        Fault::Data,
                        format!("journal entry {} does not balance", raw.id),
                    ));
                }
                Record::JournalEntry(entry)
            }
            DataType::Location => Record::Location(serde_json::from_value(data).map_err(bad)?),
            DataType::Product => Record::Product(serde_json::from_value(data).map_err(bad)?),
            DataType::Order => Record::Order(serde_json::from_value(data).map_err(bad)?),
            DataType::CommercePayment => {
                Record::CommercePayment(serde_json::from_value(data).map_err(bad)?)
            }
            DataType::Refund => Record::Refund(serde_json::from_value(data).map_err(bad)?),
            DataType::Payout => Record::Payout(serde_json::from_value(data).map_err(bad)?),
            DataType::Dispute => Record::Dispute(serde_json::from_value(data).map_err(bad)?),
            DataType::BankAccount => {
                Record::BankAccount(serde_json::from_value(data).map_err(bad)?)
            }
            DataType::BankBalance => {
                Record::BankBalance(serde_json::from_value(data).map_err(bad)?)
            }
            DataType::BankFeedTransaction => {
                Record::BankFeedTransaction(serde_json::from_value(data).map_err(bad)?)
            }
            DataType::DirectDebit => {
                Record::DirectDebit(serde_json::from_value(data).map_err(bad)?)
            }
            DataType::StandingOrder => {
                Record::StandingOrder(serde_json::from_value(data).map_err(bad)?)
            }
            DataType::Connection | DataType::CreditNote | DataType::Item => {
                return Err(Self::err(
                    Fault::User,
                    format!("the sandbox has no {data_type} to map"),
                ));
            }
        };
        let body_id = record.id();
        if body_id != raw.id {
            return Err(Self::err(
                Fault::Data,
                format!("{data_type} record {} carries body id {body_id}", raw.id),
            ));
        }
        Ok(MappedRecord {
            source_record_id: raw.id,
            source_modified_at: raw.updated_at,
            deleted: raw.deleted,
            record: Some(record),
        })
    }
}

/// Builds sandbox connectors from connection settings ([`SandboxSettings`]).
pub struct SandboxFactory;

impl SandboxFactory {
    fn settings(value: &serde_json::Value) -> Result<SandboxSettings, ConnectorError> {
        serde_json::from_value(value.clone()).map_err(|e| {
            SandboxConnector::err(Fault::User, format!("invalid sandbox settings: {e}"))
        })
    }
}

#[async_trait]
impl ConnectorFactory for SandboxFactory {
    fn name(&self) -> &'static str {
        NAME
    }

    fn check_settings(&self, settings: &serde_json::Value) -> Result<(), ConnectorError> {
        Self::settings(settings).map(|_| ())
    }

    fn build(
        &self,
        connection: &ConnectionInfo,
        _vault: Arc<dyn CredentialVault>,
    ) -> Result<Arc<dyn Connector>, ConnectorError> {
        let settings = Self::settings(&connection.settings).map_err(|mut e| {
            e.message = format!("connection {}: {}", connection.connection_id, e.message);
            e
        })?;
        Ok(Arc::new(SandboxConnector::new(
            settings,
            &connection.company_id,
        )))
    }
}
