#![allow(clippy::unwrap_used)] // a test stops at its first surprise
//! The state store's sync leases and sync history, the same rules on
//! SQLite and on a real PostgreSQL: one holder per connection, fenced
//! cursor saves, due times, requested syncs, takeover after expiry, and no
//! connection won twice when workers claim at the same moment; runs queued
//! all or none, one open run per connection and data type, a run's states
//! in order, interrupted runs closed and resumed, resyncs fenced by the
//! lease, the history paged, filtered and pruned.

use std::collections::BTreeSet;
use std::time::Duration;

use tributary_connector_api::{ConnectionInfo, Cursor};
use tributary_producer::StateStore;
use tributary_producer::state::{RunFilter, SyncRun};
use tributary_schemas::{ConnectionStatus, DataType, SyncRunStatus, SyncTrigger, Timestamp};
use tributary_testkit::PgCluster;

const HOUR: Duration = Duration::from_secs(3600);

async fn add(state: &StateStore, id: &str, status: ConnectionStatus) {
    let info = ConnectionInfo {
        connection_id: id.into(),
        company_id: format!("company-{id}"),
        source: "sandbox".into(),
        settings: serde_json::json!({}),
    };
    assert!(
        state
            .add_connection_with_status(&info, status, Timestamp::now())
            .await
            .unwrap()
    );
}

async fn claim(state: &StateStore, owner: &str, limit: usize, lease: Duration) -> Vec<String> {
    state
        .claim_due(owner, limit, lease)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.connection.info.connection_id)
        .collect()
}

async fn save(state: &StateStore, id: &str, owner: &str, cursor: &str) -> bool {
    state
        .save_cursor(
            id,
            DataType::Invoice,
            &Cursor(cursor.into()),
            owner,
            Timestamp::now(),
        )
        .await
        .unwrap()
}

async fn lease_rules(state: StateStore) {
    for id in ["c1", "c2", "c3"] {
        add(&state, id, ConnectionStatus::Linked).await;
    }
    add(&state, "waiting", ConnectionStatus::PendingAuth).await;
    add(&state, "gone", ConnectionStatus::Linked).await;
    state
        .unlink("gone", "removed", Timestamp::now())
        .await
        .unwrap();

    // One holder per connection; unlinked and unauthorized ones are not synced.
    assert_eq!(claim(&state, "a", 2, HOUR).await, ["c1", "c2"]);
    assert_eq!(claim(&state, "b", 10, HOUR).await, ["c3"]);
    assert!(claim(&state, "b", 10, HOUR).await.is_empty());

    // Only the holder moves a cursor.
    assert!(!save(&state, "c1", "b", "from-b").await);
    assert!(save(&state, "c1", "a", "from-a").await);
    assert_eq!(
        state.cursor("c1", DataType::Invoice).await.unwrap(),
        Some(Cursor("from-a".into()))
    );

    // Released, a connection waits for its next due time...
    state.release_lease("c1", "a", Some(HOUR)).await.unwrap();
    assert!(claim(&state, "b", 10, HOUR).await.is_empty());
    // ...unless a sync is asked for.
    state.request_sync().await.unwrap();
    assert_eq!(claim(&state, "b", 10, HOUR).await, ["c1"]);
    // The request is used up by that claim; c2 and c3 are still held.
    state.release_lease("c1", "b", Some(HOUR)).await.unwrap();
    assert!(claim(&state, "b", 10, HOUR).await.is_empty());

    // A worker does not win what it holds a second time; restarted (same
    // name), it frees its old leases and takes its connections back at once.
    state
        .release_lease("c3", "b", Some(Duration::ZERO))
        .await
        .unwrap();
    assert_eq!(claim(&state, "b", 10, HOUR).await, ["c3"]);
    assert!(claim(&state, "b", 10, HOUR).await.is_empty());
    assert_eq!(state.release_leases_of("b").await.unwrap(), 1);
    assert_eq!(claim(&state, "b", 10, HOUR).await, ["c3"]);

    // A lease not renewed expires; another worker takes over, and the old
    // holder can neither renew nor save a cursor any more.
    state
        .release_lease("c3", "b", Some(Duration::ZERO))
        .await
        .unwrap();
    assert_eq!(
        claim(&state, "dying", 1, Duration::from_millis(300)).await,
        ["c3"]
    );
    assert!(claim(&state, "c", 10, HOUR).await.is_empty());
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(claim(&state, "c", 10, HOUR).await, ["c3"]);
    assert!(!state.renew_lease("c3", "dying", HOUR).await.unwrap());
    assert!(!save(&state, "c3", "dying", "stale").await);
    assert!(state.renew_lease("c3", "c", HOUR).await.unwrap());
    assert!(save(&state, "c3", "c", "fresh").await);

    // A renewed lease does not expire.
    state
        .release_lease("c3", "c", Some(Duration::ZERO))
        .await
        .unwrap();
    assert_eq!(
        claim(&state, "alive", 1, Duration::from_millis(500)).await,
        ["c3"]
    );
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(
            state
                .renew_lease("c3", "alive", Duration::from_millis(500))
                .await
                .unwrap()
        );
    }
    assert!(claim(&state, "c", 10, HOUR).await.is_empty());
}

/// Workers claiming at the same moment never win the same connection.
async fn concurrent_claims(state: StateStore) {
    const CONNECTIONS: usize = 40;
    for i in 0..CONNECTIONS {
        add(&state, &format!("many-{i:02}"), ConnectionStatus::Linked).await;
    }
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..6 {
        let state = state.clone();
        tasks.spawn(async move {
            let mut won = Vec::new();
            // Small bites, so that the workers' claims interleave.
            for _ in 0..20 {
                won.extend(claim(&state, &format!("w{worker}"), 3, HOUR).await);
            }
            won
        });
    }
    let mut all = Vec::new();
    while let Some(won) = tasks.join_next().await {
        all.extend(won.unwrap());
    }
    let distinct: BTreeSet<&String> = all.iter().collect();
    assert_eq!(
        all.len(),
        distinct.len(),
        "a connection was won twice: {all:?}"
    );
    assert_eq!(distinct.len(), CONNECTIONS);
}

async fn history_rules(state: StateStore) {
    add(&state, "h1", ConnectionStatus::Linked).await;
    add(&state, "h2", ConnectionStatus::Linked).await;
    let company = "company-h1";
    let (inv, bills) = (DataType::Invoice, DataType::Bill);

    // Queued all or none; a second request for an open pair is refused
    // with the open run, and queues nothing.
    let queued = state
        .queue_runs(
            &[("h1", company, inv), ("h1", company, bills)],
            SyncTrigger::Request,
            None,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(queued.len(), 2);
    assert!(queued.iter().all(|r| r.status == SyncRunStatus::Queued));
    let refused = state
        .queue_runs(
            &[("h1", company, DataType::Customer), ("h1", company, inv)],
            SyncTrigger::Resync,
            None,
        )
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(refused.0.id, queued[0].id);
    assert!(
        state
            .open_run("h1", DataType::Customer)
            .await
            .unwrap()
            .is_none(),
        "a refused request queued part of itself"
    );
    // The request made the connection due, and only it.
    let claimed = state.claim_due("w", 10, HOUR).await.unwrap();
    let h1 = claimed
        .iter()
        .find(|c| c.connection.info.connection_id == "h1")
        .unwrap();
    assert!(h1.scheduled, "never synced: due by schedule too");

    // Starting takes the queued run over; its states come in order.
    let mut run = state
        .start_run("h1", company, inv, SyncTrigger::Schedule, "w")
        .await
        .unwrap();
    assert_eq!(run.id, queued[0].id);
    assert_eq!(
        run.trigger,
        SyncTrigger::Request,
        "the queued run's trigger is kept"
    );
    assert_eq!(run.status, SyncRunStatus::Fetching);
    state.mark_publishing(&run.id).await.unwrap();
    run.status = SyncRunStatus::Succeeded;
    run.records_fetched = 7;
    run.records_published = 6;
    run.records_dead_lettered = 1;
    state.finish_run(&run, false).await.unwrap();
    let done = state.run(company, &run.id).await.unwrap().unwrap();
    let states: Vec<SyncRunStatus> = done.states().into_iter().map(|(s, _)| s).collect();
    assert_eq!(
        states,
        [
            SyncRunStatus::Queued,
            SyncRunStatus::Fetching,
            SyncRunStatus::Publishing,
            SyncRunStatus::Succeeded
        ]
    );
    let times: Vec<Timestamp> = done.states().into_iter().map(|(_, t)| t).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    assert_eq!(
        (
            done.records_fetched,
            done.records_published,
            done.records_dead_lettered
        ),
        (7, 6, 1)
    );
    assert!(
        state.run("company-h2", &run.id).await.unwrap().is_none(),
        "another company's run"
    );
    // Once it ended, the pair may be asked for again.
    state
        .queue_runs(&[("h1", company, inv)], SyncTrigger::Request, None)
        .await
        .unwrap()
        .unwrap();

    // A worker dies mid-run: the next holder closes its runs as failed and
    // queues again the one an operator asked for (bills), not a scheduled one.
    let asked = state
        .start_run("h1", company, bills, SyncTrigger::Schedule, "dead")
        .await
        .unwrap();
    assert_eq!(asked.id, queued[1].id);
    let scheduled = state
        .start_run(
            "h1",
            company,
            DataType::Customer,
            SyncTrigger::Schedule,
            "dead",
        )
        .await
        .unwrap();
    assert_eq!(scheduled.trigger, SyncTrigger::Schedule);
    let closed = state.close_interrupted("h1", "interrupted").await.unwrap();
    let mut closed_ids: Vec<&str> = closed.iter().map(|r| r.id.as_str()).collect();
    closed_ids.sort();
    let mut expected = vec![asked.id.as_str(), scheduled.id.as_str()];
    expected.sort();
    assert_eq!(
        closed_ids, expected,
        "the queued invoices run is not started: it stays"
    );
    for id in [&asked.id, &scheduled.id] {
        let r = state.run(company, id).await.unwrap().unwrap();
        assert_eq!(r.status, SyncRunStatus::Failed);
        assert_eq!(r.error_fault.as_deref(), Some("tributary"));
        assert!(r.finished_at.is_some());
    }
    let resumed = state.open_run("h1", bills).await.unwrap().unwrap();
    assert_eq!(resumed.status, SyncRunStatus::Queued);
    assert_eq!(resumed.resumed_from.as_deref(), Some(asked.id.as_str()));
    assert!(
        state
            .open_run("h1", DataType::Customer)
            .await
            .unwrap()
            .is_none()
    );

    // A resync needs the lease; it forgets the cursor and raises the revision.
    assert_eq!(state.revision("h1", inv).await.unwrap(), 0);
    assert!(save(&state, "h1", "w", "c-5").await);
    assert_eq!(state.begin_resync("h1", inv, "other").await.unwrap(), None);
    assert!(
        state.cursor("h1", inv).await.unwrap().is_some(),
        "not the holder: cursor kept"
    );
    assert_eq!(state.begin_resync("h1", inv, "w").await.unwrap(), Some(1));
    assert_eq!(state.cursor("h1", inv).await.unwrap(), None);
    assert_eq!(state.begin_resync("h1", inv, "w").await.unwrap(), Some(2));
    assert_eq!(state.revision("h1", inv).await.unwrap(), 2);
    assert_eq!(state.revision("h1", bills).await.unwrap(), 0);

    // Paged newest first, filtered.
    let all = state
        .runs(
            company,
            &RunFilter {
                limit: 100,
                ..RunFilter::default()
            },
        )
        .await
        .unwrap();
    // Invoices twice, bills (queued, then taken over by the dead worker),
    // customers, the resumed bills.
    assert_eq!(all.len(), 5, "{all:#?}");
    assert!(all.windows(2).all(|w| w[0].id > w[1].id), "newest first");
    let mut paged: Vec<SyncRun> = Vec::new();
    let mut after = None;
    loop {
        let page = state
            .runs(
                company,
                &RunFilter {
                    limit: 4,
                    after: after.clone(),
                    ..RunFilter::default()
                },
            )
            .await
            .unwrap();
        after = page.last().map(|r| r.id.clone());
        let last = page.len() < 4;
        paged.extend(page);
        if last {
            break;
        }
    }
    assert_eq!(paged, all);
    let failed = state
        .runs(
            company,
            &RunFilter {
                status: Some(SyncRunStatus::Failed),
                data_type: Some(bills),
                limit: 100,
                ..RunFilter::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        failed.iter().map(|r| &r.id).collect::<Vec<_>>(),
        [&asked.id]
    );
    let resyncs = state
        .runs(
            company,
            &RunFilter {
                trigger: Some(SyncTrigger::Resync),
                limit: 100,
                ..RunFilter::default()
            },
        )
        .await
        .unwrap();
    assert!(resyncs.is_empty());
    let open: Vec<String> = state
        .open_runs(company)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(open.len(), 2, "queued invoices and resumed bills: {open:?}");

    // Pruning removes ended runs older than kept, never open ones.
    assert_eq!(state.prune_runs(HOUR).await.unwrap(), 0);
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(state.prune_runs(Duration::from_millis(1)).await.unwrap(), 3);
    let left = state
        .runs(
            company,
            &RunFilter {
                limit: 100,
                ..RunFilter::default()
            },
        )
        .await
        .unwrap();
    assert!(left.iter().all(|r| r.finished_at.is_none()), "{left:#?}");
    assert_eq!(left.len(), 2);

    // Scheduled runs live in memory until they end. Idle ones fold into
    // the idle one before them (several at once, as a worker counts them);
    // a run that found something is a row of its own.
    let scheduled = |found: i64| {
        let mut run = state.scheduled_run("h2", "company-h2", inv, SyncTrigger::Schedule, "w");
        run.status = SyncRunStatus::Succeeded;
        run.records_fetched = found;
        run
    };
    let mut first = scheduled(0);
    assert!(!first.recorded);
    let kept = state.fold_idle_runs(&mut first, 1, true).await.unwrap();
    assert_eq!(
        kept.as_deref(),
        Some(first.id.as_str()),
        "nothing to fold into: written"
    );
    let kept = state
        .fold_idle_runs(&mut scheduled(0), 3, true)
        .await
        .unwrap();
    assert_eq!(
        kept.as_deref(),
        Some(first.id.as_str()),
        "folded into the first idle run"
    );
    let mut busy = scheduled(5);
    busy.status = SyncRunStatus::Publishing;
    state.record_run(&mut busy).await.unwrap();
    assert!(busy.recorded, "written open, so the status shows it");
    assert_eq!(state.open_runs("company-h2").await.unwrap()[0].id, busy.id);
    let mut twin = scheduled(1);
    twin.status = SyncRunStatus::Publishing;
    state.record_run(&mut twin).await.unwrap();
    assert!(
        !twin.recorded,
        "one open run per pair: it waits for its end"
    );
    busy.status = SyncRunStatus::Succeeded;
    state.finish_run(&busy, false).await.unwrap();
    let mut after = scheduled(0);
    assert_eq!(
        state
            .fold_idle_runs(&mut after.clone(), 2, false)
            .await
            .unwrap(),
        None,
        "the run before it found something: nothing to fold into"
    );
    state.fold_idle_runs(&mut after, 1, true).await.unwrap();
    let h2 = state
        .runs(
            "company-h2",
            &RunFilter {
                limit: 100,
                ..RunFilter::default()
            },
        )
        .await
        .unwrap();
    let repeats: Vec<(&str, i64)> = h2.iter().map(|r| (r.id.as_str(), r.repeats)).collect();
    assert_eq!(
        repeats,
        [
            (after.id.as_str(), 0),
            (busy.id.as_str(), 0),
            (first.id.as_str(), 3)
        ]
    );
}

#[tokio::test]
async fn sqlite_leases() {
    let dir = tempfile::tempdir().unwrap();
    lease_rules(StateStore::open(&dir.path().join("a.db")).await.unwrap()).await;
    concurrent_claims(StateStore::open(&dir.path().join("b.db")).await.unwrap()).await;
}

#[tokio::test]
async fn sqlite_history() {
    let dir = tempfile::tempdir().unwrap();
    history_rules(StateStore::open(&dir.path().join("h.db")).await.unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_history() {
    let cluster = PgCluster::start();
    history_rules(StateStore::connect_postgres(&cluster.url()).await.unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_leases() {
    let cluster = PgCluster::start();
    cluster.create_database("rules");
    cluster.create_database("claims");
    lease_rules(
        StateStore::connect_postgres(&cluster.url_for("rules"))
            .await
            .unwrap(),
    )
    .await;
    // Two stores on one database, as two processes would have.
    let url = cluster.url_for("claims");
    let first = StateStore::connect_postgres(&url).await.unwrap();
    let second = StateStore::connect_postgres(&url).await.unwrap();
    add(&second, "seen-by-both", ConnectionStatus::Linked).await;
    assert_eq!(claim(&first, "w", 10, HOUR).await, ["seen-by-both"]);
    concurrent_claims(first).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_state_keeps_to_its_schema() {
    let cluster = PgCluster::start();
    let url = cluster.url();
    // The store's own migrations may live in the same database.
    let _state = StateStore::connect_postgres(&url).await.unwrap();
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    let tables: Vec<(String, String)> = sqlx::query_as(
        "SELECT table_schema::text, table_name::text FROM information_schema.tables \
         WHERE table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(!tables.is_empty());
    for (schema, table) in &tables {
        assert_eq!(
            schema, "tributary_state",
            "{table} is outside the state's schema"
        );
    }
    assert!(
        tables.iter().any(|(_, t)| t == "_sqlx_migrations"),
        "{tables:?}"
    );
    // A second process connecting finds the schema made and migrated.
    StateStore::connect_postgres(&url).await.unwrap();
}
