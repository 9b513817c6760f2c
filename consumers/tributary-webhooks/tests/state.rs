#![allow(clippy::unwrap_used)] // a test stops at its first surprise
//! Subscriptions, the outbox and the delivery log in the state store, on
//! SQLite and on PostgreSQL: the same rules on both.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::Notify;
use tributary_connector_api::admin::{AdminError, DeliveryFilter, NewSubscription, WebhookAdmin};
use tributary_connector_http::NetworkPolicy;
use tributary_producer::StateStore;
use tributary_producer::secrets::{Cipher, Key};
use tributary_producer::state::{Attempt, AttemptOutcome};
use tributary_projection::{Batch, Change, Checkpoint, DeadLetterSeen, Item, Projection};
use tributary_schemas::model::Connection;
use tributary_schemas::{
    ConnectionStatus, DataType, Event, ManifestEvent, Record, SyncRunEvent, SyncRunStatus,
    SyncTrigger, Timestamp,
};
use tributary_testkit::PgCluster;
use tributary_webhooks::reconcile::{Found, Reconciler};
use tributary_webhooks::{Clock, Outbox, Webhooks};

fn sync_run(company: &str, published: i64) -> Change {
    Change::SyncRun(SyncRunEvent {
        event_id: "e1".into(),
        company_id: company.into(),
        connection_id: format!("{company}-xero"),
        source: "xero".into(),
        data_type: "invoices".into(),
        started_at: Timestamp(1_000),
        finished_at: Timestamp(2_000),
        status: SyncRunStatus::Succeeded,
        records_fetched: 5,
        pages_fetched: 1,
        error: None,
        run_id: "run_1".into(),
        trigger: SyncTrigger::Schedule,
        records_published: published,
        records_dead_lettered: 0,
        error_fault: None,
        repeats: 0,
    })
}

fn connection(company: &str, status: ConnectionStatus) -> Change {
    let id = format!("{company}-xero");
    Change::Record(Event {
        event_id: format!("c-{}", status.as_str()),
        company_id: company.into(),
        connection_id: id.clone(),
        data_type: "connections".into(),
        source: "tributary".into(),
        source_record_id: id.clone(),
        source_modified_at: Timestamp(3_000),
        fetched_at: Timestamp(3_000),
        deleted: false,
        record: Some(Record::Connection(Connection {
            id,
            company_id: company.into(),
            source: "xero".into(),
            status,
            status_reason: None,
            created_at: Timestamp(0),
        })),
        revision: 0,
    })
}

fn letter(company: &str) -> Change {
    Change::DeadLetter(DeadLetterSeen {
        stage: "decode".into(),
        reason: "not in the Confluent wire format".into(),
        company_id: Some(company.into()),
        projection: Some("store".into()),
        source_topic: Some(DataType::Invoice.topic()),
        source_partition: Some(0),
        source_offset: Some(7),
        data_type: Some("invoices".into()),
        connection_id: None,
    })
}

fn batch(items: Vec<(&str, i64, Change)>) -> Batch {
    let mut positions = Checkpoint::new();
    let items = items
        .into_iter()
        .map(|(topic, offset, change)| {
            positions.advance(topic, 0, offset + 1);
            Item {
                topic: topic.into(),
                partition: 0,
                offset,
                change,
            }
        })
        .collect();
    Batch { items, positions }
}

fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
    k.sort();
    k
}

async fn rules(state: StateStore) {
    let old_key = Key::generate();
    let cipher = Arc::new(Cipher::new(old_key.clone(), vec![]));
    let clock = Clock::start();
    let admin = Webhooks {
        state: state.clone(),
        cipher: cipher.clone(),
        policy: NetworkPolicy::default(),
        clock,
    };
    let new = |url: &str, events: &[&str], company: Option<&str>| NewSubscription {
        url: url.into(),
        event_types: events.iter().map(|e| e.to_string()).collect(),
        company_id: company.map(str::to_string),
        description: String::new(),
    };
    // The outbound guard, and event types checked.
    for (bad, words) in [
        (
            new("http://127.0.0.1:9/hook", &["sync.completed"], None),
            "refused",
        ),
        (
            new("https://10.0.0.1/hook", &["sync.completed"], None),
            "refused",
        ),
        (
            new(
                "https://example.com/hook",
                &["sync.completed", "nope"],
                None,
            ),
            "unknown event type \"nope\"",
        ),
        (
            new("https://example.com/hook", &[], None),
            "at least one event type",
        ),
    ] {
        let Err(AdminError::BadRequest(why)) = admin.subscribe(bad).await else {
            panic!("should be refused: {words}")
        };
        assert!(why.contains(words), "{why}");
    }
    let (all, secret) = admin
        .subscribe(new("https://example.com/all", &["sync.completed"], None))
        .await
        .unwrap();
    assert!(secret.starts_with("whsec_"));
    let all = all["id"].as_str().unwrap().to_string();
    // Stored sealed: the secret is not in the row, and opens with the key.
    let stored = state.subscription(&all).await.unwrap().unwrap();
    assert!(!String::from_utf8_lossy(&stored.sealed_secret.ciphertext).contains(&secret[6..]));
    let opened = cipher
        .open(
            &format!("webhook-subscription:{all}"),
            &stored.sealed_secret,
        )
        .unwrap();
    assert_eq!(String::from_utf8(opened).unwrap(), secret);
    let (acme, _) = admin
        .subscribe(new(
            "https://example.com/acme",
            &["connection.status_changed", "dead_letters.added"],
            Some("acme"),
        ))
        .await
        .unwrap();
    let acme = acme["id"].as_str().unwrap().to_string();

    // What the outbox reads, and what it queues for whom.
    let runs = SyncRunEvent::topic();
    let connections = DataType::Connection.topic();
    let letters = tributary_schemas::dead_letter_topic();
    let read = batch(vec![
        (&runs, 5, sync_run("acme", 3)),
        (
            &connections,
            1,
            connection("acme", ConnectionStatus::Linked),
        ),
        (
            &connections,
            2,
            connection("acme", ConnectionStatus::Linked),
        ),
        (
            &connections,
            3,
            connection("acme", ConnectionStatus::Deauthorized),
        ),
        (&letters, 7, letter("acme")),
        (&letters, 8, letter("acme")),
        (&letters, 9, letter("globex")),
    ]);
    let mut outbox = Outbox::new(
        state.clone(),
        clock,
        Arc::new(Notify::new()),
        Duration::ZERO,
    );
    assert!(outbox.checkpoint().await.unwrap().is_empty());
    outbox.apply(&read).await.unwrap();
    let filter = DeliveryFilter {
        limit: 100,
        ..DeliveryFilter::default()
    };
    let to_all = admin.deliveries(&all, &filter).await.unwrap();
    assert_eq!(to_all.len(), 1, "{to_all:?}");
    let body = &to_all[0]["payload"];
    assert_eq!(keys(body), ["data", "timestamp", "type"]);
    assert_eq!(body["type"], "sync.completed");
    assert_eq!(
        keys(&body["data"]),
        [
            "changed",
            "company_id",
            "connection_id",
            "data_type",
            "finished_at",
            "records_changed",
            "records_dead_lettered",
            "records_fetched",
            "run_id",
            "source",
            "started_at",
            "trigger"
        ]
    );
    assert_eq!(body["data"]["records_changed"], 3);
    assert_eq!(body["data"]["changed"], true);
    let to_acme = admin.deliveries(&acme, &filter).await.unwrap();
    let mut told: Vec<(String, Value)> = to_acme
        .iter()
        .map(|d| {
            (
                d["event_type"].as_str().unwrap().to_string(),
                d["payload"]["data"].clone(),
            )
        })
        .collect();
    told.sort_by_key(|(t, d)| (t.clone(), d["status"].to_string()));
    assert_eq!(told.len(), 3, "{told:?}");
    assert_eq!(told[0].0, "connection.status_changed");
    assert_eq!(
        (
            told[0].1["status"].clone(),
            told[0].1["previous_status"].clone()
        ),
        (json!("deauthorized"), json!("linked"))
    );
    assert_eq!(
        (
            told[1].1["status"].clone(),
            told[1].1["previous_status"].clone()
        ),
        (json!("linked"), Value::Null)
    );
    assert_eq!(told[2].0, "dead_letters.added");
    assert_eq!(told[2].1["count"], 2);
    assert_eq!(told[2].1["letters"][0]["dead_letter_id"], "0@7");

    // Read again, by this outbox or a new one: nothing more is queued.
    outbox.apply(&read).await.unwrap();
    let mut again = Outbox::new(
        state.clone(),
        clock,
        Arc::new(Notify::new()),
        Duration::ZERO,
    );
    assert_eq!(
        again.checkpoint().await.unwrap().next_offset(&letters, 0),
        Some(10)
    );
    again.apply(&read).await.unwrap();
    assert_eq!(admin.deliveries(&acme, &filter).await.unwrap().len(), 3);
    assert_eq!(admin.deliveries(&all, &filter).await.unwrap().len(), 1);

    // Claims: one holder at a time; a lapsed claim passes on, and the
    // first holder can no longer record.
    let now = clock.now();
    let later = Timestamp(now.millis() + 60_000);
    let claimed = state
        .claim_deliveries(&all, "a", now, later, 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert!(
        state
            .claim_deliveries(&all, "b", now, later, 10)
            .await
            .unwrap()
            .is_empty()
    );
    // acme's are due and unclaimed; all's one is held.
    assert_eq!(
        state.subscriptions_due(now).await.unwrap(),
        vec![acme.clone()]
    );
    let taken = state
        .claim_deliveries(&all, "b", later, Timestamp(later.millis() + 60_000), 10)
        .await
        .unwrap();
    assert_eq!(taken.len(), 1);
    let attempt = Attempt {
        attempt: 1,
        at: later,
        duration_ms: 12,
        status_code: Some(500),
        error: Some("answered 500".into()),
    };
    let retry = AttemptOutcome::RetryAt(Timestamp(later.millis() + 5_000));
    assert!(
        !state
            .record_attempt(&claimed[0].id, "a", &attempt, &retry)
            .await
            .unwrap()
    );
    assert!(
        state
            .record_attempt(&claimed[0].id, "b", &attempt, &retry)
            .await
            .unwrap()
    );
    let one = admin.delivery(&claimed[0].id).await.unwrap();
    assert_eq!(
        (one["status"].clone(), one["attempts"].clone()),
        (json!("pending"), json!(1))
    );
    assert_eq!(one["attempt_log"][0]["status_code"], 500);
    assert_eq!(
        state.next_delivery_due().await.unwrap().map(|t| t <= now),
        Some(true)
    );
    // A restarted holder frees its claims.
    state
        .claim_deliveries(&acme, "c", now, later, 10)
        .await
        .unwrap();
    assert_eq!(state.release_deliveries_of("c").await.unwrap(), 3);

    // Delivered, then replayed: a new delivery under the same webhook-id.
    let delivered = state
        .claim_deliveries(
            &all,
            "b",
            Timestamp(later.millis() + 5_000),
            Timestamp(later.millis() + 9_000),
            1,
        )
        .await
        .unwrap();
    let ok = Attempt {
        attempt: 2,
        status_code: Some(200),
        error: None,
        ..attempt
    };
    assert!(
        state
            .record_attempt(&delivered[0].id, "b", &ok, &AttemptOutcome::Delivered)
            .await
            .unwrap()
    );
    let replay = admin.replay(&delivered[0].id).await.unwrap();
    assert_eq!(replay["message_id"], delivered[0].message_id);
    assert_eq!(replay["replay_of"], delivered[0].id);
    assert_eq!(replay["status"], "pending");
    let delivered_only = DeliveryFilter {
        status: Some("delivered".into()),
        limit: 10,
        before: None,
    };
    assert_eq!(
        admin.deliveries(&all, &delivered_only).await.unwrap().len(),
        1
    );
    let test = admin.test(&all).await.unwrap();
    assert_eq!(test["event_type"], "webhook.test");
    // Paged newest first.
    let first_page = admin
        .deliveries(
            &all,
            &DeliveryFilter {
                limit: 2,
                ..DeliveryFilter::default()
            },
        )
        .await
        .unwrap();
    let rest = admin
        .deliveries(
            &all,
            &DeliveryFilter {
                limit: 2,
                before: first_page[1]["id"].as_str().map(str::to_string),
                status: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(first_page.len() + rest.len(), 3);

    // Removed: what was pending is cancelled, nothing new is queued or tested.
    admin.unsubscribe(&acme).await.unwrap();
    let cancelled = admin.deliveries(&acme, &filter).await.unwrap();
    assert!(
        cancelled.iter().all(|d| d["status"] == "cancelled"),
        "{cancelled:?}"
    );
    assert!(matches!(
        admin.test(&acme).await,
        Err(AdminError::BadRequest(_))
    ));
    assert!(matches!(
        admin.unsubscribe("sub_nope").await,
        Err(AdminError::NotFound(_))
    ));
    let more = batch(vec![(&letters, 10, letter("acme"))]);
    outbox.apply(&more).await.unwrap();
    assert_eq!(admin.deliveries(&acme, &filter).await.unwrap().len(), 3);
    assert_eq!(admin.subscriptions().await.unwrap().len(), 2);
    // The log forgets what ended before a time; pending ones stay.
    assert_eq!(
        state
            .prune_deliveries(Timestamp(i64::MAX / 2))
            .await
            .unwrap(),
        4
    );
    let kept = admin.deliveries(&all, &filter).await.unwrap();
    assert_eq!(kept.len(), 2);
    assert!(kept.iter().all(|d| d["status"] == "pending"), "{kept:?}");
    assert!(admin.deliveries(&acme, &filter).await.unwrap().is_empty());
    // Key rotation re-seals every secret with the new key.
    let new_key = Key::generate();
    let rotated = Webhooks {
        cipher: Arc::new(Cipher::new(new_key.clone(), vec![old_key])),
        ..admin
    };
    assert_eq!(rotated.rotate_key().await.unwrap(), 2);
    let only_new = Cipher::new(new_key, vec![]);
    let resealed = state.subscription(&all).await.unwrap().unwrap();
    let opened = only_new
        .open(
            &format!("webhook-subscription:{all}"),
            &resealed.sealed_secret,
        )
        .unwrap();
    assert_eq!(String::from_utf8(opened).unwrap(), secret);
}

fn manifest(company: &str, data_type: &str, live_count: i64, digest: &str) -> ManifestEvent {
    ManifestEvent {
        event_id: format!("m-{company}-{data_type}"),
        company_id: company.into(),
        connection_id: format!("{company}-xero"),
        source: "xero".into(),
        data_type: data_type.into(),
        run_id: "run_1".into(),
        as_of: Timestamp(5_000),
        full_pass: true,
        live_count,
        digest: digest.into(),
    }
}

/// After a manifest, the store is checked against it: a match ends the
/// check quietly; a mismatch is looked at again, and told only if it stays.
async fn reconciliation_rules(state: StateStore, dir: &std::path::Path) {
    let cipher = Arc::new(Cipher::new(Key::generate(), vec![]));
    let clock = Clock::start();
    let admin = Webhooks {
        state: state.clone(),
        cipher,
        policy: NetworkPolicy::default(),
        clock,
    };
    let (sub, _) = admin
        .subscribe(NewSubscription {
            url: "https://example.com/hook".into(),
            event_types: vec!["reconciliation.mismatch".into()],
            company_id: None,
            description: String::new(),
        })
        .await
        .unwrap();
    let sub = sub["id"].as_str().unwrap().to_string();
    let now = clock.now();
    for (id, company) in [("acme-xero", "acme"), ("globex-xero", "globex")] {
        let info = tributary_connector_api::ConnectionInfo {
            connection_id: id.into(),
            company_id: company.into(),
            source: "xero".into(),
            settings: json!({}),
        };
        state.add_connection(&info, now).await.unwrap();
    }
    // The store is empty: acme's manifest says nothing live (a match),
    // globex's says two invoices (a mismatch).
    let empty = tributary_schemas::manifest_digest([]);
    let read = vec![
        manifest("acme", "invoices", 0, &empty),
        manifest("globex", "invoices", 2, "0000000000000000000000000000002a"),
    ];
    for m in &read {
        state.save_manifest(m).await.unwrap();
    }
    let topic = tributary_schemas::ManifestEvent::topic();
    let mut outbox = Outbox::new(
        state.clone(),
        clock,
        Arc::new(Notify::new()),
        Duration::ZERO,
    );
    outbox.checkpoint().await.unwrap();
    outbox
        .apply(&batch(
            read.into_iter()
                .enumerate()
                .map(|(i, m)| (topic.as_str(), i as i64, Change::Manifest(m)))
                .collect(),
        ))
        .await
        .unwrap();
    assert_eq!(state.due_checks(clock.now(), 10).await.unwrap().len(), 2);
    let store = tributary_store_sqlite::SqliteStore::open(&dir.join("store.db"))
        .await
        .unwrap();
    let reconciler = Reconciler {
        state: state.clone(),
        store: Arc::new(store),
        clock,
        grace: Duration::ZERO,
        every: Duration::from_secs(1),
        wake: Arc::new(Notify::new()),
    };
    assert_eq!(
        reconciler.compare("acme", "invoices").await.unwrap(),
        Found::Match
    );
    assert!(matches!(
        reconciler.compare("globex", "invoices").await.unwrap(),
        Found::Mismatch(c) if c.live_count == 2 && c.stored_count == 0
    ));
    assert_eq!(
        reconciler.compare("globex", "bills").await.unwrap(),
        Found::Nothing
    );
    let filter = DeliveryFilter {
        limit: 10,
        ..DeliveryFilter::default()
    };
    // First look: acme ends, globex is looked at again; nothing told yet.
    reconciler.check_due().await.unwrap();
    let left = state.due_checks(clock.now(), 10).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(
        (left[0].company_id.as_str(), left[0].attempt),
        ("globex", 2)
    );
    assert!(admin.deliveries(&sub, &filter).await.unwrap().is_empty());
    // Second look: still missing, told once.
    reconciler.check_due().await.unwrap();
    reconciler.check_due().await.unwrap();
    assert!(state.due_checks(clock.now(), 10).await.unwrap().is_empty());
    let told = admin.deliveries(&sub, &filter).await.unwrap();
    assert_eq!(told.len(), 1, "{told:?}");
    let data = &told[0]["payload"]["data"];
    assert_eq!(told[0]["payload"]["type"], "reconciliation.mismatch");
    assert_eq!(
        (data["company_id"].clone(), data["data_type"].clone()),
        (json!("globex"), json!("invoices"))
    );
    assert_eq!(
        (data["expected_count"].clone(), data["stored_count"].clone()),
        (json!(2), json!(0))
    );
    assert_eq!(data["stored_digest"], json!(empty));
}

#[tokio::test]
async fn sqlite_reconciliation_rules() {
    let dir = tempfile::tempdir().unwrap();
    let state = StateStore::open(&dir.path().join("state.db"))
        .await
        .unwrap();
    reconciliation_rules(state, dir.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_reconciliation_rules() {
    let cluster = PgCluster::start();
    let dir = tempfile::tempdir().unwrap();
    let state = StateStore::connect_postgres(&cluster.url()).await.unwrap();
    reconciliation_rules(state, dir.path()).await;
}

#[tokio::test]
async fn sqlite_webhook_rules() {
    let dir = tempfile::tempdir().unwrap();
    rules(
        StateStore::open(&dir.path().join("state.db"))
            .await
            .unwrap(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_webhook_rules() {
    let cluster = PgCluster::start();
    rules(StateStore::connect_postgres(&cluster.url()).await.unwrap()).await;
}
