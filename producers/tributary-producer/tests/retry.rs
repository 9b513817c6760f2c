#![allow(clippy::unwrap_used)] // a test stops at its first surprise
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use tributary_connector_api::RateLimits;
use tributary_connector_api::{Connector, ConnectorError, Fault, MappedRecord, Page, PageRequest};
use tributary_producer::limits::Limiter;
use tributary_producer::{SyncSettings, fetch_with_retry};
use tributary_schemas::{DataType, Timestamp};

/// Answers with the scripted errors first, then a page.
struct Scripted {
    errors: Mutex<Vec<ConnectorError>>,
    calls: Mutex<Vec<tokio::time::Instant>>,
}

impl Scripted {
    fn new(mut errors: Vec<ConnectorError>) -> Self {
        errors.reverse();
        Scripted {
            errors: Mutex::new(errors),
            calls: Mutex::new(vec![]),
        }
    }
    fn gaps(&self) -> Vec<Duration> {
        let calls = self.calls.lock().unwrap();
        calls.windows(2).map(|w| w[1] - w[0]).collect()
    }
}

#[async_trait]
impl Connector for Scripted {
    fn data_types(&self) -> Vec<DataType> {
        vec![DataType::Invoice]
    }
    async fn authenticate(&self) -> Result<(), ConnectorError> {
        Ok(())
    }
    async fn fetch_page(&self, _: &PageRequest) -> Result<Page, ConnectorError> {
        self.calls.lock().unwrap().push(tokio::time::Instant::now());
        match self.errors.lock().unwrap().pop() {
            Some(e) => Err(e),
            None => Ok(Page {
                records: vec![serde_json::json!({"id": 1})],
                next_cursor: None,
                has_more: false,
            }),
        }
    }
    fn map(&self, _: DataType, _: &serde_json::Value) -> Result<MappedRecord, ConnectorError> {
        Err(ConnectorError::new("scripted", Fault::Internal, "not used"))
    }
}

fn settings(max_attempts: u32) -> SyncSettings {
    SyncSettings {
        page_size: 10,
        max_attempts,
        retry_base: Duration::from_secs(1),
        interval: Duration::from_secs(60),
        concurrency: 1,
        max_retry_wait: Duration::from_secs(120),
        lease: Duration::from_secs(30),
        history: Duration::from_secs(86_400),
        reconcile: Duration::from_secs(86_400),
        plan: tributary_producer::SyncPlan::default(),
    }
}

fn request() -> PageRequest {
    PageRequest {
        data_type: DataType::Invoice,
        cursor: None,
        now: Timestamp(0),
        page_size: 10,
    }
}

fn source_down() -> ConnectorError {
    ConnectorError::new("scripted", Fault::Source, "HTTP 503")
}

#[tokio::test(start_paused = true)]
async fn source_errors_back_off_exponentially_with_jitter() {
    let connector = Scripted::new(vec![source_down(), source_down(), source_down()]);
    let page = fetch_with_retry(&connector, &request(), &settings(5), None)
        .await
        .unwrap();
    assert_eq!(page.records.len(), 1);
    let gaps = connector.gaps();
    assert_eq!(gaps.len(), 3);
    for (gap, base) in gaps.iter().zip([1u64, 2, 4]) {
        let base = Duration::from_secs(base);
        assert!(
            *gap >= base && *gap < base + base / 2 + Duration::from_millis(1),
            "gap {gap:?} for base {base:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn rate_limits_wait_exactly_as_long_as_the_source_asked() {
    let limited = ConnectorError::new("scripted", Fault::RateLimited, "HTTP 429")
        .with_retry_after(Duration::from_secs(37));
    let connector = Scripted::new(vec![limited]);
    fetch_with_retry(&connector, &request(), &settings(5), None)
        .await
        .unwrap();
    assert_eq!(connector.gaps(), vec![Duration::from_secs(37)]);
}

#[tokio::test(start_paused = true)]
async fn gives_up_after_max_attempts_with_the_last_error() {
    let connector = Scripted::new(vec![source_down(), source_down(), source_down()]);
    let err = fetch_with_retry(&connector, &request(), &settings(3), None)
        .await
        .unwrap_err();
    assert_eq!(err.message, "HTTP 503");
    assert_eq!(connector.calls.lock().unwrap().len(), 3);
}

#[tokio::test(start_paused = true)]
async fn user_faults_are_not_retried() {
    let connector = Scripted::new(vec![ConnectorError::new(
        "scripted",
        Fault::User,
        "bad API key",
    )]);
    let err = fetch_with_retry(&connector, &request(), &settings(5), None)
        .await
        .unwrap_err();
    assert_eq!(err.fault, Fault::User);
    assert_eq!(connector.calls.lock().unwrap().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_long_wait_is_returned_at_once_for_a_pause() {
    let day = ConnectorError::new("scripted", Fault::RateLimited, "HTTP 429 day limit")
        .with_retry_after(Duration::from_secs(6 * 3600));
    let connector = Scripted::new(vec![day]);
    let start = tokio::time::Instant::now();
    let err = fetch_with_retry(&connector, &request(), &settings(5), None)
        .await
        .unwrap_err();
    assert_eq!(err.retry_after, Some(Duration::from_secs(6 * 3600)));
    assert_eq!(start.elapsed(), Duration::ZERO, "no sleeping through a day");
    assert_eq!(connector.calls.lock().unwrap().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn calls_keep_within_the_connectors_limits() {
    let connector = Scripted::new(vec![]);
    let limiter = Limiter::new(RateLimits {
        key: "scripted:t".into(),
        per_minute: Some(2),
        per_day: Some(3),
        concurrent: Some(1),
    });
    let start = tokio::time::Instant::now();
    for _ in 0..3 {
        fetch_with_retry(&connector, &request(), &settings(5), Some(&limiter))
            .await
            .unwrap();
    }
    assert_eq!(
        connector.gaps(),
        vec![Duration::ZERO, Duration::from_secs(60)]
    );
    // The fourth call of the day is refused with the time until a slot
    // frees, long enough to pause the connection.
    let err = fetch_with_retry(&connector, &request(), &settings(5), Some(&limiter))
        .await
        .unwrap_err();
    assert_eq!(err.fault, Fault::RateLimited);
    assert!(
        err.message
            .contains("daily limit of 3 calls for scripted:t"),
        "{err}"
    );
    assert_eq!(
        err.retry_after,
        Some(Duration::from_secs(24 * 3600) - start.elapsed())
    );
    assert_eq!(connector.calls.lock().unwrap().len(), 3);
}
