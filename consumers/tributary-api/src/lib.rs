//! The HTTP API over the store and the search index.
//!
//! Each route is a handler annotated with `#[utoipa::path]` (method, path,
//! parameters, answers), registered through `routes!`, which reads them: the
//! router and the OpenAPI document ([`openapi`], served at `/openapi.json`
//! and committed as `docs/openapi.json`) come from the same place.
//!
//! Every `/v1` route but the callback and source webhooks needs an API key (`Authorization:
//! Bearer <key>` or `X-Api-Key: <key>`). A key limited to some companies
//! never sees another company's records, status, connections or search
//! hits: those answer as if the company did not exist.
//!
//! Bad requests get a 4xx with `{"error": {"code", "message"}}`.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use axum::extract::{Extension, Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde_json::json;
use tributary_connector_api::admin::{
    AdminError, ConnectionAdmin, ConnectionView, DeadLetterAdmin, DeliveryFilter, LetterFilter,
    NewSubscription, RunFilter, WebhookAdmin, WebhookView,
};
use tributary_schemas::{DataType, ManifestEvent, SyncTrigger, Timestamp};
use tributary_store::{ListQuery, ReadStore, Search, SearchQuery, StoredRecord};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

mod bodies;
mod doc;
pub mod pipeline;

pub use bodies::*;

/// What the handlers share.
#[derive(Clone)]
pub struct ApiState {
    pub store: Arc<dyn ReadStore>,
    pub search: Arc<dyn Search>,
    pub metrics: Option<tributary_telemetry::Exposition>,
    /// Who may call, and for which companies.
    pub keys: Arc<Vec<ApiKey>>,
    /// Connection management; `None` when this process has no worker and
    /// shares no state store with workers elsewhere.
    pub connections: Option<Arc<dyn ConnectionAdmin>>,
    /// Dead letters; `None` when this process has no connector runtime.
    pub dead_letters: Option<Arc<dyn DeadLetterAdmin>>,
    /// Outbound webhooks; `None` when this process sees no state store.
    pub webhooks: Option<Arc<dyn WebhookAdmin>>,
    /// The pipeline's recent history, for the console's charts.
    pub pipeline: Option<Arc<dyn pipeline::PipelineHistory>>,
}

/// Which companies a key may read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    All,
    Only(BTreeSet<String>),
}

impl Scope {
    /// `["*"]` is every company.
    pub fn from_list(companies: &[String]) -> Scope {
        if companies.iter().any(|c| c == "*") {
            Scope::All
        } else {
            Scope::Only(companies.iter().cloned().collect())
        }
    }

    pub fn allows(&self, company: &str) -> bool {
        match self {
            Scope::All => true,
            Scope::Only(set) => set.contains(company),
        }
    }
}

/// One accepted key, known by its SHA-256 only.
#[derive(Debug, Clone)]
pub struct ApiKey {
    pub name: String,
    /// SHA-256 of the key, lowercase hex.
    pub sha256: String,
    pub scope: Scope,
}

/// SHA-256 of a key, lowercase hex: what the configuration stores.
pub fn hash_key(key: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The caller of a request, once its key checked out.
#[derive(Debug, Clone)]
pub struct Caller {
    pub name: String,
    pub scope: Scope,
}

impl From<AdminError> for ApiError {
    fn from(e: AdminError) -> Self {
        match e {
            AdminError::NotFound(m) => ApiError::not_found(m),
            AdminError::BadRequest(m) => ApiError::bad_request(m),
            AdminError::Unauthorized(m) => {
                ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", m)
            }
            AdminError::Conflict { message, open } => {
                ApiError::new(StatusCode::CONFLICT, "conflict", message).with_run(open)
            }
            AdminError::Failed(m) => ApiError::new(StatusCode::BAD_GATEWAY, "failed", m),
        }
    }
}

/// A client-facing error.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    /// The run a conflict is with.
    run: Option<serde_json::Value>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            run: None,
        }
    }
    fn with_run(mut self, run: serde_json::Value) -> Self {
        self.run = Some(run);
        self
    }
    fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message.into())
    }
    fn not_found(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message.into())
    }
    fn internal(e: impl std::fmt::Display) -> Self {
        tracing::error!(error = %e, "api request failed");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_string(),
                message: self.message,
            },
            run: self.run,
        };
        (self.status, Json(body)).into_response()
    }
}

type ApiResult = Result<Response, ApiError>;

/// The routes that need an API key. Every route is registered through
/// `routes!`, which takes its method and path from the handler's
/// `#[utoipa::path]`: the router and the OpenAPI document cannot disagree.
fn protected_routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(companies))
        .routes(routes!(status))
        .routes(routes!(list))
        .routes(routes!(one))
        .routes(routes!(refetch))
        .routes(routes!(search))
        .routes(routes!(sync))
        .routes(routes!(syncs_list, syncs_request))
        .routes(routes!(syncs_one))
        .routes(routes!(letters_list))
        .routes(routes!(letters_one))
        .routes(routes!(letters_replay))
        .routes(routes!(connections_list, connections_add))
        .routes(routes!(connections_remove))
        .routes(routes!(connections_check))
        .routes(routes!(sync_settings_get, sync_settings_put))
        .routes(routes!(webhooks_list, webhooks_add))
        .routes(routes!(webhooks_one, webhooks_remove))
        .routes(routes!(webhooks_test))
        .routes(routes!(webhooks_deliveries))
        .routes(routes!(webhooks_delivery))
        .routes(routes!(webhooks_replay))
        .routes(routes!(pipeline_metrics))
}

/// The routes anyone may call: the callback and the source webhooks prove
/// themselves otherwise.
fn public_routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(health))
        .routes(routes!(metrics))
        .routes(routes!(openapi_json))
        .routes(routes!(oauth_callback))
        .routes(routes!(source_webhook))
}

pub fn router(state: ApiState) -> Router {
    let (protected, _) = protected_routes()
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            authenticate,
        ))
        .split_for_parts();
    let (public, _) = public_routes().split_for_parts();
    public
        .merge(protected)
        .fallback(|| async { ApiError::not_found("no such route; see /openapi.json") })
        .with_state(state)
}

/// The OpenAPI 3.1 document of the API, from the handlers' annotations and
/// the body types (`docs/openapi.json` is this, committed).
pub fn openapi() -> utoipa::openapi::OpenApi {
    doc::document(
        protected_routes().into_openapi(),
        public_routes().into_openapi(),
    )
}

#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "operations",
    summary = "This document",
    responses(
        (status = 200, description = "The OpenAPI 3.1 document of this API", body = serde_json::Value),
    ),
)]
async fn openapi_json() -> Response {
    static DOCUMENT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let text = DOCUMENT.get_or_init(|| openapi().to_pretty_json().unwrap_or_default());
    ([(header::CONTENT_TYPE, "application/json")], text.as_str()).into_response()
}

/// Checks the API key and records who called.
async fn authenticate(State(s): State<ApiState>, mut request: Request, next: Next) -> Response {
    let headers = request.headers();
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok()))
        .map(str::trim);
    let Some(presented) = presented.filter(|k| !k.is_empty()) else {
        return ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "an API key is required: Authorization: Bearer <key>",
        )
        .into_response();
    };
    let hash = hash_key(presented);
    match s.keys.iter().find(|k| k.sha256 == hash) {
        Some(key) => {
            request.extensions_mut().insert(Caller {
                name: key.name.clone(),
                scope: key.scope.clone(),
            });
            next.run(request).await
        }
        None => ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "unknown API key")
            .into_response(),
    }
}

/// A company the caller may not read answers exactly like one that does
/// not exist.
fn allowed(caller: &Caller, company: &str) -> Result<(), ApiError> {
    if caller.scope.allows(company) {
        Ok(())
    } else {
        Err(ApiError::not_found(format!(
            "no data for company {company:?}"
        )))
    }
}

fn data_type(name: &str) -> Result<DataType, ApiError> {
    name.parse().map_err(|_| {
        let known: Vec<&str> = DataType::ALL.iter().map(|t| t.as_str()).collect();
        ApiError::bad_request(format!(
            "unknown data type {name:?}; known: {}",
            known.join(", ")
        ))
    })
}

fn param<T: std::str::FromStr>(
    params: &HashMap<String, String>,
    name: &str,
) -> Result<Option<T>, ApiError> {
    params
        .get(name)
        .map(|v| {
            v.parse().map_err(|_| {
                ApiError::bad_request(format!("invalid value {v:?} for query parameter {name}"))
            })
        })
        .transpose()
}

/// Where the next page of a list paged by `after` starts: the last item's
/// id when the page is full, else none (the page was the last).
fn next_after(items: &[serde_json::Value], limit: u32) -> Option<String> {
    (items.len() == limit as usize)
        .then(|| {
            items
                .last()
                .and_then(|item| item["id"].as_str().map(str::to_string))
        })
        .flatten()
}

/// The `limit` parameter (1 to 1000), `default` when absent.
fn limit(params: &HashMap<String, String>, default: u32) -> Result<u32, ApiError> {
    let limit: u32 = param(params, "limit")?.unwrap_or(default);
    if (1..=1000).contains(&limit) {
        Ok(limit)
    } else {
        Err(ApiError::bad_request("limit must be between 1 and 1000"))
    }
}

fn only(params: &HashMap<String, String>, allowed: &[&str]) -> Result<(), ApiError> {
    match params.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(ApiError::bad_request(format!(
            "unknown query parameter {k:?}; allowed: {}",
            allowed.join(", ")
        ))),
        None => Ok(()),
    }
}

#[utoipa::path(
    get,
    path = "/health",
    tag = "operations",
    summary = "Liveness, and whether the store answers",
    responses(
        (status = 200, description = "The store answers", body = Health),
        (status = 503, description = "The store does not answer", body = Health),
    ),
)]
async fn health(State(s): State<ApiState>) -> ApiResult {
    match s.store.companies().await {
        Ok(_) => Ok(Json(Health {
            status: "ok".into(),
            error: None,
        })
        .into_response()),
        Err(e) => Ok((
            StatusCode::SERVICE_UNAVAILABLE,
            Json(Health {
                status: "unavailable".into(),
                error: Some(e.to_string()),
            }),
        )
            .into_response()),
    }
}

#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    summary = "This process's metrics, Prometheus text format",
    responses(
        (status = 200, description = "Metrics", body = String, content_type = "text/plain"),
    ),
)]
async fn metrics(State(s): State<ApiState>) -> ApiResult {
    let text = s.metrics.as_ref().map(|m| m.render()).unwrap_or_default();
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response())
}

#[utoipa::path(
    get,
    path = "/v1/companies",
    tag = "data",
    summary = "The companies the key may read",
    responses(
        (status = 200, description = "Companies", body = Companies),
    ),
)]
async fn companies(State(s): State<ApiState>, Extension(caller): Extension<Caller>) -> ApiResult {
    let companies = s.store.companies().await.map_err(ApiError::internal)?;
    let list: Vec<_> = companies
        .into_iter()
        .filter(|c| caller.scope.allows(&c.company_id))
        .map(|c| c.data)
        .collect();
    Ok(Json(Companies { companies: list }).into_response())
}

#[utoipa::path(
    get,
    path = "/v1/companies/{company}/status",
    tag = "data",
    summary = "Per data type: counts in the store and the index, the manifests check, and the runs open now",
    params(
        ("company" = String, Path, description = "A company id"),
    ),
    responses(
        (status = 200, description = "Status", body = CompanyStatus),
        (status = 404, description = "No data for the company (or not the key's)", body = ErrorBody),
    ),
)]
async fn status(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(company): Path<String>,
) -> ApiResult {
    allowed(&caller, &company)?;
    let status = s.store.status(&company).await.map_err(ApiError::internal)?;
    if status.is_empty() {
        return Err(ApiError::not_found(format!(
            "no data for company {company:?}"
        )));
    }
    // The workers' latest manifests, when this process can see their state.
    let manifests = match &s.connections {
        Some(admin) => admin.manifests(&company).await?,
        None => Vec::new(),
    };
    // Beside the store's counts, what the search index holds: the two agree
    // once the index projector has caught up.
    let mut entries = Vec::with_capacity(status.len());
    for entry in status {
        let indexed = s.search.count(&company, &entry.data_type).await.ok();
        let of_type: Vec<&ManifestEvent> = manifests
            .iter()
            .filter(|m| m.data_type == entry.data_type)
            .collect();
        let manifest = if of_type.is_empty() {
            None
        } else {
            Some(manifest_check(&s, &company, &entry.data_type, &of_type, indexed).await?)
        };
        entries.push(DataTypeEntry {
            status: entry,
            indexed,
            manifest,
        });
    }
    // What runs now, when this process can see the workers' state.
    let running = match &s.connections {
        Some(admin) => Some(admin.open_runs(&company).await?),
        None => None,
    };
    Ok(Json(CompanyStatus {
        company_id: company,
        data_types: entries,
        running,
    })
    .into_response())
}

/// A data type's manifests against the sinks (see [`ManifestReport`]).
async fn manifest_check(
    s: &ApiState,
    company: &str,
    data_type: &str,
    manifests: &[&ManifestEvent],
    indexed: Option<usize>,
) -> Result<ManifestReport, ApiError> {
    let check = tributary_store::check_manifests(s.store.as_ref(), company, data_type, manifests)
        .await
        .map_err(ApiError::internal)?;
    let store_matches = check.store_matches();
    let live_count = check.live_count;
    let index_matches = indexed.is_some_and(|n| n as i64 == live_count);
    for (sink, matches) in [("store", store_matches), ("index", index_matches)] {
        metrics::counter!("tributary_api_manifest_checks_total", "sink" => sink, "outcome" => if matches { "match" } else { "mismatch" }).increment(1);
    }
    let as_of = manifests.iter().map(|m| m.as_of).max();
    Ok(ManifestReport {
        as_of: as_of.map(|t| t.to_string()),
        live_count,
        digest: check.digest,
        full_pass: manifests.iter().all(|m| m.full_pass),
        store_matches,
        index_matches,
    })
}

#[utoipa::path(
    get,
    path = "/v1/companies/{company}/data/{data_type}",
    tag = "data",
    summary = "A page of records, oldest version first",
    params(
        ("company" = String, Path, description = "A company id"),
        ("data_type" = String, Path, description = "A data type (`invoices`, `customers`, ...)"),
        ("limit" = Option<u32>, Query, description = "1 to 1000; default 100"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
        ("modified_since" = Option<String>, Query, description = "RFC 3339: only records modified at or after it"),
        ("include_deleted" = Option<bool>, Query, description = "Also records the source deleted"),
    ),
    responses(
        (status = 200, description = "A page", body = RecordsPage),
        (status = 400, description = "Unknown data type or parameter, bad value", body = ErrorBody),
    ),
)]
async fn list(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path((company, type_name)): Path<(String, String)>,
    Query(params): Query<HashMap<String, String>>,
) -> ApiResult {
    allowed(&caller, &company)?;
    only(
        &params,
        &["limit", "cursor", "modified_since", "include_deleted"],
    )?;
    let data_type = data_type(&type_name)?;
    let limit = limit(&params, 100)?;
    let modified_since = match params.get("modified_since") {
        Some(v) => Some(
            Timestamp::parse(v)
                .map_err(|e| ApiError::bad_request(format!("modified_since: {e}")))?,
        ),
        None => None,
    };
    let cursor = params.get("cursor").cloned();
    if cursor.as_deref().is_some_and(|c| !c.contains(':')) {
        return Err(ApiError::bad_request(
            "invalid cursor; pass next_cursor from a previous page",
        ));
    }
    let query = ListQuery {
        cursor,
        modified_since,
        include_deleted: param(&params, "include_deleted")?.unwrap_or(false),
        limit,
    };
    let page = s
        .store
        .list(&company, data_type.as_str(), &query)
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(RecordsPage {
        data_type: data_type.as_str().to_string(),
        records: page.records,
        next_cursor: page.next_cursor,
    })
    .into_response())
}

#[utoipa::path(
    get,
    path = "/v1/companies/{company}/data/{data_type}/{id}",
    tag = "data",
    summary = "One record with its envelope",
    params(
        ("company" = String, Path, description = "A company id"),
        ("data_type" = String, Path, description = "A data type (`invoices`, `customers`, ...)"),
        ("id" = String, Path, description = "The record's id at its source"),
    ),
    responses(
        (status = 200, description = "The record envelope", body = StoredRecord),
        (status = 400, description = "Unknown data type", body = ErrorBody),
        (status = 404, description = "No such record", body = ErrorBody),
    ),
)]
async fn one(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path((company, type_name, id)): Path<(String, String, String)>,
) -> ApiResult {
    allowed(&caller, &company)?;
    let data_type = data_type(&type_name)?;
    match s
        .store
        .get(&company, data_type.as_str(), &id)
        .await
        .map_err(ApiError::internal)?
    {
        Some(record) => Ok(Json(record).into_response()),
        None => Err(ApiError::not_found(format!(
            "no {data_type} record {id:?} for company {company:?}"
        ))),
    }
}

#[utoipa::path(
    get,
    path = "/v1/search",
    tag = "data",
    summary = "Full-text search over the records the key may read",
    params(
        ("q" = String, Query, description = "The words to find"),
        ("company" = Option<String>, Query, description = "Only this company"),
        ("data_type" = Option<String>, Query, description = "Only this data type"),
        ("limit" = Option<u32>, Query, description = "1 to 100; default 20"),
    ),
    responses(
        (status = 200, description = "Hits, best first", body = Hits),
        (status = 400, description = "No q, unknown parameter or bad value", body = ErrorBody),
    ),
)]
async fn search(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Query(params): Query<HashMap<String, String>>,
) -> ApiResult {
    only(&params, &["q", "company", "data_type", "limit"])?;
    let q = params
        .get("q")
        .map(|q| q.trim())
        .filter(|q| !q.is_empty())
        .ok_or_else(|| ApiError::bad_request("query parameter q is required"))?;
    let data_type = params.get("data_type").map(|t| data_type(t)).transpose()?;
    let limit: usize = param(&params, "limit")?.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::bad_request("limit must be between 1 and 100"));
    }
    // A limited key searches its own companies only, whatever it asks.
    let companies = match (params.get("company"), &caller.scope) {
        (Some(c), scope) if !scope.allows(c) => {
            return Ok(Json(Hits { hits: Vec::new() }).into_response());
        }
        (Some(c), _) => Some(vec![c.clone()]),
        (None, Scope::All) => None,
        (None, Scope::Only(set)) => Some(set.iter().cloned().collect()),
    };
    let query = SearchQuery {
        text: q.to_string(),
        companies,
        data_type: data_type.map(|t| t.as_str().to_string()),
        limit,
    };
    let hits = s.search.search(&query).await.map_err(ApiError::internal)?;
    Ok(Json(Hits { hits }).into_response())
}

#[utoipa::path(
    post,
    path = "/v1/sync",
    tag = "syncs",
    summary = "Asks the workers to sync every connection now (a key for all companies only)",
    responses(
        (status = 202, description = "Requested", body = SyncRequested),
        (status = 403, description = "The key is limited to some companies", body = ErrorBody),
    ),
)]
async fn sync(State(s): State<ApiState>, Extension(caller): Extension<Caller>) -> ApiResult {
    if caller.scope != Scope::All {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "only a key for all companies may start a sync round",
        ));
    }
    admin(&s)?.request_sync().await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(SyncRequested {
            status: "requested".into(),
        }),
    )
        .into_response())
}

/// Queues a sync (or a resync) of one company, for some data types or all.
/// 202 with the queued runs; 409 with the open run when one of them is
/// queued or running already.
#[utoipa::path(
    post,
    path = "/v1/companies/{company}/syncs",
    tag = "syncs",
    summary = "Queues a sync, resync or reconciliation of one company",
    request_body(content = Option<SyncRequest>, description = "What to sync; an empty body syncs every data type", content_type = "application/json"),
    params(
        ("company" = String, Path, description = "A company id"),
    ),
    responses(
        (status = 202, description = "The queued runs", body = RunsQueued),
        (status = 400, description = "Unknown data type, or both resync and reconcile", body = ErrorBody),
        (status = 404, description = "Unknown company", body = ErrorBody),
        (status = 409, description = "A run of one of them is queued or running (`run`)", body = ErrorBody),
    ),
)]
async fn syncs_request(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(company): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult {
    allowed(&caller, &company)?;
    let request: SyncRequest = if body.iter().all(u8::is_ascii_whitespace) {
        SyncRequest::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("invalid sync request: {e}")))?
    };
    let data_types = request
        .data_types
        .iter()
        .map(|t| data_type(t))
        .collect::<Result<Vec<_>, _>>()?;
    let trigger = match (request.resync, request.reconcile) {
        (true, true) => {
            return Err(ApiError::bad_request(
                "ask for a resync or a reconciliation, not both",
            ));
        }
        (true, false) => SyncTrigger::Resync,
        (false, true) => SyncTrigger::Reconcile,
        (false, false) => SyncTrigger::Request,
    };
    let runs = admin(&s)?
        .request_company_sync(&company, &data_types, trigger)
        .await?;
    Ok((StatusCode::ACCEPTED, Json(RunsQueued { runs })).into_response())
}

/// Queues a refetch of one record by its source id: 202 with the queued
/// runs; 400 when no connection of the company can fetch one record.
#[utoipa::path(
    post,
    path = "/v1/companies/{company}/data/{data_type}/{id}/refetch",
    tag = "syncs",
    summary = "Queues fetching one record again from its source",
    params(
        ("company" = String, Path, description = "A company id"),
        ("data_type" = String, Path, description = "A data type (`invoices`, `customers`, ...)"),
        ("id" = String, Path, description = "The record's id at its source"),
    ),
    responses(
        (status = 202, description = "Queued", body = RunsQueued),
        (status = 400, description = "No connection of the company can fetch one record", body = ErrorBody),
        (status = 409, description = "A run of that data type is open", body = ErrorBody),
    ),
)]
async fn refetch(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path((company, type_name, id)): Path<(String, String, String)>,
) -> ApiResult {
    allowed(&caller, &company)?;
    let data_type = data_type(&type_name)?;
    let runs = admin(&s)?.request_refetch(&company, data_type, &id).await?;
    Ok((StatusCode::ACCEPTED, Json(RunsQueued { runs })).into_response())
}

/// A company's sync history, newest first, paged by `after`.
#[utoipa::path(
    get,
    path = "/v1/companies/{company}/syncs",
    tag = "syncs",
    summary = "A company's sync history, newest first",
    params(
        ("company" = String, Path, description = "A company id"),
        ("limit" = Option<u32>, Query, description = "1 to 1000; default 50"),
        ("after" = Option<String>, Query, description = "`next` of the previous page"),
        ("data_type" = Option<String>, Query, description = "Only this data type"),
        ("status" = Option<String>, Query, description = "`queued`, `fetching`, `publishing`, `succeeded`, `failed` or `paused`"),
        ("trigger" = Option<String>, Query, description = "`schedule`, `request`, `resync`, `reconcile`, `refetch`, `source_webhook`"),
    ),
    responses(
        (status = 200, description = "A page of runs", body = RunsPage),
        (status = 400, description = "Unknown parameter or bad value", body = ErrorBody),
    ),
)]
async fn syncs_list(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(company): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> ApiResult {
    allowed(&caller, &company)?;
    only(
        &params,
        &["limit", "after", "data_type", "status", "trigger"],
    )?;
    let limit = limit(&params, 50)?;
    let filter = RunFilter {
        data_type: params.get("data_type").map(|t| data_type(t)).transpose()?,
        status: param(&params, "status")?,
        trigger: param(&params, "trigger")?,
        after: params.get("after").cloned(),
        limit,
    };
    let runs = admin(&s)?.runs(&company, &filter).await?;
    let next = next_after(&runs, limit);
    Ok(Json(RunsPage { runs, next }).into_response())
}

#[utoipa::path(
    get,
    path = "/v1/companies/{company}/syncs/{run}",
    tag = "syncs",
    summary = "One run of the sync history",
    params(
        ("company" = String, Path, description = "A company id"),
        ("run" = String, Path, description = "A run id"),
    ),
    responses(
        (status = 200, description = "The run", body = tributary_connector_api::views::RunBody),
        (status = 404, description = "No such run", body = ErrorBody),
    ),
)]
async fn syncs_one(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path((company, run)): Path<(String, String)>,
) -> ApiResult {
    allowed(&caller, &company)?;
    let run = admin(&s)?.run(&company, &run).await?;
    Ok(Json(run).into_response())
}

fn dead_letters(s: &ApiState) -> Result<&Arc<dyn DeadLetterAdmin>, ApiError> {
    s.dead_letters.as_ref().ok_or(ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "no_worker",
        "no connector runtime in this process: dead letters are served where workers run",
    ))
}

/// Dead letters of every stage, in the dead-letter topic's order; a key
/// limited to some companies sees only theirs.
#[utoipa::path(
    get,
    path = "/v1/dead-letters",
    tag = "dead letters",
    summary = "Dead letters of every stage, in the dead-letter topic's order",
    params(
        ("company" = Option<String>, Query, description = "Only this company's"),
        ("stage" = Option<String>, Query, description = "`map`, `decode` or `store`"),
        ("data_type" = Option<String>, Query, description = "Only this data type"),
        ("limit" = Option<u32>, Query, description = "1 to 1000; default 100"),
        ("after" = Option<String>, Query, description = "`next` of the previous page"),
    ),
    responses(
        (status = 200, description = "A page of letters", body = DeadLettersPage),
        (status = 400, description = "Unknown parameter or bad value", body = ErrorBody),
    ),
)]
async fn letters_list(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Query(params): Query<HashMap<String, String>>,
) -> ApiResult {
    only(
        &params,
        &["company", "stage", "data_type", "limit", "after"],
    )?;
    let limit = limit(&params, 100)?;
    let companies = match (params.get("company"), &caller.scope) {
        (Some(company), _) => {
            allowed(&caller, company)?;
            Some(vec![company.clone()])
        }
        (None, Scope::All) => None,
        (None, Scope::Only(set)) => Some(set.iter().cloned().collect()),
    };
    let filter = LetterFilter {
        companies,
        stage: param(&params, "stage")?,
        data_type: params.get("data_type").map(|t| data_type(t)).transpose()?,
        after: params.get("after").cloned(),
        limit,
    };
    let letters = dead_letters(&s)?.letters(&filter).await?;
    let next = next_after(&letters, limit);
    Ok(Json(DeadLettersPage {
        dead_letters: letters,
        next,
    })
    .into_response())
}

/// One dead letter with its raw payload; a key limited to some companies
/// sees only theirs.
#[utoipa::path(
    get,
    path = "/v1/dead-letters/{id}",
    tag = "dead letters",
    summary = "One dead letter with the bytes it set aside",
    params(
        ("id" = String, Path, description = "`PARTITION@OFFSET` in the dead-letter topic"),
    ),
    responses(
        (status = 200, description = "The letter and its payload", body = LetterDetail),
        (status = 400, description = "Not a letter id, or the letter cannot be read", body = ErrorBody),
        (status = 404, description = "No such letter", body = ErrorBody),
    ),
)]
async fn letters_one(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult {
    use base64::Engine as _;
    let letters = dead_letters(&s)?;
    let letter = letters.letter(&id).await?;
    let company = letter["company_id"].as_str().unwrap_or_default();
    if caller.scope != Scope::All && !caller.scope.allows(company) {
        return Err(ApiError::not_found(format!("no dead letter {id:?}")));
    }
    let payload = letters.payload(&id).await?;
    Ok(Json(LetterDetail {
        letter,
        payload_base64: base64::engine::general_purpose::STANDARD.encode(&payload),
        payload_text: String::from_utf8(payload).ok(),
    })
    .into_response())
}

/// Replays one dead letter: 200 with what happened; 400 naming why when it
/// is refused or still fails.
#[utoipa::path(
    post,
    path = "/v1/dead-letters/{id}/replay",
    tag = "dead letters",
    summary = "Replays one dead letter",
    params(
        ("id" = String, Path, description = "`PARTITION@OFFSET` in the dead-letter topic"),
    ),
    responses(
        (status = 200, description = "What happened", body = serde_json::Value),
        (status = 400, description = "Refused, or it still fails (why)", body = ErrorBody),
        (status = 404, description = "No such letter", body = ErrorBody),
    ),
)]
async fn letters_replay(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult {
    let letters = dead_letters(&s)?;
    let letter = letters.letter(&id).await?;
    let company = letter["company_id"].as_str().unwrap_or_default();
    if caller.scope != Scope::All && !caller.scope.allows(company) {
        return Err(ApiError::not_found(format!("no dead letter {id:?}")));
    }
    Ok(Json(letters.replay(&id).await?).into_response())
}

/// The pipeline's last hour, from a configured Prometheus (every role) or
/// this process's own metrics.
#[utoipa::path(
    get,
    path = "/v1/pipeline/metrics",
    tag = "operations",
    summary = "The last hour of throughput, consumer lag and freshness, a point every 15 s",
    responses(
        (status = 200, description = "Series per metric", body = pipeline::PipelineMetrics),
        (status = 502, description = "The configured Prometheus did not answer (why)", body = ErrorBody),
        (status = 503, description = "No history in this process", body = ErrorBody),
    ),
)]
async fn pipeline_metrics(State(s): State<ApiState>) -> ApiResult {
    let history = s.pipeline.as_ref().ok_or(ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "no_metrics",
        "this process keeps no pipeline history",
    ))?;
    let metrics = history
        .history()
        .await
        .map_err(|e| ApiError::new(StatusCode::BAD_GATEWAY, "failed", e))?;
    Ok(Json(metrics).into_response())
}

fn admin(s: &ApiState) -> Result<&Arc<dyn ConnectionAdmin>, ApiError> {
    s.connections.as_ref().ok_or(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "no_worker", "no connector worker runs in this process, and it shares no state store (state.url) with workers elsewhere"))
}

/// The connection, if the caller may see its company.
async fn visible_connection(
    s: &ApiState,
    caller: &Caller,
    id: &str,
) -> Result<ConnectionView, ApiError> {
    admin(s)?
        .list()
        .await?
        .into_iter()
        .find(|c| {
            c["id"] == id
                && caller
                    .scope
                    .allows(c["company_id"].as_str().unwrap_or_default())
        })
        .ok_or_else(|| ApiError::not_found(format!("no connection {id:?}")))
}

#[utoipa::path(
    get,
    path = "/v1/connections",
    tag = "connections",
    summary = "The connections of the companies the key may manage",
    responses(
        (status = 200, description = "Connections", body = Connections),
    ),
)]
async fn connections_list(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
) -> ApiResult {
    let list: Vec<_> = admin(&s)?
        .list()
        .await?
        .into_iter()
        .filter(|c| {
            caller
                .scope
                .allows(c["company_id"].as_str().unwrap_or_default())
        })
        .collect();
    Ok(Json(Connections { connections: list }).into_response())
}

#[utoipa::path(
    post,
    path = "/v1/connections",
    tag = "connections",
    summary = "Adds a connection; answers where to grant access when the source needs it",
    request_body = AddConnection,
    responses(
        (status = 201, description = "Added", body = ConnectionAdded),
        (status = 400, description = "Unknown source, bad settings", body = ErrorBody),
        (status = 403, description = "The key may not manage the company", body = ErrorBody),
    ),
)]
async fn connections_add(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    body: Result<Json<AddConnection>, axum::extract::rejection::JsonRejection>,
) -> ApiResult {
    let Json(add) = body.map_err(|e| ApiError::bad_request(e.body_text()))?;
    if !caller.scope.allows(&add.company_id) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("this key may not manage company {:?}", add.company_id),
        ));
    }
    let (connection, authorize_url) = admin(&s)?
        .add(
            &add.company_id,
            &add.source,
            add.settings.unwrap_or_else(|| json!({})),
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(ConnectionAdded {
            connection,
            authorize_url,
        }),
    )
        .into_response())
}

#[utoipa::path(
    post,
    path = "/v1/connections/{id}/check",
    tag = "connections",
    summary = "Authenticates and fetches one page, publishing nothing",
    params(
        ("id" = String, Path, description = "A connection id"),
    ),
    responses(
        (status = 200, description = "The source answered", body = ConnectionChecked),
        (status = 404, description = "No such connection", body = ErrorBody),
        (status = 502, description = "The source refused (why)", body = ErrorBody),
    ),
)]
async fn connections_check(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult {
    visible_connection(&s, &caller, &id).await?;
    let outcome = admin(&s)?.check(&id).await?;
    Ok(Json(ConnectionChecked {
        connection_id: id,
        ok: true,
        outcome,
    })
    .into_response())
}

#[utoipa::path(
    get,
    path = "/v1/connections/{id}/sync-settings",
    tag = "connections",
    summary = "A connection's sync settings per data type",
    params(
        ("id" = String, Path, description = "A connection id"),
    ),
    responses(
        (status = 200, description = "The settings", body = serde_json::Value),
        (status = 404, description = "No such connection", body = ErrorBody),
    ),
)]
async fn sync_settings_get(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult {
    visible_connection(&s, &caller, &id).await?;
    Ok(Json(admin(&s)?.sync_settings(&id).await?).into_response())
}

/// Replaces a connection's sync settings overrides; 400 naming what is
/// wrong in them.
#[utoipa::path(
    put,
    path = "/v1/connections/{id}/sync-settings",
    tag = "connections",
    summary = "Replaces a connection's sync settings overrides",
    request_body(content = serde_json::Value, description = "The overrides: `order` (data types, fetched in that order) and `data_types` (per data type `interval_secs`, `reconcile_hours`, `enabled`)", content_type = "application/json"),
    params(
        ("id" = String, Path, description = "A connection id"),
    ),
    responses(
        (status = 200, description = "The settings now", body = serde_json::Value),
        (status = 400, description = "What is wrong in them", body = ErrorBody),
        (status = 404, description = "No such connection", body = ErrorBody),
    ),
)]
async fn sync_settings_put(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: Result<Json<serde_json::Value>, axum::extract::rejection::JsonRejection>,
) -> ApiResult {
    visible_connection(&s, &caller, &id).await?;
    let Json(overrides) = body.map_err(|e| ApiError::bad_request(e.body_text()))?;
    Ok(Json(admin(&s)?.set_sync_settings(&id, overrides).await?).into_response())
}

#[utoipa::path(
    delete,
    path = "/v1/connections/{id}",
    tag = "connections",
    summary = "Unlinks a connection: stops syncing, erases its credentials, keeps its records",
    params(
        ("id" = String, Path, description = "A connection id"),
    ),
    responses(
        (status = 200, description = "Unlinked", body = ConnectionRemoved),
        (status = 404, description = "No such connection", body = ErrorBody),
    ),
)]
async fn connections_remove(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult {
    visible_connection(&s, &caller, &id).await?;
    admin(&s)?.remove(&id).await?;
    Ok(Json(ConnectionRemoved {
        connection_id: id,
        status: "unlinked".into(),
    })
    .into_response())
}

#[utoipa::path(
    get,
    path = "/v1/oauth/{source}/callback",
    tag = "connections",
    summary = "Where the source sends the person back after granting access (no API key: the one-time state proves the request)",
    params(
        ("source" = String, Path, description = "The source"),
        ("code" = Option<String>, Query, description = "The authorization code"),
        ("state" = Option<String>, Query, description = "The one-time state of the authorization URL"),
        ("error" = Option<String>, Query, description = "The source's refusal"),
    ),
    responses(
        (status = 200, description = "Linked", body = Authorized),
        (status = 303, description = "Linked, asked by a browser (`Accept: text/html`): back to the company's page in the console"),
        (status = 400, description = "Refused, missing code or state, unknown or used state", body = ErrorBody),
    ),
)]
async fn oauth_callback(
    State(s): State<ApiState>,
    Path(source): Path<String>,
    Query(params): Query<HashMap<String, String>>,
    headers: axum::http::HeaderMap,
) -> ApiResult {
    if let Some(e) = params.get("error") {
        return Err(ApiError::bad_request(format!(
            "the source refused access: {e}"
        )));
    }
    let (Some(code), Some(state)) = (params.get("code"), params.get("state")) else {
        return Err(ApiError::bad_request("code and state are required"));
    };
    let connection = admin(&s)?
        .complete_authorization(&source, state, code)
        .await?;
    // Its first sync now rather than at the next due time; if this fails,
    // the connection is due anyway.
    if let Err(e) = admin(&s)?.request_sync().await {
        tracing::warn!(error = %e, "cannot request a sync after an authorization");
    }
    // A person's browser goes back to the company's page in the console.
    let browser = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"));
    if browser {
        let company = connection["company_id"].as_str().unwrap_or_default();
        let company = percent_encoding::utf8_percent_encode(company, UNRESERVED);
        let to = format!("/console/#/companies/{company}");
        return Ok(axum::response::Redirect::to(&to).into_response());
    }
    Ok(Json(Authorized { connection }).into_response())
}

/// A source's webhook: the connector verifies the signature over the raw
/// body. Xero wants 200 or 401 with no body, within 5 seconds: queueing
/// runs is all that happens here.
#[utoipa::path(
    post,
    path = "/v1/sources/{source}/webhooks",
    tag = "connections",
    summary = "A source's webhook (Xero's): verified by its signature (no API key), it queues syncs of what changed",
    request_body(content = serde_json::Value, description = "The source's signed JSON body, as it sent it", content_type = "application/json"),
    params(
        ("source" = String, Path, description = "The source"),
    ),
    responses(
        (status = 200, description = "Verified (no body)"),
        (status = 401, description = "Not signed with the configured key (no body)"),
        (status = 400, description = "Signed, but not the source's shape", body = ErrorBody),
        (status = 404, description = "No webhook key configured for the source", body = ErrorBody),
    ),
)]
async fn source_webhook(
    State(s): State<ApiState>,
    Path(source): Path<String>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> ApiResult {
    let webhook = tributary_connector_api::Webhook {
        headers: headers
            .iter()
            .filter_map(|(name, value)| {
                Some((name.as_str().to_string(), value.to_str().ok()?.to_string()))
            })
            .collect(),
        body: body.to_vec(),
    };
    match admin(&s)?.source_webhook(&source, &webhook).await {
        Ok(_) => Ok(StatusCode::OK.into_response()),
        Err(AdminError::Unauthorized(_)) => Ok(StatusCode::UNAUTHORIZED.into_response()),
        Err(e) => Err(e.into()),
    }
}

fn webhooks(s: &ApiState) -> Result<&Arc<dyn WebhookAdmin>, ApiError> {
    s.webhooks.as_ref().ok_or(ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "no_state",
        "this process sees no state store: run it with the workers, or share theirs (state.url)",
    ))
}

/// Whether the caller may manage a subscription to `company` (`None`:
/// every company's events, which only an unlimited key may see).
fn may_manage(caller: &Caller, company: Option<&str>) -> bool {
    match (company, &caller.scope) {
        (_, Scope::All) => true,
        (Some(company), scope) => scope.allows(company),
        (None, Scope::Only(_)) => false,
    }
}

/// A subscription, if the caller may see it; else answers as if there
/// were none.
async fn visible_subscription(
    s: &ApiState,
    caller: &Caller,
    id: &str,
) -> Result<WebhookView, ApiError> {
    let found = webhooks(s)?.subscription(id).await?;
    if may_manage(caller, found["company_id"].as_str()) {
        Ok(found)
    } else {
        Err(ApiError::not_found(format!(
            "no webhook subscription {id:?}"
        )))
    }
}

#[utoipa::path(
    get,
    path = "/v1/webhooks",
    tag = "webhooks",
    summary = "Webhook subscriptions the key may manage",
    responses(
        (status = 200, description = "Subscriptions", body = Webhooks),
    ),
)]
async fn webhooks_list(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
) -> ApiResult {
    let list: Vec<_> = webhooks(&s)?
        .subscriptions()
        .await?
        .into_iter()
        .filter(|w| may_manage(&caller, w["company_id"].as_str()))
        .collect();
    Ok(Json(Webhooks { webhooks: list }).into_response())
}

#[utoipa::path(
    post,
    path = "/v1/webhooks",
    tag = "webhooks",
    summary = "Subscribes a URL to events; answers the signing secret, once",
    request_body = AddWebhook,
    responses(
        (status = 201, description = "Subscribed", body = WebhookAdded),
        (status = 400, description = "The URL or an event type is refused (why)", body = ErrorBody),
        (status = 403, description = "A limited key must name one of its companies", body = ErrorBody),
    ),
)]
async fn webhooks_add(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    body: Result<Json<AddWebhook>, axum::extract::rejection::JsonRejection>,
) -> ApiResult {
    let Json(add) = body.map_err(|e| ApiError::bad_request(e.body_text()))?;
    if !may_manage(&caller, add.company_id.as_deref()) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "this key is limited to some companies: subscribe with one of them as company_id",
        ));
    }
    let (subscription, secret) = webhooks(&s)?
        .subscribe(NewSubscription {
            url: add.url,
            event_types: add.event_types,
            company_id: add.company_id,
            description: add.description.unwrap_or_default(),
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(WebhookAdded {
            webhook: subscription,
            secret,
        }),
    )
        .into_response())
}

#[utoipa::path(
    get,
    path = "/v1/webhooks/{id}",
    tag = "webhooks",
    summary = "One subscription",
    params(
        ("id" = String, Path, description = "A subscription id"),
    ),
    responses(
        (status = 200, description = "The subscription", body = WebhookOne),
        (status = 404, description = "No such subscription", body = ErrorBody),
    ),
)]
async fn webhooks_one(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult {
    let found = visible_subscription(&s, &caller, &id).await?;
    Ok(Json(WebhookOne { webhook: found }).into_response())
}

#[utoipa::path(
    delete,
    path = "/v1/webhooks/{id}",
    tag = "webhooks",
    summary = "Removes a subscription (its pending deliveries are cancelled; the log stays)",
    params(
        ("id" = String, Path, description = "A subscription id"),
    ),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "No such subscription", body = ErrorBody),
    ),
)]
async fn webhooks_remove(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult {
    visible_subscription(&s, &caller, &id).await?;
    webhooks(&s)?.unsubscribe(&id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[utoipa::path(
    post,
    path = "/v1/webhooks/{id}/test",
    tag = "webhooks",
    summary = "Queues a `webhook.test` event to the subscription",
    params(
        ("id" = String, Path, description = "A subscription id"),
    ),
    responses(
        (status = 202, description = "Queued", body = DeliveryOne),
        (status = 404, description = "No such subscription", body = ErrorBody),
    ),
)]
async fn webhooks_test(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult {
    visible_subscription(&s, &caller, &id).await?;
    let delivery = webhooks(&s)?.test(&id).await?;
    Ok((StatusCode::ACCEPTED, Json(DeliveryOne { delivery })).into_response())
}

#[utoipa::path(
    get,
    path = "/v1/webhooks/{id}/deliveries",
    tag = "webhooks",
    summary = "A subscription's deliveries, newest first",
    params(
        ("id" = String, Path, description = "A subscription id"),
        ("status" = Option<String>, Query, description = "`pending`, `delivered`, `failed` or `cancelled`"),
        ("before" = Option<String>, Query, description = "`next_before` of the previous page"),
        ("limit" = Option<u32>, Query, description = "1 to 1000; default 50"),
    ),
    responses(
        (status = 200, description = "A page of deliveries", body = DeliveriesPage),
        (status = 400, description = "Unknown parameter or bad value", body = ErrorBody),
        (status = 404, description = "No such subscription", body = ErrorBody),
    ),
)]
async fn webhooks_deliveries(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> ApiResult {
    only(&params, &["status", "before", "limit"])?;
    visible_subscription(&s, &caller, &id).await?;
    let limit = limit(&params, 50)?;
    let filter = DeliveryFilter {
        status: params.get("status").cloned(),
        before: params.get("before").cloned(),
        limit,
    };
    let list = webhooks(&s)?.deliveries(&id, &filter).await?;
    let next_before = next_after(&list, limit);
    Ok(Json(DeliveriesPage {
        deliveries: list,
        next_before,
    })
    .into_response())
}

/// A delivery, if the caller may see its subscription.
async fn visible_delivery(
    s: &ApiState,
    caller: &Caller,
    id: &str,
) -> Result<WebhookView, ApiError> {
    let delivery = webhooks(s)?.delivery(id).await?;
    let subscription = delivery["subscription_id"].as_str().unwrap_or_default();
    visible_subscription(s, caller, subscription)
        .await
        .map_err(|_| ApiError::not_found(format!("no webhook delivery {id:?}")))?;
    Ok(delivery)
}

#[utoipa::path(
    get,
    path = "/v1/webhook-deliveries/{id}",
    tag = "webhooks",
    summary = "One delivery with its attempts",
    params(
        ("id" = String, Path, description = "A delivery id"),
    ),
    responses(
        (status = 200, description = "The delivery", body = DeliveryOne),
        (status = 404, description = "No such delivery", body = ErrorBody),
    ),
)]
async fn webhooks_delivery(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult {
    let delivery = visible_delivery(&s, &caller, &id).await?;
    Ok(Json(DeliveryOne { delivery }).into_response())
}

#[utoipa::path(
    post,
    path = "/v1/webhook-deliveries/{id}/replay",
    tag = "webhooks",
    summary = "Sends a delivery again, as a new delivery under the same `webhook-id`",
    params(
        ("id" = String, Path, description = "A delivery id"),
    ),
    responses(
        (status = 202, description = "Queued", body = DeliveryOne),
        (status = 404, description = "No such delivery", body = ErrorBody),
    ),
)]
async fn webhooks_replay(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult {
    visible_delivery(&s, &caller, &id).await?;
    let delivery = webhooks(&s)?.replay(&id).await?;
    Ok((StatusCode::ACCEPTED, Json(DeliveryOne { delivery })).into_response())
}

/// What a URL path segment or fragment escapes: all but RFC 3986's
/// unreserved characters.
const UNRESERVED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');
