#![allow(clippy::unwrap_used)] // a test stops at its first surprise
//! The connector conformance suite (`tributary_testkit::conformance`) on
//! Xero against hostile answers: no panic, no hang, every error classified.
//! (Against Prism serving Xero's spec: `tests/prism.rs`.)

mod common;

use std::time::Duration;

use common::{MemoryVault, TENANT, app, connection};
use tributary_connector_api::ConnectorFactory;
use tributary_connector_xero::XeroFactory;
use tributary_schemas::Timestamp;
use tributary_testkit::conformance::{HostileServer, check_hostile};
use tributary_testkit::xero_identity::FakeIdentity;

#[tokio::test(flavor = "multi_thread")]
async fn hostile_answers_end_as_classified_errors() {
    let server = HostileServer::start(2 << 20).await;
    let identity = FakeIdentity::start(Duration::from_secs(60), 1800, &[TENANT]).await;
    let mut app = app(&server.url, &identity);
    app.timeout = Duration::from_secs(2);
    app.max_response_bytes = 1 << 20;
    let vault = MemoryVault::with_tokens("at", "rt", Timestamp::now().millis() + 3_600_000);
    let connector = XeroFactory::new(app)
        .unwrap()
        .build(&connection(Some(TENANT)), vault)
        .unwrap();
    let failed = check_hostile(connector.as_ref(), &server).await;
    assert!(failed >= 6 * connector.data_types().len(), "{failed}");
}
