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

#[tokio::test]
async fn starts_creates_topics_and_keeps_them_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let tansu = find_tansu(None).expect("tansu must be installed for this test");
    let port = free_port();
    let broker = LocalBroker::start(&tansu, dir.path(), port).unwrap();
    let mut client = ClientConfig::new();
    client.set("bootstrap.servers", broker.bootstrap_servers());
    let topics = vec!["t.one".to_string(), "t.two".to_string()];
    ensure_topics(&client, &topics, 3, 1).await.unwrap();
    // Creating again is a no-op, not an error.
    ensure_topics(&client, &topics, 3, 1).await.unwrap();
    broker.stop(Duration::from_secs(5));

    let broker = LocalBroker::start(&tansu, dir.path(), port).unwrap();
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
