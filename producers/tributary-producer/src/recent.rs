//! What a worker published lately, so that it does not send it again.
//!
//! Incremental sources hand back recent changes more than once: the Xero
//! connector asks for changes since a second before the newest one it saw,
//! so that a change committed late in that second is not missed, and at a
//! high change rate that second holds many records, re-sent every round.
//! They are the same versions (same event ids), so the stores would ignore
//! them, but only after the broker and every projection handled them.
//! [`Recent`] remembers the event ids of the versions published in the last
//! [`WINDOW`] of source time, per connection and data type. It lives in
//! memory: after a restart the first round sends that window again, which
//! is harmless.

use std::collections::HashMap;

use tributary_schemas::{DataType, Event};

/// How far back, in source modification time, published versions are
/// remembered: far more than any overlap a connector asks for.
pub const WINDOW_MS: i64 = 5 * 60 * 1000;

/// At most this many versions per connection and data type (about 100
/// bytes each): at a high change rate the window would hold hundreds of
/// thousands. The oldest go first; forgetting one only lets a repeat
/// through, which the stores ignore.
pub const MAX_PER_DATA_TYPE: usize = 20_000;

#[derive(Default)]
struct Seen {
    newest: i64,
    /// The oldest modification time among `ids` (ms).
    oldest: i64,
    /// Event id -> source modification time (ms).
    ids: HashMap<String, i64>,
}

impl Seen {
    /// Keeps only versions modified at or after `floor`.
    fn forget_before(&mut self, floor: i64) {
        self.ids.retain(|_, at| *at >= floor);
        self.oldest = self.ids.values().copied().min().unwrap_or(self.newest);
    }
}

/// Published versions per (connection, data type).
#[derive(Default)]
pub struct Recent {
    seen: std::sync::Mutex<HashMap<(String, DataType), Seen>>,
}

impl Recent {
    /// `events` without those already published.
    pub fn unpublished(
        &self,
        connection_id: &str,
        data_type: DataType,
        events: Vec<Event>,
    ) -> Vec<Event> {
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let Some(known) = seen.get(&(connection_id.to_string(), data_type)) else {
            return events;
        };
        events
            .into_iter()
            .filter(|e| !known.ids.contains_key(&e.event_id))
            .collect()
    }

    /// Remembers `events` as published (acknowledged by the broker), and
    /// forgets what fell out of the window.
    pub fn published(&self, connection_id: &str, data_type: DataType, events: &[Event]) {
        if events.is_empty() {
            return;
        }
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let known = seen
            .entry((connection_id.to_string(), data_type))
            .or_default();
        if known.ids.is_empty() {
            known.oldest = i64::MAX;
        }
        for e in events {
            let at = e.source_modified_at.millis();
            known.newest = known.newest.max(at);
            known.oldest = known.oldest.min(at);
            known.ids.insert(e.event_id.clone(), at);
        }
        // Only when something fell out: a pass over every id costs.
        let floor = known.newest - WINDOW_MS;
        if known.oldest < floor {
            known.forget_before(floor);
        }
        if known.ids.len() > MAX_PER_DATA_TYPE {
            let mut times: Vec<i64> = known.ids.values().copied().collect();
            let excess = times.len() - MAX_PER_DATA_TYPE;
            let (_, cut, _) = times.select_nth_unstable(excess);
            let cut = *cut;
            known.forget_before(cut);
        }
        let remembered: usize = seen.values().map(|s| s.ids.len()).sum();
        metrics::gauge!("tributary_producer_recent_versions").set(remembered as f64);
    }

    /// How many versions are remembered, over all connections.
    pub fn remembered(&self) -> usize {
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.values().map(|s| s.ids.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tributary_schemas::Timestamp;

    fn event(id: &str, at: i64) -> Event {
        Event {
            event_id: format!("{id}@{at}"),
            company_id: "c".into(),
            connection_id: "conn".into(),
            data_type: DataType::Invoice.as_str().into(),
            source: "test".into(),
            source_record_id: id.into(),
            source_modified_at: Timestamp(at),
            fetched_at: Timestamp(at),
            deleted: true,
            revision: 0,
            record: None,
        }
    }

    fn ids(events: &[Event]) -> Vec<&str> {
        events.iter().map(|e| e.event_id.as_str()).collect()
    }

    #[test]
    fn a_version_is_sent_once_and_a_new_one_again() {
        let recent = Recent::default();
        let first = vec![event("a", 1_000), event("b", 1_500)];
        let todo = recent.unpublished("conn", DataType::Invoice, first.clone());
        assert_eq!(ids(&todo), ["a@1000", "b@1500"]);
        recent.published("conn", DataType::Invoice, &todo);
        // The next round re-serves b, and a changed again.
        let second = vec![event("b", 1_500), event("a", 2_000)];
        let todo = recent.unpublished("conn", DataType::Invoice, second);
        assert_eq!(ids(&todo), ["a@2000"]);
        // Another connection or data type is not affected.
        let todo = recent.unpublished("other", DataType::Invoice, first.clone());
        assert_eq!(todo.len(), 2);
        let todo = recent.unpublished("conn", DataType::Bill, first);
        assert_eq!(todo.len(), 2);
    }

    #[test]
    fn what_falls_out_of_the_window_is_forgotten() {
        let recent = Recent::default();
        recent.published("conn", DataType::Invoice, &[event("old", 0)]);
        recent.published("conn", DataType::Invoice, &[event("new", WINDOW_MS + 1)]);
        assert_eq!(recent.remembered(), 1);
        let todo = recent.unpublished("conn", DataType::Invoice, vec![event("old", 0)]);
        assert_eq!(ids(&todo), ["old@0"], "forgotten, so sent again");
    }

    #[test]
    fn at_most_the_bound_is_remembered_and_the_newest_stay() {
        let recent = Recent::default();
        let many: Vec<Event> = (0..MAX_PER_DATA_TYPE as i64 + 500)
            .map(|i| event(&format!("r{i}"), i))
            .collect();
        recent.published("conn", DataType::Invoice, &many);
        assert_eq!(recent.remembered(), MAX_PER_DATA_TYPE);
        let newest = many.last().cloned().unwrap();
        let todo = recent.unpublished("conn", DataType::Invoice, vec![many[0].clone(), newest]);
        assert_eq!(
            ids(&todo),
            ["r0@0"],
            "the oldest was forgotten, the newest kept"
        );
    }
}
