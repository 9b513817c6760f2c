//! Sync settings per data type: how often each is synced, how often it gets
//! a full pass, whether the schedule syncs it at all, and the order data
//! types are fetched in (a source with tight call limits fetches the
//! important ones first). The configuration sets them for every connection
//! (`[sync] order`, `[sync.data_types.<type>]`); a connection may override
//! them (`tributary connections settings`), value by value.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tributary_schemas::DataType;

/// The settings of one data type; unset values fall back.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TypeSettings {
    /// Seconds between scheduled syncs of this data type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_secs: Option<f64>,
    /// Hours between full passes that delete what the source no longer lists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconcile_hours: Option<f64>,
    /// `false`: the schedule does not sync it (from the first link on);
    /// an operator's request still does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

/// Sync settings per data type, for every connection or one.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncPlan {
    /// Data types fetched first, in this order; the others follow in the
    /// connector's order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub order: Vec<String>,
    /// Settings by data type name (`invoices`, `customers`...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub data_types: BTreeMap<String, TypeSettings>,
}

impl SyncPlan {
    /// Checks the names and the numbers: an unknown data type or an
    /// interval out of range is an error naming it.
    pub fn check(&self) -> Result<(), String> {
        let known = |name: &str| {
            name.parse::<DataType>().map(drop).map_err(|_| {
                let all: Vec<&str> = DataType::ALL.iter().map(|t| t.as_str()).collect();
                format!("unknown data type {name:?}; known: {}", all.join(", "))
            })
        };
        for name in &self.order {
            known(name).map_err(|e| format!("order: {e}"))?;
        }
        for (name, settings) in &self.data_types {
            known(name).map_err(|e| format!("data_types: {e}"))?;
            if let Some(secs) = settings.interval_secs
                && !(secs > 0.0 && secs <= 30.0 * 86_400.0)
            {
                return Err(format!(
                    "data_types.{name}.interval_secs must be above 0 and at most 30 days"
                ));
            }
            if let Some(hours) = settings.reconcile_hours
                && !(hours > 0.0 && hours <= 8_760.0)
            {
                return Err(format!(
                    "data_types.{name}.reconcile_hours must be above 0 and at most 8760"
                ));
            }
        }
        Ok(())
    }

    /// These settings over `base`: each value set here wins, the rest come
    /// from `base`; an order set here replaces `base`'s.
    pub fn over(&self, base: &SyncPlan) -> SyncPlan {
        let mut merged = base.clone();
        if !self.order.is_empty() {
            merged.order = self.order.clone();
        }
        for (name, mine) in &self.data_types {
            let into = merged.data_types.entry(name.clone()).or_default();
            if mine.interval_secs.is_some() {
                into.interval_secs = mine.interval_secs;
            }
            if mine.reconcile_hours.is_some() {
                into.reconcile_hours = mine.reconcile_hours;
            }
            if mine.enabled.is_some() {
                into.enabled = mine.enabled;
            }
        }
        merged
    }

    fn of(&self, data_type: DataType) -> Option<&TypeSettings> {
        self.data_types.get(data_type.as_str())
    }

    /// How long after its sync a data type is due again.
    pub fn interval(&self, data_type: DataType, default: Duration) -> Duration {
        self.of(data_type)
            .and_then(|s| s.interval_secs)
            .map_or(default, Duration::from_secs_f64)
    }

    /// How long after its full pass a data type gets another.
    pub fn reconcile(&self, data_type: DataType, default: Duration) -> Duration {
        self.of(data_type)
            .and_then(|s| s.reconcile_hours)
            .map_or(default, |h| Duration::from_secs_f64(h * 3_600.0))
    }

    /// Whether the schedule syncs a data type.
    pub fn enabled(&self, data_type: DataType) -> bool {
        self.of(data_type).and_then(|s| s.enabled).unwrap_or(true)
    }

    /// `offered` (the connector's order) with the plan's order first.
    pub fn ordered(&self, offered: &[DataType]) -> Vec<DataType> {
        let mut ordered: Vec<DataType> = self
            .order
            .iter()
            .filter_map(|name| name.parse().ok())
            .filter(|t| offered.contains(t))
            .collect();
        ordered.dedup();
        for t in offered {
            if !ordered.contains(t) {
                ordered.push(*t);
            }
        }
        ordered
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(json: &str) -> SyncPlan {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn overrides_win_value_by_value_and_order_comes_first() {
        let base = plan(
            r#"{"order": ["customers"], "data_types": {"invoices": {"interval_secs": 60, "enabled": false}}}"#,
        );
        let mine = plan(
            r#"{"order": ["bills", "invoices"], "data_types": {"invoices": {"enabled": true}, "bills": {"reconcile_hours": 2}}}"#,
        );
        let merged = mine.over(&base);
        let hour = Duration::from_secs(3_600);
        assert_eq!(
            merged.interval(DataType::Invoice, hour),
            Duration::from_secs(60)
        );
        assert!(merged.enabled(DataType::Invoice));
        assert_eq!(merged.reconcile(DataType::Bill, hour), 2 * hour);
        assert_eq!(
            merged.interval(DataType::Bill, hour),
            hour,
            "unset: the default"
        );
        let offered = [
            DataType::Customer,
            DataType::Supplier,
            DataType::Invoice,
            DataType::Bill,
        ];
        assert_eq!(
            merged.ordered(&offered),
            [
                DataType::Bill,
                DataType::Invoice,
                DataType::Customer,
                DataType::Supplier
            ]
        );
        assert!(!base.enabled(DataType::Invoice));
        assert_eq!(base.ordered(&offered)[0], DataType::Customer);
    }

    #[test]
    fn bad_settings_name_what_is_wrong() {
        for (json, why) in [
            (
                r#"{"order": ["invoice"]}"#,
                "order: unknown data type \"invoice\"",
            ),
            (
                r#"{"data_types": {"bills": {"interval_secs": 0}}}"#,
                "data_types.bills.interval_secs",
            ),
            (
                r#"{"data_types": {"bills": {"reconcile_hours": -1}}}"#,
                "data_types.bills.reconcile_hours",
            ),
        ] {
            let err = plan(json).check().unwrap_err();
            assert!(err.contains(why), "{json}: {err}");
        }
        assert!(
            serde_json::from_str::<SyncPlan>(r#"{"data_types": {"bills": {"every": 5}}}"#).is_err()
        );
        assert_eq!(plan("{}").check(), Ok(()));
    }
}
