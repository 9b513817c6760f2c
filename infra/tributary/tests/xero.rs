#![allow(clippy::unwrap_used)] // a test stops at its first surprise
//! A Xero connection end to end: `tributary connections add xero`, the
//! OAuth2 callback, then `tributary up` syncing from Prism serving Xero's own
//! spec into the store and the search index. Checks each record against the
//! response it came from, that a key for another company sees none of it,
//! and that no secret appears in any log or output.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;
use tributary_testkit::free_port;
use tributary_testkit::xero_identity::{CLIENT_ID, CLIENT_SECRET, FakeIdentity};

const TENANT: &str = "b2c885a9-4bb9-4a00-9b6e-6c2bf60b1a2b";
const OTHER_KEY: &str = "key-for-another-company-SECRET";
const CREDENTIALS_KEY: &str = "9f1c2b3a4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8";
const WEBHOOK_KEY: &str = "xero-webhook-key-SECRET";

async fn get_with(url: &str, key: &str) -> (u16, Value) {
    let resp = tributary_testkit::http()
        .get(url)
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    (
        resp.status().as_u16(),
        resp.json().await.unwrap_or(Value::Null),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xero_from_prism_to_the_api_with_no_secret_in_any_log() {
    let prism = tokio::task::spawn_blocking(tributary_testkit::prism::Prism::start)
        .await
        .unwrap();
    let identity = FakeIdentity::start(Duration::from_secs(1800), 1800, &[TENANT]).await;
    let dir = tempfile::tempdir().unwrap();
    let (broker, registry, api) = (free_port(), free_port(), free_port());
    let config = dir.path().join("tributary.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {data:?}\nlog = \"debug,librdkafka=warn,tantivy=info,sqlx=info,h2=info,hyper=info,tower=info,reqwest=info\"\n\
             [kafka]\npartitions = 2\n[broker]\nport = {broker}\n[registry]\nport = {registry}\n\
             [api]\nlisten = \"127.0.0.1:{api}\"\n\
             keys = [{{ name = \"tests\", sha256 = \"{admin}\", companies = [\"*\"] }}, {{ name = \"other\", sha256 = \"{other}\", companies = [\"other-co\"] }}]\n\
             [sandbox]\nenabled = false\n\
             [sync]\ninterval_secs = 2\npage_size = 100\nretry_base_ms = 200\n\
             [sync.data_types.invoices]\ninterval_secs = 3600\n[sync.data_types.bills]\ninterval_secs = 3600\n\
             [projector]\nbatch_size = 50\nlinger_ms = 50\n\
             [xero]\nclient_id = {CLIENT_ID:?}\nclient_secret = {CLIENT_SECRET:?}\n\
             redirect_uri = \"http://127.0.0.1:{api}/v1/oauth/xero/callback\"\nwebhook_key = {WEBHOOK_KEY:?}\n\
             authorize_url = \"{idp}/authorize\"\ntoken_url = {token:?}\nconnections_url = {conns:?}\napi_url = {prism:?}\n\
             [security]\nallow_private_network = true\ncredentials_key = {CREDENTIALS_KEY:?}\n",
            data = dir.path().join("data"),
            admin = tributary_api::hash_key(API_KEY),
            other = tributary_api::hash_key(OTHER_KEY),
            idp = identity.url,
            token = identity.token_url(),
            conns = identity.connections_url(),
            prism = prism.url,
        ),
    )
    .unwrap();

    // Add the connection: pending until a person grants access.
    let added = run(
        &config,
        &["connections", "add", "xero", "--company", "acme"],
    );
    let url = added
        .lines()
        .find_map(|l| l.strip_prefix("grant access at: "))
        .unwrap_or_else(|| panic!("no authorization URL in {added}"));
    assert!(
        url.starts_with(&format!("{}/authorize?", identity.url)),
        "{url}"
    );
    let state = url
        .split(['?', '&'])
        .find_map(|p| p.strip_prefix("state="))
        .unwrap()
        .to_string();
    let listed = run(&config, &["connections", "list"]);
    assert!(listed.contains("acme\txero\tpending_auth"), "{listed}");

    let mut up = up(&config, &dir.path().join("up.log"), &[]);
    let api = format!("http://127.0.0.1:{api}");
    let started = Instant::now();
    while get(&format!("{api}/v1/connections")).await.is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "API did not start\n{}",
            logs(dir.path())
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // Xero redirects the person back with a code: the callback links the
    // connection to the one granted organisation.
    let callback = reqwest::get(format!(
        "{api}/v1/oauth/xero/callback?code={}&state={state}",
        identity.new_code()
    ))
    .await
    .unwrap();
    assert_eq!(
        callback.status().as_u16(),
        200,
        "{}",
        callback.text().await.unwrap()
    );
    // The state works once.
    let replay = reqwest::get(format!("{api}/v1/oauth/xero/callback?code=x&state={state}"))
        .await
        .unwrap();
    assert_eq!(replay.status().as_u16(), 400);

    // Every data type arrives; invoices are checked against Prism's answer.
    let company = "acme";
    let expected = [
        ("companies", 1),
        ("accounts", 2),
        ("items", 2),
        ("customers", 1),
        ("suppliers", 1),
        ("invoices", 2), // three, one VOIDED: flagged deleted, not live
        ("credit_notes", 2),
        ("payments", 2),
        ("bank_transactions", 3),
        ("journal_entries", 3),
    ];
    wait_for_types(&api, company, &expected, dir.path()).await;

    let prism_invoices: Value = tributary_testkit::http()
        .get(format!("{}/Invoices", prism.url))
        .header("xero-tenant-id", TENANT)
        .bearer_auth("x")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let page = get(&format!(
        "{api}/v1/companies/{company}/data/invoices?include_deleted=true"
    ))
    .await
    .unwrap();
    let records = page["records"].as_array().unwrap();
    assert_eq!(records.len(), 3);
    for raw in prism_invoices["Invoices"].as_array().unwrap() {
        let id = raw["InvoiceID"].as_str().unwrap();
        let stored = records.iter().find(|r| r["id"] == id).unwrap();
        let data = &stored["data"];
        assert_eq!(stored["source"], "xero");
        assert_eq!(data["number"], raw["InvoiceNumber"]);
        assert_eq!(data["status"], raw["Status"]);
        assert_eq!(data["currency"], raw["CurrencyCode"]);
        assert_eq!(data["customer_id"], raw["Contact"]["ContactID"]);
        assert_eq!(data["customer_name"], raw["Contact"]["Name"]);
        // Money is exact decimal text: Prism's 46 is 46.00.
        assert_eq!(
            data["total"].as_str().unwrap().parse::<f64>().unwrap(),
            raw["Total"].as_f64().unwrap()
        );
        assert_eq!(stored["deleted"], raw["Status"] == "VOIDED");
    }
    let hits = get(&format!("{api}/v1/search?q=INV-0002&company={company}"))
        .await
        .unwrap();
    assert_eq!(hits["hits"].as_array().unwrap().len(), 1, "{hits}");

    source_webhooks(&api, company).await;

    // The connection shows linked, with its tenant; no credentials in sight.
    let connections = get(&format!("{api}/v1/connections")).await.unwrap();
    let xero = &connections["connections"][0];
    assert_eq!(
        (
            xero["status"].as_str(),
            xero["settings"]["tenant_id"].as_str()
        ),
        (Some("linked"), Some(TENANT))
    );
    let checked = run(
        &config,
        &["connections", "check", xero["id"].as_str().unwrap()],
    );
    assert!(
        checked.contains("authenticated; fetched 1 companies record(s), 1 mapped"),
        "{checked}"
    );

    // Prism ignores `where`: its ACCREC examples fetched as bills were
    // refused one by one and kept as dead letters, with the reason.
    let dead = run(&config, &["dlq", "list"]);
    assert!(
        dead.lines().any(|l| l.contains("\tmap\t")
            && l.contains("bills")
            && l.contains("not a bills type")),
        "{dead}"
    );

    // Connections through the API: add (a source without OAuth is linked at
    // once), refused for a company the key does not cover, then removed.
    let http = tributary_testkit::http();
    let sandbox = serde_json::json!({
        "company_id": "sbx",
        "source": "sandbox",
        "settings": {"seed": 1, "records": 5, "generations": 1, "generation_interval_secs": 0,
                     "epoch_ms": 0, "max_page_size": 10}
    });
    let created: Value = http
        .post(format!("{api}/v1/connections"))
        .bearer_auth(API_KEY)
        .json(&sandbox)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(created["connection"]["status"], "linked", "{created}");
    assert!(created["authorize_url"].is_null());
    let refused = http
        .post(format!("{api}/v1/connections"))
        .bearer_auth(OTHER_KEY)
        .json(&sandbox)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status().as_u16(), 403);
    let bad = http
        .post(format!("{api}/v1/connections"))
        .bearer_auth(API_KEY)
        .json(&serde_json::json!({"company_id": "sbx", "source": "nope"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status().as_u16(), 400);
    assert!(bad.text().await.unwrap().contains("unknown connector"));
    let sandbox_id = created["connection"]["id"].as_str().unwrap();
    let removed = http
        .delete(format!("{api}/v1/connections/{sandbox_id}"))
        .bearer_auth(API_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(removed.status().as_u16(), 200);
    let listed = get(&format!("{api}/v1/connections")).await.unwrap();
    assert!(
        listed["connections"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["id"] == sandbox_id && c["status"] == "unlinked"),
        "{listed}"
    );

    // A key for another company sees nothing of acme.
    for path in [
        format!("/v1/companies/{company}/status"),
        format!("/v1/companies/{company}/data/invoices"),
    ] {
        let (status, _) = get_with(&format!("{api}{path}"), OTHER_KEY).await;
        assert_eq!(status, 404, "{path}");
    }
    let (_, hits) = get_with(&format!("{api}/v1/search?q=INV-0002"), OTHER_KEY).await;
    assert!(hits["hits"].as_array().unwrap().is_empty(), "{hits}");
    let (_, conns) = get_with(&format!("{api}/v1/connections"), OTHER_KEY).await;
    assert!(
        conns["connections"].as_array().unwrap().is_empty(),
        "{conns}"
    );

    // Credentials are encrypted at rest: no token in the state database.
    let state_db = std::fs::read(dir.path().join("data/state.db")).unwrap();
    let wal = std::fs::read(dir.path().join("data/state.db-wal")).unwrap_or_default();
    for secret in identity.issued() {
        for bytes in [&state_db, &wal] {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{secret} is stored in clear"
            );
        }
    }

    // Remove: unlinked, credentials erased.
    let id = xero["id"].as_str().unwrap().to_string();
    run(&config, &["connections", "remove", &id]);
    let listed = run(&config, &["connections", "list"]);
    assert!(listed.contains("unlinked"), "{listed}");
    terminate(&mut up);
    assert!(
        up.wait().unwrap().success(),
        "tributary up did not stop cleanly"
    );

    // No secret in any log line or command output of the whole run.
    let mut secrets = identity.issued();
    secrets.extend([
        CLIENT_SECRET.to_string(),
        API_KEY.to_string(),
        OTHER_KEY.to_string(),
        CREDENTIALS_KEY.to_string(),
        WEBHOOK_KEY.to_string(),
    ]);
    let mut all_output = std::fs::read_to_string(dir.path().join("up.log")).unwrap();
    all_output += &added;
    all_output += &checked;
    all_output += &run(&config, &["config"]);
    // The scan must see the pipeline's own debug lines, or it proves nothing.
    let up_log = std::fs::read_to_string(dir.path().join("up.log")).unwrap();
    assert!(
        up_log
            .lines()
            .any(|l| l.contains(" DEBUG ") && l.contains("source=xero")),
        "the run's debug log was not captured"
    );
    for secret in &secrets {
        assert!(
            !all_output.contains(secret.as_str()),
            "a secret leaked into the logs: {secret}"
        );
    }
}

/// Xero's webhooks with invoices synced hourly: its intent-to-receive check
/// (200 signed, 401 otherwise, no body), then an invoice event makes a run
/// of invoices and bills with trigger `source_webhook`; a wrongly signed
/// one makes none.
async fn source_webhooks(api: &str, company: &str) {
    let http = tributary_testkit::http();
    let send = |body: String, signature: Option<String>| {
        let mut request = http
            .post(format!("{api}/v1/sources/xero/webhooks"))
            .header("content-type", "application/json")
            .body(body);
        if let Some(signature) = signature {
            request = request.header("x-xero-signature", signature);
        }
        async move {
            let resp = request.send().await.unwrap();
            (resp.status().as_u16(), resp.text().await.unwrap())
        }
    };
    let sign =
        |body: &str, key: &str| tributary_connector_xero::webhooks::sign(key, body.as_bytes());
    let webhook_runs = || async {
        get(&format!(
            "{api}/v1/companies/{company}/syncs?trigger=source_webhook"
        ))
        .await
        .unwrap()["runs"]
            .as_array()
            .unwrap()
            .clone()
    };

    let intent =
        r#"{"events":[],"lastEventSequence":0,"firstEventSequence":0,"entropy":"S0m3r4Nd0mt3xt"}"#;
    assert_eq!(
        send(intent.into(), Some(sign(intent, WEBHOOK_KEY))).await,
        (200, String::new())
    );
    assert_eq!(
        send(intent.into(), Some(sign(intent, "not the key"))).await,
        (401, String::new())
    );
    assert_eq!(send(intent.into(), None).await, (401, String::new()));

    let event = format!(
        r#"{{"events":[{{"resourceUrl":"https://api.xero.com/api.xro/2.0/Invoices/x","resourceId":"x","eventDateUtc":"2026-12-03T10:00:00.000","eventType":"UPDATE","eventCategory":"INVOICE","tenantId":"{TENANT}","tenantType":"ORGANISATION"}}],"lastEventSequence":2,"firstEventSequence":2,"entropy":"ABCDEFGHIJ"}}"#
    );
    // Signed with another key: refused, and nothing queued (queueing
    // happens before the answer, so none can come later).
    assert_eq!(
        send(event.clone(), Some(sign(&event, "not the key")))
            .await
            .0,
        401
    );
    assert!(webhook_runs().await.is_empty());

    assert_eq!(
        send(event.clone(), Some(sign(&event, WEBHOOK_KEY))).await,
        (200, String::new())
    );
    let started = Instant::now();
    loop {
        let runs = webhook_runs().await;
        let mut done: Vec<(&str, &str)> = runs
            .iter()
            .map(|r| {
                (
                    r["data_type"].as_str().unwrap(),
                    r["status"].as_str().unwrap(),
                )
            })
            .collect();
        done.sort();
        if done == [("bills", "succeeded"), ("invoices", "succeeded")] {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60) && runs.len() <= 2,
            "source webhook runs: {runs:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
