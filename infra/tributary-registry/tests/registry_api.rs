#![allow(clippy::unwrap_used)] // a test stops at its first surprise
use std::path::Path;

use schema_registry_converter::async_impl::avro::{AvroDecoder, AvroEncoder};
use schema_registry_converter::async_impl::schema_registry::SrSettings;
use schema_registry_converter::avro_common::get_supplied_schema;
use schema_registry_converter::schema_registry_common::SubjectNameStrategy;
use serde_json::{Value, json};
use tributary_registry::{Compatibility, Registry};
use tributary_schemas::{DataType, Event, Timestamp};

async fn start(db: &Path) -> (String, tokio::task::JoinHandle<()>) {
    let registry = Registry::open(db, Compatibility::Backward).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        axum::serve(listener, registry.router()).await.unwrap();
    });
    (url, task)
}

async fn call(method: &str, url: &str, body: Option<Value>) -> (u16, Value) {
    let client = reqwest::Client::new();
    let mut req = client.request(method.parse().unwrap(), url);
    if let Some(b) = body {
        req = req
            .header("content-type", "application/vnd.schemaregistry.v1+json")
            .body(b.to_string());
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn record_schema(extra: Option<Value>) -> String {
    let mut fields = vec![json!({"name": "a", "type": "string"})];
    fields.extend(extra);
    json!({"type": "record", "name": "T", "namespace": "t", "fields": fields}).to_string()
}

#[tokio::test]
async fn confluent_client_registers_encodes_and_decodes() {
    let dir = tempfile::tempdir().unwrap();
    let (url, _task) = start(&dir.path().join("registry.db")).await;
    let settings = SrSettings::new(url.clone());
    let encoder = AvroEncoder::new(settings.clone());
    let decoder = AvroDecoder::new(settings);
    let schema = DataType::Customer.schema().unwrap();
    let topic = DataType::Customer.topic();
    let strategy = SubjectNameStrategy::TopicNameStrategyWithSchema(
        topic.clone(),
        false,
        get_supplied_schema(&schema),
    );
    let event = Event {
        event_id: "e1".into(),
        company_id: "cmp".into(),
        connection_id: "conn".into(),
        data_type: "customers".into(),
        source: "sandbox".into(),
        source_record_id: "cus-1".into(),
        source_modified_at: Timestamp(5),
        fetched_at: Timestamp(6),
        deleted: false,
        revision: 0,
        record: Some(tributary_schemas::Record::Customer(
            tributary_schemas::model::Contact {
                id: "cus-1".into(),
                name: "Kestrel Print".into(),
                email: None,
                phone: None,
                status: "ACTIVE".into(),
                currency: None,
            },
        )),
    };
    let bytes = encoder.encode_struct(&event, &strategy).await.unwrap();
    assert_eq!(bytes[0], 0, "magic byte");
    let id = u32::from_be_bytes(bytes[1..5].try_into().unwrap());
    assert_eq!(id, 1);
    let decoded = decoder.decode(Some(&bytes)).await.unwrap();
    assert_eq!(
        Event::from_avro(DataType::Customer, &decoded.value).unwrap(),
        event
    );

    let (status, body) = call(
        "GET",
        &format!("{url}/subjects/{topic}-value/versions/latest"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["id"], 1);
    assert_eq!(body["version"], 1);
}

#[tokio::test]
async fn register_look_up_and_evolve_backward_compatibly() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("registry.db");
    let (url, task) = start(&db).await;
    let v1 = record_schema(None);
    let (s, body) = call(
        "POST",
        &format!("{url}/subjects/s-value/versions"),
        Some(json!({"schema": v1})),
    )
    .await;
    assert_eq!((s, body["id"].as_i64()), (200, Some(1)));
    // Same text again, and under another subject: the same id.
    let (_, again) = call(
        "POST",
        &format!("{url}/subjects/s-value/versions"),
        Some(json!({"schema": v1})),
    )
    .await;
    assert_eq!(again["id"], 1);
    let (_, other) = call(
        "POST",
        &format!("{url}/subjects/other-value/versions"),
        Some(json!({"schema": v1})),
    )
    .await;
    assert_eq!(other["id"], 1);

    // A new required field breaks BACKWARD: old data has no value for it.
    let breaking = record_schema(Some(json!({"name": "b", "type": "long"})));
    let (s, body) = call(
        "POST",
        &format!("{url}/subjects/s-value/versions"),
        Some(json!({"schema": breaking})),
    )
    .await;
    assert_eq!(s, 409, "{body}");
    assert_eq!(body["error_code"], 409);
    let (_, verdict) = call(
        "POST",
        &format!("{url}/compatibility/subjects/s-value/versions/latest"),
        Some(json!({"schema": breaking})),
    )
    .await;
    assert_eq!(verdict["is_compatible"], false);

    // With a default it is compatible and becomes version 2 with a new id.
    let evolved = record_schema(Some(json!({"name": "b", "type": "long", "default": 0})));
    let (_, verdict) = call(
        "POST",
        &format!("{url}/compatibility/subjects/s-value/versions/latest"),
        Some(json!({"schema": evolved})),
    )
    .await;
    assert_eq!(verdict["is_compatible"], true);
    let (s, body) = call(
        "POST",
        &format!("{url}/subjects/s-value/versions"),
        Some(json!({"schema": evolved})),
    )
    .await;
    assert_eq!((s, body["id"].as_i64()), (200, Some(2)));
    let (_, versions) = call("GET", &format!("{url}/subjects/s-value/versions"), None).await;
    assert_eq!(versions, json!([1, 2]));
    let (_, subjects) = call("GET", &format!("{url}/subjects"), None).await;
    assert_eq!(subjects, json!(["other-value", "s-value"]));
    let (_, found) = call(
        "POST",
        &format!("{url}/subjects/s-value"),
        Some(json!({"schema": v1})),
    )
    .await;
    assert_eq!(
        (found["version"].as_i64(), found["id"].as_i64()),
        (Some(1), Some(1))
    );
    let (_, ids) = call("GET", &format!("{url}/schemas/ids/1/versions"), None).await;
    assert_eq!(
        ids,
        json!([{"subject": "other-value", "version": 1}, {"subject": "s-value", "version": 1}])
    );

    // NONE lets anything through for that subject only.
    let (s, _) = call(
        "PUT",
        &format!("{url}/config/s-value"),
        Some(json!({"compatibility": "NONE"})),
    )
    .await;
    assert_eq!(s, 200);
    let (s, _) = call(
        "POST",
        &format!("{url}/subjects/s-value/versions"),
        Some(json!({"schema": breaking})),
    )
    .await;
    assert_eq!(s, 200);
    let (_, global) = call("GET", &format!("{url}/config"), None).await;
    assert_eq!(global["compatibilityLevel"], "BACKWARD");

    // Everything survives a restart with the same ids.
    task.abort();
    let (url, _task) = start(&db).await;
    let (_, body) = call("GET", &format!("{url}/schemas/ids/2"), None).await;
    let text: Value = serde_json::from_str(body["schema"].as_str().unwrap()).unwrap();
    assert_eq!(text, serde_json::from_str::<Value>(&evolved).unwrap());
    let (_, latest) = call(
        "GET",
        &format!("{url}/subjects/s-value/versions/latest"),
        None,
    )
    .await;
    assert_eq!(latest["version"], 3);
    let (_, level) = call("GET", &format!("{url}/config/s-value"), None).await;
    assert_eq!(level["compatibilityLevel"], "NONE");
}

#[tokio::test]
async fn errors_use_confluent_codes() {
    let dir = tempfile::tempdir().unwrap();
    let (url, _task) = start(&dir.path().join("registry.db")).await;
    let cases = [
        (
            "GET",
            format!("{url}/subjects/missing/versions"),
            None,
            404,
            40401,
        ),
        ("GET", format!("{url}/schemas/ids/99"), None, 404, 40403),
        (
            "POST",
            format!("{url}/subjects/s/versions"),
            Some(json!({"schema": "{not json"})),
            422,
            42201,
        ),
        (
            "POST",
            format!("{url}/subjects/s/versions"),
            Some(json!({"schema": "\"int\"", "schemaType": "PROTOBUF"})),
            422,
            42201,
        ),
        (
            "PUT",
            format!("{url}/config"),
            Some(json!({"compatibility": "SIDEWAYS"})),
            422,
            42203,
        ),
    ];
    for (method, u, body, status, code) in cases {
        let (s, b) = call(method, &u, body).await;
        assert_eq!(
            (s, b["error_code"].as_i64()),
            (status, Some(code)),
            "{method} {u}: {b}"
        );
    }
    call(
        "POST",
        &format!("{url}/subjects/s/versions"),
        Some(json!({"schema": "\"int\""})),
    )
    .await;
    let (s, b) = call("GET", &format!("{url}/subjects/s/versions/7"), None).await;
    assert_eq!((s, b["error_code"].as_i64()), (404, Some(40402)));
    let (s, b) = call("GET", &format!("{url}/subjects/s/versions/zero"), None).await;
    assert_eq!((s, b["error_code"].as_i64()), (422, Some(42202)));
}
