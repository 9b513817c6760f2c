//! The sandbox source's companies: created on first start, and what a
//! complete sync of them holds now (`tributary sandbox-expect`).

use std::path::Path;

use anyhow::{Context, bail};
use tributary_config::Config;
use tributary_connector_api::ConnectionInfo;
use tributary_connector_sandbox::{Generator, SandboxSettings};
use tributary_producer::StateStore;
use tributary_schemas::Timestamp;

fn sandbox_company(i: u32) -> (String, String) {
    (
        format!("sandbox-{:03}", i + 1),
        format!("conn-sandbox-{:03}", i + 1),
    )
}

/// Creates the sandbox companies' connections on first start. Their
/// settings, the epoch included, are stored, so restarts continue the same
/// synthetic history.
pub(crate) async fn add_sandbox_connections(
    state: &StateStore,
    config: &Config,
) -> anyhow::Result<()> {
    let existing = state.connections().await?;
    if existing
        .iter()
        .any(|c| c.info.source == tributary_connector_sandbox::NAME)
    {
        return Ok(());
    }
    let now = Timestamp::now();
    let s = &config.sandbox;
    let settings = SandboxSettings {
        seed: s.seed,
        records: s.records,
        generations: s.generations,
        generation_interval_secs: s.generation_interval_secs,
        epoch_ms: s.epoch_ms.unwrap_or(now.millis()),
        max_page_size: s.max_page_size,
        fail_every: s.fail_every,
        hard_deletes: s.hard_deletes,
        kinds: serde_json::from_value(serde_json::json!(s.kinds)).with_context(|| {
            format!(
                "sandbox.kinds = {:?}: expected a list of accounting, commerce and banking",
                s.kinds
            )
        })?,
        failure: serde_json::from_value(serde_json::Value::String(s.failure.clone()))
            .with_context(|| {
                format!(
                    "sandbox.failure = {:?}: expected rate_limited, server_error or timeout",
                    s.failure
                )
            })?,
    };
    for i in 0..s.companies {
        let (company_id, connection_id) = sandbox_company(i);
        let info = ConnectionInfo {
            connection_id,
            company_id,
            source: tributary_connector_sandbox::NAME.into(),
            settings: serde_json::to_value(&settings)?,
        };
        state.add_connection(&info, now).await?;
    }
    tracing::info!(companies = s.companies, "created sandbox connections");
    Ok(())
}

/// Prints, for each sandbox connection in the state store, the live record
/// count per data type that a complete sync must end with at this moment.
pub(crate) async fn print_sandbox_expectation(config: &Config) -> anyhow::Result<()> {
    if config.state.url.is_none() {
        let path = config.data_dir.join("state.db");
        if !Path::new(&path).exists() {
            bail!("no state at {}: run `tributary up` first", path.display());
        }
    }
    let state = crate::wiring::open_state(config).await?;
    let now = Timestamp::now();
    println!("company\tdata_type\texpected_live_records\tgeneration");
    for stored in state.connections().await? {
        if stored.info.source != tributary_connector_sandbox::NAME {
            continue;
        }
        let settings: SandboxSettings = serde_json::from_value(stored.info.settings.clone())?;
        let generator = Generator::new(settings, &stored.info.company_id);
        let Some(generation) = generator.visible_generation(now) else {
            continue;
        };
        for data_type in generator.data_types() {
            let n = generator.expected_live(data_type, generation).len();
            println!(
                "{}\t{}\t{}\t{}",
                stored.info.company_id, data_type, n, generation
            );
        }
    }
    Ok(())
}
