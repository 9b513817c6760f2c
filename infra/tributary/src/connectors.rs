//! The one list of connectors this build knows, each built from its
//! configuration. Adding a connector is a line here.

use std::time::Duration;

use anyhow::Context;
use tributary_config::Config;
use tributary_connector_api::ConnectorRegistry;
use tributary_connector_http::NetworkPolicy;

/// Every connector this build knows: the one explicit list.
pub(crate) fn connectors(config: &Config) -> anyhow::Result<ConnectorRegistry> {
    let x = &config.xero;
    let mut app = tributary_connector_xero::XeroApp::new(
        &x.client_id,
        x.client_secret.expose(),
        &x.redirect_uri,
    );
    app.authorize_url = x.authorize_url.clone();
    app.token_url = x.token_url.clone();
    app.api_url = x.api_url.clone();
    app.connections_url = x.connections_url.clone();
    app.timeout = Duration::from_secs(x.timeout_secs);
    app.max_response_bytes = x.max_response_bytes;
    app.limits = (x.calls_per_minute, x.calls_per_day, x.calls_at_once);
    app.network = NetworkPolicy {
        allow_private: config.security.allow_private_network,
    };
    let xero =
        tributary_connector_xero::XeroFactory::new(app).context("invalid [xero] settings")?;
    Ok(ConnectorRegistry::new(vec![
        Box::new(tributary_connector_sandbox::SandboxFactory),
        Box::new(xero),
    ]))
}
