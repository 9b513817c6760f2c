//! Faults outside Tributary in mid-sync: the store's database and the broker
//! going away and coming back. After each, the store must hold exactly the
//! source's records.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use tributary_connector_sandbox::SandboxSettings;
use tributary_schemas::Timestamp;
use tributary_testkit::{PgCluster, free_port};

const COMPANIES: u32 = 2;

struct Pipeline {
    child: Proc,
    api: String,
    sandbox: SandboxSettings,
}

/// `tributary up` with a PostgreSQL store at `store_url`, and the broker at
/// `bootstrap` (or a local one when `None`).
fn start(dir: &Path, store_url: &str, bootstrap: Option<&str>) -> Pipeline {
    let (broker, registry, api) = (free_port(), free_port(), free_port());
    let sandbox = SandboxSettings {
        seed: 3,
        records: 80,
        generations: 1,
        generation_interval_secs: 0,
        epoch_ms: Timestamp::now().millis(),
        max_page_size: 10,
    };
    let config = dir.join("tributary.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {data:?}\nlog = \"info,librdkafka=warn\"\n\
             [kafka]\npartitions = 3\nbootstrap_servers = {bootstrap:?}\n[broker]\nport = {broker}\n[registry]\nport = {registry}\n\
             [api]\nlisten = \"127.0.0.1:{api}\"\n{API_KEYS_TOML}\n[store]\nurl = {store_url:?}\n\
             [sandbox]\ncompanies = {COMPANIES}\nrecords = {records}\ngenerations = 1\ngeneration_interval_secs = 0\n\
             seed = {seed}\nepoch_ms = {epoch}\nmax_page_size = 10\n\
             [sync]\ninterval_secs = 1\npage_size = 10\nretry_base_ms = 200\n\
             [projector]\nbatch_size = 20\nlinger_ms = 20\n",
            data = dir.join("data"),
            bootstrap = bootstrap.unwrap_or_default(),
            records = sandbox.records,
            seed = sandbox.seed,
            epoch = sandbox.epoch_ms,
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.join("tributary.log")).unwrap();
    let child = Proc(
        Command::new(env!("CARGO_BIN_EXE_tributary"))
            .args(["--config", config.to_str().unwrap(), "up"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    Pipeline {
        child,
        api: format!("http://127.0.0.1:{api}"),
        sandbox,
    }
}

async fn wait_for_first_records(api: &str, dir: &Path) {
    let started = Instant::now();
    while api_counts(api, &companies(COMPANIES))
        .await
        .values()
        .sum::<i64>()
        == 0
    {
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "no data arrived\n{}",
            logs(dir)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn converges_and_stops(mut pipeline: Pipeline, dir: &Path) {
    let names = companies(COMPANIES);
    let expected = expected_counts(&pipeline.sandbox, &names, 1);
    wait_for_counts(
        &pipeline.api,
        &names,
        &expected,
        Duration::from_secs(180),
        dir,
    )
    .await;
    wait_for_contents(
        &pipeline.api,
        &pipeline.sandbox,
        &names,
        1,
        Duration::from_secs(60),
        dir,
    )
    .await;
    terminate(&mut pipeline.child);
    let status = pipeline.child.wait().unwrap();
    assert!(
        status.success(),
        "tributary up exited with {status}\n{}",
        logs(dir)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stopped_and_restarted_mid_sync() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = PgCluster::start();
    let pipeline = start(dir.path(), &cluster.url(), None);
    wait_for_first_records(&pipeline.api, dir.path()).await;
    cluster.stop();
    tokio::time::sleep(Duration::from_secs(3)).await;
    cluster.start_server();
    converges_and_stops(pipeline, dir.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_stopped_and_restarted_mid_sync() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = PgCluster::start();
    let tansu = tributary_broker::find_tansu(None).expect("tansu must be installed for this test");
    let port = free_port();
    let broker_dir = dir.path().join("broker");
    let broker = tributary_broker::LocalBroker::start(&tansu, &broker_dir, port)
        .await
        .unwrap();
    let address = broker.bootstrap_servers().to_string();
    let pipeline = start(dir.path(), &cluster.url(), Some(&address));
    wait_for_first_records(&pipeline.api, dir.path()).await;
    broker.stop(Duration::from_secs(5));
    tokio::time::sleep(Duration::from_secs(3)).await;
    let _broker = tributary_broker::LocalBroker::start(&tansu, &broker_dir, port)
        .await
        .unwrap();
    converges_and_stops(pipeline, dir.path()).await;
}
