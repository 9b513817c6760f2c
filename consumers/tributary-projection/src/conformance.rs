#![allow(clippy::unwrap_used)] // test support: a test stops at its first surprise
//! The conformance suite every projection backend must pass, run from each
//! backend's tests with [`conformance_suite!`](crate::conformance_suite).
//!
//! It drives the backend only through [`Projection`] and reads back what is
//! live through the [`Harness`], so every backend is held to the same
//! contract: idempotent replay, version guard, tombstones that stick, and a
//! checkpoint that survives a restart and is honoured after it.

use std::collections::BTreeMap;

use async_trait::async_trait;
use tributary_schemas::model::Contact;
use tributary_schemas::{DataType, Event, Record, Timestamp, event_id};

use crate::{Batch, Change, Checkpoint, Item, Projection};

/// Opens a backend on storage that outlives it, and reads back its state.
#[async_trait]
pub trait Harness: Send {
    type P: Projection;
    /// Opens the projection; called again after the previous one is dropped.
    async fn open(&mut self) -> Self::P;
    /// Live record ids of one company and data type, with their versions.
    async fn live(
        &mut self,
        projection: &Self::P,
        company: &str,
        data_type: DataType,
    ) -> BTreeMap<String, (i64, i64)>;
}

pub const TOPIC: &str = "tributary.v1.customers";

/// A customer event at `version`, named `name`.
pub fn customer(company: &str, id: &str, version: i64, deleted: bool, name: &str) -> Event {
    Event {
        event_id: event_id(
            "conn",
            DataType::Customer,
            id,
            Timestamp(version),
            deleted,
            0,
        ),
        company_id: company.into(),
        connection_id: "conn".into(),
        data_type: DataType::Customer.as_str().into(),
        source: "test".into(),
        source_record_id: id.into(),
        source_modified_at: Timestamp(version),
        fetched_at: Timestamp(version + 1),
        deleted,
        revision: 0,
        record: Some(Record::Customer(Contact {
            id: id.into(),
            name: name.into(),
            email: None,
            phone: None,
            status: "ACTIVE".into(),
            currency: None,
        })),
    }
}

/// A batch of `events` on partition 0 starting at offset `first`.
pub fn batch(first: i64, events: Vec<Event>) -> Batch {
    Batch::of_events(TOPIC, 0, first, events)
}

/// Live ids at `version`, revision 0.
fn versions(pairs: &[(&str, i64)]) -> BTreeMap<String, (i64, i64)> {
    pairs
        .iter()
        .map(|(id, v)| (id.to_string(), (*v, 0)))
        .collect()
}

/// `event` re-published at `revision`.
pub fn revised(mut event: Event, revision: i64) -> Event {
    event.revision = revision;
    event
}

pub async fn applies_and_replays_idempotently<H: Harness>(mut h: H) {
    let mut p = h.open().await;
    assert!(
        p.checkpoint().await.unwrap().is_empty(),
        "a new projection has no checkpoint"
    );
    let b = batch(
        0,
        vec![
            customer("a", "c1", 10, false, "Ridgeway Bakery"),
            customer("a", "c2", 10, false, "Harbour Joinery"),
            customer("a", "c3", 10, true, "Gone Ltd"),
            customer("b", "c1", 10, false, "Other company"),
        ],
    );
    p.apply(&b).await.unwrap();
    let expected = versions(&[("c1", 10), ("c2", 10)]);
    assert_eq!(h.live(&p, "a", DataType::Customer).await, expected);
    assert_eq!(
        h.live(&p, "b", DataType::Customer).await,
        versions(&[("c1", 10)])
    );
    assert_eq!(p.checkpoint().await.unwrap(), b.positions);
    p.apply(&b).await.unwrap();
    assert_eq!(
        h.live(&p, "a", DataType::Customer).await,
        expected,
        "replaying a batch changes nothing"
    );
    assert_eq!(p.checkpoint().await.unwrap(), b.positions);
}

pub async fn ignores_older_and_equal_versions<H: Harness>(mut h: H) {
    let mut p = h.open().await;
    p.apply(&batch(0, vec![customer("a", "c1", 20, false, "v20")]))
        .await
        .unwrap();
    p.apply(&batch(
        1,
        vec![
            customer("a", "c1", 10, false, "v10"),
            customer("a", "c1", 20, true, "v20 again"),
        ],
    ))
    .await
    .unwrap();
    assert_eq!(
        h.live(&p, "a", DataType::Customer).await,
        versions(&[("c1", 20)])
    );
    p.apply(&batch(3, vec![customer("a", "c1", 30, false, "v30")]))
        .await
        .unwrap();
    assert_eq!(
        h.live(&p, "a", DataType::Customer).await,
        versions(&[("c1", 30)]),
        "a newer version wins"
    );
    assert_eq!(
        p.checkpoint().await.unwrap(),
        Checkpoint::from([((TOPIC.to_string(), 0), 4)])
    );
}

pub async fn deletes_stick_against_older_versions<H: Harness>(mut h: H) {
    let mut p = h.open().await;
    p.apply(&batch(
        0,
        vec![
            customer("a", "c1", 10, false, "v10"),
            customer("a", "c1", 20, true, "deleted"),
        ],
    ))
    .await
    .unwrap();
    assert!(h.live(&p, "a", DataType::Customer).await.is_empty());
    p.apply(&batch(2, vec![customer("a", "c1", 10, false, "late v10")]))
        .await
        .unwrap();
    assert!(
        h.live(&p, "a", DataType::Customer).await.is_empty(),
        "a late older version must not undelete"
    );
    p.apply(&batch(3, vec![customer("a", "c1", 25, false, "recreated")]))
        .await
        .unwrap();
    assert_eq!(
        h.live(&p, "a", DataType::Customer).await,
        versions(&[("c1", 25)])
    );
}

pub async fn a_higher_revision_of_the_same_version_wins<H: Harness>(mut h: H) {
    let mut p = h.open().await;
    p.apply(&batch(
        0,
        vec![customer("a", "c1", 10, false, "old mapping")],
    ))
    .await
    .unwrap();
    // A resync re-publishes version 10 at revision 1: it replaces the row.
    let resync = revised(customer("a", "c1", 10, false, "fixed mapping"), 1);
    p.apply(&batch(1, vec![resync.clone()])).await.unwrap();
    let after_resync = BTreeMap::from([("c1".to_string(), (10, 1))]);
    assert_eq!(h.live(&p, "a", DataType::Customer).await, after_resync);
    // Its repeat, and a late revision 0, change nothing.
    p.apply(&batch(
        2,
        vec![resync, customer("a", "c1", 10, false, "old mapping again")],
    ))
    .await
    .unwrap();
    assert_eq!(h.live(&p, "a", DataType::Customer).await, after_resync);
    // Within one batch too, the higher revision wins whatever the order.
    p.apply(&batch(
        4,
        vec![
            revised(customer("a", "c2", 10, false, "fixed"), 2),
            customer("a", "c2", 10, false, "old"),
        ],
    ))
    .await
    .unwrap();
    assert_eq!(
        h.live(&p, "a", DataType::Customer).await.get("c2"),
        Some(&(10, 2))
    );
    // A newer source version wins over any revision of an older one.
    p.apply(&batch(6, vec![customer("a", "c1", 11, false, "changed")]))
        .await
        .unwrap();
    assert_eq!(
        h.live(&p, "a", DataType::Customer).await.get("c1"),
        Some(&(11, 0))
    );
}

pub async fn resumes_from_its_checkpoint_after_restart<H: Harness>(mut h: H) {
    let first = batch(
        0,
        vec![
            customer("a", "c1", 10, false, "one"),
            customer("a", "c2", 10, false, "two"),
        ],
    );
    {
        let mut p = h.open().await;
        p.apply(&first).await.unwrap();
    }
    let mut p = h.open().await;
    assert_eq!(
        p.checkpoint().await.unwrap(),
        first.positions,
        "the checkpoint survives a restart"
    );
    assert_eq!(
        h.live(&p, "a", DataType::Customer).await,
        versions(&[("c1", 10), ("c2", 10)])
    );
    // A batch that starts below the checkpoint: offsets 0 and 1 were applied
    // before, so only offset 2 may take effect, whatever 0 and 1 say now.
    let overlapping = batch(
        0,
        vec![
            customer("a", "c1", 99, true, "would delete"),
            customer("a", "c9", 99, false, "would add"),
            customer("a", "c3", 10, false, "new"),
        ],
    );
    p.apply(&overlapping).await.unwrap();
    assert_eq!(
        h.live(&p, "a", DataType::Customer).await,
        versions(&[("c1", 10), ("c2", 10), ("c3", 10)])
    );
    assert_eq!(
        p.checkpoint().await.unwrap(),
        Checkpoint::from([((TOPIC.to_string(), 0), 3)])
    );
}

pub async fn keeps_partitions_apart<H: Harness>(mut h: H) {
    let mut p = h.open().await;
    let mut b = batch(5, vec![customer("a", "c1", 10, false, "p0")]);
    b.items.push(Item {
        topic: TOPIC.into(),
        partition: 1,
        offset: 0,
        change: Change::Record(customer("b", "c1", 10, false, "p1")),
    });
    b.positions.advance(TOPIC, 1, 1);
    p.apply(&b).await.unwrap();
    let expected = Checkpoint::from([((TOPIC.to_string(), 0), 6), ((TOPIC.to_string(), 1), 1)]);
    assert_eq!(p.checkpoint().await.unwrap(), expected);
    // A later batch that touches only partition 1 leaves partition 0's position alone.
    let mut later = Batch::default();
    later.items.push(Item {
        topic: TOPIC.into(),
        partition: 1,
        offset: 1,
        change: Change::Record(customer("b", "c2", 10, false, "p1")),
    });
    later.positions.advance(TOPIC, 1, 2);
    p.apply(&later).await.unwrap();
    let expected = Checkpoint::from([((TOPIC.to_string(), 0), 6), ((TOPIC.to_string(), 1), 2)]);
    assert_eq!(p.checkpoint().await.unwrap(), expected);
    assert_eq!(
        h.live(&p, "b", DataType::Customer).await,
        versions(&[("c1", 10), ("c2", 10)])
    );
}

/// Runs the whole suite against a backend: `$harness` is an expression that
/// builds a fresh [`Harness`] on empty storage each time it is evaluated.
#[macro_export]
macro_rules! conformance_suite {
    ($harness:expr) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn applies_and_replays_idempotently() {
            $crate::conformance::applies_and_replays_idempotently($harness).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn ignores_older_and_equal_versions() {
            $crate::conformance::ignores_older_and_equal_versions($harness).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn deletes_stick_against_older_versions() {
            $crate::conformance::deletes_stick_against_older_versions($harness).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn a_higher_revision_of_the_same_version_wins() {
            $crate::conformance::a_higher_revision_of_the_same_version_wins($harness).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn resumes_from_its_checkpoint_after_restart() {
            $crate::conformance::resumes_from_its_checkpoint_after_restart($harness).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn keeps_partitions_apart() {
            $crate::conformance::keeps_partitions_apart($harness).await;
        }
    };
}
