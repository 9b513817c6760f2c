#![allow(clippy::unwrap_used)] // a test stops at its first surprise
//! Outbound webhooks end to end: a pipeline (sandbox, hourly syncs, so
//! each data type syncs once) without the dispatcher, and the dispatcher
//! in a process of its own sharing its state store. The subscriber
//! (`infra/scripts/webhook_receiver.py`) verifies every signature with the
//! `standardwebhooks` package from PyPI, fails its first requests, and
//! holds one while the test kills the dispatcher with SIGKILL.
//!
//! Checked: every sync run of the history, both connections and the dead
//! letters arrive, and later an operator's unlink, each exactly once after deduplicating by `webhook-id`
//! (the held one twice: sent again after the kill, with the same id);
//! every delivery in the log ends `delivered`; the dispatcher checks the
//! store against the manifests; a replay arrives again with the same id; a
//! test event arrives.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use common::*;
use serde_json::{Value, json};
use tributary_testkit::free_port;

/// Every line the receiver wrote.
fn received(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The events the receiver took (answered 200), by `webhook-id`, each with
/// how many times it was taken.
fn taken(path: &Path) -> BTreeMap<String, (Value, usize)> {
    let mut out: BTreeMap<String, (Value, usize)> = BTreeMap::new();
    for line in received(path) {
        if line["status"] == 200 {
            let id = line["id"].as_str().unwrap().to_string();
            out.entry(id).or_insert((line["event"].clone(), 0)).1 += 1;
        }
    }
    out
}

async fn post(url: &str, body: Value) -> Value {
    let resp = tributary_testkit::http()
        .post(url)
        .bearer_auth(API_KEY)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let text = resp.text().await.unwrap();
    assert!(status.is_success(), "POST {url}: {status} {text}");
    serde_json::from_str(&text).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_arrive_signed_once_each_through_failures_a_kill_and_a_replay() {
    let python = std::env::var_os("TRIBUTARY_PYTHON").expect(
        "set TRIBUTARY_PYTHON to a python with standardwebhooks (infra/scripts/test.sh does)",
    );
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (broker, registry, api_port, receiver_port, metrics) = (
        free_port(),
        free_port(),
        free_port(),
        free_port(),
        free_port(),
    );
    let out = d.join("received.jsonl");
    let secret_file = d.join("secret");
    let hold_file = d.join("held");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/webhook_receiver.py");
    let receiver_log = std::fs::File::create(d.join("receiver.log")).unwrap();
    let _receiver = Proc(
        std::process::Command::new(python)
            .arg(script)
            .args(["--port", &receiver_port.to_string()])
            .arg("--out")
            .arg(&out)
            .arg("--secret-file")
            .arg(&secret_file)
            .args(["--fail-first", "4", "--hold-at", "8", "--hold-secs", "4"])
            .arg("--hold-file")
            .arg(&hold_file)
            .stdout(receiver_log.try_clone().unwrap())
            .stderr(receiver_log)
            .spawn()
            .unwrap(),
    );

    let common = format!(
        "data_dir = {data:?}\nlog = \"info,librdkafka=warn\"\n\
         [security]\nallow_private_network = true\n\
         [webhooks]\nretry_schedule_secs = [1, 1, 2]\ntimeout_secs = 30\npoll_ms = 200\nreconcile_after_secs = 2\n",
        data = d.join("data"),
    );
    let home = d.join("home.toml");
    std::fs::write(
        &home,
        format!(
            "{common}[broker]\nport = {broker}\n[registry]\nport = {registry}\n\
             [api]\nlisten = \"127.0.0.1:{api_port}\"\n{API_KEYS_TOML}\n\
             [sandbox]\ncompanies = 2\nrecords = 10\ngenerations = 1\ngeneration_interval_secs = 0\nkinds = [\"accounting\"]\n\
             [sync]\ninterval_secs = 3600\n\
             [roles]\ndispatcher = false\n"
        ),
    )
    .unwrap();
    let dispatcher = d.join("dispatcher.toml");
    std::fs::write(
        &dispatcher,
        format!(
            "{common}[kafka]\nbootstrap_servers = \"127.0.0.1:{broker}\"\n\
             [registry]\nurl = \"http://127.0.0.1:{registry}\"\n\
             [sandbox]\nenabled = false\n\
             [roles]\nworkers = false\nstore_projector = false\nindex_projector = false\napi = false\ndispatcher = true\n\
             [metrics]\nlisten = \"127.0.0.1:{metrics}\"\n"
        ),
    )
    .unwrap();

    // Subscribed before anything happens, so every event is for it.
    let added = run(
        &home,
        &[
            "webhooks",
            "add",
            "--url",
            &format!("http://127.0.0.1:{receiver_port}/hook"),
            "--events",
            "sync.completed,sync.failed,connection.status_changed,dead_letters.added,webhook.test",
        ],
    );
    let secret = added
        .split_whitespace()
        .find(|w| w.starts_with("whsec_"))
        .unwrap();
    std::fs::write(&secret_file, secret).unwrap();
    let subscription = added
        .split_whitespace()
        .find(|w| w.starts_with("sub_"))
        .unwrap()
        .to_string();

    let _home = up(&home, &d.join("home.log"), &[]);
    let api = format!("http://127.0.0.1:{api_port}");
    wait_for_health(&api, d).await;
    let mut dispatching = up(&dispatcher, &d.join("dispatcher.log"), &[]);

    // Killed while the receiver holds a request: it is sent again.
    wait_until("the receiver never held a request", d, async || {
        if hold_file.exists() {
            Ok(())
        } else {
            Err("not yet".to_string())
        }
    })
    .await;
    dispatching.0.kill().unwrap();
    dispatching.0.wait().unwrap();
    let held = std::fs::read_to_string(&hold_file).unwrap();
    let _dispatching = up(&dispatcher, &d.join("dispatcher.log"), &[]);

    // Dead letters: three bad messages the store and index projectors set aside.
    send_bad_messages(&format!("127.0.0.1:{broker}"), 1).await;

    let companies = companies(2);
    let mut runs: BTreeSet<String> = BTreeSet::new();
    wait_until("not every event arrived", d, async || {
        runs.clear();
        for company in &companies {
            let history = get(&format!("{api}/v1/companies/{company}/syncs?limit=1000"))
                .await
                .ok_or("no sync history yet")?;
            for run in history["runs"].as_array().ok_or("no runs")? {
                if run["status"] != "succeeded" {
                    return Err(format!("run still open or failed: {run}"));
                }
                runs.insert(run["id"].as_str().unwrap().to_string());
            }
        }
        let taken = taken(&out);
        let told: BTreeSet<String> = taken
            .values()
            .filter(|(e, _)| e["type"] == "sync.completed")
            .map(|(e, _)| e["data"]["run_id"].as_str().unwrap().to_string())
            .collect();
        let connections = taken
            .values()
            .filter(|(e, _)| e["type"] == "connection.status_changed")
            .count();
        let letters: u64 = taken
            .values()
            .filter(|(e, _)| e["type"] == "dead_letters.added")
            .map(|(e, _)| e["data"]["count"].as_u64().unwrap())
            .sum();
        // Two data types synced per company at least, hourly: no more runs come.
        if runs.len() < 4 || told != runs || connections != 2 || letters != 3 {
            return Err(format!(
                "runs {runs:?}, told {told:?}, {connections} connection events, {letters} letters"
            ));
        }
        Ok(())
    })
    .await;

    // Every request verified; the first ones failed and were retried.
    let lines = received(&out);
    assert!(lines.iter().all(|l| l["verified"] == true), "{lines:?}");
    assert!(lines[..4].iter().all(|l| l["status"] == 500));
    let taken_now = taken(&out);
    for first in &lines[..4] {
        assert!(taken_now.contains_key(first["id"].as_str().unwrap()));
    }
    // Once each after deduplicating: no event under two ids.
    let mut by_event: BTreeMap<String, usize> = BTreeMap::new();
    for (event, _) in taken_now.values() {
        let key = match event["type"].as_str().unwrap() {
            "sync.completed" | "sync.failed" => event["data"]["run_id"].to_string(),
            "connection.status_changed" => format!(
                "{}/{}",
                event["data"]["connection_id"], event["data"]["status"]
            ),
            _ => event["data"]["letters"].to_string(),
        };
        *by_event.entry(key).or_default() += 1;
    }
    assert!(by_event.values().all(|n| *n == 1), "{by_event:?}");
    // The held request was sent again after the kill, under its id.
    let held_times = lines.iter().filter(|l| l["id"] == held.as_str()).count();
    assert!(
        held_times >= 2,
        "held {held} was received {held_times} time(s)"
    );
    for (event, _) in taken_now.values() {
        if event["type"] == "connection.status_changed" {
            assert_eq!(event["data"]["status"], "linked");
            assert_eq!(event["data"]["previous_status"], Value::Null);
        }
    }

    // The log: every delivery ended delivered, one per event taken.
    let log = get(&format!(
        "{api}/v1/webhooks/{subscription}/deliveries?limit=1000"
    ))
    .await
    .unwrap();
    let deliveries = log["deliveries"].as_array().unwrap();
    assert_eq!(deliveries.len(), taken_now.len(), "{log}");
    assert!(
        deliveries.iter().all(|d| d["status"] == "delivered"),
        "{log}"
    );

    // The dispatcher checked the store against the manifests by itself.
    wait_until("no reconciliation check matched", d, async || {
        let text = match reqwest::get(format!("http://127.0.0.1:{metrics}/metrics")).await {
            Ok(resp) => resp.text().await.unwrap_or_default(),
            Err(e) => return Err(e.to_string()),
        };
        let matched = text.lines().any(|l| {
            l.starts_with("tributary_reconciliation_checks_total")
                && l.contains("outcome=\"match\"")
        });
        if matched {
            return Ok(());
        }
        Err(text
            .lines()
            .filter(|l| l.contains("reconciliation"))
            .collect::<Vec<_>>()
            .join("\n"))
    })
    .await;

    // An operator unlinks a connection: told, with the status it had.
    let gone = tributary_testkit::http()
        .delete(format!("{api}/v1/connections/conn-sandbox-002"))
        .bearer_auth(API_KEY)
        .send()
        .await
        .unwrap();
    assert!(gone.status().is_success(), "{}", gone.text().await.unwrap());
    wait_until("the unlink was not told", d, async || {
        let unlinked: Vec<Value> = taken(&out)
            .into_values()
            .map(|(e, _)| e)
            .filter(|e| {
                e["type"] == "connection.status_changed" && e["data"]["status"] == "unlinked"
            })
            .collect();
        match unlinked.as_slice() {
            [one]
                if one["data"]["connection_id"] == "conn-sandbox-002"
                    && one["data"]["previous_status"] == "linked"
                    && one["data"]["company_id"] == "sandbox-002" =>
            {
                Ok(())
            }
            other => Err(format!("unlink events: {other:?}")),
        }
    })
    .await;

    // A replay arrives again with the same id; a test event arrives.
    let first = &deliveries[deliveries.len() - 1];
    let replayed = post(
        &format!(
            "{api}/v1/webhook-deliveries/{}/replay",
            first["id"].as_str().unwrap()
        ),
        json!({}),
    )
    .await;
    assert_eq!(replayed["delivery"]["message_id"], first["message_id"]);
    let tested = post(&format!("{api}/v1/webhooks/{subscription}/test"), json!({})).await;
    let test_id = tested["delivery"]["message_id"]
        .as_str()
        .unwrap()
        .to_string();
    let replay_id = first["message_id"].as_str().unwrap().to_string();
    let before = taken_now[&replay_id].1;
    wait_until("the replay or the test did not arrive", d, async || {
        let taken = taken(&out);
        let replays = taken.get(&replay_id).map_or(0, |t| t.1);
        let test = taken.get(&test_id).map(|t| t.0["type"].clone());
        if replays != before + 1 || test != Some(json!("webhook.test")) {
            return Err(format!(
                "replays {replays} (before {before}), test {test:?}"
            ));
        }
        Ok(())
    })
    .await;
    let one = get(&format!(
        "{api}/v1/webhook-deliveries/{}",
        replayed["delivery"]["id"].as_str().unwrap()
    ))
    .await
    .unwrap();
    assert_eq!(one["delivery"]["status"], "delivered", "{one}");
    assert_eq!(one["delivery"]["replay_of"], first["id"]);
    assert_eq!(one["delivery"]["attempt_log"][0]["status_code"], 200);
}
