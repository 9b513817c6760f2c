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
use tributary_schemas::{Timestamp, add_digests, manifest_digest};
use tributary_store::ReadStore;

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
    /// Manifests' (count, digest) against the store's.
    Mismatch((i64, Option<String>), (i64, String)),
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
        let count: i64 = manifests.iter().map(|m| m.live_count).sum();
        let digest = add_digests(manifests.iter().map(|m| m.digest.as_str()));
        let stored = tributary_store::live_versions(self.store.as_ref(), company, data_type)
            .await
            .map_err(|e| e.to_string())?;
        let stored_digest = manifest_digest(
            stored
                .iter()
                .map(|(id, (modified, revision))| (id.as_str(), Timestamp(*modified), *revision)),
        );
        let stored_count = stored.len() as i64;
        if stored_count == count && Some(&stored_digest) == digest.as_ref() {
            Ok(Found::Match)
        } else {
            Ok(Found::Mismatch(
                (count, digest),
                (stored_count, stored_digest),
            ))
        }
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
            Found::Mismatch(expected, stored) => {
                if self
                    .state
                    .end_check(check)
                    .await
                    .map_err(|e| e.to_string())?
                {
                    metrics::reconciled(false);
                    tracing::warn!(company = %check.company_id, data_type = %check.data_type, expected = ?expected, stored = ?stored, "the store does not hold what the workers published");
                    let told = events::mismatch(check, expected, stored, now);
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
