//! The connections contract between the connector runtime, which manages
//! connections (add, check, remove, authorize, ask for a sync), and those
//! who drive it (the HTTP API, the CLI), so neither depends on the other.

/// A connection as the API shows it: never with credentials.
pub type ConnectionView = serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Failed(String),
}

/// Connection management: implemented by the connector runtime
/// (`tributary-producer`) over the workers' state store and the connector
/// registry; used by the HTTP API and the CLI.
#[async_trait::async_trait]
pub trait ConnectionAdmin: Send + Sync {
    async fn list(&self) -> Result<Vec<ConnectionView>, AdminError>;
    /// Adds a connection; returns it and, when a person must grant access,
    /// the URL to send them to.
    async fn add(
        &self,
        company_id: &str,
        source: &str,
        settings: serde_json::Value,
    ) -> Result<(ConnectionView, Option<String>), AdminError>;
    /// Authenticates and fetches one page; returns what it saw.
    async fn check(&self, connection_id: &str) -> Result<String, AdminError>;
    /// Unlinks: stops syncing, erases credentials, keeps records.
    async fn remove(&self, connection_id: &str) -> Result<(), AdminError>;
    /// Asks the workers, wherever they run, to sync every connection now.
    async fn request_sync(&self) -> Result<(), AdminError>;
    /// Completes an OAuth2 authorization from the source's redirect.
    async fn complete_authorization(
        &self,
        source: &str,
        state: &str,
        code: &str,
    ) -> Result<ConnectionView, AdminError>;
}
