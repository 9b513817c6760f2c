//! Helpers shared by the tests that run the real binary.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

use serde_json::Value;
use tributary_connector_sandbox::{Generator, Kind, SandboxSettings};
use tributary_schemas::DataType;

/// A sandbox source with its one generation of changes visible from the
/// start, so it serves one version of each record: what [`tally`] checks
/// against (a second apply of a row could only be a repeat).
pub(crate) fn all_at_once_sandbox(seed: u64, records: u32, max_page_size: u32) -> SandboxSettings {
    SandboxSettings {
        seed,
        records,
        generations: 1,
        generation_interval_secs: 0,
        epoch_ms: tributary_schemas::Timestamp::now().millis(),
        max_page_size,
        fail_every: 0,
        failure: Default::default(),
        hard_deletes: false,
        kinds: vec![Kind::Accounting],
    }
}

/// The sandbox's company ids for `n` companies.
pub(crate) fn companies(n: u32) -> Vec<String> {
    (1..=n).map(|i| format!("sandbox-{i:03}")).collect()
}

/// The last lines of every `*.log` file in `dir`, for failure messages.
pub(crate) fn logs(dir: &Path) -> String {
    let mut out = String::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        if entry.path().extension().is_some_and(|e| e == "log") {
            let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(30).collect();
            out += &format!(
                "== {}\n{}\n",
                entry.path().display(),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
    }
    out
}

/// The API key the tests' pipelines accept (all companies).
pub(crate) const API_KEY: &str = "tributary-test-admin-key";
/// The `[api]` line that makes the pipeline accept [`API_KEY`].
pub(crate) const API_KEYS_TOML: &str = "keys = [{ name = \"tests\", sha256 = \"48cf06bbab31cbd2d36e7168c71365aff28fc503854421cb4554faf3bdf2ce10\", companies = [\"*\"] }]";

pub(crate) async fn get(url: &str) -> Option<Value> {
    tributary_testkit::api_get(url, API_KEY).await
}

/// Asks for a sync of `company` (`body` as `POST .../syncs` takes it). Syncs
/// run every second in these tests, so a scheduled run may hold one of its
/// data types: a 409 is waited out (up to 30 s). The 202 answer's body.
pub(crate) async fn ask_sync(api: &str, company: &str, body: Value) -> Value {
    let asked = Instant::now();
    loop {
        let resp = tributary_testkit::http()
            .post(format!("{api}/v1/companies/{company}/syncs"))
            .bearer_auth(API_KEY)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let answer: Value = resp.json().await.unwrap();
        if status == 202 {
            return answer;
        }
        assert!(
            status == 409 && asked.elapsed() < Duration::from_secs(30),
            "{status} {answer}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Live record counts per (company, data type) that the API reports.
pub(crate) async fn api_counts(api: &str, companies: &[String]) -> BTreeMap<(String, String), i64> {
    let mut counts = BTreeMap::new();
    for company in companies {
        if let Some(status) = get(&format!("{api}/v1/companies/{company}/status")).await {
            for entry in status["data_types"].as_array().unwrap() {
                counts.insert(
                    (
                        company.clone(),
                        entry["data_type"].as_str().unwrap().to_string(),
                    ),
                    entry["records"].as_i64().unwrap(),
                );
            }
        }
    }
    counts
}

/// Waits until the search index holds as many live records as the store,
/// for every company and data type.
pub(crate) async fn wait_for_index(
    api: &str,
    companies: &[String],
    within: Duration,
    logs_dir: &Path,
) {
    let started = Instant::now();
    loop {
        let mut behind = Vec::new();
        for company in companies {
            let status = get(&format!("{api}/v1/companies/{company}/status")).await;
            for entry in status
                .as_ref()
                .and_then(|s| s["data_types"].as_array())
                .into_iter()
                .flatten()
            {
                if entry["indexed"] != entry["records"] {
                    behind.push(format!(
                        "{company} {}: {} indexed, {} stored",
                        entry["data_type"], entry["indexed"], entry["records"]
                    ));
                }
            }
        }
        if behind.is_empty() {
            return;
        }
        assert!(
            started.elapsed() < within,
            "the index does not agree with the store: {behind:?}\n{}",
            logs(logs_dir)
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// What the sandbox says a complete sync holds, per (company, data type).
pub(crate) fn expected_counts(
    sandbox: &SandboxSettings,
    companies: &[String],
    generation: u32,
) -> BTreeMap<(String, String), i64> {
    let mut counts = BTreeMap::new();
    for company in companies {
        let generator = Generator::new(sandbox.clone(), company);
        for data_type in generator.data_types() {
            counts.insert(
                (company.clone(), data_type.as_str().to_string()),
                generator.expected_live(data_type, generation).len() as i64,
            );
        }
        // The runtime adds the connection itself as a record.
        counts.insert((company.clone(), "connections".to_string()), 1);
    }
    counts
}

/// Waits until the API at `api` answers, or fails with the logs.
pub(crate) async fn wait_for_health(api: &str, logs_dir: &Path) {
    let started = Instant::now();
    while get(&format!("{api}/health")).await.is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the pipeline did not start\n{}",
            logs(logs_dir)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until the API's counts equal `expected`, or fails with both and the logs.
pub(crate) async fn wait_for_counts(
    api: &str,
    companies: &[String],
    expected: &BTreeMap<(String, String), i64>,
    within: Duration,
    logs_dir: &Path,
) {
    let started = Instant::now();
    loop {
        let counts = api_counts(api, companies).await;
        if counts == *expected {
            return;
        }
        assert!(
            started.elapsed() < within,
            "counts did not converge\nexpected {expected:?}\nfound    {counts:?}\n{}",
            logs(logs_dir)
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A page size that reads `expected` records in several pages, but not in
/// thousands of requests.
pub(crate) fn page_limit(expected: usize) -> usize {
    (expected / 3).clamp(7, 500)
}

/// Every record of one company and data type, following the API's paging
/// `limit` records at a time.
pub(crate) async fn all_records(
    api: &str,
    company: &str,
    data_type: DataType,
    limit: usize,
) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!("{api}/v1/companies/{company}/data/{data_type}?limit={limit}");
        if let Some(c) = &cursor {
            url += &format!("&cursor={c}");
        }
        let page = get(&url)
            .await
            .unwrap_or_else(|| panic!("GET {url} failed"));
        for record in page["records"].as_array().unwrap() {
            let id = record["id"].as_str().unwrap().to_string();
            assert!(
                out.insert(id.clone(), record.clone()).is_none(),
                "{company} {data_type} {id} listed twice"
            );
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => return out,
        }
    }
}

/// The first difference between what the API serves and the sandbox's
/// records at `generation`, field for field; `None` when they are equal.
async fn first_difference(
    api: &str,
    sandbox: &SandboxSettings,
    companies: &[String],
    generation: u32,
) -> Option<String> {
    for company in companies {
        let generator = Generator::new(sandbox.clone(), company);
        for data_type in generator.data_types() {
            let wanted = generator.expected_live(data_type, generation);
            let found = all_records(api, company, data_type, page_limit(wanted.len())).await;
            if found.len() != wanted.len() {
                return Some(format!(
                    "{company} {data_type}: {} records, expected {}",
                    found.len(),
                    wanted.len()
                ));
            }
            for version in wanted {
                let Some(record) = found.get(&version.id) else {
                    return Some(format!("{company} {data_type} {} is missing", version.id));
                };
                let expected = (
                    serde_json::to_value(&version.record).unwrap(),
                    serde_json::to_value(version.modified_at).unwrap(),
                    Value::Bool(false),
                );
                let actual = (
                    record["data"].clone(),
                    record["source_modified_at"].clone(),
                    record["deleted"].clone(),
                );
                if actual != expected {
                    return Some(format!(
                        "{company} {data_type} {}:\n  found    {actual:?}\n  expected {expected:?}",
                        version.id
                    ));
                }
            }
        }
    }
    None
}

/// Waits until the API serves exactly the sandbox's records at
/// `generation`. Equal counts do not mean equal contents: an update changes
/// no count and may still be on its way (the next sync round fetches it).
pub(crate) async fn wait_for_contents(
    api: &str,
    sandbox: &SandboxSettings,
    companies: &[String],
    generation: u32,
    within: Duration,
    logs_dir: &Path,
) {
    let started = Instant::now();
    loop {
        let Some(difference) = first_difference(api, sandbox, companies, generation).await else {
            return;
        };
        assert!(
            started.elapsed() < within,
            "contents did not converge: {difference}\n{}",
            logs(logs_dir)
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

pub(crate) fn terminate(child: &mut Child) {
    let pid = libc::pid_t::try_from(child.id()).unwrap();
    #[allow(unsafe_code)]
    // SAFETY: kill(2) on our own child, not yet reaped.
    unsafe {
        libc::kill(pid, libc::SIGTERM);
    }
}

pub(crate) fn wait_port_free(address: &str) {
    let start = Instant::now();
    while std::net::TcpStream::connect(address).is_ok() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{address} still answers after its process died"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A child process that is killed if the test ends (or panics) while it
/// still runs, so a failing test leaves no pipeline behind.
pub(crate) struct Proc(pub Child);

impl std::ops::Deref for Proc {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Proc {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Applies beyond those each row's version called for, over the sandbox's
/// rows (the connection record is the runtime's own and legitimately
/// changes): one for the source's version, one more for each resync (a row
/// at revision 2 was rightly applied three times).
pub(crate) async fn repeated_applies(store_url: &str) -> usize {
    use sqlx::Connection;
    let mut db = sqlx::PgConnection::connect(store_url).await.unwrap();
    // Every type a sandbox can serve (those it did not are simply absent).
    let types: Vec<String> = tributary_connector_sandbox::all_kinds()
        .into_iter()
        .flat_map(|k| k.data_types().iter().map(|d| d.as_str().to_string()))
        .collect();
    let (repeats,): (i64,) = sqlx::query_as(
        "SELECT COALESCE(SUM(applies - 1 - revision), 0)::bigint FROM records WHERE data_type = ANY($1)",
    )
    .bind(&types)
    .fetch_one(&mut db)
    .await
    .unwrap();
    db.close().await.unwrap();
    usize::try_from(repeats).unwrap()
}

#[derive(Debug, Default, PartialEq)]
/// The fault suite's invariant, counted against the sandbox's records at
/// generation 1 (every generation visible at once).
pub(crate) struct Tally {
    pub expected: usize,
    pub found: usize,
    /// Extra rows, plus applies of an event beyond the first.
    pub duplicates: usize,
    /// Source records missing from the store or different in it.
    pub lost: usize,
}

impl Tally {
    pub(crate) fn clean(&self) -> bool {
        self.duplicates == 0 && self.lost == 0 && self.found == self.expected
    }
}

pub(crate) async fn tally(api: &str, sandbox: &SandboxSettings, n: u32, store_url: &str) -> Tally {
    let mut t = Tally::default();
    for company in companies(n) {
        let generator = Generator::new(sandbox.clone(), &company);
        for data_type in generator.data_types() {
            let wanted = generator.expected_live(data_type, 1);
            let found = all_records(api, &company, data_type, page_limit(wanted.len())).await;
            t.expected += wanted.len();
            t.found += found.len();
            let wanted_ids: BTreeSet<&str> = wanted.iter().map(|v| v.id.as_str()).collect();
            t.duplicates += found
                .keys()
                .filter(|id| !wanted_ids.contains(id.as_str()))
                .count();
            for version in &wanted {
                let same = found.get(&version.id).is_some_and(|r| {
                    r["data"] == serde_json::to_value(&version.record).unwrap()
                        && r["source_modified_at"]
                            == serde_json::to_value(version.modified_at).unwrap()
                        && r["deleted"] == false
                });
                if !same {
                    t.lost += 1;
                }
            }
        }
    }
    t.duplicates += repeated_applies(store_url).await;
    t
}

/// The tally once the store holds the source's records (or after 180 s),
/// and 2 s later again: the sync keeps running, so a late duplicate would
/// still show.
pub(crate) async fn settled_tally(
    api: &str,
    sandbox: &SandboxSettings,
    n: u32,
    store_url: &str,
) -> Tally {
    let started = Instant::now();
    let limit = Duration::from_secs(180);
    // The status counts first: a full tally lists every record and
    // generates the source's, which on a loaded machine takes a core from
    // the pipeline it waits for.
    let names = companies(n);
    let expected = expected_counts(sandbox, &names, 1);
    loop {
        let counts = api_counts(api, &names).await;
        let short = expected
            .iter()
            .any(|(pair, want)| counts.get(pair).copied().unwrap_or(0) < *want);
        if !short || started.elapsed() >= limit {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let mut t = tally(api, sandbox, n, store_url).await;
    while !t.clean() && started.elapsed() < limit {
        tokio::time::sleep(Duration::from_secs(2)).await;
        t = tally(api, sandbox, n, store_url).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    tally(api, sandbox, n, store_url).await
}

/// One row of the report table, when `TRIBUTARY_FAULT_REPORT` names a directory.
pub(crate) fn report(fault: &str, done: &str, t: &Tally) {
    let Some(dir) = std::env::var_os("TRIBUTARY_FAULT_REPORT") else {
        return;
    };
    let slug: String = fault
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    std::fs::write(
        Path::new(&dir).join(format!("{slug}.md")),
        format!(
            "| {fault} | {done} | {} | {} | {} | {} |\n",
            t.expected, t.found, t.duplicates, t.lost
        ),
    )
    .unwrap();
}

pub(crate) use tributary_testkit::first_message;

/// Sends three bad messages to the invoices topic, keyed like sandbox-001's
/// events: not Avro at all, Avro framing with an unknown schema id, and a
/// customer event (valid Avro under another subject's schema: schema-
/// incompatible with the topic). The customer event is read from the
/// customers topic's `partitions`.
pub(crate) async fn send_bad_messages(bootstrap: &str, partitions: i32) {
    use rdkafka::ClientConfig;
    use rdkafka::producer::{FutureProducer, FutureRecord};

    let mut client = ClientConfig::new();
    client.set("bootstrap.servers", bootstrap);
    let customer_event = first_message(bootstrap, &DataType::Customer.topic(), partitions);
    let unknown_schema = [&[0u8, 0, 6, 0x7a, 0x7a][..], b"\x02xy"].concat();
    let producer: FutureProducer = client.create().unwrap();
    let invoices = DataType::Invoice.topic();
    for payload in [&b"not avro at all"[..], &unknown_schema, &customer_event] {
        producer
            .send(
                FutureRecord::to(&invoices)
                    .key("sandbox-001")
                    .payload(payload),
                Duration::from_secs(10),
            )
            .await
            .unwrap();
    }
}

/// The dead letters the pipeline at `api` counted, by stage, from /metrics.
pub(crate) async fn dead_lettered(api: &str, stage: &str) -> f64 {
    let Ok(response) = reqwest::get(format!("{api}/metrics")).await else {
        return 0.0;
    };
    let text = response.text().await.unwrap_or_default();
    text.lines()
        .filter(|l| l.starts_with("tributary_projector_dead_letters_total"))
        .filter(|l| l.contains(&format!("stage=\"{stage}\"")))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Runs `tributary --config <config> <args>`, which must succeed: its
/// output and errors together.
pub(crate) fn run(config: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tributary"))
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "tributary {args:?} failed: {text}");
    text
}

/// Waits until `company` has `expected` live records of each data type in
/// both the store and the index (the status's `records` and `indexed`).
pub(crate) async fn wait_for_types(
    api: &str,
    company: &str,
    expected: &[(&str, i64)],
    logs_dir: &Path,
) {
    let started = Instant::now();
    loop {
        let status = get(&format!("{api}/v1/companies/{company}/status")).await;
        let count = |t: &str| {
            status.as_ref().and_then(|s| {
                s["data_types"]
                    .as_array()?
                    .iter()
                    .find(|e| e["data_type"] == t)
                    .and_then(|e| Some((e["records"].as_i64()?, e["indexed"].as_i64()?)))
            })
        };
        if expected.iter().all(|(t, n)| count(t) == Some((*n, *n))) {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "not all data of {company} arrived (want {expected:?}): {status:?}\n{}",
            logs(logs_dir)
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Reads the topics with standard clients (`infra/scripts/read_topics.py`
/// under `TRIBUTARY_PYTHON`): its report, after checking it ran clean.
/// `data_types` replaces the script's accounting types when given.
pub(crate) fn read_topics(bootstrap: &str, registry: &str, data_types: Option<&str>) -> Value {
    let python = std::env::var_os("TRIBUTARY_PYTHON").expect(
        "set TRIBUTARY_PYTHON to a python with confluent-kafka[avro,schemaregistry] (infra/scripts/test.sh does)",
    );
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/read_topics.py");
    let mut command = std::process::Command::new(python);
    command
        .arg(script)
        .args(["--bootstrap", bootstrap, "--registry", registry]);
    if let Some(types) = data_types {
        command.args(["--data-types", types]);
    }
    let output = command.output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "read_topics.py failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(report["errors"], 0, "{report}");
    report
}

/// `tributary --config <config> up` with `env` added, its output appended
/// to `log`; killed if the test ends first.
pub(crate) fn up(config: &Path, log: &Path, env: &[(&str, &str)]) -> Proc {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    Proc(
        std::process::Command::new(env!("CARGO_BIN_EXE_tributary"))
            .args(["--config", config.to_str().unwrap(), "up"])
            .envs(env.iter().copied())
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap(),
    )
}

/// Waits until `check` is `Ok`, or fails with its last `Err` and the logs.
pub(crate) async fn wait_until<F: AsyncFnMut() -> Result<(), String>>(
    what: &str,
    dir: &Path,
    mut check: F,
) {
    let started = Instant::now();
    loop {
        let Err(why) = check().await else { return };
        assert!(
            started.elapsed() < Duration::from_secs(180),
            "{what}: {why}\n{}",
            logs(dir)
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Waits until `company`'s status lists `data_type` (its first records
/// arrived in the store).
pub(crate) async fn wait_for_data_type(api: &str, company: &str, data_type: &str, dir: &Path) {
    let what = format!("{company}'s {data_type} never arrived");
    wait_until(&what, dir, async || {
        let status = get(&format!("{api}/v1/companies/{company}/status")).await;
        let arrived = status.is_some_and(|s| {
            s["data_types"]
                .as_array()
                .is_some_and(|t| t.iter().any(|e| e["data_type"] == data_type))
        });
        if arrived {
            Ok(())
        } else {
            Err("waiting".into())
        }
    })
    .await;
}

/// Sends [`send_bad_messages`] to a one-partition pipeline on `broker` and
/// waits until the dead letters list them.
pub(crate) async fn make_dead_letters(api: &str, broker: u16, dir: &Path) {
    send_bad_messages(&format!("127.0.0.1:{broker}"), 1).await;
    wait_until("no dead letters", dir, async || {
        let letters = get(&format!("{api}/v1/dead-letters")).await;
        if letters.is_some_and(|l| l["dead_letters"].as_array().is_some_and(|a| !a.is_empty())) {
            Ok(())
        } else {
            Err("waiting".into())
        }
    })
    .await;
}
