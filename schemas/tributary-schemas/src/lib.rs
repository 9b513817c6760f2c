//! Tributary's common data model: the single source of truth for every
//! subscriber.
//!
//! Contract:
//! - `avro/*.avsc` are the value schemas of the topics, registered in the
//!   schema registry under `<topic>-value`. Every event schema shares the
//!   envelope of [`Envelope`]; the record itself is nullable only for deletes
//!   that carry no body.
//! - One topic per [`DataType`] (`tributary.v1.<data_type>`), keyed by company
//!   id so each company's events stay in order.
//! - Money and quantities are [`Decimal`] (Avro `decimal`, scale 4), never
//!   floats; banking amounts are [`Decimal5`] (scale 5). Instants are [`Timestamp`] (Avro `timestamp-millis`), dates are
//!   [`Date`] (Avro `date`).
//! - [`event_id`] is deterministic: a replayed record version has the same id,
//!   which is what lets every consumer be idempotent.
//! - Schemas evolve BACKWARD compatibly within `v1` (new readers read old
//!   data): add fields only with defaults.
//!
//! This crate depends on nothing of ours.

pub mod decimal;
pub mod event;
pub mod model;
pub mod states;
pub mod temporal;

pub use decimal::{Decimal, Decimal5, DecimalError, Fixed};
pub use event::{
    DataType, Envelope, Event, ManifestEvent, Record, SyncRunEvent, TOPIC_PREFIX, add_digests,
    all_topics, dead_letter, dead_letter_topic, event_id, from_avro_datum, manifest_digest,
    to_avro_datum,
};
pub use states::{ConnectionStatus, DeadLetterStage, SyncRunStatus, SyncTrigger, UnknownState};
pub use temporal::{Date, TemporalError, Timestamp};

/// A schema could not be parsed, or a value did not fit its schema.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("avro: {0}")]
    Avro(String),
    #[error("unknown data type {0:?}")]
    UnknownDataType(String),
    #[error("event does not match its topic: {0}")]
    Mismatch(String),
}

impl SchemaError {
    fn avro(e: apache_avro::Error) -> Self {
        SchemaError::Avro(e.to_string())
    }
}
