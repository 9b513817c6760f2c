//! A broker, a registry and a state store for worker tests.
#![allow(clippy::unwrap_used, dead_code)] // each test uses a part

use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use serde_json::json;
use tokio::sync::watch;
use tributary_connector_api::{ConnectionInfo, ConnectorFactory, ConnectorRegistry};
use tributary_producer::secrets::{Cipher, Key};
use tributary_producer::{Admin, Publisher, StateStore, SyncSettings, Worker};
use tributary_schemas::Timestamp;

pub(crate) fn messages_in(bootstrap: &str, topic: &str) -> i64 {
    let consumer: BaseConsumer = tributary_kafka::client(bootstrap, [])
        .set("group.id", "oversize-test")
        .create()
        .unwrap();
    let (low, high) = consumer
        .fetch_watermarks(topic, 0, Duration::from_secs(10))
        .unwrap();
    high - low
}

/// A broker, a registry, a state store with one connection of `factory`'s
/// source per company (`conn-<company>`), the admin and a worker over them.
pub(crate) struct Rig {
    _dir: tempfile::TempDir,
    pub(crate) broker: tributary_broker::LocalBroker,
    pub(crate) bootstrap: String,
    pub(crate) client: rdkafka::ClientConfig,
    pub(crate) registry_url: String,
    pub(crate) state: StateStore,
    pub(crate) infos: Vec<ConnectionInfo>,
    pub(crate) admin: Arc<Admin>,
    pub(crate) worker: Arc<Worker>,
}

pub(crate) async fn rig(factory: impl ConnectorFactory + 'static, companies: &[&str]) -> Rig {
    rig_with_plan(factory, companies, tributary_producer::SyncPlan::default()).await
}

/// [`rig`], with sync settings per data type.
pub(crate) async fn rig_with_plan(
    factory: impl ConnectorFactory + 'static,
    companies: &[&str],
    plan: tributary_producer::SyncPlan,
) -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let tansu = tributary_broker::find_tansu(None).unwrap();
    let broker = tributary_broker::LocalBroker::start(
        &tansu,
        &dir.path().join("broker"),
        tributary_testkit::free_port(),
    )
    .await
    .unwrap();
    let bootstrap = broker.bootstrap_servers().to_string();
    let client = tributary_kafka::client(&bootstrap, []);
    tributary_broker::ensure_topics(&client, &tributary_schemas::all_topics(), 1, 1)
        .await
        .unwrap();
    let registry = tributary_registry::Registry::open(
        &dir.path().join("registry.db"),
        tributary_registry::Compatibility::Backward,
    )
    .await
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let registry_url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, registry.router()).await.unwrap() });

    let state = StateStore::open(&dir.path().join("state.db"))
        .await
        .unwrap();
    let mut infos = Vec::new();
    for company in companies {
        let info = ConnectionInfo {
            connection_id: format!("conn-{company}"),
            company_id: company.to_string(),
            source: factory.name().into(),
            settings: json!({}),
        };
        state.add_connection(&info, Timestamp::now()).await.unwrap();
        infos.push(info);
    }
    let publisher = Arc::new(Publisher::new(&client, &registry_url).unwrap());
    publisher.register_schemas().await.unwrap();
    let admin = Arc::new(Admin::new(
        state.clone(),
        ConnectorRegistry::new(vec![Box::new(factory)]),
        Cipher::new(Key::generate(), vec![]),
        SyncSettings {
            page_size: 10,
            max_attempts: 2,
            retry_base: Duration::from_millis(50),
            interval: Duration::from_secs(3600),
            concurrency: 1,
            max_retry_wait: Duration::from_secs(60),
            lease: Duration::from_secs(30),
            history: Duration::from_secs(86_400),
            reconcile: Duration::from_secs(86_400),
            plan,
        },
    ));
    let worker = Arc::new(Worker::of_admin("w1".into(), &admin, publisher));
    Rig {
        _dir: dir,
        broker,
        bootstrap,
        client,
        registry_url,
        state,
        infos,
        admin,
        worker,
    }
}

/// Runs the rig's worker until `done` holds (or 60 s pass), then stops it.
pub(crate) async fn run_until(rig: &Rig, what: &str, done: impl AsyncFn() -> bool) {
    let (stop, shutdown) = watch::channel(false);
    let running = tokio::spawn({
        let worker = Arc::clone(&rig.worker);
        async move { worker.run(shutdown).await }
    });
    let started = Instant::now();
    while !done().await {
        assert!(started.elapsed() < Duration::from_secs(60), "{what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let _ = stop.send(true);
    running.await.unwrap();
}
