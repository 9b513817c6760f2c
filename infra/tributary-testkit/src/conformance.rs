//! The connector conformance suite: what every connector must do, checked
//! the same way for each (sandbox, Xero, Square, Open Banking), against
//! whatever source its tests point it at (fixtures, Prism serving the
//! source's spec in static or dynamic mode, a hostile server).
//!
//! - Paging ends: a pass from the start ends within a bound number of pages,
//!   every call within a time limit (nothing blocks).
//! - Cursors only move forward: a page with more after it names a cursor it
//!   was not asked with and that no earlier page of the pass named; the
//!   cursor a pass ends with starts the next pass, which ends too.
//! - Mapping is pure and deterministic: each record maps the same way twice;
//!   a record that cannot be mapped is the data's fault (a dead letter),
//!   never the connector's; a mapped record carries its source id.
//! - Errors say who is at fault: a failed call is never the connector's
//!   own (`Internal`) fault, and is retried exactly when it is the source's.
//! - Hostile answers ([`HostileServer`]): not JSON, cut short, too large,
//!   the wrong shape, server errors, rate limits and silence all end as
//!   clear errors (or an empty page), never a panic or a hang.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tributary_connector_api::{Connector, ConnectorError, Cursor, Fault, PageRequest};
use tributary_schemas::{DataType, Timestamp};

/// How much a source may misbehave and still pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Fixtures or a faithful fake: every call succeeds, cursors never
    /// repeat.
    Faithful,
    /// Prism and its like: calls may fail (not by the connector's fault),
    /// an example may lead back to its own cursor (the runtime stops such
    /// a pass; so does the suite).
    Mock,
}

/// What the suite saw.
#[derive(Debug, Default)]
pub struct Seen {
    pub pages: usize,
    pub records: usize,
    /// Records the connector refused (dead letters).
    pub refused: usize,
    /// Calls that failed (allowed for [`Source::Mock`] only).
    pub errors: Vec<String>,
    /// Passes a repeated cursor ended.
    pub repeats: usize,
}

/// The longest pass the suite pages through.
pub const MAX_PAGES: usize = 200;
/// The longest one call may take.
pub const CALL_LIMIT: Duration = Duration::from_secs(30);

/// Runs the paging, cursor, mapping and error checks on every data type
/// `connector` offers, two passes each (the second from the cursor the
/// first ended with). Panics naming the breach.
pub async fn check(connector: &dyn Connector, source: Source) -> Seen {
    let mut seen = Seen::default();
    let types = connector.data_types();
    assert!(
        !types.is_empty(),
        "a connector offers at least one data type"
    );
    for data_type in types {
        let end = pass(connector, data_type, None, source, &mut seen).await;
        if let Some(end) = end {
            pass(connector, data_type, Some(end), source, &mut seen).await;
        }
    }
    seen
}

/// One pass: the cursor the next one starts from, when the pass ended
/// cleanly.
async fn pass(
    connector: &dyn Connector,
    data_type: DataType,
    start: Option<Cursor>,
    source: Source,
    seen: &mut Seen,
) -> Option<Cursor> {
    let mut cursor = start.clone();
    let mut cursors: HashSet<Option<Cursor>> = HashSet::from([start]);
    for _ in 0..MAX_PAGES {
        let request = PageRequest {
            data_type,
            cursor: cursor.clone(),
            now: Timestamp::now(),
            page_size: 50,
        };
        let answer = tokio::time::timeout(CALL_LIMIT, connector.fetch_page(&request))
            .await
            .unwrap_or_else(|_| panic!("{data_type}: a page took over {CALL_LIMIT:?}: it blocks"));
        let page = match answer {
            Ok(page) => page,
            Err(e) => {
                classified(&e, data_type);
                assert_eq!(
                    source,
                    Source::Mock,
                    "{data_type}: a faithful source's page failed: {e}"
                );
                seen.errors.push(format!("{data_type}: {e}"));
                return None;
            }
        };
        seen.pages += 1;
        for raw in &page.records {
            seen.records += 1;
            if !maps_purely(connector, data_type, raw) {
                seen.refused += 1;
            }
        }
        if !page.has_more {
            assert!(
                page.next_cursor.is_some() || cursor.is_none(),
                "{data_type}: the last page of a pass lost the cursor it was asked with"
            );
            return page.next_cursor.or(cursor);
        }
        let next = page.next_cursor.clone();
        assert!(
            next.is_some(),
            "{data_type}: a page with more after it names no cursor"
        );
        if !cursors.insert(next.clone()) {
            assert_eq!(
                source,
                Source::Mock,
                "{data_type}: the cursor went back to {next:?}"
            );
            seen.repeats += 1;
            return None;
        }
        cursor = next;
    }
    panic!("{data_type}: paging did not end within {MAX_PAGES} pages");
}

/// Maps `raw` twice: the same outcome both times; a refusal is the
/// data's fault. Whether it mapped.
fn maps_purely(connector: &dyn Connector, data_type: DataType, raw: &serde_json::Value) -> bool {
    let first = connector.map(data_type, raw);
    let second = connector.map(data_type, raw);
    match (&first, &second) {
        (Ok(a), Ok(b)) => {
            assert_eq!(a, b, "{data_type}: mapping the same record twice differs");
            assert!(
                !a.source_record_id.is_empty(),
                "{data_type}: a mapped record without a source id"
            );
            if let Some(record) = &a.record {
                assert_eq!(
                    record.data_type(),
                    data_type,
                    "{data_type}: mapped to another type"
                );
                assert_eq!(
                    record.id(),
                    a.source_record_id,
                    "{data_type}: the record's id is not its source id"
                );
            }
            true
        }
        (Err(a), Err(b)) => {
            assert_eq!(a.message, b.message, "{data_type}: refusals differ");
            assert_eq!(
                a.fault,
                Fault::Data,
                "{data_type}: a refused record must be the data's fault: {a}"
            );
            false
        }
        _ => panic!("{data_type}: mapping the same record twice: {first:?} then {second:?}"),
    }
}

/// A failed call says who is at fault, and only the source's faults are
/// retried.
fn classified(e: &ConnectorError, data_type: DataType) {
    assert_ne!(
        e.fault,
        Fault::Internal,
        "{data_type}: a source's answer made the connector fail on its own: {e}"
    );
    assert_eq!(
        e.is_retryable(),
        matches!(e.fault, Fault::Source | Fault::RateLimited),
        "{data_type}: {e}"
    );
    assert!(!e.message.is_empty(), "{data_type}: an error says what");
}

/// The ways [`HostileServer`] answers every request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hostility {
    NotJson,
    CutShort,
    /// A body larger than `huge_bytes`.
    Huge,
    /// Valid JSON of no expected shape: lists where objects go, objects
    /// where lists go.
    WrongShape,
    ServerError,
    RateLimited,
    /// No answer for a minute.
    Silent,
}

pub const HOSTILITIES: [Hostility; 7] = [
    Hostility::NotJson,
    Hostility::CutShort,
    Hostility::Huge,
    Hostility::WrongShape,
    Hostility::ServerError,
    Hostility::RateLimited,
    Hostility::Silent,
];

/// A server answering every path, every method, with the chosen hostility.
#[derive(Clone)]
pub struct HostileServer {
    pub url: String,
    mode: Arc<Mutex<Hostility>>,
    huge_bytes: usize,
}

impl HostileServer {
    /// Serves on a free port; `huge_bytes` is the size of a too-large body
    /// (set the connector's answer cap below it).
    pub async fn start(huge_bytes: usize) -> HostileServer {
        let mode = Arc::new(Mutex::new(Hostility::NotJson));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let state = (Arc::clone(&mode), huge_bytes);
        let app = axum::Router::new().fallback(answer).with_state(state);
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        HostileServer {
            url,
            mode,
            huge_bytes,
        }
    }

    pub fn set(&self, hostility: Hostility) {
        *self.mode.lock().unwrap() = hostility;
    }

    pub fn huge_bytes(&self) -> usize {
        self.huge_bytes
    }
}

async fn answer(
    axum::extract::State((mode, huge)): axum::extract::State<(Arc<Mutex<Hostility>>, usize)>,
) -> Response {
    let hostility = *mode.lock().unwrap();
    match hostility {
        Hostility::NotJson => (StatusCode::OK, "<html>gateway says hello</html>").into_response(),
        Hostility::CutShort => (
            StatusCode::OK,
            [("content-type", "application/json")],
            r#"{"Data": {"Transaction": [{"AccountId": "1", "Amo"#,
        )
            .into_response(),
        Hostility::Huge => (
            StatusCode::OK,
            [("content-type", "application/json")],
            format!("{{\"pad\": \"{}\"}}", "x".repeat(huge)),
        )
            .into_response(),
        Hostility::WrongShape => (
            StatusCode::OK,
            [("content-type", "application/json")],
            r#"{"Data": [1, 2], "Account": {"a": 1}, "Invoices": {"x": 1}, "payments": "none",
               "objects": 7, "locations": {"id": 1}, "orders": true, "Links": [], "cursor": 5,
               "Organisations": "x", "Contacts": 1, "access_token": 1}"#,
        )
            .into_response(),
        Hostility::ServerError => (StatusCode::INTERNAL_SERVER_ERROR, "boom").into_response(),
        Hostility::RateLimited => (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", "3")],
            r#"{"errors": [{"code": "RATE_LIMITED"}], "Errors": [{"ErrorCode": "UK.OBIE.Rate"}]}"#,
        )
            .into_response(),
        Hostility::Silent => {
            tokio::time::sleep(Duration::from_secs(60)).await;
            (StatusCode::OK, "{}").into_response()
        }
    }
}

/// Every hostility against every data type: each call ends, within the
/// connector's own timeout and [`CALL_LIMIT`], as a classified error or a
/// page without records. How many calls failed.
pub async fn check_hostile(connector: &dyn Connector, server: &HostileServer) -> usize {
    let mut failed = 0;
    for hostility in HOSTILITIES {
        server.set(hostility);
        for data_type in connector.data_types() {
            let request = PageRequest {
                data_type,
                cursor: None,
                now: Timestamp::now(),
                page_size: 50,
            };
            let answer = tokio::time::timeout(CALL_LIMIT, connector.fetch_page(&request))
                .await
                .unwrap_or_else(|_| {
                    panic!("{data_type} {hostility:?}: no end within {CALL_LIMIT:?}")
                });
            match answer {
                Ok(page) => assert!(
                    page.records.is_empty(),
                    "{data_type} {hostility:?}: records out of a hostile answer"
                ),
                Err(e) => {
                    classified(&e, data_type);
                    if hostility == Hostility::RateLimited {
                        assert_eq!(e.fault, Fault::RateLimited, "{data_type}: {e}");
                    }
                    failed += 1;
                }
            }
        }
    }
    failed
}
