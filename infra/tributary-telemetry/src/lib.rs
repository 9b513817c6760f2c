//! Logs and metrics setup shared by every tributary process, and the crash
//! points the fault-injection tests arm ([`crash`]), and [`redact_url`] for
//! database URLs in logs and errors.
//!
//! Logs go to stderr through `tracing`, filtered by `RUST_LOG` or the
//! configured level. Metrics go through the `metrics` facade into a
//! Prometheus recorder whose [`PrometheusHandle`] renders `/metrics`;
//! gauges whose set of series changes as a whole (the N stalest tenants)
//! are measured into [`Families`] instead, rendered after it
//! ([`Exposition`]), so a series that left the set leaves the page.

pub mod crash;
mod families;

pub use families::{Exposition, Families, Sample};

pub use crash::crash_point;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};

/// Bucket bounds of the freshness histograms, in seconds: fine below the
/// one-second target, coarse up to an hour (a first load's records are as
/// old as the data).
pub const FRESHNESS_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0,
    60.0, 300.0, 3600.0,
];
pub use metrics_exporter_prometheus::PrometheusHandle;
use tracing_subscriber::EnvFilter;

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("invalid log filter {filter:?}: {message}")]
    Filter { filter: String, message: String },
    #[error("cannot install the metrics recorder: {0}")]
    Metrics(String),
}

/// Installs the log subscriber; `default_filter` applies when `RUST_LOG` is
/// unset. Calling it twice keeps the first subscriber.
pub fn init_logging(default_filter: &str) -> Result<(), TelemetryError> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(f) if !f.is_empty() => f,
        _ => default_filter.to_string(),
    };
    let env_filter = EnvFilter::try_new(&filter).map_err(|e| TelemetryError::Filter {
        filter: filter.clone(),
        message: e.to_string(),
    })?;
    // Colours only for a person at a terminal, never into log files.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(env_filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .try_init();
    Ok(())
}

/// Installs the global Prometheus recorder and returns the handle that
/// renders the exposition text.
///
/// Freshness (`tributary_freshness_*`) is a histogram with buckets, so that
/// Prometheus can sum it over processes and take quantiles over any window;
/// other histograms are rendered as summaries.
pub fn init_metrics() -> Result<PrometheusHandle, TelemetryError> {
    PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Prefix("tributary_freshness".into()),
            FRESHNESS_BUCKETS,
        )
        .map_err(|e| TelemetryError::Metrics(e.to_string()))?
        .install_recorder()
        .map_err(|e| TelemetryError::Metrics(e.to_string()))
}

/// A database URL fit for logs and error messages: its password, if any,
/// replaced by `[redacted]`.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:[redacted]{}", &url[..scheme + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn passwords_in_urls_are_redacted() {
        assert_eq!(
            redact_url("postgres://app:s3cret@db:5432/tributary"),
            "postgres://app:[redacted]@db:5432/tributary"
        );
        assert_eq!(redact_url("postgres://app@db/t"), "postgres://app@db/t");
        assert_eq!(redact_url("postgres://db/t"), "postgres://db/t");
    }
}
