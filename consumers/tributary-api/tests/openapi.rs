//! `docs/openapi.json` is the document the code generates: regenerate it
//! with `TRIBUTARY_WRITE_OPENAPI=1 cargo test -p tributary-api --test openapi`.

use std::path::Path;

#[test]
fn the_committed_document_is_the_generated_one() {
    let generated = tributary_api::openapi().to_pretty_json().unwrap() + "\n";
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json");
    if std::env::var_os("TRIBUTARY_WRITE_OPENAPI").is_some() {
        std::fs::write(&file, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&file).unwrap_or_default();
    assert!(
        committed == generated,
        "docs/openapi.json is stale: regenerate it with \
         TRIBUTARY_WRITE_OPENAPI=1 cargo test -p tributary-api --test openapi"
    );
}

#[test]
fn the_document_is_openapi_3_1_with_its_parts() {
    let doc = serde_json::to_value(tributary_api::openapi()).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert_eq!(schemes["api_key"]["name"], "X-Api-Key");
    // The error shape every route answers, referenced by the routes.
    let error = &doc["components"]["schemas"]["ErrorBody"];
    assert!(error["properties"]["error"].is_object(), "{error}");
    let list = &doc["paths"]["/v1/companies/{company}/data/{data_type}"]["get"];
    let names: Vec<&str> = list["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "company",
            "data_type",
            "limit",
            "cursor",
            "modified_since",
            "include_deleted"
        ]
    );
    for status in ["200", "400", "401", "500"] {
        assert!(list["responses"][status].is_object(), "no {status}: {list}");
    }
    assert_eq!(
        list["responses"]["401"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/ErrorBody"
    );
    // The outbound webhooks: every event type, its body the dispatcher's.
    for event in tributary_connector_api::webhook_events::EVENT_TYPES {
        let body =
            &doc["webhooks"][event.name]["post"]["requestBody"]["content"]["application/json"];
        assert_eq!(
            body["schema"]["$ref"], "#/components/schemas/WebhookEvent",
            "{}",
            event.name
        );
    }
    let event = &doc["components"]["schemas"]["WebhookEvent"]["properties"];
    assert!(
        event["type"].is_object() && event["data"].is_object(),
        "{event}"
    );
    // Public routes take no key.
    assert!(doc["paths"]["/health"]["get"].get("security").is_none());
}
