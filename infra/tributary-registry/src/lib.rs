//! A schema registry that speaks the Confluent Schema Registry REST API for
//! what standard clients use, persisted in SQLite.
//!
//! Served by `tributary up` when no external registry URL is configured, so
//! that Confluent's own serializers (Java, Python's `confluent-kafka`, Rust's
//! `schema_registry_converter`) work against a single-machine pipeline.
//!
//! Contract:
//! - Avro only. Schema ids are global and stable across restarts; the same
//!   schema text registered under two subjects gets one id.
//! - Registration checks compatibility against the subject's versions at the
//!   subject's level, or the global level (default `BACKWARD`: the new schema
//!   must read data written with the latest one). An incompatible schema is
//!   refused with 409 and changes nothing.
//! - Errors are Confluent's JSON `{"error_code", "message"}` with its codes
//!   (40401 subject not found, 40402 version not found, 40403 schema not
//!   found, 42201 invalid schema, 42202 invalid version, 42203 invalid
//!   compatibility level, 409 incompatible).

use std::path::Path;
use std::str::FromStr;

use apache_avro::Schema;
use apache_avro::schema_compatibility::SchemaCompatibility;
use axum::extract::{Path as UrlPath, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use sqlx::{Row, SqlitePool};

const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

/// A failure of the registry's own storage.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("registry database {path}: {source}")]
    Open { path: String, source: sqlx::Error },
    #[error("registry database migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// The compatibility levels Confluent defines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Compatibility {
    None,
    Backward,
    BackwardTransitive,
    Forward,
    ForwardTransitive,
    Full,
    FullTransitive,
}

impl FromStr for Compatibility {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        serde_json::from_value(serde_json::Value::String(s.to_string())).map_err(|_| ())
    }
}

impl Compatibility {
    fn as_str(self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    }

    /// Whether `new` may follow `existing` (oldest first) under this level.
    fn check(self, new: &Schema, existing: &[Schema]) -> Result<(), String> {
        let (against, backward, forward): (&[Schema], bool, bool) = match self {
            Compatibility::None => return Ok(()),
            Compatibility::Backward => (last(existing), true, false),
            Compatibility::Forward => (last(existing), false, true),
            Compatibility::Full => (last(existing), true, true),
            Compatibility::BackwardTransitive => (existing, true, false),
            Compatibility::ForwardTransitive => (existing, false, true),
            Compatibility::FullTransitive => (existing, true, true),
        };
        for old in against {
            if backward {
                SchemaCompatibility::can_read(old, new).map_err(|e| {
                    format!("new schema cannot read data written with an existing one: {e}")
                })?;
            }
            if forward {
                SchemaCompatibility::can_read(new, old).map_err(|e| {
                    format!("existing schema cannot read data written with the new one: {e}")
                })?;
            }
        }
        Ok(())
    }
}

fn last(schemas: &[Schema]) -> &[Schema] {
    &schemas[schemas.len().saturating_sub(1)..]
}

/// The registry's persistent state.
#[derive(Clone)]
pub struct Registry {
    pool: SqlitePool,
    default_level: Compatibility,
    /// Registrations run one at a time: the check against the latest
    /// version and the insert of the next one must not interleave.
    registering: std::sync::Arc<tokio::sync::Mutex<()>>,
}

/// An error answered to the client, in Confluent's shape.
struct ApiError {
    status: StatusCode,
    code: u32,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: u32, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }
    fn subject_not_found(subject: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            40401,
            format!("Subject '{subject}' not found."),
        )
    }
    fn version_not_found(subject: &str, version: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            40402,
            format!("Version {version} not found for subject '{subject}'."),
        )
    }
    fn schema_not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, 40403, "Schema not found")
    }
    fn internal(e: impl std::fmt::Display) -> Self {
        tracing::error!(error = %e, "schema registry storage failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            50001,
            format!("Error in the backend data store: {e}"),
        )
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        ApiError::internal(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        reply(
            self.status,
            json!({"error_code": self.code, "message": self.message}),
        )
    }
}

fn reply(status: StatusCode, body: serde_json::Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        body.to_string(),
    )
        .into_response()
}

fn ok(body: serde_json::Value) -> Result<Response, ApiError> {
    Ok(reply(StatusCode::OK, body))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SchemaRequest {
    schema: String,
    schema_type: Option<String>,
    #[serde(default)]
    references: Vec<serde_json::Value>,
}

impl SchemaRequest {
    /// Parses the schema; only self-contained Avro is accepted.
    fn parse(&self) -> Result<(Schema, String), ApiError> {
        let invalid = |m: String| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, 42201, m);
        match self.schema_type.as_deref() {
            None | Some("AVRO") => {}
            Some(other) => {
                return Err(invalid(format!(
                    "Invalid schema: schema type {other} is not supported, only AVRO"
                )));
            }
        }
        if !self.references.is_empty() {
            return Err(invalid(
                "Invalid schema: schema references are not supported".into(),
            ));
        }
        let schema =
            Schema::parse_str(&self.schema).map_err(|e| invalid(format!("Invalid schema: {e}")))?;
        let compact = serde_json::from_str::<serde_json::Value>(&self.schema)
            .map(|v| v.to_string())
            .map_err(|e| invalid(format!("Invalid schema: {e}")))?;
        Ok((schema, compact))
    }
}

#[derive(Deserialize)]
struct ConfigRequest {
    compatibility: String,
}

impl Registry {
    /// Opens (creating if needed) the registry database at `path`.
    pub async fn open(path: &Path, default_level: Compatibility) -> Result<Self, RegistryError> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(std::time::Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .map_err(|source| RegistryError::Open {
                path: path.display().to_string(),
                source,
            })?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        Ok(Registry {
            pool,
            default_level,
            registering: Default::default(),
        })
    }

    /// The REST API, to be served at the registry's root URL.
    pub fn router(self) -> Router {
        Router::new()
            .route("/", get(|| async { ok(json!({})) }))
            .route("/schemas/types", get(|| async { ok(json!(["AVRO"])) }))
            .route("/schemas/ids/{id}", get(schema_by_id))
            .route("/schemas/ids/{id}/schema", get(raw_schema_by_id))
            .route("/schemas/ids/{id}/versions", get(versions_of_id))
            .route("/subjects", get(subjects))
            .route("/subjects/{subject}", post(lookup).delete(delete_subject))
            .route("/subjects/{subject}/versions", get(versions).post(register))
            .route("/subjects/{subject}/versions/{version}", get(version))
            .route(
                "/subjects/{subject}/versions/{version}/schema",
                get(version_raw),
            )
            .route(
                "/compatibility/subjects/{subject}/versions/{version}",
                post(check_compatibility),
            )
            .route(
                "/compatibility/subjects/{subject}/versions",
                post(check_compatibility_all),
            )
            .route("/config", get(global_config).put(set_global_config))
            .route(
                "/config/{subject}",
                get(subject_config).put(set_subject_config),
            )
            .with_state(self)
    }

    async fn level(&self, subject: &str) -> Result<Compatibility, ApiError> {
        let row: Option<(String,)> = sqlx::query_as("SELECT level FROM compatibility WHERE subject = ? OR subject = '' ORDER BY subject DESC LIMIT 1")
            .bind(subject)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row
            .and_then(|(l,)| l.parse().ok())
            .unwrap_or(self.default_level))
    }

    /// Live versions of `subject`, oldest first: (version, schema id, text).
    async fn subject_versions(&self, subject: &str) -> Result<Vec<(i64, i64, String)>, ApiError> {
        let rows = sqlx::query(
            "SELECT v.version, v.schema_id, s.schema_text FROM subject_versions v JOIN schemas s ON s.id = v.schema_id \
             WHERE v.subject = ? AND v.deleted = 0 ORDER BY v.version",
        )
        .bind(subject)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect())
    }

    async fn resolve_version(
        &self,
        subject: &str,
        version: &str,
    ) -> Result<(i64, i64, String), ApiError> {
        let all = self.subject_versions(subject).await?;
        if all.is_empty() {
            return Err(ApiError::subject_not_found(subject));
        }
        let found = match version {
            "latest" | "-1" => all.last().cloned(),
            v => {
                let n: i64 = v.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, 42202, format!("The specified version '{v}' is not a valid version id. Allowed values are between [1, 2^31-1] and the string \"latest\""))
                })?;
                all.into_iter().find(|(ver, _, _)| *ver == n)
            }
        };
        found.ok_or_else(|| ApiError::version_not_found(subject, version))
    }

    async fn check(
        &self,
        subject: &str,
        new: &Schema,
        against: Option<&str>,
    ) -> Result<Result<(), String>, ApiError> {
        let level = self.level(subject).await?;
        let existing = match against {
            Some(version) => vec![self.resolve_version(subject, version).await?],
            None => self.subject_versions(subject).await?,
        };
        let schemas: Vec<Schema> = existing
            .iter()
            .filter_map(|(_, _, text)| Schema::parse_str(text).ok())
            .collect();
        let level = if against.is_some() {
            // Checking against one named version: that version is the whole history.
            match level {
                Compatibility::BackwardTransitive => Compatibility::Backward,
                Compatibility::ForwardTransitive => Compatibility::Forward,
                Compatibility::FullTransitive => Compatibility::Full,
                other => other,
            }
        } else {
            level
        };
        Ok(level.check(new, &schemas))
    }
}

async fn schema_by_id(
    State(r): State<Registry>,
    UrlPath(id): UrlPath<i64>,
) -> Result<Response, ApiError> {
    let row: Option<(String,)> = sqlx::query_as("SELECT schema_text FROM schemas WHERE id = ?")
        .bind(id)
        .fetch_optional(&r.pool)
        .await?;
    let (text,) = row.ok_or_else(ApiError::schema_not_found)?;
    ok(json!({"schema": text}))
}

async fn raw_schema_by_id(
    State(r): State<Registry>,
    UrlPath(id): UrlPath<i64>,
) -> Result<Response, ApiError> {
    let row: Option<(String,)> = sqlx::query_as("SELECT schema_text FROM schemas WHERE id = ?")
        .bind(id)
        .fetch_optional(&r.pool)
        .await?;
    let (text,) = row.ok_or_else(ApiError::schema_not_found)?;
    Ok(reply(
        StatusCode::OK,
        serde_json::from_str(&text).map_err(ApiError::internal)?,
    ))
}

async fn versions_of_id(
    State(r): State<Registry>,
    UrlPath(id): UrlPath<i64>,
) -> Result<Response, ApiError> {
    let rows = sqlx::query("SELECT subject, version FROM subject_versions WHERE schema_id = ? AND deleted = 0 ORDER BY subject, version")
        .bind(id)
        .fetch_all(&r.pool)
        .await?;
    if rows.is_empty() {
        return Err(ApiError::schema_not_found());
    }
    let list: Vec<_> = rows
        .iter()
        .map(|row| json!({"subject": row.get::<String, _>(0), "version": row.get::<i64, _>(1)}))
        .collect();
    ok(json!(list))
}

async fn subjects(State(r): State<Registry>) -> Result<Response, ApiError> {
    let rows: Vec<(String,)> = sqlx::query_as(
        "SELECT DISTINCT subject FROM subject_versions WHERE deleted = 0 ORDER BY subject",
    )
    .fetch_all(&r.pool)
    .await?;
    ok(json!(rows.into_iter().map(|(s,)| s).collect::<Vec<_>>()))
}

async fn versions(
    State(r): State<Registry>,
    UrlPath(subject): UrlPath<String>,
) -> Result<Response, ApiError> {
    let all = r.subject_versions(&subject).await?;
    if all.is_empty() {
        return Err(ApiError::subject_not_found(&subject));
    }
    ok(json!(
        all.into_iter().map(|(v, _, _)| v).collect::<Vec<_>>()
    ))
}

async fn version(
    State(r): State<Registry>,
    UrlPath((subject, version)): UrlPath<(String, String)>,
) -> Result<Response, ApiError> {
    let (v, id, text) = r.resolve_version(&subject, &version).await?;
    ok(json!({"subject": subject, "version": v, "id": id, "schema": text}))
}

async fn version_raw(
    State(r): State<Registry>,
    UrlPath((subject, version)): UrlPath<(String, String)>,
) -> Result<Response, ApiError> {
    let (_, _, text) = r.resolve_version(&subject, &version).await?;
    Ok(reply(
        StatusCode::OK,
        serde_json::from_str(&text).map_err(ApiError::internal)?,
    ))
}

async fn register(
    State(r): State<Registry>,
    UrlPath(subject): UrlPath<String>,
    Json(request): Json<SchemaRequest>,
) -> Result<Response, ApiError> {
    let (schema, text) = request.parse()?;
    let _one_at_a_time = r.registering.lock().await;
    let existing = r.subject_versions(&subject).await?;
    if let Some((_, id, _)) = existing.iter().find(|(_, _, t)| *t == text) {
        return ok(json!({"id": id}));
    }
    if let Err(reason) = r.check(&subject, &schema, None).await? {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            409,
            format!(
                "Schema being registered is incompatible with an earlier schema for subject \"{subject}\": {reason}"
            ),
        ));
    }
    // One transaction: the schema row and the new version land together.
    let mut tx = r.pool.begin().await?;
    // Look up before inserting: a conflicting insert would still use up an id.
    let known: Option<(i64,)> = sqlx::query_as("SELECT id FROM schemas WHERE schema_text = ?")
        .bind(&text)
        .fetch_optional(&mut *tx)
        .await?;
    let id = match known {
        Some((id,)) => id,
        None => sqlx::query("INSERT INTO schemas (schema_type, schema_text) VALUES ('AVRO', ?)")
            .bind(&text)
            .execute(&mut *tx)
            .await?
            .last_insert_rowid(),
    };
    let (next,): (i64,) = sqlx::query_as(
        "SELECT COALESCE(MAX(version), 0) + 1 FROM subject_versions WHERE subject = ?",
    )
    .bind(&subject)
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query("INSERT INTO subject_versions (subject, version, schema_id) VALUES (?, ?, ?)")
        .bind(&subject)
        .bind(next)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    tracing::info!(subject, version = next, schema_id = id, "registered schema");
    ok(json!({"id": id}))
}

async fn lookup(
    State(r): State<Registry>,
    UrlPath(subject): UrlPath<String>,
    Json(request): Json<SchemaRequest>,
) -> Result<Response, ApiError> {
    let (_, text) = request.parse()?;
    let existing = r.subject_versions(&subject).await?;
    if existing.is_empty() {
        return Err(ApiError::subject_not_found(&subject));
    }
    let (v, id, text) = existing
        .into_iter()
        .find(|(_, _, t)| *t == text)
        .ok_or_else(ApiError::schema_not_found)?;
    ok(json!({"subject": subject, "version": v, "id": id, "schema": text}))
}

async fn delete_subject(
    State(r): State<Registry>,
    UrlPath(subject): UrlPath<String>,
) -> Result<Response, ApiError> {
    let all = r.subject_versions(&subject).await?;
    if all.is_empty() {
        return Err(ApiError::subject_not_found(&subject));
    }
    sqlx::query("UPDATE subject_versions SET deleted = 1 WHERE subject = ?")
        .bind(&subject)
        .execute(&r.pool)
        .await?;
    ok(json!(
        all.into_iter().map(|(v, _, _)| v).collect::<Vec<_>>()
    ))
}

async fn check_compatibility(
    State(r): State<Registry>,
    UrlPath((subject, version)): UrlPath<(String, String)>,
    Json(request): Json<SchemaRequest>,
) -> Result<Response, ApiError> {
    let (schema, _) = request.parse()?;
    if r.subject_versions(&subject).await?.is_empty() {
        return ok(json!({"is_compatible": true}));
    }
    let verdict = r.check(&subject, &schema, Some(&version)).await?;
    ok(compatibility_body(verdict))
}

async fn check_compatibility_all(
    State(r): State<Registry>,
    UrlPath(subject): UrlPath<String>,
    Json(request): Json<SchemaRequest>,
) -> Result<Response, ApiError> {
    let (schema, _) = request.parse()?;
    ok(compatibility_body(r.check(&subject, &schema, None).await?))
}

fn compatibility_body(verdict: Result<(), String>) -> serde_json::Value {
    match verdict {
        Ok(()) => json!({"is_compatible": true}),
        Err(reason) => json!({"is_compatible": false, "messages": [reason]}),
    }
}

async fn global_config(State(r): State<Registry>) -> Result<Response, ApiError> {
    ok(json!({"compatibilityLevel": r.level("").await?.as_str()}))
}

async fn subject_config(
    State(r): State<Registry>,
    UrlPath(subject): UrlPath<String>,
) -> Result<Response, ApiError> {
    let row: Option<(String,)> =
        sqlx::query_as("SELECT level FROM compatibility WHERE subject = ?")
            .bind(&subject)
            .fetch_optional(&r.pool)
            .await?;
    match row {
        Some((level,)) => ok(json!({"compatibilityLevel": level})),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            40408,
            format!("Subject '{subject}' does not have subject-level compatibility configured"),
        )),
    }
}

async fn set_global_config(
    State(r): State<Registry>,
    Json(request): Json<ConfigRequest>,
) -> Result<Response, ApiError> {
    set_level(&r, "", request).await
}

async fn set_subject_config(
    State(r): State<Registry>,
    UrlPath(subject): UrlPath<String>,
    Json(request): Json<ConfigRequest>,
) -> Result<Response, ApiError> {
    set_level(&r, &subject, request).await
}

async fn set_level(
    r: &Registry,
    subject: &str,
    request: ConfigRequest,
) -> Result<Response, ApiError> {
    let level: Compatibility = request.compatibility.parse().map_err(|_| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            42203,
            format!("Invalid compatibility level {:?}", request.compatibility),
        )
    })?;
    sqlx::query("INSERT INTO compatibility (subject, level) VALUES (?, ?) ON CONFLICT (subject) DO UPDATE SET level = excluded.level")
        .bind(subject)
        .bind(level.as_str())
        .execute(&r.pool)
        .await?;
    ok(json!({"compatibility": level.as_str()}))
}
