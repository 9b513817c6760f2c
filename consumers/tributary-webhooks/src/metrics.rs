//! The dispatcher's metrics, and the events that both log and count.

use tributary_producer::state::{Attempt, AttemptOutcome};

/// Attempts by subscription and outcome (`delivered` or `failed`).
pub const ATTEMPTS: &str = "tributary_webhook_attempts_total";
/// Deliveries given up after the whole retry schedule, by subscription.
pub const GIVEN_UP: &str = "tributary_webhook_given_up_total";
/// Deliveries queued (one per event and subscription that wants it).
pub const QUEUED: &str = "tributary_webhook_queued_total";
/// Reconciliation checks of the store against the manifests, by outcome
/// (`match`, or `mismatch` when it stayed through a second look).
pub const RECONCILIATION_CHECKS: &str = "tributary_reconciliation_checks_total";
/// Errors of the dispatcher itself (the state store), by what it was doing.
pub const ERRORS: &str = "tributary_webhook_errors_total";

pub(crate) fn attempted(
    subscription: &str,
    event_type: &str,
    attempt: &Attempt,
    outcome: &AttemptOutcome,
) {
    let delivered = matches!(outcome, AttemptOutcome::Delivered);
    metrics::counter!(ATTEMPTS, "subscription" => subscription.to_string(), "outcome" => if delivered { "delivered" } else { "failed" }).increment(1);
    match outcome {
        AttemptOutcome::Delivered => {
            tracing::debug!(subscription, event_type, attempt = attempt.attempt, status = ?attempt.status_code, "webhook delivered")
        }
        AttemptOutcome::RetryAt(at) => {
            tracing::info!(subscription, event_type, attempt = attempt.attempt, status = ?attempt.status_code, error = ?attempt.error, retry_at = %at, "webhook attempt failed; retrying")
        }
        AttemptOutcome::GiveUp => {
            metrics::counter!(GIVEN_UP, "subscription" => subscription.to_string()).increment(1);
            tracing::warn!(subscription, event_type, attempts = attempt.attempt, status = ?attempt.status_code, error = ?attempt.error, "webhook given up: the retry schedule is spent");
        }
    }
}

pub(crate) fn queued(n: u64) {
    metrics::counter!(QUEUED).increment(n);
}

pub(crate) fn error(doing: &'static str, error: &str) {
    metrics::counter!(ERRORS, "doing" => doing).increment(1);
    tracing::warn!(doing, error, "webhook dispatcher error; trying again");
}

pub(crate) fn reconciled(matches: bool) {
    metrics::counter!(RECONCILIATION_CHECKS, "sink" => "store", "outcome" => if matches { "match" } else { "mismatch" }).increment(1);
}
