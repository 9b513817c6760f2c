//! The JSON bodies the API answers and takes. Handlers build these, and
//! the OpenAPI document describes them from the same types. Records, runs,
//! dead letters, connections and webhooks are the store's and the state
//! store's own JSON (`Object` in the document).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tributary_connector_api::views::{
    ConnectionBody, DeliveryBody, LetterBody, RunBody, SubscriptionBody,
};
use tributary_store::{DataTypeStatus, Hit, StoredRecord};
use utoipa::ToSchema;

/// Every 4xx and 5xx answer (but the source webhook's, which has none).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
    /// With `409 conflict`: the run that is queued or running already.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<RunBody>)]
    pub run: Option<Value>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// `bad_request`, `unauthorized`, `forbidden`, `not_found`, `conflict`,
    /// `failed` (the source or a dependency refused), `no_worker`,
    /// `no_state`, `internal`.
    pub code: String,
    /// What went wrong, and where.
    pub message: String,
}

/// `GET /health`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok`, or `unavailable` (with 503) when the store does not answer.
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Companies {
    /// Each company's own record (`companies` data type).
    #[schema(value_type = Vec<HashMap<String, serde_json::Value>>)]
    pub companies: Vec<Value>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CompanyStatus {
    pub company_id: String,
    pub data_types: Vec<DataTypeEntry>,
    /// The runs queued or running now (absent when this process cannot see
    /// the workers' state).
    #[schema(value_type = Option<Vec<RunBody>>)]
    pub running: Option<Vec<Value>>,
}

/// One data type of a company: the store's counts and syncs, the index's
/// count, and the manifests check.
#[derive(Debug, Serialize, ToSchema)]
pub struct DataTypeEntry {
    #[serde(flatten)]
    pub status: DataTypeStatus,
    /// Live records in the search index (absent when it does not answer):
    /// equal to `records` once the index projector has caught up.
    pub indexed: Option<usize>,
    /// When the workers' state is visible and they published manifests.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manifest: Option<ManifestReport>,
}

/// The data type's manifests (one per connection) against the sinks: the
/// count and digest of what the workers published live, and whether the
/// store (count and digest) and the index (count) hold exactly that. They
/// differ while a sink is behind; a difference that stays is a loss.
#[derive(Debug, Serialize, ToSchema)]
pub struct ManifestReport {
    /// The newest manifest's time (RFC 3339).
    pub as_of: Option<String>,
    pub live_count: i64,
    pub digest: Option<String>,
    /// Whether every manifest came from a full pass.
    pub full_pass: bool,
    pub store_matches: bool,
    pub index_matches: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RecordsPage {
    pub data_type: String,
    /// Oldest version first.
    pub records: Vec<StoredRecord>,
    /// Pass as `cursor` for the next page; absent on the last one.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Hits {
    /// Best first.
    pub hits: Vec<Hit>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SyncRequested {
    /// `requested`.
    pub status: String,
}

/// What `POST /v1/companies/{company}/syncs` takes (an empty body: a sync
/// of every data type).
#[derive(Debug, Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SyncRequest {
    /// None or empty: every data type the company's sources offer.
    #[serde(default)]
    pub data_types: Vec<String>,
    /// Fetch everything again instead of from the cursor.
    #[serde(default)]
    pub resync: bool,
    /// A full pass that deletes what the source no longer lists.
    #[serde(default)]
    pub reconcile: bool,
}

/// The runs a request queued.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunsQueued {
    #[schema(value_type = Vec<RunBody>)]
    pub runs: Vec<Value>,
}

/// A page of a company's sync history, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunsPage {
    #[schema(value_type = Vec<RunBody>)]
    pub runs: Vec<Value>,
    /// Pass as `after` for the next page; absent on the last one.
    pub next: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeadLettersPage {
    #[schema(value_type = Vec<LetterBody>)]
    pub dead_letters: Vec<Value>,
    /// Pass as `after` for the next page; absent on the last one.
    pub next: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Connections {
    #[schema(value_type = Vec<ConnectionBody>)]
    pub connections: Vec<Value>,
}

/// What `POST /v1/connections` takes.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddConnection {
    pub company_id: String,
    /// A configured source: `xero`, `square`, `open_banking`, `sandbox`.
    pub source: String,
    /// The source's own settings for this connection.
    #[serde(default)]
    #[schema(value_type = Option<HashMap<String, serde_json::Value>>)]
    pub settings: Option<Value>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectionAdded {
    #[schema(value_type = ConnectionBody)]
    pub connection: Value,
    /// Where the person grants access, when the source needs it (OAuth2
    /// consent): the source sends them back to the callback.
    pub authorize_url: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectionChecked {
    pub connection_id: String,
    pub ok: bool,
    /// What the source answered.
    pub outcome: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectionRemoved {
    pub connection_id: String,
    /// `unlinked`.
    pub status: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Authorized {
    #[schema(value_type = ConnectionBody)]
    pub connection: Value,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Webhooks {
    #[schema(value_type = Vec<SubscriptionBody>)]
    pub webhooks: Vec<Value>,
}

/// What `POST /v1/webhooks` takes.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddWebhook {
    /// https only; no internal address unless
    /// `security.allow_private_network`.
    pub url: String,
    /// `sync.completed`, `sync.failed`, `connection.status_changed`,
    /// `dead_letters.added`, `reconciliation.mismatch`.
    pub event_types: Vec<String>,
    /// Only this company's events (a limited key must name one of its own).
    #[serde(default)]
    pub company_id: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookAdded {
    #[schema(value_type = SubscriptionBody)]
    pub webhook: Value,
    /// The signing secret (`whsec_...`), shown this once.
    pub secret: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookOne {
    #[schema(value_type = SubscriptionBody)]
    pub webhook: Value,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveriesPage {
    #[schema(value_type = Vec<DeliveryBody>)]
    pub deliveries: Vec<Value>,
    /// Pass as `before` for the next page; absent on the last one.
    pub next_before: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryOne {
    /// The delivery, with its `attempts` when one is asked for by id.
    #[schema(value_type = DeliveryBody)]
    pub delivery: Value,
}

/// One dead letter with the bytes it set aside.
#[derive(Debug, Serialize, ToSchema)]
pub struct LetterDetail {
    /// As listed: stage, reason, origin, company, data type, replays.
    #[schema(value_type = LetterBody)]
    pub letter: Value,
    /// The bytes, base64.
    pub payload_base64: String,
    /// The bytes as text, when they are UTF-8 (a source's JSON record).
    pub payload_text: Option<String>,
}
