//! Xero's webhooks: verified by their signature, read for the tenants and
//! data types they name.
//!
//! Xero sends `{"events": [{"tenantId", "eventCategory", "eventType",
//! "resourceId", ...}], "firstEventSequence", "lastEventSequence",
//! "entropy"}` with `x-xero-signature`: the base64 HMAC-SHA256 of the raw
//! body under the app's webhook key. Its intent-to-receive check sends
//! events-free bodies, some signed right and some wrong, and expects 200 for
//! the first and 401 for the others; so a wrong signature is refused before
//! the body is read at all.

use std::collections::BTreeMap;

use base64::Engine;
use serde::Deserialize;
use tributary_connector_api::{SourceChange, Webhook, WebhookRefusal};
use tributary_schemas::DataType;

const SIGNATURE: &str = "x-xero-signature";

#[derive(Deserialize)]
struct Body {
    events: Vec<Event>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Event {
    tenant_id: String,
    event_category: String,
}

/// Verifies `webhook` under `key` and says which data types of which
/// tenants changed, one entry per tenant.
pub fn receive(key: &str, webhook: &Webhook) -> Result<Vec<SourceChange>, WebhookRefusal> {
    if key.is_empty() {
        return Err(WebhookRefusal::NotReceived(
            "xero webhooks are not received: set connectors.xero.webhook_key".into(),
        ));
    }
    verify(key, webhook)?;
    let body: Body = serde_json::from_slice(&webhook.body)
        .map_err(|e| WebhookRefusal::Malformed(format!("xero webhook body: {e}")))?;
    let mut changed: BTreeMap<String, Vec<DataType>> = BTreeMap::new();
    for event in body.events {
        let types: &[DataType] = match event.event_category.as_str() {
            "CONTACT" => &[DataType::Customer, DataType::Supplier],
            "INVOICE" => &[DataType::Invoice, DataType::Bill],
            // Xero may add categories: a change we do not read is no news.
            _ => continue,
        };
        let entry = changed.entry(event.tenant_id).or_default();
        for t in types {
            if !entry.contains(t) {
                entry.push(*t);
            }
        }
    }
    Ok(changed
        .into_iter()
        .map(|(tenant, data_types)| SourceChange { tenant, data_types })
        .collect())
}

fn verify(key: &str, webhook: &Webhook) -> Result<(), WebhookRefusal> {
    let presented = webhook
        .headers
        .get(SIGNATURE)
        .ok_or_else(|| WebhookRefusal::Unverified(format!("xero webhook without {SIGNATURE}")))?;
    let presented = base64::engine::general_purpose::STANDARD
        .decode(presented.trim())
        .map_err(|_| WebhookRefusal::Unverified(format!("{SIGNATURE} is not base64")))?;
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key.as_bytes());
    ring::hmac::verify(&key, &webhook.body, &presented)
        .map_err(|_| WebhookRefusal::Unverified(format!("{SIGNATURE} does not match the body")))
}

/// The signature Xero would send for `body` under `key` (for tests and
/// for trying a receiver by hand).
pub fn sign(key: &str, body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(ring::hmac::sign(&key, body).as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "Xr0+webhook/key==";

    fn webhook(body: &str, signature: Option<String>) -> Webhook {
        Webhook {
            headers: signature
                .map(|s| BTreeMap::from([(SIGNATURE.to_string(), s)]))
                .unwrap_or_default(),
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn known_signature() {
        // HMAC-SHA256("key", "The quick brown fox jumps over the lazy dog"),
        // RFC 4231 style vector, in base64.
        assert_eq!(
            sign("key", b"The quick brown fox jumps over the lazy dog"),
            "97yD9DBThCSxMpjmqm+xQ+9NWaFJRhdZl0edvC0aPNg="
        );
    }

    #[test]
    fn intent_to_receive_takes_the_signed_and_refuses_the_rest() {
        let body = r#"{"events":[],"firstEventSequence":0,"lastEventSequence":0,"entropy":"ABC"}"#;
        assert_eq!(
            receive(KEY, &webhook(body, Some(sign(KEY, body.as_bytes())))),
            Ok(vec![])
        );
        for wrong in [
            None,
            Some("not base64!".to_string()),
            Some(sign("another key", body.as_bytes())),
            Some(sign(KEY, b"another body")),
        ] {
            assert!(matches!(
                receive(KEY, &webhook(body, wrong)),
                Err(WebhookRefusal::Unverified(_))
            ));
        }
        // A wrongly signed body is refused before it is read.
        assert!(matches!(
            receive(KEY, &webhook("not json", Some(sign("x", b"y")))),
            Err(WebhookRefusal::Unverified(_))
        ));
    }

    #[test]
    fn events_name_the_tenants_data_types() {
        let body = r#"{"events":[
          {"resourceUrl":"https://api.xero.com/api.xro/2.0/Contacts/c1","resourceId":"c1","eventDateUtc":"2026-12-03T01:15:39.902","eventType":"UPDATE","eventCategory":"CONTACT","tenantId":"T1","tenantType":"ORGANISATION"},
          {"resourceId":"i1","eventType":"CREATE","eventCategory":"INVOICE","tenantId":"T1","tenantType":"ORGANISATION"},
          {"resourceId":"i2","eventType":"UPDATE","eventCategory":"INVOICE","tenantId":"T2","tenantType":"ORGANISATION"},
          {"resourceId":"i3","eventType":"UPDATE","eventCategory":"INVOICE","tenantId":"T2","tenantType":"ORGANISATION"},
          {"resourceId":"s1","eventType":"UPDATE","eventCategory":"SUBSCRIPTION","tenantId":"T3","tenantType":"ORGANISATION"}
        ],"firstEventSequence":1,"lastEventSequence":5,"entropy":"XYZ"}"#;
        let changes = receive(KEY, &webhook(body, Some(sign(KEY, body.as_bytes())))).unwrap();
        assert_eq!(
            changes,
            vec![
                SourceChange {
                    tenant: "T1".into(),
                    data_types: vec![
                        DataType::Customer,
                        DataType::Supplier,
                        DataType::Invoice,
                        DataType::Bill
                    ],
                },
                SourceChange {
                    tenant: "T2".into(),
                    data_types: vec![DataType::Invoice, DataType::Bill],
                },
            ]
        );
    }

    #[test]
    fn signed_nonsense_and_no_key_are_refused_with_reasons() {
        let body = r#"{"events":[{"eventCategory":"INVOICE"}]}"#;
        let refused = receive(KEY, &webhook(body, Some(sign(KEY, body.as_bytes()))));
        assert!(
            matches!(&refused, Err(WebhookRefusal::Malformed(m)) if m.contains("tenantId")),
            "{refused:?}"
        );
        assert!(matches!(
            receive("", &webhook(body, Some(sign("", body.as_bytes())))),
            Err(WebhookRefusal::NotReceived(_))
        ));
    }
}
