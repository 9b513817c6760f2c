//! Freshness: at a steady rate of changes at the source, the delay from a
//! record changing to the API returning its new version.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tributary_schemas::Timestamp;

use crate::e2e::{company, get};
use crate::source::Source;

/// Changes not yet seen in the API: (company, invoice, version) to when.
type Pending = Arc<Mutex<HashMap<(usize, usize, u32), i64>>>;

pub(crate) struct Freshness {
    pub changes: u64,
    pub seen: usize,
    /// Delays in ms, sorted.
    pub delays: Vec<i64>,
}

impl Freshness {
    pub(crate) fn percentile(&self, p: f64) -> i64 {
        if self.delays.is_empty() {
            return 0;
        }
        let rank = ((p / 100.0) * (self.delays.len() - 1) as f64).round() as usize;
        self.delays[rank]
    }
}

/// Changes `rate` invoices a second for `duration` while the pipeline at
/// `api` runs, and measures when each new version shows in the API.
pub(crate) async fn measure(
    source: &Source,
    api: &str,
    rate: u32,
    duration: Duration,
) -> Freshness {
    // (tenant, invoice, version) -> when it changed at the source.
    let pending: Pending = Arc::default();
    let delays: Arc<Mutex<Vec<i64>>> = Arc::default();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let checker = {
        let (pending, delays, api, tenants) = (
            Arc::clone(&pending),
            Arc::clone(&delays),
            api.to_string(),
            source.tenants.len(),
        );
        tokio::spawn(async move {
            loop {
                let stopping = *stop_rx.borrow();
                for t in 0..tenants {
                    let oldest = pending
                        .lock()
                        .unwrap()
                        .iter()
                        .filter(|((tt, _, _), _)| *tt == t)
                        .map(|(_, at)| *at)
                        .min();
                    let Some(oldest) = oldest else { continue };
                    // Every record changed since the oldest pending change,
                    // page after page.
                    let mut records = Vec::new();
                    let mut cursor: Option<String> = None;
                    loop {
                        let mut path = format!(
                            "/v1/companies/{}/data/invoices?limit=1000&modified_since={}",
                            company(t),
                            Timestamp(oldest - 1)
                        );
                        if let Some(c) = &cursor {
                            path.push_str(&format!("&cursor={c}"));
                        }
                        let Some(page) = get(&api, &path).await else {
                            break;
                        };
                        records.extend(page["records"].as_array().cloned().unwrap_or_default());
                        match page["next_cursor"].as_str() {
                            Some(c) => cursor = Some(c.to_string()),
                            None => break,
                        }
                    }
                    let now = Timestamp::now().millis();
                    for r in &records {
                        let id = r["id"].as_str().unwrap_or_default();
                        let Some(invoice) =
                            id.rsplit('-').next().and_then(|n| n.parse::<usize>().ok())
                        else {
                            continue;
                        };
                        let Some(version) = r["data"]["reference"]
                            .as_str()
                            .and_then(|v| v.strip_prefix('v'))
                            .and_then(|v| v.parse::<u32>().ok())
                        else {
                            continue;
                        };
                        let mut pending = pending.lock().unwrap();
                        // Seeing version v also delivers every older pending version.
                        let done: Vec<(usize, usize, u32)> = pending
                            .keys()
                            .filter(|(tt, i, v)| *tt == t && *i == invoice && *v <= version)
                            .copied()
                            .collect();
                        for key in done {
                            if let Some(at) = pending.remove(&key) {
                                delays.lock().unwrap().push(now - at);
                            }
                        }
                    }
                }
                if stopping && pending.lock().unwrap().is_empty() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let changes = {
        let pending = Arc::clone(&pending);
        source
            .change_steadily(rate, duration, move |t, i, v, at| {
                pending.lock().unwrap().insert((t, i, v), at);
            })
            .await
    };
    let _ = stop_tx.send(true);
    // Whatever is not seen 30 s after the last change counts as not seen.
    let _ = tokio::time::timeout(Duration::from_secs(30), checker).await;
    let mut delays = delays.lock().unwrap().clone();
    delays.sort_unstable();
    Freshness {
        changes,
        seen: delays.len(),
        delays,
    }
}
