//! The OpenAPI document's frame: what the handlers' annotations do not
//! say each time (the API's name, its tags, the key every protected route
//! takes and the errors every route may answer).

use tributary_connector_api::webhook_events::{EVENT_TYPES, WebhookEvent};
use utoipa::openapi::path::{Operation, OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::tag::TagBuilder;
use utoipa::openapi::{
    ComponentsBuilder, ContentBuilder, HttpMethod, InfoBuilder, OpenApi, OpenApiBuilder, PathItem,
    Paths, Ref, Required, ResponseBuilder, SecurityRequirement,
};

/// Tags in the order a reader meets them, with what each holds.
const TAGS: [(&str, &str); 6] = [
    (
        "data",
        "The store and the search index: companies, records, status",
    ),
    (
        "syncs",
        "Asking for syncs, resyncs and refetches; the sync history",
    ),
    (
        "connections",
        "Connections to sources, their authorization, checks and sync settings",
    ),
    (
        "dead letters",
        "What could not be mapped, decoded or stored, and its replay",
    ),
    (
        "webhooks",
        "Outbound webhook subscriptions and their deliveries",
    ),
    ("operations", "Health, metrics and this document"),
];

/// Routes that work on the workers' state (not only the store): where it
/// is not visible, they answer 503.
const NEED_STATE: [&str; 4] = ["syncs", "connections", "dead letters", "webhooks"];

/// The whole document from the protected and the public routes' parts.
pub(crate) fn document(mut protected: OpenApi, public: OpenApi) -> OpenApi {
    for item in protected.paths.paths.values_mut() {
        for operation in operations(item) {
            operation.security = Some(vec![
                SecurityRequirement::new("bearer", Vec::<String>::new()),
                SecurityRequirement::new("api_key", Vec::<String>::new()),
            ]);
            add_error(operation, "401", "No API key, or an unknown one");
            add_error(
                operation,
                "500",
                "The store, the index or the state store failed (the message says how)",
            );
            let needs_state = operation
                .tags
                .iter()
                .flatten()
                .any(|t| NEED_STATE.contains(&t.as_str()));
            if needs_state {
                add_error(
                    operation,
                    "503",
                    "No worker runs in this process and it shares no state store with workers elsewhere",
                );
            }
        }
    }
    let mut doc = OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("Tributary API")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "Small-business financial data (accounting, banking, commerce) in one \
                     common data model: the store, search, syncs, connections, dead letters \
                     and webhooks of a Tributary pipeline. Errors answer \
                     `{\"error\": {\"code\", \"message\"}}`. A key limited to some companies \
                     sees the others as if they did not exist.",
                ))
                .build(),
        )
        .tags(Some(TAGS.iter().map(|(name, about)| {
            TagBuilder::new()
                .name(*name)
                .description(Some(*about))
                .build()
        })))
        .components(Some(
            ComponentsBuilder::new()
                .security_scheme(
                    "bearer",
                    SecurityScheme::Http(
                        HttpBuilder::new()
                            .scheme(HttpAuthScheme::Bearer)
                            .description(Some("An API key: `Authorization: Bearer <key>`"))
                            .build(),
                    ),
                )
                .security_scheme(
                    "api_key",
                    SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                        "X-Api-Key",
                        "The same key in its own header",
                    ))),
                )
                .schema_from::<WebhookEvent>()
                .build(),
        ))
        .webhooks(Some(webhooks()))
        .build();
    doc.merge(protected);
    doc.merge(public);
    doc
}

/// The outbound webhooks (OpenAPI 3.1 `webhooks`): one per event type, as
/// the dispatcher sends it to a subscriber's URL.
fn webhooks() -> Paths {
    let header = |name: &str, about: &str| {
        ParameterBuilder::new()
            .name(name)
            .parameter_in(ParameterIn::Header)
            .required(Required::True)
            .description(Some(about))
            .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
            .build()
    };
    let mut paths = Paths::new();
    for event in EVENT_TYPES {
        let operation = OperationBuilder::new()
            .tag("webhooks")
            .operation_id(Some(event.name))
            .summary(Some(event.when))
            .description(Some(format!(
                "`POST` to the subscription's URL, signed the Standard Webhooks way. `data`: {}",
                event.data
            )))
            .parameter(header(
                "webhook-id",
                "The message id: the same on every retry and replay (deduplicate by it)",
            ))
            .parameter(header("webhook-timestamp", "The attempt's Unix time, seconds"))
            .parameter(header(
                "webhook-signature",
                "`v1,` and the base64 HMAC-SHA256 of `{id}.{timestamp}.{body}` under the subscription's secret",
            ))
            .request_body(Some(
                RequestBodyBuilder::new()
                    .required(Some(Required::True))
                    .content(
                        "application/json",
                        ContentBuilder::new()
                            .schema(Some(Ref::from_schema_name("WebhookEvent")))
                            .build(),
                    )
                    .build(),
            ))
            .response(
                "2XX",
                ResponseBuilder::new().description("Taken: not sent again"),
            )
            .response(
                "default",
                ResponseBuilder::new().description(
                    "Anything else, or no answer within `webhooks.timeout_secs`: retried by `webhooks.retry_schedule_secs`",
                ),
            );
        paths.paths.insert(
            event.name.to_string(),
            PathItem::new(HttpMethod::Post, operation),
        );
    }
    paths
}

fn operations(item: &mut utoipa::openapi::PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        item.get.as_mut(),
        item.put.as_mut(),
        item.post.as_mut(),
        item.delete.as_mut(),
        item.patch.as_mut(),
    ]
    .into_iter()
    .flatten()
}

/// Adds an error answer with the error body, unless the route says its own.
fn add_error(operation: &mut Operation, status: &str, description: &str) {
    if operation.responses.responses.contains_key(status) {
        return;
    }
    let response = ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build(),
        )
        .build();
    operation
        .responses
        .responses
        .insert(status.to_string(), response.into());
}
