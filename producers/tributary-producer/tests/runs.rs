#![allow(clippy::unwrap_used)] // a test stops at its first surprise
//! Targeted syncs and resyncs through the worker, a real broker (the local
//! Tansu) and a registry, with the sync history they leave:
//! - a sync of one company and data type fetches only that (the source's
//!   calls prove it) and leaves the other company and data type untouched;
//! - asking again while it is queued answers with the open run;
//! - a mapping fixed, then a resync: everything fetched again from the
//!   start, published with a higher revision (new event ids, same source
//!   versions), so the stores take the new values;
//! - each run's history: trigger, states in order, counts; the `sync_runs`
//!   topic carries the run id and trigger;
//! - a refetch fetches one record by id and publishes only it; sources
//!   that cannot fetch one record answer a clear refusal;
//! - a reconciliation publishes a tombstone for a record the source no
//!   longer lists, and a manifest of what is live;
//! - sync settings per data type: the order they are fetched in, an
//!   interval each, one disabled for one connection;
//! - a record too large to publish is a letter cut to fit; its replay
//!   fetches the record again by id;
//! - a record the connector cannot map is a dead letter; replayed before
//!   the fix it still fails and stays; after the fix it is mapped and
//!   published, and the letter is marked replayed;
//! - a source's webhook, verified by its connector, queues runs (trigger
//!   `source_webhook`) of the data types it names for the connections of
//!   its tenant; a wrong signature queues none; per-tenant health shows
//!   the sync age of the stalest pairs.

mod common;

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde_json::{Value, json};
use tributary_connector_api::admin::{
    AdminError, ConnectionAdmin, DeadLetterAdmin, LetterFilter, RunFilter,
};
use tributary_connector_api::{
    ConnectionInfo, Connector, ConnectorError, ConnectorFactory, CredentialVault, Cursor, Fault,
    MappedRecord, Page, PageRequest, SourceChange, Webhook, WebhookRefusal,
};
use tributary_producer::state::SyncRun;
use tributary_projection::Change;
use tributary_schemas::model::Contact;
use tributary_schemas::{DataType, DeadLetterStage, Record, SyncRunStatus, SyncTrigger, Timestamp};

/// Every fetch: connection, data type, cursor asked from.
type Calls = Arc<Mutex<Vec<(String, DataType, Option<String>)>>>;

/// Three customers and three suppliers per connection, named with a prefix
/// the test changes (a mapping fix). From the start a page holds all
/// three; from the cursor `end`, nothing new.
#[derive(Clone, Default)]
struct Catalog {
    connection: String,
    prefix: Arc<Mutex<String>>,
    calls: Calls,
    /// A record id the mapping refuses (a bug, until it is fixed).
    broken: Arc<Mutex<Option<String>>>,
    /// Records fetched one by one (customers only: suppliers cannot be).
    fetched_one: Calls,
    /// The modification time one-by-one fetches see (a change at the source).
    modified_now: Arc<Mutex<i64>>,
    /// Ids the source no longer lists (deleted there, for good).
    gone: Arc<Mutex<Vec<String>>>,
    /// A record id the source serves with a 1.5 MB name: too large to
    /// publish, and its dead letter is cut to fit.
    huge: Arc<Mutex<Option<String>>>,
}

const MODIFIED: i64 = 1_700_000_000_000;

#[async_trait]
impl Connector for Catalog {
    fn data_types(&self) -> Vec<DataType> {
        vec![DataType::Customer, DataType::Supplier]
    }
    async fn authenticate(&self) -> Result<(), ConnectorError> {
        Ok(())
    }
    async fn fetch_page(&self, request: &PageRequest) -> Result<Page, ConnectorError> {
        self.calls.lock().unwrap().push((
            self.connection.clone(),
            request.data_type,
            request.cursor.as_ref().map(|c| c.0.clone()),
        ));
        let gone = self.gone.lock().unwrap().clone();
        let huge = self.huge.lock().unwrap().clone();
        let records = if request.cursor.is_none() {
            (1..=3)
                .map(|i| format!("r-{i}"))
                .filter(|id| !gone.contains(id))
                .map(|id| match &huge {
                    Some(h) if *h == id => json!({"id": id, "blob": "x".repeat(1_500_000)}),
                    _ => json!({"id": id}),
                })
                .collect()
        } else {
            vec![]
        };
        Ok(Page {
            records,
            next_cursor: Some(Cursor("end".into())),
            has_more: false,
        })
    }
    fn can_fetch_record(&self, data_type: DataType) -> bool {
        data_type == DataType::Customer
    }
    async fn fetch_record(
        &self,
        data_type: DataType,
        id: &str,
        _: Timestamp,
    ) -> Result<Option<Value>, ConnectorError> {
        self.fetched_one.lock().unwrap().push((
            self.connection.clone(),
            data_type,
            Some(id.to_string()),
        ));
        let modified = *self.modified_now.lock().unwrap();
        Ok(["r-1", "r-2", "r-3"]
            .contains(&id)
            .then(|| json!({"id": id, "modified": modified})))
    }
    fn map(&self, data_type: DataType, raw: &Value) -> Result<MappedRecord, ConnectorError> {
        let id = raw["id"]
            .as_str()
            .ok_or_else(|| ConnectorError::new("catalog", Fault::Data, "no id"))?;
        if self.broken.lock().unwrap().as_deref() == Some(id) {
            return Err(ConnectorError::new(
                "catalog",
                Fault::Data,
                format!("record {id} trips a mapping bug"),
            ));
        }
        let name = match raw["blob"].as_str() {
            Some(blob) => blob.to_string(),
            None => format!("{} {id}", self.prefix.lock().unwrap()),
        };
        let contact = Contact {
            id: id.into(),
            name,
            email: None,
            phone: None,
            status: "ACTIVE".into(),
            currency: None,
        };
        Ok(MappedRecord {
            source_record_id: id.into(),
            source_modified_at: Timestamp(raw["modified"].as_i64().unwrap_or(MODIFIED)),
            deleted: false,
            record: Some(match data_type {
                DataType::Supplier => Record::Supplier(contact),
                _ => Record::Customer(contact),
            }),
        })
    }
}

#[async_trait]
impl ConnectorFactory for Catalog {
    fn name(&self) -> &'static str {
        "catalog"
    }
    fn check_settings(&self, _: &Value) -> Result<(), ConnectorError> {
        Ok(())
    }
    /// Signed when `x-catalog-signature` is `signed:` and the body; the
    /// body is `<tenant> <data type>,<data type>...`.
    fn receive_webhook(&self, webhook: &Webhook) -> Result<Vec<SourceChange>, WebhookRefusal> {
        let body = String::from_utf8(webhook.body.clone()).unwrap();
        if webhook.headers.get("x-catalog-signature") != Some(&format!("signed:{body}")) {
            return Err(WebhookRefusal::Unverified("bad signature".into()));
        }
        let (tenant, types) = body.split_once(' ').unwrap();
        Ok(vec![SourceChange {
            tenant: tenant.into(),
            data_types: types.split(',').map(|t| t.parse().unwrap()).collect(),
        }])
    }
    /// The tenant of a connection is its company.
    fn tenant(&self, connection: &ConnectionInfo) -> Option<String> {
        Some(connection.company_id.clone())
    }
    fn build(
        &self,
        info: &ConnectionInfo,
        _: Arc<dyn CredentialVault>,
    ) -> Result<Arc<dyn Connector>, ConnectorError> {
        let mut connector = self.clone();
        connector.connection = info.connection_id.clone();
        Ok(Arc::new(connector))
    }
}

async fn runs(rig: &common::Rig, company: &str) -> Vec<SyncRun> {
    rig.state
        .runs(
            company,
            &RunFilter {
                limit: 100,
                ..RunFilter::default()
            },
        )
        .await
        .unwrap()
}

async fn run_of(rig: &common::Rig, company: &str, id: &str) -> SyncRun {
    rig.state.run(company, id).await.unwrap().unwrap()
}

/// The customer events on the topic, in order (one partition).
async fn customer_events(rig: &common::Rig, count: usize) -> Vec<tributary_schemas::Event> {
    let topic = DataType::Customer.topic();
    let decoder = tributary_projector::Decoder::new(&rig.registry_url);
    let mut events = Vec::new();
    for payload in tributary_testkit::messages(&rig.bootstrap, &topic, 1, count) {
        match decoder.decode(&topic, Some(&payload)).await.unwrap() {
            Change::Record(e) => events.push(e),
            other => panic!("not a record: {other:?}"),
        }
    }
    events
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn targeted_sync_and_resync_leave_a_history() {
    let calls: Calls = Arc::default();
    let prefix = Arc::new(Mutex::new("Old".to_string()));
    let catalog = Catalog {
        prefix: Arc::clone(&prefix),
        calls: Arc::clone(&calls),
        ..Catalog::default()
    };
    let rig = common::rig(catalog, &["acme", "globex"]).await;

    // The first round, by schedule: both companies, both data types.
    common::run_until(&rig, "the first round never ended", async || {
        let mut done = 0;
        for company in ["acme", "globex"] {
            done += runs(&rig, company)
                .await
                .iter()
                .filter(|r| r.status == SyncRunStatus::Succeeded)
                .count();
        }
        done == 4
    })
    .await;
    for run in runs(&rig, "acme").await {
        assert_eq!(run.trigger, SyncTrigger::Schedule);
        assert_eq!((run.records_fetched, run.records_published), (3, 3));
        let states: Vec<_> = run.states().into_iter().map(|(s, _)| s).collect();
        assert_eq!(
            states,
            [
                SyncRunStatus::Queued,
                SyncRunStatus::Fetching,
                SyncRunStatus::Publishing,
                SyncRunStatus::Succeeded
            ]
        );
    }
    calls.lock().unwrap().clear();

    // A sync of acme's customers: queued, a second ask is refused with it.
    let queued = rig
        .admin
        .request_company_sync("acme", &[DataType::Customer], SyncTrigger::Request)
        .await
        .unwrap();
    assert_eq!(queued.len(), 1);
    let run_id = queued[0]["id"].as_str().unwrap().to_string();
    assert_eq!(queued[0]["status"], "queued");
    match rig
        .admin
        .request_company_sync("acme", &[], SyncTrigger::Resync)
        .await
    {
        Err(AdminError::Conflict { open, .. }) => assert_eq!(open["id"], run_id.as_str()),
        other => panic!("expected a conflict: {other:?}"),
    }
    match rig
        .admin
        .request_company_sync("acme", &[DataType::Invoice], SyncTrigger::Request)
        .await
    {
        Err(AdminError::BadRequest(m)) => assert!(m.contains("offers invoices"), "{m}"),
        other => panic!("expected a bad request: {other:?}"),
    }
    common::run_until(&rig, "the requested sync never ended", async || {
        run_of(&rig, "acme", &run_id).await.status == SyncRunStatus::Succeeded
    })
    .await;
    assert_eq!(
        *calls.lock().unwrap(),
        [(
            "conn-acme".to_string(),
            DataType::Customer,
            Some("end".to_string())
        )],
        "only acme's customers, from the cursor"
    );
    let run = run_of(&rig, "acme", &run_id).await;
    assert_eq!(run.trigger, SyncTrigger::Request);
    assert_eq!((run.records_fetched, run.records_published), (0, 0));
    assert_eq!(runs(&rig, "globex").await.len(), 2, "globex untouched");
    calls.lock().unwrap().clear();

    // The mapping is fixed; a resync of acme's customers fetches them all
    // again and publishes them at a higher revision.
    *prefix.lock().unwrap() = "Fixed".into();
    let queued = rig
        .admin
        .request_company_sync("acme", &[DataType::Customer], SyncTrigger::Resync)
        .await
        .unwrap();
    let resync_id = queued[0]["id"].as_str().unwrap().to_string();
    common::run_until(&rig, "the resync never ended", async || {
        run_of(&rig, "acme", &resync_id).await.status == SyncRunStatus::Succeeded
    })
    .await;
    assert_eq!(
        *calls.lock().unwrap(),
        [("conn-acme".to_string(), DataType::Customer, None)],
        "the resync starts over, for acme's customers only"
    );
    let run = run_of(&rig, "acme", &resync_id).await;
    assert_eq!(run.trigger, SyncTrigger::Resync);
    assert_eq!((run.records_fetched, run.records_published), (3, 3));

    // acme's 3 and globex's 3 from the first round, then the resync's 3.
    let events = customer_events(&rig, 9).await;
    let first: Vec<_> = events
        .iter()
        .filter(|e| e.company_id == "acme" && e.revision == 0)
        .collect();
    let again: Vec<_> = events
        .iter()
        .filter(|e| e.company_id == "acme" && e.revision == 1)
        .collect();
    assert_eq!((first.len(), again.len()), (3, 3), "{events:#?}");
    for (old, new) in first.iter().zip(&again) {
        assert_eq!(old.source_record_id, new.source_record_id);
        assert_eq!(old.source_modified_at, new.source_modified_at);
        assert!(new.version() > old.version(), "the resync's version wins");
        assert_ne!(old.event_id, new.event_id);
        let Some(Record::Customer(c)) = &new.record else {
            panic!("not a customer")
        };
        assert!(c.name.starts_with("Fixed "), "{}", c.name);
    }
    assert_eq!(
        common::messages_in(&rig.bootstrap, &DataType::Customer.topic()),
        9,
        "nothing else was published"
    );

    // The sync_runs topic carries the history's id and trigger.
    let topic = tributary_schemas::SyncRunEvent::topic();
    let decoder = tributary_projector::Decoder::new(&rig.registry_url);
    let total = common::messages_in(&rig.bootstrap, &topic) as usize;
    let payloads = tributary_testkit::messages(&rig.bootstrap, &topic, 1, total);
    let mut found = false;
    for payload in payloads {
        if let Change::SyncRun(event) = decoder.decode(&topic, Some(&payload)).await.unwrap()
            && event.run_id == resync_id
        {
            assert_eq!(event.trigger, SyncTrigger::Resync);
            assert_eq!(event.records_published, 3);
            found = true;
        }
    }
    assert!(found, "no sync_runs event for the resync");
    rig.broker.stop(std::time::Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_map_letter_replays_once_its_connector_is_fixed() {
    let catalog = Catalog::default();
    *catalog.prefix.lock().unwrap() = "Name".into();
    *catalog.broken.lock().unwrap() = Some("r-2".into());
    let broken = Arc::clone(&catalog.broken);
    let rig = common::rig(catalog, &["acme"]).await;
    common::run_until(&rig, "the first round never ended", async || {
        runs(&rig, "acme")
            .await
            .iter()
            .filter(|r| r.status == SyncRunStatus::Succeeded)
            .count()
            == 2
    })
    .await;
    let customers = DataType::Customer.topic();
    assert_eq!(common::messages_in(&rig.bootstrap, &customers), 2);
    let customer_run = runs(&rig, "acme")
        .await
        .into_iter()
        .find(|r| r.data_type == DataType::Customer)
        .unwrap();
    assert_eq!(
        (
            customer_run.records_published,
            customer_run.records_dead_lettered
        ),
        (2, 1)
    );

    let publisher =
        Arc::new(tributary_producer::Publisher::new(&rig.client, &rig.registry_url).unwrap());
    let redrive = tributary_producer::Redrive::new(rig.client.clone(), publisher, &rig.admin);
    // Its supplier twin (same id) is a letter too; filtered out here.
    let all = LetterFilter {
        limit: 10,
        ..LetterFilter::default()
    };
    assert_eq!(redrive.letters(&all).await.unwrap().len(), 2);
    let customer_letters = LetterFilter {
        stage: Some(DeadLetterStage::Map),
        companies: Some(vec!["acme".into()]),
        data_type: Some(DataType::Customer),
        limit: 10,
        ..LetterFilter::default()
    };
    let letters = redrive.letters(&customer_letters).await.unwrap();
    assert_eq!(letters.len(), 1, "{letters:?}");
    let letter = &letters[0];
    assert_eq!(letter["data_type"], "customers");
    assert_eq!(letter["company_id"], "acme");
    assert_eq!(letter["replayed"], false);
    let id = letter["id"].as_str().unwrap().to_string();
    let other = LetterFilter {
        companies: Some(vec!["globex".into()]),
        limit: 10,
        ..LetterFilter::default()
    };
    assert!(redrive.letters(&other).await.unwrap().is_empty());

    // Before the fix: it still fails, and stays to be replayed.
    match DeadLetterAdmin::replay(&redrive, &id).await {
        Err(AdminError::BadRequest(m)) => assert!(m.contains("trips a mapping bug"), "{m}"),
        other => panic!("expected it to still fail: {other:?}"),
    }
    assert_eq!(redrive.letter(&id).await.unwrap()["replayed"], false);

    // The connector is fixed: the replay maps and publishes it.
    *broken.lock().unwrap() = None;
    let outcome = DeadLetterAdmin::replay(&redrive, &id).await.unwrap();
    assert_eq!(outcome["outcome"], "published", "{outcome}");
    assert_eq!(outcome["source_record_id"], "r-2");
    let events = customer_events(&rig, 3).await;
    let replayed = events.last().unwrap();
    assert_eq!(replayed.source_record_id, "r-2");
    assert_eq!(replayed.event_id, outcome["event_id"].as_str().unwrap());
    let Some(Record::Customer(c)) = &replayed.record else {
        panic!("not a customer")
    };
    assert_eq!(c.name, "Name r-2");
    assert_eq!(redrive.letter(&id).await.unwrap()["replayed"], true);
    match DeadLetterAdmin::replay(&redrive, &id).await {
        Err(AdminError::BadRequest(m)) => assert!(m.contains("replayed already"), "{m}"),
        other => panic!("expected a refusal: {other:?}"),
    }
    assert!(matches!(
        redrive.letter("0-1").await,
        Err(AdminError::BadRequest(_))
    ));
    rig.broker.stop(std::time::Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refetch_fetches_one_record_and_publishes_only_it() {
    let catalog = Catalog::default();
    *catalog.prefix.lock().unwrap() = "Name".into();
    *catalog.modified_now.lock().unwrap() = MODIFIED;
    let (fetched_one, modified_now, calls) = (
        Arc::clone(&catalog.fetched_one),
        Arc::clone(&catalog.modified_now),
        Arc::clone(&catalog.calls),
    );
    let rig = common::rig(catalog, &["acme"]).await;
    common::run_until(&rig, "the first round never ended", async || {
        runs(&rig, "acme").await.len() == 2 && rig.state.open_runs("acme").await.unwrap().is_empty()
    })
    .await;
    let customers = DataType::Customer.topic();
    assert_eq!(common::messages_in(&rig.bootstrap, &customers), 3);
    calls.lock().unwrap().clear();

    // Sources that cannot fetch one record, and types not offered, say so.
    for (data_type, why) in [
        (
            DataType::Supplier,
            "can fetch one suppliers record by id (catalog cannot)",
        ),
        (DataType::Invoice, "offers invoices"),
    ] {
        match rig.admin.request_refetch("acme", data_type, "r-1").await {
            Err(AdminError::BadRequest(m)) => assert!(m.contains(why), "{m}"),
            other => panic!("expected a bad request: {other:?}"),
        }
    }

    // The source changed r-2: a refetch brings that one record.
    *modified_now.lock().unwrap() = MODIFIED + 60_000;
    let queued = rig
        .admin
        .request_refetch("acme", DataType::Customer, "r-2")
        .await
        .unwrap();
    let run_id = queued[0]["id"].as_str().unwrap().to_string();
    assert_eq!(queued[0]["record_id"], "r-2");
    common::run_until(&rig, "the refetch never ended", async || {
        run_of(&rig, "acme", &run_id).await.status.is_finished()
    })
    .await;
    let run = run_of(&rig, "acme", &run_id).await;
    assert_eq!(run.status, SyncRunStatus::Succeeded, "{run:?}");
    assert_eq!(run.trigger, SyncTrigger::Refetch);
    assert_eq!((run.records_fetched, run.records_published), (1, 1));
    assert_eq!(
        *fetched_one.lock().unwrap(),
        [(
            "conn-acme".to_string(),
            DataType::Customer,
            Some("r-2".to_string())
        )]
    );
    assert!(calls.lock().unwrap().is_empty(), "no page was fetched");
    let events = customer_events(&rig, 4).await;
    let refetched = &events[3];
    assert_eq!(refetched.source_record_id, "r-2");
    assert_eq!(refetched.source_modified_at, Timestamp(MODIFIED + 60_000));
    assert_eq!(
        common::messages_in(&rig.bootstrap, &customers),
        4,
        "only it"
    );

    // A record the source does not have: the run fails, saying so.
    let queued = rig
        .admin
        .request_refetch("acme", DataType::Customer, "r-404")
        .await
        .unwrap();
    let missing = queued[0]["id"].as_str().unwrap().to_string();
    common::run_until(&rig, "the refetch never ended", async || {
        run_of(&rig, "acme", &missing).await.status.is_finished()
    })
    .await;
    let run = run_of(&rig, "acme", &missing).await;
    assert_eq!(run.status, SyncRunStatus::Failed);
    assert!(
        run.error
            .as_deref()
            .unwrap_or_default()
            .contains("has no customers record \"r-404\""),
        "{run:?}"
    );
    assert_eq!(run.error_fault.as_deref(), Some("user"));
    rig.broker.stop(std::time::Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconciliation_deletes_what_the_source_no_longer_lists() {
    let catalog = Catalog::default();
    *catalog.prefix.lock().unwrap() = "Name".into();
    let gone = Arc::clone(&catalog.gone);
    let rig = common::rig(catalog, &["acme"]).await;
    common::run_until(&rig, "the first round never ended", async || {
        runs(&rig, "acme").await.len() == 2 && rig.state.open_runs("acme").await.unwrap().is_empty()
    })
    .await;
    // The first sync paged from the start: a full pass, with a manifest
    // per data type.
    let digest_of = |ids: &[&str]| {
        tributary_schemas::manifest_digest(ids.iter().map(|id| (*id, Timestamp(MODIFIED), 0)))
    };
    let manifests = rig.state.manifests("acme").await.unwrap();
    assert_eq!(manifests.len(), 2, "{manifests:?}");
    let customers = manifests
        .iter()
        .find(|m| m.data_type == "customers")
        .unwrap();
    assert!(customers.full_pass);
    assert_eq!(customers.live_count, 3);
    assert_eq!(customers.digest, digest_of(&["r-1", "r-2", "r-3"]));
    let manifest_topic = tributary_schemas::ManifestEvent::topic();
    assert_eq!(common::messages_in(&rig.bootstrap, &manifest_topic), 2);

    // r-3 is deleted at the source for good: it is simply no longer listed.
    gone.lock().unwrap().push("r-3".into());
    let reconcile = async || {
        let queued = rig
            .admin
            .request_company_sync("acme", &[DataType::Customer], SyncTrigger::Reconcile)
            .await
            .unwrap();
        let id = queued[0]["id"].as_str().unwrap().to_string();
        common::run_until(&rig, "the reconciliation never ended", async || {
            run_of(&rig, "acme", &id).await.status.is_finished()
        })
        .await;
        run_of(&rig, "acme", &id).await
    };
    let run = reconcile().await;
    assert_eq!(run.status, SyncRunStatus::Succeeded, "{run:?}");
    assert_eq!(run.trigger, SyncTrigger::Reconcile);
    assert_eq!(run.records_deleted, 1);
    let events = customer_events(&rig, 4).await;
    let tombstone = &events[3];
    assert_eq!(tombstone.source_record_id, "r-3");
    assert!(tombstone.deleted && tombstone.record.is_none());
    assert!(
        tombstone.source_modified_at > Timestamp(MODIFIED),
        "it wins over the stored version"
    );
    assert_eq!(
        rig.state
            .cursor("conn-acme", DataType::Customer)
            .await
            .unwrap()
            .map(|c| c.0),
        Some("end".to_string()),
        "the incremental cursor stays where it was"
    );
    let manifests = rig.state.manifests("acme").await.unwrap();
    let customers = manifests
        .iter()
        .find(|m| m.data_type == "customers")
        .unwrap();
    assert_eq!(customers.run_id, run.id);
    assert_eq!(customers.live_count, 2);
    assert_eq!(customers.digest, digest_of(&["r-1", "r-2"]));
    assert_eq!(common::messages_in(&rig.bootstrap, &manifest_topic), 3);

    // Again: nothing more to delete, nothing published but the manifest.
    let run = reconcile().await;
    assert_eq!(run.records_deleted, 0);
    assert_eq!(
        common::messages_in(&rig.bootstrap, &DataType::Customer.topic()),
        4
    );
    rig.broker.stop(std::time::Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_settings_order_the_data_types_and_time_each() {
    let catalog = Catalog::default();
    *catalog.prefix.lock().unwrap() = "Name".into();
    let calls = Arc::clone(&catalog.calls);
    // Suppliers first; customers every second, suppliers hourly (the rig's
    // interval); globex does not sync suppliers at all.
    let plan: tributary_producer::SyncPlan = serde_json::from_value(json!({
        "order": ["suppliers"],
        "data_types": {"customers": {"interval_secs": 1}}
    }))
    .unwrap();
    let rig = common::rig_with_plan(catalog, &["acme", "globex"], plan).await;
    let no_suppliers: tributary_producer::SyncPlan =
        serde_json::from_value(json!({"data_types": {"suppliers": {"enabled": false}}})).unwrap();
    rig.state
        .set_plan("conn-globex", &no_suppliers)
        .await
        .unwrap();
    let settings = rig.admin.sync_settings("conn-globex").await.unwrap();
    assert_eq!(
        settings["effective"][0]["data_type"], "suppliers",
        "{settings}"
    );
    assert_eq!(settings["effective"][0]["enabled"], false, "{settings}");
    assert_eq!(settings["effective"][1]["interval_secs"], 1.0, "{settings}");

    let fetched = |connection: &str, data_type: DataType| {
        calls
            .lock()
            .unwrap()
            .iter()
            .filter(|(c, t, _)| c == connection && *t == data_type)
            .count()
    };
    common::run_until(&rig, "customers were not synced every second", async || {
        fetched("conn-acme", DataType::Customer) >= 4
            && fetched("conn-globex", DataType::Customer) >= 4
    })
    .await;
    let calls_now = calls.lock().unwrap().clone();
    let acme: Vec<DataType> = calls_now
        .iter()
        .filter(|(c, _, _)| c == "conn-acme")
        .map(|(_, t, _)| *t)
        .collect();
    assert_eq!(
        acme[..2],
        [DataType::Supplier, DataType::Customer],
        "the order: {acme:?}"
    );
    assert_eq!(fetched("conn-acme", DataType::Supplier), 1, "hourly: once");
    assert_eq!(
        fetched("conn-globex", DataType::Supplier),
        0,
        "disabled for globex"
    );

    // Bad overrides are refused, naming what is wrong.
    match rig
        .admin
        .set_sync_settings("conn-acme", json!({"order": ["supplier"]}))
        .await
    {
        Err(AdminError::BadRequest(m)) => {
            assert!(m.contains("unknown data type \"supplier\""), "{m}")
        }
        other => panic!("expected a bad request: {other:?}"),
    }
    rig.broker.stop(std::time::Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_letter_cut_to_fit_is_replayed_by_fetching_its_record_again() {
    let catalog = Catalog::default();
    *catalog.prefix.lock().unwrap() = "Name".into();
    *catalog.huge.lock().unwrap() = Some("r-1".into());
    let huge = Arc::clone(&catalog.huge);
    let fetched_one = Arc::clone(&catalog.fetched_one);
    let rig = common::rig(catalog, &["acme"]).await;
    common::run_until(&rig, "the first round never ended", async || {
        runs(&rig, "acme").await.len() == 2 && rig.state.open_runs("acme").await.unwrap().is_empty()
    })
    .await;
    let publisher =
        Arc::new(tributary_producer::Publisher::new(&rig.client, &rig.registry_url).unwrap());
    let redrive = tributary_producer::Redrive::new(rig.client.clone(), publisher, &rig.admin);
    let customer_letters = LetterFilter {
        data_type: Some(DataType::Customer),
        limit: 10,
        ..LetterFilter::default()
    };
    let letters = redrive.letters(&customer_letters).await.unwrap();
    assert_eq!(letters.len(), 1, "{letters:?}");
    let letter = &letters[0];
    assert!(
        letter["cut"]["original_size"].as_u64().unwrap() > 1_500_000,
        "{letter}"
    );
    assert_eq!(letter["origin"]["record_id"], "r-1");
    let id = letter["id"].as_str().unwrap().to_string();

    // The record is fixed at the source; the replay fetches it by id.
    *huge.lock().unwrap() = None;
    let outcome = DeadLetterAdmin::replay(&redrive, &id).await.unwrap();
    assert_eq!(outcome["outcome"], "refetching", "{outcome}");
    let run_id = outcome["run_id"].as_str().unwrap().to_string();
    common::run_until(&rig, "the refetch never ended", async || {
        run_of(&rig, "acme", &run_id).await.status.is_finished()
    })
    .await;
    let run = run_of(&rig, "acme", &run_id).await;
    assert_eq!(
        (run.status, run.records_published),
        (SyncRunStatus::Succeeded, 1)
    );
    assert_eq!(
        *fetched_one.lock().unwrap(),
        [(
            "conn-acme".to_string(),
            DataType::Customer,
            Some("r-1".to_string())
        )]
    );
    let events = customer_events(&rig, 3).await;
    assert_eq!(events[2].source_record_id, "r-1");
    rig.broker.stop(std::time::Duration::from_secs(10));
}

fn webhook(body: &str, signature: &str) -> Webhook {
    Webhook {
        headers: [("x-catalog-signature".to_string(), signature.to_string())].into(),
        body: body.as_bytes().to_vec(),
    }
}

/// A webhook signed as the catalog source signs them.
fn signed(body: &str) -> Webhook {
    webhook(body, &format!("signed:{body}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_webhook_queues_runs_of_what_changed_and_health_shows_sync_ages() {
    let rig = common::rig(Catalog::default(), &["acme", "globex"]).await;
    common::run_until(&rig, "the first round never ended", async || {
        let mut done = 0;
        for company in ["acme", "globex"] {
            done += runs(&rig, company).await.len();
        }
        done == 4
    })
    .await;
    let by_webhook = async |company: &str| {
        runs(&rig, company)
            .await
            .into_iter()
            .filter(|r| r.trigger == SyncTrigger::SourceWebhook)
            .collect::<Vec<_>>()
    };

    // A wrong signature: refused, nothing queued.
    let refused = rig
        .admin
        .source_webhook(
            "catalog",
            &webhook("acme customers", "signed:globex customers"),
        )
        .await;
    assert!(
        matches!(refused, Err(AdminError::Unauthorized(_))),
        "{refused:?}"
    );
    assert!(by_webhook("acme").await.is_empty());
    // A source that does not exist.
    let refused = rig.admin.source_webhook("nope", &webhook("", "")).await;
    assert!(
        matches!(refused, Err(AdminError::NotFound(_))),
        "{refused:?}"
    );

    // Signed: acme's customers are queued, globex's nothing.
    let queued = rig
        .admin
        .source_webhook("catalog", &signed("acme customers"))
        .await
        .unwrap();
    assert_eq!(queued.len(), 1, "{queued:?}");
    assert_eq!(
        (
            &queued[0]["data_type"],
            &queued[0]["trigger"],
            &queued[0]["status"]
        ),
        (
            &json!("customers"),
            &json!("source_webhook"),
            &json!("queued")
        )
    );
    // Again while that run is queued, now with suppliers: the open run
    // takes the customers, the suppliers are queued.
    let again = rig
        .admin
        .source_webhook("catalog", &signed("acme customers,suppliers"))
        .await
        .unwrap();
    assert_eq!(again.len(), 1, "{again:?}");
    assert_eq!(again[0]["data_type"], "suppliers");
    // A tenant no connection reads: nothing, and no error.
    let none = rig
        .admin
        .source_webhook("catalog", &signed("initech customers"))
        .await
        .unwrap();
    assert!(none.is_empty());

    common::run_until(&rig, "the webhook's runs never ended", async || {
        let runs = by_webhook("acme").await;
        runs.len() == 2 && runs.iter().all(|r| r.status == SyncRunStatus::Succeeded)
    })
    .await;
    assert!(by_webhook("globex").await.is_empty());

    // Health: ages of every pair, the stalest first; one series asked for.
    let families = tributary_telemetry::Families::default();
    let settings = tributary_producer::health::HealthSettings {
        every: std::time::Duration::from_secs(1),
        series: 1,
        stale_after: std::time::Duration::from_secs(60),
    };
    let later = Timestamp(Timestamp::now().0 + 100_000);
    tributary_producer::health::measure(&rig.state, &families, &settings, later)
        .await
        .unwrap();
    let text = families.render();
    let lines: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
    let value = |prefix: &str| -> f64 {
        lines
            .iter()
            .find_map(|l| l.strip_prefix(prefix)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {prefix} in {text}"))
    };
    // globex was synced once, by schedule, before acme's webhook runs: its
    // pairs are the stalest, some 100 s old.
    let shown: Vec<&&str> = lines
        .iter()
        .filter(|l| l.starts_with("tributary_sync_age_seconds{"))
        .collect();
    assert_eq!(shown.len(), 1, "{text}");
    assert!(shown[0].contains("company=\"globex\""), "{text}");
    let max = value("tributary_sync_age_max_seconds");
    assert!((100.0..160.0).contains(&max), "{text}");
    assert_eq!(value("tributary_sync_age_pairs"), 4.0);
    assert_eq!(value("tributary_sync_stale_after_seconds"), 60.0);
    assert_eq!(value("tributary_connections{status=\"linked\"}"), 2.0);
    assert_eq!(value("tributary_connections{status=\"unlinked\"}"), 0.0);
}
