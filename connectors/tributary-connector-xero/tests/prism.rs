#![allow(clippy::unwrap_used)] // a test stops at its first surprise
//! The Xero connector against Prism serving Xero's own OpenAPI spec
//! (`spec/xero_accounting.yaml`): needs Prism, so not in the fast tier.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{MemoryVault, TENANT, app, connection, request};
use tributary_connector_api::ConnectorFactory;
use tributary_connector_xero::XeroFactory;
use tributary_schemas::{DataType, Record, Timestamp};
use tributary_testkit::xero_identity::FakeIdentity;

/// A connector to Prism serving Xero's spec, authorized by a fake identity
/// server; the servers live as long as the first two.
async fn on_prism() -> (
    tributary_testkit::prism::Prism,
    FakeIdentity,
    std::sync::Arc<dyn tributary_connector_api::Connector>,
) {
    on(tributary_testkit::prism::Prism::start).await
}

async fn on(
    start: fn() -> tributary_testkit::prism::Prism,
) -> (
    tributary_testkit::prism::Prism,
    FakeIdentity,
    std::sync::Arc<dyn tributary_connector_api::Connector>,
) {
    let prism = tokio::task::spawn_blocking(start).await.unwrap();
    let identity = FakeIdentity::start(Duration::from_secs(60), 1800, &[TENANT]).await;
    let factory = XeroFactory::new(app(&prism.url, &identity)).unwrap();
    let (access, refresh) = identity.issue();
    let vault = MemoryVault::with_tokens(&access, &refresh, Timestamp::now().millis() + 1_800_000);
    let connector = factory.build(&connection(Some(TENANT)), vault).unwrap();
    (prism, identity, connector)
}

/// Every data type fetched from Prism serving Xero's spec, each mapped
/// field checked against the response it came from.
#[tokio::test(flavor = "multi_thread")]
async fn every_data_type_from_prism_serving_the_spec() {
    let (_prism, _identity, connector) = on_prism().await;
    let mut mapped = HashMap::new();
    for data_type in connector.data_types() {
        let page = connector
            .fetch_page(&request(data_type, None, 100))
            .await
            .unwrap_or_else(|e| panic!("{data_type}: {e}"));
        assert!(
            !page.has_more,
            "{data_type}: the spec's examples are one page"
        );
        assert!(!page.records.is_empty(), "{data_type}");
        let (ok, refused): (Vec<_>, Vec<_>) = page
            .records
            .iter()
            .map(|r| (r.clone(), connector.map(data_type, r)))
            .partition(|(_, m)| m.is_ok());
        // Prism ignores `where`: its invoice examples are all ACCREC, so
        // every one is refused as a bill, and one example contact is
        // neither customer nor supplier. Those would go to dead letters.
        let expected_refusals = match data_type {
            DataType::Bill => page.records.len(),
            DataType::Customer | DataType::Supplier => 1,
            _ => 0,
        };
        assert_eq!(refused.len(), expected_refusals, "{data_type}: {refused:?}");
        mapped.insert(
            data_type,
            ok.into_iter()
                .map(|(r, m)| (r, m.unwrap()))
                .collect::<Vec<_>>(),
        );
    }
    // Traceability: the mapped invoice's fields are the response's.
    for (raw, m) in &mapped[&DataType::Invoice] {
        let Some(Record::Invoice(i)) = &m.record else {
            panic!()
        };
        assert_eq!(i.id, raw["InvoiceID"].as_str().unwrap());
        assert_eq!(i.number, raw["InvoiceNumber"].as_str().unwrap());
        assert_eq!(
            i.total.to_string().parse::<f64>().unwrap(),
            raw["Total"].as_str().unwrap().parse::<f64>().unwrap()
        );
        assert_eq!(i.status, raw["Status"].as_str().unwrap());
        assert_eq!(
            m.deleted,
            raw["Status"] == "VOIDED" || raw["Status"] == "DELETED"
        );
    }
    let (raw, company) = &mapped[&DataType::Company][0];
    let Some(Record::Company(c)) = &company.record else {
        panic!()
    };
    assert_eq!(c.id, raw["OrganisationID"].as_str().unwrap());
    assert_eq!(c.base_currency, "NZD");
    assert_eq!(mapped[&DataType::Invoice].len(), 3);
    assert_eq!(mapped[&DataType::JournalEntry].len(), 3);
}

/// One record of each data type fetched by id from Prism serving Xero's
/// spec (`GET /Invoices/{InvoiceID}` and the like): each answer is one
/// record that maps. The organisation has no id to fetch by.
#[tokio::test(flavor = "multi_thread")]
async fn one_record_by_id_from_prism_serving_the_spec() {
    let (_prism, _identity, connector) = on_prism().await;
    assert!(!connector.can_fetch_record(DataType::Company));
    let id = "297c2dc5-cc47-4afd-8ec8-74990b8761e9";
    for (data_type, id_field) in [
        (DataType::Invoice, "InvoiceID"),
        (DataType::Account, "AccountID"),
        (DataType::Item, "ItemID"),
        (DataType::CreditNote, "CreditNoteID"),
        (DataType::Payment, "PaymentID"),
        (DataType::BankTransaction, "BankTransactionID"),
        (DataType::JournalEntry, "ManualJournalID"),
    ] {
        assert!(connector.can_fetch_record(data_type), "{data_type}");
        let raw = connector
            .fetch_record(data_type, id, Timestamp::now())
            .await
            .unwrap_or_else(|e| panic!("{data_type}: {e}"))
            .unwrap_or_else(|| panic!("{data_type}: no record"));
        let mapped = connector
            .map(data_type, &raw)
            .unwrap_or_else(|e| panic!("{data_type}: {e}"));
        assert_eq!(
            mapped.source_record_id,
            raw[id_field].as_str().unwrap(),
            "{data_type}"
        );
    }
    let err = connector
        .fetch_record(DataType::Invoice, "a/b", Timestamp::now())
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("cannot fetch one invoices record"),
        "{err}"
    );
}

/// Prism in dynamic mode: random answers valid by Xero's schema, every
/// data type (up to 3 pages each) and one record by id each. Nothing may
/// panic or hang: every call ends within 30 s, as a page, a record or an
/// error that is the source's or the user's (never ours); every record
/// either maps, with an id, or is refused as a bad record (which the
/// runtime dead-letters) with a reason. Seen here: Prism's random answers
/// include bodies over the connector's 1 MiB cap (refused as a source
/// error) and slow ones (timed out), and Prism may stop answering under
/// them (connection refused, a source error too).
#[tokio::test(flavor = "multi_thread")]
async fn random_answers_valid_by_the_spec_never_crash_or_block() {
    use tributary_connector_api::Fault;
    let (_prism, _identity, connector) = on(tributary_testkit::prism::Prism::start_dynamic).await;
    let (mut mapped, mut refused, mut failed) = (0, 0, 0);
    {
        for data_type in connector.data_types() {
            let mut cursor = None;
            for _ in 0..3 {
                let page = tokio::time::timeout(
                    Duration::from_secs(30),
                    connector.fetch_page(&request(data_type, cursor.clone(), 100)),
                )
                .await
                .unwrap_or_else(|_| panic!("{data_type} page did not end within 30 s"));
                let page = match page {
                    Ok(page) => page,
                    Err(e) => {
                        assert_ne!(e.fault, Fault::Internal, "{data_type}: {e}");
                        assert!(!e.message.is_empty());
                        eprintln!("{data_type} page: {e}");
                        failed += 1;
                        break;
                    }
                };
                for raw in &page.records {
                    match connector.map(data_type, raw) {
                        Ok(m) => {
                            assert!(!m.source_record_id.is_empty(), "{data_type}: {raw}");
                            mapped += 1;
                        }
                        Err(e) => {
                            assert_eq!(e.fault, Fault::Data, "{data_type}: {e}");
                            assert!(!e.message.is_empty());
                            refused += 1;
                        }
                    }
                }
                if !page.has_more || page.next_cursor == cursor {
                    break;
                }
                cursor = page.next_cursor;
            }
            if connector.can_fetch_record(data_type) {
                let one = tokio::time::timeout(
                    Duration::from_secs(30),
                    connector.fetch_record(
                        data_type,
                        "297c2dc5-cc47-4afd-8ec8-74990b8761e9",
                        Timestamp::now(),
                    ),
                )
                .await
                .unwrap_or_else(|_| panic!("{data_type} record did not end within 30 s"));
                match one {
                    Ok(Some(raw)) => match connector.map(data_type, &raw) {
                        Ok(_) => mapped += 1,
                        Err(e) => {
                            assert_eq!(e.fault, Fault::Data, "{data_type}: {e}");
                            refused += 1;
                        }
                    },
                    Ok(None) => {}
                    Err(e) => {
                        assert_ne!(e.fault, Fault::Internal, "{data_type}: {e}");
                        failed += 1;
                    }
                }
            }
        }
    }
    println!(
        "dynamic Prism: {mapped} mapped, {refused} refused as bad records, {failed} calls failed"
    );
    assert!(mapped + refused > 0, "no record came back at all");
}

/// The connector conformance suite against Prism serving Xero's spec, in
/// static and dynamic mode.
#[tokio::test(flavor = "multi_thread")]
async fn conforms_against_prism() {
    use tributary_testkit::conformance::{Source, check};
    for start in [
        tributary_testkit::prism::Prism::start as fn() -> tributary_testkit::prism::Prism,
        tributary_testkit::prism::Prism::start_dynamic,
    ] {
        let (_prism, _identity, connector) = on(start).await;
        let seen = check(connector.as_ref(), Source::Mock).await;
        assert!(seen.pages > 0, "{seen:?}");
    }
}
