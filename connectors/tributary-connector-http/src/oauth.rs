//! OAuth2 tokens kept for one connection: loaded from the runtime's vault,
//! refreshed shortly before they expire, and saved *before* use.
//!
//! A source that rotates refresh tokens (Xero) retires the old one when it
//! answers a refresh; if the save of the new ones fails, they are kept in
//! memory, never used, and saved again at the next call, so the connection
//! is not lost to a full disk for longer than the disk is full.

use std::future::Future;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;
use tributary_connector_api::{ConnectorError, CredentialVault, Credentials, Fault};
use tributary_schemas::Timestamp;

/// The tokens kept in the vault.
#[derive(Clone, Serialize, Deserialize)]
pub struct Tokens {
    pub access_token: String,
    pub refresh_token: String,
    /// Milliseconds since the epoch.
    pub expires_at: i64,
}

impl Tokens {
    pub fn to_credentials(&self) -> Credentials {
        Credentials(serde_json::to_value(self).unwrap_or(serde_json::Value::Null))
    }

    /// Reads stored tokens; `source` names the connector in the error.
    pub fn from_credentials(source: &str, c: &Credentials) -> Result<Tokens, ConnectorError> {
        serde_json::from_value(c.0.clone()).map_err(|e| {
            ConnectorError::new(
                source,
                Fault::User,
                format!("stored {source} credentials are unreadable ({e}): authorize again"),
            )
        })
    }
}

#[derive(Default)]
struct State {
    current: Option<Tokens>,
    /// Tokens the source gave that are not yet in the vault: never used
    /// until saved.
    unsaved: bool,
}

/// One connection's tokens.
pub struct TokenKeeper {
    source: &'static str,
    vault: Arc<dyn CredentialVault>,
    /// How long before its expiry an access token is refreshed.
    margin_ms: i64,
    state: Mutex<State>,
}

impl TokenKeeper {
    pub fn new(source: &'static str, vault: Arc<dyn CredentialVault>, margin_ms: i64) -> Self {
        TokenKeeper {
            source,
            vault,
            margin_ms,
            state: Mutex::new(State::default()),
        }
    }

    /// A valid access token: the stored one, or one `refresh` got from the
    /// source (given the current tokens) and saved. One refresh at a time.
    pub async fn access_token<F, Fut>(&self, refresh: F) -> Result<String, ConnectorError>
    where
        F: FnOnce(Tokens) -> Fut,
        Fut: Future<Output = Result<Tokens, ConnectorError>>,
    {
        let mut state = self.state.lock().await;
        let tokens = match state.current.clone() {
            Some(tokens) => tokens,
            None => {
                let Some(stored) = self.vault.load().await? else {
                    return Err(ConnectorError::new(
                        self.source,
                        Fault::User,
                        format!(
                            "the connection has no {} tokens: authorize it first",
                            self.source
                        ),
                    ));
                };
                let tokens = Tokens::from_credentials(self.source, &stored)?;
                state.current = Some(tokens.clone());
                tokens
            }
        };
        if state.unsaved {
            self.vault.save(&tokens.to_credentials()).await?;
            state.unsaved = false;
        }
        if tokens.expires_at - self.margin_ms > Timestamp::now().millis() {
            return Ok(tokens.access_token);
        }
        let fresh = refresh(tokens).await?;
        tracing::info!(source = self.source, "refreshed an access token");
        // The source may have retired the old refresh token already: keep
        // the new one even if the save fails, and use it only once saved.
        state.current = Some(fresh.clone());
        state.unsaved = true;
        self.vault.save(&fresh.to_credentials()).await?;
        state.unsaved = false;
        Ok(fresh.access_token)
    }

    /// Forgets that the access token is valid (the source answered 401):
    /// the next call refreshes it.
    pub async fn expire(&self) {
        if let Some(t) = self.state.lock().await.current.as_mut() {
            t.expires_at = 0;
        }
    }
}

/// `Retry-After` in seconds, when the answer has one.
pub fn retry_after(response: &reqwest::Response) -> Option<std::time::Duration> {
    response
        .headers()
        .get("retry-after")?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(std::time::Duration::from_secs)
}

/// A request error with its causes (a timeout, a refused address...).
pub fn error_chain(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// What a token endpoint answered: its status, its `Retry-After`, and its
/// body (at most 1 MB).
pub struct TokenAnswer {
    pub status: reqwest::StatusCode,
    pub retry_after: Option<std::time::Duration>,
    pub body: Vec<u8>,
}

/// Sends a token request (a code exchange, a refresh, client credentials);
/// an endpoint that cannot be reached or read is the source's fault.
pub async fn token_call(
    source: &str,
    request: reqwest::RequestBuilder,
) -> Result<TokenAnswer, ConnectorError> {
    let response = request.send().await.map_err(|e| {
        ConnectorError::new(
            source,
            Fault::Source,
            format!("token endpoint unreachable: {}", error_chain(&e)),
        )
    })?;
    let status = response.status();
    let retry_after = retry_after(&response);
    let body = crate::read_body(response, 1 << 20)
        .await
        .map_err(|e| ConnectorError::new(source, Fault::Source, format!("token endpoint: {e}")))?;
    Ok(TokenAnswer {
        status,
        retry_after,
        body,
    })
}

/// The error for a token endpoint that said no; `codes` are the OAuth
/// error codes it gave (never its whole body: it could echo a secret).
/// A refused grant or client is the user's to fix (authorize again).
pub fn token_refused(source: &str, answer: &TokenAnswer, codes: &str) -> ConnectorError {
    let status = answer.status;
    match status.as_u16() {
        400 | 401 => ConnectorError::new(
            source,
            Fault::User,
            format!(
                "{source} refused the authorization ({codes}): the connection must be authorized again"
            ),
        ),
        429 => {
            let e = ConnectorError::new(source, Fault::RateLimited, "token endpoint rate limited");
            match answer.retry_after {
                Some(after) => e.with_retry_after(after),
                None => e,
            }
        }
        s if s >= 500 => ConnectorError::new(
            source,
            Fault::Source,
            format!("token endpoint answered {status}"),
        ),
        _ => ConnectorError::new(
            source,
            Fault::User,
            format!("token endpoint answered {status} ({codes})"),
        ),
    }
}

/// The standard OAuth `error` code of a token endpoint's answer.
pub fn oauth_error_code(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_string))
        .unwrap_or_else(|| "no error code".into())
}
