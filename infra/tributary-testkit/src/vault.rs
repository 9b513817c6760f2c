//! A credential vault in memory for connector tests, that can be told to
//! fail its next saves (a full disk).

use std::sync::{Arc, Mutex};

use serde_json::json;
use tributary_connector_api::{ConnectorError, CredentialVault, Credentials, Fault};

#[derive(Default)]
pub struct MemoryVault {
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
    /// A vault holding OAuth2 tokens that expire at `expires_at` (ms).
    pub fn with_tokens(access: &str, refresh: &str, expires_at: i64) -> Arc<MemoryVault> {
        let vault = MemoryVault::default();
        *vault.stored.lock().unwrap() = Some(Credentials(json!({
            "access_token": access, "refresh_token": refresh, "expires_at": expires_at
        })));
        Arc::new(vault)
    }

    /// The stored token named `field` (`access_token`, `refresh_token`).
    pub fn token(&self, field: &str) -> String {
        self.stored.lock().unwrap().as_ref().unwrap().0[field]
            .as_str()
            .unwrap()
            .to_string()
    }

    pub fn refresh_token(&self) -> String {
        self.token("refresh_token")
    }
}
