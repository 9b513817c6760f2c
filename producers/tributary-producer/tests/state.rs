#![allow(clippy::unwrap_used)] // a test stops at its first surprise
//! The state store's sync leases, the same rules on SQLite and on a real
//! PostgreSQL: one holder per connection, fenced cursor saves, due times,
//! requested syncs, takeover after expiry, and no connection won twice when
//! workers claim at the same moment.

use std::collections::BTreeSet;
use std::time::Duration;

use tributary_connector_api::{ConnectionInfo, Cursor};
use tributary_producer::StateStore;
use tributary_schemas::{ConnectionStatus, DataType, Timestamp};
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
        .map(|c| c.info.connection_id)
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
    state.release_lease("c1", "a", HOUR).await.unwrap();
    assert!(claim(&state, "b", 10, HOUR).await.is_empty());
    // ...unless a sync is asked for.
    state.request_sync().await.unwrap();
    assert_eq!(claim(&state, "b", 10, HOUR).await, ["c1"]);
    // The request is used up by that claim; c2 and c3 are still held.
    state.release_lease("c1", "b", HOUR).await.unwrap();
    assert!(claim(&state, "b", 10, HOUR).await.is_empty());

    // A worker does not win what it holds a second time; restarted (same
    // name), it frees its old leases and takes its connections back at once.
    state
        .release_lease("c3", "b", Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(claim(&state, "b", 10, HOUR).await, ["c3"]);
    assert!(claim(&state, "b", 10, HOUR).await.is_empty());
    assert_eq!(state.release_leases_of("b").await.unwrap(), 1);
    assert_eq!(claim(&state, "b", 10, HOUR).await, ["c3"]);

    // A lease not renewed expires; another worker takes over, and the old
    // holder can neither renew nor save a cursor any more.
    state
        .release_lease("c3", "b", Duration::ZERO)
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
        .release_lease("c3", "c", Duration::ZERO)
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

#[tokio::test]
async fn sqlite_leases() {
    let dir = tempfile::tempdir().unwrap();
    lease_rules(StateStore::open(&dir.path().join("a.db")).await.unwrap()).await;
    concurrent_claims(StateStore::open(&dir.path().join("b.db")).await.unwrap()).await;
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
