#![allow(clippy::unwrap_used)] // a test stops at its first surprise
//! The fault-injection suite. Each test runs `tributary up` (sandbox source,
//! local broker, PostgreSQL store started by the test, search index), injects
//! one fault in mid-sync, lets the pipeline recover, and checks the invariant
//! against the source of truth, the sandbox's own records:
//!
//! - per company and data type the store holds exactly the source's current
//!   records, field for field (none lost, none extra);
//! - no event was applied twice: every sandbox row's `applies` counter is 1
//!   (with every generation visible at once, the source serves one version
//!   of each record, so a second apply could only be a repeat);
//! - the search index holds as many records as the store.
//!
//! Any difference fails the test with the numbers and the logs. With
//! `TRIBUTARY_FAULT_REPORT=<dir>` each test also writes its row of the
//! report table there: `infra/scripts/fault_report.sh` runs the suite that
//! way and writes docs/FAULTS.md.

mod common;

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;
use tributary_connector_sandbox::{Generator, SandboxSettings, SourceFailure};
use tributary_testkit::{PgCluster, free_port};

const COMPANIES: u32 = 2;

struct Setup {
    dir: PathBuf,
    config: PathBuf,
    api: String,
    /// The broker the pipeline uses.
    bootstrap: String,
    store_url: String,
    sandbox: SandboxSettings,
}

/// Writes the config of a pipeline with a PostgreSQL store at `store_url`,
/// the broker at `bootstrap` (a local one when `None`), and a sandbox source
/// that fails every `fail_every`-th request with `failure`.
fn configure(
    dir: &Path,
    store_url: &str,
    bootstrap: Option<&str>,
    fail_every: u32,
    failure: SourceFailure,
) -> Setup {
    let (broker, registry, api) = (free_port(), free_port(), free_port());
    let sandbox = SandboxSettings {
        fail_every,
        failure,
        ..all_at_once_sandbox(3, 80, 10)
    };
    let failure_name = serde_json::to_value(failure).unwrap();
    let config = dir.join("tributary.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {data:?}\nlog = \"info,librdkafka=warn\"\n\
             [kafka]\npartitions = 3\nbootstrap_servers = {bootstrap:?}\n[broker]\nport = {broker}\n[registry]\nport = {registry}\n\
             [api]\nlisten = \"127.0.0.1:{api}\"\n{API_KEYS_TOML}\n[store]\nurl = {store_url:?}\n\
             [sandbox]\ncompanies = {COMPANIES}\nrecords = {records}\ngenerations = 1\ngeneration_interval_secs = 0\nkinds = [\"accounting\"]\n\
             seed = {seed}\nepoch_ms = {epoch}\nmax_page_size = 10\nfail_every = {fail_every}\nfailure = {failure_name}\n\
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
    Setup {
        dir: dir.to_path_buf(),
        config,
        api: format!("http://127.0.0.1:{api}"),
        bootstrap: bootstrap.map_or_else(|| format!("127.0.0.1:{broker}"), str::to_string),
        store_url: store_url.to_string(),
        sandbox,
    }
}

/// `tributary up` with `env` added; its output goes to the test's log.
fn launch(setup: &Setup, env: &[(&str, &str)]) -> Proc {
    up(&setup.config, &setup.dir.join("tributary.log"), env)
}

async fn wait_for_first_records(setup: &Setup) {
    let started = Instant::now();
    while api_counts(&setup.api, &companies(COMPANIES))
        .await
        .values()
        .sum::<i64>()
        == 0
    {
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "no data arrived\n{}",
            logs(&setup.dir)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits for a process armed with a crash point to kill itself there.
async fn wait_for_crash(child: &mut Proc, setup: &Setup, point: &str) {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert_eq!(
                status.signal(),
                Some(libc::SIGKILL),
                "expected death by SIGKILL at {point}, got {status}\n{}",
                logs(&setup.dir)
            );
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "the pipeline never reached {point}\n{}",
            logs(&setup.dir)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the store holds the source's records, stops the pipeline,
/// checks the index, and fails loudly on any loss or duplicate. Writes the
/// report row when asked to.
async fn converges(mut child: Proc, setup: &Setup, fault: &str, done: &str) {
    wait_for_health(&setup.api, &setup.dir).await;
    let t = settled_tally(&setup.api, &setup.sandbox, COMPANIES, &setup.store_url).await;
    terminate(&mut child);
    let status = child.wait().unwrap();
    assert!(
        status.success(),
        "tributary up exited with {status}\n{}",
        logs(&setup.dir)
    );
    let (_, search) = tributary_index_tantivy::open(&setup.dir.join("data/index")).unwrap();
    let mut index_differs = Vec::new();
    for company in companies(COMPANIES) {
        let generator = Generator::new(setup.sandbox.clone(), &company);
        for data_type in generator.data_types() {
            let wanted = generator.expected_live(data_type, 1).len();
            let indexed = search.count(&company, data_type.as_str()).unwrap();
            if indexed != wanted {
                index_differs.push(format!(
                    "{company} {data_type}: {indexed} indexed, {wanted} at the source"
                ));
            }
        }
    }
    report(fault, done, &t);
    assert!(t.clean(), "{fault}: {t:?}\n{}", logs(&setup.dir));
    assert!(index_differs.is_empty(), "{fault}: {index_differs:?}");
}

/// A clean sandbox source and the local broker.
fn plain(dir: &Path, cluster: &PgCluster) -> Setup {
    configure(dir, &cluster.url(), None, 0, SourceFailure::default())
}

/// PostgreSQL (the store, and with `state_too` the workers' connections,
/// cursors and leases as well) crashes once records arrive, and comes back
/// 3 s later. An outage of the state shows as a stall, not as errors: state
/// calls wait (up to the pool's 30 s) for a new connection, then go on.
async fn postgres_crash_mid_sync(state_too: bool, fault: &str, done: &str) {
    let dir = tempfile::tempdir().unwrap();
    let cluster = PgCluster::start();
    let setup = plain(dir.path(), &cluster);
    if state_too {
        let mut config = std::fs::OpenOptions::new()
            .append(true)
            .open(&setup.config)
            .unwrap();
        std::io::Write::write_all(
            &mut config,
            format!(
                "[state]\nurl = {:?}\n[security]\ncredentials_key = \"{}\"\n",
                cluster.url(),
                "a7".repeat(32)
            )
            .as_bytes(),
        )
        .unwrap();
    }
    let child = launch(&setup, &[]);
    wait_for_first_records(&setup).await;
    cluster.stop();
    tokio::time::sleep(Duration::from_secs(3)).await;
    cluster.start_server();
    converges(child, &setup, fault, done).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stopped_and_restarted_mid_sync() {
    postgres_crash_mid_sync(
        false,
        "PostgreSQL stopped and restarted",
        "`pg_ctl stop -m immediate` (a crash) once records arrive, restarted 3 s later",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_holding_the_workers_state_stopped_and_restarted_mid_sync() {
    postgres_crash_mid_sync(
        true,
        "PostgreSQL holding the workers' state stopped and restarted",
        "store and workers' state (connections, cursors, leases) in one PostgreSQL, crashed (`pg_ctl stop -m immediate`) once records arrive, restarted 3 s later",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_and_schema_incompatible_messages_mid_sync() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = PgCluster::start();
    let setup = plain(dir.path(), &cluster);
    let child = launch(&setup, &[]);
    wait_for_first_records(&setup).await;
    send_bad_messages(&setup.bootstrap, 3).await;
    // The projector sets all three aside once, for both projections (and
    // goes on past them).
    let started = Instant::now();
    while dead_lettered(&setup.api, "decode").await < 3.0 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the bad messages were not dead-lettered\n{}",
            logs(&setup.dir)
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    converges(
        child,
        &setup,
        "Poison and schema-incompatible messages",
        "once records arrive, 3 bad messages in an invoices partition: not Avro, an unknown schema id, a customer event (another schema); the projector dead-letters the 3 (once for the store and the index) and goes on",
    )
    .await;
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
    let setup = configure(
        dir.path(),
        &cluster.url(),
        Some(&address),
        0,
        SourceFailure::default(),
    );
    let child = launch(&setup, &[]);
    wait_for_first_records(&setup).await;
    broker.stop(Duration::from_secs(5));
    tokio::time::sleep(Duration::from_secs(3)).await;
    let _broker = tributary_broker::LocalBroker::start(&tansu, &broker_dir, port)
        .await
        .unwrap();
    converges(
        child,
        &setup,
        "Broker stopped and restarted",
        "broker stopped (SIGTERM) once records arrive, restarted 3 s later",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_sync() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = PgCluster::start();
    let setup = plain(dir.path(), &cluster);
    let mut child = launch(&setup, &[]);
    wait_for_first_records(&setup).await;
    child.kill().unwrap();
    child.wait().unwrap();
    let child = launch(&setup, &[]);
    converges(
        child,
        &setup,
        "kill -9 mid-sync",
        "SIGKILL to `tributary up` (workers and projectors) once records arrive, then restarted",
    )
    .await;
}

/// A resync of one company's invoices, asked for over the API once the
/// store holds everything, is killed (SIGKILL) right after its 3rd page
/// was published, before that page's cursor was saved. After the restart the interrupted run is
/// closed as failed and a run resuming it finishes the resync from its
/// cursor: every invoice of that company ends at revision 1, applied once
/// per revision, and nothing else moves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_resync() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = PgCluster::start();
    let setup = plain(dir.path(), &cluster);
    let point = "worker.resync_after_publish";
    let mut child = launch(&setup, &[("TRIBUTARY_CRASH_AT", &format!("{point}:3"))]);
    wait_for_health(&setup.api, &setup.dir).await;
    let t = settled_tally(&setup.api, &setup.sandbox, COMPANIES, &setup.store_url).await;
    assert!(t.clean(), "before the resync: {t:?}\n{}", logs(&setup.dir));
    let company = &companies(COMPANIES)[0];
    let syncs = format!("{}/v1/companies/{company}/syncs", setup.api);
    let queued = ask_sync(
        &setup.api,
        company,
        serde_json::json!({"data_types": ["invoices"], "resync": true}),
    )
    .await;
    let run_id = queued["runs"][0]["id"].as_str().unwrap().to_string();
    wait_for_crash(&mut child, &setup, point).await;
    let child = launch(&setup, &[]);
    // The interrupted run is closed, and a run resuming it succeeds.
    let started = Instant::now();
    loop {
        let listed = get(&format!("{syncs}?trigger=resync")).await;
        let runs = listed
            .as_ref()
            .and_then(|l| l["runs"].as_array().cloned())
            .unwrap_or_default();
        let resumed = runs
            .iter()
            .find(|r| r["resumed_from"] == run_id.as_str() && r["status"] == "succeeded");
        if let Some(resumed) = resumed {
            let first = runs.iter().find(|r| r["id"] == run_id.as_str()).unwrap();
            assert_eq!(first["status"], "failed", "{first}");
            assert!(
                first["error"].as_str().unwrap().contains("interrupted"),
                "{first}"
            );
            assert!(
                resumed["records_fetched"].as_i64().unwrap() > 0,
                "{resumed}"
            );
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "no resumed resync succeeded: {listed:?}\n{}",
            logs(&setup.dir)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let invoices = format!(
        "{}/v1/companies/{company}/data/invoices?limit=1000",
        setup.api
    );
    let started = Instant::now();
    loop {
        let page = get(&invoices).await.unwrap();
        let records = page["records"].as_array().unwrap();
        if !records.is_empty() && records.iter().all(|r| r["revision"] == 1) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "not every invoice of {company} reached revision 1: {page}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    converges(
        child,
        &setup,
        "kill -9 mid-resync",
        "resync of one company's invoices asked over the API; SIGKILL after its 3rd page was published, before its cursor was saved; restarted",
    )
    .await;
}

/// Arms `point` to kill the pipeline the `n`-th time it gets there, waits
/// for that, restarts it unarmed and checks the invariant.
async fn crash_at(point: &str, n: u32, fault: &str, done: &str) {
    let dir = tempfile::tempdir().unwrap();
    let cluster = PgCluster::start();
    let setup = plain(dir.path(), &cluster);
    let armed = format!("{point}:{n}");
    let mut child = launch(&setup, &[("TRIBUTARY_CRASH_AT", &armed)]);
    wait_for_crash(&mut child, &setup, point).await;
    let child = launch(&setup, &[]);
    converges(child, &setup, fault, done).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_just_before_the_store_commits() {
    crash_at(
        "store.before_commit",
        3,
        "kill -9 just before a store commit",
        "SIGKILL inside the 3rd store transaction, rows and checkpoint written, before COMMIT",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_just_after_the_store_commits() {
    crash_at(
        "store.after_commit",
        3,
        "kill -9 just after a store commit",
        "SIGKILL right after the 3rd store COMMIT, before the projector reads on",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_just_after_the_index_commits() {
    crash_at(
        "index.after_commit",
        3,
        "kill -9 just after an index commit",
        "SIGKILL right after the 3rd search index commit",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_between_publish_and_cursor() {
    crash_at(
        "worker.after_publish",
        4,
        "kill -9 between publish and cursor save",
        "SIGKILL after the 4th page's events were acknowledged, before its cursor was saved",
    )
    .await;
}

async fn source_fails(every: u32, failure: SourceFailure, fault: &str, done: &str) {
    let dir = tempfile::tempdir().unwrap();
    let cluster = PgCluster::start();
    let setup = configure(dir.path(), &cluster.url(), None, every, failure);
    let child = launch(&setup, &[]);
    converges(child, &setup, fault, done).await;
    let log = std::fs::read_to_string(dir.path().join("tributary.log")).unwrap();
    assert!(
        log.contains("(injected)"),
        "the source never failed: the test proved nothing\n{}",
        logs(dir.path())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_answers_429() {
    source_fails(
        3,
        SourceFailure::RateLimited,
        "Source answers 429",
        "every 3rd page request answered 429 with Retry-After: 1",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_answers_500() {
    source_fails(
        3,
        SourceFailure::ServerError,
        "Source answers 500",
        "every 3rd page request answered 500",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_times_out() {
    source_fails(
        4,
        SourceFailure::Timeout,
        "Source times out",
        "every 4th page request unanswered for 2 s, then given up",
    )
    .await;
}
