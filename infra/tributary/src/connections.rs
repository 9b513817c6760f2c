//! Connection management over the workers' state store: add, list, check,
//! remove, OAuth2 authorization, and credential key handling. The CLI
//! (`tributary connections ...`) and the API (`/v1/connections`) both go
//! through [`Admin`].

use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use serde_json::{Value, json};
use tributary_api::{AdminError, ConnectionAdmin, ConnectionView};
use tributary_config::Config;
use tributary_connector_api::{ConnectionInfo, ConnectorRegistry};
use tributary_connector_http::NetworkPolicy;
use tributary_producer::limits::Limiters;
use tributary_producer::secrets::{Cipher, Key};
use tributary_producer::vault::StateVault;
use tributary_producer::{StateStore, StoredConnection, SyncSettings, fetch_with_retry};
use tributary_schemas::Timestamp;

/// How long an authorization URL stays valid.
const AUTHORIZATION_MAX_AGE_MS: i64 = 30 * 60 * 1000;

/// Every connector this build knows: the one explicit list.
pub(crate) fn connectors(config: &Config) -> anyhow::Result<ConnectorRegistry> {
    let x = &config.xero;
    let mut app = tributary_connector_xero::XeroApp::new(
        &x.client_id,
        x.client_secret.expose(),
        &x.redirect_uri,
    );
    app.authorize_url = x.authorize_url.clone();
    app.token_url = x.token_url.clone();
    app.api_url = x.api_url.clone();
    app.connections_url = x.connections_url.clone();
    app.timeout = Duration::from_secs(x.timeout_secs);
    app.max_response_bytes = x.max_response_bytes;
    app.limits = (x.calls_per_minute, x.calls_per_day, x.calls_at_once);
    app.network = NetworkPolicy {
        allow_private: config.security.allow_private_network,
    };
    let xero =
        tributary_connector_xero::XeroFactory::new(app).context("invalid [xero] settings")?;
    Ok(ConnectorRegistry::new(vec![
        Box::new(tributary_connector_sandbox::SandboxFactory),
        Box::new(xero),
    ]))
}

pub(crate) fn sync_settings(config: &Config) -> SyncSettings {
    SyncSettings {
        page_size: config.sync.page_size,
        max_attempts: config.sync.max_attempts,
        retry_base: Duration::from_millis(config.sync.retry_base_ms),
        interval: Duration::from_secs_f64(config.sync.interval_secs),
        concurrency: config.sync.concurrency,
        max_retry_wait: Duration::from_secs(config.sync.max_retry_wait_secs),
        lease: Duration::from_secs_f64(config.sync.lease_secs),
    }
}

/// The workers' state store: PostgreSQL when `state.url` is set, else
/// SQLite in the data directory.
pub(crate) async fn open_state(config: &Config) -> anyhow::Result<StateStore> {
    let url = config.state.url.expose();
    if url.is_empty() {
        std::fs::create_dir_all(&config.data_dir).with_context(|| {
            format!("cannot create data directory {}", config.data_dir.display())
        })?;
        Ok(StateStore::open(&config.data_dir.join("state.db")).await?)
    } else {
        Ok(StateStore::connect_postgres(url).await?)
    }
}

/// This process's worker name in sync leases: `sync.worker_id`, or the
/// host name and the data directory.
pub(crate) fn worker_id(config: &Config) -> String {
    if !config.sync.worker_id.is_empty() {
        return config.sync.worker_id.clone();
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into());
    let dir = std::path::absolute(&config.data_dir).unwrap_or_else(|_| config.data_dir.clone());
    format!("{host}:{}", dir.display())
}

/// Writes `text` to a new file readable by its owner only.
fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(text.as_bytes())
        .and_then(|_| file.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))
}

/// The key that seals credentials: `security.credentials_key`, else
/// `security.credentials_key_file`, else `<data_dir>/credentials.key`
/// (created on first use).
pub(crate) fn cipher(config: &Config) -> anyhow::Result<Cipher> {
    let s = &config.security;
    let current = if !s.credentials_key.expose().is_empty() {
        Key::from_hex(s.credentials_key.expose()).context("security.credentials_key")?
    } else {
        let path = match &s.credentials_key_file {
            Some(p) => p.clone(),
            None if !config.state.url.expose().is_empty() => {
                // A key made here would be this process's alone: other
                // workers sharing the state could not open what it seals.
                anyhow::bail!(
                    "state.url is set, so workers in other processes share these connections: \
                     set security.credentials_key or security.credentials_key_file to the same key in each \
                     (make one with `tributary connections new-key`)"
                );
            }
            None => {
                std::fs::create_dir_all(&config.data_dir).with_context(|| {
                    format!("cannot create data directory {}", config.data_dir.display())
                })?;
                let path = config.data_dir.join("credentials.key");
                if !path.exists() {
                    write_private(&path, &Key::generate().to_hex())?;
                    tracing::info!(path = %path.display(), "created a credentials key");
                }
                path
            }
        };
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read credentials key {}", path.display()))?;
        Key::from_hex(&text).with_context(|| format!("credentials key {}", path.display()))?
    };
    let previous = s
        .previous_credentials_keys
        .iter()
        .map(|k| Key::from_hex(k.expose()).context("security.previous_credentials_keys"))
        .collect::<anyhow::Result<_>>()?;
    Ok(Cipher::new(current, previous))
}

/// The API keys: configured ones, or one all-companies key kept in
/// `<data_dir>/api-key` (created on first use).
pub(crate) fn api_keys(config: &Config) -> anyhow::Result<Vec<tributary_api::ApiKey>> {
    if !config.api.keys.is_empty() {
        return Ok(config
            .api
            .keys
            .iter()
            .map(|k| tributary_api::ApiKey {
                name: k.name.clone(),
                sha256: k.sha256.to_ascii_lowercase(),
                scope: tributary_api::Scope::from_list(&k.companies),
            })
            .collect());
    }
    let path = config.data_dir.join("api-key");
    if !path.exists() {
        write_private(&path, &new_api_key())?;
    }
    let key = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    Ok(vec![tributary_api::ApiKey {
        name: "local admin".into(),
        sha256: tributary_api::hash_key(key.trim()),
        scope: tributary_api::Scope::All,
    }])
}

pub(crate) fn new_api_key() -> String {
    format!("trb_{}", Key::generate().to_hex())
}

/// Connection management for one state store.
pub(crate) struct Admin {
    pub state: StateStore,
    pub registry: Arc<ConnectorRegistry>,
    pub cipher: Arc<Cipher>,
    pub settings: SyncSettings,
    pub limiters: Arc<Limiters>,
}

fn view(c: &StoredConnection) -> ConnectionView {
    json!({
        "id": c.info.connection_id,
        "company_id": c.info.company_id,
        "source": c.info.source,
        "status": c.status,
        "status_reason": c.status_reason,
        "settings": c.info.settings,
        "created_at": c.created_at.to_string(),
        "updated_at": c.updated_at.to_string(),
    })
}

fn failed(e: impl std::fmt::Display) -> AdminError {
    AdminError::Failed(e.to_string())
}

fn user_or_failed(e: tributary_connector_api::ConnectorError) -> AdminError {
    if e.fault == tributary_connector_api::Fault::User {
        AdminError::BadRequest(e.to_string())
    } else {
        AdminError::Failed(e.to_string())
    }
}

impl Admin {
    pub(crate) async fn open(config: &Config) -> anyhow::Result<Admin> {
        std::fs::create_dir_all(&config.data_dir).with_context(|| {
            format!("cannot create data directory {}", config.data_dir.display())
        })?;
        Ok(Admin {
            state: open_state(config).await?,
            registry: Arc::new(connectors(config)?),
            cipher: Arc::new(cipher(config)?),
            settings: sync_settings(config),
            limiters: Arc::new(Limiters::default()),
        })
    }

    fn vault(&self, connection_id: &str) -> Arc<StateVault> {
        StateVault::new(&self.state, &self.cipher, connection_id)
    }

    async fn stored(&self, id: &str) -> Result<StoredConnection, AdminError> {
        self.state
            .connection(id)
            .await
            .map_err(failed)?
            .ok_or_else(|| AdminError::NotFound(format!("no connection {id:?}")))
    }

    /// Re-seals every connection's credentials with the current key.
    pub(crate) async fn rotate_key(&self) -> anyhow::Result<usize> {
        let mut n = 0;
        for c in self.state.connections().await? {
            let id = &c.info.connection_id;
            if let Some(sealed) = self.state.sealed_credentials(id).await? {
                let plain = self
                    .cipher
                    .open(id, &sealed)
                    .with_context(|| format!("connection {id}"))?;
                let resealed = self.cipher.seal(id, &plain);
                self.state
                    .save_sealed_credentials(id, &resealed, Timestamp::now())
                    .await?;
                n += 1;
            }
        }
        Ok(n)
    }
}

#[async_trait::async_trait]
impl ConnectionAdmin for Admin {
    async fn list(&self) -> Result<Vec<ConnectionView>, AdminError> {
        Ok(self
            .state
            .connections()
            .await
            .map_err(failed)?
            .iter()
            .map(view)
            .collect())
    }

    async fn add(
        &self,
        company_id: &str,
        source: &str,
        settings: Value,
    ) -> Result<(ConnectionView, Option<String>), AdminError> {
        if company_id.is_empty()
            || !company_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(AdminError::BadRequest(format!(
                "company id {company_id:?} must be letters, digits, '-', '_' or '.'"
            )));
        }
        let factory = self.registry.factory(source).map_err(user_or_failed)?;
        factory.check_settings(&settings).map_err(user_or_failed)?;
        let connection_id = format!(
            "conn-{source}-{company_id}-{}",
            &Key::generate().to_hex()[..8]
        );
        let info = ConnectionInfo {
            connection_id: connection_id.clone(),
            company_id: company_id.to_string(),
            source: source.to_string(),
            settings,
        };
        let needs_auth = factory.needs_authorization();
        let now = Timestamp::now();
        self.state
            .add_connection_with_status(
                &info,
                if needs_auth { "pending_auth" } else { "linked" },
                now,
            )
            .await
            .map_err(failed)?;
        let url = if needs_auth {
            let state = Key::generate().to_hex();
            self.state
                .start_authorization(&state, &connection_id, now)
                .await
                .map_err(failed)?;
            Some(
                factory
                    .authorization_url(&info, &state)
                    .map_err(user_or_failed)?,
            )
        } else {
            None
        };
        Ok((view(&self.stored(&connection_id).await?), url))
    }

    async fn check(&self, connection_id: &str) -> Result<String, AdminError> {
        let stored = self.stored(connection_id).await?;
        if stored.status == "unlinked" {
            return Err(AdminError::BadRequest(format!(
                "connection {connection_id} is unlinked"
            )));
        }
        let connector = self
            .registry
            .build(&stored.info, self.vault(connection_id))
            .map_err(user_or_failed)?;
        connector.authenticate().await.map_err(user_or_failed)?;
        let data_type = connector.data_types()[0];
        let limiter = connector.rate_limits().map(|l| self.limiters.get(&l));
        let request = tributary_connector_api::PageRequest {
            data_type,
            cursor: None,
            now: Timestamp::now(),
            page_size: 1,
        };
        let page = fetch_with_retry(
            connector.as_ref(),
            &request,
            &self.settings,
            limiter.as_deref(),
        )
        .await
        .map_err(user_or_failed)?;
        let mapped = page
            .records
            .iter()
            .filter(|r| connector.map(data_type, r).is_ok())
            .count();
        Ok(format!(
            "authenticated; fetched {} {data_type} record(s), {mapped} mapped",
            page.records.len()
        ))
    }

    async fn remove(&self, connection_id: &str) -> Result<(), AdminError> {
        self.stored(connection_id).await?;
        self.state
            .unlink(connection_id, "removed by an operator", Timestamp::now())
            .await
            .map_err(failed)
    }

    async fn request_sync(&self) -> Result<(), AdminError> {
        tracing::info!("sync requested");
        self.state.request_sync().await.map_err(failed)
    }

    async fn complete_authorization(
        &self,
        source: &str,
        state: &str,
        code: &str,
    ) -> Result<ConnectionView, AdminError> {
        let now = Timestamp::now();
        let Some(connection_id) = self
            .state
            .take_authorization(state, now, AUTHORIZATION_MAX_AGE_MS)
            .await
            .map_err(failed)?
        else {
            return Err(AdminError::BadRequest(
                "unknown, used or expired authorization state: add the connection again".into(),
            ));
        };
        let stored = self.stored(&connection_id).await?;
        if stored.info.source != source {
            return Err(AdminError::BadRequest(format!(
                "the authorization was for a {} connection",
                stored.info.source
            )));
        }
        let factory = self.registry.factory(source).map_err(user_or_failed)?;
        let granted = factory
            .complete_authorization(&stored.info, code, self.vault(&connection_id))
            .await
            .map_err(user_or_failed)?;
        let mut settings = stored.info.settings.clone();
        if let (Some(into), Some(from)) = (settings.as_object_mut(), granted.as_object()) {
            for (k, v) in from {
                into.insert(k.clone(), v.clone());
            }
        }
        self.state
            .set_settings(&connection_id, &settings, now)
            .await
            .map_err(failed)?;
        self.state
            .set_status(&connection_id, "linked", None, now)
            .await
            .map_err(failed)?;
        Ok(view(&self.stored(&connection_id).await?))
    }
}
