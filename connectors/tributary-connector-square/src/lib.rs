//! The Square connector (commerce: locations, customers, products, orders,
//! payments, refunds, payouts, disputes).
//!
//! Contract (the spec is Square's own OpenAPI file, `spec/square_api.json`
//! in this crate):
//! - Authorization: OAuth2 authorization code, then refresh tokens
//!   (`POST /oauth2/token`, JSON). Access tokens last 30 days; the
//!   connector refreshes one a day before it expires and saves new tokens
//!   through the runtime's vault before it uses them
//!   ([`tributary_connector_http::oauth`]). The merchant granted is kept in
//!   the connection's settings.
//! - Every call carries `Square-Version` (the API version this connector
//!   was written against, configurable) and a bearer token.
//! - Paging: Square's opaque `cursor`, until an answer has none. A source
//!   that hands back a cursor it already served is stopped by the runtime.
//! - Incremental: payments and refunds (`updated_at_begin_time`, sorted by
//!   `UPDATED_AT`), orders (search filtered and sorted by `updated_at`, by
//!   groups of 10 locations), customers (search filtered by `updated_at`)
//!   and the catalogue (search with `begin_time`, deleted objects included)
//!   ask only for what changed since the newest change the last sync saw,
//!   less a second. Locations, payouts and disputes have no such filter:
//!   every sync is a full pass (unchanged records keep their version and
//!   event id, so stores change nothing).
//! - Money: Square's amounts are integers in the currency's smallest unit;
//!   they become decimals by the currency's ISO 4217 exponent, exactly.
//! - Limits: Square publishes no fixed call budget; a 429 answer
//!   (`RATE_LIMITED`) is retried by the runtime after a pause. Calls per
//!   merchant at once are capped by [`SquareApp::calls_at_once`].
//! - Hostile or broken answers (not JSON, too large, a list that is not a
//!   list) fail that page with a clear error; a malformed record, or an
//!   example that contradicts the schema, fails only itself (it goes to the
//!   dead-letter topic with the reason).

pub mod map;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tributary_connector_api::{
    ConnectionInfo, Connector, ConnectorError, ConnectorFactory, CredentialVault, Cursor, Fault,
    MappedRecord, Page, PageRequest, RateLimits,
};
use tributary_connector_http::oauth::{
    TokenKeeper, Tokens, error_chain, retry_after, token_call, token_refused,
};
use tributary_connector_http::{NetworkPolicy, check_url, parse_json_exact, read_body};
use tributary_schemas::{DataType, Timestamp};

pub const NAME: &str = "square";

/// The API version this connector was written against.
pub const SQUARE_VERSION: &str = "2025-08-20";

/// Refresh an access token this long before it expires (Square's last 30
/// days).
const REFRESH_MARGIN_MS: i64 = 24 * 3_600_000;
/// How far before the newest change already seen the next sync asks from.
const SINCE_LAG_MS: i64 = 1_000;
/// The start of time for lists that default to the last year.
const HISTORY_START: &str = "2009-01-01T00:00:00Z";
/// Square's search endpoints take at most this many locations.
const LOCATIONS_PER_SEARCH: usize = 10;

/// The Tributary app registered with Square, and where Square is: the
/// `[square]` section of the configuration (`TRIBUTARY__SQUARE__*`).
#[derive(Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SquareApp {
    pub client_id: String,
    pub client_secret: String,
    /// Where Square sends the person back after granting access: the API's
    /// `/v1/oauth/square/callback`, as registered with the app.
    pub redirect_uri: String,
    pub scopes: String,
    /// Square's address: `https://connect.squareup.com` (production) or
    /// `https://connect.squareupsandbox.com`; a mock's in tests.
    pub base_url: String,
    pub square_version: String,
    pub timeout_secs: u64,
    /// Largest answer accepted, in bytes.
    pub max_response_bytes: usize,
    /// Calls to one merchant at once.
    pub calls_at_once: u32,
    /// Let the connector reach `http` and internal addresses: set from
    /// `security.allow_private_network`, never from this section.
    #[serde(skip)]
    pub network: NetworkPolicy,
}

impl Default for SquareApp {
    fn default() -> Self {
        SquareApp {
            client_id: String::new(),
            client_secret: String::new(),
            redirect_uri: "http://127.0.0.1:8080/v1/oauth/square/callback".into(),
            scopes: "MERCHANT_PROFILE_READ PAYMENTS_READ ORDERS_READ CUSTOMERS_READ ITEMS_READ \
                     DISPUTES_READ BANK_ACCOUNTS_READ"
                .into(),
            base_url: "https://connect.squareup.com".into(),
            square_version: SQUARE_VERSION.into(),
            timeout_secs: 30,
            max_response_bytes: 32 << 20,
            calls_at_once: 5,
            network: NetworkPolicy::default(),
        }
    }
}

impl std::fmt::Debug for SquareApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SquareApp")
            .field("client_id", &self.client_id)
            .field("client_secret", &"[redacted]")
            .field("base_url", &self.base_url)
            .field("square_version", &self.square_version)
            .finish_non_exhaustive()
    }
}

impl SquareApp {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url.trim_end_matches('/'))
    }
}

/// A connection's settings.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SquareSettings {
    /// The Square merchant (seller). Set at authorization.
    #[serde(default)]
    pub merchant_id: Option<String>,
}

fn err(fault: Fault, message: impl std::fmt::Display) -> ConnectorError {
    ConnectorError::new(NAME, fault, message)
}

/// Builds Square connectors; holds the app and one HTTP client for all.
pub struct SquareFactory {
    app: Arc<SquareApp>,
    http: reqwest::Client,
}

impl SquareFactory {
    /// Checks the configured address against the network policy.
    pub fn new(app: SquareApp) -> Result<Self, ConnectorError> {
        check_url(&app.base_url, app.network)
            .map_err(|e| err(Fault::User, format!("square.base_url: {e}")))?;
        if app.calls_at_once == 0 {
            return Err(err(Fault::User, "square.calls_at_once must be at least 1"));
        }
        let http =
            tributary_connector_http::client(app.network, Duration::from_secs(app.timeout_secs))
                .map_err(|e| err(Fault::Internal, e))?;
        Ok(SquareFactory {
            app: Arc::new(app),
            http,
        })
    }

    /// From the `[connectors.square]` table of the configuration (as JSON;
    /// `None` when there is none: Square's defaults, no app credentials).
    pub fn from_config(
        table: Option<&Value>,
        network: NetworkPolicy,
    ) -> Result<Self, ConnectorError> {
        let mut app: SquareApp = tributary_connector_api::app_settings(table, NAME)?;
        app.network = network;
        Self::new(app)
    }

    fn settings(value: &Value) -> Result<SquareSettings, ConnectorError> {
        serde_json::from_value(value.clone())
            .map_err(|e| err(Fault::User, format!("invalid square settings: {e}")))
    }
}

#[async_trait]
impl ConnectorFactory for SquareFactory {
    fn name(&self) -> &'static str {
        NAME
    }

    fn check_settings(&self, settings: &Value) -> Result<(), ConnectorError> {
        Self::settings(settings).map(|_| ())
    }

    fn needs_authorization(&self) -> bool {
        true
    }

    async fn authorization_url(
        &self,
        _connection: &ConnectionInfo,
        state: &str,
        _vault: Arc<dyn CredentialVault>,
    ) -> Result<String, ConnectorError> {
        let mut url = reqwest::Url::parse(&self.app.url("/oauth2/authorize"))
            .map_err(|e| err(Fault::User, format!("square.base_url: {e}")))?;
        url.query_pairs_mut()
            .append_pair("client_id", &self.app.client_id)
            .append_pair("scope", &self.app.scopes)
            .append_pair("session", "false")
            .append_pair("redirect_uri", &self.app.redirect_uri)
            .append_pair("state", state);
        Ok(url.to_string())
    }

    async fn complete_authorization(
        &self,
        _connection: &ConnectionInfo,
        code: &str,
        vault: Arc<dyn CredentialVault>,
    ) -> Result<Value, ConnectorError> {
        let (tokens, merchant_id) = token_request(
            &self.http,
            &self.app,
            json!({
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": self.app.redirect_uri,
            }),
        )
        .await?;
        let Some(merchant_id) = merchant_id else {
            return Err(err(
                Fault::Source,
                "the token endpoint named no merchant for the code",
            ));
        };
        vault.save(&tokens.to_credentials()).await?;
        Ok(json!({ "merchant_id": merchant_id }))
    }

    fn build(
        &self,
        connection: &ConnectionInfo,
        vault: Arc<dyn CredentialVault>,
    ) -> Result<Arc<dyn Connector>, ConnectorError> {
        let settings = Self::settings(&connection.settings)?;
        let Some(merchant_id) = settings.merchant_id.filter(|m| !m.is_empty()) else {
            return Err(err(
                Fault::User,
                format!(
                    "connection {} has no Square merchant yet: authorize it first",
                    connection.connection_id
                ),
            ));
        };
        Ok(Arc::new(SquareConnector {
            app: Arc::clone(&self.app),
            http: self.http.clone(),
            tokens: TokenKeeper::new(NAME, vault, REFRESH_MARGIN_MS),
            merchant_id,
        }))
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    refresh_token: Option<String>,
    /// RFC 3339.
    expires_at: String,
    #[serde(default)]
    merchant_id: Option<String>,
}

/// Calls the token endpoint (a code exchange or a refresh): the tokens and
/// the merchant they are for.
async fn token_request(
    http: &reqwest::Client,
    app: &SquareApp,
    mut body: Value,
) -> Result<(Tokens, Option<String>), ConnectorError> {
    body["client_id"] = json!(app.client_id);
    body["client_secret"] = json!(app.client_secret);
    let kept_refresh = body["refresh_token"].as_str().map(str::to_string);
    let answer = token_call(
        NAME,
        http.post(app.url("/oauth2/token"))
            .header("square-version", &app.square_version)
            .json(&body),
    )
    .await?;
    if !answer.status.is_success() {
        // Square's error codes, never the body: it could echo secrets.
        return Err(token_refused(NAME, &answer, &error_codes(&answer.body)));
    }
    let t: TokenResponse = serde_json::from_slice(&answer.body).map_err(|e| {
        err(
            Fault::Source,
            format!("token endpoint answered an unreadable token: {e}"),
        )
    })?;
    let expires_at = Timestamp::parse(&t.expires_at).map_err(|e| {
        err(
            Fault::Source,
            format!("token endpoint answered an unreadable expiry: {e}"),
        )
    })?;
    // A refresh may answer without a refresh token: the old one stays.
    let Some(refresh_token) = t.refresh_token.or(kept_refresh) else {
        return Err(err(Fault::Source, "token endpoint gave no refresh token"));
    };
    Ok((
        Tokens {
            access_token: t.access_token,
            refresh_token,
            expires_at: expires_at.millis(),
        },
        t.merchant_id,
    ))
}

fn with_retry(e: ConnectorError, after: Option<Duration>) -> ConnectorError {
    match after {
        Some(after) => e.with_retry_after(after),
        None => e,
    }
}

/// The `code`s of Square's error answer (`{"errors": [{"category",
/// "code", "detail"}]}`), for messages; never the whole body.
fn error_codes(body: &[u8]) -> String {
    let codes: Vec<String> = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("errors").and_then(Value::as_array).cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|e| {
            let code = e.get("code")?.as_str()?;
            let detail = e.get("detail").and_then(Value::as_str).unwrap_or("");
            Some(if detail.is_empty() {
                code.to_string()
            } else {
                format!("{code}: {}", detail.chars().take(200).collect::<String>())
            })
        })
        .collect();
    if codes.is_empty() {
        "no error code".into()
    } else {
        codes.join("; ")
    }
}

/// One merchant, ready to fetch.
pub struct SquareConnector {
    app: Arc<SquareApp>,
    http: reqwest::Client,
    tokens: TokenKeeper,
    merchant_id: String,
}

/// How a data type is listed.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Listing {
    /// `GET` with query parameters.
    Get,
    /// `POST` of a search body.
    Search,
}

/// Where one data type comes from.
struct Endpoint {
    listing: Listing,
    path: &'static str,
    /// The list in the answer.
    collection: &'static str,
    /// Whether the endpoint filters by `updated_at` (else full passes).
    incremental: bool,
    /// Where one record is fetched by id (`{id}` replaced), and the field
    /// of the answer holding it.
    by_id: Option<(&'static str, &'static str)>,
}

fn endpoint(data_type: DataType) -> Result<Endpoint, ConnectorError> {
    let e = |listing, path, collection, incremental, by_id| Endpoint {
        listing,
        path,
        collection,
        incremental,
        by_id,
    };
    Ok(match data_type {
        DataType::Location => e(
            Listing::Get,
            "/v2/locations",
            "locations",
            false,
            Some(("/v2/locations/{id}", "location")),
        ),
        DataType::Customer => e(
            Listing::Search,
            "/v2/customers/search",
            "customers",
            true,
            Some(("/v2/customers/{id}", "customer")),
        ),
        DataType::Product => e(
            Listing::Search,
            "/v2/catalog/search",
            "objects",
            true,
            Some(("/v2/catalog/object/{id}", "object")),
        ),
        DataType::Order => e(
            Listing::Search,
            "/v2/orders/search",
            "orders",
            true,
            Some(("/v2/orders/{id}", "order")),
        ),
        DataType::CommercePayment => e(
            Listing::Get,
            "/v2/payments",
            "payments",
            true,
            Some(("/v2/payments/{id}", "payment")),
        ),
        DataType::Refund => e(
            Listing::Get,
            "/v2/refunds",
            "refunds",
            true,
            Some(("/v2/refunds/{id}", "refund")),
        ),
        DataType::Payout => e(
            Listing::Get,
            "/v2/payouts",
            "payouts",
            false,
            Some(("/v2/payouts/{id}", "payout")),
        ),
        DataType::Dispute => e(
            Listing::Get,
            "/v2/disputes",
            "disputes",
            false,
            Some(("/v2/disputes/{id}", "dispute")),
        ),
        other => return Err(err(Fault::Internal, format!("Square has no {other}"))),
    })
}

/// Where a data type's sync is.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SquareCursor {
    /// Changes since this instant (ms); `None` lists everything.
    since: Option<i64>,
    /// Square's cursor for the next page of this pass.
    #[serde(default)]
    page: Option<String>,
    /// The newest `updated_at` seen in this pass so far (ms).
    #[serde(default)]
    newest: Option<i64>,
    /// Orders: the merchant's locations, listed at the start of the pass,
    /// and which group of 10 this page is for.
    #[serde(default)]
    locations: Vec<String>,
    #[serde(default)]
    group: usize,
}

/// What one call answered.
enum Answer {
    NotFound,
    Body(Value),
}

impl SquareConnector {
    async fn access_token(&self) -> Result<String, ConnectorError> {
        self.tokens
            .access_token(|tokens| async move {
                token_request(
                    &self.http,
                    &self.app,
                    json!({
                        "grant_type": "refresh_token",
                        "refresh_token": tokens.refresh_token,
                    }),
                )
                .await
                .map(|(tokens, _)| tokens)
            })
            .await
    }

    /// One call to Square (`where_` names it in errors) with a fresh token
    /// and the API version; its errors say who is at fault and when to
    /// retry.
    async fn call(
        &self,
        where_: &str,
        path: &str,
        query: &[(&str, String)],
        search: Option<&Value>,
    ) -> Result<Answer, ConnectorError> {
        let token = self.access_token().await?;
        let url = self.app.url(path);
        let call = match search {
            Some(body) => self.http.post(url).json(body),
            None => self.http.get(url).query(query),
        };
        let response = call
            .bearer_auth(token)
            .header("square-version", &self.app.square_version)
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|e| {
                err(
                    Fault::Source,
                    format!("{where_}: request failed: {}", error_chain(&e)),
                )
            })?;
        let status = response.status();
        let after = retry_after(&response);
        let body = read_body(response, self.app.max_response_bytes)
            .await
            .map_err(|e| err(Fault::Source, format!("{where_}: {e}")))?;
        if status.is_success() {
            return parse_json_exact(&body)
                .map(Answer::Body)
                .map_err(|e| err(Fault::Source, format!("{where_}: {e}")));
        }
        let codes = error_codes(&body);
        Err(match status.as_u16() {
            404 => return Ok(Answer::NotFound),
            401 => {
                self.tokens.expire().await;
                err(
                    Fault::Source,
                    format!("{where_}: access token refused (401 {codes}), refreshing"),
                )
            }
            403 => err(
                Fault::User,
                format!(
                    "{where_}: forbidden (403 {codes}): the seller revoked access or the scopes are missing"
                ),
            ),
            429 => with_retry(
                err(
                    Fault::RateLimited,
                    format!("{where_}: rate limited by Square ({codes})"),
                ),
                after,
            ),
            s if s >= 500 => err(
                Fault::Source,
                format!("{where_}: Square answered {status} ({codes})"),
            ),
            _ => err(
                Fault::User,
                format!("{where_}: Square answered {status} ({codes})"),
            ),
        })
    }

    /// The ids of the merchant's locations (orders are searched by location).
    async fn location_ids(&self) -> Result<Vec<String>, ConnectorError> {
        let body = match self.call("locations", "/v2/locations", &[], None).await? {
            Answer::Body(body) => body,
            Answer::NotFound => return Err(err(Fault::User, "locations: Square answered 404")),
        };
        let list = records_of(&body, "locations", "locations")?;
        Ok(list
            .iter()
            .filter_map(|l| l.get("id")?.as_str().map(str::to_string))
            .collect())
    }
}

/// The list `collection` of an answer; Square leaves an empty list out.
fn records_of(body: &Value, collection: &str, where_: &str) -> Result<Vec<Value>, ConnectorError> {
    match body.get(collection) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(records)) => Ok(records.clone()),
        Some(_) => Err(err(
            Fault::Source,
            format!("{where_}: {collection} in the answer is not a list"),
        )),
    }
}

fn rfc3339(ms: i64) -> String {
    Timestamp(ms).to_string()
}

#[async_trait]
impl Connector for SquareConnector {
    fn rate_limits(&self) -> Option<RateLimits> {
        Some(RateLimits {
            key: format!("{NAME}:{}", self.merchant_id),
            per_minute: None,
            per_day: None,
            concurrent: Some(self.app.calls_at_once),
        })
    }

    fn data_types(&self) -> Vec<DataType> {
        vec![
            DataType::Location,
            DataType::Customer,
            DataType::Product,
            DataType::Order,
            DataType::CommercePayment,
            DataType::Refund,
            DataType::Payout,
            DataType::Dispute,
        ]
    }

    async fn authenticate(&self) -> Result<(), ConnectorError> {
        self.access_token().await.map(|_| ())
    }

    async fn fetch_page(&self, request: &PageRequest) -> Result<Page, ConnectorError> {
        let ep = endpoint(request.data_type)?;
        let mut cursor: SquareCursor = Cursor::decode(request.cursor.as_ref(), NAME)?;
        if !ep.incremental {
            cursor.since = None;
        }
        let data_type = request.data_type;
        if data_type == DataType::Order && cursor.page.is_none() && cursor.group == 0 {
            cursor.locations = self.location_ids().await?;
        }
        let limit = request.page_size.clamp(1, 100);
        let since = cursor.since.map(rfc3339);
        let where_ = format!("{} ({data_type})", ep.path);
        let answer = match ep.listing {
            Listing::Get => {
                let mut query: Vec<(&str, String)> = vec![("limit", limit.to_string())];
                if let Some(page) = &cursor.page {
                    query.push(("cursor", page.clone()));
                }
                match data_type {
                    DataType::CommercePayment | DataType::Refund => {
                        query.push(("begin_time", HISTORY_START.into()));
                        query.push(("sort_field", "UPDATED_AT".into()));
                        query.push(("sort_order", "ASC".into()));
                        if let Some(since) = &since {
                            query.push(("updated_at_begin_time", since.clone()));
                        }
                    }
                    DataType::Payout => {
                        query.push(("begin_time", HISTORY_START.into()));
                        query.push(("sort_order", "ASC".into()));
                    }
                    // Locations and disputes take no limit.
                    _ => query.retain(|(k, _)| *k == "cursor"),
                }
                self.call(&where_, ep.path, &query, None).await?
            }
            Listing::Search => {
                let body = search_body(data_type, &cursor, since.as_deref(), limit);
                if data_type == DataType::Order && cursor.locations.is_empty() {
                    // No location, no order.
                    return Ok(finished(&cursor, Vec::new()));
                }
                self.call(&where_, ep.path, &[], Some(&body)).await?
            }
        };
        let body = match answer {
            Answer::Body(body) => body,
            Answer::NotFound => {
                return Err(err(
                    Fault::User,
                    format!("{where_}: Square answered 404 Not Found"),
                ));
            }
        };
        let records: Vec<Value> = records_of(&body, ep.collection, &where_)?
            .into_iter()
            .map(|r| map::observed(r, request.now))
            .collect();
        let newest = records
            .iter()
            .filter_map(|r| r.get("updated_at")?.as_str())
            .filter_map(|t| Timestamp::parse(t).ok())
            .map(Timestamp::millis)
            .chain(cursor.newest)
            .max();
        let next_page = match body.get("cursor") {
            Some(Value::String(c)) if !c.is_empty() => Some(c.clone()),
            _ => None,
        };
        let groups = cursor.locations.len().div_ceil(LOCATIONS_PER_SEARCH);
        let next = match next_page {
            Some(page) => Some(SquareCursor {
                page: Some(page),
                newest,
                ..cursor.clone()
            }),
            // Orders: the next group of locations, from its first page.
            None if data_type == DataType::Order && cursor.group + 1 < groups => {
                Some(SquareCursor {
                    page: None,
                    group: cursor.group + 1,
                    newest,
                    ..cursor.clone()
                })
            }
            None => None,
        };
        match next {
            Some(next) => Ok(Page {
                records,
                next_cursor: Some(Cursor::encode(&next)),
                has_more: true,
            }),
            None => Ok(finished(
                &SquareCursor {
                    newest,
                    ..cursor.clone()
                },
                records,
            )),
        }
    }

    fn can_fetch_record(&self, data_type: DataType) -> bool {
        endpoint(data_type).is_ok_and(|ep| ep.by_id.is_some())
    }

    async fn fetch_record(
        &self,
        data_type: DataType,
        id: &str,
        now: Timestamp,
    ) -> Result<Option<Value>, ConnectorError> {
        let ep = endpoint(data_type)?;
        let Some((path, field)) = ep.by_id else {
            return Err(err(
                Fault::User,
                format!("Square cannot fetch one {data_type} by id"),
            ));
        };
        if id.is_empty()
            || !id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_:".contains(&b))
        {
            return Err(err(
                Fault::User,
                format!("cannot fetch one {data_type} record with id {id:?}"),
            ));
        }
        let path = path.replace("{id}", id);
        let query: Vec<(&str, String)> = if data_type == DataType::Product {
            vec![("include_related_objects", "false".into())]
        } else {
            Vec::new()
        };
        match self.call(&path, &path, &query, None).await? {
            Answer::NotFound => Ok(None),
            Answer::Body(mut body) => match body.get_mut(field).map(Value::take) {
                Some(record @ Value::Object(_)) => Ok(Some(map::observed(record, now))),
                _ => Err(err(
                    Fault::Source,
                    format!("{path}: the answer has no {field}"),
                )),
            },
        }
    }

    fn map(&self, data_type: DataType, raw: &Value) -> Result<MappedRecord, ConnectorError> {
        map::map_record(data_type, raw).map_err(|m| err(Fault::Data, m))
    }
}

/// The body of a search for `data_type`.
fn search_body(
    data_type: DataType,
    cursor: &SquareCursor,
    since: Option<&str>,
    limit: u32,
) -> Value {
    let mut body = match data_type {
        DataType::Customer => {
            let mut query = json!({ "sort": { "field": "DEFAULT", "order": "ASC" } });
            if let Some(since) = since {
                query["filter"] = json!({ "updated_at": { "start_at": since } });
            }
            json!({ "limit": limit, "query": query })
        }
        DataType::Product => {
            let mut body = json!({
                "object_types": ["ITEM"],
                "include_deleted_objects": true,
                "limit": limit,
            });
            if let Some(since) = since {
                body["begin_time"] = json!(since);
            }
            body
        }
        _ => {
            let group: Vec<&String> = cursor
                .locations
                .iter()
                .skip(cursor.group * LOCATIONS_PER_SEARCH)
                .take(LOCATIONS_PER_SEARCH)
                .collect();
            let mut query = json!({ "sort": { "sort_field": "UPDATED_AT", "sort_order": "ASC" } });
            if let Some(since) = since {
                query["filter"] =
                    json!({ "date_time_filter": { "updated_at": { "start_at": since } } });
            }
            json!({
                "location_ids": group,
                "limit": limit,
                "return_entries": false,
                "query": query,
            })
        }
    };
    if let Some(page) = &cursor.page {
        body["cursor"] = json!(page);
    }
    body
}

/// The last page of a pass: the next pass asks for what changed since the
/// newest change this one saw (less a second), or since what this one
/// asked for when it saw none.
fn finished(cursor: &SquareCursor, records: Vec<Value>) -> Page {
    let next = SquareCursor {
        since: cursor.newest.map(|n| n - SINCE_LAG_MS).or(cursor.since),
        ..SquareCursor::default()
    };
    Page {
        records,
        next_cursor: Some(Cursor::encode(&next)),
        has_more: false,
    }
}
