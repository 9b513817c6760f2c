#![allow(dead_code)] // each test file uses its own part of these
//! What the Xero connector's test files share: a vault in memory, an app
//! pointed at local fakes, a connection and a page request.

use std::time::Duration;

use serde_json::json;
use tributary_connector_api::{ConnectionInfo, Cursor, PageRequest};
use tributary_connector_http::NetworkPolicy;
use tributary_connector_xero::XeroApp;
use tributary_schemas::{DataType, Timestamp};
pub(crate) use tributary_testkit::vault::MemoryVault;
use tributary_testkit::xero_identity::{CLIENT_ID, CLIENT_SECRET, FakeIdentity};

pub(crate) const TENANT: &str = "3f0a9c4e-0000-4000-8000-00000000a11c";

pub(crate) fn app(api_url: &str, identity: &FakeIdentity) -> XeroApp {
    let mut app = XeroApp::new(CLIENT_ID, CLIENT_SECRET, "http://127.0.0.1:1/callback");
    app.api_url = api_url.to_string();
    app.token_url = identity.token_url();
    app.connections_url = identity.connections_url();
    app.authorize_url = format!("{}/authorize", identity.url);
    app.network = NetworkPolicy {
        allow_private: true,
    };
    app.timeout = Duration::from_secs(5);
    app.max_response_bytes = 1 << 20;
    app
}

pub(crate) fn connection(tenant: Option<&str>) -> ConnectionInfo {
    ConnectionInfo {
        connection_id: "conn-xero-1".into(),
        company_id: "acme".into(),
        source: "xero".into(),
        settings: json!({ "tenant_id": tenant }),
    }
}

pub(crate) fn request(data_type: DataType, cursor: Option<Cursor>, page_size: u32) -> PageRequest {
    PageRequest {
        data_type,
        cursor,
        now: Timestamp::now(),
        page_size,
    }
}
