#![allow(clippy::unwrap_used)] // a test stops at its first surprise
//! Scale-out through the real binary and broker: store projector processes
//! sharing the partitions of a PostgreSQL store in one consumer group, and
//! connector workers in several processes sharing the connections through
//! leases in a PostgreSQL state store.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use tributary_testkit::{PgCluster, free_port};

const COMPANIES: u32 = 6;

fn spawn(dir: &Path, name: &str, config: &str) -> Proc {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, config).unwrap();
    up(&path, &dir.join(format!("{name}.log")), &[])
}

/// Whether `name`'s log shows it was given at least one partition.
fn was_assigned_partitions(dir: &Path, name: &str) -> bool {
    let text = std::fs::read_to_string(dir.join(format!("{name}.log"))).unwrap_or_default();
    text.lines()
        .filter(|l| l.contains("partitions assigned"))
        .any(|l| {
            l.split("count=")
                .nth(1)
                .and_then(|r| r.split_whitespace().next())
                .is_some_and(|n| n != "0")
        })
}

// Tansu's group coordinator panicked under load here before the local
// broker indexed its header table (each fetch then took seconds, heartbeats
// piled up); since then this passed every run (7 of 7, two of them while
// a release build competed for the 2 cores).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_projectors_share_partitions_and_survive_a_rebalance() {
    let cluster = PgCluster::start();
    let dir = tempfile::tempdir().unwrap();
    let (broker, registry, api) = (free_port(), free_port(), free_port());
    let sandbox = all_at_once_sandbox(5, 300, 25);
    let common_config = format!(
        "log = \"info,librdkafka=warn\"\n[store]\nurl = {url:?}\n[projector]\nbatch_size = 100\nlinger_ms = 50\nconsumer_group = true\n",
        url = cluster.url()
    );
    // The pipeline's home: broker, registry, workers, index and API; no store projector.
    let mut main = spawn(
        dir.path(),
        "main",
        &format!(
            "data_dir = {data:?}\n{common_config}\
             [kafka]\npartitions = 6\n[broker]\nport = {broker}\n[registry]\nport = {registry}\n\
             [api]\nlisten = \"127.0.0.1:{api}\"\n{API_KEYS_TOML}\n\
             [sandbox]\ncompanies = {COMPANIES}\nrecords = {records}\ngenerations = 1\ngeneration_interval_secs = 0\nkinds = [\"accounting\"]\n\
             seed = {seed}\nepoch_ms = {epoch}\nmax_page_size = 25\n\
             [sync]\ninterval_secs = 2\npage_size = 25\n\
             [roles]\nstore_projector = false\n",
            data = dir.path().join("main"),
            records = sandbox.records,
            seed = sandbox.seed,
            epoch = sandbox.epoch_ms,
        ),
    );
    let api = format!("http://127.0.0.1:{api}");
    wait_for_health(&api, dir.path()).await;
    // Store projectors only, pointed at the same broker, registry and store.
    let projector = |name: &str| {
        spawn(
            dir.path(),
            name,
            &format!(
                "data_dir = {data:?}\n{common_config}\
                 [kafka]\nbootstrap_servers = \"127.0.0.1:{broker}\"\n[registry]\nurl = \"http://127.0.0.1:{registry}\"\n\
                 [sandbox]\nenabled = false\n\
                 [roles]\nworkers = false\nindex_projector = false\napi = false\ndispatcher = false\n",
                data = dir.path().join(name),
            ),
        )
    };
    let mut p1 = projector("p1");
    let mut p2 = projector("p2");
    let mut p3 = projector("p3");

    // Once data flows, kill one (its partitions move to the others), and
    // add another (the group rebalances again).
    let names = companies(COMPANIES);
    let started = Instant::now();
    while api_counts(&api, &names).await.values().sum::<i64>() == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "no data reached the store\n{}",
            logs(dir.path())
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    p2.kill().unwrap();
    p2.wait().unwrap();
    // Past p2's session timeout (6 s): Tansu drops a dead member then, but
    // only moves its partitions at the next join (Kafka moves them at once),
    // which p4 provides.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let mut p4 = projector("p4");

    let t = settled_tally(&api, &sandbox, COMPANIES, &cluster.url()).await;
    let shared = ["p1", "p2", "p3", "p4"]
        .iter()
        .filter(|n| was_assigned_partitions(dir.path(), n))
        .count();
    assert!(
        shared >= 2,
        "the partitions were not shared between processes\n{}",
        logs(dir.path())
    );

    // Rebalances re-deliver; the checkpoints make sure nothing is applied twice.
    report(
        "Rebalance mid-batch",
        "3 store projector processes in one consumer group; one SIGKILLed once records arrive, a 4th joins 8 s later (6 companies, 300 records per data type)",
        &t,
    );
    assert!(t.clean(), "{t:?}\n{}", logs(dir.path()));

    for child in [&mut p1, &mut p3, &mut p4, &mut main] {
        terminate(child);
        let status = child.wait().unwrap();
        assert!(
            status.success(),
            "a process exited with {status}\n{}",
            logs(dir.path())
        );
    }
}

/// The connections `owner` holds a live lease on, by the database's clock.
async fn leases_held(url: &str, owner: &str) -> Vec<String> {
    use sqlx::Connection;
    let mut db = sqlx::PgConnection::connect(url).await.unwrap();
    let held: Vec<(String,)> = sqlx::query_as(
        "SELECT connection_id FROM tributary_state.sync_leases WHERE owner = $1 \
         AND expires_at > (EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT ORDER BY 1",
    )
    .bind(owner)
    .fetch_all(&mut db)
    .await
    .unwrap_or_default();
    db.close().await.unwrap();
    held.into_iter().map(|(id,)| id).collect()
}

/// The newest sync request in the state store (ms since the epoch).
async fn requested_syncs(url: &str) -> i64 {
    use sqlx::Connection;
    let mut db = sqlx::PgConnection::connect(url).await.unwrap();
    let (newest,): (i64,) = sqlx::query_as(
        "SELECT COALESCE(MAX(requested_at), 0)::BIGINT FROM tributary_state.sync_leases",
    )
    .fetch_one(&mut db)
    .await
    .unwrap();
    db.close().await.unwrap();
    newest
}

/// The connections `name`'s log says it leased.
fn leased_in_log(dir: &Path, name: &str) -> std::collections::BTreeSet<String> {
    let text = std::fs::read_to_string(dir.join(format!("{name}.log"))).unwrap_or_default();
    text.lines()
        .filter(|l| l.contains("leased"))
        .filter_map(|l| l.split("connection=").nth(1))
        .filter_map(|r| r.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_share_connections_and_take_over_a_dead_ones() {
    const COMPANIES: u32 = 6;
    let cluster = PgCluster::start();
    let url = cluster.url();
    let dir = tempfile::tempdir().unwrap();
    let (broker, registry, api) = (free_port(), free_port(), free_port());
    let sandbox = all_at_once_sandbox(9, 200, 20);
    // Broker, registry, store (PostgreSQL), index and API; no workers, but
    // the workers' state, to manage connections and ask for syncs.
    let mut main = spawn(
        dir.path(),
        "main",
        &format!(
            "data_dir = {data:?}\nlog = \"info,librdkafka=warn\"\n[store]\nurl = {url:?}\n\
             [projector]\nbatch_size = 100\nlinger_ms = 50\n\
             [kafka]\npartitions = 4\n[broker]\nport = {broker}\n[registry]\nport = {registry}\n\
             [api]\nlisten = \"127.0.0.1:{api}\"\n{API_KEYS_TOML}\n\
             [state]\nurl = {url:?}\n[security]\ncredentials_key = \"{key}\"\n\
             [roles]\nworkers = false\n",
            data = dir.path().join("main"),
            key = "5f".repeat(32),
        ),
    );
    let api = format!("http://127.0.0.1:{api}");
    wait_for_health(&api, dir.path()).await;
    // Workers only, sharing a state store in the store's database, with the
    // same sandbox settings (each adds the same connections; the first wins).
    let worker = |name: &str| {
        spawn(
            dir.path(),
            name,
            &format!(
                "data_dir = {data:?}\nlog = \"info,librdkafka=warn,tributary_producer::worker=debug\"\n\
                 [kafka]\nbootstrap_servers = \"127.0.0.1:{broker}\"\n[registry]\nurl = \"http://127.0.0.1:{registry}\"\n\
                 [state]\nurl = {url:?}\n\
                 [security]\ncredentials_key = \"{key}\"\n\
                 [sandbox]\ncompanies = {COMPANIES}\nrecords = {records}\ngenerations = 1\ngeneration_interval_secs = 0\nkinds = [\"accounting\"]\n\
                 seed = {seed}\nepoch_ms = {epoch}\nmax_page_size = 20\n\
                 [sync]\ninterval_secs = 1\npage_size = 20\nconcurrency = 2\nlease_secs = 2\nworker_id = \"{name}\"\n\
                 [roles]\nstore_projector = false\nindex_projector = false\napi = false\ndispatcher = false\n",
                data = dir.path().join(name),
                key = "5f".repeat(32),
                records = sandbox.records,
                seed = sandbox.seed,
                epoch = sandbox.epoch_ms,
            ),
        )
    };
    let mut doomed = worker("w2");
    // As soon as it holds a connection, the first worker dies mid-sync.
    let started = Instant::now();
    let held = loop {
        let held = leases_held(&url, "w2").await;
        if !held.is_empty() {
            break held;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "w2 never leased a connection\n{}",
            logs(dir.path())
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    doomed.kill().unwrap();
    doomed.wait().unwrap();
    let mut w1 = worker("w1");
    let mut w3 = worker("w3");

    let names = companies(COMPANIES);
    let expected = expected_counts(&sandbox, &names, 1);
    let killed_mid_sync = api_counts(&api, &names).await;
    for connection in &held {
        let company = connection.replace("conn-", "");
        let have: i64 = killed_mid_sync
            .iter()
            .filter(|((c, _), _)| *c == company)
            .map(|(_, n)| n)
            .sum();
        let want: i64 = expected
            .iter()
            .filter(|((c, _), _)| *c == company)
            .map(|(_, n)| n)
            .sum();
        assert!(
            have < want,
            "{connection} was complete when w2 died ({have} of {want}): not a mid-sync kill"
        );
    }
    let t = settled_tally(&api, &sandbox, COMPANIES, &url).await;

    // The dead worker's connections were finished by the others, and both
    // of them had a share of the work.
    let (by_w1, by_w3) = (
        leased_in_log(dir.path(), "w1"),
        leased_in_log(dir.path(), "w3"),
    );
    for connection in &held {
        assert!(
            by_w1.contains(connection) || by_w3.contains(connection),
            "no worker took over {connection} from w2\n{}",
            logs(dir.path())
        );
    }
    assert!(
        !by_w1.is_empty() && !by_w3.is_empty(),
        "the connections were not shared: w1 {by_w1:?}, w3 {by_w3:?}"
    );
    report(
        "kill -9 of a connector worker process",
        "3 worker processes sharing a PostgreSQL state; one SIGKILLed as soon as it held a connection, which the others took over when its 2 s lease expired (6 companies, 200 records per data type)",
        &t,
    );
    assert!(t.clean(), "{t:?}\n{}", logs(dir.path()));

    // The API, with no worker in its process, lists the connections the
    // workers share and asks all of them for a sync through the state.
    let listed = get(&format!("{api}/v1/connections")).await.unwrap();
    assert_eq!(
        listed["connections"].as_array().map(Vec::len),
        Some(COMPANIES as usize),
        "{listed}"
    );
    let before = requested_syncs(&url).await;
    let response = tributary_testkit::http()
        .post(format!("{api}/v1/sync"))
        .bearer_auth(API_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let started = Instant::now();
    while requested_syncs(&url).await <= before {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the sync request did not reach the state store"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    for child in [&mut w1, &mut w3, &mut main] {
        terminate(child);
        let status = child.wait().unwrap();
        assert!(
            status.success(),
            "a process exited with {status}\n{}",
            logs(dir.path())
        );
    }
    // Stopped cleanly, the workers left no lease behind.
    for name in ["w1", "w3"] {
        assert!(
            leases_held(&url, name).await.is_empty(),
            "{name} kept a lease"
        );
    }
}
