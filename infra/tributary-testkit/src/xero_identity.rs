//! A fake Xero identity server: the OAuth2 token endpoint and the
//! connections (tenants) endpoint, with Xero's refresh-token rotation: each
//! refresh retires the refresh token used, which keeps working only for a
//! grace period; and a consent page (`/authorize`) a browser can click
//! through, which sends it back to the redirect URI with a fresh code.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use serde_json::{Value, json};

pub const CLIENT_ID: &str = "tributary-test-client";
pub const CLIENT_SECRET: &str = "client-secret-SECRET-0001";

#[derive(Default)]
struct Identity {
    grace: Duration,
    expires_in: i64,
    tenants: Vec<String>,
    counter: u64,
    codes: HashSet<String>,
    access: HashSet<String>,
    /// Refresh token to when it was retired.
    refresh: HashMap<String, Option<Instant>>,
    issued: Vec<String>,
    refreshes: u32,
}

impl Identity {
    fn mint_code(&mut self) -> String {
        self.counter += 1;
        let code = format!("code-SECRET-{}", self.counter);
        self.codes.insert(code.clone());
        self.issued.push(code.clone());
        code
    }
}

/// The running server; shuts down with the test's runtime.
#[derive(Clone)]
pub struct FakeIdentity {
    pub url: String,
    state: Arc<Mutex<Identity>>,
}

impl FakeIdentity {
    /// Serves on a free port. Refresh tokens survive `grace` after use;
    /// access tokens claim to last `expires_in` seconds.
    pub async fn start(grace: Duration, expires_in: i64, tenants: &[&str]) -> FakeIdentity {
        let state = Arc::new(Mutex::new(Identity {
            grace,
            expires_in,
            tenants: tenants.iter().map(|t| t.to_string()).collect(),
            ..Identity::default()
        }));
        let app = Router::new()
            .route("/authorize", get(consent_page))
            .route("/authorize/allow", get(allow))
            .route("/connect/token", post(token))
            .route("/connections", get(connections))
            .with_state(Arc::clone(&state));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeIdentity { url, state }
    }

    pub fn token_url(&self) -> String {
        format!("{}/connect/token", self.url)
    }

    pub fn connections_url(&self) -> String {
        format!("{}/connections", self.url)
    }

    /// A one-time authorization code, as Xero's redirect would carry.
    pub fn new_code(&self) -> String {
        self.state.lock().unwrap().mint_code()
    }

    /// Issues a token pair directly, as if authorized earlier.
    pub fn issue(&self) -> (String, String) {
        issue(&mut self.state.lock().unwrap())
    }

    /// Whether `token` is a current access token.
    pub fn access_ok(&self, token: &str) -> bool {
        self.state.lock().unwrap().access.contains(token)
    }

    /// Every secret this server handed out (codes and tokens), to look for in logs.
    pub fn issued(&self) -> Vec<String> {
        self.state.lock().unwrap().issued.clone()
    }

    pub fn refreshes(&self) -> u32 {
        self.state.lock().unwrap().refreshes
    }

    /// Revokes every access token, as an expiry would.
    pub fn expire_access_tokens(&self) {
        self.state.lock().unwrap().access.clear();
    }
}

fn issue(s: &mut Identity) -> (String, String) {
    s.counter += 1;
    let access = format!("xero-access-SECRET-{}", s.counter);
    let refresh = format!("xero-refresh-SECRET-{}", s.counter);
    s.access.insert(access.clone());
    s.refresh.insert(refresh.clone(), None);
    s.issued.push(access.clone());
    s.issued.push(refresh.clone());
    (access, refresh)
}

/// Whether the request carries the test client's id and secret (HTTP Basic).
fn client_ok(headers: &HeaderMap) -> bool {
    use base64::Engine;
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .is_some_and(|pair| pair == format!("{CLIENT_ID}:{CLIENT_SECRET}").as_bytes())
}

async fn token(
    State(state): State<Arc<Mutex<Identity>>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> (StatusCode, Json<Value>) {
    let invalid = |e: &str| (StatusCode::BAD_REQUEST, Json(json!({ "error": e })));
    if !client_ok(&headers) {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({ "error": "invalid_client" })),
        );
    }
    let mut s = state.lock().unwrap();
    match form.get("grant_type").map(String::as_str) {
        Some("authorization_code") => {
            let code = form.get("code").cloned().unwrap_or_default();
            if !s.codes.remove(&code) {
                return invalid("invalid_grant");
            }
        }
        Some("refresh_token") => {
            let used = form.get("refresh_token").cloned().unwrap_or_default();
            let grace = s.grace;
            match s.refresh.get_mut(&used) {
                Some(retired @ None) => *retired = Some(Instant::now()),
                Some(Some(at)) if at.elapsed() <= grace => {}
                _ => return invalid("invalid_grant"),
            }
            s.refreshes += 1;
        }
        _ => return invalid("unsupported_grant_type"),
    }
    let (access, refresh) = issue(&mut s);
    (
        StatusCode::OK,
        Json(json!({
            "access_token": access,
            "refresh_token": refresh,
            "expires_in": s.expires_in,
            "token_type": "Bearer",
        })),
    )
}

async fn connections(
    State(state): State<Arc<Mutex<Identity>>>,
    headers: HeaderMap,
) -> (StatusCode, Json<Value>) {
    let s = state.lock().unwrap();
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if !s.access.contains(token) {
        return (StatusCode::UNAUTHORIZED, Json(json!({})));
    }
    let tenants: Vec<Value> = s
        .tenants
        .iter()
        .map(|t| json!({ "tenantId": t, "tenantType": "ORGANISATION", "tenantName": format!("Org {t}") }))
        .collect();
    (StatusCode::OK, Json(Value::Array(tenants)))
}

/// What `/authorize` and `/authorize/allow` are given.
#[derive(serde::Deserialize)]
struct Consent {
    client_id: Option<String>,
    redirect_uri: String,
    state: String,
}

/// Xero's consent page, reduced to one button.
async fn consent_page(Query(q): Query<Consent>) -> axum::response::Response {
    use axum::response::IntoResponse;
    if q.client_id.as_deref() != Some(CLIENT_ID) {
        return (StatusCode::BAD_REQUEST, "unknown client_id").into_response();
    }
    let allow = format!(
        "/authorize/allow?redirect_uri={}&state={}",
        form_encode(&q.redirect_uri),
        form_encode(&q.state)
    );
    axum::response::Html(format!(
        "<!doctype html><html><head><meta name=\"viewport\" content=\"width=device-width\"><title>Fake Xero: allow access</title></head>\
         <body><h1>Allow Tributary to access your organisation?</h1>\
         <a id=\"allow\" href=\"{allow}\">Allow access</a></body></html>"
    ))
    .into_response()
}

/// The person allowed: back to the redirect URI with a new code.
async fn allow(
    State(s): State<Arc<Mutex<Identity>>>,
    Query(q): Query<Consent>,
) -> axum::response::Redirect {
    let code = s.lock().unwrap().mint_code();
    let sep = if q.redirect_uri.contains('?') {
        '&'
    } else {
        '?'
    };
    axum::response::Redirect::to(&format!(
        "{}{sep}code={}&state={}",
        q.redirect_uri,
        form_encode(&code),
        form_encode(&q.state)
    ))
}

fn form_encode(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
}
