//! The CLI's commands other than `up`: topics, API keys, connections and
//! dead letters.

use std::sync::Arc;

use anyhow::Context;
use tributary_config::Config;
use tributary_connector_api::admin::{ConnectionAdmin, RunFilter};
use tributary_kafka::Origin;
use tributary_kafka::dead_letters::{self, StoredLetter};
use tributary_producer::redrive::{RedriveError, Replayed};
use tributary_producer::{Publisher, Redrive, SyncPlan};
use tributary_schemas::{
    DataType, DeadLetterStage, ManifestEvent, SyncRunEvent, SyncTrigger, dead_letter_topic,
};

use crate::wiring;
use crate::{ConnectionsAction, DlqAction, SyncsAction, WebhooksAction};

/// `tributary topics`.
pub(crate) fn topics() {
    for data_type in DataType::ALL {
        println!(
            "{}\tkey=company_id\tvalue=io.tributary.v1.{}",
            data_type.topic(),
            schema_name(data_type.schema_text())
        );
    }
    println!(
        "{}\tkey=company_id\tvalue=io.tributary.v1.SyncRunEvent",
        SyncRunEvent::topic()
    );
    println!(
        "{}\tkey=company_id\tvalue=io.tributary.v1.ManifestEvent",
        ManifestEvent::topic()
    );
    println!(
        "{}\tkey=company_id\tvalue=what failed, as it was; headers say stage, reason and origin",
        dead_letter_topic()
    );
}

/// `tributary api-key new`.
pub(crate) fn new_api_key(name: &str, companies: &[String]) {
    let key = wiring::new_api_key();
    println!("key (shown once, keep it secret): {key}");
    println!();
    println!("[[api.keys]]");
    println!("name = {name:?}");
    println!("sha256 = {:?}", tributary_api::hash_key(&key));
    println!("companies = {companies:?}");
}

pub(crate) async fn connections(config: &Config, action: ConnectionsAction) -> anyhow::Result<()> {
    if let ConnectionsAction::NewKey = action {
        println!("{}", tributary_producer::secrets::Key::generate().to_hex());
        return Ok(());
    }
    let admin = wiring::admin(config).await?;
    match action {
        ConnectionsAction::Add {
            source,
            company,
            settings,
        } => {
            let mut map = serde_json::Map::new();
            for pair in settings {
                let (k, v) = pair
                    .split_once('=')
                    .with_context(|| format!("--setting {pair:?} is not KEY=VALUE"))?;
                let value = serde_json::from_str(v).unwrap_or(serde_json::Value::String(v.into()));
                map.insert(k.to_string(), value);
            }
            let (view, url) = admin
                .add(&company, &source, serde_json::Value::Object(map))
                .await?;
            println!(
                "added {} ({})",
                view["id"].as_str().unwrap_or_default(),
                view["status"].as_str().unwrap_or_default()
            );
            if let Some(url) = url {
                println!("grant access at: {url}");
            }
        }
        ConnectionsAction::List => {
            println!("id	company	source	status	reason");
            for c in admin.list().await? {
                println!(
                    "{}	{}	{}	{}	{}",
                    c["id"].as_str().unwrap_or_default(),
                    c["company_id"].as_str().unwrap_or_default(),
                    c["source"].as_str().unwrap_or_default(),
                    c["status"].as_str().unwrap_or_default(),
                    c["status_reason"].as_str().unwrap_or_default()
                );
            }
        }
        ConnectionsAction::Check { id } => println!("{id}: {}", admin.check(&id).await?),
        ConnectionsAction::Remove { id } => {
            admin.remove(&id).await?;
            println!("{id}: unlinked, credentials erased");
        }
        ConnectionsAction::Complete {
            source,
            state,
            code,
        } => {
            let view = admin.complete_authorization(&source, &state, &code).await?;
            println!(
                "{}: {}",
                view["id"].as_str().unwrap_or_default(),
                view["status"].as_str().unwrap_or_default()
            );
        }
        ConnectionsAction::RotateKey => {
            let n = admin.rotate_key().await?;
            let hooks = wiring::webhooks(config, &admin).rotate_key().await?;
            println!(
                "re-encrypted the credentials of {n} connection(s) and the secrets of {hooks} webhook subscription(s) with key {}",
                admin.cipher.current_key_id()
            );
        }
        ConnectionsAction::Settings {
            id,
            order,
            data_type,
            interval_secs,
            reconcile_hours,
            enabled,
            clear,
        } => {
            let current = admin.sync_settings(&id).await?;
            let mut plan: SyncPlan = serde_json::from_value(current["overrides"].clone())?;
            let changed = clear || order.is_some() || data_type.is_some();
            if clear {
                plan = SyncPlan::default();
            }
            if let Some(order) = order {
                plan.order = order;
            }
            if let Some(data_type) = data_type {
                let settings = plan.data_types.entry(data_type).or_default();
                if interval_secs.is_some() {
                    settings.interval_secs = interval_secs;
                }
                if reconcile_hours.is_some() {
                    settings.reconcile_hours = reconcile_hours;
                }
                if enabled.is_some() {
                    settings.enabled = enabled;
                }
            }
            let shown = if changed {
                admin
                    .set_sync_settings(&id, serde_json::to_value(&plan)?)
                    .await?
            } else {
                current
            };
            println!("overrides: {}", shown["overrides"]);
            println!("data_type\tinterval_secs\treconcile_hours\tenabled");
            for t in shown["effective"].as_array().into_iter().flatten() {
                println!(
                    "{}\t{}\t{}\t{}",
                    t["data_type"].as_str().unwrap_or_default(),
                    t["interval_secs"],
                    t["reconcile_hours"],
                    t["enabled"]
                );
            }
        }
        ConnectionsAction::NewKey => {}
    }
    Ok(())
}

/// `tributary syncs`.
pub(crate) async fn syncs(config: &Config, action: SyncsAction) -> anyhow::Result<()> {
    let admin = wiring::admin(config).await?;
    let parse = |t: &String| t.parse::<DataType>().map_err(anyhow::Error::msg);
    match action {
        SyncsAction::Request {
            company,
            data_types,
            resync,
            reconcile,
        } => {
            let data_types = data_types
                .iter()
                .map(parse)
                .collect::<Result<Vec<_>, _>>()?;
            let trigger = if resync {
                SyncTrigger::Resync
            } else if reconcile {
                SyncTrigger::Reconcile
            } else {
                SyncTrigger::Request
            };
            let runs = admin
                .request_company_sync(&company, &data_types, trigger)
                .await?;
            print_queued(&runs);
        }
        SyncsAction::Refetch {
            company,
            data_type,
            id,
        } => {
            let runs = admin
                .request_refetch(&company, parse(&data_type)?, &id)
                .await?;
            print_queued(&runs);
        }
        SyncsAction::List {
            company,
            data_type,
            status,
            trigger,
            limit,
        } => {
            let filter = RunFilter {
                data_type: data_type.as_ref().map(parse).transpose()?,
                status: status.map(|s| s.parse()).transpose()?,
                trigger: trigger.map(|t| t.parse()).transpose()?,
                after: None,
                limit,
            };
            println!("run\tdata_type\ttrigger\tstatus\tqueued_at\tfetched\tpublished\tdead\terror");
            for run in admin.runs(&company, &filter).await? {
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
                    run["id"].as_str().unwrap_or_default(),
                    run["data_type"].as_str().unwrap_or_default(),
                    run["trigger"].as_str().unwrap_or_default(),
                    run["status"].as_str().unwrap_or_default(),
                    run["states"][0]["at"].as_str().unwrap_or_default(),
                    run["records_fetched"],
                    run["records_published"],
                    run["records_dead_lettered"],
                    run["error"].as_str().unwrap_or_default()
                );
            }
        }
        SyncsAction::Show { company, run } => {
            let run = admin.run(&company, &run).await?;
            println!("{}", serde_json::to_string_pretty(&run)?);
        }
    }
    Ok(())
}

fn print_queued(runs: &[serde_json::Value]) {
    for run in runs {
        println!(
            "queued {}\t{}\t{}\t{}",
            run["id"].as_str().unwrap_or_default(),
            run["connection_id"].as_str().unwrap_or_default(),
            run["data_type"].as_str().unwrap_or_default(),
            run["trigger"].as_str().unwrap_or_default()
        );
    }
}

fn schema_name(text: &str) -> String {
    serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|v| v["name"].as_str().map(str::to_string))
        .unwrap_or_default()
}

/// `tributary dlq list|replay`.
pub(crate) async fn dlq(config: &Config, action: DlqAction) -> anyhow::Result<()> {
    let client = wiring::kafka_client(config, &wiring::bootstrap_servers(config));
    let letters = dead_letters::read_all(&client)
        .await
        .context("cannot read the dead-letter topic (is `tributary up` running?)")?;
    match action {
        DlqAction::List => {
            println!("at\tstage\tprojection\torigin\treplays\treplayed\treason");
            for stored in &letters {
                let replayed = if stored.replayed { "yes" } else { "no" };
                match &stored.letter {
                    Ok(l) => {
                        let projection = match &l.origin {
                            Origin::Topic { projection, .. } => projection.as_str(),
                            Origin::Source { .. } => "",
                        };
                        println!(
                            "{}\t{}\t{}\t{}\t{}\t{}\t{}",
                            stored.at(),
                            l.stage,
                            projection,
                            l.origin,
                            l.replays,
                            replayed,
                            l.reason
                        );
                    }
                    Err(why) => println!(
                        "{}\t?\t\t\t\t{replayed}\tnot a dead letter: {why}",
                        stored.at()
                    ),
                }
            }
            eprintln!("{} dead letters", letters.len());
            Ok(())
        }
        DlqAction::Replay { all, at } => {
            if !all && at.is_empty() {
                anyhow::bail!("say which dead letters to replay: --all, or --at PARTITION@OFFSET");
            }
            let admin = wiring::admin(config).await?;
            let publisher = Publisher::new(&client, &wiring::registry_url(config))?;
            let redrive = Redrive::new(client.clone(), Arc::new(publisher), &admin);
            let wanted: Vec<&StoredLetter> = if all {
                letters.iter().filter(|l| !l.replayed).collect()
            } else {
                at.iter()
                    .map(|spec| {
                        letters
                            .iter()
                            .find(|l| l.at() == *spec)
                            .with_context(|| format!("no dead letter at {spec}"))
                    })
                    .collect::<anyhow::Result<_>>()?
            };
            let (mut refused, mut still) = (0, 0);
            let mut done = Vec::new();
            // Every projection that failed a message dead-lettered it: send each message back once.
            let mut sent = std::collections::BTreeSet::new();
            for stored in wanted {
                let origin = stored.letter.as_ref().map(|l| l.origin.to_string());
                if let Ok(origin) = origin
                    && stored
                        .letter
                        .as_ref()
                        .is_ok_and(|l| l.stage != DeadLetterStage::Map)
                    && !sent.insert(origin)
                {
                    println!(
                        "skipped {}: the same message is replayed already",
                        stored.at()
                    );
                    done.push((stored.partition, stored.offset));
                    continue;
                }
                match redrive.replay(stored).await {
                    Ok(Replayed::Published {
                        event_id,
                        source_record_id,
                    }) => println!(
                        "replayed {}: mapped record {source_record_id} and published it (event {event_id})",
                        stored.at()
                    ),
                    Ok(Replayed::Refetching { run_id, record_id }) => println!(
                        "replayed {}: its record {record_id} was cut to fit, so it is fetched again (run {run_id})",
                        stored.at()
                    ),
                    Ok(Replayed::Resent { topic }) => println!(
                        "replayed {} to {topic} (replay {})",
                        stored.at(),
                        stored.letter.as_ref().map_or(0, |l| l.replays) + 1
                    ),
                    Err(RedriveError::Refused(why)) => {
                        refused += 1;
                        println!("refused {}: {why}", stored.at());
                    }
                    Err(RedriveError::StillFails(why)) => {
                        // Not marked: replayed again once the cause is fixed.
                        still += 1;
                        println!("still fails {}: {why}", stored.at());
                        continue;
                    }
                    Err(RedriveError::Failed(e)) => {
                        // Stop: what was replayed so far is still marked below.
                        if all {
                            dead_letters::mark_replayed(&client, &done).await?;
                        }
                        anyhow::bail!("replay stopped at {}: {e}", stored.at());
                    }
                }
                done.push((stored.partition, stored.offset));
            }
            if all {
                // Refused letters count as handled too: --all never retries them.
                dead_letters::mark_replayed(&client, &done).await?;
            }
            if refused + still > 0 {
                anyhow::bail!("{refused} dead letters were refused, {still} still fail");
            }
            Ok(())
        }
    }
}

/// `tributary webhooks ...`.
pub(crate) async fn webhooks(config: &Config, action: WebhooksAction) -> anyhow::Result<()> {
    use tributary_connector_api::admin::{DeliveryFilter, NewSubscription, WebhookAdmin};
    let admin = wiring::admin(config).await?;
    let hooks = wiring::webhooks(config, &admin);
    let text = |v: &serde_json::Value| v.as_str().unwrap_or("-").to_string();
    match action {
        WebhooksAction::Add {
            url,
            events,
            company,
            description,
        } => {
            let (view, secret) = hooks
                .subscribe(NewSubscription {
                    url,
                    event_types: events,
                    company_id: company,
                    description,
                })
                .await?;
            println!("added {} -> {}", text(&view["id"]), text(&view["url"]));
            println!("signing secret (shown once, keep it secret): {secret}");
        }
        WebhooksAction::List => {
            let counts = admin.state.delivery_counts().await?;
            for s in hooks.subscriptions().await? {
                let id = text(&s["id"]);
                let by_status: Vec<String> = counts
                    .iter()
                    .filter(|(sub, _, _)| *sub == id)
                    .map(|(_, status, n)| format!("{status}={n}"))
                    .collect();
                let events: Vec<String> = s["event_types"]
                    .as_array()
                    .map(|a| a.iter().map(text).collect())
                    .unwrap_or_default();
                println!(
                    "{id}\t{}\tevents={}\tcompany={}\t{}\t{}",
                    text(&s["url"]),
                    events.join(","),
                    s["company_id"].as_str().unwrap_or("*"),
                    if s["removed_at"].is_null() {
                        "active".to_string()
                    } else {
                        format!("removed {}", text(&s["removed_at"]))
                    },
                    by_status.join(" "),
                );
            }
        }
        WebhooksAction::Remove { id } => {
            hooks.unsubscribe(&id).await?;
            println!("removed {id}");
        }
        WebhooksAction::Test { id } => {
            let d = hooks.test(&id).await?;
            println!(
                "queued {} ({}); the dispatcher sends it",
                text(&d["id"]),
                text(&d["event_type"])
            );
        }
        WebhooksAction::Deliveries {
            delivery: Some(id), ..
        } => {
            let d = hooks.delivery(&id).await?;
            println!("{}", serde_json::to_string_pretty(&d)?);
        }
        WebhooksAction::Deliveries {
            id, status, limit, ..
        } => {
            let id = id.context("name a subscription, or --delivery ID")?;
            let filter = DeliveryFilter {
                status,
                before: None,
                limit,
            };
            for d in hooks.deliveries(&id, &filter).await? {
                println!(
                    "{}\t{}\t{}\t{}\tattempts={}\tlast={}\t{}",
                    text(&d["id"]),
                    text(&d["created_at"]),
                    text(&d["event_type"]),
                    text(&d["status"]),
                    d["attempts"],
                    d["last_status_code"],
                    d["last_error"].as_str().unwrap_or(""),
                );
            }
        }
        WebhooksAction::Replay { delivery } => {
            let d = hooks.replay(&delivery).await?;
            println!(
                "queued {} (webhook-id {}); the dispatcher sends it",
                text(&d["id"]),
                text(&d["message_id"])
            );
        }
    }
    Ok(())
}
