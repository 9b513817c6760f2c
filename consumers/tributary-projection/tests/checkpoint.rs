#![allow(clippy::unwrap_used)] // a test stops at its first surprise
//! Property tests of the skip rule every backend relies on: however batches
//! overlap (re-reads after a crash or a rebalance), a backend that applies
//! only `Checkpoint::unapplied` and keeps the newest version per record ends
//! with every message applied exactly once and the state a plain in-order
//! fold would give.

use std::collections::BTreeMap;

use proptest::prelude::*;
use tributary_projection::{Batch, Change, Checkpoint, Item, newest_per_record};
use tributary_schemas::model::Contact;
use tributary_schemas::{DataType, Event, Record, Timestamp, event_id};

const TOPICS: [&str; 2] = ["tributary.v1.customers", "tributary.v1.suppliers"];

fn event(id: &str, version: i64) -> Event {
    Event {
        event_id: event_id("conn", DataType::Customer, id, Timestamp(version), false, 0),
        company_id: "acme".into(),
        connection_id: "conn".into(),
        data_type: DataType::Customer.as_str().into(),
        source: "test".into(),
        source_record_id: id.into(),
        source_modified_at: Timestamp(version),
        fetched_at: Timestamp(version),
        deleted: false,
        revision: 0,
        record: Some(Record::Customer(Contact {
            id: id.into(),
            name: format!("{id} at {version}"),
            email: None,
            phone: None,
            status: "ACTIVE".into(),
            currency: None,
        })),
    }
}

/// The messages of one partition: (record id, version) at offsets 0, 1, ...
type Log = Vec<(u8, i64)>;

/// What a backend holds: its checkpoint, the newest version per record, and
/// how many times each message was applied.
#[derive(Default)]
struct Model {
    checkpoint: Checkpoint,
    versions: BTreeMap<String, i64>,
    applies: BTreeMap<(String, i32, i64), u32>,
}

impl Model {
    /// Applies `batch` the way every backend does.
    fn apply(&mut self, batch: &Batch) {
        let unapplied: Vec<&Item> = self.checkpoint.unapplied(batch).collect();
        for item in &unapplied {
            *self
                .applies
                .entry((item.topic.clone(), item.partition, item.offset))
                .or_default() += 1;
        }
        let events = unapplied.iter().filter_map(|item| match &item.change {
            Change::Record(e) => Some(e),
            _ => None,
        });
        for e in newest_per_record(events) {
            let v = e.source_modified_at.millis();
            let held = self.versions.entry(e.source_record_id.clone()).or_insert(v);
            *held = (*held).max(v);
        }
        self.checkpoint.advance_all(&batch.positions);
    }
}

/// Logs for 2 topics x 2 partitions, and a plan of reads: for each read,
/// per partition, how far back from the checkpoint it starts and how many
/// messages it takes.
fn scenario() -> impl Strategy<Value = (Vec<Log>, Vec<Vec<(u8, u8)>>)> {
    let log = prop::collection::vec((0u8..6, 1i64..20), 0..30);
    let logs = prop::collection::vec(log, 4);
    let read = prop::collection::vec((0u8..8, 0u8..10), 4);
    let plan = prop::collection::vec(read, 1..40);
    (logs, plan)
}

fn partition_of(i: usize) -> (&'static str, i32) {
    (TOPICS[i / 2], (i % 2) as i32)
}

proptest! {
    #[test]
    fn every_message_applies_exactly_once_and_the_newest_version_wins((logs, plan) in scenario()) {
        let mut model = Model::default();
        let mut reads = plan.into_iter();
        // Keep reading until every partition is done (the plan's reads, then
        // plain reads from the checkpoint).
        loop {
            let read = reads.next();
            let mut batch = Batch::default();
            let mut took_any = false;
            for (i, log) in logs.iter().enumerate() {
                let (topic, partition) = partition_of(i);
                let next = model.checkpoint.next_offset(topic, partition).unwrap_or(0);
                let (back, count) = read.as_ref().map_or((0, 10), |r| r[i]);
                let from = (next - i64::from(back)).max(0);
                let to = (from + i64::from(count)).min(log.len() as i64);
                for offset in from..to {
                    let (id, version) = log[offset as usize];
                    batch.items.push(Item {
                        topic: topic.into(),
                        partition,
                        offset,
                        change: Change::Record(event(&format!("r{id}"), version)),
                    });
                }
                if to > from {
                    batch.positions.advance(topic, partition, to);
                    took_any |= to > next;
                }
            }
            model.apply(&batch);
            if read.is_none() && !took_any {
                break;
            }
        }
        // Exactly once.
        for (i, log) in logs.iter().enumerate() {
            let (topic, partition) = partition_of(i);
            for offset in 0..log.len() as i64 {
                let applied = model.applies.get(&(topic.to_string(), partition, offset)).copied().unwrap_or(0);
                prop_assert_eq!(applied, 1, "{}/{}@{} applied {} times", topic, partition, offset, applied);
            }
            let expected = (!log.is_empty()).then_some(log.len() as i64);
            prop_assert_eq!(model.checkpoint.next_offset(topic, partition), expected);
        }
        // The state an in-order fold gives.
        let mut expected: BTreeMap<String, i64> = BTreeMap::new();
        for (id, version) in logs.iter().flatten() {
            let held = expected.entry(format!("r{id}")).or_insert(*version);
            *held = (*held).max(*version);
        }
        prop_assert_eq!(model.versions, expected);
    }

    #[test]
    fn newest_per_record_keeps_the_first_of_the_highest_version(pairs in prop::collection::vec((0u8..5, 0i64..5, any::<u16>()), 0..40)) {
        let events: Vec<Event> = pairs
            .iter()
            .map(|(id, version, tag)| {
                let mut e = event(&format!("r{id}"), *version);
                e.event_id = format!("{tag}");
                e
            })
            .collect();
        let newest = newest_per_record(&events);
        // One per record, in order of first appearance.
        let mut firsts: Vec<String> = Vec::new();
        for e in &events {
            if !firsts.contains(&e.source_record_id) {
                firsts.push(e.source_record_id.clone());
            }
        }
        let got: Vec<String> = newest.iter().map(|e| e.source_record_id.clone()).collect();
        prop_assert_eq!(got, firsts);
        for kept in newest {
            let same: Vec<&Event> = events.iter().filter(|e| e.source_record_id == kept.source_record_id).collect();
            let top = same.iter().map(|e| e.source_modified_at).max().unwrap();
            let first_top = same.iter().find(|e| e.source_modified_at == top).unwrap();
            prop_assert_eq!(&kept.event_id, &first_top.event_id);
        }
    }

    #[test]
    fn a_checkpoint_never_moves_back(moves in prop::collection::vec((0usize..4, 0i64..100), 0..50)) {
        let mut checkpoint = Checkpoint::new();
        let mut furthest: BTreeMap<usize, i64> = BTreeMap::new();
        for (i, next) in moves {
            let (topic, partition) = partition_of(i);
            checkpoint.advance(topic, partition, next);
            let f = furthest.entry(i).or_insert(next);
            *f = (*f).max(next);
            prop_assert_eq!(checkpoint.next_offset(topic, partition), Some(*f));
            prop_assert!(checkpoint.is_applied(topic, partition, *f - 1));
            prop_assert!(!checkpoint.is_applied(topic, partition, *f));
        }
        prop_assert_eq!(checkpoint.len(), furthest.len());
    }

    #[test]
    fn the_common_checkpoint_covers_only_what_both_applied(
        a in prop::collection::vec((0usize..4, 0i64..100), 0..8),
        b in prop::collection::vec((0usize..4, 0i64..100), 0..8),
    ) {
        let build = |moves: &[(usize, i64)]| {
            let mut c = Checkpoint::new();
            for &(i, next) in moves {
                let (topic, partition) = partition_of(i);
                c.advance(topic, partition, next);
            }
            c
        };
        let (a, b) = (build(&a), build(&b));
        let common = a.common(&b);
        prop_assert_eq!(&common, &b.common(&a));
        for i in 0..4 {
            let (topic, partition) = partition_of(i);
            for offset in 0..100 {
                prop_assert_eq!(
                    common.is_applied(topic, partition, offset),
                    a.is_applied(topic, partition, offset) && b.is_applied(topic, partition, offset)
                );
            }
        }
    }
}
