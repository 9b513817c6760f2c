//! The pipeline's recent history for the console's charts: records
//! published and projected per second, consumer lag per projection, and
//! freshness (p50 and p99 from a change at the source to its commit in a
//! sink), over the last hour.
//!
//! Two sources: a configured Prometheus (`api.prometheus_url`), which
//! scrapes every role wherever it runs; or this process's own metrics,
//! sampled every [`STEP`] and kept for an hour, which see every role only
//! when this process runs them all.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use utoipa::ToSchema;

/// Between two samples (and two points of a Prometheus answer).
pub const STEP: Duration = Duration::from_secs(15);
/// How far back the history goes.
pub const WINDOW: Duration = Duration::from_secs(3600);

const PUBLISHED: &str = "tributary_producer_events_published_total";
const PROJECTED: &str = "tributary_projector_records_projected_total";
const LAG: &str = "tributary_projector_consumer_lag_messages";
const FRESHNESS_BUCKETS: &str = "tributary_freshness_seconds_bucket";

/// `GET /v1/pipeline/metrics`.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct PipelineMetrics {
    /// `prometheus` (every role, from `api.prometheus_url`) or `process`
    /// (this process's own metrics).
    pub source: String,
    pub step_secs: u64,
    pub series: Vec<Series>,
}

/// One line of a chart.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Series {
    /// `published`, `projected`, `lag` or `freshness`.
    pub metric: String,
    /// Which line of it: a projection, `p50`, `p99`, or `all`.
    pub label: String,
    /// `records/s`, `messages` or `seconds`.
    pub unit: String,
    pub points: Vec<Point>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, ToSchema)]
pub struct Point {
    /// Milliseconds since the Unix epoch.
    pub t: i64,
    pub v: f64,
}

/// Where the history comes from.
#[async_trait::async_trait]
pub trait PipelineHistory: Send + Sync {
    async fn history(&self) -> Result<PipelineMetrics, String>;
}

/// One metric line of the Prometheus text format.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// Parses the Prometheus text format (comments and malformed lines are
/// skipped).
pub fn parse(text: &str) -> Vec<Line> {
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<Line> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    // The value follows the labels' closing brace, or the name's space.
    let end = if line.contains('{') {
        line.rfind('}')? + 1
    } else {
        line.find(' ')?
    };
    let (head, value) = (&line[..end], line[end..].trim());
    let value: f64 = value.split_whitespace().next()?.parse().ok()?;
    let (name, labels) = match head.find('{') {
        Some(open) => (&head[..open], labels(&head[open + 1..head.len() - 1])),
        None => (head, BTreeMap::new()),
    };
    Some(Line {
        name: name.to_string(),
        labels,
        value,
    })
}

/// `a="x",b="y\"z"` into a map.
fn labels(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut rest = text;
    while let Some(eq) = rest.find("=\"") {
        let key = rest[..eq].trim_start_matches(',').trim().to_string();
        let mut value = String::new();
        let mut chars = rest[eq + 2..].char_indices();
        let mut end = rest.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, escaped)) = chars.next() {
                        value.push(if escaped == 'n' { '\n' } else { escaped });
                    }
                }
                '"' => {
                    end = eq + 2 + i + 1;
                    break;
                }
                c => value.push(c),
            }
        }
        out.insert(key, value);
        rest = &rest[end.min(rest.len())..];
    }
    out
}

/// What one sample keeps of this process's metrics.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sample {
    pub at_ms: i64,
    pub published: f64,
    pub projected: BTreeMap<String, f64>,
    pub lag: BTreeMap<String, f64>,
    /// Cumulative count per upper bound (`le`), every projection together.
    pub freshness: Vec<(f64, f64)>,
}

impl Sample {
    pub fn of(lines: &[Line], at_ms: i64) -> Sample {
        let mut sample = Sample {
            at_ms,
            ..Sample::default()
        };
        let mut buckets: BTreeMap<u64, (f64, f64)> = BTreeMap::new();
        for line in lines {
            let projection = || {
                line.labels
                    .get("projection")
                    .cloned()
                    .unwrap_or_else(|| "all".into())
            };
            match line.name.as_str() {
                PUBLISHED => sample.published += line.value,
                PROJECTED => *sample.projected.entry(projection()).or_default() += line.value,
                LAG => *sample.lag.entry(projection()).or_default() += line.value,
                FRESHNESS_BUCKETS => {
                    let le = match line.labels.get("le").map(String::as_str) {
                        Some("+Inf") => f64::INFINITY,
                        Some(le) => match le.parse() {
                            Ok(le) => le,
                            Err(_) => continue,
                        },
                        None => continue,
                    };
                    buckets.entry(le.to_bits()).or_insert((le, 0.0)).1 += line.value;
                }
                _ => {}
            }
        }
        sample.freshness = buckets.into_values().collect();
        sample
            .freshness
            .sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap_or(std::cmp::Ordering::Equal));
        sample
    }
}

/// The quantile `q` of a histogram's counts in one interval (cumulative
/// per upper bound, sorted), interpolated within its bucket as
/// Prometheus's `histogram_quantile` does; `None` with nothing counted.
pub fn quantile(q: f64, buckets: &[(f64, f64)]) -> Option<f64> {
    let total = buckets.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let mut lower = (0.0, 0.0);
    for &(le, count) in buckets {
        if count >= rank {
            if le.is_infinite() {
                // Above the highest finite bound: that bound is all we know.
                return Some(lower.0);
            }
            let within = count - lower.1;
            let fraction = if within > 0.0 {
                (rank - lower.1) / within
            } else {
                1.0
            };
            return Some(lower.0 + (le - lower.0) * fraction);
        }
        lower = (le, count);
    }
    Some(lower.0)
}

/// The series of samples taken one after the other: rates between
/// consecutive samples, gauges as they were, freshness quantiles of each
/// interval's new counts. A counter that went down (a restart) gives no
/// point for that interval.
pub fn series(samples: &[Sample]) -> Vec<Series> {
    let mut published = Vec::new();
    let mut projected: BTreeMap<String, Vec<Point>> = BTreeMap::new();
    let mut lag: BTreeMap<String, Vec<Point>> = BTreeMap::new();
    let mut p50 = Vec::new();
    let mut p99 = Vec::new();
    for sample in samples {
        for (projection, value) in &sample.lag {
            lag.entry(projection.clone()).or_default().push(Point {
                t: sample.at_ms,
                v: *value,
            });
        }
    }
    for pair in samples.windows(2) {
        let (before, after) = (&pair[0], &pair[1]);
        let secs = (after.at_ms - before.at_ms) as f64 / 1000.0;
        if secs <= 0.0 {
            continue;
        }
        let t = after.at_ms;
        let rate = |a: f64, b: f64| (b >= a).then(|| (b - a) / secs);
        if let Some(v) = rate(before.published, after.published) {
            published.push(Point { t, v });
        }
        for (projection, value) in &after.projected {
            let was = before.projected.get(projection).copied().unwrap_or(0.0);
            if let Some(v) = rate(was, *value) {
                projected
                    .entry(projection.clone())
                    .or_default()
                    .push(Point { t, v });
            }
        }
        let new: Vec<(f64, f64)> = after
            .freshness
            .iter()
            .map(|&(le, count)| {
                let was = before
                    .freshness
                    .iter()
                    .find(|(l, _)| *l == le)
                    .map_or(0.0, |(_, c)| *c);
                (le, count - was)
            })
            .collect();
        if new.iter().all(|(_, c)| *c >= 0.0) {
            if let Some(v) = quantile(0.5, &new) {
                p50.push(Point { t, v });
            }
            if let Some(v) = quantile(0.99, &new) {
                p99.push(Point { t, v });
            }
        }
    }
    let mut out = vec![line("published", "all", "records/s", published)];
    out.extend(
        projected
            .into_iter()
            .map(|(p, points)| line("projected", &p, "records/s", points)),
    );
    out.extend(
        lag.into_iter()
            .map(|(p, points)| line("lag", &p, "messages", points)),
    );
    out.push(line("freshness", "p50", "seconds", p50));
    out.push(line("freshness", "p99", "seconds", p99));
    out
}

fn line(metric: &str, label: &str, unit: &str, points: Vec<Point>) -> Series {
    Series {
        metric: metric.into(),
        label: label.into(),
        unit: unit.into(),
        points,
    }
}

/// This process's metrics, sampled every [`STEP`], the last hour kept.
#[derive(Clone, Default)]
pub struct ProcessHistory {
    samples: Arc<Mutex<VecDeque<Sample>>>,
}

impl ProcessHistory {
    /// Samples `render()` (the `/metrics` text) until `shutdown`.
    pub async fn run(
        &self,
        render: impl Fn() -> String + Send,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        loop {
            self.record(Sample::of(&parse(&render()), now_ms()));
            tokio::select! {
                _ = tokio::time::sleep(STEP) => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    pub fn record(&self, sample: Sample) {
        let keep = (WINDOW.as_secs() / STEP.as_secs()) as usize + 1;
        let mut samples = self.lock();
        samples.push_back(sample);
        while samples.len() > keep {
            samples.pop_front();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Sample>> {
        self.samples
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[async_trait::async_trait]
impl PipelineHistory for ProcessHistory {
    async fn history(&self) -> Result<PipelineMetrics, String> {
        let samples: Vec<Sample> = self.lock().iter().cloned().collect();
        Ok(PipelineMetrics {
            source: "process".into(),
            step_secs: STEP.as_secs(),
            series: series(&samples),
        })
    }
}

/// The same lines from a Prometheus that scrapes every role.
pub struct PrometheusHistory {
    pub url: String,
    pub client: reqwest::Client,
}

impl PrometheusHistory {
    pub fn new(url: &str) -> Result<PrometheusHistory, String> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| format!("an HTTP client for Prometheus: {e}"))?;
        Ok(PrometheusHistory {
            url: url.trim_end_matches('/').to_string(),
            client,
        })
    }

    /// One range query: a line per result, labelled by `by` (or `label`).
    async fn query(
        &self,
        expr: &str,
        (metric, label, unit): (&str, &str, &str),
        by: Option<&str>,
    ) -> Result<Vec<Series>, String> {
        let end = now_ms() / 1000;
        let start = end - WINDOW.as_secs() as i64;
        let url = format!("{}/api/v1/query_range", self.url);
        let answer: serde_json::Value = self
            .client
            .get(&url)
            .query(&[
                ("query", expr.to_string()),
                ("start", start.to_string()),
                ("end", end.to_string()),
                ("step", STEP.as_secs().to_string()),
            ])
            .send()
            .await
            .map_err(|e| format!("Prometheus at {url}: {e}"))?
            .json()
            .await
            .map_err(|e| format!("Prometheus at {url} answered no JSON: {e}"))?;
        if answer["status"] != "success" {
            return Err(format!(
                "Prometheus at {url} refused {expr}: {}",
                answer["error"].as_str().unwrap_or("no reason given")
            ));
        }
        let results = answer["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        Ok(results
            .iter()
            .map(|r| {
                let label = by
                    .and_then(|b| r["metric"][b].as_str())
                    .unwrap_or(label)
                    .to_string();
                let points = r["values"]
                    .as_array()
                    .map(|values| {
                        values
                            .iter()
                            .filter_map(|pair| {
                                let t = pair[0].as_f64()?;
                                let v: f64 = pair[1].as_str()?.parse().ok()?;
                                v.is_finite().then_some(Point {
                                    t: (t * 1000.0) as i64,
                                    v,
                                })
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                line(metric, &label, unit, points)
            })
            .collect())
    }
}

#[async_trait::async_trait]
impl PipelineHistory for PrometheusHistory {
    async fn history(&self) -> Result<PipelineMetrics, String> {
        let rate = "[1m]";
        let mut series = Vec::new();
        for (expr, what, by) in [
            (
                format!("sum(rate({PUBLISHED}{rate}))"),
                ("published", "all", "records/s"),
                None,
            ),
            (
                format!("sum by (projection) (rate({PROJECTED}{rate}))"),
                ("projected", "all", "records/s"),
                Some("projection"),
            ),
            (
                format!("sum by (projection) ({LAG})"),
                ("lag", "all", "messages"),
                Some("projection"),
            ),
            (
                format!("histogram_quantile(0.5, sum by (le) (rate({FRESHNESS_BUCKETS}{rate})))"),
                ("freshness", "p50", "seconds"),
                None,
            ),
            (
                format!("histogram_quantile(0.99, sum by (le) (rate({FRESHNESS_BUCKETS}{rate})))"),
                ("freshness", "p99", "seconds"),
                None,
            ),
        ] {
            series.extend(self.query(&expr, what, by).await?);
        }
        Ok(PipelineMetrics {
            source: "prometheus".into(),
            step_secs: STEP.as_secs(),
            series,
        })
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# HELP tributary_producer_events_published_total x
# TYPE tributary_producer_events_published_total counter
tributary_producer_events_published_total{data_type="invoices"} 100
tributary_producer_events_published_total{data_type="bills"} 50
tributary_projector_records_projected_total{projection="sql-store"} 120
tributary_projector_consumer_lag_messages{projection="sql-store",partition="0"} 3
tributary_projector_consumer_lag_messages{projection="sql-store",partition="1"} 4
tributary_freshness_seconds_bucket{projection="sql-store",le="0.5"} 10
tributary_freshness_seconds_bucket{projection="sql-store",le="1"} 20
tributary_freshness_seconds_bucket{projection="sql-store",le="+Inf"} 20
tributary_freshness_seconds_bucket{projection="search-index",le="0.5"} 0
tributary_freshness_seconds_bucket{projection="search-index",le="1"} 0
tributary_freshness_seconds_bucket{projection="search-index",le="+Inf"} 0
weird{a="x\"y"} 1
not a line
"#;

    #[test]
    fn parses_the_text_format() {
        let lines = parse(TEXT);
        assert_eq!(lines.len(), 12);
        assert_eq!(lines[0].labels["data_type"], "invoices");
        assert_eq!(lines[11].labels["a"], "x\"y");
        let sample = Sample::of(&lines, 0);
        assert_eq!(sample.published, 150.0);
        assert_eq!(sample.projected["sql-store"], 120.0);
        assert_eq!(sample.lag["sql-store"], 7.0);
        assert_eq!(
            sample.freshness,
            vec![(0.5, 10.0), (1.0, 20.0), (f64::INFINITY, 20.0)]
        );
    }

    #[test]
    fn quantiles_interpolate_within_their_bucket() {
        let buckets = [(0.5, 10.0), (1.0, 20.0), (f64::INFINITY, 20.0)];
        assert_eq!(quantile(0.5, &buckets), Some(0.5));
        assert_eq!(quantile(0.75, &buckets), Some(0.75));
        assert_eq!(
            quantile(0.99, &[(1.0, 0.0), (f64::INFINITY, 5.0)]),
            Some(1.0)
        );
        assert_eq!(quantile(0.5, &[(1.0, 0.0), (f64::INFINITY, 0.0)]), None);
    }

    #[test]
    fn rates_between_samples_and_a_restart_skipped() {
        let at = |ms: i64, published: f64, projected: f64, fresh: [f64; 2]| Sample {
            at_ms: ms,
            published,
            projected: [("sql-store".to_string(), projected)].into(),
            lag: [("sql-store".to_string(), 2.0)].into(),
            freshness: vec![(1.0, fresh[0]), (f64::INFINITY, fresh[1])],
        };
        let samples = [
            at(0, 0.0, 0.0, [0.0, 0.0]),
            at(15_000, 150.0, 30.0, [10.0, 10.0]),
            // Restarted: counters from zero again.
            at(30_000, 15.0, 3.0, [1.0, 1.0]),
            at(45_000, 45.0, 33.0, [1.0, 3.0]),
        ];
        let s = series(&samples);
        let of = |metric: &str, label: &str| {
            s.iter()
                .find(|x| x.metric == metric && x.label == label)
                .unwrap()
                .points
                .iter()
                .map(|p| (p.t, p.v))
                .collect::<Vec<_>>()
        };
        assert_eq!(of("published", "all"), [(15_000, 10.0), (45_000, 2.0)]);
        assert_eq!(of("projected", "sql-store"), [(15_000, 2.0), (45_000, 2.0)]);
        assert_eq!(of("lag", "sql-store").len(), 4);
        // 10 changes within 1 s, then 2 beyond the last finite bound.
        assert_eq!(of("freshness", "p50"), [(15_000, 0.5), (45_000, 1.0)]);
    }
}
