//! From configuration to the crates' own types: Kafka clients, the state
//! store, the credentials cipher, API keys, the configured store and the
//! one list of connectors. The only place that knows every backend.

use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rdkafka::ClientConfig;
use tributary_config::Config;
use tributary_producer::secrets::{Cipher, Key};
use tributary_producer::{Admin, StateStore, SyncPlan, SyncSettings, TypeSettings};
use tributary_projection::Projection;
use tributary_projector::Assignment;
use tributary_store::ReadStore;

/// The workers' sync settings; the per-data-type ones checked.
pub(crate) fn sync_settings(config: &Config) -> anyhow::Result<SyncSettings> {
    let plan = SyncPlan {
        order: config.sync.order.clone(),
        data_types: config
            .sync
            .data_types
            .iter()
            .map(|(name, t)| {
                (
                    name.clone(),
                    TypeSettings {
                        interval_secs: t.interval_secs,
                        reconcile_hours: t.reconcile_hours,
                        enabled: t.enabled,
                    },
                )
            })
            .collect(),
    };
    plan.check()
        .map_err(|e| anyhow::anyhow!("invalid configuration: sync.{e}"))?;
    Ok(SyncSettings {
        page_size: config.sync.page_size,
        max_attempts: config.sync.max_attempts,
        retry_base: Duration::from_millis(config.sync.retry_base_ms),
        interval: Duration::from_secs_f64(config.sync.interval_secs),
        concurrency: config.sync.concurrency,
        max_retry_wait: Duration::from_secs(config.sync.max_retry_wait_secs),
        lease: Duration::from_secs_f64(config.sync.lease_secs),
        history: Duration::from_secs_f64(config.sync.history_days * 86_400.0),
        reconcile: Duration::from_secs_f64(config.sync.reconcile_hours * 3_600.0),
        plan,
    })
}

/// The workers' state store: PostgreSQL when `state.url` is set, else
/// SQLite in the data directory.
pub(crate) async fn open_state(config: &Config) -> anyhow::Result<StateStore> {
    match &config.state.url {
        Some(url) => Ok(StateStore::connect_postgres(url.expose()).await?),
        None => {
            std::fs::create_dir_all(&config.data_dir).with_context(|| {
                format!("cannot create data directory {}", config.data_dir.display())
            })?;
            Ok(StateStore::open(&config.data_dir.join("state.db")).await?)
        }
    }
}

/// This process's worker name in sync leases: `sync.worker_id`, or the
/// host name and the data directory.
pub(crate) fn worker_id(config: &Config) -> String {
    if let Some(id) = &config.sync.worker_id {
        return id.clone();
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
    let current = if let Some(key) = &s.credentials_key {
        Key::from_hex(key.expose()).context("security.credentials_key")?
    } else {
        let path = match &s.credentials_key_file {
            Some(p) => p.clone(),
            None if config.state.url.is_some() => {
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

/// The settings every Kafka client of this process starts from.
pub(crate) type KafkaClient = ClientConfig;

/// The broker to use: the configured cluster, or the local one.
pub(crate) fn bootstrap_servers(config: &Config) -> String {
    match &config.kafka.bootstrap_servers {
        Some(bootstrap) => bootstrap.clone(),
        None => format!("127.0.0.1:{}", config.broker.port),
    }
}

/// The schema registry: the configured one, or the embedded one where
/// `tributary up` serves it.
pub(crate) fn registry_url(config: &Config) -> String {
    match &config.registry.url {
        Some(url) => url.clone(),
        None => format!("http://127.0.0.1:{}", config.registry.port),
    }
}

/// Client settings every Kafka client of ours starts from.
pub(crate) fn kafka_client(config: &Config, bootstrap: &str) -> ClientConfig {
    tributary_kafka::client(
        bootstrap,
        config
            .kafka
            .client
            .iter()
            .map(|(key, value)| (key.as_str(), value.expose())),
    )
}

/// Connection administration over the configured state store.
pub(crate) async fn admin(config: &Config) -> anyhow::Result<Admin> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create data directory {}", config.data_dir.display()))?;
    Ok(Admin::new(
        open_state(config).await?,
        crate::connectors::connectors(config)?,
        cipher(config)?,
        sync_settings(config)?,
    ))
}

/// The configured SQL store: its read side for the API, its projection, and
/// how that projection reads the topics.
pub(crate) struct Store {
    pub(crate) read: Arc<dyn ReadStore>,
    pub(crate) projection: Box<dyn Projection>,
    pub(crate) assignment: Assignment,
}

/// The SQL store: PostgreSQL when `store.url` is set, else SQLite in the
/// data directory.
pub(crate) async fn open_store(config: &Config) -> anyhow::Result<Store> {
    let Some(url) = &config.store.url else {
        let sqlite =
            tributary_store_sqlite::SqliteStore::open(&config.data_dir.join("store.db")).await?;
        return Ok(Store {
            read: Arc::new(sqlite.clone()),
            projection: Box::new(sqlite),
            // One writer: the SQLite file is local to this process.
            assignment: Assignment::All,
        });
    };
    let postgres = tributary_store_postgres::PostgresStore::connect(url.expose()).await?;
    let assignment = if config.projector.consumer_group {
        // Any number of processes: they share the partitions in one group.
        Assignment::Group(format!(
            "tributary-projector-sql-store-{}",
            postgres.identity().await?
        ))
    } else {
        Assignment::All
    };
    Ok(Store {
        read: Arc::new(postgres.clone()),
        projection: Box::new(postgres),
        assignment,
    })
}

/// The search index in the data directory: its read side for the API and
/// its projection.
pub(crate) fn open_index(
    config: &Config,
) -> anyhow::Result<(Arc<dyn tributary_store::Search>, Box<dyn Projection>)> {
    let (projection, search) = tributary_index_tantivy::open(&config.data_dir.join("index"))?;
    Ok((Arc::new(search), Box::new(projection)))
}

/// The configured cluster, or a local durable broker: (its handle when
/// local, the bootstrap servers).
pub(crate) async fn start_broker(
    config: &Config,
) -> anyhow::Result<(Option<tributary_broker::LocalBroker>, String)> {
    if let Some(bootstrap) = &config.kafka.bootstrap_servers {
        return Ok((None, bootstrap.clone()));
    }
    let binary = tributary_broker::find_tansu(config.broker.tansu_binary.as_deref())?;
    let broker = tributary_broker::LocalBroker::start(
        &binary,
        &config.data_dir.join("broker"),
        config.broker.port,
    )
    .await?;
    let bootstrap = broker.bootstrap_servers().to_string();
    Ok((Some(broker), bootstrap))
}

/// Creates the topics Tributary publishes to, where they are missing.
pub(crate) async fn ensure_topics(config: &Config, client: &ClientConfig) -> anyhow::Result<()> {
    tributary_broker::ensure_topics(
        client,
        &tributary_schemas::all_topics(),
        config.topic_partitions(),
        config.kafka.replication_factor,
    )
    .await?;
    Ok(())
}

/// Webhook subscriptions and their log over the configured state store,
/// its secrets sealed with the connections' key.
pub(crate) fn webhooks(config: &Config, admin: &Admin) -> tributary_webhooks::Webhooks {
    tributary_webhooks::Webhooks {
        state: admin.state.clone(),
        cipher: Arc::clone(&admin.cipher),
        policy: tributary_connector_http::NetworkPolicy {
            allow_private: config.security.allow_private_network,
        },
        clock: tributary_webhooks::Clock::start(),
    }
}
