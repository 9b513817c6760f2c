//! Tributary's configuration, in layers: built-in defaults, then a TOML file,
//! then `TRIBUTARY__SECTION__KEY` environment variables.
//!
//! Every struct refuses unknown fields, so a typo is an error that names the
//! key, not a silently ignored setting. Empty strings for
//! `kafka.bootstrap_servers` and `registry.url` mean "run the embedded one".

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid TOML: {source}")]
    Parse {
        path: String,
        source: toml::de::Error,
    },
    #[error("invalid configuration ({origin}): {message}")]
    Invalid { origin: String, message: String },
}

/// A value that must never be printed: `Debug` and `Serialize` show
/// `[redacted]`.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// What an unset value may be written as: nothing, or an empty string
/// (`url = ""`, `TRIBUTARY__STORE__URL=`).
trait Blank {
    fn is_blank(&self) -> bool;
}

impl Blank for String {
    fn is_blank(&self) -> bool {
        self.trim().is_empty()
    }
}

impl Blank for Secret {
    fn is_blank(&self) -> bool {
        self.0.trim().is_empty()
    }
}

/// Reads an optional setting, an empty string counting as unset.
fn empty_is_unset<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de> + Blank,
{
    Ok(Option::<T>::deserialize(d)?.filter(|v| !v.is_blank()))
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("[redacted]")
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where the local broker, registry, store, index and state live.
    pub data_dir: PathBuf,
    pub kafka: KafkaConfig,
    pub broker: LocalBrokerConfig,
    pub registry: RegistryConfig,
    pub api: ApiConfig,
    pub store: StoreConfig,
    pub state: StateConfig,
    pub sandbox: SandboxConfig,
    pub sync: SyncConfig,
    pub projector: ProjectorConfig,
    pub roles: RolesConfig,
    pub metrics: MetricsConfig,
    pub webhooks: WebhooksConfig,
    /// Settings of connectors that define their own (`[connectors.<name>]`,
    /// `TRIBUTARY__CONNECTORS__<NAME>__<KEY>`): each connector's crate reads
    /// its table and names its keys; the binary refuses a table no
    /// connector claims. Printed with secret-looking values redacted.
    #[serde(serialize_with = "redacted_tables")]
    pub connectors: std::collections::BTreeMap<String, toml::Table>,
    pub security: SecurityConfig,
    pub log: String,
}

/// Connector tables with every value whose key names a secret redacted.
fn redacted_tables<S: serde::Serializer>(
    tables: &std::collections::BTreeMap<String, toml::Table>,
    s: S,
) -> Result<S::Ok, S::Error> {
    let redacted: std::collections::BTreeMap<&String, toml::Table> = tables
        .iter()
        .map(|(name, table)| {
            let table = table
                .iter()
                .map(|(k, v)| {
                    let secret = ["secret", "password", "token", "key"]
                        .iter()
                        .any(|word| k.to_ascii_lowercase().contains(word));
                    let v = if secret {
                        toml::Value::String("[redacted]".into())
                    } else {
                        v.clone()
                    };
                    (k.clone(), v)
                })
                .collect();
            (name, table)
        })
        .collect();
    redacted.serialize(s)
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("tributary-data"),
            kafka: KafkaConfig::default(),
            broker: LocalBrokerConfig::default(),
            registry: RegistryConfig::default(),
            api: ApiConfig::default(),
            store: StoreConfig::default(),
            state: StateConfig::default(),
            sandbox: SandboxConfig::default(),
            sync: SyncConfig::default(),
            projector: ProjectorConfig::default(),
            roles: RolesConfig::default(),
            webhooks: WebhooksConfig::default(),
            metrics: MetricsConfig::default(),
            connectors: Default::default(),
            security: SecurityConfig::default(),
            log: "info".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaConfig {
    /// An existing cluster's bootstrap servers; unset (or empty) runs the
    /// local broker.
    #[serde(
        deserialize_with = "empty_is_unset",
        skip_serializing_if = "Option::is_none"
    )]
    pub bootstrap_servers: Option<String>,
    /// Partitions of each topic Tributary creates (topics that exist keep
    /// theirs: per-company order depends on it). Unset: 1 on the local
    /// broker, whose every fetch costs work per partition, and
    /// [`CLUSTER_PARTITIONS`] on a cluster. See [`Config::topic_partitions`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partitions: Option<i32>,
    pub replication_factor: i32,
    /// Passed to librdkafka as is, for settings without a typed field
    /// (security.protocol, sasl.*, ssl.*...). Values are redacted in dumps.
    pub client: BTreeMap<String, Secret>,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            bootstrap_servers: None,
            partitions: None,
            replication_factor: 1,
            client: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LocalBrokerConfig {
    pub port: u16,
    /// Path to the Tansu binary; unset searches TRIBUTARY_TANSU_BIN and PATH.
    pub tansu_binary: Option<PathBuf>,
}

impl Default for LocalBrokerConfig {
    fn default() -> Self {
        LocalBrokerConfig {
            port: 9092,
            tansu_binary: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RegistryConfig {
    /// An external Confluent-compatible registry; unset (or empty) serves
    /// the embedded one.
    #[serde(
        deserialize_with = "empty_is_unset",
        skip_serializing_if = "Option::is_none"
    )]
    pub url: Option<String>,
    /// Port of the embedded registry.
    pub port: u16,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig {
            url: None,
            port: 8081,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    pub listen: String,
    /// Who may call the API. Empty: `tributary up` creates one key for all
    /// companies in `<data_dir>/api-key` (readable by its owner only).
    pub keys: Vec<ApiKeyConfig>,
    /// A Prometheus that scrapes every role (`http://prometheus:9090`): the
    /// console's pipeline charts come from it. Unset: from this process's
    /// own metrics, which see every role only when it runs them all.
    pub prometheus_url: Option<String>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            listen: "127.0.0.1:8080".into(),
            keys: Vec::new(),
            prometheus_url: None,
        }
    }
}

/// One API key, stored as its SHA-256 so the configuration holds no key.
/// `tributary api-key new` makes one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyConfig {
    /// Who holds the key, for logs.
    pub name: String,
    /// SHA-256 of the key, hex.
    pub sha256: String,
    /// Companies the key may read; `["*"]` for all.
    pub companies: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SecurityConfig {
    /// The key that encrypts connection credentials at rest: 64 hex digits
    /// (32 bytes). Usually from `TRIBUTARY__SECURITY__CREDENTIALS_KEY`.
    #[serde(
        deserialize_with = "empty_is_unset",
        skip_serializing_if = "Option::is_none"
    )]
    pub credentials_key: Option<Secret>,
    /// A file holding the key instead. With neither set, `tributary up`
    /// creates `<data_dir>/credentials.key` (readable by its owner only).
    pub credentials_key_file: Option<PathBuf>,
    /// Keys used before a rotation, still accepted for reading until
    /// `tributary connections rotate-key` has re-encrypted everything.
    pub previous_credentials_keys: Vec<Secret>,
    /// Let connectors reach `http` and internal addresses (loopback,
    /// private networks). For tests and local mocks only.
    pub allow_private_network: bool,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// A PostgreSQL URL (`postgres://user:password@host/db`) for the SQL
    /// store; unset (or empty) keeps it in SQLite under the data directory.
    #[serde(
        deserialize_with = "empty_is_unset",
        skip_serializing_if = "Option::is_none"
    )]
    pub url: Option<Secret>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StateConfig {
    /// A PostgreSQL URL for the connector workers' state (connections,
    /// credentials, cursors, sync leases), which workers on several
    /// machines share; it may be the store's database (the state keeps to
    /// schema `tributary_state`). Unset (or empty) keeps it in SQLite under
    /// the data directory, for workers in one process.
    #[serde(
        deserialize_with = "empty_is_unset",
        skip_serializing_if = "Option::is_none"
    )]
    pub url: Option<Secret>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SandboxConfig {
    /// Create sandbox companies on first start.
    pub enabled: bool,
    pub companies: u32,
    /// Records per data type per company.
    pub records: u32,
    /// Rounds of changes after the initial load.
    pub generations: u32,
    pub generation_interval_secs: u64,
    pub seed: u64,
    /// When generation 0 happens (ms since the Unix epoch); unset means the
    /// first start. Stored with each connection, so restarts keep it.
    pub epoch_ms: Option<i64>,
    /// Records per page the sandbox source serves at most.
    pub max_page_size: u32,
    /// Every n-th request to the sandbox source fails (0: never): for
    /// trying out, and testing, the runtime's retries.
    pub fail_every: u32,
    /// How it fails: `rate_limited` (429, retry after 1 s), `server_error`
    /// (500) or `timeout` (no answer within 2 s).
    pub failure: String,
    /// Deleted records vanish from the feed instead of coming flagged: only
    /// a reconciliation finds them gone.
    pub hard_deletes: bool,
    /// Which kinds of data the sandbox companies have: `accounting`,
    /// `commerce`, `banking` (all three by default).
    pub kinds: Vec<String>,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            enabled: true,
            companies: 3,
            records: 200,
            generations: 3,
            generation_interval_secs: 30,
            seed: 1,
            epoch_ms: None,
            max_page_size: 100,
            fail_every: 0,
            failure: "server_error".into(),
            hard_deletes: false,
            kinds: vec!["accounting".into(), "commerce".into(), "banking".into()],
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SyncConfig {
    /// Time between scheduled sync rounds, in seconds (fractions allowed).
    pub interval_secs: f64,
    pub page_size: u32,
    /// Attempts of one page fetch before the sync run fails.
    pub max_attempts: u32,
    /// First retry delay; doubles each attempt, with jitter.
    pub retry_base_ms: u64,
    /// Connections synced at once by this process's workers.
    pub concurrency: usize,
    /// A source asking to wait longer than this (a day's quota used up)
    /// pauses the connection, which resumes from its cursor afterwards.
    pub max_retry_wait_secs: u64,
    /// How long a worker's claim on a connection lasts unless renewed
    /// (every third of it): how soon other workers take over the
    /// connections of a worker that died.
    pub lease_secs: f64,
    /// How long finished runs stay in the sync history, in days (fractions
    /// allowed). Each sync of each data type is one row: see the README.
    pub history_days: f64,
    /// How often each connection and data type gets a full pass that
    /// deletes what the source no longer lists, in hours (fractions
    /// allowed). Counted against the source's call limits like any sync.
    pub reconcile_hours: f64,
    /// Data types fetched first, in this order (the others follow in the
    /// connector's order): a source with tight call limits fetches the
    /// important ones first.
    pub order: Vec<String>,
    /// Settings per data type (`[sync.data_types.invoices]`), over the
    /// ones above; each connection may override them.
    pub data_types: BTreeMap<String, DataTypeSync>,
    /// This worker's name in its leases; unset (or empty): host name and
    /// data directory, so that a restarted worker resumes its own
    /// connections.
    #[serde(
        deserialize_with = "empty_is_unset",
        skip_serializing_if = "Option::is_none"
    )]
    pub worker_id: Option<String>,
}

/// Sync settings of one data type; unset values fall back to `[sync]`'s.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataTypeSync {
    /// Seconds between scheduled syncs of this data type.
    pub interval_secs: Option<f64>,
    /// Hours between full passes that delete what the source no longer lists.
    pub reconcile_hours: Option<f64>,
    /// `false`: the schedule never syncs it (from the first link on); an
    /// operator's request still does.
    pub enabled: Option<bool>,
}

impl Default for SyncConfig {
    fn default() -> Self {
        SyncConfig {
            interval_secs: 15.0,
            page_size: 100,
            max_attempts: 5,
            retry_base_ms: 500,
            concurrency: 4,
            max_retry_wait_secs: 300,
            lease_secs: 30.0,
            history_days: 30.0,
            reconcile_hours: 24.0,
            order: Vec::new(),
            data_types: BTreeMap::new(),
            worker_id: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProjectorConfig {
    /// Most events applied in one transaction.
    pub batch_size: usize,
    /// Longest wait to fill a batch.
    pub linger_ms: u64,
    /// Rest after this long with nothing read, once the broker's partition
    /// ends show nothing left: fetch nothing until this process publishes.
    /// Only where the workers run in the same process; 0 never rests.
    pub rest_after_ms: u64,
    /// While resting, ask the partition ends this often, for what other
    /// processes published.
    pub rest_poll_ms: u64,
    /// Run the SQL store projector in a Kafka consumer group, so that several
    /// processes share the partitions (PostgreSQL store only). Off: one
    /// process reads every partition from the store's own checkpoint.
    /// Needs a real Kafka cluster: the local broker's group coordinator
    /// (Tansu 0.6) has been seen to fail under load.
    pub consumer_group: bool,
}

impl Default for ProjectorConfig {
    fn default() -> Self {
        ProjectorConfig {
            batch_size: 1000,
            linger_ms: 100,
            rest_after_ms: 250,
            rest_poll_ms: 10_000,
            consumer_group: false,
        }
    }
}

/// What `tributary up` runs in this process. All of it by default; at scale,
/// processes take some roles each and share the broker, registry and store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RolesConfig {
    /// Connector workers (sync the connections in the state store).
    pub workers: bool,
    /// The SQL store projector. With a PostgreSQL store, any number of
    /// processes may run it: they split the partitions in a consumer group.
    pub store_projector: bool,
    /// The search index projector (one process: the index is local).
    pub index_projector: bool,
    /// The HTTP API.
    pub api: bool,
    /// The webhook dispatcher: queues an event for each subscription that
    /// wants it, from the sync runs, connections and dead-letter topics,
    /// and delivers them. Any number of processes may run it (they share
    /// the deliveries through the state store); with a PostgreSQL state
    /// and `projector.consumer_group`, they split the partitions too.
    pub dispatcher: bool,
}

impl Default for RolesConfig {
    fn default() -> Self {
        RolesConfig {
            workers: true,
            store_projector: true,
            index_projector: true,
            api: true,
            dispatcher: true,
        }
    }
}

/// What `/metrics` shows beyond the counters, and where a process without
/// the API serves it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// Where a process without the API role (`roles.api = false`) serves
    /// `/metrics`; with the API, it is on the API's address. The default,
    /// port 0, takes a free port (printed at start), so that several such
    /// processes on one machine never collide: set a fixed one for
    /// Prometheus to scrape.
    pub listen: String,
    /// How many of the stalest company and data type pairs get a
    /// `tributary_sync_age_seconds` series (the stalest age of all and the
    /// number of pairs are shown besides).
    pub sync_age_series: usize,
    /// Sync age past which a tenant is stale: shown as
    /// `tributary_sync_stale_after_seconds`, which the stale-tenant alert
    /// compares against. Keep it above the longest sync interval.
    pub stale_after_secs: u64,
    /// How often the workers measure per-tenant health from the state store.
    pub health_every_secs: f64,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            listen: "127.0.0.1:0".into(),
            sync_age_series: 50,
            stale_after_secs: 7_200,
            health_every_secs: 15.0,
        }
    }
}

/// How the webhook dispatcher delivers (`roles.dispatcher`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhooksConfig {
    /// Seconds to wait after each failed attempt before the next; when
    /// they are spent, the delivery is given up (and shown as `failed`).
    /// The default retries for about 27.6 hours over 8 attempts.
    pub retry_schedule_secs: Vec<f64>,
    /// Longest wait for a subscriber's answer.
    pub timeout_secs: f64,
    /// Longest wait between two looks for due deliveries queued by other
    /// processes (tests and replays through the API elsewhere).
    pub poll_ms: u64,
    /// After each manifest, how long the store is given to catch up before
    /// it is checked against it; a mismatch is looked at once more this
    /// long after, and only then told (`reconciliation.mismatch`).
    pub reconcile_after_secs: f64,
    /// How long an ended delivery (delivered, given up, cancelled) stays
    /// in the delivery log.
    pub log_days: f64,
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        WebhooksConfig {
            retry_schedule_secs: vec![5.0, 300.0, 1_800.0, 7_200.0, 18_000.0, 36_000.0, 36_000.0],
            timeout_secs: 10.0,
            poll_ms: 2_000,
            reconcile_after_secs: 60.0,
            log_days: 30.0,
        }
    }
}

const ENV_PREFIX: &str = "TRIBUTARY__";

/// Partitions per topic on a cluster when `kafka.partitions` is unset.
pub const CLUSTER_PARTITIONS: i32 = 6;

impl Config {
    /// Partitions of each topic Tributary creates: `kafka.partitions`, else
    /// 1 on the local broker and [`CLUSTER_PARTITIONS`] on a cluster.
    pub fn topic_partitions(&self) -> i32 {
        match (self.kafka.partitions, &self.kafka.bootstrap_servers) {
            (Some(partitions), _) => partitions,
            (None, None) => 1,
            (None, Some(_)) => CLUSTER_PARTITIONS,
        }
    }

    /// Defaults, then `file` if given, then the process environment.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        Self::load_from(file, std::env::vars())
    }

    /// Like [`Config::load`] with an explicit environment, for tests.
    pub fn load_from(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut table = match file {
            Some(path) => {
                let path_text = path.display().to_string();
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path_text.clone(),
                    source,
                })?;
                text.parse::<toml::Table>()
                    .map_err(|source| ConfigError::Parse {
                        path: path_text,
                        source,
                    })?
            }
            None => toml::Table::new(),
        };
        let mut overridden = Vec::new();
        for (key, value) in env {
            let Some(rest) = key.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            let path: Vec<String> = rest.split("__").map(|s| s.to_ascii_lowercase()).collect();
            set_path(&mut table, &path, parse_env_value(&value)).map_err(|message| {
                ConfigError::Invalid {
                    origin: key.clone(),
                    message,
                }
            })?;
            overridden.push(key);
        }
        // `[xero]` (and `TRIBUTARY__XERO__*`) is the Xero connector's table
        // under its first name: the same as `[connectors.xero]`, whose keys
        // win where both set one.
        if let Some(legacy) = table.remove("xero") {
            let toml::Value::Table(legacy) = legacy else {
                return Err(ConfigError::Invalid {
                    origin: "xero".into(),
                    message: "[xero] must be a table".into(),
                });
            };
            let connectors = table
                .entry("connectors")
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if let toml::Value::Table(connectors) = connectors {
                let xero = connectors
                    .entry("xero")
                    .or_insert_with(|| toml::Value::Table(toml::Table::new()));
                if let toml::Value::Table(xero) = xero {
                    for (k, v) in legacy {
                        xero.entry(k).or_insert(v);
                    }
                }
            }
        }
        let origin = match (file, overridden.is_empty()) {
            (Some(p), true) => p.display().to_string(),
            (Some(p), false) => format!("{} and {}", p.display(), overridden.join(", ")),
            (None, false) => overridden.join(", "),
            (None, true) => "defaults".into(),
        };
        // Deserializing from text (not from the table) makes errors quote the
        // offending line, so they name the key.
        let config: Config =
            toml::from_str(&table.to_string()).map_err(|e| ConfigError::Invalid {
                origin: origin.clone(),
                message: e.to_string(),
            })?;
        config
            .validate()
            .map_err(|message| ConfigError::Invalid { origin, message })?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), String> {
        if self.kafka.partitions.is_some_and(|p| p < 1) {
            return Err("kafka.partitions must be at least 1".into());
        }
        if !(self.sync.interval_secs >= 0.0 && self.sync.interval_secs <= 86_400.0) {
            return Err("sync.interval_secs must be between 0 and 86400".into());
        }
        if self.sync.page_size == 0 || self.sync.max_attempts == 0 || self.sync.concurrency == 0 {
            return Err(
                "sync.page_size, sync.max_attempts and sync.concurrency must be at least 1".into(),
            );
        }
        if !(self.sync.history_days > 0.0 && self.sync.history_days <= 3_650.0) {
            return Err("sync.history_days must be above 0 and at most 3650".into());
        }
        if !(self.sync.reconcile_hours > 0.0 && self.sync.reconcile_hours <= 8_760.0) {
            return Err("sync.reconcile_hours must be above 0 and at most 8760".into());
        }
        if !(self.sync.lease_secs >= 1.0 && self.sync.lease_secs <= 3_600.0) {
            return Err("sync.lease_secs must be between 1 and 3600".into());
        }
        for (key, url) in [
            ("store.url", &self.store.url),
            ("state.url", &self.state.url),
        ] {
            if let Some(url) = url
                && !url.expose().starts_with("postgres")
            {
                return Err(format!(
                    "{key} must be a postgres:// or postgresql:// URL, or unset for SQLite"
                ));
            }
        }
        if self.projector.consumer_group && self.store.url.is_none() {
            return Err("projector.consumer_group needs a PostgreSQL store (store.url): a SQLite store has one writer".into());
        }
        for key in &self.api.keys {
            if key.sha256.len() != 64 || !key.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(format!(
                    "api.keys {:?}: sha256 must be 64 hex digits (make one with `tributary api-key new`)",
                    key.name
                ));
            }
            if key.companies.is_empty() {
                return Err(format!(
                    "api.keys {:?}: companies is empty; list them, or [\"*\"] for all",
                    key.name
                ));
            }
        }
        if self.projector.rest_after_ms > 0 && self.projector.rest_poll_ms == 0 {
            return Err(
                "projector.rest_poll_ms must be at least 1 while projector.rest_after_ms is set"
                    .into(),
            );
        }
        if self.projector.batch_size == 0 {
            return Err("projector.batch_size must be at least 1".into());
        }
        if self.metrics.listen.parse::<std::net::SocketAddr>().is_err() {
            return Err(format!(
                "metrics.listen {:?} must be an address with a port, like 127.0.0.1:9464",
                self.metrics.listen
            ));
        }
        if !(self.metrics.health_every_secs >= 0.1 && self.metrics.health_every_secs <= 3_600.0) {
            return Err("metrics.health_every_secs must be between 0.1 and 3600".into());
        }
        if self.metrics.stale_after_secs == 0 {
            return Err("metrics.stale_after_secs must be at least 1".into());
        }
        let w = &self.webhooks;
        if let Some(bad) = w
            .retry_schedule_secs
            .iter()
            .find(|s| !(**s >= 0.0 && **s <= 604_800.0))
        {
            return Err(format!(
                "webhooks.retry_schedule_secs: {bad} is not a wait between 0 and 604800 seconds"
            ));
        }
        if !(w.timeout_secs >= 0.1 && w.timeout_secs <= 300.0) {
            return Err("webhooks.timeout_secs must be between 0.1 and 300".into());
        }
        if w.poll_ms == 0 {
            return Err("webhooks.poll_ms must be at least 1".into());
        }
        if !(w.reconcile_after_secs >= 0.1 && w.reconcile_after_secs <= 86_400.0) {
            return Err("webhooks.reconcile_after_secs must be between 0.1 and 86400".into());
        }
        if !(w.log_days > 0.0 && w.log_days <= 3_650.0) {
            return Err("webhooks.log_days must be above 0 and at most 3650".into());
        }
        Ok(())
    }

    /// The configuration as TOML, secrets redacted.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self)
            .unwrap_or_else(|e| format!("# cannot print configuration: {e}"))
    }
}

/// An environment value as TOML when it reads as a number, boolean or array,
/// otherwise as a plain string.
fn parse_env_value(raw: &str) -> toml::Value {
    format!("v = {raw}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_string()))
}

fn set_path(table: &mut toml::Table, path: &[String], value: toml::Value) -> Result<(), String> {
    match path {
        [] => Err("empty key".into()),
        [last] => {
            table.insert(last.clone(), value);
            Ok(())
        }
        [first, rest @ ..] => {
            let entry = table
                .entry(first.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            match entry {
                toml::Value::Table(inner) => set_path(inner, rest, value),
                _ => Err(format!("{first} is not a section")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn layers_apply_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tributary.toml");
        std::fs::write(
            &file,
            "data_dir = \"/var/lib/t\"\n[api]\nlisten = \"0.0.0.0:1\"\n[sandbox]\ncompanies = 9\n",
        )
        .unwrap();
        let config = Config::load_from(
            Some(&file),
            env(&[
                ("TRIBUTARY__SANDBOX__COMPANIES", "2"),
                ("TRIBUTARY__KAFKA__BOOTSTRAP_SERVERS", "k1:9092,k2:9092"),
                ("OTHER", "x"),
            ]),
        )
        .unwrap();
        assert_eq!(config.data_dir, PathBuf::from("/var/lib/t"));
        assert_eq!(config.api.listen, "0.0.0.0:1");
        assert_eq!(config.sandbox.companies, 2, "environment beats the file");
        assert_eq!(
            config.kafka.bootstrap_servers.as_deref(),
            Some("k1:9092,k2:9092")
        );
        assert_eq!(
            config.sync,
            SyncConfig::default(),
            "untouched sections keep their defaults"
        );
    }

    #[test]
    fn typos_are_errors_naming_the_key_and_origin() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("t.toml");
        std::fs::write(&file, "[sandbox]\ncompanys = 3\n").unwrap();
        let err = Config::load_from(Some(&file), env(&[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("companys") && err.contains("t.toml"), "{err}");
        let err = Config::load_from(None, env(&[("TRIBUTARY__API__LISTN", "x")]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("listn") && err.contains("TRIBUTARY__API__LISTN"),
            "{err}"
        );
        let err = Config::load_from(None, env(&[("TRIBUTARY__SANDBOX__COMPANIES", "many")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("companies"), "{err}");
        let err = Config::load_from(None, env(&[("TRIBUTARY__KAFKA__PARTITIONS", "0")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("kafka.partitions"), "{err}");
    }

    #[test]
    fn topics_get_one_partition_on_the_local_broker_and_more_on_a_cluster() {
        let local = Config::load_from(None, env(&[])).unwrap();
        assert_eq!(local.topic_partitions(), 1);
        let cluster = Config::load_from(
            None,
            env(&[("TRIBUTARY__KAFKA__BOOTSTRAP_SERVERS", "k:9092")]),
        )
        .unwrap();
        assert_eq!(cluster.topic_partitions(), CLUSTER_PARTITIONS);
        let set = Config::load_from(None, env(&[("TRIBUTARY__KAFKA__PARTITIONS", "3")])).unwrap();
        assert_eq!(set.topic_partitions(), 3);
    }

    #[test]
    fn broken_files_say_where() {
        let err = Config::load_from(Some(Path::new("/nonexistent/t.toml")), env(&[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("/nonexistent/t.toml"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bad.toml");
        std::fs::write(&file, "[api\n").unwrap();
        let err = Config::load_from(Some(&file), env(&[]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("bad.toml") && err.contains("not valid TOML"),
            "{err}"
        );
    }

    #[test]
    fn secrets_never_print() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("t.toml");
        std::fs::write(&file, "[kafka.client]\n\"sasl.password\" = \"hunter2\"\n").unwrap();
        let config = Config::load_from(Some(&file), env(&[])).unwrap();
        assert_eq!(config.kafka.client["sasl.password"].expose(), "hunter2");
        assert!(!format!("{config:?}").contains("hunter2"));
        assert!(!config.to_toml().contains("hunter2"));
        assert!(config.to_toml().contains("[redacted]"));
    }

    #[test]
    fn unset_and_empty_are_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("t.toml");
        // Configs written before these settings were optional say "".
        std::fs::write(
            &file,
            "[kafka]\nbootstrap_servers = \"\"\n[registry]\nurl = \"\"\n[store]\nurl = \"\"\n\
             [state]\nurl = \"\"\n[security]\ncredentials_key = \"\"\n[sync]\nworker_id = \"\"\n",
        )
        .unwrap();
        let from_empty = Config::load_from(Some(&file), env(&[])).unwrap();
        assert_eq!(from_empty, Config::load_from(None, env(&[])).unwrap());
        assert_eq!(from_empty.store.url, None);
        assert_eq!(from_empty.kafka.bootstrap_servers, None);
        let set = Config::load_from(
            Some(&file),
            env(&[
                ("TRIBUTARY__STORE__URL", "postgres://u@h/db"),
                ("TRIBUTARY__SYNC__WORKER_ID", "w1"),
                ("TRIBUTARY__STATE__URL", ""),
            ]),
        )
        .unwrap();
        assert_eq!(
            set.store.url.as_ref().map(Secret::expose),
            Some("postgres://u@h/db")
        );
        assert_eq!(set.sync.worker_id.as_deref(), Some("w1"));
        assert_eq!(set.state.url, None, "an empty variable unsets");
        // Printed, an unset setting is left out.
        let printed = from_empty.to_toml();
        assert!(
            !printed.contains("bootstrap_servers") && !printed.contains("worker_id"),
            "{printed}"
        );
    }

    #[test]
    fn connector_tables_come_from_file_and_environment_and_print_redacted() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("t.toml");
        std::fs::write(
            &file,
            "[connectors.square]\nbase_url = \"https://connect.squareupsandbox.com\"\n",
        )
        .unwrap();
        let config = Config::load_from(
            Some(&file),
            env(&[
                ("TRIBUTARY__CONNECTORS__SQUARE__CLIENT_ID", "sq0idp-1"),
                (
                    "TRIBUTARY__CONNECTORS__SQUARE__CLIENT_SECRET",
                    "sq0csp-SECRET",
                ),
            ]),
        )
        .unwrap();
        let square = &config.connectors["square"];
        assert_eq!(square["client_id"].as_str(), Some("sq0idp-1"));
        assert_eq!(square["client_secret"].as_str(), Some("sq0csp-SECRET"));
        assert_eq!(
            square["base_url"].as_str(),
            Some("https://connect.squareupsandbox.com")
        );
        let printed = config.to_toml();
        assert!(!printed.contains("sq0csp-SECRET"), "{printed}");
        assert!(
            printed.contains("sq0idp-1") && printed.contains("[redacted]"),
            "{printed}"
        );
    }

    #[test]
    fn the_xero_table_keeps_its_first_name() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("t.toml");
        std::fs::write(
            &file,
            "[xero]\nclient_id = \"x-1\"\napi_url = \"https://old\"\n[connectors.xero]\napi_url = \"https://new\"\n",
        )
        .unwrap();
        let config = Config::load_from(
            Some(&file),
            env(&[("TRIBUTARY__XERO__CLIENT_SECRET", "x-SECRET")]),
        )
        .unwrap();
        let xero = &config.connectors["xero"];
        assert_eq!(xero["client_id"].as_str(), Some("x-1"));
        assert_eq!(xero["client_secret"].as_str(), Some("x-SECRET"));
        assert_eq!(
            xero["api_url"].as_str(),
            Some("https://new"),
            "connectors.xero wins"
        );
        assert!(!config.to_toml().contains("x-SECRET"));
    }
}
