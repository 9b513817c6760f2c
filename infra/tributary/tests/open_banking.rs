#![allow(clippy::unwrap_used)] // a test stops at its first surprise
//! Open Banking end to end: a fake bank (the standard's consent, PKCE and
//! signed request object, fixtures built from the spec's schemas) behind
//! Prism validating every answer against the standard's spec, one
//! connection added through the CLI and one through the API, each
//! authorized by the bank's redirect to the API's callback, then `tributary
//! up` syncing accounts, dated balances, transactions (five decimal places
//! kept through store, index and API), direct debits and standing orders;
//! a standard client decodes the topics; a consent revoked at the bank
//! makes its connection `deauthorized` with the reason.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};
use tributary_testkit::free_port;
use tributary_testkit::open_banking::{CLIENT_ID, CLIENT_SECRET, FakeBank, KID};
use tributary_testkit::prism::Prism;

const CREDENTIALS_KEY: &str = "1b1c2b3a4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_banking_from_a_fake_bank_to_the_api() {
    let fixtures = tributary_testkit::prism::workspace_root()
        .join("connectors/tributary-connector-open-banking/tests/fixtures");
    let bank = FakeBank::start(fixtures).await;
    // The Account and Transaction API is reached through Prism, which checks
    // every request and answer against the spec (a violation is an error).
    let upstream = bank.url.clone();
    let spec = tributary_testkit::prism::workspace_root()
        .join("connectors/tributary-connector-open-banking/spec/account-info-openapi.yaml");
    let prism = tokio::task::spawn_blocking(move || Prism::proxy(&spec, &upstream))
        .await
        .unwrap();
    bank.set_base(&prism.url);
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("signing.pem");
    std::fs::write(&key_file, &bank.signing_key_pem).unwrap();
    let (broker, registry, api) = (free_port(), free_port(), free_port());
    let config = dir.path().join("tributary.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {data:?}\n\
             [kafka]\npartitions = 2\n[broker]\nport = {broker}\n[registry]\nport = {registry}\n\
             [api]\nlisten = \"127.0.0.1:{api}\"\n{API_KEYS_TOML}\n\
             [sandbox]\nenabled = false\n\
             [sync]\ninterval_secs = 1\npage_size = 100\nretry_base_ms = 200\n\
             [projector]\nbatch_size = 50\nlinger_ms = 50\n\
             [connectors.open_banking]\nclient_id = {CLIENT_ID:?}\nclient_secret = {CLIENT_SECRET:?}\n\
             redirect_uri = \"http://127.0.0.1:{api}/v1/oauth/open_banking/callback\"\n\
             signing_key_file = {key_file:?}\nsigning_kid = {KID:?}\nconsent_check_secs = 1\n\
             [security]\nallow_private_network = true\ncredentials_key = {CREDENTIALS_KEY:?}\n",
            data = dir.path().join("data"),
        ),
    )
    .unwrap();

    // One connection through the CLI: it creates the consent at once.
    let mut settings = bank.settings();
    settings["api_url"] = json!(prism.url);
    let setting = |k: &str| format!("{k}={}", settings[k].as_str().unwrap());
    let added = run(
        &config,
        &[
            "connections",
            "add",
            "open_banking",
            "--company",
            "bakery-cli",
            "--setting",
            &setting("api_url"),
            "--setting",
            &setting("token_url"),
            "--setting",
            &setting("authorize_url"),
        ],
    );
    let cli_link = added
        .lines()
        .find_map(|l| l.strip_prefix("grant access at: "))
        .unwrap_or_else(|| panic!("no authorization URL in {added}"))
        .to_string();

    let mut up = up(&config, &dir.path().join("up.log"), &[]);
    let api = format!("http://127.0.0.1:{api}");
    wait_for_health(&api, dir.path()).await;

    // One through the API.
    let http = tributary_testkit::http();
    let created: Value = http
        .post(format!("{api}/v1/connections"))
        .bearer_auth(API_KEY)
        .json(
            &json!({ "company_id": "bakery-api", "source": "open_banking", "settings": settings }),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(created["connection"]["status"], "pending_auth", "{created}");
    let api_link = created["authorize_url"].as_str().unwrap().to_string();

    // The customer authorizes at the bank, which redirects to the callback.
    for link in [&cli_link, &api_link] {
        let (code, state) = bank.grant(link).await.unwrap();
        let callback = reqwest::get(format!(
            "{api}/v1/oauth/open_banking/callback?code={code}&state={state}"
        ))
        .await
        .unwrap();
        assert_eq!(
            callback.status().as_u16(),
            200,
            "{}",
            callback.text().await.unwrap()
        );
    }

    let expected = [
        ("bank_accounts", 2),
        ("bank_balances", 3),
        ("bank_feed_transactions", 4),
        ("direct_debits", 1),
        ("standing_orders", 1),
    ];
    for company in ["bakery-cli", "bakery-api"] {
        wait_for_types(&api, company, &expected, dir.path()).await;
    }

    // Five decimal places, end to end: fixture, store, API.
    let tx = get(&format!(
        "{api}/v1/companies/bakery-api/data/bank_feed_transactions/tx-22289-0001"
    ))
    .await
    .unwrap();
    assert_eq!(tx["data"]["amount"], "1234.56789", "{tx}");
    assert_eq!(tx["data"]["balance_after"], "10250.12345");
    assert_eq!(tx["data"]["counterparty_name"], "Harbour Catering");
    assert_eq!(tx["data"]["status"], "booked");
    let page = get(&format!(
        "{api}/v1/companies/bakery-cli/data/bank_feed_transactions"
    ))
    .await
    .unwrap();
    let amounts: Vec<&str> = page["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["data"]["amount"].as_str().unwrap())
        .collect();
    for want in ["1234.56789", "-42.50", "-9.99", "0.00001"] {
        assert!(amounts.contains(&want), "{want} not in {amounts:?}");
    }
    let balance = get(&format!(
        "{api}/v1/companies/bakery-cli/data/bank_balances/22289:ITAV:2026-12-01"
    ))
    .await
    .unwrap();
    assert_eq!(balance["data"]["amount"], "10250.12345", "{balance}");
    let hits = get(&format!("{api}/v1/search?q=Harbour&company=bakery-cli"))
        .await
        .unwrap();
    assert_eq!(hits["hits"].as_array().unwrap().len(), 1, "{hits}");

    // A standard Kafka client decodes every event of the banking topics.
    let report = read_topics(
        &format!("127.0.0.1:{broker}"),
        &format!("http://127.0.0.1:{registry}"),
        Some("bank_accounts,bank_balances,bank_feed_transactions,direct_debits,standing_orders"),
    );
    for topic in ["bank_accounts", "bank_balances", "bank_feed_transactions"] {
        assert!(
            report["decoded"][format!("tributary.v1.{topic}")]
                .as_i64()
                .unwrap()
                > 0,
            "{report}"
        );
    }

    // The customer revokes the consent at the bank: the connection becomes
    // deauthorized, with the reason.
    let connections = get(&format!("{api}/v1/connections")).await.unwrap();
    let cli = connections["connections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["company_id"] == "bakery-cli")
        .unwrap()
        .clone();
    bank.set_consent(cli["settings"]["consent_id"].as_str().unwrap(), "CANC");
    let started = Instant::now();
    loop {
        let connections = get(&format!("{api}/v1/connections")).await.unwrap();
        let now = connections["connections"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == cli["id"])
            .unwrap()
            .clone();
        if now["status"] == "deauthorized" {
            assert!(
                now["status_reason"].as_str().unwrap().contains("CANC"),
                "{now}"
            );
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "never deauthorized: {now}\n{}",
            logs(dir.path())
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    terminate(&mut up);
    assert!(
        up.wait().unwrap().success(),
        "tributary up did not stop cleanly"
    );
    let mut output = std::fs::read_to_string(dir.path().join("up.log")).unwrap();
    output += &added;
    output += &run(&config, &["config"]);
    let mut secrets = bank.issued();
    secrets.push(CLIENT_SECRET.to_string());
    for secret in &secrets {
        assert!(
            !output.contains(secret.as_str()),
            "a secret leaked: {secret}"
        );
    }
}
