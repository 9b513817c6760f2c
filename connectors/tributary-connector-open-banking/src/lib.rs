//! The UK Open Banking Account and Transaction API (v4.0) connector: any
//! bank implementing the standard (the spec is in `spec/` in this crate).
//!
//! Contract:
//! - One connector, many banks: a connection's settings say where its bank
//!   is (`api_url`, `token_url`, `authorize_url`, the request object's
//!   audience `issuer`, the `client_id` the bank registered). The app's own
//!   settings (`[connectors.open_banking]`: client secret, signing key,
//!   redirect URL) are the same for every bank.
//! - Authorization, as the standard has it: a client-credentials token
//!   (scope `accounts`) creates an account-access consent (the permissions
//!   below, expiring after `consent_days`); the customer is sent to the
//!   bank with a signed request object (PS256 or ES256) naming the consent
//!   (`openbanking_intent_id`), with PKCE (`S256`). The verifier waits in
//!   the connection's vault; the code comes back to the API's callback and
//!   is exchanged for tokens, refreshed later like any OAuth2 source.
//! - Consent lifetime: the consent's id and expiry become connection
//!   settings. Once it expires, or the bank says it is no longer
//!   authorised (checked at most hourly), `authenticate` fails with the
//!   user at fault: the runtime marks the connection `deauthorized` with the
//!   reason. A 403 from a data endpoint is the user's too.
//! - Data: accounts, then per account balances (one record per account,
//!   type and day: history kept), transactions, direct debits and standing
//!   orders; paging by `Links.Next` (which must stay on the bank's API
//!   host). Transactions are incremental by `fromBookingDateTime`, asking
//!   again for the last `transaction_overlap_days` so pending transactions
//!   are seen again as they book; those that vanish become deletes at the
//!   next reconciliation (a full pass).
//! - Every call carries an `x-fapi-interaction-id`; errors quote the one
//!   the bank answered with and the standard's error codes.
//! - Amounts are the standard's strings with up to five decimals, signed by
//!   `CreditDebitIndicator` (credit positive), kept exactly at scale 5.

pub mod jws;
pub mod map;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::Mutex;
use tributary_connector_api::{
    ConnectionInfo, Connector, ConnectorError, ConnectorFactory, CredentialVault, Credentials,
    Cursor, Fault, MappedRecord, Page, PageRequest, RateLimits,
};
use tributary_connector_http::oauth::{
    TokenKeeper, Tokens, error_chain, oauth_error_code, retry_after, token_call, token_refused,
};
use tributary_connector_http::{NetworkPolicy, Url, check_url, parse_json_exact, read_body};
use tributary_schemas::{DataType, Timestamp};

pub const NAME: &str = "open_banking";

/// What the consent asks the customer to grant.
pub const PERMISSIONS: [&str; 7] = [
    "ReadAccountsDetail",
    "ReadBalances",
    "ReadTransactionsDetail",
    "ReadTransactionsCredits",
    "ReadTransactionsDebits",
    "ReadDirectDebits",
    "ReadStandingOrdersDetail",
];

/// Refresh an access token this long before it expires.
const REFRESH_MARGIN_MS: i64 = 60_000;

/// Tributary's app as registered with the banks: the
/// `[connectors.open_banking]` table of the configuration.
#[derive(Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OpenBankingApp {
    /// The client id banks know the app by, unless a connection names its
    /// bank's own (`client_id` setting).
    pub client_id: String,
    /// For `client_secret_basic` at the banks' token endpoints.
    pub client_secret: String,
    /// Where banks send the customer back: the API's
    /// `/v1/oauth/open_banking/callback`.
    pub redirect_uri: String,
    /// The request-object signing key, PKCS#8 PEM (RSA signs PS256, EC
    /// P-256 ES256), given inline or as a file.
    pub signing_key: String,
    pub signing_key_file: Option<PathBuf>,
    /// The key's id as registered with the banks.
    pub signing_kid: String,
    /// How long a consent asks to last.
    pub consent_days: u32,
    /// How far back each incremental transaction fetch starts before the
    /// newest booking already seen.
    pub transaction_overlap_days: u32,
    /// How often a connection asks its bank whether its consent still
    /// holds (a revoked one makes it `deauthorized`).
    pub consent_check_secs: u64,
    pub timeout_secs: u64,
    pub max_response_bytes: usize,
    /// Calls to one bank for one connection at once.
    pub calls_at_once: u32,
    /// Set from `security.allow_private_network`, never from this table.
    #[serde(skip)]
    pub network: NetworkPolicy,
}

impl Default for OpenBankingApp {
    fn default() -> Self {
        OpenBankingApp {
            client_id: String::new(),
            client_secret: String::new(),
            redirect_uri: "http://127.0.0.1:8080/v1/oauth/open_banking/callback".into(),
            signing_key: String::new(),
            signing_key_file: None,
            signing_kid: String::new(),
            consent_days: 90,
            transaction_overlap_days: 7,
            consent_check_secs: 3600,
            timeout_secs: 30,
            max_response_bytes: 32 << 20,
            calls_at_once: 4,
            network: NetworkPolicy::default(),
        }
    }
}

impl std::fmt::Debug for OpenBankingApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenBankingApp")
            .field("client_id", &self.client_id)
            .field("client_secret", &"[redacted]")
            .field("signing_key", &"[redacted]")
            .field("signing_kid", &self.signing_kid)
            .finish_non_exhaustive()
    }
}

/// A connection's settings: where its bank is, and its consent once
/// granted.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BankSettings {
    /// The Account and Transaction API's base, for example
    /// `https://bank.example/open-banking/v4.0/aisp`.
    pub api_url: String,
    pub token_url: String,
    pub authorize_url: String,
    /// The authorization server's issuer: the request object's audience.
    /// Defaults to `authorize_url`'s origin.
    #[serde(default)]
    pub issuer: Option<String>,
    /// The client id this bank registered for the app, when not the app's.
    #[serde(default)]
    pub client_id: Option<String>,
    /// Set at authorization.
    #[serde(default)]
    pub consent_id: Option<String>,
    /// RFC 3339; set at authorization.
    #[serde(default)]
    pub consent_expires_at: Option<String>,
}

/// What waits in the vault between the link and the callback.
#[derive(Serialize, Deserialize)]
struct Pending {
    consent_id: String,
    consent_expires_at: String,
    code_verifier: String,
}

fn err(fault: Fault, message: impl std::fmt::Display) -> ConnectorError {
    ConnectorError::new(NAME, fault, message)
}

/// Builds Open Banking connectors; holds the app, its signer and one HTTP
/// client for all.
pub struct OpenBankingFactory {
    app: Arc<OpenBankingApp>,
    signer: Option<Arc<jws::Signer>>,
    http: reqwest::Client,
    /// When the bank last said each consent holds (connectors are built
    /// anew for every sync round; this outlives them).
    consent_checks: Arc<Mutex<HashMap<String, Instant>>>,
}

impl OpenBankingFactory {
    /// Reads the signing key (when one is set: without one, connections can
    /// be added but not authorized).
    pub fn new(mut app: OpenBankingApp) -> Result<Self, ConnectorError> {
        if let Some(path) = &app.signing_key_file {
            app.signing_key = std::fs::read_to_string(path).map_err(|e| {
                err(
                    Fault::User,
                    format!(
                        "[connectors.open_banking] signing_key_file {}: {e}",
                        path.display()
                    ),
                )
            })?;
        }
        let signer = if app.signing_key.trim().is_empty() {
            None
        } else {
            Some(Arc::new(
                jws::Signer::from_pem(&app.signing_key, &app.signing_kid)
                    .map_err(|e| err(Fault::User, format!("[connectors.open_banking] {e}")))?,
            ))
        };
        if app.calls_at_once == 0 {
            return Err(err(
                Fault::User,
                "[connectors.open_banking] calls_at_once must be at least 1",
            ));
        }
        let http =
            tributary_connector_http::client(app.network, Duration::from_secs(app.timeout_secs))
                .map_err(|e| err(Fault::Internal, e))?;
        Ok(OpenBankingFactory {
            app: Arc::new(app),
            signer,
            http,
            consent_checks: Arc::default(),
        })
    }

    /// From the `[connectors.open_banking]` table (as JSON; `None`: the
    /// defaults, no client).
    pub fn from_config(
        table: Option<&Value>,
        network: NetworkPolicy,
    ) -> Result<Self, ConnectorError> {
        let mut app: OpenBankingApp = tributary_connector_api::app_settings(table, NAME)?;
        app.network = network;
        Self::new(app)
    }

    /// The connection's settings, every address checked against the
    /// network policy.
    fn settings(&self, value: &Value) -> Result<BankSettings, ConnectorError> {
        let settings: BankSettings = serde_json::from_value(value.clone())
            .map_err(|e| err(Fault::User, format!("invalid open_banking settings: {e}")))?;
        for (what, url) in [
            ("api_url", Some(&settings.api_url)),
            ("token_url", Some(&settings.token_url)),
            ("authorize_url", Some(&settings.authorize_url)),
            ("issuer", settings.issuer.as_ref()),
        ] {
            if let Some(url) = url {
                check_url(url, self.app.network)
                    .map_err(|e| err(Fault::User, format!("open_banking {what}: {e}")))?;
            }
        }
        Ok(settings)
    }

    fn bank(&self, settings: BankSettings) -> Bank {
        Bank {
            app: Arc::clone(&self.app),
            http: self.http.clone(),
            settings,
        }
    }
}

#[async_trait]
impl ConnectorFactory for OpenBankingFactory {
    fn name(&self) -> &'static str {
        NAME
    }

    fn check_settings(&self, settings: &Value) -> Result<(), ConnectorError> {
        self.settings(settings).map(|_| ())
    }

    fn needs_authorization(&self) -> bool {
        true
    }

    async fn authorization_url(
        &self,
        connection: &ConnectionInfo,
        state: &str,
        vault: Arc<dyn CredentialVault>,
    ) -> Result<String, ConnectorError> {
        let Some(signer) = &self.signer else {
            return Err(err(
                Fault::User,
                "[connectors.open_banking] has no signing_key: request objects cannot be signed",
            ));
        };
        let bank = self.bank(self.settings(&connection.settings)?);
        let expires_at =
            Timestamp(Timestamp::now().millis() + i64::from(self.app.consent_days) * 86_400_000);
        let (consent_id, expires_at) = bank.create_consent(expires_at).await?;
        let code_verifier = jws::random_token(32).map_err(|e| err(Fault::Internal, e))?;
        let nonce = jws::random_token(16).map_err(|e| err(Fault::Internal, e))?;
        let pending = Pending {
            consent_id: consent_id.clone(),
            consent_expires_at: expires_at.to_string(),
            code_verifier: code_verifier.clone(),
        };
        vault
            .save(&Credentials(json!({ "pending": pending })))
            .await?;
        let client_id = bank.client_id().to_string();
        let now = Timestamp::now().millis() / 1000;
        let challenge = jws::pkce_challenge(&code_verifier);
        let claims = json!({
            "iss": client_id,
            "aud": bank.issuer()?,
            "client_id": client_id,
            "response_type": "code",
            "redirect_uri": self.app.redirect_uri,
            "scope": "openid accounts",
            "state": state,
            "nonce": nonce,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "claims": {
                "id_token": {
                    "openbanking_intent_id": { "value": consent_id, "essential": true },
                    "acr": { "essential": true, "values": ["urn:openbanking:psd2:sca"] }
                }
            },
            "iat": now,
            "nbf": now,
            "exp": now + 300,
            "jti": jws::random_token(16).map_err(|e| err(Fault::Internal, e))?,
        });
        let request = signer.sign(&claims).map_err(|e| err(Fault::Internal, e))?;
        let mut url = Url::parse(&bank.settings.authorize_url)
            .map_err(|e| err(Fault::User, format!("open_banking authorize_url: {e}")))?;
        url.query_pairs_mut()
            .append_pair("client_id", &client_id)
            .append_pair("response_type", "code")
            .append_pair("scope", "openid accounts")
            .append_pair("redirect_uri", &self.app.redirect_uri)
            .append_pair("state", state)
            .append_pair("nonce", &nonce)
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256")
            .append_pair("request", &request);
        Ok(url.to_string())
    }

    async fn complete_authorization(
        &self,
        connection: &ConnectionInfo,
        code: &str,
        vault: Arc<dyn CredentialVault>,
    ) -> Result<Value, ConnectorError> {
        let bank = self.bank(self.settings(&connection.settings)?);
        let pending: Pending = vault
            .load()
            .await?
            .and_then(|c| serde_json::from_value(c.0.get("pending")?.clone()).ok())
            .ok_or_else(|| {
                err(
                    Fault::User,
                    format!(
                        "connection {} has no authorization in progress: add it again",
                        connection.connection_id
                    ),
                )
            })?;
        let tokens = bank
            .token_request(&[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", &self.app.redirect_uri),
                ("code_verifier", &pending.code_verifier),
            ])
            .await?;
        let Some(refresh_token) = tokens.refresh_token else {
            return Err(err(Fault::Source, "the bank gave no refresh token"));
        };
        vault
            .save(
                &Tokens {
                    access_token: tokens.access_token,
                    refresh_token,
                    expires_at: tokens.expires_at,
                }
                .to_credentials(),
            )
            .await?;
        Ok(json!({
            "consent_id": pending.consent_id,
            "consent_expires_at": pending.consent_expires_at,
        }))
    }

    fn build(
        &self,
        connection: &ConnectionInfo,
        vault: Arc<dyn CredentialVault>,
    ) -> Result<Arc<dyn Connector>, ConnectorError> {
        let settings = self.settings(&connection.settings)?;
        if settings.consent_id.is_none() {
            return Err(err(
                Fault::User,
                format!(
                    "connection {} has no consent yet: authorize it first",
                    connection.connection_id
                ),
            ));
        }
        Ok(Arc::new(OpenBankingConnector {
            bank: self.bank(settings),
            tokens: TokenKeeper::new(NAME, vault, REFRESH_MARGIN_MS),
            connection_id: connection.connection_id.clone(),
            consent_checks: Arc::clone(&self.consent_checks),
        }))
    }
}

/// A token endpoint's answer.
struct Granted {
    access_token: String,
    refresh_token: Option<String>,
    expires_at: i64,
}

/// One bank: its addresses and the app's client.
struct Bank {
    app: Arc<OpenBankingApp>,
    http: reqwest::Client,
    settings: BankSettings,
}

/// What one call to the bank answered.
enum Answer {
    NotFound,
    /// 401: the token was refused (the message says where).
    Unauthorized(String),
    Body(Value),
}

impl Bank {
    fn client_id(&self) -> &str {
        self.settings
            .client_id
            .as_deref()
            .unwrap_or(&self.app.client_id)
    }

    fn issuer(&self) -> Result<String, ConnectorError> {
        if let Some(issuer) = &self.settings.issuer {
            return Ok(issuer.clone());
        }
        let url = Url::parse(&self.settings.authorize_url)
            .map_err(|e| err(Fault::User, format!("open_banking authorize_url: {e}")))?;
        Ok(url.origin().ascii_serialization())
    }

    /// A token endpoint call with `client_secret_basic`.
    async fn token_request(&self, form: &[(&str, &str)]) -> Result<Granted, ConnectorError> {
        let answer = token_call(
            NAME,
            self.http
                .post(&self.settings.token_url)
                .basic_auth(self.client_id(), Some(&self.app.client_secret))
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
        #[derive(Deserialize)]
        struct Answer {
            access_token: String,
            #[serde(default)]
            refresh_token: Option<String>,
            #[serde(default)]
            expires_in: Option<i64>,
        }
        let a: Answer = serde_json::from_slice(&answer.body).map_err(|e| {
            err(
                Fault::Source,
                format!("token endpoint answered an unreadable token: {e}"),
            )
        })?;
        Ok(Granted {
            access_token: a.access_token,
            refresh_token: a.refresh_token,
            expires_at: Timestamp::now().millis() + a.expires_in.unwrap_or(300) * 1000,
        })
    }

    /// A client-credentials token, for consents.
    async fn client_token(&self) -> Result<String, ConnectorError> {
        self.token_request(&[("grant_type", "client_credentials"), ("scope", "accounts")])
            .await
            .map(|g| g.access_token)
    }

    /// Creates an account-access consent asked to last until `expires_at`:
    /// its id and when the bank says it expires.
    async fn create_consent(
        &self,
        expires_at: Timestamp,
    ) -> Result<(String, Timestamp), ConnectorError> {
        let token = self.client_token().await?;
        let body = json!({
            "Data": {
                "Permissions": PERMISSIONS,
                "ExpirationDateTime": expires_at.to_string(),
            },
            "Risk": {}
        });
        let answer = self
            .call(
                "account-access-consents",
                &self.url("/account-access-consents"),
                &token,
                Some(&body),
            )
            .await?;
        let answer = match answer {
            Answer::Body(answer) => answer,
            Answer::Unauthorized(why) => return Err(err(Fault::User, why)),
            Answer::NotFound => {
                return Err(err(
                    Fault::User,
                    "account-access-consents: the bank answered 404: is api_url right?",
                ));
            }
        };
        let id = answer["Data"]["ConsentId"]
            .as_str()
            .filter(|id| !id.is_empty())
            .map(str::to_string)
            .ok_or_else(|| {
                err(
                    Fault::Source,
                    "account-access-consents: the answer has no Data.ConsentId",
                )
            })?;
        // The bank may grant a shorter life than asked: its word counts.
        let granted = answer["Data"]["ExpirationDateTime"]
            .as_str()
            .and_then(|t| Timestamp::parse(t).ok())
            .map_or(expires_at, |t| t.min(expires_at));
        Ok((id, granted))
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.settings.api_url.trim_end_matches('/'))
    }

    /// One call to the bank (`where_` names it in errors): GET, or POST of
    /// `body`; errors say who is at fault, with the bank's interaction id
    /// and error codes.
    async fn call(
        &self,
        where_: &str,
        url: &str,
        token: &str,
        body: Option<&Value>,
    ) -> Result<Answer, ConnectorError> {
        let call = match body {
            Some(body) => self.http.post(url).json(body),
            None => self.http.get(url),
        };
        let interaction = jws::interaction_id();
        let response = call
            .bearer_auth(token)
            .header("x-fapi-interaction-id", &interaction)
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
        let echoed = response
            .headers()
            .get("x-fapi-interaction-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or(&interaction)
            .chars()
            .take(64)
            .collect::<String>();
        let body = read_body(response, self.app.max_response_bytes)
            .await
            .map_err(|e| err(Fault::Source, format!("{where_}: {e}")))?;
        if status.is_success() {
            return parse_json_exact(&body)
                .map(Answer::Body)
                .map_err(|e| err(Fault::Source, format!("{where_}: {e}")));
        }
        if status.as_u16() == 404 {
            return Ok(Answer::NotFound);
        }
        let codes = error_codes(&body);
        let at = format!("{where_} (interaction {echoed})");
        Err(match status.as_u16() {
            401 => {
                return Ok(Answer::Unauthorized(format!(
                    "{at}: access token refused (401 {codes})"
                )));
            }
            403 => err(
                Fault::User,
                format!(
                    "{at}: forbidden (403 {codes}): the consent does not cover this or was revoked"
                ),
            ),
            429 => {
                let e = err(
                    Fault::RateLimited,
                    format!("{at}: rate limited by the bank ({codes})"),
                );
                match after {
                    Some(after) => e.with_retry_after(after),
                    None => e,
                }
            }
            s if s >= 500 => err(
                Fault::Source,
                format!("{at}: the bank answered {status} ({codes})"),
            ),
            _ => err(
                Fault::User,
                format!("{at}: the bank answered {status} ({codes})"),
            ),
        })
    }

    /// A `Links.Next` the bank gave: only followed on the API's own host.
    fn next_link(&self, body: &Value, where_: &str) -> Result<Option<String>, ConnectorError> {
        let Some(next) = body["Links"]["Next"].as_str().filter(|n| !n.is_empty()) else {
            return Ok(None);
        };
        let api = Url::parse(&self.settings.api_url)
            .map_err(|e| err(Fault::User, format!("open_banking api_url: {e}")))?;
        let url = check_url(next, self.app.network)
            .map_err(|e| err(Fault::Source, format!("{where_}: Links.Next: {e}")))?;
        if url.origin() != api.origin() {
            return Err(err(
                Fault::Source,
                format!("{where_}: Links.Next {next:?} leaves the bank's API"),
            ));
        }
        Ok(Some(next.to_string()))
    }
}

/// The standard's error answer (`{"Code", "Message", "Errors": [{"ErrorCode",
/// "Message"}]}`) as codes for messages; never the whole body.
fn error_codes(body: &[u8]) -> String {
    let codes: Vec<String> = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("Errors").and_then(Value::as_array).cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|e| {
            let code = e.get("ErrorCode")?.as_str()?;
            let message = e.get("Message").and_then(Value::as_str).unwrap_or("");
            Some(format!(
                "{code}: {}",
                message.chars().take(200).collect::<String>()
            ))
        })
        .collect();
    if codes.is_empty() {
        "no error code".into()
    } else {
        codes.join("; ")
    }
}

/// One customer's consent at one bank, ready to fetch.
pub struct OpenBankingConnector {
    bank: Bank,
    tokens: TokenKeeper,
    connection_id: String,
    /// When the bank last said each consent holds.
    consent_checks: Arc<Mutex<HashMap<String, Instant>>>,
}

/// Where a data type's sync is.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct BankCursor {
    /// Transactions: booked since this instant (ms); `None` asks for all
    /// the consent allows.
    since: Option<i64>,
    /// The accounts of this pass (not for accounts themselves).
    #[serde(default)]
    accounts: Vec<String>,
    /// Which of them this page is for.
    #[serde(default)]
    index: usize,
    /// The bank's `Links.Next` for that account.
    #[serde(default)]
    next: Option<String>,
    /// The newest booking seen in this pass (ms).
    #[serde(default)]
    newest: Option<i64>,
}

/// Where one data type is listed: the path under an account (or the
/// accounts list) and the list under `Data`.
fn listing(data_type: DataType) -> Result<(&'static str, &'static str), ConnectorError> {
    Ok(match data_type {
        DataType::BankAccount => ("", "Account"),
        DataType::BankBalance => ("balances", "Balance"),
        DataType::BankFeedTransaction => ("transactions", "Transaction"),
        DataType::DirectDebit => ("direct-debits", "DirectDebit"),
        DataType::StandingOrder => ("standing-orders", "StandingOrder"),
        other => return Err(err(Fault::Internal, format!("Open Banking has no {other}"))),
    })
}

impl OpenBankingConnector {
    async fn access_token(&self) -> Result<String, ConnectorError> {
        self.tokens
            .access_token(|tokens| async move {
                let granted = self
                    .bank
                    .token_request(&[
                        ("grant_type", "refresh_token"),
                        ("refresh_token", &tokens.refresh_token),
                    ])
                    .await?;
                Ok(Tokens {
                    access_token: granted.access_token,
                    // A bank that does not rotate keeps the old one valid.
                    refresh_token: granted.refresh_token.unwrap_or(tokens.refresh_token),
                    expires_at: granted.expires_at,
                })
            })
            .await
    }

    /// A GET with the customer's token: the body, or `None` for 404; a
    /// 401 forgets the token so the runtime's retry refreshes it.
    async fn get(&self, where_: &str, url: &str) -> Result<Option<Value>, ConnectorError> {
        let token = self.access_token().await?;
        match self.bank.call(where_, url, &token, None).await? {
            Answer::Body(body) => Ok(Some(body)),
            Answer::NotFound => Ok(None),
            Answer::Unauthorized(why) => {
                self.tokens.expire().await;
                Err(err(Fault::Source, format!("{why}, refreshing")))
            }
        }
    }

    /// The list `Data.<collection>` of an answer (absent: empty).
    fn records_of(
        body: &Value,
        collection: &str,
        where_: &str,
    ) -> Result<Vec<Value>, ConnectorError> {
        match body.get("Data").and_then(|d| d.get(collection)) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(records)) => Ok(records.clone()),
            Some(_) => Err(err(
                Fault::Source,
                format!("{where_}: Data.{collection} is not a list"),
            )),
        }
    }

    /// Every account id the consent covers (all pages).
    async fn account_ids(&self) -> Result<Vec<String>, ConnectorError> {
        let mut ids = Vec::new();
        let mut url = Some(self.bank.url("/accounts"));
        let mut pages = 0;
        while let Some(at) = url {
            pages += 1;
            if pages > 100 {
                return Err(err(
                    Fault::Source,
                    "accounts: more than 100 pages of accounts: the bank's Links.Next loops",
                ));
            }
            let Some(body) = self.get("accounts", &at).await? else {
                return Err(err(Fault::User, "accounts: the bank answered 404"));
            };
            for account in Self::records_of(&body, "Account", "accounts")? {
                if let Some(id) = account["AccountId"].as_str() {
                    ids.push(id.to_string());
                }
            }
            url = self.bank.next_link(&body, "accounts")?;
        }
        Ok(ids)
    }
}

#[async_trait]
impl Connector for OpenBankingConnector {
    fn rate_limits(&self) -> Option<RateLimits> {
        Some(RateLimits {
            key: format!("{NAME}:{}", self.connection_id),
            per_minute: None,
            per_day: None,
            concurrent: Some(self.bank.app.calls_at_once),
        })
    }

    fn data_types(&self) -> Vec<DataType> {
        vec![
            DataType::BankAccount,
            DataType::BankBalance,
            DataType::BankFeedTransaction,
            DataType::DirectDebit,
            DataType::StandingOrder,
        ]
    }

    /// The consent has not lapsed (by its expiry, and by the bank's word
    /// at most hourly) and a token is at hand.
    async fn authenticate(&self) -> Result<(), ConnectorError> {
        let settings = &self.bank.settings;
        let consent = settings.consent_id.clone().unwrap_or_default();
        if let Some(expires) = &settings.consent_expires_at {
            let at = Timestamp::parse(expires)
                .map_err(|e| err(Fault::User, format!("consent_expires_at: {e}")))?;
            if at <= Timestamp::now() {
                return Err(err(
                    Fault::User,
                    format!(
                        "consent {consent} expired at {expires}: the customer must authorize again"
                    ),
                ));
            }
        }
        let every = Duration::from_secs(self.bank.app.consent_check_secs);
        // The lock is not held across the bank's answer: one slow bank
        // does not hold up the others' checks.
        let due = self
            .consent_checks
            .lock()
            .await
            .get(&consent)
            .is_none_or(|at| at.elapsed() >= every);
        if due {
            let token = self.bank.client_token().await?;
            let where_ = format!("account-access-consents/{consent}");
            let url = self
                .bank
                .url(&format!("/account-access-consents/{consent}"));
            match self.bank.call(&where_, &url, &token, None).await? {
                Answer::Unauthorized(why) => return Err(err(Fault::User, why)),
                Answer::NotFound => {
                    return Err(err(
                        Fault::User,
                        format!(
                            "consent {consent} is unknown to the bank: the customer must authorize again"
                        ),
                    ));
                }
                Answer::Body(body) => {
                    let status = body["Data"]["Status"].as_str().unwrap_or("");
                    if status != "AUTH" {
                        return Err(err(
                            Fault::User,
                            format!(
                                "consent {consent} is {} at the bank (not AUTH): the customer must authorize again",
                                if status.is_empty() {
                                    "without a status"
                                } else {
                                    status
                                }
                            ),
                        ));
                    }
                }
            }
            self.consent_checks
                .lock()
                .await
                .insert(consent.clone(), Instant::now());
        }
        self.access_token().await.map(|_| ())
    }

    async fn fetch_page(&self, request: &PageRequest) -> Result<Page, ConnectorError> {
        let (path, collection) = listing(request.data_type)?;
        let mut cursor: BankCursor = Cursor::decode(request.cursor.as_ref(), NAME)?;
        let data_type = request.data_type;
        let per_account = data_type != DataType::BankAccount;
        if per_account && cursor.next.is_none() && cursor.index == 0 {
            cursor.accounts = self.account_ids().await?;
        }
        if per_account && cursor.index >= cursor.accounts.len() {
            return Ok(self.finished(&cursor, Vec::new()));
        }
        let (where_, url) = match (&cursor.next, per_account) {
            (Some(next), _) => (format!("{data_type} (next page)"), next.clone()),
            (None, false) => ("accounts".to_string(), self.bank.url("/accounts")),
            (None, true) => {
                let account = &cursor.accounts[cursor.index];
                let mut url = self.bank.url(&format!("/accounts/{account}/{path}"));
                if data_type == DataType::BankFeedTransaction
                    && let Some(since) = cursor.since
                {
                    url.push_str(&format!(
                        "?fromBookingDateTime={}",
                        Timestamp(since).to_string().trim_end_matches('Z')
                    ));
                }
                (format!("accounts/{account}/{path}"), url)
            }
        };
        let body = match self.get(&where_, &url).await? {
            Some(body) => body,
            // An account closed since the list was read: nothing of it.
            None if per_account => json!({}),
            None => {
                return Err(err(Fault::User, format!("{where_}: the bank answered 404")));
            }
        };
        let records: Vec<Value> = Self::records_of(&body, collection, &where_)?
            .into_iter()
            .map(|r| map::observed(r, request.now))
            .collect();
        let newest = records
            .iter()
            .filter_map(|r| r.get("BookingDateTime")?.as_str())
            .filter_map(|t| Timestamp::parse(t).ok())
            .map(Timestamp::millis)
            .chain(cursor.newest)
            .max();
        let next_link = self.bank.next_link(&body, &where_)?;
        let next = match next_link {
            Some(next) => Some(BankCursor {
                next: Some(next),
                newest,
                ..cursor.clone()
            }),
            None if per_account && cursor.index + 1 < cursor.accounts.len() => Some(BankCursor {
                next: None,
                index: cursor.index + 1,
                newest,
                ..cursor.clone()
            }),
            None => None,
        };
        Ok(match next {
            Some(next) => Page {
                records,
                next_cursor: Some(Cursor::encode(&next)),
                has_more: true,
            },
            None => self.finished(&BankCursor { newest, ..cursor }, records),
        })
    }

    fn map(&self, data_type: DataType, raw: &Value) -> Result<MappedRecord, ConnectorError> {
        map::map_record(data_type, raw).map_err(|m| err(Fault::Data, m))
    }
}

impl OpenBankingConnector {
    /// The last page of a pass: transactions next ask from the newest
    /// booking seen, less the overlap.
    fn finished(&self, cursor: &BankCursor, records: Vec<Value>) -> Page {
        let overlap = i64::from(self.bank.app.transaction_overlap_days) * 86_400_000;
        let next = BankCursor {
            since: cursor.newest.map(|n| n - overlap).or(cursor.since),
            ..BankCursor::default()
        };
        Page {
            records,
            next_cursor: Some(Cursor::encode(&next)),
            has_more: false,
        }
    }
}
