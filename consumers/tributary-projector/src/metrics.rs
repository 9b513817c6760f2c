//! Projector metrics. Names: `tributary_projector_<what>_<unit>`.

use metrics::{counter, gauge, histogram};
use tributary_projection::{Batch, Change};

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
pub fn error(projection: &str, kind: &'static str, message: &str) {
    tracing::warn!(projection, kind, error = message, "projection step failed");
    counter!("tributary_projector_errors_total", "projection" => projection.to_string(), "kind" => kind)
        .increment(1);
}

/// 1 while the reader rests (its partitions paused, nothing fetched).
pub fn resting(reader: &str, resting: bool) {
    gauge!("tributary_projector_resting", "reader" => reader.to_string()).set(if resting {
        1.0
    } else {
        0.0
    });
}

/// Seconds from `earlier` (ms since the epoch) to now; 0 when the clocks
/// disagree.
fn since(earlier_ms: i64) -> f64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    (now - earlier_ms).max(0) as f64 / 1000.0
}

/// The stages of freshness before any projection, for one arrived
/// message produced at `sent_ms`: `fetch` (changed at the source -> the
/// sync's fetch began), `publish` (-> produced: fetch, map, bookkeeping,
/// encode), `deliver` (-> arrived here: the broker and the fetch wait).
pub fn arrived(change: &Change, sent_ms: Option<i64>) {
    let Some(sent_ms) = sent_ms else {
        return;
    };
    histogram!(crate::FRESHNESS_STAGE, "stage" => "deliver").record(since(sent_ms));
    if let Change::Record(event) = change {
        let seconds = |from: i64, to: i64| (to - from).max(0) as f64 / 1000.0;
        let fetched = event.fetched_at.millis();
        histogram!(crate::FRESHNESS_STAGE, "stage" => "fetch")
            .record(seconds(event.source_modified_at.millis(), fetched));
        histogram!(crate::FRESHNESS_STAGE, "stage" => "publish").record(seconds(fetched, sent_ms));
    }
}

/// The last stage of freshness for a just committed batch, `apply`
/// (arrived here -> committed, and so readable), and the whole of it, from
/// the change at the source to committed.
pub fn applied_freshness(projection: &'static str, batch: &Batch, consumed_at: std::time::Instant) {
    let apply = consumed_at.elapsed().as_secs_f64();
    let end_to_end = histogram!(crate::FRESHNESS, "projection" => projection);
    let mut records = 0;
    for item in &batch.items {
        if let Change::Record(event) = &item.change {
            records += 1;
            end_to_end.record(since(event.source_modified_at.millis()));
        }
    }
    histogram!(crate::FRESHNESS_STAGE, "stage" => "apply", "projection" => projection)
        .record_many(apply, records);
}

/// Logs and counts a message sent to the dead-letter topic.
pub fn dead_lettered(
    projection: &str,
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
        "projection" => projection.to_string(),
        "stage" => stage.to_string(),
        "topic" => topic.to_string()
    )
    .increment(1);
    // Beside the workers' map stage (tributary-producer's metrics).
    counter!("tributary_dead_letters_total", "stage" => stage.to_string()).increment(1);
}
