#![allow(clippy::unwrap_used)] // a test stops at its first surprise
//! The connector conformance suite (`tributary_testkit::conformance`) on
//! the sandbox: every kind of data, with changes, deletes and small pages.

use tributary_connector_sandbox::{SandboxConnector, SandboxSettings, all_kinds};
use tributary_schemas::Timestamp;
use tributary_testkit::conformance::{Source, check};

#[tokio::test]
async fn the_sandbox_conforms() {
    let settings = SandboxSettings {
        seed: 5,
        records: 30,
        generations: 2,
        generation_interval_secs: 0,
        epoch_ms: Timestamp::now().millis() - 1,
        max_page_size: 7,
        fail_every: 0,
        failure: Default::default(),
        hard_deletes: false,
        kinds: all_kinds(),
    };
    let connector = SandboxConnector::new(settings, "cmp-conform");
    let seen = check(&connector, Source::Faithful).await;
    assert_eq!(seen.refused, 0);
    assert!(seen.records > 21 * 10, "{seen:?}");
}
