//! The HTTP API over the store and the search index.
//!
//! Routes (JSON unless said otherwise):
//! - `GET /health`: liveness, and whether the store answers.
//! - `GET /metrics`: Prometheus text format.
//! - `GET /v1/companies`: companies.
//! - `GET /v1/companies/{company}/data/{data_type}?limit=&cursor=&modified_since=&include_deleted=`:
//!   a page of records, oldest version first, with `next_cursor`.
//! - `GET /v1/companies/{company}/data/{data_type}/{id}`: one record.
//! - `GET /v1/companies/{company}/status`: per data type, record counts (in
//!   the store, and `indexed` in the search index) and the latest sync outcome.
//! - `GET /v1/search?q=&company=&data_type=&limit=`: full-text search.
//! - `POST /v1/sync`: asks the connector workers for a sync round now.
//!
//! Bad requests get a 4xx with `{"error": {"code", "message"}}`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::json;
use tokio::sync::mpsc;
use tributary_index_tantivy::SearchIndex;
use tributary_schemas::{DataType, Timestamp};
use tributary_store::{ListQuery, ReadStore};

/// What the handlers share.
#[derive(Clone)]
pub struct ApiState {
    pub store: Arc<dyn ReadStore>,
    pub search: SearchIndex,
    pub metrics: Option<PrometheusHandle>,
    /// Where `POST /v1/sync` sends its request; `None` when no worker runs here.
    pub sync_requests: Option<mpsc::Sender<()>>,
}

/// A client-facing error.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    fn bad_request(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            code: "bad_request",
            message: message.into(),
        }
    }
    fn not_found(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::NOT_FOUND,
            code: "not_found",
            message: message.into(),
        }
    }
    fn internal(e: impl std::fmt::Display) -> Self {
        tracing::error!(error = %e, "api request failed");
        ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: "internal",
            message: e.to_string(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(json!({"error": {"code": self.code, "message": self.message}})),
        )
            .into_response()
    }
}

type ApiResult = Result<Response, ApiError>;

pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/v1/companies", get(companies))
        .route("/v1/companies/{company}/status", get(status))
        .route("/v1/companies/{company}/data/{data_type}", get(list))
        .route("/v1/companies/{company}/data/{data_type}/{id}", get(one))
        .route("/v1/search", get(search))
        .route("/v1/sync", post(sync))
        .fallback(|| async { ApiError::not_found("no such route; see the README for the API") })
        .with_state(state)
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

fn only(params: &HashMap<String, String>, allowed: &[&str]) -> Result<(), ApiError> {
    match params.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(ApiError::bad_request(format!(
            "unknown query parameter {k:?}; allowed: {}",
            allowed.join(", ")
        ))),
        None => Ok(()),
    }
}

async fn health(State(s): State<ApiState>) -> ApiResult {
    match s.store.companies().await {
        Ok(_) => Ok(Json(json!({"status": "ok"})).into_response()),
        Err(e) => Ok((
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "unavailable", "error": e.to_string()})),
        )
            .into_response()),
    }
}

async fn metrics(State(s): State<ApiState>) -> ApiResult {
    let text = s.metrics.as_ref().map(|h| h.render()).unwrap_or_default();
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response())
}

async fn companies(State(s): State<ApiState>) -> ApiResult {
    let companies = s.store.companies().await.map_err(ApiError::internal)?;
    let list: Vec<_> = companies.into_iter().map(|c| c.data).collect();
    Ok(Json(json!({"companies": list})).into_response())
}

async fn status(State(s): State<ApiState>, Path(company): Path<String>) -> ApiResult {
    let status = s.store.status(&company).await.map_err(ApiError::internal)?;
    if status.is_empty() {
        return Err(ApiError::not_found(format!(
            "no data for company {company:?}"
        )));
    }
    // Beside the store's counts, what the search index holds: the two agree
    // once the index projector has caught up.
    let index = s.search.clone();
    let (company, entries) = tokio::task::spawn_blocking(move || {
        let entries: Vec<serde_json::Value> = status
            .into_iter()
            .map(|entry| {
                let indexed = index.count(&company, &entry.data_type).ok();
                let mut value = json!(entry);
                value["indexed"] = json!(indexed);
                value
            })
            .collect();
        (company, entries)
    })
    .await
    .map_err(ApiError::internal)?;
    Ok(Json(json!({"company_id": company, "data_types": entries})).into_response())
}

async fn list(
    State(s): State<ApiState>,
    Path((company, type_name)): Path<(String, String)>,
    Query(params): Query<HashMap<String, String>>,
) -> ApiResult {
    only(
        &params,
        &["limit", "cursor", "modified_since", "include_deleted"],
    )?;
    let data_type = data_type(&type_name)?;
    let limit: u32 = param(&params, "limit")?.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request("limit must be between 1 and 1000"));
    }
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
    Ok(Json(json!({"data_type": data_type.as_str(), "records": page.records, "next_cursor": page.next_cursor})).into_response())
}

async fn one(
    State(s): State<ApiState>,
    Path((company, type_name, id)): Path<(String, String, String)>,
) -> ApiResult {
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

async fn search(
    State(s): State<ApiState>,
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
    let companies = params.get("company").map(|c| vec![c.clone()]);
    let index = s.search.clone();
    let q = q.to_string();
    let hits = tokio::task::spawn_blocking(move || {
        index.search(
            &q,
            companies.as_deref(),
            data_type.map(|t| t.as_str()),
            limit,
        )
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(ApiError::internal)?;
    Ok(Json(json!({"hits": hits})).into_response())
}

async fn sync(State(s): State<ApiState>) -> ApiResult {
    let Some(sender) = &s.sync_requests else {
        return Err(ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "no_worker",
            message: "no connector worker runs in this process".into(),
        });
    };
    // A full queue means a round is already requested: nothing more to do.
    let _ = sender.try_send(());
    Ok((StatusCode::ACCEPTED, Json(json!({"status": "requested"}))).into_response())
}
