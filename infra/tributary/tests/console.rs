#![allow(clippy::unwrap_used)] // a test stops at its first surprise
//! The operators' console in a real browser: `tributary up` (sandbox
//! companies, a Xero source behind the test kit's fake identity server and
//! Prism, three bad messages for dead letters), and
//! `consumers/tributary-console/web/test/browser.mjs` driving Debian's
//! chromium through it: sign in, companies, a company, records and search,
//! one record, a Xero connection linked through the consent page, a sync
//! and a resync, a dead letter replayed, a webhook tested, a scoped key;
//! every page at 1280 and 390 px without horizontal overflow, each saved
//! as a screenshot (in `TRIBUTARY_SCREENSHOTS` when set: the README's
//! pictures come from `TRIBUTARY_SCREENSHOTS=docs/console`).

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use tributary_testkit::free_port;
use tributary_testkit::xero_identity::{CLIENT_ID, CLIENT_SECRET, FakeIdentity};

const SCOPED_KEY: &str = "console-test-scoped-key";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_does_the_days_work_in_the_console() {
    assert!(
        tributary_console::built(),
        "the console is not built into this binary: run infra/scripts/console.sh (the test command does)"
    );
    let web = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../consumers/tributary-console/web");
    assert!(
        web.join("node_modules/puppeteer-core").is_dir(),
        "puppeteer-core is not installed: run infra/scripts/console.sh"
    );
    let chromium =
        std::env::var("TRIBUTARY_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "no browser at {chromium}: install Debian's chromium (infra/scripts/prereqs.sh does) or set TRIBUTARY_CHROMIUM"
    );

    let prism = tokio::task::spawn_blocking(tributary_testkit::prism::Prism::start)
        .await
        .unwrap();
    let identity = FakeIdentity::start(Duration::from_secs(1800), 1800, &["tenant-console"]).await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (broker, registry, api_port) = (free_port(), free_port(), free_port());
    let config = d.join("tributary.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {data:?}\nlog = \"info,librdkafka=warn\"\n\
             [broker]\nport = {broker}\n[registry]\nport = {registry}\n\
             [api]\nlisten = \"127.0.0.1:{api_port}\"\n\
             keys = [{{ name = \"tests\", sha256 = \"{admin}\", companies = [\"*\"] }}, {{ name = \"scoped\", sha256 = \"{scoped}\", companies = [\"sandbox-002\"] }}]\n\
             [sandbox]\ncompanies = 2\nrecords = 30\ngenerations = 1\ngeneration_interval_secs = 0\nkinds = [\"accounting\"]\n\
             [sync]\ninterval_secs = 3600\n\
             [xero]\nclient_id = {CLIENT_ID:?}\nclient_secret = {CLIENT_SECRET:?}\n\
             redirect_uri = \"http://127.0.0.1:{api_port}/v1/oauth/xero/callback\"\n\
             authorize_url = \"{idp}/authorize\"\ntoken_url = {token:?}\nconnections_url = {conns:?}\napi_url = {prism:?}\n\
             [security]\nallow_private_network = true\n",
            data = d.join("data"),
            admin = tributary_api::hash_key(API_KEY),
            scoped = tributary_api::hash_key(SCOPED_KEY),
            idp = identity.url,
            token = identity.token_url(),
            conns = identity.connections_url(),
            prism = prism.url,
        ),
    )
    .unwrap();
    let _pipeline = up(&config, &d.join("up.log"), &[]);
    let api = format!("http://127.0.0.1:{api_port}");
    wait_for_health(&api, d).await;
    for company in ["sandbox-001", "sandbox-002"] {
        wait_for_data_type(&api, company, "invoices", d).await;
    }
    make_dead_letters(&api, broker, d).await;

    let shots = std::env::var_os("TRIBUTARY_SCREENSHOTS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| d.join("screenshots"));
    let browser = tokio::process::Command::new("node")
        .arg("test/browser.mjs")
        .current_dir(&web)
        .env("CONSOLE_URL", &api)
        .env("ADMIN_KEY", API_KEY)
        .env("SCOPED_KEY", SCOPED_KEY)
        .env("SCOPED_COMPANY", "sandbox-002")
        .env("XERO_COMPANY", "acme")
        .env("SCREENSHOTS", &shots)
        .env("CHROMIUM", &chromium)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(600), browser)
        .await
        .expect("the browser test took over 10 minutes")
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "the browser test failed (screenshots in {}):\n{said}\n{}",
        shots.display(),
        logs(d)
    );
    println!("{said}");

    // What the browser did, seen through the API.
    let connections = get(&format!("{api}/v1/connections")).await.unwrap();
    let xero = connections["connections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["company_id"] == "acme")
        .cloned()
        .unwrap_or_else(|| panic!("no acme connection: {connections}"));
    assert_eq!(xero["status"], "linked", "{xero}");
    let runs = get(&format!(
        "{api}/v1/companies/sandbox-002/syncs?data_type=customers"
    ))
    .await
    .unwrap();
    let triggers: Vec<&str> = runs["runs"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["trigger"].as_str())
        .collect();
    assert!(
        triggers.contains(&"request") && triggers.contains(&"resync"),
        "{triggers:?}"
    );
    for page in [
        "sign-in",
        "companies",
        "company",
        "records-search",
        "record",
        "company-linked",
        "company-syncs",
        "dead-letters",
        "webhooks",
        "pipeline",
        "companies-scoped",
    ] {
        for suffix in ["", "-390"] {
            let shot = shots.join(format!("{page}{suffix}.png"));
            assert!(shot.is_file(), "no screenshot {}", shot.display());
        }
    }
}
