//! The checkpoint and the skip rule, written once for every backend.

use std::collections::{BTreeMap, HashMap};

use tributary_schemas::Event;

use crate::{Batch, Item};

/// A topic partition.
pub type Partition = (String, i32);

/// The next offset to read, per partition: everything below it was applied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Checkpoint(BTreeMap<String, BTreeMap<i32, i64>>);

impl Checkpoint {
    pub fn new() -> Self {
        Checkpoint::default()
    }

    /// The next offset to read in `partition`, if it was ever read.
    pub fn next_offset(&self, topic: &str, partition: i32) -> Option<i64> {
        self.0.get(topic)?.get(&partition).copied()
    }

    /// Whether the message at `offset` of `partition` was applied already.
    pub fn is_applied(&self, topic: &str, partition: i32, offset: i64) -> bool {
        self.next_offset(topic, partition)
            .is_some_and(|next| offset < next)
    }

    /// Records that `partition` was read up to `next` (exclusive). A
    /// checkpoint never moves back: an older position changes nothing.
    pub fn advance(&mut self, topic: &str, partition: i32, next: i64) {
        let partitions = match self.0.get_mut(topic) {
            Some(partitions) => partitions,
            None => self.0.entry(topic.to_string()).or_default(),
        };
        let stored = partitions.entry(partition).or_insert(next);
        *stored = (*stored).max(next);
    }

    /// Advances every partition `positions` names.
    pub fn advance_all(&mut self, positions: &Checkpoint) {
        for (topic, partition, next) in positions.iter() {
            self.advance(topic, partition, next);
        }
    }

    /// The items of `batch` this checkpoint does not cover yet, in order:
    /// what a backend holding this checkpoint still has to apply.
    pub fn unapplied<'a>(&'a self, batch: &'a Batch) -> impl Iterator<Item = &'a Item> + 'a {
        batch
            .items
            .iter()
            .filter(|item| !self.is_applied(&item.topic, item.partition, item.offset))
    }

    /// What both checkpoints say was applied: per partition the lower
    /// position, and no position where either has none. One reader feeding
    /// several projections starts there; each skips what it applied before.
    pub fn common(&self, other: &Checkpoint) -> Checkpoint {
        self.iter()
            .filter_map(|(topic, partition, next)| {
                let theirs = other.next_offset(topic, partition)?;
                Some(((topic.to_string(), partition), next.min(theirs)))
            })
            .collect()
    }

    /// Every partition as (topic, partition, next offset), in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, i32, i64)> {
        self.0.iter().flat_map(|(topic, partitions)| {
            partitions
                .iter()
                .map(move |(partition, next)| (topic.as_str(), *partition, *next))
        })
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// How many partitions it names.
    pub fn len(&self) -> usize {
        self.0.values().map(BTreeMap::len).sum()
    }
}

impl FromIterator<(Partition, i64)> for Checkpoint {
    /// Where a partition appears twice, the furthest position wins.
    fn from_iter<I: IntoIterator<Item = (Partition, i64)>>(iter: I) -> Self {
        let mut checkpoint = Checkpoint::new();
        for ((topic, partition), next) in iter {
            checkpoint.advance(&topic, partition, next);
        }
        checkpoint
    }
}

impl<const N: usize> From<[(Partition, i64); N]> for Checkpoint {
    fn from(positions: [(Partition, i64); N]) -> Self {
        positions.into_iter().collect()
    }
}

/// The newest version of each record among `events` (by company, data
/// type and record id), in the order each record was first seen. Equal
/// versions keep the first: a repeat changes nothing, as in the stores.
pub fn newest_per_record<'a>(events: impl IntoIterator<Item = &'a Event>) -> Vec<&'a Event> {
    let mut newest: Vec<&Event> = Vec::new();
    let mut at: HashMap<(&str, &str, &str), usize> = HashMap::new();
    for event in events {
        let key = (
            event.company_id.as_str(),
            event.data_type.as_str(),
            event.source_record_id.as_str(),
        );
        match at.get(&key) {
            Some(&i) => {
                if newest[i].version() < event.version() {
                    newest[i] = event;
                }
            }
            None => {
                at.insert(key, newest.len());
                newest.push(event);
            }
        }
    }
    newest
}
