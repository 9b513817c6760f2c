#![allow(clippy::unwrap_used)] // a test stops at its first surprise
use tributary_schemas::model::*;
use tributary_schemas::*;

fn dec(s: &str) -> Decimal {
    s.parse().unwrap()
}

fn samples() -> Vec<Record> {
    let line = DocumentLine {
        description: "Consulting, November".into(),
        quantity: dec("2.5"),
        unit_amount: dec("120.1234"),
        account_id: Some("acc-200".into()),
        tax_amount: dec("30.03"),
        line_amount: dec("300.3085"),
    };
    let contact = Contact {
        id: "c-1".into(),
        name: "Ridgeway Bakery".into(),
        email: None,
        phone: Some("+44 20 7946 0000".into()),
        status: "ACTIVE".into(),
        currency: Some("GBP".into()),
    };
    vec![
        Record::Company(Company {
            id: "cmp-1".into(),
            name: "Acme".into(),
            legal_name: Some("Acme Ltd".into()),
            base_currency: "GBP".into(),
            country: None,
        }),
        Record::Connection(Connection {
            id: "conn-1".into(),
            company_id: "cmp-1".into(),
            source: "sandbox".into(),
            status: ConnectionStatus::Linked,
            status_reason: None,
            created_at: Timestamp(1_700_000_000_000),
        }),
        Record::Account(Account {
            id: "acc-200".into(),
            code: Some("200".into()),
            name: "Sales".into(),
            account_type: "INCOME".into(),
            status: "ACTIVE".into(),
            currency: None,
            description: None,
        }),
        Record::Customer(contact.clone()),
        Record::Supplier(contact),
        Record::Invoice(Invoice {
            id: "inv-1".into(),
            number: "INV-0001".into(),
            customer_id: "c-1".into(),
            customer_name: Some("Ridgeway Bakery".into()),
            issue_date: Date(20_000),
            due_date: Some(Date(20_030)),
            currency: "GBP".into(),
            status: "AUTHORISED".into(),
            reference: None,
            lines: vec![line.clone()],
            subtotal: dec("300.3085"),
            tax_total: dec("30.03"),
            total: dec("330.3385"),
            amount_due: dec("-0.0001"),
        }),
        Record::Bill(Bill {
            id: "bill-1".into(),
            number: "B-1".into(),
            supplier_id: "c-1".into(),
            supplier_name: None,
            issue_date: Date(-3),
            due_date: None,
            currency: "EUR".into(),
            status: "DRAFT".into(),
            reference: Some("PO 42".into()),
            lines: vec![],
            subtotal: Decimal::ZERO,
            tax_total: Decimal::ZERO,
            total: Decimal::ZERO,
            amount_due: Decimal::ZERO,
        }),
        Record::Payment(Payment {
            id: "pay-1".into(),
            invoice_id: Some("inv-1".into()),
            bill_id: None,
            account_id: "acc-090".into(),
            date: Date(20_010),
            currency: "GBP".into(),
            amount: dec("99999999999999.9999"),
            reference: None,
        }),
        Record::BankTransaction(BankTransaction {
            id: "bt-1".into(),
            account_id: "acc-090".into(),
            date: Date(20_011),
            description: "Card payment".into(),
            transaction_type: "SPEND".into(),
            amount: dec("12.5"),
            currency: "GBP".into(),
            contact_id: None,
            reconciled: true,
        }),
        Record::JournalEntry(JournalEntry {
            id: "j-1".into(),
            number: "MJ-1".into(),
            date: Date(20_012),
            description: "Accrual".into(),
            lines: vec![
                JournalLine {
                    account_id: "acc-1".into(),
                    description: None,
                    debit: dec("10"),
                    credit: Decimal::ZERO,
                },
                JournalLine {
                    account_id: "acc-2".into(),
                    description: Some("contra".into()),
                    debit: Decimal::ZERO,
                    credit: dec("10"),
                },
            ],
        }),
        Record::CreditNote(CreditNote {
            id: "cn-1".into(),
            number: "CN-0005".into(),
            kind: "sales".into(),
            contact_id: "c-1".into(),
            contact_name: Some("Ridgeway Bakery".into()),
            issue_date: Date(20_013),
            currency: "GBP".into(),
            status: "AUTHORISED".into(),
            reference: None,
            lines: vec![line],
            subtotal: dec("30"),
            tax_total: dec("4.5"),
            total: dec("34.5"),
            remaining_credit: dec("32.5"),
        }),
        Record::Item(Item {
            id: "item-1".into(),
            code: "GTR-1".into(),
            name: Some("Guitar".into()),
            description: None,
            sale_unit_price: Some(dec("5000")),
            purchase_unit_price: None,
            is_sold: true,
            is_purchased: false,
            is_tracked_as_inventory: false,
        }),
    ]
}

fn envelope(record: Option<Record>, data_type: DataType, deleted: bool) -> Event {
    let modified = Timestamp(1_763_000_000_000);
    Event {
        event_id: event_id("conn-1", data_type, "r-1", modified, deleted, 0),
        company_id: "cmp-1".into(),
        connection_id: "conn-1".into(),
        data_type: data_type.as_str().into(),
        source: "sandbox".into(),
        source_record_id: "r-1".into(),
        source_modified_at: modified,
        fetched_at: Timestamp(1_763_000_000_500),
        deleted,
        revision: 0,
        record,
    }
}

#[test]
fn every_data_type_round_trips_through_its_schema() {
    let records = samples();
    assert_eq!(records.len(), DataType::ALL.len());
    for record in records {
        let data_type = record.data_type();
        let schema = data_type.schema().unwrap();
        let event = envelope(Some(record), data_type, false);
        let bytes = to_avro_datum(&schema, &event).unwrap();
        let value = from_avro_datum(&schema, &bytes).unwrap();
        let back = Event::from_avro(data_type, &value).unwrap();
        assert_eq!(back, event, "{data_type}");
    }
}

#[test]
fn deletes_without_a_body_round_trip() {
    let schema = DataType::Invoice.schema().unwrap();
    let event = envelope(None, DataType::Invoice, true);
    let bytes = to_avro_datum(&schema, &event).unwrap();
    let back = Event::from_avro(
        DataType::Invoice,
        &from_avro_datum(&schema, &bytes).unwrap(),
    );
    assert_eq!(back.unwrap(), event);
}

#[test]
fn reading_an_event_as_the_wrong_type_is_an_error() {
    let schema = DataType::Customer.schema().unwrap();
    let event = envelope(Some(samples().remove(3)), DataType::Customer, false);
    let value = from_avro_datum(&schema, &to_avro_datum(&schema, &event).unwrap()).unwrap();
    // Supplier has the same shape as customer: only the envelope tells them apart.
    let err = Event::from_avro(DataType::Supplier, &value).unwrap_err();
    assert!(err.to_string().contains("customers"), "{err}");
}

#[test]
fn money_is_an_avro_decimal_not_a_float() {
    let schema = DataType::Payment.schema().unwrap();
    let record = samples().remove(7);
    let event = envelope(Some(record), DataType::Payment, false);
    let value = from_avro_datum(&schema, &to_avro_datum(&schema, &event).unwrap()).unwrap();
    let text = format!("{value:?}");
    assert!(
        text.contains("Decimal("),
        "amount should decode as Avro decimal: {text}"
    );
    let json = serde_json::to_value(&event).unwrap();
    assert_eq!(json["record"]["amount"], "99999999999999.9999");
    assert_eq!(json["source_modified_at"], "2025-11-13T02:13:20.000Z");
}

#[test]
fn all_event_schemas_share_the_envelope() {
    let envelope_of = |text: &str| {
        let json: serde_json::Value = serde_json::from_str(text).unwrap();
        let fields = json["fields"].as_array().unwrap().clone();
        fields
            .into_iter()
            .filter(|f| f["name"] != "record")
            .collect::<Vec<_>>()
    };
    let first = envelope_of(DataType::Company.schema_text());
    assert_eq!(first.len(), 10);
    for t in DataType::ALL {
        assert_eq!(envelope_of(t.schema_text()), first, "{t}");
        let json: serde_json::Value = serde_json::from_str(t.schema_text()).unwrap();
        assert!(
            json["doc"].as_str().unwrap().contains(&t.topic()),
            "{t} doc names its topic"
        );
        assert_eq!(DataType::from_topic(&t.topic()), Some(t));
    }
    assert!(SyncRunEvent::schema().is_ok());
    assert!(ManifestEvent::schema().is_ok());
    assert_eq!(all_topics().len(), 15);
}

#[test]
fn event_ids_are_deterministic_and_distinguish_versions() {
    let a = event_id("c", DataType::Invoice, "1", Timestamp(5), false, 0);
    assert_eq!(
        a,
        event_id("c", DataType::Invoice, "1", Timestamp(5), false, 0)
    );
    assert_eq!(a.len(), 32);
    assert_ne!(
        a,
        event_id("c", DataType::Invoice, "1", Timestamp(6), false, 0)
    );
    assert_ne!(
        a,
        event_id("c", DataType::Invoice, "1", Timestamp(5), true, 0)
    );
    assert_ne!(
        a,
        event_id("c", DataType::Bill, "1", Timestamp(5), false, 0)
    );
    assert_ne!(
        a,
        event_id("d", DataType::Invoice, "1", Timestamp(5), false, 0)
    );
    // A resync's events (a higher revision) are other events...
    let resynced = event_id("c", DataType::Invoice, "1", Timestamp(5), false, 1);
    assert_ne!(a, resynced);
    assert_ne!(
        resynced,
        event_id("c", DataType::Invoice, "1", Timestamp(5), false, 2)
    );
    // ...while revision 0 keeps the ids events had before revisions existed.
    assert_eq!(a, "8137d3cf54897d763eb65880b749b439");
}

#[test]
fn journal_balance_is_checked() {
    let Record::JournalEntry(mut j) = samples().remove(9) else {
        panic!("sample 9 is a journal")
    };
    assert!(j.is_balanced());
    j.lines[0].debit = dec("10.0001");
    assert!(!j.is_balanced());
}

#[test]
fn manifest_digests_ignore_order_and_add_up() {
    let records = [
        ("a", Timestamp(1), 0),
        ("b", Timestamp(2), 0),
        ("c", Timestamp(3), 1),
    ];
    let all = manifest_digest(records.iter().copied());
    let reversed = manifest_digest(records.iter().rev().copied());
    assert_eq!(all, reversed);
    assert_eq!(all.len(), 32);
    // Any change of id, version or revision changes it.
    for changed in [
        ("a", Timestamp(1), 1),
        ("a", Timestamp(9), 0),
        ("z", Timestamp(1), 0),
    ] {
        let other = manifest_digest([changed, records[1], records[2]]);
        assert_ne!(all, other, "{changed:?}");
    }
    // Two connections' digests add up to the digest of both.
    let first = manifest_digest(records[..1].iter().copied());
    let rest = manifest_digest(records[1..].iter().copied());
    assert_eq!(add_digests([first.as_str(), rest.as_str()]), Some(all));
    assert_eq!(manifest_digest([]), "0".repeat(32));
    assert_eq!(add_digests(["xyz"]), None);
}
