#![allow(clippy::unwrap_used)] // a test stops at its first surprise
//! What a page may hold and where paging may lead, through a real broker
//! (the local Tansu) and a registry:
//! - nothing too large blocks a data type: a page with three good
//!   customers, one valid customer of about 1.5 MB and one hostile record of
//!   5 MB that cannot be mapped. The good ones are published, both big ones
//!   become dead letters cut to fit with their original size and digest,
//!   and the cursor moves on;
//! - a source whose pages lead back to a position it served ends the sync
//!   with a clear error instead of paging for ever.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Value, json};
use sha2::Digest;
use tributary_connector_api::{
    ConnectionInfo, Connector, ConnectorError, ConnectorFactory, CredentialVault, Cursor, Fault,
    MappedRecord, Page, PageRequest,
};
use tributary_kafka::dead_letters;
use tributary_schemas::model::Contact;
use tributary_schemas::{DataType, DeadLetterStage, Record, Timestamp};

/// One page of customers, some of them enormous.
fn bulky_page() -> Vec<Value> {
    let mut records: Vec<Value> = (1..=3)
        .map(|i| json!({"id": format!("good-{i}"), "name": format!("Good {i}")}))
        .collect();
    records.insert(
        1,
        json!({"id": "huge-valid", "name": "x".repeat(1_500_000)}),
    );
    // No id: it cannot be mapped, and it is 5 MB.
    records.push(json!({"junk": "y".repeat(5_000_000)}));
    records
}

/// The answer to one page request.
type Answer = fn(&PageRequest) -> Page;

/// A source of customers answering every page request with `answer`,
/// counting the requests.
#[derive(Clone)]
struct Scripted {
    answer: Answer,
    fetches: Arc<AtomicUsize>,
}

impl Scripted {
    fn new(answer: Answer) -> Self {
        Scripted {
            answer,
            fetches: Arc::default(),
        }
    }
}

#[async_trait]
impl Connector for Scripted {
    fn data_types(&self) -> Vec<DataType> {
        vec![DataType::Customer]
    }
    async fn authenticate(&self) -> Result<(), ConnectorError> {
        Ok(())
    }
    async fn fetch_page(&self, request: &PageRequest) -> Result<Page, ConnectorError> {
        self.fetches.fetch_add(1, Ordering::SeqCst);
        Ok((self.answer)(request))
    }
    fn map(&self, _: DataType, raw: &Value) -> Result<MappedRecord, ConnectorError> {
        let id = raw["id"]
            .as_str()
            .ok_or_else(|| ConnectorError::new("scripted", Fault::Data, "a customer with no id"))?;
        Ok(MappedRecord {
            source_record_id: id.into(),
            source_modified_at: Timestamp(1_700_000_000_000),
            deleted: false,
            record: Some(Record::Customer(Contact {
                id: id.into(),
                name: raw["name"].as_str().unwrap_or_default().into(),
                email: None,
                phone: None,
                status: "ACTIVE".into(),
                currency: None,
            })),
        })
    }
}

#[async_trait]
impl ConnectorFactory for Scripted {
    fn name(&self) -> &'static str {
        "scripted"
    }
    fn check_settings(&self, _: &Value) -> Result<(), ConnectorError> {
        Ok(())
    }
    fn build(
        &self,
        _: &ConnectionInfo,
        _: Arc<dyn CredentialVault>,
    ) -> Result<Arc<dyn Connector>, ConnectorError> {
        Ok(Arc::new(self.clone()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_too_large_becomes_a_dead_letter_and_the_page_goes_on() {
    let rig = common::rig(
        Scripted::new(|request| Page {
            records: if request.cursor.is_some() {
                vec![]
            } else {
                bulky_page()
            },
            next_cursor: Some(Cursor("after-the-page".into())),
            has_more: false,
        }),
        &["acme"],
    )
    .await;
    // The cursor moves past the page: nothing is stuck behind the big ones.
    common::run_until(&rig, "the page never went through", async || {
        rig.state
            .cursor(&rig.infos[0].connection_id, DataType::Customer)
            .await
            .unwrap()
            .is_some()
    })
    .await;
    assert_eq!(
        common::messages_in(&rig.bootstrap, &DataType::Customer.topic()),
        3,
        "the three good customers are published"
    );
    let letters = dead_letters::read_all(&rig.client).await.unwrap();
    assert_eq!(letters.len(), 2, "{letters:?}");
    let limit = tributary_kafka::DEFAULT_MAX_MESSAGE_BYTES;
    let raws = bulky_page();
    for (raw, why) in [
        (&raws[1], "over the 1000000-byte limit"),
        (&raws[4], "a customer with no id"),
    ] {
        let letter = letters
            .iter()
            .filter_map(|l| l.letter.as_ref().ok())
            .find(|l| l.reason.contains(why))
            .unwrap_or_else(|| panic!("no letter for {why}: {letters:?}"));
        assert_eq!(letter.stage, DeadLetterStage::Map);
        assert!(letter.reason.contains(why), "{}", letter.reason);
        let whole = serde_json::to_vec(raw).unwrap();
        let cut = letter.cut.as_ref().expect("cut to fit");
        assert_eq!(cut.original_size, whole.len());
        assert_eq!(
            cut.sha256,
            sha2::Sha256::digest(&whole)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>(),
            "the digest is of the whole record"
        );
        assert!(whole.starts_with(&letter.payload));
        assert!(letter.payload.len() < limit && letter.payload.len() > limit / 2);
    }
    rig.broker.stop(Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_that_leads_paging_back_ends_the_sync_clearly() {
    // Every page leads to `page-2`, as a mock serving one example answer does.
    let looping = Scripted::new(|_| Page {
        records: vec![json!({"id": "same", "name": "Same Ltd"})],
        next_cursor: Some(Cursor("page-2".into())),
        has_more: true,
    });
    let fetches = Arc::clone(&looping.fetches);
    let rig = common::rig(looping, &["acme"]).await;
    let runs = tributary_schemas::SyncRunEvent::topic();
    common::run_until(&rig, "no sync run was published", async || {
        common::messages_in(&rig.bootstrap, &runs) > 0
    })
    .await;
    // The first page from the start, the second from `page-2`, which leads
    // to `page-2` again: stopped there.
    assert_eq!(fetches.load(Ordering::SeqCst), 2);
    let payload = tributary_testkit::first_message(&rig.bootstrap, &runs, 1);
    let decoder = tributary_projector::Decoder::new(&rig.registry_url);
    let Ok(tributary_projection::Change::SyncRun(run)) =
        decoder.decode(&runs, Some(&payload)).await
    else {
        panic!("not a sync run")
    };
    assert_eq!(run.status, tributary_schemas::SyncRunStatus::Failed);
    let error = run.error.unwrap_or_default();
    assert!(
        error.contains("led paging back to a position it had served (page-2)"),
        "{error}"
    );
    assert_eq!(run.records_fetched, 2);
    rig.broker.stop(Duration::from_secs(10));
}
