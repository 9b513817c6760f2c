#![allow(clippy::unwrap_used)] // a test stops at its first surprise
//! The Open Banking connector and the standard's own spec
//! (`spec/account-info-openapi.yaml`), through Prism: the fixtures the
//! other tests use pass Prism's validation of every answer against the
//! spec (Prism as a validating proxy in front of the fake bank), and
//! Prism's own answers (static and dynamic mode) never make the connector
//! panic, hang or call a fault its own.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tributary_connector_api::{ConnectionInfo, Connector, ConnectorFactory, Fault, PageRequest};
use tributary_connector_http::NetworkPolicy;
use tributary_connector_open_banking::{OpenBankingApp, OpenBankingFactory};
use tributary_schemas::{DataType, Timestamp};
use tributary_testkit::open_banking::{CLIENT_ID, CLIENT_SECRET, FakeBank, KID};
use tributary_testkit::prism::Prism;
use tributary_testkit::vault::MemoryVault;

fn spec() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("spec/account-info-openapi.yaml")
}

fn factory(signing_key: &str) -> OpenBankingFactory {
    OpenBankingFactory::new(OpenBankingApp {
        client_id: CLIENT_ID.into(),
        client_secret: CLIENT_SECRET.into(),
        redirect_uri: "http://127.0.0.1:1/v1/oauth/open_banking/callback".into(),
        signing_key: signing_key.into(),
        signing_kid: KID.into(),
        network: NetworkPolicy {
            allow_private: true,
        },
        ..OpenBankingApp::default()
    })
    .unwrap()
}

fn connection(settings: Value) -> ConnectionInfo {
    ConnectionInfo {
        connection_id: "conn-ob-prism".into(),
        company_id: "bakery".into(),
        source: "open_banking".into(),
        settings,
    }
}

/// Pages through one data type: the records, or the first error.
async fn pass(
    connector: &dyn Connector,
    data_type: DataType,
) -> Result<Vec<Value>, tributary_connector_api::ConnectorError> {
    let mut cursor = None;
    let mut records = Vec::new();
    for _ in 0..20 {
        let page = tokio::time::timeout(
            Duration::from_secs(20),
            connector.fetch_page(&PageRequest {
                data_type,
                cursor: cursor.clone(),
                now: Timestamp::now(),
                page_size: 100,
            }),
        )
        .await
        .unwrap_or_else(|_| panic!("{data_type}: no answer in 20 s"))?;
        records.extend(page.records);
        if !page.has_more {
            return Ok(records);
        }
        // A source repeating a cursor is stopped by the runtime.
        if page.next_cursor == cursor {
            return Ok(records);
        }
        cursor = page.next_cursor;
    }
    Ok(records)
}

/// Every answer the fake bank gives from the fixtures passes through Prism
/// validating it against the spec (`--errors`: a violation would be an
/// error answer, failing the fetch).
#[tokio::test(flavor = "multi_thread")]
async fn the_fixtures_pass_the_specs_validation() {
    let bank =
        FakeBank::start(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")).await;
    let upstream = bank.url.clone();
    let proxy = tokio::task::spawn_blocking(move || Prism::proxy(&spec(), &upstream))
        .await
        .unwrap();
    bank.set_base(&proxy.url);
    let mut settings = bank.settings();
    settings["api_url"] = json!(proxy.url);
    let factory = factory(&bank.signing_key_pem);
    let vault = Arc::new(MemoryVault::default());
    let link = factory
        .authorization_url(&connection(settings.clone()), "s", vault.clone())
        .await
        .unwrap();
    let (code, _) = bank.grant(&link).await.unwrap();
    let granted = factory
        .complete_authorization(&connection(settings.clone()), &code, vault.clone())
        .await
        .unwrap();
    for (k, v) in granted.as_object().unwrap() {
        settings[k] = v.clone();
    }
    let connector = factory.build(&connection(settings), vault).unwrap();
    connector.authenticate().await.unwrap();
    let mut total = 0;
    for data_type in connector.data_types() {
        let records = pass(connector.as_ref(), data_type)
            .await
            .unwrap_or_else(|e| panic!("{data_type} through the validating proxy: {e}"));
        for raw in &records {
            connector.map(data_type, raw).unwrap();
        }
        total += records.len();
    }
    assert_eq!(total, 2 + 3 + 4 + 1 + 1);
}

/// Prism's answers from the spec, static then dynamic: the conformance
/// suite holds; pages or clear errors that are not the connector's own
/// fault; records that map or are refused alone.
#[tokio::test(flavor = "multi_thread")]
async fn prisms_answers_never_break_it() {
    for dynamic in [false, true] {
        let prism = tokio::task::spawn_blocking(move || Prism::serve(&spec(), dynamic))
            .await
            .unwrap();
        let settings = json!({
            "api_url": prism.url,
            "token_url": format!("{}/token", prism.url),
            "authorize_url": format!("{}/authorize", prism.url),
            "consent_id": "urn-consent-1",
        });
        let vault = MemoryVault::with_tokens("at", "rt", Timestamp::now().millis() + 3_600_000);
        let connector = factory("").build(&connection(settings), vault).unwrap();
        // The connector conformance suite first (it panics on a breach):
        // Prism's `Links.Next` leave the API's host, so its passes end as
        // classified errors.
        tributary_testkit::conformance::check(
            connector.as_ref(),
            tributary_testkit::conformance::Source::Mock,
        )
        .await;
        let (mut records, mut refused, mut errors) = (0, 0, 0);
        for round in 0..3 {
            for data_type in connector.data_types() {
                match pass(connector.as_ref(), data_type).await {
                    Ok(raw) => {
                        for r in &raw {
                            records += 1;
                            if let Err(e) = connector.map(data_type, r) {
                                assert_eq!(e.fault, Fault::Data, "{e}");
                                refused += 1;
                            }
                        }
                    }
                    Err(e) => {
                        if round == 0 {
                            eprintln!("{data_type}: {e}");
                        }
                        assert_ne!(e.fault, Fault::Internal, "{data_type} round {round}: {e}");
                        errors += 1;
                    }
                }
            }
        }
        // Prism's pages carry `Links.Next` at another host, which the
        // connector refuses to follow (a Source error above): its records
        // are mapped here straight from the answers instead.
        let http = reqwest::Client::new();
        let mut mapped = 0;
        for (path, collection, data_type) in [
            ("/accounts", "Account", DataType::BankAccount),
            ("/accounts/22289/balances", "Balance", DataType::BankBalance),
            (
                "/accounts/22289/transactions",
                "Transaction",
                DataType::BankFeedTransaction,
            ),
            (
                "/accounts/22289/direct-debits",
                "DirectDebit",
                DataType::DirectDebit,
            ),
            (
                "/accounts/22289/standing-orders",
                "StandingOrder",
                DataType::StandingOrder,
            ),
        ] {
            for _ in 0..3 {
                let body: Value = http
                    .get(format!("{}{path}", prism.url))
                    .bearer_auth("at")
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                let list = body["Data"][collection]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                for raw in list {
                    let raw =
                        tributary_connector_open_banking::map::observed(raw, Timestamp::now());
                    match connector.map(data_type, &raw) {
                        Ok(_) => mapped += 1,
                        Err(e) => {
                            assert_eq!(e.fault, Fault::Data, "{e}");
                            refused += 1;
                        }
                    }
                }
            }
        }
        eprintln!(
            "dynamic {dynamic}: {records} records through pages, {mapped} mapped and {refused} refused from answers, {errors} page errors"
        );
        if !dynamic {
            assert!(
                mapped > 0,
                "the spec's property examples make records that map"
            );
        }
    }
}
