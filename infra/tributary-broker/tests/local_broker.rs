#![allow(clippy::unwrap_used)] // a test stops at its first surprise
//! Needs the Tansu binary (`.ci/run` installs it).

use std::time::Duration;

use rdkafka::ClientConfig;
use tributary_broker::{LocalBroker, ensure_topics, find_tansu, topic_partitions};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A local broker on a free port in `dir`, and a client of it.
async fn start(dir: &std::path::Path) -> (LocalBroker, u16, ClientConfig) {
    let tansu = find_tansu(None).expect("tansu must be installed for this test");
    let port = free_port();
    let broker = LocalBroker::start(&tansu, dir, port).await.unwrap();
    let mut client = ClientConfig::new();
    client.set("bootstrap.servers", broker.bootstrap_servers());
    (broker, port, client)
}

#[tokio::test]
async fn starts_creates_topics_and_keeps_them_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, port, client) = start(dir.path()).await;
    let topics = vec!["t.one".to_string(), "t.two".to_string()];
    ensure_topics(&client, &topics, 3, 1).await.unwrap();
    // Creating again is a no-op, not an error.
    ensure_topics(&client, &topics, 3, 1).await.unwrap();
    broker.stop(Duration::from_secs(5));

    let tansu = find_tansu(None).unwrap();
    let broker = LocalBroker::start(&tansu, dir.path(), port).await.unwrap();
    let found = topic_partitions(&client, &topics).await.unwrap();
    assert_eq!(
        found,
        vec![("t.one".to_string(), 3), ("t.two".to_string(), 3)]
    );
    drop(broker);
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "dropping the handle stops the broker"
    );
}

#[test]
fn a_missing_binary_says_how_to_install_it() {
    let err = find_tansu(Some(std::path::Path::new("/nonexistent/tansu")))
        .err()
        .unwrap();
    assert!(err.to_string().contains("cargo install tansu"), "{err}");
}

/// Tansu looks up each fetched record's headers by (topition, offset_id);
/// without this index every lookup scans all headers ever stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_lookups_are_indexed_and_headers_read_back() {
    use rdkafka::Message;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::{Header, Headers, OwnedHeaders};
    use rdkafka::producer::{FutureProducer, FutureRecord};
    use sqlx::Connection;

    let dir = tempfile::tempdir().unwrap();
    let (broker, _, client) = start(dir.path()).await;
    let topic = "t.headers".to_string();
    ensure_topics(&client, std::slice::from_ref(&topic), 1, 1)
        .await
        .unwrap();

    let producer: FutureProducer = client.clone().set("linger.ms", "0").create().unwrap();
    for i in 0..3 {
        let id = format!("event-{i}");
        let headers = OwnedHeaders::new().insert(Header {
            key: "tributary.event_id",
            value: Some(id.as_bytes()),
        });
        let record = FutureRecord::to(&topic)
            .key("k")
            .payload("v")
            .headers(headers);
        producer
            .send(record, Duration::from_secs(10))
            .await
            .unwrap();
    }

    let consumer: BaseConsumer = client
        .clone()
        .set("group.id", "header-test")
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", "50")
        .create()
        .unwrap();
    consumer.subscribe(&[&topic]).unwrap();
    let mut seen = Vec::new();
    let start = std::time::Instant::now();
    while seen.len() < 3 && start.elapsed() < Duration::from_secs(30) {
        if let Some(Ok(message)) = consumer.poll(Duration::from_millis(200)) {
            let headers = message.headers().expect("headers kept");
            let header = headers.get(0);
            assert_eq!(header.key, "tributary.event_id");
            seen.push(String::from_utf8(header.value.unwrap().to_vec()).unwrap());
        }
    }
    assert_eq!(seen, vec!["event-0", "event-1", "event-2"]);
    drop(consumer);

    let mut db = sqlx::SqliteConnection::connect(&format!(
        "sqlite://{}",
        dir.path().join("tansu.db").display()
    ))
    .await
    .unwrap();
    let indexed: Vec<(String,)> = sqlx::query_as(
        "SELECT name FROM pragma_index_list('header') WHERE name = 'tributary_header_record'",
    )
    .fetch_all(&mut db)
    .await
    .unwrap();
    assert_eq!(indexed.len(), 1, "the header index exists");
    db.close().await.unwrap();
    broker.stop(Duration::from_secs(5));
}
