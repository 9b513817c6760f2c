//! The runtime's [`CredentialVault`]: a connection's credentials sealed
//! with the [`Cipher`] in the state store.

use std::sync::Arc;

use async_trait::async_trait;
use tributary_connector_api::{ConnectorError, CredentialVault, Credentials, Fault};
use tributary_schemas::Timestamp;

use crate::secrets::Cipher;
use crate::state::StateStore;

pub struct StateVault {
    pub state: StateStore,
    pub cipher: Arc<Cipher>,
    pub connection_id: String,
}

impl StateVault {
    /// The vault of one connection's credentials.
    pub fn new(state: &StateStore, cipher: &Arc<Cipher>, connection_id: &str) -> Arc<StateVault> {
        Arc::new(StateVault {
            state: state.clone(),
            cipher: Arc::clone(cipher),
            connection_id: connection_id.to_string(),
        })
    }
}

fn vault_err(message: impl std::fmt::Display) -> ConnectorError {
    ConnectorError::new("vault", Fault::Internal, message)
}

#[async_trait]
impl CredentialVault for StateVault {
    async fn load(&self) -> Result<Option<Credentials>, ConnectorError> {
        let Some(sealed) = self
            .state
            .sealed_credentials(&self.connection_id)
            .await
            .map_err(|e| vault_err(format!("cannot read credentials: {e}")))?
        else {
            return Ok(None);
        };
        let plain = self
            .cipher
            .open(&self.connection_id, &sealed)
            .map_err(vault_err)?;
        let value = serde_json::from_slice(&plain).map_err(|e| {
            vault_err(format!(
                "credentials of connection {} are not JSON: {e}",
                self.connection_id
            ))
        })?;
        Ok(Some(Credentials(value)))
    }

    async fn save(&self, credentials: &Credentials) -> Result<(), ConnectorError> {
        let plain = serde_json::to_vec(&credentials.0)
            .map_err(|e| vault_err(format!("cannot encode credentials: {e}")))?;
        let sealed = self.cipher.seal(&self.connection_id, &plain);
        self.state
            .save_sealed_credentials(&self.connection_id, &sealed, Timestamp::now())
            .await
            .map_err(|e| {
                vault_err(format!(
                    "cannot save credentials of connection {}: {e}",
                    self.connection_id
                ))
            })
    }
}
