//! The one list of connectors this build knows, each built from its own
//! table of the configuration (`[connectors.<name>]`). Adding a connector
//! is a line here.

use std::collections::BTreeMap;

use anyhow::Context;
use tributary_config::Config;
use tributary_connector_api::ConnectorRegistry;
use tributary_connector_http::NetworkPolicy;

/// Every connector this build knows: the one explicit list.
pub(crate) fn connectors(config: &Config) -> anyhow::Result<ConnectorRegistry> {
    let network = NetworkPolicy {
        allow_private: config.security.allow_private_network,
    };
    let mut tables = ConnectorTables::of(config)?;
    let registry = ConnectorRegistry::new(vec![
        Box::new(tributary_connector_sandbox::SandboxFactory),
        Box::new(tributary_connector_xero::XeroFactory::from_config(
            tables.take("xero").as_ref(),
            network,
        )?),
        Box::new(tributary_connector_square::SquareFactory::from_config(
            tables.take("square").as_ref(),
            network,
        )?),
        Box::new(
            tributary_connector_open_banking::OpenBankingFactory::from_config(
                tables.take("open_banking").as_ref(),
                network,
            )?,
        ),
    ]);
    tables.none_left(&registry)?;
    Ok(registry)
}

/// The `[connectors.<name>]` tables of the configuration, as JSON, each
/// taken by its connector.
struct ConnectorTables(BTreeMap<String, serde_json::Value>);

impl ConnectorTables {
    fn of(config: &Config) -> anyhow::Result<Self> {
        config
            .connectors
            .iter()
            .map(|(name, table)| {
                serde_json::to_value(table)
                    .map(|v| (name.clone(), v))
                    .with_context(|| format!("[connectors.{name}]"))
            })
            .collect::<anyhow::Result<_>>()
            .map(ConnectorTables)
    }

    fn take(&mut self, name: &str) -> Option<serde_json::Value> {
        self.0.remove(name)
    }

    /// A table no connector took is a mistake (a typo in a name).
    fn none_left(self, registry: &ConnectorRegistry) -> anyhow::Result<()> {
        match self.0.keys().next() {
            None => Ok(()),
            Some(name) => anyhow::bail!(
                "[connectors.{name}]: no connector {name:?} takes settings; connectors: {}",
                registry.names().join(", ")
            ),
        }
    }
}
