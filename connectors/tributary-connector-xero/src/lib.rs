//! The Xero Accounting API connector.
//!
//! Contract (the spec is Xero's own OpenAPI file, `spec/xero_accounting.yaml` in this crate):
//! - Authorization: OAuth2 authorization code, then refresh tokens. Xero
//!   rotates the refresh token at every refresh and the old one dies after a
//!   30-minute grace period. The connector saves new tokens through the
//!   runtime's vault *before* using them; if it crashes between Xero's answer
//!   and the save, the stored (old) token still works within the grace
//!   period, so the connection survives. Tokens that could not be saved are
//!   never used: every call first retries the save.
//! - Every call carries `xero-tenant-id`. Token, API and authorization URLs
//!   are configurable (for tests and mocks) and checked against the network
//!   policy.
//! - Endpoints and data types: Organisation to companies, Accounts, Items,
//!   Contacts (`IsCustomer` / `IsSupplier`) to customers and suppliers,
//!   Invoices (`ACCREC` / `ACCPAY`) to invoices and bills, CreditNotes,
//!   Payments, BankTransactions, ManualJournals to journal entries.
//! - Paging and incremental sync: page-based paging ordered by
//!   `UpdatedDateUTC DESC` with `If-Modified-Since`. Newest first means a
//!   record changed during a sync moves to the front: pages behind it shift
//!   by one, which repeats a record (harmless: same event id) instead of
//!   skipping one. Every record changed after the first page was read is
//!   newer than everything this sync saw, so the next sync asks for changes
//!   since the newest `UpdatedDateUTC` seen, less a second for commit lag
//!   (the repeats this causes are harmless: same event ids).
//! - Limits: 60 calls a minute, 5,000 a day and 5 at once per tenant,
//!   declared in [`Connector::rate_limits`] and enforced by the runtime. A 429
//!   carries Xero's `Retry-After`.
//! - Hostile or broken responses (not JSON, too large, missing the record
//!   list) fail that page with a clear error; a malformed record fails only
//!   itself (it goes to the dead-letter topic).
//! - Webhooks (with `webhook_key` configured): Xero signs each with
//!   `x-xero-signature`, the base64 HMAC-SHA256 of the raw body under the
//!   app's webhook key. A verified contact event asks for customers and
//!   suppliers, an invoice event for invoices and bills, of its tenant
//!   ([`webhooks`]).

pub mod map;
pub mod webhooks;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tributary_connector_api::{
    ConnectionInfo, Connector, ConnectorError, ConnectorFactory, CredentialVault, Cursor, Fault,
    MappedRecord, Page, PageRequest, RateLimits, SourceChange, Webhook, WebhookRefusal,
};
use tributary_connector_http::oauth::{
    TokenKeeper, Tokens, error_chain, oauth_error_code, retry_after, token_call, token_refused,
};
use tributary_connector_http::{NetworkPolicy, check_url, parse_json_exact, read_body};
use tributary_schemas::{DataType, Timestamp};

pub const NAME: &str = "xero";

/// Xero's published limits per tenant.
pub const CALLS_PER_MINUTE: u32 = 60;
pub const CALLS_PER_DAY: u32 = 5_000;
pub const CALLS_AT_ONCE: u32 = 5;

/// How long before its expiry an access token is refreshed.
const REFRESH_MARGIN_MS: i64 = 60_000;
/// How far before the newest change already seen the next sync asks from,
/// for a change Xero stamped a moment before it committed.
const SINCE_LAG_MS: i64 = 1_000;

/// The Tributary app registered with Xero, and where Xero is.
#[derive(Clone)]
pub struct XeroApp {
    pub client_id: String,
    pub client_secret: String,
    pub redirect_uri: String,
    pub scopes: String,
    pub authorize_url: String,
    pub token_url: String,
    pub api_url: String,
    pub connections_url: String,
    pub network: NetworkPolicy,
    pub timeout: Duration,
    pub max_response_bytes: usize,
    /// Calls per minute, per day and at once per organisation: Xero's
    /// published limits unless the app was granted others.
    pub limits: (u32, u32, u32),
    /// The key Xero signs its webhooks with (developer.xero.com, the app's
    /// Webhooks page); empty: webhooks are not received.
    pub webhook_key: String,
}

impl std::fmt::Debug for XeroApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XeroApp")
            .field("client_id", &self.client_id)
            .field("client_secret", &"[redacted]")
            .field("webhook_key", &"[redacted]")
            .field("api_url", &self.api_url)
            .field("token_url", &self.token_url)
            .finish_non_exhaustive()
    }
}

impl XeroApp {
    /// Xero's real addresses, for an app with these credentials.
    pub fn new(client_id: &str, client_secret: &str, redirect_uri: &str) -> Self {
        XeroApp {
            client_id: client_id.to_string(),
            client_secret: client_secret.to_string(),
            redirect_uri: redirect_uri.to_string(),
            scopes: "offline_access accounting.transactions.read accounting.contacts.read \
                     accounting.settings.read"
                .to_string(),
            authorize_url: "https://login.xero.com/identity/connect/authorize".to_string(),
            token_url: "https://identity.xero.com/connect/token".to_string(),
            api_url: "https://api.xero.com/api.xro/2.0".to_string(),
            connections_url: "https://api.xero.com/connections".to_string(),
            network: NetworkPolicy::default(),
            timeout: Duration::from_secs(30),
            max_response_bytes: 32 << 20,
            limits: (CALLS_PER_MINUTE, CALLS_PER_DAY, CALLS_AT_ONCE),
            webhook_key: String::new(),
        }
    }
}

/// The Xero connector's table of the configuration (`[connectors.xero]`,
/// or `[xero]` and `TRIBUTARY__XERO__*` as before): the app registered
/// with Xero (developer.xero.com) and Xero's addresses, which only change
/// for tests and mocks.
#[derive(Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct XeroConfig {
    pub client_id: String,
    pub client_secret: String,
    /// Where Xero sends the person back after granting access: the API's
    /// `/v1/oauth/xero/callback`, as registered with the app.
    pub redirect_uri: String,
    pub authorize_url: String,
    pub token_url: String,
    pub api_url: String,
    pub connections_url: String,
    pub timeout_secs: u64,
    /// Largest response accepted, in bytes.
    pub max_response_bytes: usize,
    /// Xero's call limits per organisation. Keep Xero's published values
    /// unless Xero granted your app others (or for a local mock).
    pub calls_per_minute: u32,
    pub calls_per_day: u32,
    pub calls_at_once: u32,
    /// The app's webhook key: with it, `POST /v1/sources/xero/webhooks`
    /// takes Xero's contact and invoice events and syncs what they name.
    pub webhook_key: String,
}

impl Default for XeroConfig {
    fn default() -> Self {
        let app = XeroApp::new("", "", "http://127.0.0.1:8080/v1/oauth/xero/callback");
        XeroConfig {
            client_id: String::new(),
            client_secret: String::new(),
            redirect_uri: app.redirect_uri,
            authorize_url: app.authorize_url,
            token_url: app.token_url,
            api_url: app.api_url,
            connections_url: app.connections_url,
            timeout_secs: app.timeout.as_secs(),
            max_response_bytes: app.max_response_bytes,
            calls_per_minute: CALLS_PER_MINUTE,
            calls_per_day: CALLS_PER_DAY,
            calls_at_once: CALLS_AT_ONCE,
            webhook_key: String::new(),
        }
    }
}

impl XeroFactory {
    /// From the Xero table of the configuration (as JSON; `None`: Xero's
    /// addresses, no app credentials).
    pub fn from_config(
        table: Option<&Value>,
        network: NetworkPolicy,
    ) -> Result<Self, ConnectorError> {
        let c: XeroConfig = tributary_connector_api::app_settings(table, NAME)?;
        if c.calls_per_minute == 0 || c.calls_per_day == 0 || c.calls_at_once == 0 {
            return Err(err(
                Fault::User,
                "xero.calls_per_minute, calls_per_day and calls_at_once must be at least 1",
            ));
        }
        let mut app = XeroApp::new(&c.client_id, &c.client_secret, &c.redirect_uri);
        app.authorize_url = c.authorize_url;
        app.token_url = c.token_url;
        app.api_url = c.api_url;
        app.connections_url = c.connections_url;
        app.timeout = Duration::from_secs(c.timeout_secs);
        app.max_response_bytes = c.max_response_bytes;
        app.limits = (c.calls_per_minute, c.calls_per_day, c.calls_at_once);
        app.webhook_key = c.webhook_key;
        app.network = network;
        Self::new(app)
    }
}

/// A connection's settings.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct XeroSettings {
    /// The Xero organisation (tenant). Set at authorization when the person
    /// granted exactly one, or given when the connection is added.
    #[serde(default)]
    pub tenant_id: Option<String>,
}

/// Builds Xero connectors; holds the app and one HTTP client for all.
pub struct XeroFactory {
    app: Arc<XeroApp>,
    http: reqwest::Client,
}

impl XeroFactory {
    /// Checks every configured URL against the network policy.
    pub fn new(app: XeroApp) -> Result<Self, ConnectorError> {
        for (what, url) in [
            ("authorize_url", &app.authorize_url),
            ("token_url", &app.token_url),
            ("api_url", &app.api_url),
            ("connections_url", &app.connections_url),
        ] {
            check_url(url, app.network)
                .map_err(|e| err(Fault::User, format!("xero.{what}: {e}")))?;
        }
        let http = tributary_connector_http::client(app.network, app.timeout)
            .map_err(|e| err(Fault::Internal, e))?;
        Ok(XeroFactory {
            app: Arc::new(app),
            http,
        })
    }

    fn settings(value: &Value) -> Result<XeroSettings, ConnectorError> {
        serde_json::from_value(value.clone())
            .map_err(|e| err(Fault::User, format!("invalid xero settings: {e}")))
    }
}

fn err(fault: Fault, message: impl std::fmt::Display) -> ConnectorError {
    ConnectorError::new(NAME, fault, message)
}

#[async_trait]
impl ConnectorFactory for XeroFactory {
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
        let mut url = reqwest::Url::parse(&self.app.authorize_url)
            .map_err(|e| err(Fault::User, format!("xero.authorize_url: {e}")))?;
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.app.client_id)
            .append_pair("redirect_uri", &self.app.redirect_uri)
            .append_pair("scope", &self.app.scopes)
            .append_pair("state", state);
        Ok(url.to_string())
    }

    async fn complete_authorization(
        &self,
        connection: &ConnectionInfo,
        code: &str,
        vault: Arc<dyn CredentialVault>,
    ) -> Result<Value, ConnectorError> {
        let settings = Self::settings(&connection.settings)?;
        let tokens = token_request(
            &self.http,
            &self.app,
            &[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", &self.app.redirect_uri),
            ],
        )
        .await?;
        let tenant_id = pick_tenant(&self.http, &self.app, &tokens, settings.tenant_id).await?;
        vault.save(&tokens.to_credentials()).await?;
        Ok(serde_json::json!({ "tenant_id": tenant_id }))
    }

    fn receive_webhook(&self, webhook: &Webhook) -> Result<Vec<SourceChange>, WebhookRefusal> {
        webhooks::receive(&self.app.webhook_key, webhook)
    }

    fn tenant(&self, connection: &ConnectionInfo) -> Option<String> {
        Self::settings(&connection.settings)
            .ok()?
            .tenant_id
            .filter(|t| !t.is_empty())
    }

    fn build(
        &self,
        connection: &ConnectionInfo,
        vault: Arc<dyn CredentialVault>,
    ) -> Result<Arc<dyn Connector>, ConnectorError> {
        let settings = Self::settings(&connection.settings)?;
        let Some(tenant_id) = settings.tenant_id.filter(|t| !t.is_empty()) else {
            return Err(err(
                Fault::User,
                format!(
                    "connection {} has no Xero tenant yet: authorize it first",
                    connection.connection_id
                ),
            ));
        };
        Ok(Arc::new(XeroConnector {
            app: Arc::clone(&self.app),
            http: self.http.clone(),
            tokens: TokenKeeper::new(NAME, vault, REFRESH_MARGIN_MS),
            tenant_id,
        }))
    }
}

/// Asks Xero which organisations the tokens were granted for and picks one.
async fn pick_tenant(
    http: &reqwest::Client,
    app: &XeroApp,
    tokens: &Tokens,
    wanted: Option<String>,
) -> Result<String, ConnectorError> {
    let response = http
        .get(&app.connections_url)
        .bearer_auth(&tokens.access_token)
        .header("accept", "application/json")
        .send()
        .await
        .map_err(|e| {
            err(
                Fault::Source,
                format!("cannot list granted organisations: {e}"),
            )
        })?;
    let status = response.status();
    let body = read_body(response, 1 << 20)
        .await
        .map_err(|e| err(Fault::Source, format!("granted organisations: {e}")))?;
    if !status.is_success() {
        return Err(err(
            Fault::Source,
            format!("listing granted organisations answered {status}"),
        ));
    }
    let tenants: Vec<Value> = serde_json::from_slice(&body).map_err(|e| {
        err(
            Fault::Source,
            format!("granted organisations are not a JSON list: {e}"),
        )
    })?;
    let ids: Vec<&str> = tenants
        .iter()
        .filter(|t| t["tenantType"].as_str().unwrap_or("ORGANISATION") == "ORGANISATION")
        .filter_map(|t| t["tenantId"].as_str())
        .collect();
    match (wanted, ids.as_slice()) {
        (Some(w), _) if ids.contains(&w.as_str()) => Ok(w),
        (Some(w), _) => Err(err(
            Fault::User,
            format!(
                "organisation {w} was not granted; granted: {}",
                ids.join(", ")
            ),
        )),
        (None, [one]) => Ok(one.to_string()),
        (None, []) => Err(err(Fault::User, "no organisation was granted")),
        (None, many) => Err(err(
            Fault::User,
            format!(
                "several organisations were granted; add the connection with one tenant_id of: {}",
                many.join(", ")
            ),
        )),
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    refresh_token: String,
    expires_in: i64,
}

/// Calls the token endpoint (a code exchange or a refresh).
async fn token_request(
    http: &reqwest::Client,
    app: &XeroApp,
    form: &[(&str, &str)],
) -> Result<Tokens, ConnectorError> {
    let answer = token_call(
        NAME,
        http.post(&app.token_url)
            .basic_auth(&app.client_id, Some(&app.client_secret))
            .form(form),
    )
    .await?;
    if !answer.status.is_success() {
        return Err(token_refused(
            NAME,
            &answer,
            &oauth_error_code(&answer.body),
        ));
    }
    let t: TokenResponse = serde_json::from_slice(&answer.body).map_err(|e| {
        err(
            Fault::Source,
            format!("token endpoint answered an unreadable token: {e}"),
        )
    })?;
    Ok(Tokens {
        access_token: t.access_token,
        refresh_token: t.refresh_token,
        expires_at: Timestamp::now().millis() + t.expires_in * 1000,
    })
}

/// One Xero organisation, ready to fetch.
pub struct XeroConnector {
    app: Arc<XeroApp>,
    http: reqwest::Client,
    tenant_id: String,
    tokens: TokenKeeper,
}

/// Where one data type comes from.
struct Endpoint {
    path: &'static str,
    /// The list in the response.
    collection: &'static str,
    paged: bool,
    modified_since: bool,
    filter: Option<&'static str>,
    extra: &'static [(&'static str, &'static str)],
}

fn endpoint(data_type: DataType) -> Result<Endpoint, ConnectorError> {
    let e = |path, collection, paged, filter, extra| Endpoint {
        path,
        collection,
        paged,
        modified_since: path != "Organisation",
        filter,
        extra,
    };
    const DOCS: &[(&str, &str)] = &[("unitdp", "4")];
    const CONTACTS: &[(&str, &str)] = &[("includeArchived", "true")];
    Ok(match data_type {
        DataType::Company => e("Organisation", "Organisations", false, None, &[]),
        DataType::Account => e("Accounts", "Accounts", false, None, &[]),
        DataType::Item => e("Items", "Items", false, None, DOCS),
        DataType::Customer => e(
            "Contacts",
            "Contacts",
            true,
            Some("IsCustomer==true"),
            CONTACTS,
        ),
        DataType::Supplier => e(
            "Contacts",
            "Contacts",
            true,
            Some("IsSupplier==true"),
            CONTACTS,
        ),
        DataType::Invoice => e("Invoices", "Invoices", true, Some("Type==\"ACCREC\""), DOCS),
        DataType::Bill => e("Invoices", "Invoices", true, Some("Type==\"ACCPAY\""), DOCS),
        DataType::CreditNote => e("CreditNotes", "CreditNotes", true, None, DOCS),
        DataType::Payment => e("Payments", "Payments", true, None, &[]),
        DataType::BankTransaction => e("BankTransactions", "BankTransactions", true, None, DOCS),
        DataType::JournalEntry => e("ManualJournals", "ManualJournals", true, None, &[]),
        other => {
            return Err(err(
                Fault::Internal,
                format!("Xero has no {other} to fetch"),
            ));
        }
    })
}

/// Where a data type's sync is.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct XeroCursor {
    /// `If-Modified-Since` of this sync (ms); `None` fetches everything.
    since: Option<i64>,
    /// The next page to fetch, from 1.
    page: u32,
    /// The newest `UpdatedDateUTC` seen in this sync so far (ms).
    newest: Option<i64>,
}

impl XeroConnector {
    /// A valid access token: loaded from the vault, refreshed (and saved)
    /// when it is about to expire.
    async fn access_token(&self) -> Result<String, ConnectorError> {
        self.tokens
            .access_token(|tokens| async move {
                token_request(
                    &self.http,
                    &self.app,
                    &[
                        ("grant_type", "refresh_token"),
                        ("refresh_token", &tokens.refresh_token),
                    ],
                )
                .await
            })
            .await
    }

    /// Forgets that the access token is valid (Xero answered 401).
    async fn expire_access_token(&self) {
        self.tokens.expire().await;
    }
}

#[async_trait]
impl Connector for XeroConnector {
    fn rate_limits(&self) -> Option<RateLimits> {
        Some(RateLimits {
            key: format!("{NAME}:{}", self.tenant_id),
            per_minute: Some(self.app.limits.0),
            per_day: Some(self.app.limits.1),
            concurrent: Some(self.app.limits.2),
        })
    }

    fn data_types(&self) -> Vec<DataType> {
        vec![
            DataType::Company,
            DataType::Account,
            DataType::Item,
            DataType::Customer,
            DataType::Supplier,
            DataType::Invoice,
            DataType::Bill,
            DataType::CreditNote,
            DataType::Payment,
            DataType::BankTransaction,
            DataType::JournalEntry,
        ]
    }

    async fn authenticate(&self) -> Result<(), ConnectorError> {
        self.access_token().await.map(|_| ())
    }

    async fn fetch_page(&self, request: &PageRequest) -> Result<Page, ConnectorError> {
        let ep = endpoint(request.data_type)?;
        let cursor: XeroCursor = Cursor::decode(request.cursor.as_ref(), NAME)?;
        let page = cursor.page.max(1);
        let page_size = request.page_size.clamp(1, 1000);
        let where_ = format!("{} page {page}", ep.path);
        let url = format!("{}/{}", self.app.api_url.trim_end_matches('/'), ep.path);
        let mut query: Vec<(&str, String)> =
            ep.extra.iter().map(|(k, v)| (*k, v.to_string())).collect();
        if ep.paged {
            query.push(("page", page.to_string()));
            query.push(("pageSize", page_size.to_string()));
            query.push(("order", "UpdatedDateUTC DESC".to_string()));
        }
        if let Some(filter) = ep.filter {
            query.push(("where", filter.to_string()));
        }
        let since = cursor.since.filter(|_| ep.modified_since).map(Timestamp);
        let mut body = match self.get(&where_, &url, &query, since).await? {
            Answer::NotModified => return Ok(Self::finished(&cursor, Vec::new())),
            Answer::NotFound => {
                return Err(err(
                    Fault::User,
                    format!("{where_}: Xero answered 404 Not Found"),
                ));
            }
            Answer::Body(body) => body,
        };
        let server_time = body
            .get("DateTimeUTC")
            .and_then(Value::as_str)
            .and_then(map::parse_xero_timestamp)
            .unwrap_or(request.now);
        let records = match body.get_mut(ep.collection).map(Value::take) {
            Some(Value::Array(records)) => records,
            Some(_) => {
                return Err(err(
                    Fault::Source,
                    format!("{where_}: {} in the response is not a list", ep.collection),
                ));
            }
            None => {
                return Err(err(
                    Fault::Source,
                    format!("{where_}: the response has no {} list", ep.collection),
                ));
            }
        };
        let records: Vec<Value> = records
            .into_iter()
            .map(|r| Self::observed(r, server_time))
            .collect();
        let newest = records
            .iter()
            .filter_map(|r| r.get("UpdatedDateUTC")?.as_str())
            .filter_map(map::parse_xero_timestamp)
            .map(Timestamp::millis)
            .chain(cursor.newest)
            .max();
        let more = ep.paged
            && !records.is_empty()
            && match body.get("pagination").and_then(|p| p.get("pageCount")) {
                Some(Value::String(count)) => count.parse::<u32>().is_ok_and(|c| page < c),
                _ => records.len() >= page_size as usize,
            };
        if more {
            let next = XeroCursor {
                since: cursor.since,
                page: page + 1,
                newest,
            };
            return Ok(Page {
                records,
                next_cursor: Some(Cursor::encode(&next)),
                has_more: true,
            });
        }
        Ok(Self::finished(&XeroCursor { newest, ..cursor }, records))
    }

    /// Every data type but the organisation (one record, no id) can be
    /// fetched by its Xero id.
    fn can_fetch_record(&self, data_type: DataType) -> bool {
        endpoint(data_type).is_ok_and(|ep| ep.path != "Organisation")
    }

    async fn fetch_record(
        &self,
        data_type: DataType,
        id: &str,
        _now: Timestamp,
    ) -> Result<Option<Value>, ConnectorError> {
        let ep = endpoint(data_type)?;
        if ep.path == "Organisation" || id.is_empty() || id.contains(['/', '?', '#']) {
            return Err(err(
                Fault::User,
                format!("cannot fetch one {data_type} record with id {id:?}"),
            ));
        }
        let where_ = format!("{}/{id}", ep.path);
        let url = format!(
            "{}/{}/{id}",
            self.app.api_url.trim_end_matches('/'),
            ep.path
        );
        let query: Vec<(&str, String)> =
            ep.extra.iter().map(|(k, v)| (*k, v.to_string())).collect();
        let mut body = match self.get(&where_, &url, &query, None).await? {
            Answer::Body(body) => body,
            Answer::NotFound => return Ok(None),
            Answer::NotModified => {
                return Err(err(
                    Fault::Source,
                    format!("{where_}: Xero answered 304 unasked"),
                ));
            }
        };
        let server_time = body
            .get("DateTimeUTC")
            .and_then(Value::as_str)
            .and_then(map::parse_xero_timestamp)
            .unwrap_or_else(Timestamp::now);
        match body.get_mut(ep.collection).map(Value::take) {
            Some(Value::Array(mut records)) if records.len() <= 1 => Ok(records
                .pop()
                .map(|record| Self::observed(record, server_time))),
            Some(Value::Array(records)) => Err(err(
                Fault::Source,
                format!(
                    "{where_}: Xero answered {} records for one id",
                    records.len()
                ),
            )),
            _ => Err(err(
                Fault::Source,
                format!("{where_}: the response has no {} list", ep.collection),
            )),
        }
    }

    fn map(&self, data_type: DataType, raw: &Value) -> Result<MappedRecord, ConnectorError> {
        map::map_record(data_type, raw).map_err(|m| err(Fault::Data, m))
    }
}

/// What one GET to the Accounting API answered.
enum Answer {
    /// 304: nothing changed since `If-Modified-Since`.
    NotModified,
    /// 404: no such resource.
    NotFound,
    Body(Value),
}

impl XeroConnector {
    /// One GET to the Accounting API (`where_` names it in errors), with
    /// the tenant, a fresh token and `If-Modified-Since` when `since` is
    /// set; its errors say who is at fault and when to retry.
    async fn get(
        &self,
        where_: &str,
        url: &str,
        query: &[(&str, String)],
        since: Option<Timestamp>,
    ) -> Result<Answer, ConnectorError> {
        let token = self.access_token().await?;
        let mut call = self
            .http
            .get(url)
            .bearer_auth(token)
            .header("xero-tenant-id", &self.tenant_id)
            .header("accept", "application/json")
            .query(query);
        if let Some(since) = since {
            call = call.header("if-modified-since", since.to_string());
        }
        let response = call.send().await.map_err(|e| {
            err(
                Fault::Source,
                format!("{where_}: request failed: {}", error_chain(&e)),
            )
        })?;
        let status = response.status();
        if status == reqwest::StatusCode::NOT_MODIFIED {
            return Ok(Answer::NotModified);
        }
        if status == reqwest::StatusCode::NOT_FOUND {
            return Ok(Answer::NotFound);
        }
        if !status.is_success() {
            let after = retry_after(&response);
            let problem = response
                .headers()
                .get("x-rate-limit-problem")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            return Err(match status.as_u16() {
                401 => {
                    self.expire_access_token().await;
                    err(
                        Fault::Source,
                        format!("{where_}: access token refused (401), refreshing"),
                    )
                }
                403 => err(
                    Fault::User,
                    format!(
                        "{where_}: forbidden (403): the organisation revoked access or the scopes are missing"
                    ),
                ),
                429 => {
                    let e = err(
                        Fault::RateLimited,
                        format!(
                            "{where_}: rate limited by Xero ({} limit)",
                            if problem.is_empty() {
                                "unspecified"
                            } else {
                                problem.as_str()
                            }
                        ),
                    );
                    match after {
                        Some(after) => e.with_retry_after(after),
                        None => e,
                    }
                }
                s if s >= 500 => err(Fault::Source, format!("{where_}: Xero answered {status}")),
                _ => err(Fault::User, format!("{where_}: Xero answered {status}")),
            });
        }
        let body = read_body(response, self.app.max_response_bytes)
            .await
            .map_err(|e| err(Fault::Source, format!("{where_}: {e}")))?;
        parse_json_exact(&body)
            .map(Answer::Body)
            .map_err(|e| err(Fault::Source, format!("{where_}: {e}")))
    }

    /// A record without `UpdatedDateUTC` gets the server's time of the
    /// answer as its version.
    fn observed(mut record: Value, server_time: Timestamp) -> Value {
        if let Some(fields) = record.as_object_mut()
            && !fields.contains_key("UpdatedDateUTC")
        {
            fields.insert(
                map::OBSERVED_AT.to_string(),
                Value::String(server_time.millis().to_string()),
            );
        }
        record
    }

    /// The last page of a sync: the next one asks for what changed since
    /// the newest change this one saw (less a second), or since what this
    /// one asked for when it saw none.
    fn finished(cursor: &XeroCursor, records: Vec<Value>) -> Page {
        let next = XeroCursor {
            since: cursor.newest.map(|n| n - SINCE_LAG_MS).or(cursor.since),
            page: 1,
            newest: None,
        };
        Page {
            records,
            next_cursor: Some(Cursor::encode(&next)),
            has_more: false,
        }
    }
}
