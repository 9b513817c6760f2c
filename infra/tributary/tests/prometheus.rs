#![allow(clippy::unwrap_used)] // a test stops at its first surprise
//! A real Prometheus (Debian's package, `TRIBUTARY_PROMETHEUS` or
//! `prometheus` on PATH) with the project's alert rules, scraping every
//! second two `tributary up` processes: the pipeline's home (broker,
//! registry, workers, store, index, API: `/metrics` on the API) and a
//! second index projector without the API (`/metrics` on
//! `metrics.listen`). Every target is up, the per-tenant series are there,
//! and the stale-tenant alert fires for the data type made stale (invoices
//! synced hourly, stale after 15 s).

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;
use tributary_testkit::free_port;

fn prometheus_binary() -> PathBuf {
    let found = std::env::var_os("TRIBUTARY_PROMETHEUS")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("PATH").and_then(|path| {
                std::env::split_paths(&path)
                    .map(|dir| dir.join("prometheus"))
                    .find(|p| p.is_file())
            })
        });
    found.unwrap_or_else(|| {
        panic!("no prometheus: run infra/scripts/prereqs.sh (Debian's prometheus) or set TRIBUTARY_PROMETHEUS")
    })
}

/// Waits until `check` finds what it wants in Prometheus's answer at
/// `path`, or fails with the last answer and the logs.
async fn wait_for(
    prometheus: &str,
    path: &str,
    dir: &Path,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let started = Instant::now();
    loop {
        let answer: Value = match reqwest::get(format!("{prometheus}{path}")).await {
            Ok(resp) => resp.json().await.unwrap_or(Value::Null),
            Err(_) => Value::Null,
        };
        if check(&answer) {
            return answer;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "Prometheus {path} did not show it: {answer}\n{}\n{}",
            logs(dir),
            std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_every_role_and_the_stale_tenant_alert_fires() {
    let binary = prometheus_binary();
    let dir = tempfile::tempdir().unwrap();
    let (broker, registry, api, metrics, web) = (
        free_port(),
        free_port(),
        free_port(),
        free_port(),
        free_port(),
    );

    let home = dir.path().join("home.toml");
    std::fs::write(
        &home,
        format!(
            "data_dir = {data:?}\nlog = \"info,librdkafka=warn\"\n\
             [broker]\nport = {broker}\n[registry]\nport = {registry}\n\
             [api]\nlisten = \"127.0.0.1:{api}\"\nprometheus_url = \"http://127.0.0.1:{web}\"\n{API_KEYS_TOML}\n\
             [sandbox]\ncompanies = 1\nrecords = 20\ngenerations = 1\ngeneration_interval_secs = 0\nkinds = [\"accounting\"]\n\
             [sync]\ninterval_secs = 1\n[sync.data_types.invoices]\ninterval_secs = 3600\n\
             [metrics]\nstale_after_secs = 15\nhealth_every_secs = 1\n",
            data = dir.path().join("home"),
        ),
    )
    .unwrap();
    let _home = up(&home, &dir.path().join("home.log"), &[]);
    let api = format!("http://127.0.0.1:{api}");
    wait_for_health(&api, dir.path()).await;

    let index = dir.path().join("index.toml");
    std::fs::write(
        &index,
        format!(
            "data_dir = {data:?}\nlog = \"info,librdkafka=warn\"\n\
             [kafka]\nbootstrap_servers = \"127.0.0.1:{broker}\"\n\
             [registry]\nurl = \"http://127.0.0.1:{registry}\"\n\
             [sandbox]\nenabled = false\n\
             [roles]\nworkers = false\nstore_projector = false\nindex_projector = true\napi = false\n\
             [metrics]\nlisten = \"127.0.0.1:{metrics}\"\n",
            data = dir.path().join("index"),
        ),
    )
    .unwrap();
    let _index = up(&index, &dir.path().join("index.log"), &[]);

    // The rules as shipped, the scrape and evaluation every second.
    let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("../prometheus/rules.yml");
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             rule_files:\n  - {rules:?}\n\
             scrape_configs:\n\
             \x20 - job_name: tributary\n    static_configs:\n      - targets: [\"127.0.0.1:{api_port}\"]\n\
             \x20 - job_name: tributary-index\n    static_configs:\n      - targets: [\"127.0.0.1:{metrics}\"]\n",
            rules = rules.canonicalize().unwrap(),
            api_port = api.rsplit(':').next().unwrap(),
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
    let _prometheus = Proc(
        std::process::Command::new(binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{web}"))
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let prometheus = format!("http://127.0.0.1:{web}");

    // Both targets up: the API's /metrics and the index projector's own.
    wait_for(&prometheus, "/api/v1/targets", dir.path(), |t| {
        let targets = t["data"]["activeTargets"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        targets.len() == 2 && targets.iter().all(|t| t["health"] == "up")
    })
    .await;
    // The per-tenant series, measured by the workers.
    let linked = wait_for(
        &prometheus,
        "/api/v1/query?query=tributary_connections%7Bstatus%3D%22linked%22%7D",
        dir.path(),
        |q| q["data"]["result"][0]["value"][1] == "1",
    )
    .await;
    assert_eq!(
        linked["data"]["result"].as_array().unwrap().len(),
        1,
        "{linked}"
    );
    // The index projector elsewhere reports its own work.
    wait_for(
        &prometheus,
        "/api/v1/query?query=tributary_projector_records_projected_total%7Bjob%3D%22tributary-index%22%7D",
        dir.path(),
        |q| q["data"]["result"].as_array().is_some_and(|r| !r.is_empty()),
    )
    .await;
    // Invoices, synced once and then hourly, go stale after 15 s: the
    // alert fires for them, naming the company and the data type.
    let alerts = wait_for(&prometheus, "/api/v1/alerts", dir.path(), |a| {
        a["data"]["alerts"].as_array().is_some_and(|alerts| {
            alerts.iter().any(|alert| {
                alert["labels"]["alertname"] == "TributaryTenantStale"
                    && alert["labels"]["data_type"] == "invoices"
                    && alert["state"] == "firing"
            })
        })
    })
    .await;
    let stale = alerts["data"]["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|alert| alert["labels"]["data_type"] == "invoices")
        .unwrap();
    assert_eq!(stale["labels"]["company"], "sandbox-001", "{stale}");
    // The console's pipeline charts come from this Prometheus: the index
    // projector of the other process is in them.
    let started = std::time::Instant::now();
    loop {
        let history = get(&format!("{api}/v1/pipeline/metrics")).await;
        let from_elsewhere = history.as_ref().is_some_and(|h| {
            h["source"] == "prometheus"
                && h["series"].as_array().is_some_and(|series| {
                    series.iter().any(|s| {
                        s["metric"] == "projected"
                            && s["label"] == "search-index"
                            && s["points"].as_array().is_some_and(|p| !p.is_empty())
                    })
                })
        });
        if from_elsewhere {
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "the pipeline history shows no index projection from Prometheus: {history:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    assert!(
        stale["annotations"]["summary"]
            .as_str()
            .unwrap()
            .starts_with("sandbox-001: invoices last synced"),
        "{stale}"
    );
}
