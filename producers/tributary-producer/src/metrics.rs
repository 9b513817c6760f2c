//! The workers' metrics. Names: `tributary_producer_<what>_<unit>`.

use metrics::{counter, histogram};
use tributary_schemas::{DataType, DeadLetterStage, SyncRunStatus};

pub fn records_fetched(source: &str, data_type: DataType, n: usize) {
    counter!("tributary_producer_records_fetched_total", "source" => source.to_string(), "data_type" => data_type.as_str())
        .increment(n as u64);
}

pub fn events_published(topic: &str, n: usize) {
    counter!("tributary_producer_events_published_total", "topic" => topic.to_string())
        .increment(n as u64);
}

pub fn page_seconds(source: &str, data_type: DataType, seconds: f64) {
    histogram!("tributary_producer_page_fetch_seconds", "source" => source.to_string(), "data_type" => data_type.as_str())
        .record(seconds);
}

/// Logs and counts one failed step: the few events an operator must see.
pub fn error(source: &str, data_type: DataType, kind: &'static str, message: &str) {
    tracing::warn!(
        source,
        data_type = data_type.as_str(),
        kind,
        error = message,
        "sync step failed"
    );
    counter!("tributary_producer_errors_total", "source" => source.to_string(), "data_type" => data_type.as_str(), "kind" => kind)
        .increment(1);
}

pub fn sync_finished(source: &str, data_type: DataType, status: SyncRunStatus) {
    counter!("tributary_producer_sync_runs_total", "source" => source.to_string(), "data_type" => data_type.as_str(), "status" => status.as_str())
        .increment(1);
}

/// Dead letters written, by stage: one family for the workers' (map) and
/// the projectors' (decode, store), so one alert watches them all.
pub fn dead_lettered(stage: DeadLetterStage, n: usize) {
    counter!("tributary_dead_letters_total", "stage" => stage.as_str()).increment(n as u64);
}
