//! Projector metrics. Names: `tributary_projector_<what>_<unit>`.

use metrics::{counter, gauge, histogram};

pub fn applied(projection: &'static str, records: usize, seconds: f64) {
    counter!("tributary_projector_records_projected_total", "projection" => projection)
        .increment(records as u64);
    histogram!("tributary_projector_batch_apply_seconds", "projection" => projection)
        .record(seconds);
}

/// Messages behind the end of the log, over all assigned partitions.
pub fn lag(projection: &'static str, messages: i64) {
    gauge!("tributary_projector_consumer_lag_messages", "projection" => projection)
        .set(messages as f64);
}

/// Logs and counts one failure: the few events an operator must see.
pub fn error(projection: &'static str, kind: &'static str, message: &str) {
    tracing::warn!(projection, kind, error = message, "projection step failed");
    counter!("tributary_projector_errors_total", "projection" => projection, "kind" => kind)
        .increment(1);
}

/// Logs and counts a message sent to the dead-letter topic.
pub fn dead_lettered(
    projection: &'static str,
    stage: &str,
    topic: &str,
    reason: &str,
    partition: i32,
    offset: i64,
) {
    tracing::warn!(
        projection,
        stage,
        topic,
        partition,
        offset,
        reason,
        "message dead-lettered"
    );
    counter!(
        "tributary_projector_dead_letters_total",
        "projection" => projection,
        "stage" => stage.to_string(),
        "topic" => topic.to_string()
    )
    .increment(1);
}
