//! The benchmark source: a local HTTP server speaking Xero's Accounting API
//! for invoices (with line items), paging and `If-Modified-Since`, for M
//! tenants of N/M invoices each, generated on the fly so that it costs no
//! memory per record. It also answers Xero's token and connections
//! endpoints, and can change invoices at a steady rate (freshness).

use std::fmt::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use tributary_schemas::Timestamp;

/// When invoice `i`'s first version was made: `BASE_MS + i * STEP_MS`, a
/// second apart as real records are spread over time (the connector asks
/// again for the last second it saw, so stamps a millisecond apart would
/// make it fetch a thousand records twice at every round).
const BASE_MS: i64 = 1_600_000_000_000;
const STEP_MS: i64 = 1_000;

pub(crate) struct Tenant {
    pub id: String,
    pub invoices: usize,
    changes: Mutex<Changes>,
}

#[derive(Default)]
struct Changes {
    /// In time order: (updated ms, invoice, version).
    log: Vec<(i64, usize, u32)>,
    /// The latest change of each changed invoice.
    latest: std::collections::HashMap<usize, (i64, usize, u32)>,
}

#[derive(Clone)]
pub(crate) struct Source {
    pub tenants: Arc<Vec<Tenant>>,
    pub lines: usize,
    pub url: String,
}

pub(crate) fn tenant_id(t: usize) -> String {
    format!("tenant-{t:03}")
}

pub(crate) fn invoice_id(tenant: &str, i: usize) -> String {
    format!("{tenant}-inv-{i:07}")
}

impl Source {
    /// Serves `records` invoices split over `companies` tenants.
    pub(crate) async fn start(
        records: usize,
        companies: usize,
        lines: usize,
    ) -> anyhow::Result<Source> {
        let tenants = (0..companies)
            .map(|t| Tenant {
                id: tenant_id(t),
                invoices: records / companies + usize::from(t < records % companies),
                changes: Mutex::new(Changes::default()),
            })
            .collect();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let source = Source {
            tenants: Arc::new(tenants),
            lines,
            url,
        };
        let app = axum::Router::new()
            .route("/connect/token", post(token))
            .route("/connections", get(connections))
            .route("/api.xro/2.0/Invoices", get(invoices))
            .route("/api.xro/2.0/{endpoint}", get(empty))
            .with_state(source.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(source)
    }

    pub(crate) fn api_url(&self) -> String {
        format!("{}/api.xro/2.0", self.url)
    }

    /// Changes one invoice now: a new version with a new `UpdatedDateUTC`.
    /// Returns when it happened (ms) and the version.
    pub(crate) fn change(&self, tenant: usize, invoice: usize) -> (i64, u32) {
        let t = &self.tenants[tenant];
        let mut changes = t.changes.lock().unwrap();
        let version = changes.latest.get(&invoice).map_or(1, |c| c.2 + 1);
        // Strictly increasing per tenant, so a change is never hidden by an equal stamp.
        let now = Timestamp::now()
            .millis()
            .max(changes.log.last().map_or(0, |c| c.0 + 1));
        changes.log.push((now, invoice, version));
        changes.latest.insert(invoice, (now, invoice, version));
        (now, version)
    }

    /// Changes `rate` invoices a second, spread over tenants, for `duration`;
    /// calls `on_change(tenant, invoice, version, at_ms)` for each.
    pub(crate) async fn change_steadily(
        &self,
        rate: u32,
        duration: Duration,
        mut on_change: impl FnMut(usize, usize, u32, i64),
    ) -> u64 {
        let tick = Duration::from_millis(10);
        let per_tick = rate as f64 / 100.0;
        let mut owed = 0.0;
        let mut n: u64 = 0;
        let started = tokio::time::Instant::now();
        let mut interval = tokio::time::interval(tick);
        while started.elapsed() < duration {
            interval.tick().await;
            owed += per_tick;
            while owed >= 1.0 {
                owed -= 1.0;
                let tenant = (n as usize) % self.tenants.len();
                let invoice = ((n * 7_919) as usize / self.tenants.len())
                    % self.tenants[tenant].invoices.max(1);
                let (at, version) = self.change(tenant, invoice);
                on_change(tenant, invoice, version, at);
                n += 1;
            }
        }
        n
    }
}

async fn token() -> Response {
    axum::Json(json!({
        "access_token": "bench-access", "refresh_token": "bench-refresh", "expires_in": 86_400
    }))
    .into_response()
}

async fn connections(State(s): State<Source>) -> Response {
    let list: Vec<_> = s
        .tenants
        .iter()
        .map(|t| json!({"tenantId": t.id, "tenantType": "ORGANISATION"}))
        .collect();
    axum::Json(list).into_response()
}

/// Every other endpoint: an empty list under the name Xero uses.
async fn empty(axum::extract::Path(endpoint): axum::extract::Path<String>) -> Response {
    let collection = if endpoint == "Organisation" {
        "Organisations".to_string()
    } else {
        endpoint
    };
    axum::Json(json!({ collection: [] })).into_response()
}

async fn invoices(
    State(s): State<Source>,
    headers: HeaderMap,
    Query(query): Query<std::collections::HashMap<String, String>>,
) -> Response {
    let Some(tenant) = headers
        .get("xero-tenant-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|id| s.tenants.iter().find(|t| t.id == id))
    else {
        return (StatusCode::FORBIDDEN, "unknown tenant").into_response();
    };
    // Every invoice here is a sales invoice (ACCREC): a filter for bills gets none.
    if query.get("where").is_some_and(|w| w.contains("ACCPAY")) {
        return axum::Json(json!({"Invoices": []})).into_response();
    }
    let page: usize = query
        .get("page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(1)
        .max(1);
    let size: usize = query
        .get("pageSize")
        .and_then(|p| p.parse().ok())
        .unwrap_or(100)
        .clamp(1, 1000);
    let since = headers
        .get("if-modified-since")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| Timestamp::parse(v).ok())
        .map(Timestamp::millis);
    // The matching invoices, newest first: (updated ms, invoice, version).
    let selected: Vec<(i64, usize, u32)> = {
        let changes = tenant.changes.lock().unwrap();
        let n = tenant.invoices;
        match since {
            // Unchanged invoices newest first: no list to build.
            None if changes.log.is_empty() => ((page - 1) * size..(page * size).min(n))
                .map(|k| (BASE_MS + (n - 1 - k) as i64 * STEP_MS, n - 1 - k, 0))
                .collect(),
            _ => {
                let since = since.unwrap_or(i64::MIN);
                let mut seen = std::collections::HashSet::new();
                let mut list: Vec<(i64, usize, u32)> = changes
                    .log
                    .iter()
                    .rev()
                    .take_while(|c| c.0 >= since)
                    .filter(|c| seen.insert(c.1))
                    .copied()
                    .collect();
                let first_base = (since - BASE_MS).div_euclid(STEP_MS).clamp(0, n as i64) as usize;
                for i in (first_base..n).rev() {
                    if !seen.contains(&i) {
                        list.push(match changes.latest.get(&i) {
                            Some(c) => *c,
                            None => (BASE_MS + i as i64 * STEP_MS, i, 0),
                        });
                    }
                }
                list.sort_by_key(|c| std::cmp::Reverse(c.0));
                list.into_iter()
                    .skip((page - 1) * size)
                    .take(size)
                    .collect()
            }
        }
    };
    let total = match since {
        None => tenant.invoices,
        Some(_) => selected.len() + (page - 1) * size,
    };
    let mut body = String::with_capacity(selected.len() * (700 + 200 * s.lines) + 256);
    let _ = write!(
        body,
        "{{\"Id\":\"bench\",\"Status\":\"OK\",\"DateTimeUTC\":\"/Date({})/\",\"pagination\":{{\"page\":{page},\"pageSize\":{size},\"pageCount\":{},\"itemCount\":{total}}},\"Invoices\":[",
        Timestamp::now().millis(),
        if since.is_none() {
            total.div_ceil(size)
        } else {
            page + usize::from(selected.len() == size)
        },
    );
    for (k, (updated, i, version)) in selected.iter().enumerate() {
        if k > 0 {
            body.push(',');
        }
        write_invoice(&mut body, &tenant.id, *i, *version, *updated, s.lines);
    }
    body.push_str("]}");
    ([("content-type", "application/json")], body).into_response()
}

/// One invoice in Xero's JSON: `lines` lines of 2 x 12.25 with 15% tax.
fn write_invoice(
    out: &mut String,
    tenant: &str,
    i: usize,
    version: u32,
    updated: i64,
    lines: usize,
) {
    let customer = i % 500;
    let date = BASE_MS - (i as i64 % 365) * 86_400_000;
    let _ = write!(
        out,
        "{{\"Type\":\"ACCREC\",\"InvoiceID\":\"{id}\",\"InvoiceNumber\":\"INV-{i:07}\",\"Reference\":\"v{version}\",\
         \"Contact\":{{\"ContactID\":\"{tenant}-c-{customer:03}\",\"Name\":\"Customer {customer:03} Ltd\"}},\
         \"Date\":\"/Date({date}+0000)/\",\"DueDate\":\"/Date({due}+0000)/\",\"Status\":\"AUTHORISED\",\
         \"LineAmountTypes\":\"Exclusive\",\"LineItems\":[",
        id = invoice_id(tenant, i),
        due = date + 30 * 86_400_000,
    );
    for l in 0..lines {
        if l > 0 {
            out.push(',');
        }
        let _ = write!(
            out,
            "{{\"LineItemID\":\"{tenant}-li-{i}-{l}\",\"Description\":\"Consulting hours, item {l}\",\"Quantity\":2.0,\
             \"UnitAmount\":12.25,\"AccountCode\":\"200\",\"TaxType\":\"OUTPUT2\",\"TaxAmount\":3.68,\"LineAmount\":24.50}}"
        );
    }
    let subtotal = 2450 * lines as i64;
    let tax = 368 * lines as i64;
    let _ = write!(
        out,
        "],\"SubTotal\":{}.{:02},\"TotalTax\":{}.{:02},\"Total\":{}.{:02},\"AmountDue\":{}.{:02},\
         \"CurrencyCode\":\"GBP\",\"UpdatedDateUTC\":\"/Date({updated}+0000)/\"}}",
        subtotal / 100,
        subtotal % 100,
        tax / 100,
        tax % 100,
        (subtotal + tax) / 100,
        (subtotal + tax) % 100,
        (subtotal + tax) / 100,
        (subtotal + tax) % 100,
    );
}
