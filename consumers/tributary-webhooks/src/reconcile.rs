//! Reconciliation checks: after each manifest (and a grace for the store
//! to catch up), does the store hold exactly what the company's
//! connections published of that data type, by count and digest? A
//! mismatch is checked once more a grace later, and told
//! (`reconciliation.mismatch`) only if it stays; either way the outcome is
//! counted (`tributary_reconciliation_checks_total`), so the alert sees
//! it without anyone asking a company's status.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tributary_producer::StateStore;
use tributary_producer::state::Check;
use tributary_schemas::{ManifestEvent, Timestamp};
use tributary_store::{ManifestCheck, ReadStore};

use crate::{Clock, events, metrics};

/// Checks the store against the manifests until shutdown.
pub struct Reconciler {
    pub state: StateStore,
    pub store: Arc<dyn ReadStore>,
    pub clock: Clock,
    /// Between the two looks at a mismatch.
    pub grace: Duration,
    /// Between two looks for due checks.
    pub every: Duration,
    /// Rung when a mismatch was queued for delivery.
    pub wake: Arc<Notify>,
}

/// What one check found.
#[derive(Debug, Clone, PartialEq)]
pub enum Found {
    Match,
    Mismatch(ManifestCheck),
    /// No manifest (yet) for it: nothing to compare.
    Nothing,
}

impl Reconciler {
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        loop {
            if let Err(e) = self.check_due().await {
                metrics::error("reconcile", &e);
            }
            tokio::select! {
                _ = tokio::time::sleep(self.every) => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    /// Runs every check due now.
    pub async fn check_due(&self) -> Result<(), String> {
        let due = self
            .state
            .due_checks(self.clock.now(), 100)
            .await
            .map_err(|e| e.to_string())?;
        for check in due {
            self.check(&check).await?;
        }
        Ok(())
    }

    /// Compares a company's data type in the store with its manifests.
    pub async fn compare(&self, company: &str, data_type: &str) -> Result<Found, String> {
        let manifests: Vec<_> = self
            .state
            .manifests(company)
            .await
            .map_err(|e| e.to_string())?
            .into_iter()
            .filter(|m| m.data_type == data_type)
            .collect();
        if manifests.is_empty() {
            return Ok(Found::Nothing);
        }
        let of_type: Vec<&ManifestEvent> = manifests.iter().collect();
        let check =
            tributary_store::check_manifests(self.store.as_ref(), company, data_type, &of_type)
                .await
                .map_err(|e| e.to_string())?;
        Ok(if check.store_matches() {
            Found::Match
        } else {
            Found::Mismatch(check)
        })
    }

    async fn check(&self, check: &Check) -> Result<(), String> {
        let found = self.compare(&check.company_id, &check.data_type).await?;
        let now = self.clock.now();
        match found {
            Found::Mismatch(..) if check.attempt < 2 => {
                let again =
                    Timestamp(now.millis() + i64::try_from(self.grace.as_millis()).unwrap_or(0));
                self.state
                    .recheck(check, again)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            Found::Mismatch(found) => {
                if self
                    .state
                    .end_check(check)
                    .await
                    .map_err(|e| e.to_string())?
                {
                    metrics::reconciled(false);
                    tracing::warn!(company = %check.company_id, data_type = %check.data_type, ?found, "the store does not hold what the workers published");
                    let told = events::mismatch(check, &found, now);
                    let queued = self
                        .state
                        .queue_occurrences(&[told], &[], &[], now)
                        .await
                        .map_err(|e| e.to_string())?;
                    if queued > 0 {
                        metrics::queued(queued);
                        self.wake.notify_one();
                    }
                }
            }
            Found::Match | Found::Nothing => {
                if self
                    .state
                    .end_check(check)
                    .await
                    .map_err(|e| e.to_string())?
                    && found == Found::Match
                {
                    metrics::reconciled(true);
                }
            }
        }
        Ok(())
    }
}
