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
    let vault = MemoryVault::with_tokens("at", "rt", Timestamp::now().millis() + 7 * 86_400_000);
    let connection = ConnectionInfo {
        connection_id: "conn-sq".into(),
        company_id: "shop".into(),
        source: "square".into(),
        settings: json!({ "merchant_id": "M1" }),
    };
    let connector = SquareFactory::new(app)
        .unwrap()
        .build(&connection, vault)
        .unwrap();
    let failed = check_hostile(connector.as_ref(), &server).await;
    assert!(failed >= 5 * connector.data_types().len(), "{failed}");
}
