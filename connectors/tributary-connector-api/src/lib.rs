//! The connector contract.
//!
//! A connector does one step at a time and owns no loop:
//! - [`Connector::authenticate`] proves the connection's credentials work;
//! - [`Connector::fetch_page`] fetches exactly one page after a cursor;
//! - [`Connector::map`] turns one raw source record into the common data
//!   model, purely: no I/O, no clock.
//!
//! Looping over pages, rate limiting, retries, publishing and saving cursors
//! belong to the runtime (`tributary-producer`). A connector never depends on
//! Kafka or a database, so it is fast to test.
//!
//! Credentials (OAuth tokens, API keys) are opaque JSON owned by the
//! connector, kept by the runtime in a [`CredentialVault`] that encrypts them
//! at rest. A connector that rotates credentials (OAuth2 refresh) saves the
//! new ones through the vault before it uses them.
//!
//! Rate limits are declared by the connector ([`Connector::rate_limits`]) and
//! enforced by the runtime, shared by every connection with the same key.
//!
//! Cursors are opaque strings owned by the connector. The runtime saves the
//! cursor returned with a page only after every record of that page was
//! published, so a crash re-fetches at most one page: delivery is
//! at-least-once, and deterministic event ids make the repeat harmless.

pub mod admin;
pub mod fields;
pub mod views;
pub mod webhook_events;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tributary_schemas::{DataType, Record, Timestamp};

/// What the runtime knows about one company's connection to a source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConnectionInfo {
    pub connection_id: String,
    pub company_id: String,
    /// The connector's name, for example `sandbox`.
    pub source: String,
    /// Connector-specific settings, checked by the connector's factory.
    pub settings: serde_json::Value,
}

/// A connector's app settings from its `[connectors.<source>]` table of
/// the configuration (given as JSON); no table gives the defaults.
pub fn app_settings<T: serde::de::DeserializeOwned + Default>(
    table: Option<&serde_json::Value>,
    source: &str,
) -> Result<T, ConnectorError> {
    match table {
        None => Ok(T::default()),
        Some(table) => serde_json::from_value(table.clone()).map_err(|e| {
            ConnectorError::new(
                source,
                Fault::User,
                format!("invalid [connectors.{source}]: {e}"),
            )
        }),
    }
}

/// A position in a source's change feed, opaque to the runtime.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Cursor(pub String);

impl Cursor {
    /// A connector's own position state, as JSON.
    pub fn encode<T: Serialize>(state: &T) -> Cursor {
        Cursor(serde_json::to_string(state).unwrap_or_default())
    }

    /// Reads back what [`Cursor::encode`] wrote; no cursor is the default
    /// state (the start). A cursor that does not read is `source`'s bug.
    pub fn decode<T: serde::de::DeserializeOwned + Default>(
        cursor: Option<&Cursor>,
        source: &str,
    ) -> Result<T, ConnectorError> {
        match cursor {
            None => Ok(T::default()),
            Some(c) => serde_json::from_str(&c.0).map_err(|e| {
                ConnectorError::new(
                    source,
                    Fault::Internal,
                    format!("malformed {source} cursor {:?}: {e}", c.0),
                )
            }),
        }
    }
}

/// What the runtime asks for.
#[derive(Debug, Clone)]
pub struct PageRequest {
    pub data_type: DataType,
    /// Resume after this position; `None` starts from the beginning.
    pub cursor: Option<Cursor>,
    /// The runtime's clock, so that connectors need none of their own.
    pub now: Timestamp,
    pub page_size: u32,
}

/// One page of raw records, as the source gave them.
#[derive(Debug, Clone)]
pub struct Page {
    pub records: Vec<serde_json::Value>,
    /// Where the next request resumes. Saved only once this page's records
    /// are safely published.
    pub next_cursor: Option<Cursor>,
    /// Whether the source has more records after this page right now.
    pub has_more: bool,
}

/// One source record in the common data model.
#[derive(Debug, Clone, PartialEq)]
pub struct MappedRecord {
    pub source_record_id: String,
    /// The record's version at the source.
    pub source_modified_at: Timestamp,
    /// Deleted, voided or archived-away at the source: flagged, never dropped.
    pub deleted: bool,
    /// `None` only for a delete the source gave no body for.
    pub record: Option<Record>,
}

/// Who is at fault when a step fails, which decides what the runtime does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Bad settings or credentials: retrying will not help until a person acts.
    User,
    /// The source is down, slow or refusing: retry after a while.
    Source,
    /// The source asked us to slow down: retry after `retry_after`.
    RateLimited,
    /// One record is malformed: skip it to the dead-letter topic, keep going.
    Data,
    /// A bug on our side.
    Internal,
}

/// A failed connector step.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{connector}: {message}")]
pub struct ConnectorError {
    pub connector: String,
    pub fault: Fault,
    pub message: String,
    /// How long the source asked us to wait, when it said.
    pub retry_after: Option<Duration>,
}

impl ConnectorError {
    pub fn new(connector: &str, fault: Fault, message: impl fmt::Display) -> Self {
        ConnectorError {
            connector: connector.to_string(),
            fault,
            message: message.to_string(),
            retry_after: None,
        }
    }

    pub fn with_retry_after(mut self, after: Duration) -> Self {
        self.retry_after = Some(after);
        self
    }

    /// Whether trying the same step again later can succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self.fault, Fault::Source | Fault::RateLimited)
    }
}

/// A connection's secrets, as the connector defines them. `Debug` never
/// shows them.
#[derive(Clone, PartialEq)]
pub struct Credentials(pub serde_json::Value);

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Credentials([redacted])")
    }
}

/// Where one connection's credentials are kept (encrypted at rest by the
/// runtime's implementation).
#[async_trait]
pub trait CredentialVault: Send + Sync {
    /// The saved credentials, `None` before the connection was authorized.
    async fn load(&self) -> Result<Option<Credentials>, ConnectorError>;
    /// Replaces the saved credentials durably: returns only once they would
    /// survive a crash.
    async fn save(&self, credentials: &Credentials) -> Result<(), ConnectorError>;
}

/// Call limits a source puts on one key (a tenant, an API key), enforced by
/// the runtime across every connection that shares the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimits {
    /// Connections with the same key share the limits, for example
    /// `xero:<tenant id>`.
    pub key: String,
    pub per_minute: Option<u32>,
    pub per_day: Option<u32>,
    pub concurrent: Option<u32>,
}

/// One company's connection to one source, ready to fetch.
#[async_trait]
pub trait Connector: Send + Sync {
    /// The limits the runtime must keep this connection's calls within.
    fn rate_limits(&self) -> Option<RateLimits> {
        None
    }

    /// The data types this source can provide, in the order to sync them
    /// (referenced records first).
    fn data_types(&self) -> Vec<DataType>;

    /// Checks that the credentials work.
    async fn authenticate(&self) -> Result<(), ConnectorError>;

    /// Fetches one page after `request.cursor`.
    async fn fetch_page(&self, request: &PageRequest) -> Result<Page, ConnectorError>;

    /// Whether [`Connector::fetch_record`] can fetch one `data_type`
    /// record by its source id. Sources that cannot say no (the default).
    fn can_fetch_record(&self, data_type: DataType) -> bool {
        let _ = data_type;
        false
    }

    /// Fetches one raw record of `data_type` by its source id, as a page
    /// would hold it; `None` when the source has no such record. Only
    /// called where [`Connector::can_fetch_record`] says yes.
    async fn fetch_record(
        &self,
        data_type: DataType,
        id: &str,
        now: Timestamp,
    ) -> Result<Option<serde_json::Value>, ConnectorError> {
        let _ = (id, now);
        Err(ConnectorError::new(
            "runtime",
            Fault::User,
            format!("this source cannot fetch one {data_type} record by id"),
        ))
    }

    /// Maps one raw record of `data_type`. Pure.
    fn map(
        &self,
        data_type: DataType,
        raw: &serde_json::Value,
    ) -> Result<MappedRecord, ConnectorError>;
}

/// A webhook as a source sent it: header names in lowercase, the body
/// exactly as received (signatures are over its bytes).
#[derive(Debug, Clone, Default)]
pub struct Webhook {
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

/// What a verified webhook says changed: data types of one of the source's
/// tenants (the organisation or merchant a connection reads, as
/// [`ConnectorFactory::tenant`] names it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceChange {
    pub tenant: String,
    pub data_types: Vec<DataType>,
}

/// Why a webhook was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookRefusal {
    /// Its signature is missing or wrong: nothing of it is believed.
    #[error("{0}")]
    Unverified(String),
    /// This source sends none, or none is configured to be received.
    #[error("{0}")]
    NotReceived(String),
    /// Signed, but not what the source sends.
    #[error("{0}")]
    Malformed(String),
}

/// Builds connectors of one kind from their connection's settings.
#[async_trait]
pub trait ConnectorFactory: Send + Sync {
    /// The name connections use in `source`, for example `sandbox`.
    fn name(&self) -> &'static str;

    /// Checks `settings` for a new connection, before it is saved.
    fn check_settings(&self, settings: &serde_json::Value) -> Result<(), ConnectorError>;

    /// Whether a person must grant access (OAuth2) before the connection
    /// can sync. Such connections start as `pending_auth`.
    fn needs_authorization(&self) -> bool {
        false
    }

    /// The page to send a person to, to grant access; `state` comes back
    /// with the redirect. A source that needs something set up first (an
    /// Open Banking consent) does it here, keeping what the completion
    /// needs (a PKCE verifier) in `vault`.
    async fn authorization_url(
        &self,
        connection: &ConnectionInfo,
        state: &str,
        vault: Arc<dyn CredentialVault>,
    ) -> Result<String, ConnectorError> {
        let _ = (state, vault);
        Err(no_authorization(self.name(), connection))
    }

    /// Completes authorization with the code the source redirected back
    /// with, saving the credentials through `vault`. Returns settings to
    /// merge into the connection's (for example the tenant granted).
    async fn complete_authorization(
        &self,
        connection: &ConnectionInfo,
        code: &str,
        vault: Arc<dyn CredentialVault>,
    ) -> Result<serde_json::Value, ConnectorError> {
        let _ = (code, vault);
        Err(no_authorization(self.name(), connection))
    }

    /// Verifies a webhook the source sent and says what changed. Sources
    /// that send none keep this default.
    fn receive_webhook(&self, webhook: &Webhook) -> Result<Vec<SourceChange>, WebhookRefusal> {
        let _ = webhook;
        Err(WebhookRefusal::NotReceived(format!(
            "{} sends no webhooks",
            self.name()
        )))
    }

    /// The tenant a connection reads, as the source's webhooks name it;
    /// `None` until it is known (or for sources that send no webhooks).
    fn tenant(&self, connection: &ConnectionInfo) -> Option<String> {
        let _ = connection;
        None
    }

    /// Checks `connection.settings` and builds a connector for it.
    fn build(
        &self,
        connection: &ConnectionInfo,
        vault: Arc<dyn CredentialVault>,
    ) -> Result<Arc<dyn Connector>, ConnectorError>;
}

/// What asking a source that needs no authorization for one says.
fn no_authorization(source: &str, connection: &ConnectionInfo) -> ConnectorError {
    ConnectorError::new(
        source,
        Fault::User,
        format!(
            "connection {} needs no authorization",
            connection.connection_id
        ),
    )
}

/// The connectors this build knows, by name. Filled from one explicit list
/// in the binary, never by link-time registration.
#[derive(Default)]
pub struct ConnectorRegistry {
    factories: BTreeMap<&'static str, Box<dyn ConnectorFactory>>,
}

impl ConnectorRegistry {
    pub fn new(factories: Vec<Box<dyn ConnectorFactory>>) -> Self {
        ConnectorRegistry {
            factories: factories.into_iter().map(|f| (f.name(), f)).collect(),
        }
    }

    pub fn names(&self) -> Vec<&'static str> {
        self.factories.keys().copied().collect()
    }

    /// The factory of connections whose `source` is `name`, or an error
    /// that says which names exist.
    pub fn factory(&self, name: &str) -> Result<&dyn ConnectorFactory, ConnectorError> {
        match self.factories.get(name) {
            Some(factory) => Ok(factory.as_ref()),
            None => Err(ConnectorError::new(
                name,
                Fault::User,
                format!(
                    "unknown connector {name:?}; known connectors: {}",
                    self.names().join(", ")
                ),
            )),
        }
    }

    /// Builds the connector for `connection`.
    pub fn build(
        &self,
        connection: &ConnectionInfo,
        vault: Arc<dyn CredentialVault>,
    ) -> Result<Arc<dyn Connector>, ConnectorError> {
        self.factory(&connection.source)?.build(connection, vault)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_connector_names_the_known_ones() {
        let registry = ConnectorRegistry::new(vec![]);
        let err = registry.factory("nope").err().unwrap();
        assert_eq!(err.fault, Fault::User);
        assert!(err.to_string().contains("unknown connector \"nope\""));
        assert!(!err.is_retryable());
    }

    #[test]
    fn credentials_never_show_in_debug() {
        let c = Credentials(serde_json::json!({"refresh_token": "rt-secret"}));
        assert!(!format!("{c:?}").contains("rt-secret"));
    }

    #[test]
    fn only_outside_faults_are_retried() {
        for (fault, retry) in [
            (Fault::User, false),
            (Fault::Source, true),
            (Fault::RateLimited, true),
            (Fault::Data, false),
            (Fault::Internal, false),
        ] {
            assert_eq!(
                ConnectorError::new("x", fault, "m").is_retryable(),
                retry,
                "{fault:?}"
            );
        }
    }
}
