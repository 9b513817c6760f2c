//! Outbound webhook events: what subscribers receive, the contract the
//! dispatcher sends by and the OpenAPI document (`webhooks`) describes.
//! Every request's body is a [`WebhookEvent`]; each type's `data` is
//! listed in [`EVENT_TYPES`].

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A sync of one connection and data type succeeded.
pub const SYNC_COMPLETED: &str = "sync.completed";
/// A sync of one connection and data type failed or was paused.
pub const SYNC_FAILED: &str = "sync.failed";
/// A connection's status changed (linked, deauthorized, unlinked...).
pub const CONNECTION_STATUS_CHANGED: &str = "connection.status_changed";
/// Records of a company were set aside as dead letters.
pub const DEAD_LETTERS_ADDED: &str = "dead_letters.added";
/// The store does not hold what a company's connections published of a
/// data type (count or digest), twice in a row after a manifest.
pub const RECONCILIATION_MISMATCH: &str = "reconciliation.mismatch";
/// Sent on an operator's request only (`POST /v1/webhooks/{id}/test`).
pub const TEST: &str = "webhook.test";

/// One event type: its name, when it is sent and what its `data` holds.
#[derive(Debug, Clone, Copy)]
pub struct EventType {
    pub name: &'static str,
    pub when: &'static str,
    pub data: &'static str,
}

/// Every event type a subscription may ask for.
pub const EVENT_TYPES: [EventType; 6] = [
    EventType {
        name: SYNC_COMPLETED,
        when: "A sync of one connection and data type succeeded.",
        data: "`company_id`, `connection_id`, `source`, `data_type`, `run_id` (see the sync \
               history), `trigger`, `started_at`, `finished_at`, `records_fetched`, \
               `records_changed` (events published: new, changed or deleted records), `changed` \
               (whether any), `records_dead_lettered`.",
    },
    EventType {
        name: SYNC_FAILED,
        when: "A sync of one connection and data type failed or was paused.",
        data: "Those of `sync.completed`, and `status` (`failed`, `paused`), `error`, \
               `error_fault` (`user`, `source`, `data`, `tributary`).",
    },
    EventType {
        name: CONNECTION_STATUS_CHANGED,
        when: "A connection's status changed (first seen included).",
        data: "`company_id`, `connection_id`, `source`, `status`, `previous_status` (null when \
               first seen), `reason`.",
    },
    EventType {
        name: DEAD_LETTERS_ADDED,
        when: "Records were set aside (one event per company and stage per batch read).",
        data: "`company_id` (null when unknown), `stage` (`map`, `decode`, `store`), `count`, \
               `letters`: up to 20 of `reason`, `connection_id`, `data_type`, `projection`, \
               `source_topic`, `source_partition`, `source_offset`, `dead_letter_id` (for \
               `POST /v1/dead-letters/{id}/replay`).",
    },
    EventType {
        name: RECONCILIATION_MISMATCH,
        when: "After a manifest, and again as long after, the store still does not hold what \
               the company's connections published of a data type.",
        data: "`company_id`, `data_type`, `expected_count`, `expected_digest`, `stored_count`, \
               `stored_digest`.",
    },
    EventType {
        name: TEST,
        when: "An operator asked for a test event.",
        data: "`subscription_id`, `company_id`.",
    },
];

/// Whether `name` is an event type a subscription may ask for.
pub fn is_event_type(name: &str) -> bool {
    EVENT_TYPES.iter().any(|t| t.name == name)
}

/// The names of every event type, comma-separated (for error messages).
pub fn event_type_names() -> String {
    EVENT_TYPES
        .iter()
        .map(|t| t.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The body of every outbound webhook request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WebhookEvent {
    /// One of the event types.
    #[serde(rename = "type")]
    pub event_type: String,
    /// When it happened (RFC 3339).
    #[schema(format = DateTime)]
    pub timestamp: String,
    /// What happened: each type's fields.
    #[schema(value_type = HashMap<String, serde_json::Value>)]
    pub data: serde_json::Value,
}

impl WebhookEvent {
    /// The JSON text sent (and signed).
    pub fn to_body(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}
