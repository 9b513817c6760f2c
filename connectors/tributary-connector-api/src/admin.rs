//! The connections contract between the connector runtime, which manages
//! connections (add, check, remove, authorize, ask for a sync), and those
//! who drive it (the HTTP API, the CLI), so neither depends on the other.

use tributary_schemas::{DataType, DeadLetterStage, SyncRunStatus, SyncTrigger};

/// A connection as the API shows it: never with credentials.
pub type ConnectionView = serde_json::Value;

/// A run of the sync history as the API shows it.
pub type RunView = serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    /// The caller could not prove who it is (a webhook's signature).
    #[error("{0}")]
    Unauthorized(String),
    /// What was asked for is running (or queued) already: `open` is that run.
    #[error("{message}")]
    Conflict { message: String, open: RunView },
    #[error("{0}")]
    Failed(String),
}

/// Which runs of a company's sync history to list: newest first, at most
/// `limit`, older than run `after` (the last id of the previous page).
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    pub data_type: Option<DataType>,
    pub status: Option<SyncRunStatus>,
    pub trigger: Option<SyncTrigger>,
    pub after: Option<String>,
    pub limit: u32,
}

/// Connection management: implemented by the connector runtime
/// (`tributary-producer`) over the workers' state store and the connector
/// registry; used by the HTTP API and the CLI.
#[async_trait::async_trait]
pub trait ConnectionAdmin: Send + Sync {
    async fn list(&self) -> Result<Vec<ConnectionView>, AdminError>;
    /// Adds a connection; returns it and, when a person must grant access,
    /// the URL to send them to.
    async fn add(
        &self,
        company_id: &str,
        source: &str,
        settings: serde_json::Value,
    ) -> Result<(ConnectionView, Option<String>), AdminError>;
    /// Authenticates and fetches one page; returns what it saw.
    async fn check(&self, connection_id: &str) -> Result<String, AdminError>;
    /// Unlinks: stops syncing, erases credentials, keeps records.
    async fn remove(&self, connection_id: &str) -> Result<(), AdminError>;
    /// A connection's sync settings per data type: `overrides` (its own)
    /// and `effective` (over the configuration's, for each data type its
    /// source offers, in the order they are fetched).
    async fn sync_settings(&self, connection_id: &str) -> Result<serde_json::Value, AdminError>;
    /// Replaces a connection's overrides (`{"order": [...], "data_types":
    /// {"invoices": {"interval_secs", "reconcile_hours", "enabled"}}}`),
    /// checked first; answers as [`ConnectionAdmin::sync_settings`].
    async fn set_sync_settings(
        &self,
        connection_id: &str,
        overrides: serde_json::Value,
    ) -> Result<serde_json::Value, AdminError>;
    /// Asks the workers, wherever they run, to sync every connection now.
    async fn request_sync(&self) -> Result<(), AdminError>;
    /// Queues runs for one company's linked connections, for `data_types`
    /// (none: every type each connection's source offers): `Request` syncs
    /// from the cursor, `Resync` fetches everything again. All or none: if
    /// one of them has an open run, nothing is queued ([`AdminError::Conflict`]).
    async fn request_company_sync(
        &self,
        company_id: &str,
        data_types: &[DataType],
        trigger: SyncTrigger,
    ) -> Result<Vec<RunView>, AdminError>;
    /// Queues a refetch of one record of a company by its source id, on
    /// each linked connection whose source offers `data_type` and can fetch
    /// one record by id ([`AdminError::BadRequest`] when none can).
    async fn request_refetch(
        &self,
        company_id: &str,
        data_type: DataType,
        record_id: &str,
    ) -> Result<Vec<RunView>, AdminError>;
    /// A company's sync history, newest first.
    async fn runs(&self, company_id: &str, filter: &RunFilter) -> Result<Vec<RunView>, AdminError>;
    /// One run of a company's history.
    async fn run(&self, company_id: &str, run_id: &str) -> Result<RunView, AdminError>;
    /// The latest manifest of each of a company's connections and data
    /// types: what the workers published live, counted and digested.
    async fn manifests(
        &self,
        company_id: &str,
    ) -> Result<Vec<tributary_schemas::ManifestEvent>, AdminError>;
    /// A company's open runs: queued or running now.
    async fn open_runs(&self, company_id: &str) -> Result<Vec<RunView>, AdminError>;
    /// Takes a webhook `source` sent: its connector verifies it and says
    /// what changed; a sync of each changed data type (trigger
    /// `source_webhook`) is queued for every linked connection reading the
    /// tenant it names, unless one is open already. Answers the runs queued.
    async fn source_webhook(
        &self,
        source: &str,
        webhook: &crate::Webhook,
    ) -> Result<Vec<RunView>, AdminError>;
    /// Completes an OAuth2 authorization from the source's redirect.
    async fn complete_authorization(
        &self,
        source: &str,
        state: &str,
        code: &str,
    ) -> Result<ConnectionView, AdminError>;
}

/// A dead letter as the API shows it.
pub type LetterView = serde_json::Value;

/// Which dead letters to list: in the dead-letter topic's order, at most
/// `limit`, after letter `after` (the last id of the previous page).
#[derive(Debug, Clone, Default)]
pub struct LetterFilter {
    /// Letters of these companies only (`None`: every company's, and
    /// letters of no known company).
    pub companies: Option<Vec<String>>,
    pub stage: Option<DeadLetterStage>,
    pub data_type: Option<DataType>,
    pub after: Option<String>,
    pub limit: u32,
}

/// Dead letters of every stage, listed and replayed: implemented by the
/// connector runtime (`tributary-producer`), which can map a `map`-stage
/// record again with the connector as it is now; used by the HTTP API.
#[async_trait::async_trait]
pub trait DeadLetterAdmin: Send + Sync {
    async fn letters(&self, filter: &LetterFilter) -> Result<Vec<LetterView>, AdminError>;
    /// One letter by its id (`PARTITION@OFFSET` in the dead-letter topic).
    async fn letter(&self, id: &str) -> Result<LetterView, AdminError>;
    /// The bytes one letter set aside (the source's record, or the message
    /// that could not be decoded or stored); a letter unreadable itself is
    /// a [`AdminError::BadRequest`] saying why.
    async fn payload(&self, id: &str) -> Result<Vec<u8>, AdminError>;
    /// Replays one letter: a `map` record is mapped again and published, a
    /// `decode` or `store` message is sent back to its topic. Returns what
    /// happened; a record that still fails is a [`AdminError::BadRequest`]
    /// naming why, and the letter stays to be replayed after a fix.
    async fn replay(&self, id: &str) -> Result<serde_json::Value, AdminError>;
}

/// A webhook subscription or delivery as the API shows it (never with
/// the signing secret).
pub type WebhookView = serde_json::Value;

/// What a new webhook subscription asks for.
#[derive(Debug, Clone, Default)]
pub struct NewSubscription {
    pub url: String,
    pub event_types: Vec<String>,
    /// Only this company's events (`None`: every company's).
    pub company_id: Option<String>,
    pub description: String,
}

/// Which deliveries of a subscription to list: newest first, at most
/// `limit`, older than delivery `before` (the last id of the previous page).
#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter {
    /// `pending`, `delivered`, `failed` or `cancelled`.
    pub status: Option<String>,
    pub before: Option<String>,
    pub limit: u32,
}

/// Outbound webhook subscriptions and their delivery log: implemented by
/// `tributary-webhooks` over the state store; used by the API and the CLI.
#[async_trait::async_trait]
pub trait WebhookAdmin: Send + Sync {
    /// Every subscription, removed ones included.
    async fn subscriptions(&self) -> Result<Vec<WebhookView>, AdminError>;
    async fn subscription(&self, id: &str) -> Result<WebhookView, AdminError>;
    /// Subscribes; returns the subscription and its signing secret, which
    /// is never shown again.
    async fn subscribe(&self, new: NewSubscription) -> Result<(WebhookView, String), AdminError>;
    /// Removes: nothing more is sent; the log stays.
    async fn unsubscribe(&self, id: &str) -> Result<(), AdminError>;
    /// Queues a `webhook.test` event to it; returns the delivery.
    async fn test(&self, id: &str) -> Result<WebhookView, AdminError>;
    async fn deliveries(
        &self,
        subscription_id: &str,
        filter: &DeliveryFilter,
    ) -> Result<Vec<WebhookView>, AdminError>;
    /// One delivery with its attempts.
    async fn delivery(&self, id: &str) -> Result<WebhookView, AdminError>;
    /// Sends a delivery again, with the same `webhook-id`; returns the new
    /// delivery.
    async fn replay(&self, id: &str) -> Result<WebhookView, AdminError>;
}
