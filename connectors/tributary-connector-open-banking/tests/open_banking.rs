#![allow(clippy::unwrap_used)] // a test stops at its first surprise
//! The Open Banking connector against a fake bank (`tributary_testkit::
//! open_banking`): the standard's consent and authorization flow, then
//! every data type from fixtures built from the spec's schemas, checked
//! field for field; consents that lapse.

use std::path::PathBuf;
use std::sync::Arc;

use serde_json::{Value, json};
use tributary_connector_api::{
    ConnectionInfo, Connector, ConnectorFactory, Cursor, Fault, PageRequest,
};
use tributary_connector_http::NetworkPolicy;
use tributary_connector_open_banking::{OpenBankingApp, OpenBankingFactory};
use tributary_schemas::{DataType, Decimal5, Record, Timestamp};
use tributary_testkit::open_banking::{CLIENT_ID, CLIENT_SECRET, FakeBank, KID};
use tributary_testkit::vault::MemoryVault;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn fixture(name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixtures().join(name)).unwrap()).unwrap()
}

fn factory(bank: &FakeBank) -> OpenBankingFactory {
    OpenBankingFactory::new(OpenBankingApp {
        client_id: CLIENT_ID.into(),
        client_secret: CLIENT_SECRET.into(),
        redirect_uri: "http://127.0.0.1:1/v1/oauth/open_banking/callback".into(),
        signing_key: bank.signing_key_pem.clone(),
        signing_kid: KID.into(),
        network: NetworkPolicy {
            allow_private: true,
        },
        ..OpenBankingApp::default()
    })
    .unwrap()
}

fn connection(settings: Value) -> ConnectionInfo {
    ConnectionInfo {
        connection_id: "conn-ob-1".into(),
        company_id: "bakery".into(),
        source: "open_banking".into(),
        settings,
    }
}

/// Adds and authorizes a connection at `bank`: the connector, its
/// settings and its vault.
async fn authorized(bank: &FakeBank) -> (Arc<dyn Connector>, Value, Arc<MemoryVault>) {
    let factory = factory(bank);
    let vault = Arc::new(MemoryVault::default());
    let info = connection(bank.settings());
    let link = factory
        .authorization_url(&info, "state-1", vault.clone())
        .await
        .unwrap();
    assert!(
        link.starts_with(&format!("{}/authorize?", bank.url)),
        "{link}"
    );
    assert!(link.contains("code_challenge_method=S256") && link.contains("request="));
    let (code, state) = bank.grant(&link).await.unwrap();
    assert_eq!(state, "state-1");
    let granted = factory
        .complete_authorization(&info, &code, vault.clone())
        .await
        .unwrap();
    let mut settings = bank.settings();
    for (k, v) in granted.as_object().unwrap() {
        settings[k] = v.clone();
    }
    let connector = factory
        .build(&connection(settings.clone()), vault.clone())
        .unwrap();
    (connector, settings, vault)
}

/// Every page of one data type from the start: the raw records, the
/// pages and where the next pass starts.
async fn all_pages(
    connector: &dyn Connector,
    data_type: DataType,
) -> (Vec<Value>, usize, Option<Cursor>) {
    pass(connector, data_type, None).await
}

/// Every page of one pass from `cursor`.
async fn pass(
    connector: &dyn Connector,
    data_type: DataType,
    mut cursor: Option<Cursor>,
) -> (Vec<Value>, usize, Option<Cursor>) {
    let mut records = Vec::new();
    let mut pages = 0;
    loop {
        let page = connector
            .fetch_page(&PageRequest {
                data_type,
                cursor: cursor.clone(),
                now: Timestamp::now(),
                page_size: 100,
            })
            .await
            .unwrap_or_else(|e| panic!("{data_type}: {e}"));
        pages += 1;
        records.extend(page.records);
        cursor = page.next_cursor;
        if !page.has_more {
            return (records, pages, cursor);
        }
        assert!(pages < 20, "{data_type}: paging does not end");
    }
}

fn amount(raw: &Value, indicator: &Value) -> Decimal5 {
    let a: Decimal5 = raw["Amount"].as_str().unwrap().parse().unwrap();
    if indicator == "Debit" {
        Decimal5::from_scaled(-a.scaled())
    } else {
        a
    }
}

#[tokio::test]
async fn consent_pkce_request_object_then_every_type_field_for_field() {
    let bank = FakeBank::start(fixtures()).await;
    let (connector, settings, vault) = authorized(&bank).await;
    assert!(
        settings["consent_id"]
            .as_str()
            .unwrap()
            .starts_with("urn-consent")
    );
    assert!(
        Timestamp::parse(settings["consent_expires_at"].as_str().unwrap()).unwrap()
            > Timestamp::now()
    );
    // The tokens replaced the pending verifier in the vault.
    assert!(vault.token("access_token").starts_with("at-"));
    connector.authenticate().await.unwrap();

    // Accounts.
    let (raw, _, _) = all_pages(connector.as_ref(), DataType::BankAccount).await;
    let expected = fixture("accounts.json")["Data"]["Account"].clone();
    assert_eq!(raw.len(), 2);
    for (raw, want) in raw.iter().zip(expected.as_array().unwrap()) {
        let m = connector.map(DataType::BankAccount, raw).unwrap();
        let Some(Record::BankAccount(a)) = m.record else {
            panic!()
        };
        assert_eq!(a.id, want["AccountId"].as_str().unwrap());
        assert_eq!(a.currency, want["Currency"].as_str().unwrap());
        assert_eq!(a.category.as_deref(), want["AccountCategory"].as_str());
        assert_eq!(a.account_type.as_deref(), want["AccountTypeCode"].as_str());
        assert_eq!(a.status, want["Status"].as_str().unwrap());
        assert_eq!(
            a.name.as_deref(),
            want["Nickname"].as_str().or(want["Description"].as_str())
        );
        assert_eq!(
            a.identifiers[0].identification,
            want["Account"][0]["Identification"].as_str().unwrap()
        );
        assert_eq!(
            a.identifiers[0].scheme,
            want["Account"][0]["SchemeName"].as_str().unwrap()
        );
        assert_eq!(
            m.source_modified_at,
            Timestamp::parse(want["StatusUpdateDateTime"].as_str().unwrap()).unwrap()
        );
    }

    // Balances: one record per account, type and day.
    let (raw, _, _) = all_pages(connector.as_ref(), DataType::BankBalance).await;
    let want: Vec<Value> = ["balances-22289.json", "balances-31820.json"]
        .iter()
        .flat_map(|f| fixture(f)["Data"]["Balance"].as_array().unwrap().clone())
        .collect();
    assert_eq!(raw.len(), want.len());
    for (raw, want) in raw.iter().zip(&want) {
        let m = connector.map(DataType::BankBalance, raw).unwrap();
        let Some(Record::BankBalance(b)) = m.record else {
            panic!()
        };
        let at = Timestamp::parse(want["DateTime"].as_str().unwrap()).unwrap();
        assert_eq!(
            b.id,
            format!(
                "{}:{}:{}",
                want["AccountId"].as_str().unwrap(),
                want["Type"].as_str().unwrap(),
                at.date()
            )
        );
        assert_eq!(
            b.amount,
            amount(&want["Amount"], &want["CreditDebitIndicator"])
        );
        assert_eq!(b.as_of, at);
    }
    let first = connector.map(DataType::BankBalance, &raw[0]).unwrap();
    let Some(Record::BankBalance(b)) = first.record else {
        panic!()
    };
    assert_eq!(b.amount.to_string(), "10250.12345", "five decimals kept");

    // Transactions: two pages for the first account (Links.Next), one for
    // the second.
    let (raw, pages, end) = all_pages(connector.as_ref(), DataType::BankFeedTransaction).await;
    assert_eq!(pages, 3);
    let want: Vec<Value> = [
        "transactions-22289-1.json",
        "transactions-22289-2.json",
        "transactions-31820-1.json",
    ]
    .iter()
    .flat_map(|f| {
        fixture(f)["Data"]["Transaction"]
            .as_array()
            .unwrap()
            .clone()
    })
    .collect();
    assert_eq!(raw.len(), want.len());
    for (raw, want) in raw.iter().zip(&want) {
        let m = connector.map(DataType::BankFeedTransaction, raw).unwrap();
        let Some(Record::BankFeedTransaction(t)) = m.record else {
            panic!()
        };
        if let Some(id) = want["TransactionId"].as_str() {
            assert_eq!(t.id, id);
        } else {
            assert!(t.id.starts_with("derived-"), "{}", t.id);
        }
        assert_eq!(
            t.amount,
            amount(&want["Amount"], &want["CreditDebitIndicator"])
        );
        assert_eq!(t.currency, want["Amount"]["Currency"].as_str().unwrap());
        assert_eq!(
            t.status,
            match want["Status"].as_str().unwrap() {
                "BOOK" => "booked",
                "PDNG" => "pending",
                other => panic!("{other}"),
            }
        );
        assert_eq!(
            t.booked_at,
            Timestamp::parse(want["BookingDateTime"].as_str().unwrap()).unwrap()
        );
        assert_eq!(
            t.description.as_deref(),
            want["TransactionInformation"].as_str()
        );
        assert_eq!(
            t.reference.as_deref(),
            want["TransactionReference"].as_str()
        );
        assert_eq!(
            t.merchant_name.as_deref(),
            want["MerchantDetails"]["MerchantName"].as_str()
        );
    }
    let t0 = connector
        .map(DataType::BankFeedTransaction, &raw[0])
        .unwrap();
    let Some(Record::BankFeedTransaction(t0)) = t0.record else {
        panic!()
    };
    assert_eq!(t0.amount.to_string(), "1234.56789");
    assert_eq!(t0.counterparty_name.as_deref(), Some("Harbour Catering"));
    assert_eq!(t0.balance_after.unwrap().to_string(), "10250.12345");
    assert_eq!(
        bank.from_booking(),
        vec![None, None, None],
        "the first pass asks for all"
    );

    // The next pass asks again from a week before the newest booking.
    pass(connector.as_ref(), DataType::BankFeedTransaction, end).await;
    let asked = bank.from_booking();
    assert_eq!(asked.len(), 6);
    assert_eq!(
        asked[3].as_deref(),
        Some("2026-11-24T07:05:00.000"),
        "{asked:?}"
    );

    // Direct debits and standing orders (money out: negative).
    let (raw, _, _) = all_pages(connector.as_ref(), DataType::DirectDebit).await;
    assert_eq!(raw.len(), 1);
    let Some(Record::DirectDebit(d)) = connector
        .map(DataType::DirectDebit, &raw[0])
        .unwrap()
        .record
    else {
        panic!()
    };
    assert_eq!(d.id, "dd-0001");
    assert_eq!(d.mandate_reference.as_deref(), Some("POWERCO-778812"));
    assert_eq!(d.creditor_name.as_deref(), Some("Power Co"));
    assert_eq!(d.last_amount.unwrap().to_string(), "-312.40");
    assert_eq!(d.status.as_deref(), Some("ACTV"));
    let (raw, _, _) = all_pages(connector.as_ref(), DataType::StandingOrder).await;
    assert_eq!(raw.len(), 1);
    let Some(Record::StandingOrder(s)) = connector
        .map(DataType::StandingOrder, &raw[0])
        .unwrap()
        .record
    else {
        panic!()
    };
    assert_eq!(s.id, "so-0001");
    assert_eq!(s.frequency, "MNTH:15");
    assert_eq!(s.reference.as_deref(), Some("Rent, unit 4"));
    assert_eq!(s.creditor_account.as_deref(), Some("08080021325698"));
    assert_eq!(s.next_amount.unwrap().to_string(), "-1500.00");

    // Every call carried a fresh interaction id.
    let ids = bank.interactions();
    assert!(ids.len() > 10);
    let unique: std::collections::HashSet<_> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len());
}

#[tokio::test]
async fn a_lapsed_or_revoked_consent_is_the_customers_to_renew() {
    let bank = FakeBank::start(fixtures()).await;
    let (_, settings, vault) = authorized(&bank).await;
    let factory = factory(&bank);
    // Revoked at the bank: the consent check says so.
    bank.set_consent(settings["consent_id"].as_str().unwrap(), "CANC");
    let connector = factory
        .build(&connection(settings.clone()), vault.clone())
        .unwrap();
    let e = connector.authenticate().await.unwrap_err();
    assert_eq!(e.fault, Fault::User);
    assert!(e.message.contains("is CANC at the bank"), "{e}");
    // A data call under a revoked consent: 403, the user's.
    let e = connector
        .fetch_page(&PageRequest {
            data_type: DataType::BankAccount,
            cursor: None,
            now: Timestamp::now(),
            page_size: 10,
        })
        .await
        .unwrap_err();
    assert_eq!(e.fault, Fault::User);
    assert!(
        e.message.contains("UK.OBIE.Resource.ConsentMismatch") && e.message.contains("interaction"),
        "{e}"
    );
    // Expired by its date: no call needed to know.
    let mut expired = settings.clone();
    expired["consent_expires_at"] = json!("2026-01-01T00:00:00Z");
    let connector = factory.build(&connection(expired), vault).unwrap();
    let e = connector.authenticate().await.unwrap_err();
    assert_eq!(e.fault, Fault::User);
    assert!(e.message.contains("expired at 2026-01-01"), "{e}");
}

#[tokio::test]
async fn the_bank_refuses_what_is_not_the_apps() {
    let bank = FakeBank::start(fixtures()).await;
    // A request object signed with another key.
    let other = FakeBank::start(fixtures()).await;
    let mut app = OpenBankingApp {
        client_id: CLIENT_ID.into(),
        client_secret: CLIENT_SECRET.into(),
        signing_key: other.signing_key_pem.clone(),
        signing_kid: KID.into(),
        network: NetworkPolicy {
            allow_private: true,
        },
        ..OpenBankingApp::default()
    };
    let factory = OpenBankingFactory::new(app.clone()).unwrap();
    let vault = Arc::new(MemoryVault::default());
    let link = factory
        .authorization_url(&connection(bank.settings()), "s", vault.clone())
        .await
        .unwrap();
    let refused = bank.grant(&link).await.unwrap_err();
    assert!(refused.contains("signature does not verify"), "{refused}");
    // A wrong client secret: the token endpoint says no, the user's to fix.
    app.client_secret = "wrong".into();
    let e = OpenBankingFactory::new(app)
        .unwrap()
        .authorization_url(&connection(bank.settings()), "s", vault.clone())
        .await
        .unwrap_err();
    assert_eq!(e.fault, Fault::User);
    // A code without the verifier waiting: nothing to complete.
    let e = factory
        .complete_authorization(
            &connection(bank.settings()),
            "code-x",
            Arc::new(MemoryVault::default()),
        )
        .await
        .unwrap_err();
    assert!(e.message.contains("no authorization in progress"), "{e}");
    // Settings pointing inside the network are refused without the policy.
    let strict = OpenBankingFactory::new(OpenBankingApp::default()).unwrap();
    let e = strict.check_settings(&bank.settings()).unwrap_err();
    assert!(e.message.contains("api_url"), "{e}");
}

/// The connector conformance suite against the fake bank (a faithful
/// source: every call succeeds, cursors never repeat) and against hostile
/// answers.
#[tokio::test(flavor = "multi_thread")]
async fn conforms_against_the_fake_bank_and_hostile_answers() {
    use tributary_testkit::conformance::{HostileServer, Source, check, check_hostile};
    let bank = FakeBank::start(fixtures()).await;
    let (connector, _, _) = authorized(&bank).await;
    let seen = check(connector.as_ref(), Source::Faithful).await;
    assert_eq!(seen.refused, 0, "{seen:?}");
    assert_eq!(
        seen.records,
        2 * (2 + 3 + 4 + 1 + 1),
        "two passes: {seen:?}"
    );

    let server = HostileServer::start(2 << 20).await;
    let factory = OpenBankingFactory::new(OpenBankingApp {
        client_id: CLIENT_ID.into(),
        client_secret: CLIENT_SECRET.into(),
        timeout_secs: 2,
        max_response_bytes: 1 << 20,
        network: NetworkPolicy {
            allow_private: true,
        },
        ..OpenBankingApp::default()
    })
    .unwrap();
    let settings = json!({
        "api_url": server.url,
        "token_url": format!("{}/token", server.url),
        "authorize_url": format!("{}/authorize", server.url),
        "consent_id": "urn-consent-1",
    });
    let vault = MemoryVault::with_tokens("at", "rt", Timestamp::now().millis() + 3_600_000);
    let connector = factory.build(&connection(settings), vault).unwrap();
    let failed = check_hostile(connector.as_ref(), &server).await;
    assert!(failed >= 5 * connector.data_types().len(), "{failed}");
}

/// A page with two transactions of 1.5 MB among good ones comes whole at
/// the default answer cap; the good ones and the large valid one map, the
/// large invalid one is refused alone (a dead letter), naming itself.
#[tokio::test(flavor = "multi_thread")]
async fn a_page_with_huge_records_among_good_ones() {
    let big = "x".repeat(1_500_000);
    let tx = |id: &str| {
        json!({ "AccountId": "A1", "TransactionId": id, "CreditDebitIndicator": "Credit",
                "Status": "BOOK", "BookingDateTime": "2026-11-30T10:00:00+00:00",
                "Amount": { "Amount": "1.00001", "Currency": "GBP" } })
    };
    let mut huge_valid = tx("t-huge");
    huge_valid["TransactionInformation"] = json!(big);
    let mut huge_invalid = tx("t-broken");
    huge_invalid["Amount"]["Amount"] = json!("1.000001");
    huge_invalid["AddressLine"] = json!(big);
    let page = json!({ "Data": { "Transaction": [tx("t-1"), huge_valid, huge_invalid, tx("t-2")] },
                       "Links": { "Self": "x" }, "Meta": {} })
    .to_string();
    let accounts = json!({ "Data": { "Account": [{ "AccountId": "A1", "Currency": "GBP",
        "Account": [] }] }, "Links": { "Self": "x" }, "Meta": {} })
    .to_string();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let serve = |body: String| {
        axum::routing::get(move || {
            let body = body.clone();
            async move { ([("content-type", "application/json")], body) }
        })
    };
    let app = axum::Router::new()
        .route("/accounts", serve(accounts))
        .route("/accounts/A1/transactions", serve(page));
    tokio::spawn(async move { axum::serve(listener, app).await });
    let factory = OpenBankingFactory::new(OpenBankingApp {
        network: NetworkPolicy {
            allow_private: true,
        },
        ..OpenBankingApp::default()
    })
    .unwrap();
    let settings = json!({
        "api_url": url, "token_url": format!("{url}/token"),
        "authorize_url": format!("{url}/authorize"), "consent_id": "c1",
    });
    let vault = MemoryVault::with_tokens("at", "rt", Timestamp::now().millis() + 3_600_000);
    let connector = factory.build(&connection(settings), vault).unwrap();
    let (raw, _, _) = all_pages(connector.as_ref(), DataType::BankFeedTransaction).await;
    assert_eq!(raw.len(), 4);
    for (i, r) in raw.iter().enumerate() {
        let m = connector.map(DataType::BankFeedTransaction, r);
        if i == 2 {
            let e = m.unwrap_err();
            assert_eq!(e.fault, Fault::Data);
            assert!(
                e.message.contains("t-broken") && e.message.contains("5 decimals"),
                "{e}"
            );
        } else {
            assert!(m.is_ok(), "{i}: {m:?}");
        }
    }
}
