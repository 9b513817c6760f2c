//! Freshness by stage, from the pipeline's own histograms on `/metrics`
//! (`tributary_freshness_stage_seconds`, `tributary_freshness_seconds`):
//! the difference between two scrapes, so only what happened in between.

use std::collections::BTreeMap;

use anyhow::Context;

/// Per series (name and labels but `le`): cumulative counts by upper bound.
pub(crate) type Histograms = BTreeMap<String, Vec<(f64, f64)>>;

/// The freshness histograms the pipeline at `api` exposes now.
pub(crate) async fn scrape(api: &str, key: &str) -> anyhow::Result<Histograms> {
    let text = reqwest::Client::new()
        .get(format!("{api}/metrics"))
        .bearer_auth(key)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .context("GET /metrics")?
        .text()
        .await?;
    Ok(parse(&text))
}

/// Bucket lines of the freshness histograms in Prometheus text format.
pub(crate) fn parse(text: &str) -> Histograms {
    let mut out = Histograms::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("tributary_freshness_") else {
            continue;
        };
        let Some((series, value)) = rest.rsplit_once(' ') else {
            continue;
        };
        let Some((name, labels)) = series.split_once("_bucket{") else {
            continue;
        };
        let labels = labels.trim_end_matches('}');
        let mut le = None;
        let mut kept = Vec::new();
        for pair in labels.split(',') {
            match pair.strip_prefix("le=") {
                Some(bound) => le = Some(bound.trim_matches('"').to_string()),
                None => kept.push(pair.replace('"', "")),
            }
        }
        let (Some(le), Ok(count)) = (le, value.parse::<f64>()) else {
            continue;
        };
        let bound = if le == "+Inf" {
            f64::INFINITY
        } else {
            match le.parse() {
                Ok(b) => b,
                Err(_) => continue,
            }
        };
        out.entry(format!("{name} {}", kept.join(",")))
            .or_default()
            .push((bound, count));
    }
    for buckets in out.values_mut() {
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    out
}

/// What was counted after `before` and up to `after`.
pub(crate) fn between(before: &Histograms, after: &Histograms) -> Histograms {
    after
        .iter()
        .map(|(series, buckets)| {
            let earlier = before.get(series);
            let diff = buckets
                .iter()
                .map(|(bound, count)| {
                    let was = earlier
                        .and_then(|b| b.iter().find(|(x, _)| x == bound))
                        .map_or(0.0, |(_, c)| *c);
                    (*bound, count - was)
                })
                .collect();
            (series.clone(), diff)
        })
        .collect()
}

/// The `q` quantile (0 to 1), interpolated within its bucket as
/// Prometheus's `histogram_quantile` does; `None` when nothing was counted.
pub(crate) fn quantile(buckets: &[(f64, f64)], q: f64) -> Option<f64> {
    let total = buckets.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let mut lower = (0.0, 0.0);
    for &(bound, count) in buckets {
        if count >= rank {
            if bound.is_infinite() {
                return Some(lower.0);
            }
            let share = if count > lower.1 {
                (rank - lower.1) / (count - lower.1)
            } else {
                1.0
            };
            return Some(lower.0 + (bound - lower.0) * share);
        }
        lower = (bound, count);
    }
    Some(lower.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BEFORE: &str = r#"
# TYPE tributary_freshness_stage_seconds histogram
tributary_freshness_stage_seconds_bucket{stage="deliver",le="0.1"} 10
tributary_freshness_stage_seconds_bucket{stage="deliver",le="1"} 10
tributary_freshness_stage_seconds_bucket{stage="deliver",le="+Inf"} 10
tributary_freshness_stage_seconds_sum{stage="deliver"} 0.5
"#;
    const AFTER: &str = r#"
tributary_freshness_stage_seconds_bucket{stage="deliver",le="0.1"} 60
tributary_freshness_stage_seconds_bucket{stage="deliver",le="1"} 110
tributary_freshness_stage_seconds_bucket{stage="deliver",le="+Inf"} 110
tributary_freshness_seconds_bucket{projection="sql-store",le="1"} 4
tributary_freshness_seconds_bucket{projection="sql-store",le="+Inf"} 5
"#;

    #[test]
    fn quantiles_of_what_happened_between_two_scrapes() {
        let d = between(&parse(BEFORE), &parse(AFTER));
        let deliver = &d["stage_seconds stage=deliver"];
        assert_eq!(
            deliver,
            &vec![(0.1, 50.0), (1.0, 100.0), (f64::INFINITY, 100.0)]
        );
        assert!((quantile(deliver, 0.5).unwrap() - 0.1).abs() < 1e-9);
        assert!((quantile(deliver, 0.75).unwrap() - 0.55).abs() < 1e-9);
        let store = &d["seconds projection=sql-store"];
        assert_eq!(
            quantile(store, 0.99),
            Some(1.0),
            "past the last bound: the bound"
        );
        assert_eq!(quantile(&[(1.0, 0.0), (f64::INFINITY, 0.0)], 0.5), None);
    }
}
