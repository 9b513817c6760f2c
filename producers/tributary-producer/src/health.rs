//! Per-tenant health, measured from the state store: how old each
//! company's data is ("sync age": since the newest successful run of each
//! data type) and how many connections are in each status.
//!
//! Every company and data type would be a series each; with thousands of
//! companies that is more than Prometheus should carry. So the sync age is
//! shown for the `series` stalest pairs only, with the stalest age of all
//! and the number of pairs beside it: an alert on the stalest still sees
//! every tenant, and the labels name the worst ones. Measured every
//! `every` by each process with a worker (the same figures from each, as
//! they read the same state: take `max` across processes).

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::sync::watch;
use tributary_schemas::{ConnectionStatus, Timestamp};
use tributary_telemetry::{Families, Sample};

use crate::{ProducerError, StateStore};

/// What is measured, how often.
#[derive(Debug, Clone)]
pub struct HealthSettings {
    pub every: Duration,
    /// How many of the stalest (company, data type) pairs get a series.
    pub series: usize,
    /// The age past which a tenant counts as stale, shown as
    /// `tributary_sync_stale_after_seconds` for the alert rule to compare
    /// against (so one setting moves both).
    pub stale_after: Duration,
}

/// Measures until `shutdown`; a failed measurement is logged and retried
/// at the next tick (the previous figures stay shown meanwhile).
pub async fn watch(
    state: StateStore,
    families: Families,
    settings: HealthSettings,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), ProducerError> {
    loop {
        if let Err(e) = measure(&state, &families, &settings, Timestamp::now()).await {
            tracing::warn!(error = %e, "cannot measure per-tenant health");
        }
        tokio::select! {
            _ = tokio::time::sleep(settings.every) => {}
            _ = shutdown.changed() => return Ok(()),
        }
    }
}

/// One measurement, as of `now`.
pub async fn measure(
    state: &StateStore,
    families: &Families,
    settings: &HealthSettings,
    now: Timestamp,
) -> Result<(), ProducerError> {
    // The stalest connection of each company and data type.
    let mut ages: BTreeMap<(String, String), f64> = BTreeMap::new();
    for (company, data_type, since) in state.last_successes().await? {
        let age = (now.0 - since).max(0) as f64 / 1000.0;
        let entry = ages.entry((company, data_type)).or_insert(age);
        *entry = entry.max(age);
    }
    let mut stalest: Vec<((String, String), f64)> = ages.into_iter().collect();
    stalest.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let pairs = stalest.len();
    let max = stalest.first().map(|(_, age)| *age);
    let shown: Vec<Sample> = stalest
        .into_iter()
        .take(settings.series)
        .map(|((company, data_type), age)| {
            Sample::new(vec![("company", company), ("data_type", data_type)], age)
        })
        .collect();
    families.set(
        "tributary_sync_age_seconds",
        "Seconds since the newest successful sync of a company's data type (the stalest pairs only: see tributary_sync_age_pairs)",
        &shown,
    );
    families.set(
        "tributary_sync_age_max_seconds",
        "The stalest sync age of any company and data type",
        &max.map(|age| Sample::new(vec![], age))
            .into_iter()
            .collect::<Vec<_>>(),
    );
    families.set(
        "tributary_sync_age_pairs",
        "Company and data type pairs measured for sync age",
        &[Sample::new(vec![], pairs as f64)],
    );
    families.set(
        "tributary_sync_stale_after_seconds",
        "Sync age past which a tenant is stale (metrics.stale_after_secs)",
        &[Sample::new(vec![], settings.stale_after.as_secs_f64())],
    );
    let counts = state.connections_by_status().await?;
    let by_status: Vec<Sample> = ConnectionStatus::ALL
        .iter()
        .map(|status| {
            let n = counts.get(status.as_str()).copied().unwrap_or(0);
            Sample::new(vec![("status", status.as_str().to_string())], n as f64)
        })
        .collect();
    families.set("tributary_connections", "Connections by status", &by_status);
    Ok(())
}
