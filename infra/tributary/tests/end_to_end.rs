#![allow(clippy::unwrap_used)] // a test stops at its first surprise
//! End to end through the real binary, a real Kafka-protocol broker (Tansu,
//! which `.ci/run` installs) and the embedded registry.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use tributary_connector_sandbox::{Generator, SandboxSettings};
use tributary_schemas::{DataType, Record, Timestamp};

mod common;

use common::*;

const COMPANIES: [&str; 2] = ["sandbox-001", "sandbox-002"];

use tributary_testkit::free_port;

/// Records per company and data type, as the API counts them.
type Counts = std::collections::BTreeMap<(String, String), i64>;

struct Setup {
    dir: tempfile::TempDir,
    config: PathBuf,
    api: String,
    bootstrap: String,
    registry: String,
    sandbox: SandboxSettings,
}

fn setup(store_url: Option<&str>, hard_deletes: bool) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let (broker, registry, api) = (free_port(), free_port(), free_port());
    let epoch_ms = Timestamp::now().millis();
    let sandbox = SandboxSettings {
        seed: 11,
        records: 40,
        generations: 2,
        generation_interval_secs: 8,
        epoch_ms,
        max_page_size: 5,
        fail_every: 0,
        failure: Default::default(),
        hard_deletes,
        kinds: tributary_connector_sandbox::all_kinds(),
    };
    let config = dir.path().join("tributary.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {data:?}\nlog = \"info,librdkafka=warn\"\n\
             [kafka]\npartitions = 3\n\
             [broker]\nport = {broker}\n\
             [registry]\nport = {registry}\n\
             [api]\nlisten = \"127.0.0.1:{api}\"\n{API_KEYS_TOML}\n\
             [sandbox]\ncompanies = 2\nrecords = {records}\ngenerations = {generations}\n\
             generation_interval_secs = {interval}\nseed = {seed}\nepoch_ms = {epoch_ms}\nmax_page_size = {page}\nhard_deletes = {hard_deletes}\n\
             [sync]\ninterval_secs = 1\npage_size = 5\n\
             [projector]\nbatch_size = 50\nlinger_ms = 50\n\
             [store]\nurl = {store:?}\n",
            data = dir.path().join("data"),
            records = sandbox.records,
            generations = sandbox.generations,
            interval = sandbox.generation_interval_secs,
            seed = sandbox.seed,
            page = sandbox.max_page_size,
            store = store_url.unwrap_or_default(),
        ),
    )
    .unwrap();
    Setup {
        config,
        api: format!("http://127.0.0.1:{api}"),
        bootstrap: format!("127.0.0.1:{broker}"),
        registry: format!("http://127.0.0.1:{registry}"),
        sandbox,
        dir,
    }
}

fn start(setup: &Setup, run: u32) -> Proc {
    up(
        &setup.config,
        &setup.dir.path().join(format!("up-{run}.log")),
        &[],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_store_survives_kill_9_and_standard_clients_read_the_topics() {
    end_to_end(None, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_store_survives_kill_9() {
    let cluster = tributary_testkit::PgCluster::start();
    end_to_end(Some(&cluster.url()), false).await;
}

/// A source that deletes records for good (they vanish from its feed, as
/// Xero's items do): incremental syncs cannot see it, so the deleted
/// records linger in the store until a reconciliation, asked for over the
/// API, finds them gone: then each becomes a tombstone (in the store, the
/// index and the topic), the counts and contents equal the source's, and
/// the sinks match the manifests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hard_deletes_become_tombstones_after_a_reconciliation() {
    let setup = setup(None, true);
    let api = setup.api.clone();
    let generations = setup.sandbox.generations;
    let expected = expected_counts(&setup.sandbox, &companies(2), generations);
    let mut child = start(&setup, 1);
    // Past the last generation, the store holds every live record, and
    // the ones deleted since they were synced linger.
    let last_generation_at = setup.sandbox.epoch_ms
        + i64::from(generations) * setup.sandbox.generation_interval_secs as i64 * 1000;
    // Settled: every live record there, and the counts unchanged for 3 s
    // (records synced before their deletion may still be on their way to
    // the store; counting before they land undercounts the lingering).
    let started = Instant::now();
    let mut last: Option<(Counts, Instant)> = None;
    let lingering = loop {
        let counts = api_counts(&api, &companies(2)).await;
        let complete = Timestamp::now().millis() > last_generation_at + 3_000
            && expected
                .iter()
                .all(|(k, n)| counts.get(k).is_some_and(|c| c >= n));
        let steady_since = match &last {
            Some((before, since)) if *before == counts => *since,
            _ => Instant::now(),
        };
        if complete && steady_since.elapsed() >= Duration::from_secs(3) {
            break expected.iter().map(|(k, n)| counts[k] - n).sum::<i64>();
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "the store never held every live record, or kept changing: {counts:?}\n{}",
            logs(setup.dir.path())
        );
        last = Some((counts, steady_since));
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        lingering > 0,
        "the source deleted no record the store had: the test proves nothing"
    );
    let mut run_ids = Vec::new();
    for company in companies(2) {
        let queued = ask_sync(&api, &company, serde_json::json!({"reconcile": true})).await;
        for run in queued["runs"].as_array().unwrap() {
            run_ids.push((company.clone(), run["id"].as_str().unwrap().to_string()));
        }
    }
    wait_for_counts(
        &api,
        &companies(2),
        &expected,
        Duration::from_secs(90),
        setup.dir.path(),
    )
    .await;
    wait_for_contents(
        &api,
        &setup.sandbox,
        &companies(2),
        generations,
        Duration::from_secs(60),
        setup.dir.path(),
    )
    .await;
    manifests_match(&api, setup.dir.path()).await;
    // The reconciliations' history counts the tombstones.
    let mut deleted = 0;
    for (company, id) in &run_ids {
        let run = get(&format!("{api}/v1/companies/{company}/syncs/{id}"))
            .await
            .unwrap();
        assert_eq!(run["status"], "succeeded", "{run}");
        assert_eq!(run["trigger"], "reconcile", "{run}");
        deleted += run["records_deleted"].as_i64().unwrap();
    }
    assert_eq!(deleted, lingering, "one tombstone per lingering record");
    terminate(&mut child);
    assert!(child.wait().unwrap().success());
}

/// Sandbox data through the real broker into the store (SQLite, or
/// PostgreSQL at `store_url`) and the index, with a `kill -9` in mid-sync.
async fn end_to_end(store_url: Option<&str>, check_standard_clients: bool) {
    let setup = setup(store_url, false);
    let api = setup.api.clone();
    let final_generation = setup.sandbox.generations;
    let expected = expected_counts(&setup.sandbox, &companies(2), final_generation);
    let expected_total: i64 = expected.values().sum();

    // First run: kill -9 as soon as data starts arriving, in mid-sync.
    let mut child = start(&setup, 1);
    let started = Instant::now();
    let at_kill = loop {
        let counts = api_counts(&api, &companies(2)).await;
        let total: i64 = counts.values().sum();
        if total > 0 {
            break total;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no data within 60s\n{}",
            logs(setup.dir.path())
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        at_kill < expected_total,
        "killed after the sync had finished ({at_kill} of {expected_total}): not mid-sync"
    );
    wait_port_free(&setup.bootstrap);

    // Second run: it must converge to exactly the source's records.
    let mut child = start(&setup, 2);
    wait_for_counts(
        &api,
        &companies(2),
        &expected,
        Duration::from_secs(120),
        setup.dir.path(),
    )
    .await;

    // Contents equal the source's, field for field.
    wait_for_contents(
        &api,
        &setup.sandbox,
        &companies(2),
        final_generation,
        Duration::from_secs(60),
        setup.dir.path(),
    )
    .await;

    wait_for_index(
        &api,
        &companies(2),
        Duration::from_secs(60),
        setup.dir.path(),
    )
    .await;

    manifests_match(&api, setup.dir.path()).await;

    // Full-text search finds an invoice by number and by customer name.
    let generator = Generator::new(setup.sandbox.clone(), COMPANIES[0]);
    let invoice = generator
        .expected_live(DataType::Invoice, final_generation)
        .remove(0);
    let Record::Invoice(inv) = &invoice.record else {
        panic!("not an invoice")
    };
    let by_number = get(&format!(
        "{api}/v1/search?q={}&company={}&data_type=invoices",
        inv.number, COMPANIES[0]
    ))
    .await
    .unwrap();
    assert_eq!(by_number["hits"][0]["id"], inv.id.as_str(), "{by_number}");
    let name = inv.customer_name.clone().unwrap();
    let by_name = get(&format!(
        "{api}/v1/search?q={}&company={}&data_type=invoices",
        name.replace(' ', "+"),
        COMPANIES[0]
    ))
    .await
    .unwrap();
    let ids: Vec<&str> = by_name["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["id"].as_str().unwrap())
        .collect();
    assert!(
        ids.contains(&inv.id.as_str()),
        "search for {name:?} found {ids:?}"
    );
    let other_company = get(&format!(
        "{api}/v1/search?q={}&company={}",
        inv.number, COMPANIES[1]
    ))
    .await
    .unwrap();
    assert!(
        other_company["hits"]
            .as_array()
            .unwrap()
            .iter()
            .all(|h| h["company_id"] == COMPANIES[1])
    );

    // Status shows the last successful sync per data type.
    let status = get(&format!("{api}/v1/companies/{}/status", COMPANIES[0]))
        .await
        .unwrap();
    let invoices = status["data_types"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["data_type"] == "invoices")
        .unwrap();
    assert_eq!(invoices["syncs"][0]["last_status"], "succeeded");
    assert!(invoices["syncs"][0]["last_success_at"].is_string());
    let metrics = reqwest::get(format!("{api}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("tributary_projector_records_projected_total"),
        "{metrics}"
    );

    resync_keeps_serving_and_replaces_every_record(&setup, &expected).await;

    older_and_newer_schema_versions_reach_every_sink(&setup).await;

    // A standard Kafka client with a standard registry client decodes every
    // event, those written with the older and newer schema included.
    if check_standard_clients {
        let all: Vec<&str> = setup
            .sandbox
            .kinds
            .iter()
            .flat_map(|k| k.data_types().iter().map(|t| t.as_str()))
            .collect();
        let report = read_topics(&setup.bootstrap, &setup.registry, Some(&all.join(",")));
        for data_type in Generator::new(setup.sandbox.clone(), "any").data_types() {
            assert!(
                report["decoded"][data_type.topic()].as_i64().unwrap() > 0,
                "{report}"
            );
        }
        assert_eq!(
            report["decoded"], report["messages"],
            "every message decoded: {report}"
        );
    }

    if store_url.is_some() {
        store_refusals_go_to_dead_letters(&setup).await;
    }

    if check_standard_clients {
        poison_messages_go_to_dead_letters_and_replay(&setup).await;
        assert_eq!(
            api_counts(&api, &companies(2)).await,
            expected,
            "poison messages changed nothing in the store"
        );
    }

    // A clean stop, then the search index agrees with the store.
    terminate(&mut child);
    let status = child.wait().unwrap();
    assert!(
        status.success(),
        "tributary up exited with {status}\n{}",
        logs(setup.dir.path())
    );
    let (_, search) = tributary_index_tantivy::open(&setup.dir.path().join("data/index")).unwrap();
    for ((company, data_type), n) in &expected {
        assert_eq!(
            search.count(company, data_type).unwrap() as i64,
            *n,
            "index count of {company} {data_type}"
        );
    }
}

/// Every data type of every company has a manifest (the first syncs paged
/// from the start: full passes), and the store (count and digest) and the
/// index (count) come to match it.
async fn manifests_match(api: &str, dir: &Path) {
    let started = Instant::now();
    loop {
        let mut pending = Vec::new();
        for company in companies(2) {
            let status = get(&format!("{api}/v1/companies/{company}/status"))
                .await
                .unwrap();
            for entry in status["data_types"].as_array().unwrap() {
                let data_type = entry["data_type"].as_str().unwrap();
                if !tributary_connector_sandbox::all_kinds()
                    .iter()
                    .any(|k| k.data_types().iter().any(|t| t.as_str() == data_type))
                {
                    continue;
                }
                let m = &entry["manifest"];
                if m["store_matches"] != true || m["index_matches"] != true {
                    pending.push(format!(
                        "{company} {data_type}: {m} (store holds {})",
                        entry["records"]
                    ));
                }
            }
        }
        if pending.is_empty() {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the sinks do not match the manifests: {pending:#?}\n{}",
            logs(dir)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A resync of one company's invoices over the API: it fetches them all
/// again while the API keeps answering with no dip in the counts, its run
/// shows every state, and every invoice in the store then carries the new
/// revision. The other company's invoices stay as they were.
async fn resync_keeps_serving_and_replaces_every_record(
    setup: &Setup,
    expected: &std::collections::BTreeMap<(String, String), i64>,
) {
    let api = &setup.api;
    let company = COMPANIES[0];
    let syncs = format!("{api}/v1/companies/{company}/syncs");
    let queued = ask_sync(
        api,
        company,
        serde_json::json!({"data_types": ["invoices"], "resync": true}),
    )
    .await;
    let run_id = queued["runs"][0]["id"].as_str().unwrap().to_string();
    let key = (company.to_string(), "invoices".to_string());
    let started = Instant::now();
    let run = loop {
        let counts = api_counts(api, &companies(2)).await;
        assert_eq!(counts, *expected, "the counts moved during the resync");
        let run = get(&format!("{syncs}/{run_id}")).await.unwrap();
        if run["status"] == "succeeded" {
            break run;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60) && run["status"] != "failed",
            "the resync did not succeed: {run}\n{}",
            logs(setup.dir.path())
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(run["trigger"], "resync");
    let states: Vec<&str> = run["states"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["state"].as_str().unwrap())
        .collect();
    assert_eq!(
        states,
        ["queued", "fetching", "publishing", "succeeded"],
        "{run}"
    );
    assert!(
        run["records_fetched"].as_i64().unwrap() >= expected[&key],
        "a resync fetches every invoice again: {run}"
    );
    let listed = get(&format!("{syncs}?trigger=resync")).await.unwrap();
    assert_eq!(listed["runs"][0]["id"], run_id.as_str(), "{listed}");
    // A resync is a full pass: the manifest is of the new revision, and the
    // sinks match it once they have applied the resync.
    manifests_match(api, setup.dir.path()).await;
    // The store takes the resync's versions: every invoice at revision 1,
    // the other company's at 0.
    let started = Instant::now();
    for (company, revision) in [(COMPANIES[0], 1), (COMPANIES[1], 0)] {
        loop {
            let page = get(&format!(
                "{api}/v1/companies/{company}/data/invoices?limit=1000"
            ))
            .await
            .unwrap();
            let records = page["records"].as_array().unwrap();
            if records.iter().all(|r| r["revision"] == revision) {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "{company}'s invoices are not all at revision {revision}: {page}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Customers written under an older and a newer compatible version of
/// their schema (registered beside this build's) reach the store and the
/// index as this build's type: the older one's missing revision filled
/// with its default, the newer one's extra fields skipped.
async fn older_and_newer_schema_versions_reach_every_sink(setup: &Setup) {
    use rdkafka::ClientConfig;
    use rdkafka::producer::{FutureProducer, FutureRecord};
    use tributary_testkit::schema_versions::{customer, newer, newer_extra, older, register, wire};

    let company = "evolved";
    let subject = format!("{}-value", DataType::Customer.topic());
    let old_id = register(&setup.registry, &subject, &older()).await.unwrap();
    let new_id = register(&setup.registry, &subject, &newer()).await.unwrap();
    let mut old = customer("c-old", 0);
    let mut new = customer("c-new", 0);
    old.company_id = company.into();
    new.company_id = company.into();
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &setup.bootstrap)
        .create()
        .unwrap();
    for payload in [
        wire(&older(), old_id, &old, &[]),
        wire(&newer(), new_id, &new, &newer_extra()),
    ] {
        producer
            .send(
                FutureRecord::to(&DataType::Customer.topic())
                    .key(company)
                    .payload(&payload),
                Duration::from_secs(10),
            )
            .await
            .unwrap();
    }
    let one = |id: &str| format!("{}/v1/companies/{company}/data/customers/{id}", setup.api);
    let started = Instant::now();
    for event in [&old, &new] {
        let stored = loop {
            if let Some(found) = get(&one(&event.source_record_id)).await {
                break found;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "{} (schema {}) never reached the store\n{}",
                event.source_record_id,
                if event.source_record_id == "c-old" {
                    "older"
                } else {
                    "newer"
                },
                logs(setup.dir.path())
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        let expected = serde_json::to_value(&event.record).unwrap();
        assert_eq!(stored["data"], expected, "{stored}");
        assert_eq!(stored["revision"], 0, "{stored}");
    }
    loop {
        let hits = get(&format!(
            "{}/v1/search?q=example.com&company={company}",
            setup.api
        ))
        .await
        .unwrap();
        if hits["hits"].as_array().unwrap().len() == 2 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the index holds {hits} of the two versions' customers"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Runs `tributary` with the test's config and `args`; (success, stdout, stderr).
fn tributary(setup: &Setup, args: &[&str]) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_tributary"))
        .args(["--config", setup.config.to_str().unwrap()])
        .args(args)
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).to_string(),
        String::from_utf8_lossy(&output.stderr).to_string(),
    )
}

/// Dead letters listed by `tributary dlq list`, one row of columns each.
fn dead_letter_rows(setup: &Setup) -> Vec<Vec<String>> {
    let (ok, stdout, stderr) = tributary(setup, &["dlq", "list"]);
    assert!(ok, "dlq list failed: {stderr}");
    stdout
        .lines()
        .skip(1)
        .map(|l| l.split('\t').map(str::to_string).collect())
        .collect()
}

async fn wait_for_dead_letters(setup: &Setup, n: usize) -> Vec<Vec<String>> {
    let started = Instant::now();
    loop {
        let rows = dead_letter_rows(setup);
        if rows.len() >= n {
            assert_eq!(rows.len(), n, "{rows:?}");
            return rows;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "expected {n} dead letters, found {rows:?}\n{}",
            logs(setup.dir.path())
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Three bad messages on the invoices topic: not Avro at all, an unknown
/// schema id, and a customer event (valid Avro, wrong type for the topic).
async fn poison_messages_go_to_dead_letters_and_replay(setup: &Setup) {
    send_bad_messages(&setup.bootstrap, 3).await;
    let invoices = DataType::Invoice.topic();

    // The projector, reading once for both projections, dead-letters each
    // message once, and moves on.
    let rows = wait_for_dead_letters(setup, 3).await;
    let reasons: Vec<&str> = rows.iter().map(|r| r[6].as_str()).collect();
    assert_eq!(
        reasons
            .iter()
            .filter(|r| r.contains("not in the Confluent wire format"))
            .count(),
        1,
        "{reasons:?}"
    );
    assert_eq!(
        reasons.iter().filter(|r| r.contains("customers")).count(),
        1,
        "{reasons:?}"
    );
    for row in &rows {
        assert_eq!(row[1], "decode");
        assert!(
            row[3].starts_with(&format!("{invoices}/")),
            "origin {row:?}"
        );
        assert_eq!((row[4].as_str(), row[5].as_str()), ("0", "no"));
    }
    let projections: std::collections::BTreeSet<&str> =
        rows.iter().map(|r| r[2].as_str()).collect();
    assert_eq!(projections, ["sql-store+search-index"].into());

    // Replay sends them back; they fail again and come back counted.
    let (ok, stdout, stderr) = tributary(setup, &["dlq", "replay", "--all"]);
    assert!(ok, "{stdout}{stderr}");
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with("replayed")).count(),
        3,
        "{stdout}"
    );
    let rows = wait_for_dead_letters(setup, 6).await;
    assert_eq!(rows.iter().filter(|r| r[4] == "1").count(), 3, "{rows:?}");
    assert_eq!(
        rows.iter().filter(|r| r[5] == "yes").count(),
        3,
        "the first three are marked replayed"
    );
    let (_, stdout, _) = tributary(setup, &["dlq", "replay", "--all"]);
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with("replayed")).count(),
        3,
        "only the new ones: {stdout}"
    );
    assert!(
        stdout.lines().all(|l| !l.contains("(replay 1)")),
        "old letters are not sent again: {stdout}"
    );
}

/// A record PostgreSQL cannot hold (a NUL character, which jsonb refuses)
/// followed by a good one for the same company, so in the same partition:
/// the store sets the first aside (stage `store`) and applies the second,
/// and the partition keeps flowing.
async fn store_refusals_go_to_dead_letters(setup: &Setup) {
    use rdkafka::ClientConfig;
    use tributary_projection::Change;
    use tributary_projector::Decoder;

    let mut client = ClientConfig::new();
    client.set("bootstrap.servers", &setup.bootstrap);
    // A real invoice event, as a template.
    let invoices = DataType::Invoice.topic();
    let template = {
        let payload = first_message(&setup.bootstrap, &invoices, 3);
        let Change::Record(event) = Decoder::new(&setup.registry)
            .decode(&invoices, Some(&payload))
            .await
            .unwrap()
        else {
            panic!("not a record")
        };
        event
    };
    let company = "refusals";
    let event = |id: &str, reference: &str| {
        let mut event = template.clone();
        event.company_id = company.into();
        event.source_record_id = id.into();
        event.event_id = format!("{company}-{id}");
        let Some(Record::Invoice(invoice)) = event.record.as_mut() else {
            panic!("not an invoice")
        };
        invoice.id = id.into();
        invoice.reference = Some(reference.into());
        event
    };
    let publisher = tributary_producer::Publisher::new(&client, &setup.registry).unwrap();
    publisher
        .publish_events(&[event("nul-1", "before\u{0}after"), event("good-1", "fine")])
        .await
        .unwrap();

    let rows = wait_for_dead_letters(setup, 1).await;
    let row = &rows[0];
    assert_eq!(
        (row[1].as_str(), row[2].as_str()),
        ("store", "sql-store"),
        "{row:?}"
    );
    assert!(
        row[3].starts_with(&format!("{invoices}/")),
        "origin {row:?}"
    );
    assert!(row[6].contains("Unicode"), "the reason says what: {row:?}");
    let one = |id: &str| format!("{}/v1/companies/{company}/data/invoices/{id}", setup.api);
    let started = Instant::now();
    while get(&one("good-1")).await.is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the good record after the refused one was not stored\n{}",
            logs(setup.dir.path())
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        get(&one("nul-1")).await.is_none(),
        "the refused record is not stored"
    );
    // The index applies on its own: the good record shows there too.
    let started = Instant::now();
    loop {
        let search = get(&format!("{}/v1/search?q=fine&company={company}", setup.api))
            .await
            .unwrap();
        if search["hits"].as_array().unwrap().len() == 1 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the good record never reached the index: {search}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
