#![allow(clippy::unwrap_used)] // a test stops at its first surprise
//! The Square connector against Prism serving Square's own OpenAPI spec
//! (`spec/square_api.json`, made servable by
//! `tributary_testkit::prism::servable_square_spec`): one Prism per mode
//! for the binary, in static mode (the spec's examples, checked field for field)
//! and in dynamic mode (random schema-valid answers: nothing may panic or
//! hang).

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tributary_connector_api::{
    ConnectionInfo, Connector, ConnectorFactory, Cursor, Fault, PageRequest,
};
use tributary_connector_http::NetworkPolicy;
use tributary_connector_square::{SquareApp, SquareFactory};
use tributary_schemas::{DataType, Decimal, Record, Timestamp};
use tributary_testkit::prism::{Prism, servable_square_spec};
use tributary_testkit::vault::MemoryVault;

/// One test, so the binary starts Prism once per mode (Square's spec is
/// 3 MB) and the servers stop with it, even when a check fails.
#[tokio::test(flavor = "multi_thread")]
async fn against_prism_serving_squares_spec() {
    let (fixed, random) = tokio::task::spawn_blocking(|| {
        (
            Prism::serve(&servable_square_spec(), false),
            Prism::serve(&servable_square_spec(), true),
        )
    })
    .await
    .unwrap();
    every_data_type_from_the_specs_examples_field_for_field(&fixed.url).await;
    a_cursor_in_the_answer_means_another_page(&fixed.url).await;
    one_record_by_id_field_for_field(&fixed.url).await;
    authorization_and_refresh_through_the_token_endpoint(&fixed.url).await;
    random_answers_from_prism_dynamic_mode_never_break_it(&random.url).await;
    conforms_against_prism(&fixed.url, &random.url).await;
}

fn app(url: &str) -> SquareApp {
    SquareApp {
        client_id: "sq0idp-tributary-test".into(),
        client_secret: "sq0csp-secret-SECRET".into(),
        base_url: url.into(),
        timeout_secs: 10,
        network: NetworkPolicy {
            allow_private: true,
        },
        ..SquareApp::default()
    }
}

fn connection(merchant: Option<&str>) -> ConnectionInfo {
    ConnectionInfo {
        connection_id: "conn-square-1".into(),
        company_id: "acme".into(),
        source: "square".into(),
        settings: json!({ "merchant_id": merchant }),
    }
}

/// A connector with a valid token, talking to the mock at `url`.
fn connector(url: &str) -> Arc<dyn Connector> {
    let vault = MemoryVault::with_tokens(
        "EAAA-access",
        "EQAA-refresh",
        Timestamp::now().millis() + 7 * 86_400_000,
    );
    SquareFactory::new(app(url))
        .unwrap()
        .build(&connection(Some("MLQW2MYBY81PZ")), vault)
        .unwrap()
}

fn request(data_type: DataType, cursor: Option<Cursor>) -> PageRequest {
    PageRequest {
        data_type,
        cursor,
        now: Timestamp::now(),
        page_size: 100,
    }
}

/// `{"amount": n, "currency": c}` as Square means it, by the currency's
/// exponent: what every mapped amount is checked against.
fn money(raw: &Value) -> (Decimal, String) {
    let currency = raw["currency"].as_str().unwrap().to_string();
    let units: i64 = match &raw["amount"] {
        Value::String(s) => s.parse().unwrap(),
        n => n.as_i64().unwrap(),
    };
    let exponent = tributary_connector_square::map::currency_exponent(&currency).unwrap();
    (
        Decimal::from_minor_units(units, exponent).unwrap(),
        currency,
    )
}

fn time(raw: &Value) -> Option<Timestamp> {
    raw.as_str().map(|t| Timestamp::parse(t).unwrap())
}

fn text(raw: &Value) -> Option<String> {
    raw.as_str().map(str::to_string)
}

/// Every data type fetched from the spec's examples, each mapped field
/// checked against the answer it came from.
async fn every_data_type_from_the_specs_examples_field_for_field(url: &str) {
    let connector = connector(url);
    for data_type in connector.data_types() {
        let page = connector
            .fetch_page(&request(data_type, None))
            .await
            .unwrap_or_else(|e| panic!("{data_type}: {e}"));
        let mut mapped = 0;
        for raw in &page.records {
            let m = match connector.map(data_type, raw) {
                Ok(m) => m,
                Err(e) => {
                    // Square's payouts example writes `currency_code` where
                    // the schema's Money has `currency`: the schema wins and
                    // the record is refused (a dead letter), with the reason.
                    assert_eq!(data_type, DataType::Payout, "{e}");
                    assert_eq!(e.fault, Fault::Data);
                    assert!(
                        e.message.contains("amount_money.currency is missing"),
                        "{e}"
                    );
                    continue;
                }
            };
            mapped += 1;
            assert_eq!(m.source_record_id, raw["id"].as_str().unwrap());
            if let Some(updated) = time(&raw["updated_at"]) {
                assert_eq!(m.source_modified_at, updated, "{data_type}");
            }
            check_fields(m.record.as_ref().unwrap(), raw);
        }
        let expected = match data_type {
            // The example answers order entries, not orders (see the test
            // of one order by id for the order's fields).
            DataType::Order => 0,
            DataType::Payout => 0,
            _ => page.records.len(),
        };
        assert_eq!(mapped, expected, "{data_type}");
        if !matches!(data_type, DataType::Order | DataType::Payout) {
            assert!(mapped > 0, "{data_type}: the example has records");
        }
    }
}

/// What a mapped record must hold of the raw one.
fn check_fields(record: &Record, raw: &Value) {
    match record {
        Record::Location(l) => {
            assert_eq!(l.name, raw["name"].as_str().unwrap());
            assert_eq!(l.business_name, text(&raw["business_name"]));
            assert_eq!(l.status, raw["status"].as_str().unwrap());
            assert_eq!(l.currency, text(&raw["currency"]));
            assert_eq!(l.country, text(&raw["country"]));
            assert_eq!(l.timezone, text(&raw["timezone"]));
            assert_eq!(l.created_at, time(&raw["created_at"]));
            let address = l.address.as_deref().unwrap();
            assert!(
                address.starts_with(raw["address"]["address_line_1"].as_str().unwrap()),
                "{address}"
            );
            assert!(address.contains(raw["address"]["postal_code"].as_str().unwrap()));
        }
        Record::Customer(c) => {
            assert_eq!(
                c.name,
                format!(
                    "{} {}",
                    raw["given_name"].as_str().unwrap(),
                    raw["family_name"].as_str().unwrap()
                )
            );
            assert_eq!(c.email, text(&raw["email_address"]));
            assert_eq!(c.phone, text(&raw["phone_number"]));
        }
        Record::Product(p) => {
            let item = &raw["item_data"];
            assert_eq!(p.name, item["name"].as_str().unwrap());
            assert_eq!(p.description, text(&item["description"]));
            assert_eq!(p.category_id, text(&item["categories"][0]["id"]));
            let variations = item["variations"].as_array().unwrap();
            assert_eq!(p.variants.len(), variations.len());
            for (v, raw) in p.variants.iter().zip(variations) {
                assert_eq!(v.id, raw["id"].as_str().unwrap());
                let data = &raw["item_variation_data"];
                assert_eq!(v.name, text(&data["name"]));
                assert_eq!(v.sku, text(&data["sku"]));
                if data["price_money"].is_object() {
                    let (amount, currency) = money(&data["price_money"]);
                    assert_eq!(v.price, Some(amount));
                    assert_eq!(v.currency, Some(currency));
                }
            }
        }
        Record::Order(o) => {
            assert_eq!(o.location_id, raw["location_id"].as_str().unwrap());
            assert_eq!(o.state, raw["state"].as_str().unwrap());
            let (total, currency) = money(&raw["total_money"]);
            assert_eq!((o.total, o.currency.clone()), (total, currency));
            assert_eq!(o.tax_total, money(&raw["total_tax_money"]).0);
            assert_eq!(o.discount_total, money(&raw["total_discount_money"]).0);
            let lines = raw["line_items"].as_array().unwrap();
            assert_eq!(o.lines.len(), lines.len());
            for (l, raw) in o.lines.iter().zip(lines) {
                assert_eq!(l.id, raw["uid"].as_str().unwrap());
                assert_eq!(l.name, text(&raw["name"]));
                assert_eq!(
                    l.quantity,
                    raw["quantity"].as_str().unwrap().parse().unwrap()
                );
                assert_eq!(l.total, money(&raw["total_money"]).0);
                assert_eq!(l.unit_price, Some(money(&raw["base_price_money"]).0));
            }
        }
        Record::CommercePayment(p) => {
            let (amount, currency) = money(&raw["amount_money"]);
            assert_eq!((p.amount, p.currency.clone()), (amount, currency));
            assert_eq!(p.total, money(&raw["total_money"]).0);
            let fees = raw["processing_fee"].as_array().unwrap();
            let fee_sum = fees.iter().fold(Decimal::ZERO, |s, f| {
                s.checked_add(money(&f["amount_money"]).0).unwrap()
            });
            assert_eq!(p.fee_total, fee_sum);
            assert_eq!(p.status, raw["status"].as_str().unwrap());
            assert_eq!(p.source_type, text(&raw["source_type"]));
            assert_eq!(p.location_id, text(&raw["location_id"]));
            assert_eq!(p.order_id, text(&raw["order_id"]));
            assert_eq!(p.created_at, time(&raw["created_at"]));
        }
        Record::Refund(r) => {
            let (amount, currency) = money(&raw["amount_money"]);
            assert_eq!((r.amount, r.currency.clone()), (amount, currency));
            assert_eq!(r.payment_id, text(&raw["payment_id"]));
            assert_eq!(r.reason, text(&raw["reason"]));
            assert_eq!(r.status, raw["status"].as_str().unwrap());
            assert_eq!(
                r.fee_total,
                money(&raw["processing_fee"][0]["amount_money"]).0
            );
        }
        Record::Dispute(d) => {
            let (amount, currency) = money(&raw["amount_money"]);
            assert_eq!((d.amount, d.currency.clone()), (amount, currency));
            assert_eq!(d.payment_id, text(&raw["disputed_payment"]["payment_id"]));
            assert_eq!(d.state, raw["state"].as_str().unwrap());
            assert_eq!(d.reason, text(&raw["reason"]));
            assert_eq!(d.card_brand, text(&raw["card_brand"]));
            assert_eq!(d.due_at, time(&raw["due_at"]));
            assert_eq!(d.reported_at, time(&raw["reported_at"]));
        }
        other => panic!("Square gave a {}", other.data_type()),
    }
}

/// Square's examples carry a cursor that leads to themselves: the page
/// says there is more, with the cursor; the runtime stops a source that
/// repeats one (`producers/tributary-producer/tests/pages.rs`).
async fn a_cursor_in_the_answer_means_another_page(url: &str) {
    let connector = connector(url);
    let first = connector
        .fetch_page(&request(DataType::Dispute, None))
        .await
        .unwrap();
    assert!(first.has_more);
    let next = first.next_cursor.clone().unwrap();
    assert!(
        next.0.contains("G1aSTRm48CLjJsg6Sg3hQN1b1OMaoVuG"),
        "{next:?}"
    );
    let second = connector
        .fetch_page(&request(DataType::Dispute, Some(next.clone())))
        .await
        .unwrap();
    assert_eq!(second.next_cursor, Some(next), "the example repeats itself");
    // No cursor in the answer: the pass is over.
    let locations = connector
        .fetch_page(&request(DataType::Location, None))
        .await
        .unwrap();
    assert!(!locations.has_more);
}

/// One record of each type by id (`GET /v2/orders/{id}` and the like).
async fn one_record_by_id_field_for_field(url: &str) {
    let connector = connector(url);
    for data_type in connector.data_types() {
        assert!(connector.can_fetch_record(data_type), "{data_type}");
        let raw = connector
            .fetch_record(data_type, "CAISENgvlJ6jLWAzERDzjyHVybY", Timestamp::now())
            .await
            .unwrap_or_else(|e| panic!("{data_type}: {e}"))
            .unwrap_or_else(|| panic!("{data_type}: none"));
        match connector.map(data_type, &raw) {
            Ok(m) => check_fields(m.record.as_ref().unwrap(), &raw),
            Err(e) => assert_eq!(data_type, DataType::Payout, "{e}"),
        }
    }
    let err = connector
        .fetch_record(DataType::Order, "a/../b", Timestamp::now())
        .await
        .unwrap_err();
    assert_eq!(err.fault, Fault::User);
}

/// The code flow against the spec's token endpoint: the merchant granted
/// lands in the settings, the tokens in the vault; an expired token is
/// refreshed and saved before use.
async fn authorization_and_refresh_through_the_token_endpoint(url: &str) {
    let factory = SquareFactory::new(app(url)).unwrap();
    let vault = Arc::new(MemoryVault::default());
    let link = factory
        .authorization_url(&connection(None), "state-123", vault.clone())
        .await
        .unwrap();
    assert!(
        link.starts_with(&format!("{url}/oauth2/authorize?")),
        "{link}"
    );
    assert!(link.contains("state=state-123") && link.contains("PAYMENTS_READ"));
    let settings = factory
        .complete_authorization(&connection(None), "sq0cgp-code", vault.clone())
        .await
        .unwrap();
    assert_eq!(settings, json!({ "merchant_id": "MLQW2MYBY81PZ" }));
    assert!(vault.token("access_token").starts_with("EAAl3ikZIe18J"));
    assert!(factory.build(&connection(None), vault.clone()).is_err());

    let expired = MemoryVault::with_tokens("EAAA-old", "EQAA-refresh", 0);
    let connector = factory
        .build(&connection(Some("MLQW2MYBY81PZ")), expired.clone())
        .unwrap();
    connector.authenticate().await.unwrap();
    assert!(expired.token("access_token").starts_with("EAAl3ikZIe18J"));
    assert!(expired.refresh_token().starts_with("EQAAl0OcByu3"));
}

/// Random schema-valid answers: every page ends as records or a clear
/// error, every record maps or is refused alone; nothing panics or hangs.
async fn random_answers_from_prism_dynamic_mode_never_break_it(url: &str) {
    let connector = connector(url);
    let (mut pages, mut records, mut refused, mut errors) = (0, 0, 0, 0);
    for round in 0..5 {
        for data_type in connector.data_types() {
            let answer = tokio::time::timeout(
                Duration::from_secs(20),
                connector.fetch_page(&request(data_type, None)),
            )
            .await
            .unwrap_or_else(|_| panic!("{data_type} round {round}: no answer in 20 s"));
            match answer {
                Ok(page) => {
                    pages += 1;
                    assert!(page.next_cursor.is_some());
                    for raw in &page.records {
                        records += 1;
                        if let Err(e) = connector.map(data_type, raw) {
                            assert_eq!(e.fault, Fault::Data, "{e}");
                            refused += 1;
                        }
                    }
                }
                Err(e) => {
                    assert_ne!(e.fault, Fault::Internal, "{data_type}: {e}");
                    errors += 1;
                }
            }
        }
    }
    eprintln!("{pages} pages, {records} records ({refused} refused), {errors} errors");
    assert!(pages > 0);
}

/// The connector conformance suite against Prism serving Square's spec, in
/// static and dynamic mode: paging ends (the examples' self-referring
/// cursors end a pass, as the runtime does), mapping is pure, errors are
/// classified.
async fn conforms_against_prism(fixed: &str, random: &str) {
    use tributary_testkit::conformance::{Source, check};
    for (url, dynamic) in [(fixed, false), (random, true)] {
        let connector = connector(url);
        let seen = check(connector.as_ref(), Source::Mock).await;
        assert!(seen.pages > 0, "{seen:?}");
        if !dynamic {
            assert!(
                seen.repeats > 0,
                "the examples repeat their cursors: {seen:?}"
            );
        }
    }
}
