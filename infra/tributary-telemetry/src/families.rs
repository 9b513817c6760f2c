//! Gauge families replaced whole at each measurement.
//!
//! The `metrics` recorder keeps every series it was ever given until the
//! process ends: right for counters, wrong for "the 50 stalest tenants",
//! whose members change. A family here is measured as a whole, replaced as
//! a whole, and rendered in the Prometheus text format after the
//! recorder's output.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{Arc, Mutex};

use crate::PrometheusHandle;

/// One series of a family: its labels and value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub labels: Vec<(&'static str, String)>,
    pub value: f64,
}

impl Sample {
    pub fn new(labels: Vec<(&'static str, String)>, value: f64) -> Sample {
        Sample { labels, value }
    }
}

/// The families of one process, by name.
#[derive(Clone, Default)]
pub struct Families(Arc<Mutex<BTreeMap<&'static str, String>>>);

impl Families {
    /// Replaces family `name` (a gauge) by `samples`.
    pub fn set(&self, name: &'static str, help: &str, samples: &[Sample]) {
        let mut text = format!("# HELP {name} {help}\n# TYPE {name} gauge\n");
        for sample in samples {
            text.push_str(name);
            if !sample.labels.is_empty() {
                text.push('{');
                for (i, (label, value)) in sample.labels.iter().enumerate() {
                    if i > 0 {
                        text.push(',');
                    }
                    let _ = write!(text, "{label}=\"{}\"", escape(value));
                }
                text.push('}');
            }
            let _ = writeln!(text, " {}", number(sample.value));
        }
        self.lock().insert(name, text);
    }

    /// Every family, in the Prometheus text format.
    pub fn render(&self) -> String {
        self.lock().values().map(String::as_str).collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<&'static str, String>> {
        // A panic while holding the lock leaves whole strings behind: the
        // map is still right to read.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// What `/metrics` serves: the recorder's metrics, then the families.
#[derive(Clone)]
pub struct Exposition {
    pub recorder: PrometheusHandle,
    pub families: Families,
}

impl Exposition {
    pub fn render(&self) -> String {
        let mut text = self.recorder.render();
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text + &self.families.render()
    }
}

/// A label value as the text format wants it.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn number(value: f64) -> String {
    if value.is_nan() {
        "NaN".into()
    } else if value.is_infinite() {
        if value > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        value.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_family_is_replaced_whole_and_escaped() {
        let families = Families::default();
        families.set(
            "t_age_seconds",
            "age",
            &[
                Sample::new(
                    vec![("company", "a\"b".into()), ("data_type", "invoices".into())],
                    12.5,
                ),
                Sample::new(
                    vec![("company", "c\\d".into()), ("data_type", "bills".into())],
                    3.0,
                ),
            ],
        );
        assert_eq!(
            families.render(),
            "# HELP t_age_seconds age\n# TYPE t_age_seconds gauge\n\
             t_age_seconds{company=\"a\\\"b\",data_type=\"invoices\"} 12.5\n\
             t_age_seconds{company=\"c\\\\d\",data_type=\"bills\"} 3\n"
        );
        families.set(
            "t_age_seconds",
            "age",
            &[Sample::new(vec![], f64::INFINITY)],
        );
        families.set("t_a_first", "first", &[]);
        assert_eq!(
            families.render(),
            "# HELP t_a_first first\n# TYPE t_a_first gauge\n\
             # HELP t_age_seconds age\n# TYPE t_age_seconds gauge\nt_age_seconds +Inf\n"
        );
    }
}
