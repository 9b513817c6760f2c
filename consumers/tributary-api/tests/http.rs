#![allow(clippy::unwrap_used)] // a test stops at its first surprise
use serde_json::Value;
use tributary_api::{ApiKey, ApiState, Scope, hash_key, router};
use tributary_connector_api::admin::{AdminError, DeadLetterAdmin, LetterFilter, RunFilter};
use tributary_projection::Projection;
use tributary_projection::conformance::{batch, customer};
use tributary_schemas::{DataType, SyncTrigger};

struct Api {
    url: String,
    _dir: tempfile::TempDir,
}

/// A store and index holding customers c0..c24 of company "a" (c3 deleted,
/// versions 1000 + i) and one of company "b", served on port 0.
async fn serve() -> Api {
    serve_with(None, None).await
}

async fn serve_with(
    connections: Option<std::sync::Arc<dyn tributary_connector_api::admin::ConnectionAdmin>>,
    dead_letters: Option<std::sync::Arc<dyn DeadLetterAdmin>>,
) -> Api {
    let dir = tempfile::tempdir().unwrap();
    let mut store = tributary_store_sqlite::SqliteStore::open(&dir.path().join("store.db"))
        .await
        .unwrap();
    let (mut index, search) = tributary_index_tantivy::open(&dir.path().join("index")).unwrap();
    let mut events: Vec<_> = (0..25)
        .map(|i| {
            customer(
                "a",
                &format!("c{i:02}"),
                1000 + i,
                i == 3,
                &format!("Customer number{i} Ltd"),
            )
        })
        .collect();
    events.push(customer("b", "c00", 5, false, "Hidden Elsewhere Ltd"));
    let b = batch(0, events);
    store.apply(&b).await.unwrap();
    index.apply(&b).await.unwrap();
    let state = ApiState {
        store: std::sync::Arc::new(store),
        search: std::sync::Arc::new(search),
        metrics: None,
        keys: std::sync::Arc::new(vec![
            ApiKey {
                name: "admin".into(),
                sha256: hash_key(ADMIN_KEY),
                scope: Scope::All,
            },
            ApiKey {
                name: "company b only".into(),
                sha256: hash_key(B_KEY),
                scope: Scope::from_list(&["b".to_string()]),
            },
        ]),
        connections,
        dead_letters,
        webhooks: None,
        pipeline: None,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router(state)).await.unwrap() });
    Api { url, _dir: dir }
}

const ADMIN_KEY: &str = "admin-key-SECRET";
const B_KEY: &str = "b-key-SECRET";

async fn get(url: &str) -> (u16, Value) {
    get_as(url, Some(ADMIN_KEY)).await
}

async fn get_as(url: &str, key: Option<&str>) -> (u16, Value) {
    let mut request = reqwest::Client::new().get(url);
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    let resp = request.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_through_every_live_record_once() {
    let api = serve().await;
    let mut seen = Vec::new();
    let mut url = format!("{}/v1/companies/a/data/customers?limit=10", api.url);
    loop {
        let (status, page) = get(&url).await;
        assert_eq!(status, 200, "{page}");
        for r in page["records"].as_array().unwrap() {
            seen.push(r["id"].as_str().unwrap().to_string());
            assert_eq!(r["company_id"], "a");
        }
        match page["next_cursor"].as_str() {
            Some(c) => {
                url = format!(
                    "{}/v1/companies/a/data/customers?limit=10&cursor={c}",
                    api.url
                )
            }
            None => break,
        }
    }
    let expected: Vec<String> = (0..25)
        .filter(|i| *i != 3)
        .map(|i| format!("c{i:02}"))
        .collect();
    assert_eq!(seen, expected);
    let (_, with_deleted) = get(&format!(
        "{}/v1/companies/a/data/customers?limit=1000&include_deleted=true",
        api.url
    ))
    .await;
    assert_eq!(with_deleted["records"].as_array().unwrap().len(), 25);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_by_modified_since() {
    let api = serve().await;
    // Version 1020 is 1970-01-01T00:00:01.020Z.
    let (status, page) = get(&format!(
        "{}/v1/companies/a/data/customers?modified_since=1970-01-01T00:00:01.020Z",
        api.url
    ))
    .await;
    assert_eq!(status, 200);
    let ids: Vec<&str> = page["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["c20", "c21", "c22", "c23", "c24"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gets_one_record_and_searches_within_a_company() {
    let api = serve().await;
    let (status, company) = get(&format!("{}/v1/companies/a/status", api.url)).await;
    assert_eq!(status, 200);
    let customers = &company["data_types"][0];
    assert_eq!(customers["data_type"], "customers");
    assert_eq!(
        (customers["records"].as_i64(), customers["deleted"].as_i64()),
        (Some(24), Some(1))
    );
    assert_eq!(customers["indexed"], 24, "the index agrees with the store");
    let (status, record) = get(&format!("{}/v1/companies/a/data/customers/c07", api.url)).await;
    assert_eq!(status, 200);
    assert_eq!(record["data"]["name"], "Customer number7 Ltd");
    assert_eq!(record["source_modified_at"], "1970-01-01T00:00:01.007Z");
    let (_, hits) = get(&format!("{}/v1/search?q=number7", api.url)).await;
    assert_eq!(hits["hits"][0]["id"], "c07");
    let (_, hits) = get(&format!("{}/v1/search?q=number3", api.url)).await;
    assert_eq!(
        hits["hits"].as_array().unwrap().len(),
        0,
        "deleted records are not found"
    );
    let (_, hits) = get(&format!(
        "{}/v1/search?q=Hidden+Elsewhere&company=a",
        api.url
    ))
    .await;
    assert_eq!(
        hits["hits"].as_array().unwrap().len(),
        0,
        "another company's records stay out"
    );
    let (_, hits) = get(&format!("{}/v1/search?q=Hidden+Elsewhere", api.url)).await;
    assert_eq!(hits["hits"][0]["company_id"], "b");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_clear_json_errors() {
    let api = serve().await;
    let u = &api.url;
    let cases = [
        (
            format!("{u}/v1/companies/a/data/widgets"),
            400,
            "unknown data type",
        ),
        (
            format!("{u}/v1/companies/a/data/customers?limit=0"),
            400,
            "limit",
        ),
        (
            format!("{u}/v1/companies/a/data/customers?limit=abc"),
            400,
            "limit",
        ),
        (
            format!("{u}/v1/companies/a/data/customers?modified_since=yesterday"),
            400,
            "modified_since",
        ),
        (
            format!("{u}/v1/companies/a/data/customers?cursor=garbage"),
            400,
            "cursor",
        ),
        (
            format!("{u}/v1/companies/a/data/customers?colour=red"),
            400,
            "unknown query parameter",
        ),
        (
            format!("{u}/v1/companies/a/data/customers/nope"),
            404,
            "nope",
        ),
        (format!("{u}/v1/companies/zzz/status"), 404, "zzz"),
        (format!("{u}/v1/search"), 400, "q is required"),
        (format!("{u}/v1/search?q=x&limit=1000"), 400, "limit"),
        (format!("{u}/v2/nothing"), 404, "no such route"),
    ];
    for (url, status, words) in cases {
        let (s, body) = get(&url).await;
        assert_eq!(s, status, "{url}: {body}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(words),
            "{url}: {message:?} should mention {words:?}"
        );
    }
    let resp = reqwest::Client::new()
        .post(format!("{u}/v1/sync"))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 503, "no worker in this process");
    let (status, health) = get(&format!("{u}/health")).await;
    assert_eq!((status, health["status"].as_str()), (200, Some("ok")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_required_and_limited_to_their_companies() {
    let api = serve().await;
    let u = &api.url;
    // No key, a wrong key: refused everywhere under /v1.
    for key in [None, Some("wrong")] {
        for path in ["/v1/companies", "/v1/companies/a/status", "/v1/search?q=x"] {
            let (status, body) = get_as(&format!("{u}{path}"), key).await;
            assert_eq!(status, 401, "{path} with {key:?}: {body}");
        }
    }
    // Health and metrics stay open for probes and Prometheus.
    assert_eq!(get_as(&format!("{u}/health"), None).await.0, 200);

    // The key for company b sees b, and never a: not its records, status,
    // record by id or search hits, as if a did not exist.
    let (status, companies) = get_as(&format!("{u}/v1/companies"), Some(B_KEY)).await;
    assert_eq!(status, 200);
    assert!(
        companies["companies"].as_array().unwrap().is_empty()
            || companies.to_string().contains("\"b\"")
    );
    assert!(!companies.to_string().contains("\"a\""), "{companies}");
    for path in [
        "/v1/companies/a/data/customers",
        "/v1/companies/a/data/customers/c07",
        "/v1/companies/a/status",
    ] {
        let (status, body) = get_as(&format!("{u}{path}"), Some(B_KEY)).await;
        assert_eq!(status, 404, "{path}: {body}");
        assert!(!body.to_string().contains("number7"), "{body}");
    }
    let (status, own) = get_as(&format!("{u}/v1/companies/b/data/customers"), Some(B_KEY)).await;
    assert_eq!(status, 200);
    assert_eq!(own["records"].as_array().unwrap().len(), 1);
    for query in ["q=number7", "q=number7&company=a", "q=Customer"] {
        let (status, hits) = get_as(&format!("{u}/v1/search?{query}"), Some(B_KEY)).await;
        assert_eq!(status, 200);
        assert!(
            hits["hits"]
                .as_array()
                .unwrap()
                .iter()
                .all(|h| h["company_id"] == "b"),
            "{query}: {hits}"
        );
    }
    let (_, hits) = get_as(&format!("{u}/v1/search?q=Hidden"), Some(B_KEY)).await;
    assert_eq!(hits["hits"].as_array().unwrap().len(), 1, "{hits}");
    // The admin key sees a's records in the same search.
    let (_, hits) = get_as(&format!("{u}/v1/search?q=number7"), Some(ADMIN_KEY)).await;
    assert_eq!(hits["hits"].as_array().unwrap().len(), 1, "{hits}");
    // Only an all-companies key may start a sync round.
    let resp = reqwest::Client::new()
        .post(format!("{u}/v1/sync"))
        .bearer_auth(B_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 403);
}

/// Sync requests and history as the API passes them to the workers' admin:
/// remembers what it was asked, answers with runs of its own.
#[derive(Default)]
struct Runs {
    asked: std::sync::Mutex<Vec<String>>,
}

fn run(id: &str, company: &str, status: &str) -> Value {
    serde_json::json!({"id": id, "company_id": company, "status": status})
}

#[async_trait::async_trait]
impl tributary_connector_api::admin::ConnectionAdmin for Runs {
    async fn list(&self) -> Result<Vec<Value>, AdminError> {
        Ok(vec![])
    }
    async fn add(&self, _: &str, _: &str, _: Value) -> Result<(Value, Option<String>), AdminError> {
        Err(AdminError::Failed("not here".into()))
    }
    async fn check(&self, _: &str) -> Result<String, AdminError> {
        Err(AdminError::Failed("not here".into()))
    }
    async fn remove(&self, _: &str) -> Result<(), AdminError> {
        Err(AdminError::Failed("not here".into()))
    }
    async fn source_webhook(
        &self,
        _: &str,
        _: &tributary_connector_api::Webhook,
    ) -> Result<Vec<Value>, AdminError> {
        Err(AdminError::Failed("not here".into()))
    }
    async fn request_sync(&self) -> Result<(), AdminError> {
        Ok(())
    }
    async fn sync_settings(&self, _: &str) -> Result<Value, AdminError> {
        Err(AdminError::Failed("not here".into()))
    }
    async fn set_sync_settings(&self, _: &str, _: Value) -> Result<Value, AdminError> {
        Err(AdminError::Failed("not here".into()))
    }
    async fn request_company_sync(
        &self,
        company_id: &str,
        data_types: &[DataType],
        trigger: SyncTrigger,
    ) -> Result<Vec<Value>, AdminError> {
        let types: Vec<&str> = data_types.iter().map(|t| t.as_str()).collect();
        self.asked
            .lock()
            .unwrap()
            .push(format!("{company_id} {trigger} [{}]", types.join(",")));
        if data_types.contains(&DataType::Bill) {
            return Err(AdminError::Conflict {
                message: "a bills run is running already".into(),
                open: run("run-open", company_id, "fetching"),
            });
        }
        Ok(vec![run("run-new", company_id, "queued")])
    }
    async fn request_refetch(
        &self,
        company_id: &str,
        data_type: DataType,
        record_id: &str,
    ) -> Result<Vec<Value>, AdminError> {
        self.asked
            .lock()
            .unwrap()
            .push(format!("{company_id} refetch {data_type} {record_id}"));
        Ok(vec![run("run-refetch", company_id, "queued")])
    }
    async fn runs(&self, company_id: &str, filter: &RunFilter) -> Result<Vec<Value>, AdminError> {
        self.asked.lock().unwrap().push(format!(
            "{company_id} list {:?} {:?} {:?} {:?} {}",
            filter.data_type, filter.status, filter.trigger, filter.after, filter.limit
        ));
        Ok((0..filter.limit.min(3))
            .map(|i| run(&format!("run-{i}"), company_id, "succeeded"))
            .collect())
    }
    async fn run(&self, company_id: &str, run_id: &str) -> Result<Value, AdminError> {
        if run_id == "run-1" {
            Ok(run(run_id, company_id, "succeeded"))
        } else {
            Err(AdminError::NotFound(format!("no run {run_id:?}")))
        }
    }
    async fn manifests(
        &self,
        _: &str,
    ) -> Result<Vec<tributary_schemas::ManifestEvent>, AdminError> {
        Ok(vec![])
    }
    async fn open_runs(&self, company_id: &str) -> Result<Vec<Value>, AdminError> {
        Ok(vec![run("run-open", company_id, "fetching")])
    }
    async fn complete_authorization(&self, _: &str, _: &str, _: &str) -> Result<Value, AdminError> {
        Err(AdminError::Failed("not here".into()))
    }
}

async fn post_as(url: &str, key: &str, body: &str) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(url)
        .bearer_auth(key)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syncs_are_asked_for_and_listed_per_company() {
    let runs = std::sync::Arc::new(Runs::default());
    let api = serve_with(Some(runs.clone()), None).await;
    let u = &api.url;
    let syncs = |company: &str| format!("{u}/v1/companies/{company}/syncs");

    // Queued: 202 with the runs; an empty body asks for every data type.
    let (status, body) = post_as(
        &syncs("b"),
        B_KEY,
        r#"{"data_types": ["invoices"], "resync": true}"#,
    )
    .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["runs"][0]["id"], "run-new");
    assert_eq!(post_as(&syncs("b"), B_KEY, "").await.0, 202);
    // Already running: 409 with the open run.
    let (status, body) = post_as(&syncs("b"), B_KEY, r#"{"data_types": ["bills"]}"#).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "conflict");
    assert_eq!(body["run"]["id"], "run-open");
    // A key for company b cannot ask for a: as if a did not exist.
    let (status, _) = post_as(&syncs("a"), B_KEY, "{}").await;
    assert_eq!(status, 404);
    assert_eq!(get_as(&syncs("a"), Some(B_KEY)).await.0, 404);
    // Bad requests name what is wrong.
    let (status, body) = post_as(&syncs("b"), B_KEY, r#"{"data_types": ["invoice"]}"#).await;
    assert_eq!(status, 400);
    assert!(body.to_string().contains("unknown data type"), "{body}");
    let (status, body) = post_as(&syncs("b"), B_KEY, r#"{"full": true}"#).await;
    assert_eq!(status, 400);
    assert!(body.to_string().contains("unknown field"), "{body}");
    // One record again, by its source id.
    let refetch = format!("{u}/v1/companies/b/data/invoices/INV-9/refetch");
    let (status, body) = post_as(&refetch, B_KEY, "").await;
    assert_eq!(
        (status, &body["runs"][0]["id"]),
        (202, &Value::from("run-refetch"))
    );
    let other = format!("{u}/v1/companies/a/data/invoices/INV-9/refetch");
    assert_eq!(post_as(&other, B_KEY, "").await.0, 404);
    assert_eq!(
        *runs.asked.lock().unwrap(),
        [
            "b resync [invoices]",
            "b request []",
            "b request [bills]",
            "b refetch invoices INV-9"
        ],
        "refused requests never reach the workers"
    );

    // The history, filtered and paged.
    runs.asked.lock().unwrap().clear();
    let (status, body) = get_as(
        &format!(
            "{}?data_type=invoices&status=failed&trigger=resync&limit=3&after=run-9",
            syncs("b")
        ),
        Some(B_KEY),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["runs"].as_array().unwrap().len(), 3);
    assert_eq!(
        body["next"], "run-2",
        "a full page says where the next starts"
    );
    let (_, body) = get_as(&format!("{}?limit=5", syncs("b")), Some(B_KEY)).await;
    assert_eq!(body["next"], Value::Null, "a short page is the last");
    assert_eq!(
        *runs.asked.lock().unwrap(),
        [
            "b list Some(Invoice) Some(Failed) Some(Resync) Some(\"run-9\") 3",
            "b list None None None None 5"
        ]
    );
    for bad in [
        "status=lost",
        "trigger=cron",
        "limit=0",
        "data_type=x",
        "page=2",
    ] {
        let (status, body) = get_as(&format!("{}?{bad}", syncs("b")), Some(B_KEY)).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
    let (status, body) = get_as(&format!("{}/run-1", syncs("b")), Some(B_KEY)).await;
    assert_eq!((status, &body["id"]), (200, &Value::from("run-1")));
    assert_eq!(
        get_as(&format!("{}/run-7", syncs("b")), Some(B_KEY))
            .await
            .0,
        404
    );
    // The status says what runs now.
    let (status, body) = get_as(&format!("{u}/v1/companies/b/status"), Some(B_KEY)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["running"][0]["id"], "run-open");
}

/// Dead letters as the API passes them on: letter `0@1` is company a's,
/// `0@2` company b's and still failing, `0@3` b's and replayable.
#[derive(Default)]
struct Letters {
    asked: std::sync::Mutex<Vec<String>>,
}

fn letter(id: &str) -> Value {
    let company = if id == "0@1" { "a" } else { "b" };
    serde_json::json!({"id": id, "company_id": company, "stage": "map"})
}

#[async_trait::async_trait]
impl DeadLetterAdmin for Letters {
    async fn letters(&self, filter: &LetterFilter) -> Result<Vec<Value>, AdminError> {
        self.asked.lock().unwrap().push(format!(
            "list {:?} {:?} {:?} {:?} {}",
            filter.companies, filter.stage, filter.data_type, filter.after, filter.limit
        ));
        Ok(["0@1", "0@2", "0@3"]
            .iter()
            .map(|id| letter(id))
            .filter(|l| {
                filter
                    .companies
                    .as_ref()
                    .is_none_or(|c| c.iter().any(|c| l["company_id"] == c.as_str()))
            })
            .take(filter.limit as usize)
            .collect())
    }
    async fn letter(&self, id: &str) -> Result<Value, AdminError> {
        match id {
            "0@1" | "0@2" | "0@3" => Ok(letter(id)),
            _ => Err(AdminError::NotFound(format!("no dead letter {id:?}"))),
        }
    }
    async fn payload(&self, id: &str) -> Result<Vec<u8>, AdminError> {
        self.letter(id)
            .await
            .map(|_| format!("{{\"letter\": \"{id}\"}}").into_bytes())
    }
    async fn replay(&self, id: &str) -> Result<Value, AdminError> {
        self.asked.lock().unwrap().push(format!("replay {id}"));
        if id == "0@2" {
            return Err(AdminError::BadRequest("still cannot be mapped".into()));
        }
        Ok(serde_json::json!({"id": id, "outcome": "published"}))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_listed_and_replayed_within_a_keys_companies() {
    let letters = std::sync::Arc::new(Letters::default());
    let api = serve_with(None, Some(letters.clone())).await;
    let u = &api.url;
    let (status, body) = get_as(&format!("{u}/v1/dead-letters"), Some(B_KEY)).await;
    assert_eq!(status, 200, "{body}");
    let ids: Vec<&str> = body["dead_letters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["0@2", "0@3"], "company b's only");
    let (_, body) = get_as(
        &format!("{u}/v1/dead-letters?stage=map&data_type=invoices&limit=2&after=0@0"),
        Some(ADMIN_KEY),
    )
    .await;
    assert_eq!(
        body["next"], "0@2",
        "a full page says where the next starts"
    );
    assert_eq!(
        get_as(&format!("{u}/v1/dead-letters?company=a"), Some(B_KEY))
            .await
            .0,
        404
    );
    for bad in ["stage=mapping", "limit=0", "data_type=x", "page=1"] {
        let (status, body) = get_as(&format!("{u}/v1/dead-letters?{bad}"), Some(ADMIN_KEY)).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
    // One letter with its payload: another company's is as if it did not exist.
    let (status, body) = get_as(&format!("{u}/v1/dead-letters/0@2"), Some(B_KEY)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["letter"]["id"], "0@2");
    assert_eq!(body["payload_text"], "{\"letter\": \"0@2\"}");
    assert_eq!(body["payload_base64"], "eyJsZXR0ZXIiOiAiMEAyIn0=");
    assert_eq!(
        get_as(&format!("{u}/v1/dead-letters/0@1"), Some(B_KEY))
            .await
            .0,
        404
    );
    assert_eq!(
        get_as(&format!("{u}/v1/dead-letters/0@9"), Some(ADMIN_KEY))
            .await
            .0,
        404
    );
    // Replays: another company's letter is as if it did not exist.
    let replay = |id: &str| format!("{u}/v1/dead-letters/{id}/replay");
    assert_eq!(post_as(&replay("0@1"), B_KEY, "").await.0, 404);
    assert_eq!(post_as(&replay("0@9"), ADMIN_KEY, "").await.0, 404);
    let (status, body) = post_as(&replay("0@2"), B_KEY, "").await;
    assert_eq!(status, 400);
    assert!(
        body.to_string().contains("still cannot be mapped"),
        "{body}"
    );
    let (status, body) = post_as(&replay("0@3"), B_KEY, "").await;
    assert_eq!((status, &body["outcome"]), (200, &Value::from("published")));
    assert_eq!(
        *letters.asked.lock().unwrap(),
        [
            "list Some([\"b\"]) None None None 100",
            "list None Some(Map) Some(Invoice) Some(\"0@0\") 2",
            "replay 0@2",
            "replay 0@3"
        ]
    );
}

/// Every operation of the OpenAPI document is served: a protected one asks
/// for a key (the router's fallback would answer 404), a public one answers
/// anything but the fallback's 404 or a 405. And the router has no route
/// but those `routes!` registers from the handlers' annotations, so it
/// serves nothing the document lacks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_router_serves_exactly_the_documented_routes() {
    let api = serve().await;
    let doc = serde_json::to_value(tributary_api::openapi()).unwrap();
    let client = reqwest::Client::new();
    let mut operations = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        // Every `{param}` a plain value.
        let concrete: String = path
            .split('/')
            .map(|part| if part.starts_with('{') { "x" } else { part })
            .collect::<Vec<_>>()
            .join("/");
        for (method, operation) in item.as_object().unwrap() {
            let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let resp = client
                .request(method.clone(), format!("{}{concrete}", api.url))
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16();
            let body: Value = resp.json().await.unwrap_or(Value::Null);
            if operation.get("security").is_some() {
                assert_eq!(status, 401, "{method} {path}: {body}");
            } else {
                let fallback = status == 404
                    && body["error"]["message"]
                        .as_str()
                        .is_some_and(|m| m.starts_with("no such route"));
                assert!(
                    !fallback && status != 405,
                    "{method} {path}: {status} {body}"
                );
            }
            operations += 1;
        }
    }
    assert!(operations >= 30, "only {operations} operations documented");
    // Routes only come from `routes!` (method and path from the handler's
    // `#[utoipa::path]`): a plain `.route(` would serve an undocumented one.
    let source = include_str!("../src/lib.rs");
    for plain in [".route(", ".route_service(", ".nest(", ".nest_service("] {
        assert!(
            !source.contains(plain),
            "src/lib.rs registers a route with {plain}: use routes! so the document has it"
        );
    }
}
