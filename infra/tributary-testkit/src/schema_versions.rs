//! Versions of the customers schema, older and newer than this build's,
//! and events written with them in the Confluent wire format: for the
//! tests that check every reader follows schema versions.

use apache_avro::Schema;
use apache_avro::types::Value as Avro;
use serde_json::{Value, json};
use tributary_schemas::model::Contact;
use tributary_schemas::{DataType, Event, Record, Timestamp};

/// This build's customers schema as JSON.
pub fn current() -> Value {
    serde_json::from_str(DataType::Customer.schema_text()).unwrap()
}

/// The version before `revision` was added to the envelope.
pub fn older() -> Value {
    let mut schema = current();
    let fields = schema["fields"].as_array_mut().unwrap();
    fields.retain(|f| f["name"] != "revision");
    schema
}

/// A later version: a new envelope field and a new record field, both with
/// defaults, as the registry's BACKWARD rule demands.
pub fn newer() -> Value {
    let mut schema = current();
    let fields = schema["fields"].as_array_mut().unwrap();
    fields.push(json!({"name": "channel", "type": "string", "default": "api"}));
    let record = fields.iter_mut().find(|f| f["name"] == "record").unwrap();
    record["type"][1]["fields"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "tax_number", "type": ["null", "string"], "default": null}));
    schema
}

/// Values for the fields [`newer`] adds, for [`wire`].
pub fn newer_extra() -> Vec<(&'static str, Avro)> {
    vec![
        ("channel", Avro::String("pos".into())),
        (
            "tax_number",
            Avro::Union(1, Box::new(Avro::String("GB123".into()))),
        ),
    ]
}

/// Registers `schema` under `subject`; its id, or the registry's refusal.
pub async fn register(url: &str, subject: &str, schema: &Value) -> Result<u32, String> {
    let response = reqwest::Client::new()
        .post(format!("{url}/subjects/{subject}/versions"))
        .json(&json!({ "schema": schema.to_string() }))
        .send()
        .await
        .unwrap();
    let ok = response.status().is_success();
    let body: Value = response.json().await.unwrap();
    if ok {
        Ok(body["id"].as_u64().unwrap() as u32)
    } else {
        Err(body.to_string())
    }
}

/// A customer of company `acme` at a fixed version.
pub fn customer(id: &str, revision: i64) -> Event {
    Event {
        event_id: format!("e-{id}"),
        company_id: "acme".into(),
        connection_id: "conn".into(),
        data_type: "customers".into(),
        source: "test".into(),
        source_record_id: id.into(),
        source_modified_at: Timestamp(1_700_000_000_000),
        fetched_at: Timestamp(1_700_000_000_500),
        deleted: false,
        revision,
        record: Some(Record::Customer(Contact {
            id: id.into(),
            name: format!("Customer {id}"),
            email: Some(format!("{id}@example.com")),
            phone: None,
            status: "ACTIVE".into(),
            currency: Some("GBP".into()),
        })),
    }
}

/// `event` written with `schema` (a version of the customers schema) in the
/// Confluent wire format under `id`: the fields the schema lacks are left
/// out, the ones it adds get `extra`.
pub fn wire(schema: &Value, id: u32, event: &Event, extra: &[(&str, Avro)]) -> Vec<u8> {
    let this_build = DataType::Customer.schema().unwrap();
    let writer = Schema::parse_str(&schema.to_string()).unwrap();
    let Avro::Record(mut fields) = apache_avro::to_value(event)
        .unwrap()
        .resolve(&this_build)
        .unwrap()
    else {
        panic!("not a record")
    };
    let names: Vec<String> = schema["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap().to_string())
        .collect();
    fields.retain(|(name, _)| names.contains(name));
    for (name, value) in extra {
        if *name == "tax_number" {
            // A record field: inside the union's record branch.
            let (_, Avro::Union(_, inner)) =
                fields.iter_mut().find(|(n, _)| n == "record").unwrap()
            else {
                panic!("record is a union")
            };
            let Avro::Record(record) = inner.as_mut() else {
                panic!("not a record")
            };
            record.push((name.to_string(), value.clone()));
        } else {
            fields.push((name.to_string(), value.clone()));
        }
    }
    let mut out = vec![0];
    out.extend(id.to_be_bytes());
    let datum = apache_avro::writer::datum::GenericDatumWriter::builder(&writer)
        .build()
        .unwrap()
        .write_value_to_vec(Avro::Record(fields))
        .unwrap();
    out.extend(datum);
    out
}
