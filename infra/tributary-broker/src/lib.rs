//! The broker side of single-machine mode: runs a local durable
//! Kafka-protocol broker (Tansu, with SQLite storage under tributary's data
//! directory) as a child process, and creates topics on any broker.
//!
//! Contract: [`LocalBroker`] owns its child. The child is killed when the
//! broker handle drops, and also by the kernel when the `tributary` process
//! dies, even by `kill -9` (Linux parent-death signal), so a restart never
//! finds a stale broker holding the port. Data survives both: Tansu commits
//! every produce to SQLite before acknowledging it.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::types::RDKafkaErrorCode;

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error(
        "no local broker binary: set broker.tansu_binary or TRIBUTARY_TANSU_BIN, or install it with \
         `cargo install tansu --version 0.6.0 --locked --features libsql,dynostore` \
         (or configure kafka.bootstrap_servers to use an existing cluster)"
    )]
    NotInstalled,
    #[error("cannot create broker data directory {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot start local broker {binary}: {source}")]
    Spawn {
        binary: String,
        source: std::io::Error,
    },
    #[error("local broker exited before it was ready ({status}); see {log}")]
    Exited { status: String, log: String },
    #[error("local broker did not accept connections on {address} within {seconds}s; see {log}")]
    NotReady {
        address: String,
        seconds: u64,
        log: String,
    },
    #[error("cannot index the local broker's database {path}: {message}")]
    Index { path: String, message: String },
    #[error("kafka admin on {bootstrap}: {message}")]
    Admin { bootstrap: String, message: String },
}

/// Finds the Tansu binary: an explicit path, `TRIBUTARY_TANSU_BIN`, `PATH`,
/// then cargo's install directory.
pub fn find_tansu(configured: Option<&Path>) -> Result<PathBuf, BrokerError> {
    if let Some(path) = configured {
        return if path.is_file() {
            Ok(path.to_path_buf())
        } else {
            Err(BrokerError::NotInstalled)
        };
    }
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(path) = std::env::var_os("TRIBUTARY_TANSU_BIN") {
        candidates.push(path.into());
    }
    if let Some(paths) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&paths).map(|p| p.join("tansu")));
    }
    if let Some(home) = std::env::var_os("CARGO_HOME")
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo").into()))
    {
        candidates.push(Path::new(&home).join("bin").join("tansu"));
    }
    candidates
        .into_iter()
        .find(|p| p.is_file())
        .ok_or(BrokerError::NotInstalled)
}

/// A Tansu broker running as our child process.
pub struct LocalBroker {
    child: Child,
    address: String,
    log: PathBuf,
}

impl LocalBroker {
    /// Starts Tansu on `127.0.0.1:port` with its SQLite database in
    /// `data_dir`, waits until it accepts connections, and adds the index its
    /// database lacks (see [`index_headers`]).
    pub async fn start(
        binary: &Path,
        data_dir: &Path,
        port: u16,
    ) -> Result<LocalBroker, BrokerError> {
        std::fs::create_dir_all(data_dir).map_err(|source| BrokerError::DataDir {
            path: data_dir.display().to_string(),
            source,
        })?;
        let address = format!("127.0.0.1:{port}");
        let log = data_dir.join("broker.log");
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(|source| BrokerError::DataDir {
                path: log.display().to_string(),
                source,
            })?;
        let log_err = log_file
            .try_clone()
            .map_err(|source| BrokerError::DataDir {
                path: log.display().to_string(),
                source,
            })?;
        let mut command = Command::new(binary);
        command
            // Tansu resolves a sqlite:// path against its working directory.
            .current_dir(data_dir)
            .args(["broker", "--listener-url"])
            .arg(format!("tcp://{address}"))
            .arg("--advertised-listener-url")
            .arg(format!("tcp://{address}"))
            .arg("--storage-engine")
            .arg(format!("sqlite://{DATABASE}"))
            .stdin(Stdio::null())
            .stdout(Stdio::from(log_file))
            .stderr(Stdio::from(log_err));
        die_with_parent(&mut command);
        let child = command.spawn().map_err(|source| BrokerError::Spawn {
            binary: binary.display().to_string(),
            source,
        })?;
        let mut broker = LocalBroker {
            child,
            address,
            log,
        };
        broker.wait_ready(Duration::from_secs(30)).await?;
        index_headers(&data_dir.join(DATABASE)).await?;
        tracing::info!(address = %broker.address, "local broker ready");
        Ok(broker)
    }

    async fn wait_ready(&mut self, timeout: Duration) -> Result<(), BrokerError> {
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(BrokerError::Exited {
                    status: status.to_string(),
                    log: self.log.display().to_string(),
                });
            }
            if TcpStream::connect(&self.address).is_ok() {
                return Ok(());
            }
            if start.elapsed() > timeout {
                return Err(BrokerError::NotReady {
                    address: self.address.clone(),
                    seconds: timeout.as_secs(),
                    log: self.log.display().to_string(),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `host:port` for `bootstrap.servers`.
    pub fn bootstrap_servers(&self) -> &str {
        &self.address
    }

    /// Stops the broker: SIGTERM, then SIGKILL after `grace`.
    pub fn stop(mut self, grace: Duration) {
        self.terminate(grace);
    }

    fn terminate(&mut self, grace: Duration) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        send_sigterm(&self.child);
        let start = Instant::now();
        while start.elapsed() < grace {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for LocalBroker {
    fn drop(&mut self) {
        self.terminate(Duration::from_secs(5));
    }
}

/// Tansu's database file, in the broker's data directory.
const DATABASE: &str = "tansu.db";

/// Tansu 0.6 stores record headers in a table with no index: for every record
/// a fetch returns it looks up that record's headers by scanning every header
/// ever stored, so reads get slower as the log grows, and consumers stall
/// once a fetch takes longer than their timeout (measured in
/// docs/BENCHMARKS.md). Every tributary event carries a header (its event id),
/// so we add the index. Tansu has created its tables by the time it accepts
/// connections, and no client is connected yet, so nothing contends for the
/// write; the busy timeout covers Tansu's own housekeeping.
async fn index_headers(db: &Path) -> Result<(), BrokerError> {
    use sqlx::ConnectOptions;
    use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode};

    let index_err = |message: String| BrokerError::Index {
        path: db.display().to_string(),
        message,
    };
    let mut connection = SqliteConnectOptions::new()
        .filename(db)
        .create_if_missing(false)
        // Tansu's own mode; anything else would rewrite its journal.
        .journal_mode(SqliteJournalMode::Wal)
        .busy_timeout(Duration::from_secs(30))
        .connect()
        .await
        .map_err(|e| index_err(e.to_string()))?;
    sqlx::query(
        "CREATE INDEX IF NOT EXISTS tributary_header_record ON header (topition, offset_id)",
    )
    .execute(&mut connection)
    .await
    .map_err(|e| index_err(e.to_string()))?;
    sqlx::Connection::close(connection)
        .await
        .map_err(|e| index_err(e.to_string()))
}

#[allow(unsafe_code)]
fn die_with_parent(command: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl is async-signal-safe and touches no memory of ours; it
    // runs in the forked child before exec.
    unsafe {
        command.pre_exec(|| {
            #[cfg(target_os = "linux")]
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
}

#[allow(unsafe_code)]
fn send_sigterm(child: &Child) {
    if let Ok(pid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: kill(2) on our own child's pid, which we have not reaped yet.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
    }
}

/// Creates every topic in `topics` that does not exist yet, with
/// `partitions` partitions, and waits until the broker reports them all.
pub async fn ensure_topics(
    client: &ClientConfig,
    topics: &[String],
    partitions: i32,
    replication: i32,
) -> Result<(), BrokerError> {
    let bootstrap = client.get("bootstrap.servers").unwrap_or("?").to_string();
    let admin_err = |message: String| BrokerError::Admin {
        bootstrap: bootstrap.clone(),
        message,
    };
    let admin: AdminClient<DefaultClientContext> =
        client.create().map_err(|e| admin_err(e.to_string()))?;
    let new_topics: Vec<NewTopic> = topics
        .iter()
        .map(|t| NewTopic::new(t, partitions, TopicReplication::Fixed(replication)))
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = admin
        .create_topics(&new_topics, &options)
        .await
        .map_err(|e| admin_err(e.to_string()))?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => {
                return Err(admin_err(format!("cannot create topic {topic}: {code}")));
            }
        }
    }
    let missing = topic_partitions(client, topics)
        .await?
        .into_iter()
        .filter(|(_, n)| *n == 0)
        .collect::<Vec<_>>();
    if !missing.is_empty() {
        return Err(admin_err(format!(
            "topics missing after creation: {missing:?}"
        )));
    }
    Ok(())
}

/// The partition count of each topic (0 when the broker does not know it).
pub async fn topic_partitions(
    client: &ClientConfig,
    topics: &[String],
) -> Result<Vec<(String, i32)>, BrokerError> {
    let bootstrap = client.get("bootstrap.servers").unwrap_or("?").to_string();
    let client = client.clone();
    let topics = topics.to_vec();
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = client.create().map_err(|e| BrokerError::Admin {
            bootstrap: bootstrap.clone(),
            message: e.to_string(),
        })?;
        let metadata = consumer
            .fetch_metadata(None, Duration::from_secs(10))
            .map_err(|e| BrokerError::Admin {
                bootstrap: bootstrap.clone(),
                message: format!("metadata: {e}"),
            })?;
        Ok(topics
            .iter()
            .map(|t| {
                let n = metadata
                    .topics()
                    .iter()
                    .find(|m| m.name() == t)
                    .map_or(0, |m| m.partitions().len() as i32);
                (t.clone(), n)
            })
            .collect())
    })
    .await
    .map_err(|e| BrokerError::Admin {
        bootstrap: "?".into(),
        message: e.to_string(),
    })?
}
