//! Connector workers: run connectors and publish what they fetch.
//!
//! For each connection and data type the worker fetches a page, maps it,
//! publishes every event with an idempotent producer, waits for the broker's
//! acknowledgement of all of them, and only then saves the cursor.
//!
//! Delivery guarantee: at-least-once. A crash between publishing and saving
//! the cursor re-fetches that page; its events carry the same deterministic
//! event ids and versions, so every projection ignores the repeat. Nothing
//! fetched is lost: an unmappable record goes to the dead-letter topic with
//! its reason, and a failed page leaves the cursor where it was.
//!
//! Scale-out: workers in any number of processes share one state store
//! (PostgreSQL); each connection is synced by one worker at a time under a
//! lease, and a dead worker's connections pass to the others when its
//! leases expire ([`state`]). Two workers syncing one connection at once
//! (one stalled past its lease) would publish the same events twice, which
//! projections ignore; the stalled one cannot move the cursor.

pub mod admin;
pub mod health;
pub mod limits;
pub mod metrics;
pub mod plan;
pub mod publisher;
pub mod recent;
pub mod redrive;
pub mod secrets;
pub mod state;
pub mod vault;
pub mod worker;

pub use admin::Admin;
pub use plan::{SyncPlan, TypeSettings};
pub use publisher::{Publisher, SetAside, TooLarge};
pub use redrive::Redrive;
pub use state::{StateStore, StoredConnection};
pub use worker::{SyncSettings, Worker, call_with_retry, event_of, fetch_with_retry};

#[derive(Debug, thiserror::Error)]
pub enum ProducerError {
    #[error("state store: {0}")]
    State(String),
    /// The state store's database failed (unreachable, busy, refused).
    #[error("state store: {0}")]
    Database(#[from] sqlx::Error),
    #[error("connection {0} is synced by another worker now: its lease was taken")]
    LeaseLost(String),
    #[error("kafka: {0}")]
    Kafka(String),
    #[error("schema registry: {0}")]
    Registry(String),
    #[error(
        "the schema registry refuses this build's schema for {subject} as incompatible with what it holds (nothing was sent): {reason}"
    )]
    IncompatibleSchema { subject: String, reason: String },
    #[error("schema: {0}")]
    Schema(String),
    #[error(transparent)]
    Connector(#[from] tributary_connector_api::ConnectorError),
}
