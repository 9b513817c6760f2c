#![allow(clippy::unwrap_used)] // a test stops at its first surprise
//! The connector conformance suite (`tributary_testkit::conformance`) on
//! Square against hostile answers: no panic, no hang, every error
//! classified. (Against Prism serving Square's spec: `tests/prism.rs`.)

use serde_json::json;
use tributary_connector_api::{ConnectionInfo, ConnectorFactory};
use tributary_connector_http::NetworkPolicy;
use tributary_connector_square::{SquareApp, SquareFactory};
use tributary_schemas::Timestamp;
use tributary_testkit::conformance::{HostileServer, check_hostile};
use tributary_testkit::vault::MemoryVault;

/// A connection of merchant M1 through `app`, with valid tokens.
fn connect(app: SquareApp) -> std::sync::Arc<dyn tributary_connector_api::Connector> {
    let vault = MemoryVault::with_tokens("at", "rt", Timestamp::now().millis() + 7 * 86_400_000);
    let connection = ConnectionInfo {
        connection_id: "conn-sq".into(),
        company_id: "shop".into(),
        source: "square".into(),
        settings: json!({ "merchant_id": "M1" }),
    };
    SquareFactory::new(app)
        .unwrap()
        .build(&connection, vault)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_answers_end_as_classified_errors() {
    let server = HostileServer::start(2 << 20).await;
    let app = SquareApp {
        client_id: "id".into(),
        client_secret: "secret".into(),
        base_url: server.url.clone(),
        timeout_secs: 2,
        max_response_bytes: 1 << 20,
        network: NetworkPolicy {
            allow_private: true,
        },
        ..SquareApp::default()
    };
    let connector = connect(app);
    let failed = check_hostile(connector.as_ref(), &server).await;
    assert!(failed >= 5 * connector.data_types().len(), "{failed}");
}

/// A page with two records of 1.5 MB among good ones comes whole at the
/// default answer cap; the good ones and the large valid one map, the large
/// invalid one is refused alone (a dead letter), naming itself.
#[tokio::test(flavor = "multi_thread")]
async fn a_page_with_huge_records_among_good_ones() {
    let big = "x".repeat(1_500_000);
    let payment = |id: &str| {
        json!({ "id": id, "updated_at": "2026-11-30T10:00:00Z", "status": "COMPLETED",
                "amount_money": { "amount": 1999, "currency": "GBP" } })
    };
    let mut huge_valid = payment("p-huge");
    huge_valid["reference_id"] = json!(big);
    let mut huge_invalid = payment("p-broken");
    huge_invalid.as_object_mut().unwrap().remove("amount_money");
    huge_invalid["note"] = json!(big);
    let body = json!({ "payments": [payment("p-1"), huge_valid, huge_invalid, payment("p-2")] })
        .to_string();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new().route(
        "/v2/payments",
        axum::routing::get(move || {
            let body = body.clone();
            async move { ([("content-type", "application/json")], body) }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    let app = SquareApp {
        base_url: url,
        network: NetworkPolicy {
            allow_private: true,
        },
        ..SquareApp::default()
    };
    let connector = connect(app);
    let page = connector
        .fetch_page(&tributary_connector_api::PageRequest {
            data_type: tributary_schemas::DataType::CommercePayment,
            cursor: None,
            now: Timestamp::now(),
            page_size: 100,
        })
        .await
        .unwrap();
    assert_eq!(page.records.len(), 4);
    let mapped: Vec<_> = page
        .records
        .iter()
        .map(|r| connector.map(tributary_schemas::DataType::CommercePayment, r))
        .collect();
    for (i, m) in mapped.iter().enumerate() {
        if i == 2 {
            let e = m.as_ref().unwrap_err();
            assert_eq!(e.fault, tributary_connector_api::Fault::Data);
            assert!(
                e.message.contains("p-broken") && e.message.contains("amount_money"),
                "{e}"
            );
        } else {
            assert!(m.is_ok(), "{i}: {m:?}");
        }
    }
}
