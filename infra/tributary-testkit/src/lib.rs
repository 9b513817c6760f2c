#![allow(clippy::unwrap_used)] // test support: a test stops at its first surprise
//! Test support shared by the workspace's tests: free ports, throwaway
//! PostgreSQL clusters started with the server binaries installed on the
//! machine (`/usr/lib/postgresql/<version>/bin`, or `TRIBUTARY_PG_BIN`),
//! Prism serving Xero's OpenAPI spec ([`prism`]) and a fake Xero identity
//! server with refresh-token rotation ([`xero_identity`]).

pub mod conformance;
pub mod open_banking;
pub mod prism;
pub mod schema_versions;
pub mod vault;
pub mod xero_identity;

use std::path::{Path, PathBuf};
use std::process::Command;

/// A TCP port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("cannot find a free port")
}

/// A PostgreSQL cluster in a temporary directory, stopped and deleted on drop.
pub struct PgCluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
}

fn pg_bin() -> PathBuf {
    if let Some(dir) = std::env::var_os("TRIBUTARY_PG_BIN") {
        return dir.into();
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.path().join("bin"))
                .filter(|p| p.join("initdb").exists())
                .collect()
        })
        .unwrap_or_default();
    versions.sort();
    versions
        .pop()
        .expect("no PostgreSQL server binaries under /usr/lib/postgresql; set TRIBUTARY_PG_BIN")
}

#[allow(unsafe_code)]
fn running_as_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

impl PgCluster {
    /// Initialises and starts a cluster on a free port, with user
    /// `tributary` trusted on loopback and fsync off: tests need durability
    /// against process death (a commit is in the OS's hands before it is
    /// acknowledged), not against power loss. `synchronous_commit` stays on,
    /// or a crash could lose acknowledged commits.
    pub fn start() -> PgCluster {
        let dir = tempfile::tempdir().expect("cannot create a temporary directory");
        let cluster = PgCluster {
            bin: pg_bin(),
            port: free_port(),
            dir,
        };
        if running_as_root() {
            // PostgreSQL refuses to run as root: hand the directory to its own user.
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(cluster.dir.path())
                .status();
            assert!(
                status.is_ok_and(|s| s.success()),
                "cannot chown the cluster directory to postgres"
            );
        }
        let data = cluster.data_dir();
        cluster.run(
            "initdb",
            &[
                "-D",
                data.to_str().unwrap(),
                "-U",
                "tributary",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        );
        cluster.start_server();
        cluster
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// A command running `program` of the server binaries, as the
    /// `postgres` user when we are root.
    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        if running_as_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        }
    }

    fn run(&self, program: &str, args: &[&str]) {
        let path = self.bin.join(program);
        let output = self
            .command(program)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", path.display()));
        assert!(
            output.status.success(),
            "{program} {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// Starts the server (again, after [`PgCluster::stop`]).
    pub fn start_server(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=100",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("postgres.log");
        self.run(
            "pg_ctl",
            &[
                "-D",
                self.data_dir().to_str().unwrap(),
                "-l",
                log.to_str().unwrap(),
                "-o",
                &options,
                "-w",
                "start",
            ],
        );
    }

    /// Stops the server at once, like a crash: no checkpoint, no goodbye.
    pub fn stop(&self) {
        self.run(
            "pg_ctl",
            &[
                "-D",
                self.data_dir().to_str().unwrap(),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
        );
    }

    /// A connection URL for database `postgres` as user `tributary`.
    pub fn url(&self) -> String {
        self.url_for("postgres")
    }

    /// A connection URL for database `name` as user `tributary`.
    pub fn url_for(&self, name: &str) -> String {
        format!("postgres://tributary@127.0.0.1:{}/{name}", self.port)
    }

    /// Creates an empty database `name`.
    pub fn create_database(&self, name: &str) {
        self.run(
            "createdb",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "tributary",
                name,
            ],
        );
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let data = self.data_dir();
        let _ = self
            .command("pg_ctl")
            .args([
                "-D",
                data.to_str().unwrap_or_default(),
                "-m",
                "immediate",
                "stop",
            ])
            .output();
    }
}

/// One HTTP client for a test process. Building one loads the system's
/// certificates, a tenth of a second of CPU: a test polling an API with a
/// new client each time took a core from the pipeline it waited for. It
/// keeps no idle connections, so tests on different runtimes can share it.
pub fn http() -> &'static reqwest::Client {
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .expect("an HTTP client")
    })
}

/// GETs `url` from a pipeline's API with `key`: the JSON answer, or `None`
/// when it is not there (yet), refused, or not reachable.
pub async fn api_get(url: &str, key: &str) -> Option<serde_json::Value> {
    let resp = http().get(url).bearer_auth(key).send().await.ok()?;
    if !resp.status().is_success() {
        return None;
    }
    resp.json().await.ok()
}

/// The payload of the first message found in `topic`'s `partitions`.
pub fn first_message(bootstrap: &str, topic: &str, partitions: i32) -> Vec<u8> {
    messages(bootstrap, topic, partitions, 1).remove(0)
}

/// The payloads of the first `count` messages of `topic`'s `partitions`
/// (in each partition's order), waiting up to a minute for them.
pub fn messages(bootstrap: &str, topic: &str, partitions: i32, count: usize) -> Vec<Vec<u8>> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::{ClientConfig, Message};
    use std::time::{Duration, Instant};

    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "tests-peek")
        .set("fetch.wait.max.ms", "50")
        .create()
        .unwrap();
    let mut tpl = rdkafka::TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, rdkafka::Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    // Dropped before the consumer: a live list makes the consumer's drop hang.
    drop(tpl);
    let started = Instant::now();
    let mut found = Vec::with_capacity(count);
    while found.len() < count {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{} of {count} messages in {topic}",
            found.len()
        );
        if let Some(m) = consumer.poll(Duration::from_secs(1)) {
            found.push(m.unwrap().payload().unwrap_or_default().to_vec());
        }
    }
    found
}
