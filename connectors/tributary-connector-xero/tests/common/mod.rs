#![allow(dead_code)] // each test file uses its own part of these
//! What the Xero connector's test files share: a vault in memory, an app
//! pointed at local fakes, a connection and a page request.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use tributary_connector_api::{
    ConnectionInfo, ConnectorError, CredentialVault, Credentials, Cursor, Fault, PageRequest,
};
use tributary_connector_http::NetworkPolicy;
use tributary_connector_xero::XeroApp;
use tributary_schemas::{DataType, Timestamp};
use tributary_testkit::xero_identity::{CLIENT_ID, CLIENT_SECRET, FakeIdentity};

pub(crate) const TENANT: &str = "3f0a9c4e-0000-4000-8000-00000000a11c";

/// A vault in memory that can be told to fail its next saves.
#[derive(Default)]
pub(crate) struct MemoryVault {
    pub stored: Mutex<Option<Credentials>>,
    pub fail_saves: Mutex<u32>,
}

#[async_trait::async_trait]
impl CredentialVault for MemoryVault {
    async fn load(&self) -> Result<Option<Credentials>, ConnectorError> {
        Ok(self.stored.lock().unwrap().clone())
    }
    async fn save(&self, credentials: &Credentials) -> Result<(), ConnectorError> {
        let mut fail = self.fail_saves.lock().unwrap();
        if *fail > 0 {
            *fail -= 1;
            return Err(ConnectorError::new("test", Fault::Internal, "disk full"));
        }
        *self.stored.lock().unwrap() = Some(credentials.clone());
        Ok(())
    }
}

impl MemoryVault {
    pub(crate) fn with_tokens(access: &str, refresh: &str, expires_at: i64) -> Arc<MemoryVault> {
        let vault = MemoryVault::default();
        *vault.stored.lock().unwrap() = Some(Credentials(json!({
            "access_token": access, "refresh_token": refresh, "expires_at": expires_at
        })));
        Arc::new(vault)
    }
    pub(crate) fn refresh_token(&self) -> String {
        self.stored.lock().unwrap().as_ref().unwrap().0["refresh_token"]
            .as_str()
            .unwrap()
            .to_string()
    }
}

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
