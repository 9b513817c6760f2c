//! A fake Open Banking bank: the authorization server (client credentials,
//! the authorize endpoint checking the signed request object and PKCE, the
//! code exchange, refreshes) and the Account and Transaction API serving
//! fixture files (`{base}` in them becomes the bank's address).

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::rand::SystemRandom;
use ring::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair,
    UnparsedPublicKey,
};
use serde_json::{Value, json};

pub const CLIENT_ID: &str = "tributary-ob-client";
pub const CLIENT_SECRET: &str = "ob-client-secret-SECRET-0001";
pub const KID: &str = "tributary-test-kid";

#[derive(Default)]
struct Bank {
    /// The authorization server's own address: the request object's audience.
    issuer: String,
    /// What `{base}` in fixtures becomes.
    base: String,
    fixtures: PathBuf,
    public_key: Vec<u8>,
    counter: u64,
    client_tokens: HashSet<String>,
    access: HashSet<String>,
    refresh: HashSet<String>,
    /// Consent id to status (AWAU, AUTH, EXPD...).
    consents: HashMap<String, String>,
    /// Code to (consent, PKCE challenge, redirect URI).
    codes: HashMap<String, (String, String, String)>,
    issued: Vec<String>,
    /// `fromBookingDateTime` of every transactions call.
    from_booking: Vec<Option<String>>,
    /// `x-fapi-interaction-id` of every data call.
    interactions: Vec<String>,
}

/// The running bank; shuts down with the test's runtime.
#[derive(Clone)]
pub struct FakeBank {
    pub url: String,
    /// The app's request-object signing key, PKCS#8 PEM (ES256).
    pub signing_key_pem: String,
    state: Arc<Mutex<Bank>>,
}

impl FakeBank {
    /// Serves `fixtures` on a free port.
    pub async fn start(fixtures: PathBuf) -> FakeBank {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(Bank {
            issuer: url.clone(),
            base: url.clone(),
            fixtures,
            public_key: pair.public_key().as_ref().to_vec(),
            ..Bank::default()
        }));
        let app = Router::new()
            .route("/token", post(token))
            .route("/authorize", get(authorize))
            .route("/account-access-consents", post(create_consent))
            .route("/account-access-consents/{id}", get(consent))
            .route("/accounts", get(accounts))
            .route("/accounts/{id}/{kind}", get(account_data))
            .layer(axum::middleware::from_fn(echo_interaction_id))
            .with_state(Arc::clone(&state));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeBank {
            url,
            signing_key_pem: format!(
                "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
                STANDARD.encode(pkcs8.as_ref())
            ),
            state,
        }
    }

    /// The connection settings pointing at this bank.
    pub fn settings(&self) -> Value {
        json!({
            "api_url": self.url,
            "token_url": format!("{}/token", self.url),
            "authorize_url": format!("{}/authorize", self.url),
        })
    }

    /// What the customer's browser does with the authorization link: the
    /// bank checks it and redirects with a code. The code and the state,
    /// or the bank's refusal.
    pub async fn grant(&self, link: &str) -> Result<(String, String), String> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let response = client.get(link).send().await.map_err(|e| e.to_string())?;
        if response.status() != StatusCode::FOUND {
            return Err(response.text().await.unwrap_or_default());
        }
        let location = response.headers()["location"].to_str().unwrap().to_string();
        let param = |name: &str| {
            location
                .split(['?', '&'])
                .find_map(|p| p.strip_prefix(&format!("{name}=")))
                .unwrap()
                .to_string()
        };
        Ok((param("code"), param("state")))
    }

    /// The address `{base}` in fixtures stands for (the bank's own, or a
    /// proxy's in front of it).
    pub fn set_base(&self, url: &str) {
        self.state.lock().unwrap().base = url.to_string();
    }

    /// Sets a consent's status at the bank (`EXPD`, `CANC`...).
    pub fn set_consent(&self, id: &str, status: &str) {
        self.state
            .lock()
            .unwrap()
            .consents
            .insert(id.to_string(), status.to_string());
    }

    /// Every token and code the bank issued (its secrets).
    pub fn issued(&self) -> Vec<String> {
        self.state.lock().unwrap().issued.clone()
    }

    /// `fromBookingDateTime` of every transactions call so far.
    pub fn from_booking(&self) -> Vec<Option<String>> {
        self.state.lock().unwrap().from_booking.clone()
    }

    pub fn interactions(&self) -> Vec<String> {
        self.state.lock().unwrap().interactions.clone()
    }
}

/// Every answer carries the request's `x-fapi-interaction-id` back, as the
/// standard requires (or a new one).
async fn echo_interaction_id(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let id = request
        .headers()
        .get("x-fapi-interaction-id")
        .cloned()
        .unwrap_or_else(|| {
            axum::http::HeaderValue::from_static("fe1d0c1e-0000-4000-8000-000000000000")
        });
    let mut response = next.run(request).await;
    response.headers_mut().insert("x-fapi-interaction-id", id);
    response
}

fn refuse(status: StatusCode, error: &str) -> Response {
    (status, Json(json!({ "error": error }))).into_response()
}

fn ob_error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(json!({
            "Code": status.as_u16().to_string(),
            "Message": message,
            "Errors": [{ "ErrorCode": code, "Message": message }]
        })),
    )
        .into_response()
}

fn issue(bank: &mut Bank, prefix: &str) -> String {
    bank.counter += 1;
    let token = format!("{prefix}-{}-{:x}", bank.counter, rand_u64());
    bank.issued.push(token.clone());
    token
}

fn rand_u64() -> u64 {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 8];
    SystemRandom::new().fill(&mut b).unwrap();
    u64::from_be_bytes(b)
}

fn client_ok(headers: &HeaderMap) -> bool {
    let expected = format!(
        "Basic {}",
        STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"))
    );
    headers
        .get("authorization")
        .is_some_and(|v| v.to_str().ok() == Some(expected.as_str()))
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    headers
        .get("authorization")?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::to_string)
}

async fn token(
    State(state): State<Arc<Mutex<Bank>>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if !client_ok(&headers) {
        return refuse(StatusCode::UNAUTHORIZED, "invalid_client");
    }
    let mut bank = state.lock().unwrap();
    let field = |k: &str| form.get(k).cloned().unwrap_or_default();
    match field("grant_type").as_str() {
        "client_credentials" => {
            let token = issue(&mut bank, "cc");
            bank.client_tokens.insert(token.clone());
            Json(json!({ "access_token": token, "token_type": "Bearer", "expires_in": 300 }))
                .into_response()
        }
        "authorization_code" => {
            let Some((_, challenge, redirect)) = bank.codes.remove(&field("code")) else {
                return refuse(StatusCode::BAD_REQUEST, "invalid_grant");
            };
            let verifier = field("code_verifier");
            let computed = URL_SAFE_NO_PAD.encode(ring::digest::digest(
                &ring::digest::SHA256,
                verifier.as_bytes(),
            ));
            if computed != challenge || redirect != field("redirect_uri") {
                return refuse(StatusCode::BAD_REQUEST, "invalid_grant");
            }
            tokens(&mut bank)
        }
        "refresh_token" => {
            if !bank.refresh.remove(&field("refresh_token")) {
                return refuse(StatusCode::BAD_REQUEST, "invalid_grant");
            }
            tokens(&mut bank)
        }
        _ => refuse(StatusCode::BAD_REQUEST, "unsupported_grant_type"),
    }
}

fn tokens(bank: &mut Bank) -> Response {
    let access = issue(bank, "at");
    let refresh = issue(bank, "rt");
    bank.access.insert(access.clone());
    bank.refresh.insert(refresh.clone());
    Json(json!({
        "access_token": access, "refresh_token": refresh,
        "token_type": "Bearer", "expires_in": 3600
    }))
    .into_response()
}

/// Checks the request object (signature, audience, client, state, PKCE,
/// the consent it names) as a bank would, then redirects with a code.
async fn authorize(
    State(state): State<Arc<Mutex<Bank>>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let mut bank = state.lock().unwrap();
    let bad = |why: &str| (StatusCode::BAD_REQUEST, why.to_string()).into_response();
    let Some(request) = query.get("request") else {
        return bad("no request object");
    };
    let parts: Vec<&str> = request.split('.').collect();
    if parts.len() != 3 {
        return bad("the request object is not a JWS");
    }
    let header: Value = match URL_SAFE_NO_PAD
        .decode(parts[0])
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
    {
        Some(h) => h,
        None => return bad("unreadable JWS header"),
    };
    if header["alg"] != "ES256" || header["kid"] != KID {
        return bad("unexpected alg or kid");
    }
    let signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap_or_default();
    let key = UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, bank.public_key.clone());
    if key
        .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &signature)
        .is_err()
    {
        return bad("the request object's signature does not verify");
    }
    let claims: Value = match URL_SAFE_NO_PAD
        .decode(parts[1])
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
    {
        Some(c) => c,
        None => return bad("unreadable claims"),
    };
    let consent = claims["claims"]["id_token"]["openbanking_intent_id"]["value"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let checks = [
        (
            claims["aud"] == bank.issuer.as_str(),
            "aud is not the issuer",
        ),
        (
            claims["iss"] == CLIENT_ID && claims["client_id"] == CLIENT_ID,
            "wrong client",
        ),
        (
            claims["state"].as_str() == query.get("state").map(String::as_str),
            "state differs",
        ),
        (
            claims["response_type"] == "code",
            "response_type is not code",
        ),
        (claims["code_challenge_method"] == "S256", "no S256 PKCE"),
        (claims["scope"] == "openid accounts", "wrong scope"),
        (
            bank.consents.get(&consent).map(String::as_str) == Some("AWAU"),
            "the consent is unknown or not awaiting authorisation",
        ),
    ];
    if let Some((_, why)) = checks.iter().find(|(ok, _)| !ok) {
        return bad(why);
    }
    bank.consents.insert(consent.clone(), "AUTH".into());
    let code = issue(&mut bank, "code");
    let redirect = claims["redirect_uri"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    bank.codes.insert(
        code.clone(),
        (
            consent,
            claims["code_challenge"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            redirect.clone(),
        ),
    );
    let state_value = query.get("state").cloned().unwrap_or_default();
    (
        StatusCode::FOUND,
        [(
            "location",
            format!("{redirect}?code={code}&state={state_value}"),
        )],
    )
        .into_response()
}

async fn create_consent(
    State(state): State<Arc<Mutex<Bank>>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let mut bank = state.lock().unwrap();
    if !bearer(&headers).is_some_and(|t| bank.client_tokens.contains(&t)) {
        return ob_error(
            StatusCode::UNAUTHORIZED,
            "UK.OBIE.Unauthorized",
            "no client token",
        );
    }
    if body["Data"]["Permissions"]
        .as_array()
        .is_none_or(|p| p.is_empty())
    {
        return ob_error(
            StatusCode::BAD_REQUEST,
            "UK.OBIE.Field.Missing",
            "Permissions",
        );
    }
    // A consent id is no secret: not among the issued tokens.
    bank.counter += 1;
    let id = format!("urn-consent-{}-{:x}", bank.counter, rand_u64());
    bank.consents.insert(id.clone(), "AWAU".into());
    (
        StatusCode::CREATED,
        Json(json!({
            "Data": {
                "ConsentId": id, "Status": "AWAU",
                "CreationDateTime": "2026-12-01T00:00:00+00:00",
                "StatusUpdateDateTime": "2026-12-01T00:00:00+00:00",
                "Permissions": body["Data"]["Permissions"],
                "ExpirationDateTime": body["Data"]["ExpirationDateTime"],
            },
            "Risk": {},
            "Links": { "Self": format!("{}/account-access-consents/{id}", bank.issuer) },
            "Meta": {}
        })),
    )
        .into_response()
}

async fn consent(
    State(state): State<Arc<Mutex<Bank>>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let bank = state.lock().unwrap();
    if !bearer(&headers).is_some_and(|t| bank.client_tokens.contains(&t)) {
        return ob_error(
            StatusCode::UNAUTHORIZED,
            "UK.OBIE.Unauthorized",
            "no client token",
        );
    }
    match bank.consents.get(&id) {
        None => ob_error(
            StatusCode::NOT_FOUND,
            "UK.OBIE.Resource.NotFound",
            "no such consent",
        ),
        Some(status) => Json(json!({
            "Data": {
                "ConsentId": id, "Status": status,
                "CreationDateTime": "2026-12-01T00:00:00+00:00",
                "StatusUpdateDateTime": "2026-12-01T00:00:00+00:00",
                "Permissions": ["ReadAccountsDetail"],
            },
            "Risk": {},
            "Links": { "Self": format!("{}/account-access-consents/{id}", bank.issuer) },
            "Meta": {}
        }))
        .into_response(),
    }
}

/// A fixture, or the standard's error shape.
fn fixture(bank: &mut Bank, headers: &HeaderMap, name: &str) -> Response {
    if !bearer(headers).is_some_and(|t| bank.access.contains(&t)) {
        return ob_error(
            StatusCode::UNAUTHORIZED,
            "UK.OBIE.Unauthorized",
            "token refused",
        );
    }
    if !bank.consents.values().any(|s| s == "AUTH") {
        return ob_error(
            StatusCode::FORBIDDEN,
            "UK.OBIE.Resource.ConsentMismatch",
            "consent not authorised",
        );
    }
    if let Some(id) = headers
        .get("x-fapi-interaction-id")
        .and_then(|v| v.to_str().ok())
    {
        bank.interactions.push(id.to_string());
    }
    match std::fs::read_to_string(bank.fixtures.join(name)) {
        Ok(text) => {
            let body: Value = serde_json::from_str(&text.replace("{base}", &bank.base)).unwrap();
            Json(body).into_response()
        }
        Err(_) => ob_error(StatusCode::NOT_FOUND, "UK.OBIE.Resource.NotFound", name),
    }
}

async fn accounts(State(state): State<Arc<Mutex<Bank>>>, headers: HeaderMap) -> Response {
    fixture(&mut state.lock().unwrap(), &headers, "accounts.json")
}

async fn account_data(
    State(state): State<Arc<Mutex<Bank>>>,
    Path((id, kind)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let mut bank = state.lock().unwrap();
    let name = if kind == "transactions" {
        bank.from_booking
            .push(query.get("fromBookingDateTime").cloned());
        format!(
            "transactions-{id}-{}.json",
            query.get("page").map_or("1", String::as_str)
        )
    } else {
        format!("{kind}-{id}.json")
    };
    fixture(&mut bank, &headers, &name)
}
