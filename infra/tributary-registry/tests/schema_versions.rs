#![allow(clippy::unwrap_used)] // a test stops at its first surprise
//! Readers that follow schema versions: events of one data type written
//! under an older and a newer compatible version of its schema both read
//! as this build's type (the older one's missing field filled with its
//! default, the newer one's extra fields skipped), through the registry;
//! and a publisher whose schema the registry calls incompatible is refused
//! before it sends anything.

use std::time::{Duration, Instant};

use serde_json::json;
use tributary_projection::Change;
use tributary_projector::{DecodeError, Decoder};
use tributary_registry::{Compatibility, Registry};
use tributary_schemas::DataType;
use tributary_testkit::schema_versions::{
    current, customer, newer, newer_extra, older, register, wire,
};

async fn start_registry(dir: &std::path::Path) -> String {
    let registry = Registry::open(&dir.join("registry.db"), Compatibility::Backward)
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, registry.router()).await.unwrap() });
    url
}

#[tokio::test]
async fn projections_read_events_of_an_older_and_a_newer_schema_version() {
    let dir = tempfile::tempdir().unwrap();
    let url = start_registry(dir.path()).await;
    let subject = format!("{}-value", DataType::Customer.topic());
    let old_id = register(&url, &subject, &older()).await.unwrap();
    let current_id = register(&url, &subject, &current()).await.unwrap();
    let new_id = register(&url, &subject, &newer()).await.unwrap();
    assert!(old_id != current_id && current_id != new_id);

    let decoder = Decoder::new(&url);
    let topic = DataType::Customer.topic();
    let decode = |bytes: Vec<u8>| {
        let decoder = &decoder;
        let topic = topic.clone();
        async move {
            match decoder.decode(&topic, Some(&bytes)).await {
                Ok(Change::Record(event)) => event,
                other => panic!("{other:?}"),
            }
        }
    };

    // The older writer has no revision: the reader's default, 0, fills it.
    let old = customer("c-old", 0);
    assert_eq!(decode(wire(&older(), old_id, &old, &[])).await, old);
    // The same version as this build's.
    let same = customer("c-same", 3);
    assert_eq!(decode(wire(&current(), current_id, &same, &[])).await, same);
    // The newer writer's extra fields are skipped.
    let new = customer("c-new", 2);
    assert_eq!(
        decode(wire(&newer(), new_id, &new, &newer_extra())).await,
        new
    );
}

#[tokio::test]
async fn a_wrong_type_or_an_unknown_schema_is_poison_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let url = start_registry(dir.path()).await;
    let customers = format!("{}-value", DataType::Customer.topic());
    let id = register(&url, &customers, &current()).await.unwrap();
    let decoder = Decoder::new(&url);
    let bytes = wire(&current(), id, &customer("c1", 0), &[]);
    let Err(DecodeError::Poison(reason)) = decoder
        .decode(&DataType::Invoice.topic(), Some(&bytes))
        .await
    else {
        panic!("a customer on the invoices topic must be poison")
    };
    assert!(
        reason.contains("a customers event cannot be read as invoices"),
        "{reason}"
    );
    let unknown = wire(&current(), 999, &customer("c1", 0), &[]);
    let Err(DecodeError::Poison(reason)) = decoder
        .decode(&DataType::Customer.topic(), Some(&unknown))
        .await
    else {
        panic!("an unknown schema id must be poison")
    };
    assert!(reason.contains("unknown schema id 999"), "{reason}");
}

#[tokio::test]
async fn the_publisher_refuses_an_incompatible_schema_before_sending() {
    let dir = tempfile::tempdir().unwrap();
    let url = start_registry(dir.path()).await;
    // The subject already holds a schema this build's cannot read.
    let subject = format!("{}-value", DataType::Customer.topic());
    let foreign = json!({"type": "record", "name": "CustomerEvent", "namespace": "io.tributary.v1",
        "fields": [{"name": "something_else", "type": "string"}]});
    register(&url, &subject, &foreign).await.unwrap();

    // No broker at all: a send would fail only after a long timeout, so a
    // quick refusal proves nothing was sent.
    let mut client = rdkafka::ClientConfig::new();
    client.set("bootstrap.servers", "127.0.0.1:1");
    let publisher = tributary_producer::Publisher::new(&client, &url).unwrap();
    let started = Instant::now();
    let err = publisher.register_schemas().await.unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(err, tributary_producer::ProducerError::IncompatibleSchema { ref subject, .. } if subject.as_str() == "tributary.v1.customers-value"),
        "{text}"
    );
    assert!(
        text.contains("incompatible") && text.contains("nothing was sent"),
        "{text}"
    );
    let err = publisher
        .publish_events(&[customer("c1", 0)])
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("incompatible"),
        "a page is refused too, before its send: {err}"
    );
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[tokio::test]
async fn schemas_are_registered_once_in_the_text_the_encoder_uses() {
    let dir = tempfile::tempdir().unwrap();
    let url = start_registry(dir.path()).await;
    // No broker: the send fails fast, after the encoder has registered.
    let mut client = rdkafka::ClientConfig::new();
    client
        .set("bootstrap.servers", "127.0.0.1:1")
        .set("message.timeout.ms", "2000");
    let publisher = tributary_producer::Publisher::new(&client, &url).unwrap();
    publisher.register_schemas().await.unwrap();
    assert!(
        publisher
            .publish_events(&[customer("c1", 0)])
            .await
            .is_err()
    );
    let subject = format!("{}-value", DataType::Customer.topic());
    let versions: serde_json::Value = reqwest::get(format!("{url}/subjects/{subject}/versions"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(versions, json!([1]), "one version, not one per writer");
}
