#![allow(clippy::unwrap_used)] // a test stops at its first surprise
//! The status a company's sync outcomes add up to.

use tributary_projection::{Batch, Change, Checkpoint, Item, Projection};
use tributary_schemas::{SyncRunEvent, SyncRunStatus, SyncTrigger, Timestamp};
use tributary_store::ReadStore;
use tributary_store_sqlite::SqliteStore;

fn run(started: i64, status: SyncRunStatus, repeats: i64) -> SyncRunEvent {
    SyncRunEvent {
        event_id: format!("run-{started}"),
        company_id: "c1".into(),
        connection_id: "conn".into(),
        source: "sandbox".into(),
        data_type: "invoices".into(),
        started_at: Timestamp(started),
        finished_at: Timestamp(started + 10),
        status,
        records_fetched: 2,
        pages_fetched: 1,
        error: (status == SyncRunStatus::Failed).then(|| "source down".into()),
        run_id: format!("r{started}"),
        trigger: SyncTrigger::Schedule,
        records_published: 2,
        records_dead_lettered: 0,
        error_fault: None,
        repeats,
    }
}

#[tokio::test]
async fn a_run_standing_for_folded_idle_runs_counts_them_all() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = SqliteStore::open(&dir.path().join("store.db"))
        .await
        .unwrap();
    let runs = [
        run(1_000, SyncRunStatus::Succeeded, 0),
        // Stands for 3 idle runs before it that published nothing.
        run(2_000, SyncRunStatus::Succeeded, 3),
        run(3_000, SyncRunStatus::Failed, 0),
    ];
    let items = runs
        .into_iter()
        .enumerate()
        .map(|(offset, r)| Item {
            topic: SyncRunEvent::topic(),
            partition: 0,
            offset: offset as i64,
            change: Change::SyncRun(r),
        })
        .collect();
    let mut positions = Checkpoint::new();
    positions.advance(&SyncRunEvent::topic(), 0, 3);
    store.apply(&Batch { items, positions }).await.unwrap();
    let status = store.status("c1").await.unwrap();
    let sync = &status[0].syncs[0];
    assert_eq!((sync.runs, sync.failed_runs), (6, 1), "{sync:?}");
    assert_eq!(sync.last_status, "failed");
    assert_eq!(sync.last_success_at, Some(Timestamp(2_010)));
}
