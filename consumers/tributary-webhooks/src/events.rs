//! How each event type subscribers can ask for is read from the topics.
//! The types, their bodies and each type's `data` are the contract in
//! `tributary_connector_api::webhook_events`; the tests below pin the
//! fields.

use std::collections::BTreeMap;

use serde_json::json;
use tributary_producer::state::{Check, Occurrence};
use tributary_projection::{Change, DeadLetterSeen, Item};
use tributary_schemas::{Record, SyncRunEvent, SyncRunStatus, Timestamp};
use tributary_store::ManifestCheck;

pub use tributary_connector_api::webhook_events::{
    CONNECTION_STATUS_CHANGED, DEAD_LETTERS_ADDED, RECONCILIATION_MISMATCH, SYNC_COMPLETED,
    SYNC_FAILED, TEST,
};

/// Letters listed in full in one `dead_letters.added` event (the rest are
/// counted).
const LETTERS_LISTED: usize = 20;

/// Dead letters told together: of one company (if known) and stage.
type LetterGroup = (Option<String>, String);

/// What `items` (read from the sync runs, connections and dead-letter
/// topics) tell subscribers. Dead letters are told once per company and
/// stage per batch, counted, not one event each.
pub fn occurrences<'a>(items: impl IntoIterator<Item = &'a Item>) -> Vec<Occurrence> {
    let mut out = Vec::new();
    let mut letters: BTreeMap<LetterGroup, Vec<(&Item, &DeadLetterSeen)>> = BTreeMap::new();
    for item in items {
        match &item.change {
            Change::SyncRun(run) => out.push(sync_run(item, run)),
            Change::Record(event) => {
                if let Some(Record::Connection(c)) = &event.record {
                    out.push(occurrence(
                        item,
                        CONNECTION_STATUS_CHANGED,
                        Some(&c.company_id),
                        event.source_modified_at,
                        json!({
                            "company_id": c.company_id,
                            "connection_id": c.id,
                            "source": c.source,
                            "status": c.status.as_str(),
                            "reason": c.status_reason,
                        }),
                        Some((c.id.clone(), c.status.as_str().to_string())),
                    ));
                }
            }
            Change::DeadLetter(letter) => letters
                .entry((letter.company_id.clone(), letter.stage.clone()))
                .or_default()
                .push((item, letter)),
            Change::Manifest(_) => {}
        }
    }
    for ((company, stage), group) in letters {
        let Some((first, _)) = group.first() else {
            continue;
        };
        let listed: Vec<serde_json::Value> = group
            .iter()
            .take(LETTERS_LISTED)
            .map(|(item, l)| {
                json!({
                    "reason": l.reason,
                    "connection_id": l.connection_id,
                    "data_type": l.data_type,
                    "projection": l.projection,
                    "source_topic": l.source_topic,
                    "source_partition": l.source_partition,
                    "source_offset": l.source_offset,
                    "dead_letter_id": format!("{}@{}", item.partition, item.offset),
                })
            })
            .collect();
        out.push(occurrence(
            first,
            DEAD_LETTERS_ADDED,
            company.as_deref(),
            Timestamp::now(),
            json!({
                "company_id": company,
                "stage": stage,
                "count": group.len(),
                "letters": listed,
            }),
            None,
        ));
    }
    out
}

/// The reconciliation checks `items` call for: one per company and data
/// type a manifest was read for, due at `due_at`.
pub fn checks<'a>(items: impl IntoIterator<Item = &'a Item>, due_at: Timestamp) -> Vec<Check> {
    let mut out: Vec<Check> = Vec::new();
    for item in items {
        if let Change::Manifest(m) = &item.change
            && !out
                .iter()
                .any(|c| c.company_id == m.company_id && c.data_type == m.data_type)
        {
            out.push(Check {
                company_id: m.company_id.clone(),
                data_type: m.data_type.clone(),
                due_at,
                attempt: 1,
            });
        }
    }
    out
}

/// A `reconciliation.mismatch`: what the manifests say against what the
/// store holds.
pub fn mismatch(check: &Check, found: &ManifestCheck, at: Timestamp) -> Occurrence {
    Occurrence {
        topic: "reconciliation".into(),
        partition: 0,
        offset: check.due_at.millis(),
        key: format!("{}/{}", check.company_id, check.data_type),
        event_type: RECONCILIATION_MISMATCH.into(),
        company_id: Some(check.company_id.clone()),
        at,
        data: json!({
            "company_id": check.company_id,
            "data_type": check.data_type,
            "expected_count": found.live_count,
            "expected_digest": found.digest,
            "stored_count": found.stored_count,
            "stored_digest": found.stored_digest,
        }),
        connection_status: None,
    }
}

fn sync_run(item: &Item, run: &SyncRunEvent) -> Occurrence {
    let succeeded = run.status == SyncRunStatus::Succeeded;
    let mut data = json!({
        "company_id": run.company_id,
        "connection_id": run.connection_id,
        "source": run.source,
        "data_type": run.data_type,
        "run_id": run.run_id,
        "trigger": run.trigger.as_str(),
        "started_at": run.started_at.to_string(),
        "finished_at": run.finished_at.to_string(),
        "records_fetched": run.records_fetched,
        "records_changed": run.records_published,
        "changed": run.records_published > 0,
        "records_dead_lettered": run.records_dead_lettered,
    });
    if !succeeded {
        data["status"] = run.status.as_str().into();
        data["error"] = run.error.clone().into();
        data["error_fault"] = run.error_fault.clone().into();
    }
    occurrence(
        item,
        if succeeded {
            SYNC_COMPLETED
        } else {
            SYNC_FAILED
        },
        Some(&run.company_id),
        run.finished_at,
        data,
        None,
    )
}

fn occurrence(
    item: &Item,
    event_type: &str,
    company: Option<&str>,
    at: Timestamp,
    data: serde_json::Value,
    connection_status: Option<(String, String)>,
) -> Occurrence {
    Occurrence {
        topic: item.topic.clone(),
        partition: item.partition,
        offset: item.offset,
        key: event_type.to_string(),
        event_type: event_type.to_string(),
        company_id: company.map(str::to_string),
        at,
        data,
        connection_status,
    }
}
