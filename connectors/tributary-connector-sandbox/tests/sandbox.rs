#![allow(clippy::unwrap_used)] // a test stops at its first surprise
use std::collections::{BTreeMap, HashSet};

use tributary_connector_api::{Connector, Fault, MappedRecord, PageRequest};
use tributary_connector_sandbox::*;
use tributary_schemas::{DataType, Decimal, Record, Timestamp};

const EPOCH: i64 = 1_763_000_000_000;

fn settings(records: u32) -> SandboxSettings {
    SandboxSettings {
        seed: 7,
        records,
        generations: 3,
        generation_interval_secs: 60,
        epoch_ms: EPOCH,
        max_page_size: 25,
        fail_every: 0,
        failure: Default::default(),
        hard_deletes: false,
        kinds: all_kinds(),
    }
}

fn at_generation(g: i64) -> Timestamp {
    Timestamp(EPOCH + g * 60_000 + 1)
}

/// Pages through the feed like the runtime does and applies every record,
/// newest version wins, as the store does.
async fn sync(
    connector: &SandboxConnector,
    data_type: DataType,
    now: Timestamp,
    store: &mut BTreeMap<String, MappedRecord>,
    cursor: &mut Option<tributary_connector_api::Cursor>,
) -> usize {
    let mut fetched = 0;
    loop {
        let page = connector
            .fetch_page(&PageRequest {
                data_type,
                cursor: cursor.clone(),
                now,
                page_size: 1000,
            })
            .await
            .unwrap();
        assert!(
            page.records.len() <= 25,
            "the source's page size limit holds"
        );
        for raw in &page.records {
            let mapped = connector.map(data_type, raw).unwrap();
            fetched += 1;
            let newer = store
                .get(&mapped.source_record_id)
                .is_none_or(|old| old.source_modified_at < mapped.source_modified_at);
            if newer {
                store.insert(mapped.source_record_id.clone(), mapped);
            }
        }
        *cursor = page.next_cursor;
        if !page.has_more {
            return fetched;
        }
    }
}

#[tokio::test]
async fn incremental_syncs_end_with_exactly_the_expected_records() {
    let connector = SandboxConnector::new(settings(120), "cmp-a");
    let generator = Generator::new(settings(120), "cmp-a");
    assert_eq!(generator.data_types().len(), 21);
    for data_type in generator.data_types() {
        let mut store = BTreeMap::new();
        let mut cursor = None;
        let mut fetched_per_generation = vec![];
        for g in 0..=3 {
            fetched_per_generation.push(
                sync(
                    &connector,
                    data_type,
                    at_generation(g),
                    &mut store,
                    &mut cursor,
                )
                .await,
            );
            let live: BTreeMap<_, _> = store.iter().filter(|(_, r)| !r.deleted).collect();
            let expected = generator.expected_live(data_type, g as u32);
            assert_eq!(live.len(), expected.len(), "{data_type} at generation {g}");
            for v in expected {
                let got = live
                    .get(&v.id)
                    .unwrap_or_else(|| panic!("{data_type} {} missing", v.id));
                assert_eq!(got.record.as_ref(), Some(&v.record), "{data_type} {}", v.id);
                assert_eq!(got.source_modified_at, v.modified_at);
            }
        }
        // A sync with nothing new fetches nothing.
        assert_eq!(
            sync(
                &connector,
                data_type,
                at_generation(9),
                &mut store,
                &mut cursor
            )
            .await,
            0
        );
        if generator.population(data_type) > 12 {
            assert!(
                fetched_per_generation[1..].iter().any(|n| *n > 0),
                "{data_type} changes over time"
            );
        }
    }
}

#[test]
fn changes_over_time_include_creates_updates_and_deletes() {
    let generator = Generator::new(settings(200), "cmp-a");
    for data_type in [
        DataType::Invoice,
        DataType::Bill,
        DataType::BankTransaction,
        DataType::JournalEntry,
    ] {
        let first: HashSet<String> = generator
            .versions(data_type, 0)
            .into_iter()
            .map(|v| v.id)
            .collect();
        let last = generator.versions(data_type, 3);
        let created = last.iter().filter(|v| !first.contains(&v.id)).count();
        let deleted = last.iter().filter(|v| v.deleted).count();
        let updated = last
            .iter()
            .filter(|v| {
                first.contains(&v.id) && !v.deleted && v.modified_at > generator.generation_time(0)
            })
            .count();
        assert!(
            created > 0 && deleted > 0 && updated > 0,
            "{data_type}: {created} {deleted} {updated}"
        );
    }
}

#[test]
fn relations_are_consistent() {
    let generator = Generator::new(settings(150), "cmp-b");
    let g = 3;
    let ids = |t| -> HashSet<String> {
        generator
            .expected_live(t, g)
            .into_iter()
            .map(|v| v.id)
            .collect()
    };
    let customers = ids(DataType::Customer);
    let suppliers = ids(DataType::Supplier);
    let accounts = ids(DataType::Account);
    let invoices: BTreeMap<String, Record> = generator
        .expected_live(DataType::Invoice, g)
        .into_iter()
        .map(|v| (v.id, v.record))
        .collect();
    for record in invoices.values() {
        let Record::Invoice(inv) = record else {
            panic!("not an invoice")
        };
        assert!(
            customers.contains(&inv.customer_id),
            "{} -> {}",
            inv.id,
            inv.customer_id
        );
        let sum = inv
            .lines
            .iter()
            .fold(Decimal::ZERO, |a, l| a.checked_add(l.line_amount).unwrap());
        assert_eq!(sum, inv.subtotal);
        assert_eq!(inv.subtotal.checked_add(inv.tax_total), Some(inv.total));
    }
    for v in generator.expected_live(DataType::Bill, g) {
        let Record::Bill(bill) = v.record else {
            panic!("not a bill")
        };
        assert!(suppliers.contains(&bill.supplier_id));
    }
    let payments = generator.expected_live(DataType::Payment, g);
    assert!(!payments.is_empty());
    for v in payments {
        let Record::Payment(p) = v.record else {
            panic!("not a payment")
        };
        let invoice = p
            .invoice_id
            .as_ref()
            .and_then(|id| invoices.get(id))
            .expect("payment settles a live invoice");
        let Record::Invoice(inv) = invoice else {
            panic!("not an invoice")
        };
        assert_eq!(inv.status, "PAID");
        assert_eq!(p.amount, inv.total);
        assert!(accounts.contains(&p.account_id));
    }
    for v in generator.expected_live(DataType::JournalEntry, g) {
        let Record::JournalEntry(j) = v.record else {
            panic!("not a journal")
        };
        assert!(j.is_balanced(), "{}", j.id);
        assert!(j.lines.iter().all(|l| accounts.contains(&l.account_id)));
    }
}

#[test]
fn the_same_settings_give_the_same_data_and_companies_differ() {
    let a = Generator::new(settings(50), "cmp-a").versions(DataType::Invoice, 3);
    let b = Generator::new(settings(50), "cmp-a").versions(DataType::Invoice, 3);
    let c = Generator::new(settings(50), "cmp-c").versions(DataType::Invoice, 3);
    assert_eq!(a, b);
    assert_ne!(a, c);
}

#[test]
fn maps_recorded_fixture_records() {
    let connector = SandboxConnector::new(settings(10), "cmp-a");
    let page: Vec<serde_json::Value> =
        serde_json::from_str(include_str!("fixtures/invoices_page.json")).unwrap();
    let live = connector.map(DataType::Invoice, &page[0]).unwrap();
    assert_eq!(live.source_record_id, "inv-000007");
    assert_eq!(
        live.source_modified_at,
        Timestamp::parse("2026-11-22T05:00:00Z").unwrap()
    );
    assert!(!live.deleted);
    let Some(Record::Invoice(inv)) = live.record else {
        panic!("an invoice")
    };
    assert_eq!(inv.customer_name.as_deref(), Some("Harbour Joinery 52"));
    assert_eq!(inv.total.to_string(), "433.80");
    assert_eq!(inv.lines[0].quantity, Decimal::from_int(3));
    assert_eq!(inv.due_date.unwrap().to_string(), "2026-10-31");
    let voided = connector.map(DataType::Invoice, &page[1]).unwrap();
    assert!(voided.deleted, "voided records are flagged, not dropped");
    assert!(voided.record.is_some());
}

#[test]
fn malformed_records_are_data_errors_naming_the_record() {
    let connector = SandboxConnector::new(settings(10), "cmp-a");
    let mut page: Vec<serde_json::Value> =
        serde_json::from_str(include_str!("fixtures/invoices_page.json")).unwrap();
    page[0]["data"]["total"] = serde_json::json!(433.8);
    let err = connector.map(DataType::Invoice, &page[0]).unwrap_err();
    assert_eq!(err.fault, Fault::Data);
    assert!(err.message.contains("inv-000007"), "{err}");
    page[1]["data"]["id"] = serde_json::json!("inv-other");
    let err = connector.map(DataType::Invoice, &page[1]).unwrap_err();
    assert!(err.message.contains("carries body id inv-other"), "{err}");
    let err = connector
        .map(DataType::Invoice, &serde_json::json!({"id": 5}))
        .unwrap_err();
    assert_eq!(err.fault, Fault::Data);
    let unbalanced = serde_json::json!({
        "id": "jnl-1", "updated_at": "2026-11-22T05:00:00Z", "deleted": false,
        "data": {"id": "jnl-1", "number": "MJ-1", "date": "2026-11-01", "description": "x",
                 "lines": [{"account_id": "acc-200", "description": null, "debit": "10", "credit": "0"}]}
    });
    let err = connector
        .map(DataType::JournalEntry, &unbalanced)
        .unwrap_err();
    assert!(err.message.contains("does not balance"), "{err}");
}

#[tokio::test]
async fn nothing_is_visible_before_the_epoch_and_bad_cursors_are_errors() {
    let connector = SandboxConnector::new(settings(10), "cmp-a");
    let page = connector
        .fetch_page(&PageRequest {
            data_type: DataType::Invoice,
            cursor: None,
            now: Timestamp(EPOCH - 1),
            page_size: 10,
        })
        .await
        .unwrap();
    assert!(page.records.is_empty() && !page.has_more);
    let err = connector
        .fetch_page(&PageRequest {
            data_type: DataType::Invoice,
            cursor: Some(tributary_connector_api::Cursor("garbage".into())),
            now: at_generation(1),
            page_size: 10,
        })
        .await
        .unwrap_err();
    assert!(err.message.contains("malformed sandbox cursor"));
}

#[test]
fn factory_rejects_unknown_settings() {
    use tributary_connector_api::{ConnectionInfo, ConnectorFactory};
    let connection = ConnectionInfo {
        connection_id: "conn-1".into(),
        company_id: "cmp-a".into(),
        source: "sandbox".into(),
        settings: serde_json::json!({"epoch_ms": 0, "recods": 5}),
    };
    let err = SandboxFactory
        .build(&connection, std::sync::Arc::new(NoVault))
        .err()
        .unwrap();
    assert_eq!(err.fault, Fault::User);
    assert!(
        err.message.contains("conn-1") && err.message.contains("recods"),
        "{err}"
    );
}

struct NoVault;

#[async_trait::async_trait]
impl tributary_connector_api::CredentialVault for NoVault {
    async fn load(
        &self,
    ) -> Result<Option<tributary_connector_api::Credentials>, tributary_connector_api::ConnectorError>
    {
        Ok(None)
    }
    async fn save(
        &self,
        _: &tributary_connector_api::Credentials,
    ) -> Result<(), tributary_connector_api::ConnectorError> {
        Ok(())
    }
}

#[test]
fn commerce_and_banking_hold_together() {
    let generator = Generator::new(settings(60), "cmp-c");
    let live = |t| generator.expected_live(t, 3);
    let orders: BTreeMap<String, Record> = live(DataType::Order)
        .into_iter()
        .map(|v| (v.id, v.record))
        .collect();
    let payments = live(DataType::CommercePayment);
    assert_eq!(payments.len(), orders.len(), "one payment per order");
    for p in &payments {
        let Record::CommercePayment(p) = &p.record else {
            panic!()
        };
        let Some(Record::Order(o)) = orders.get(p.order_id.as_ref().unwrap()) else {
            panic!("payment {} pays no order", p.id)
        };
        assert_eq!(p.total, o.total);
        assert_eq!(p.amount.checked_add(p.tip_amount), Some(o.total));
        let lines = o
            .lines
            .iter()
            .fold(Decimal::ZERO, |s, l| s.checked_add(l.total).unwrap());
        assert_eq!(
            lines.checked_add(o.tip_total),
            Some(o.total),
            "order {}",
            o.id
        );
    }
    for r in live(DataType::Refund) {
        let Record::Refund(r) = r.record else {
            panic!()
        };
        let paid = payments
            .iter()
            .find(|p| Some(&p.id) == r.payment_id.as_ref())
            .unwrap();
        let Record::CommercePayment(p) = &paid.record else {
            panic!()
        };
        assert!(r.amount <= p.amount && p.refunded_amount == r.amount);
    }
    let products: HashSet<String> = live(DataType::Product)
        .into_iter()
        .flat_map(|v| match v.record {
            Record::Product(p) => p.variants.into_iter().map(|v| v.id).collect::<Vec<_>>(),
            _ => vec![],
        })
        .collect();
    for o in orders.values() {
        let Record::Order(o) = o else { panic!() };
        for l in &o.lines {
            assert!(products.contains(l.variant_id.as_ref().unwrap()), "{l:?}");
        }
    }
    // Banking: balances are one per account and day, with five decimals
    // somewhere; some pending transactions vanish (flagged deleted).
    let balances = live(DataType::BankBalance);
    for b in &balances {
        let Record::BankBalance(r) = &b.record else {
            panic!()
        };
        assert_eq!(b.id, format!("{}:ITAV:{}", r.account_id, r.date));
    }
    let ids: HashSet<&str> = balances.iter().map(|b| b.id.as_str()).collect();
    assert_eq!(ids.len(), balances.len());
    let transactions = generator.versions(DataType::BankFeedTransaction, 3);
    assert!(transactions.iter().any(|t| matches!(&t.record,
        Record::BankFeedTransaction(t) if t.amount.scaled() % 1_000 != 0)));
    assert!(transactions.iter().any(|t| t.deleted));
    assert!(transactions.iter().any(|t| matches!(&t.record,
        Record::BankFeedTransaction(t) if t.status == "pending")));
    assert_eq!(live(DataType::BankAccount).len(), 2);
    assert_eq!(live(DataType::Location).len(), 3);
    // Leaving a kind out leaves its types out.
    let accounting = Generator::new(
        SandboxSettings {
            kinds: vec![Kind::Accounting],
            ..settings(60)
        },
        "cmp-c",
    );
    assert_eq!(accounting.data_types(), DATA_TYPES.to_vec());
    assert!(accounting.expected_live(DataType::Order, 3).is_empty());
}
