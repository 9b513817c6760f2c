//! How the admin answers look: the structs the runtime builds each view
//! from, and the OpenAPI document describes. The admin traits pass them as
//! JSON ([`crate::admin::ConnectionView`] and the like); these types are
//! the one place their fields are named.

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

/// A connection as the API shows it (never with its credentials).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ConnectionBody {
    pub id: String,
    pub company_id: String,
    pub source: String,
    /// `linked`, `pending_auth`, `deauthorized` or `unlinked`.
    pub status: String,
    /// Why it is not linked, when it is not.
    pub status_reason: Option<String>,
    /// The source's own settings for it.
    #[schema(value_type = HashMap<String, serde_json::Value>)]
    pub settings: Value,
    /// RFC 3339.
    pub created_at: String,
    pub updated_at: String,
}

/// One run of the sync history.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RunBody {
    pub id: String,
    pub company_id: String,
    pub connection_id: String,
    pub data_type: String,
    /// `schedule`, `request`, `resync`, `refetch`, `reconcile` or
    /// `source_webhook`.
    pub trigger: String,
    /// A refetch's record: its source id.
    pub record_id: Option<String>,
    /// `queued`, `fetching`, `publishing`, `succeeded`, `failed` or `paused`.
    pub status: String,
    /// The states it went through, in order, each with its time.
    pub states: Vec<RunStateBody>,
    /// The worker that ran (or runs) it.
    pub worker: Option<String>,
    pub pages_fetched: i64,
    pub records_fetched: i64,
    pub records_published: i64,
    pub records_dead_lettered: i64,
    /// Tombstones published for records the source no longer lists.
    pub records_deleted: i64,
    pub error: Option<String>,
    /// Who is at fault when it did not succeed: `user`, `source`, `data`
    /// or `tributary`.
    pub error_fault: Option<String>,
    /// The interrupted run this one continues.
    pub resumed_from: Option<String>,
    /// Later scheduled runs that found nothing, folded into this one.
    pub repeats: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RunStateBody {
    pub state: String,
    /// RFC 3339.
    pub at: String,
}

/// A dead letter as listed: a letter that cannot be read itself has only
/// `id`, `replayed` and `unreadable`.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct LetterBody {
    /// `PARTITION@OFFSET` in the dead-letter topic.
    pub id: String,
    pub replayed: bool,
    /// Why the letter itself cannot be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unreadable: Option<String>,
    /// `map`, `decode` or `store`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub company_id: Option<String>,
    pub data_type: Option<String>,
    /// How many times it was replayed and failed again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replays: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload_bytes: Option<i64>,
    /// When the payload was cut to fit: its original size and SHA-256.
    #[schema(value_type = Option<HashMap<String, serde_json::Value>>)]
    pub cut: Option<Value>,
    /// Where it came from: a source (`connection_id`, `data_type`,
    /// `record_id`) or a topic (`projection`, `topic`, `partition`,
    /// `offset`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<HashMap<String, serde_json::Value>>)]
    pub origin: Option<Value>,
}

/// A webhook subscription (never with its signing secret).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SubscriptionBody {
    pub id: String,
    pub url: String,
    pub event_types: Vec<String>,
    /// Only this company's events; null: every company's.
    pub company_id: Option<String>,
    pub description: String,
    /// RFC 3339.
    pub created_at: String,
    pub removed_at: Option<String>,
}

/// One delivery of an event to a subscription.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DeliveryBody {
    pub id: String,
    /// The `webhook-id`: a replay keeps the original's.
    pub message_id: String,
    pub subscription_id: String,
    pub event_type: String,
    pub company_id: Option<String>,
    /// `pending`, `delivered`, `failed` or `cancelled`.
    pub status: String,
    /// Attempts so far.
    pub attempts: i64,
    /// RFC 3339.
    pub created_at: String,
    pub next_attempt_at: Option<String>,
    pub last_attempt_at: Option<String>,
    pub last_status_code: Option<i64>,
    pub last_error: Option<String>,
    pub finished_at: Option<String>,
    /// The delivery this one replays.
    pub replay_of: Option<String>,
    /// The event as sent.
    #[schema(value_type = Object)]
    pub payload: Value,
    /// Every attempt, when one delivery is asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempt_log: Option<Vec<AttemptBody>>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AttemptBody {
    pub attempt: i64,
    /// RFC 3339.
    pub at: String,
    pub duration_ms: i64,
    pub status_code: Option<i64>,
    pub error: Option<String>,
}

/// Any of them as the JSON the admin traits pass.
pub fn json(body: &impl Serialize) -> Value {
    serde_json::to_value(body).unwrap_or(Value::Null)
}
