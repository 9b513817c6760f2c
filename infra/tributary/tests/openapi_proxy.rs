#![allow(clippy::unwrap_used)] // a test stops at its first surprise
//! The API against its OpenAPI document, for real: Prism as a validating
//! proxy (`prism proxy --errors docs/openapi.json`) in front of a running
//! pipeline (sandbox), sent the calls an operator's client makes, error
//! answers included. Prism checks each request and each answer against the
//! document and answers an error of its own for one that breaks it; so
//! every call must come back with the status the pipeline gives it and no
//! `sl-violations` header.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use serde_json::{Value, json};
use tributary_testkit::free_port;
use tributary_testkit::prism::Prism;

struct Client {
    base: String,
}

impl Client {
    /// Sends one call through the proxy; fails unless its status is one of
    /// `want` and Prism saw no violation. The answer's body.
    async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        key: Option<&str>,
        want: &[u16],
    ) -> Value {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request =
            tributary_testkit::http().request(method.clone(), format!("{}{path}", self.base));
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let resp = request.send().await.unwrap();
        let status = resp.status().as_u16();
        let violations = resp
            .headers()
            .get("sl-violations")
            .map(|v| v.to_str().unwrap_or_default().to_string());
        let text = resp.text().await.unwrap();
        assert!(
            want.contains(&status) && violations.is_none(),
            "{method} {path}: {status} (want {want:?}), violations {violations:?}\n{text}"
        );
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_of_the_running_api_validates_against_the_document() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (broker, registry, api_port) = (free_port(), free_port(), free_port());
    let config = d.join("tributary.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {data:?}\nlog = \"info,librdkafka=warn\"\n\
             [security]\nallow_private_network = true\n\
             [broker]\nport = {broker}\n[registry]\nport = {registry}\n\
             [api]\nlisten = \"127.0.0.1:{api_port}\"\n{API_KEYS_TOML}\n\
             [sandbox]\ncompanies = 2\nrecords = 10\ngenerations = 1\ngeneration_interval_secs = 0\nkinds = [\"accounting\"]\n\
             [sync]\ninterval_secs = 3600\n",
            data = d.join("data"),
        ),
    )
    .unwrap();
    let _pipeline = up(&config, &d.join("up.log"), &[]);
    let api = format!("http://127.0.0.1:{api_port}");
    wait_for_health(&api, d).await;
    wait_for_data_type(&api, "sandbox-001", "invoices", d).await;

    let spec = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json");
    let upstream = api.clone();
    let prism = tokio::task::spawn_blocking(move || Prism::proxy(&spec, &upstream))
        .await
        .unwrap();
    let c = Client {
        base: prism.url.clone(),
    };
    let key = Some(API_KEY);

    // Operations and the document itself.
    c.call("GET", "/health", None, None, &[200]).await;
    c.call("GET", "/openapi.json", None, None, &[200]).await;
    // Sign-in: no key, a wrong key, the key.
    c.call("GET", "/v1/companies", None, None, &[401]).await;
    c.call("GET", "/v1/companies", None, Some("wrong"), &[401])
        .await;
    let companies = c.call("GET", "/v1/companies", None, key, &[200]).await;
    assert!(
        !companies["companies"].as_array().unwrap().is_empty(),
        "{companies}"
    );

    // Data: status, records, one record, search.
    c.call("GET", "/v1/companies/sandbox-001/status", None, key, &[200])
        .await;
    c.call("GET", "/v1/companies/nobody/status", None, key, &[404])
        .await;
    let page = c
        .call(
            "GET",
            "/v1/companies/sandbox-001/data/invoices?limit=2",
            None,
            key,
            &[200],
        )
        .await;
    let cursor = page["next_cursor"].as_str().unwrap().to_string();
    let id = page["records"][0]["id"].as_str().unwrap().to_string();
    c.call(
        "GET",
        &format!("/v1/companies/sandbox-001/data/invoices?limit=2&cursor={cursor}"),
        None,
        key,
        &[200],
    )
    .await;
    c.call(
        "GET",
        &format!("/v1/companies/sandbox-001/data/invoices/{id}"),
        None,
        key,
        &[200],
    )
    .await;
    c.call(
        "GET",
        "/v1/companies/sandbox-001/data/invoices/nothing",
        None,
        key,
        &[404],
    )
    .await;
    c.call(
        "GET",
        "/v1/companies/sandbox-001/data/teapots",
        None,
        key,
        &[400],
    )
    .await;
    c.call(
        "GET",
        "/v1/companies/sandbox-001/data/invoices?limit=0",
        None,
        key,
        &[400],
    )
    .await;
    c.call(
        "GET",
        "/v1/companies/sandbox-001/data/invoices?cursor=junk",
        None,
        key,
        &[400],
    )
    .await;
    c.call("GET", "/v1/search?q=sandbox&limit=5", None, key, &[200])
        .await;
    c.call("GET", "/v1/search?q=%20", None, key, &[400]).await;

    // Syncs: ask (once the first syncs ended), conflict, refused, history,
    // one run.
    wait_until("sandbox-001's first syncs never ended", d, async || {
        let status = get(&format!("{api}/v1/companies/sandbox-001/status")).await;
        match status {
            Some(s) if s["running"].as_array().is_some_and(Vec::is_empty) => Ok(()),
            other => Err(format!(
                "running: {:?}",
                other.map(|s| s["running"].clone())
            )),
        }
    })
    .await;
    let body = json!({"data_types": ["invoices"]});
    c.call(
        "POST",
        "/v1/companies/sandbox-001/syncs",
        Some(body.clone()),
        key,
        &[202],
    )
    .await;
    c.call(
        "POST",
        "/v1/companies/sandbox-001/syncs",
        Some(body),
        key,
        &[202, 409],
    )
    .await;
    c.call(
        "POST",
        "/v1/companies/sandbox-001/syncs",
        Some(json!({"resync": true, "reconcile": true})),
        key,
        &[400],
    )
    .await;
    c.call(
        "POST",
        "/v1/companies/sandbox-001/syncs",
        Some(json!({"data_types": ["teapots"]})),
        key,
        &[400],
    )
    .await;
    c.call("POST", "/v1/sync", None, key, &[202]).await;
    let runs = c
        .call(
            "GET",
            "/v1/companies/sandbox-001/syncs?limit=3",
            None,
            key,
            &[200],
        )
        .await;
    let run = runs["runs"][0]["id"].as_str().unwrap().to_string();
    c.call(
        "GET",
        &format!("/v1/companies/sandbox-001/syncs/{run}"),
        None,
        key,
        &[200],
    )
    .await;
    c.call(
        "GET",
        "/v1/companies/sandbox-001/syncs/run-none",
        None,
        key,
        &[404],
    )
    .await;
    c.call(
        "GET",
        "/v1/companies/sandbox-001/syncs?status=lost",
        None,
        key,
        &[400],
    )
    .await;
    c.call(
        "POST",
        &format!("/v1/companies/sandbox-001/data/invoices/{id}/refetch"),
        None,
        key,
        &[202, 400, 409],
    )
    .await;

    // Dead letters: three bad messages set aside, one read and replayed.
    make_dead_letters(&api, broker, d).await;
    let letters = c
        .call("GET", "/v1/dead-letters?limit=10", None, key, &[200])
        .await;
    let letter = letters["dead_letters"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let detail = c
        .call(
            "GET",
            &format!("/v1/dead-letters/{letter}"),
            None,
            key,
            &[200],
        )
        .await;
    assert!(detail["payload_base64"].is_string(), "{detail}");
    c.call(
        "POST",
        &format!("/v1/dead-letters/{letter}/replay"),
        None,
        key,
        &[200],
    )
    .await;
    c.call("GET", "/v1/dead-letters/0@999999", None, key, &[404])
        .await;
    c.call("GET", "/v1/dead-letters?stage=nowhere", None, key, &[400])
        .await;
    c.call(
        "POST",
        "/v1/dead-letters/0@999999/replay",
        None,
        key,
        &[400, 404],
    )
    .await;

    // Connections.
    c.call("GET", "/v1/connections", None, key, &[200]).await;
    c.call(
        "POST",
        "/v1/connections",
        Some(json!({"company_id": "acme", "source": "nowhere"})),
        key,
        &[400],
    )
    .await;
    c.call(
        "POST",
        "/v1/connections/conn-sandbox-001/check",
        None,
        key,
        &[200],
    )
    .await;
    c.call("POST", "/v1/connections/conn-none/check", None, key, &[404])
        .await;
    c.call(
        "GET",
        "/v1/connections/conn-sandbox-001/sync-settings",
        None,
        key,
        &[200],
    )
    .await;
    c.call(
        "PUT",
        "/v1/connections/conn-sandbox-001/sync-settings",
        Some(json!({"data_types": {"bills": {"enabled": false}}})),
        key,
        &[200],
    )
    .await;
    c.call(
        "PUT",
        "/v1/connections/conn-sandbox-001/sync-settings",
        Some(json!({"data_types": {"teapots": {"enabled": false}}})),
        key,
        &[400],
    )
    .await;
    c.call(
        "GET",
        "/v1/oauth/xero/callback?state=nothing",
        None,
        None,
        &[400],
    )
    .await;
    c.call(
        "POST",
        "/v1/sources/xero/webhooks",
        Some(json!({"events": []})),
        None,
        &[404],
    )
    .await;

    // Webhooks: subscribe, look, test, deliveries, replay, remove.
    let added = c
        .call(
            "POST",
            "/v1/webhooks",
            Some(json!({"url": "http://127.0.0.1:9/hook", "event_types": ["sync.completed"]})),
            key,
            &[201],
        )
        .await;
    let subscription = added["webhook"]["id"].as_str().unwrap().to_string();
    c.call(
        "POST",
        "/v1/webhooks",
        Some(json!({"url": "ftp://example.com/hook", "event_types": ["sync.completed"]})),
        key,
        &[400],
    )
    .await;
    c.call("GET", "/v1/webhooks", None, key, &[200]).await;
    c.call(
        "GET",
        &format!("/v1/webhooks/{subscription}"),
        None,
        key,
        &[200],
    )
    .await;
    let tested = c
        .call(
            "POST",
            &format!("/v1/webhooks/{subscription}/test"),
            None,
            key,
            &[202],
        )
        .await;
    let delivery = tested["delivery"]["id"].as_str().unwrap().to_string();
    c.call(
        "GET",
        &format!("/v1/webhooks/{subscription}/deliveries"),
        None,
        key,
        &[200],
    )
    .await;
    c.call(
        "GET",
        &format!("/v1/webhook-deliveries/{delivery}"),
        None,
        key,
        &[200],
    )
    .await;
    c.call(
        "POST",
        &format!("/v1/webhook-deliveries/{delivery}/replay"),
        None,
        key,
        &[202],
    )
    .await;
    c.call("GET", "/v1/webhook-deliveries/nothing", None, key, &[404])
        .await;
    c.call(
        "DELETE",
        &format!("/v1/webhooks/{subscription}"),
        None,
        key,
        &[204],
    )
    .await;
    c.call("GET", "/v1/webhooks/sub_none", None, key, &[404])
        .await;

    // Unlink last: the sync above may still run.
    tokio::time::sleep(Duration::from_millis(200)).await;
    c.call(
        "DELETE",
        "/v1/connections/conn-sandbox-002",
        None,
        key,
        &[200],
    )
    .await;
    c.call("DELETE", "/v1/connections/conn-none", None, key, &[404])
        .await;
}
