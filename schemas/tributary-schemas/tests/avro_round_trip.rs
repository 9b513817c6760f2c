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
    .into_iter()
    .chain(commerce_and_banking())
    .collect()
}

fn dec5(s: &str) -> Decimal5 {
    s.parse().unwrap()
}

fn commerce_and_banking() -> Vec<Record> {
    let at = Some(Timestamp(1_760_000_000_000));
    vec![
        Record::Location(Location {
            id: "L1".into(),
            name: "High Street".into(),
            business_name: Some("Ridgeway Bakery".into()),
            status: "ACTIVE".into(),
            currency: Some("GBP".into()),
            country: Some("GB".into()),
            timezone: Some("Europe/London".into()),
            address: Some("1 High Street, Bath, BA1 1AA".into()),
            created_at: at,
        }),
        Record::Product(Product {
            id: "P1".into(),
            name: "Sourdough".into(),
            description: None,
            category_id: Some("CAT-1".into()),
            variants: vec![ProductVariant {
                id: "V1".into(),
                name: Some("Large".into()),
                sku: Some("SD-L".into()),
                price: Some(dec("4.5")),
                currency: Some("GBP".into()),
            }],
            archived: false,
        }),
        Record::Order(Order {
            id: "O1".into(),
            location_id: "L1".into(),
            customer_id: Some("c-1".into()),
            reference: None,
            state: "COMPLETED".into(),
            currency: "JPY".into(),
            created_at: at,
            closed_at: None,
            lines: vec![OrderLine {
                id: "u1".into(),
                name: Some("Sourdough".into()),
                variant_id: Some("V1".into()),
                quantity: dec("1.5"),
                unit_price: Some(dec("450")),
                discount_amount: Decimal::ZERO,
                tax_amount: dec("68"),
                total: dec("743"),
            }],
            discount_total: Decimal::ZERO,
            tax_total: dec("68"),
            tip_total: Decimal::ZERO,
            total: dec("743"),
        }),
        Record::CommercePayment(CommercePayment {
            id: "PAY1".into(),
            location_id: Some("L1".into()),
            order_id: Some("O1".into()),
            customer_id: None,
            status: "COMPLETED".into(),
            source_type: Some("CARD".into()),
            currency: "KWD".into(),
            amount: dec("1.234"),
            tip_amount: dec("0.1"),
            total: dec("1.334"),
            fee_total: dec("0.04"),
            refunded_amount: Decimal::ZERO,
            created_at: at,
            reference: Some("till 3".into()),
        }),
        Record::Refund(Refund {
            id: "R1".into(),
            payment_id: Some("PAY1".into()),
            order_id: None,
            location_id: None,
            status: "COMPLETED".into(),
            currency: "USD".into(),
            amount: dec("1.00"),
            fee_total: dec("-0.03"),
            reason: Some("stale".into()),
            created_at: None,
        }),
        Record::Payout(Payout {
            id: "po_1".into(),
            location_id: Some("L1".into()),
            status: "PAID".into(),
            currency: "USD".into(),
            amount: dec("-12.34"),
            arrival_date: Some(Date(20_100)),
            destination_type: Some("BANK_ACCOUNT".into()),
            destination_id: Some("ba_1".into()),
            fees: vec![PayoutFee {
                fee_type: Some("TRANSFER_FEE".into()),
                amount: dec("0.25"),
                currency: "USD".into(),
                effective_at: at,
            }],
            fee_total: dec("0.25"),
            created_at: at,
        }),
        Record::Dispute(Dispute {
            id: "D1".into(),
            payment_id: Some("PAY1".into()),
            location_id: None,
            state: "EVIDENCE_REQUIRED".into(),
            reason: Some("NOT_AS_DESCRIBED".into()),
            currency: "USD".into(),
            amount: dec("5"),
            card_brand: Some("VISA".into()),
            due_at: at,
            reported_at: None,
        }),
        Record::BankAccount(BankAccount {
            id: "acc-1".into(),
            name: Some("Business current".into()),
            currency: "GBP".into(),
            category: Some("Business".into()),
            account_type: Some("CurrentAccount".into()),
            status: "Enabled".into(),
            identifiers: vec![AccountIdentifier {
                scheme: "UK.OBIE.SortCodeAccountNumber".into(),
                identification: "80200110203345".into(),
                name: Some("Ridgeway Bakery".into()),
            }],
            opened_on: Some(Date(18_000)),
        }),
        Record::BankBalance(BankBalance {
            id: "acc-1:InterimAvailable:2026-12-01".into(),
            account_id: "acc-1".into(),
            balance_type: "InterimAvailable".into(),
            date: Date(20_788),
            as_of: Timestamp(1_796_083_200_000),
            amount: dec5("-1234.56789"),
            currency: "GBP".into(),
        }),
        Record::BankFeedTransaction(BankFeedTransaction {
            id: "tx-1".into(),
            account_id: "acc-1".into(),
            status: "pending".into(),
            booked_at: Timestamp(1_796_083_200_000),
            value_at: None,
            amount: dec5("0.00001"),
            currency: "GBP".into(),
            description: Some("FX rounding".into()),
            reference: None,
            merchant_name: None,
            counterparty_name: Some("Bank".into()),
            balance_after: Some(dec5("99999999999999.99999")),
        }),
        Record::DirectDebit(DirectDebit {
            id: "dd-1".into(),
            account_id: "acc-1".into(),
            mandate_reference: Some("Energy 123".into()),
            creditor_name: Some("Power Co".into()),
            status: Some("Active".into()),
            last_paid_at: None,
            last_amount: Some(dec5("-45.12")),
            currency: Some("GBP".into()),
        }),
        Record::StandingOrder(StandingOrder {
            id: "so-1".into(),
            account_id: "acc-1".into(),
            frequency: "IntrvlMnthDay:01:15".into(),
            reference: Some("Rent".into()),
            status: Some("Active".into()),
            creditor_name: Some("Landlord".into()),
            creditor_account: Some("08080021325698".into()),
            next_payment_at: None,
            next_amount: Some(dec5("-800")),
            final_payment_at: None,
            currency: Some("GBP".into()),
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
    assert_eq!(all_topics().len(), 27);
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

#[test]
fn banking_amounts_keep_five_decimal_places() {
    let record = commerce_and_banking()
        .into_iter()
        .find(|r| r.data_type() == DataType::BankFeedTransaction)
        .unwrap();
    let schema = DataType::BankFeedTransaction.schema().unwrap();
    let event = envelope(Some(record), DataType::BankFeedTransaction, false);
    let value = from_avro_datum(&schema, &to_avro_datum(&schema, &event).unwrap()).unwrap();
    let back = Event::from_avro(DataType::BankFeedTransaction, &value).unwrap();
    let json = serde_json::to_value(&back).unwrap();
    assert_eq!(json["record"]["amount"], "0.00001");
    assert_eq!(json["record"]["balance_after"], "99999999999999.99999");
    // The schema says scale 5: a reader using the schema alone gets the
    // same number.
    let text: serde_json::Value =
        serde_json::from_str(DataType::BankFeedTransaction.schema_text()).unwrap();
    let fields = text["fields"][9]["type"][1]["fields"].as_array().unwrap();
    let amount = fields.iter().find(|f| f["name"] == "amount").unwrap();
    assert_eq!(amount["type"]["scale"], 5);
    // Commerce money keeps scale 4, like the accounting types.
    assert!("0.00001".parse::<Decimal>().is_err());
}
