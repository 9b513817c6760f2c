//! Outbound webhooks in the state store: subscriptions (secrets sealed),
//! the deliveries queued for them with their attempts, and the
//! dispatcher's checkpoint. The dispatcher (`tributary-webhooks`) decides
//! what to send and when; this module only keeps it, so that any
//! dispatcher process continues another's work.
//!
//! Times are given by the caller (the dispatcher's clock), not the
//! database's, so the retry schedule can be tested under a paused clock.

use sqlx::AssertSqlSafe;
use tributary_schemas::Timestamp;

use super::{Pool, StateStore, on_pool, state_err};
use crate::ProducerError;
use crate::secrets::Sealed;

/// A subscription as stored (its secret sealed).
#[derive(Debug, Clone, PartialEq)]
pub struct Subscription {
    pub id: String,
    pub url: String,
    pub event_types: Vec<String>,
    /// Only this company's events; `None`: every company's.
    pub company_id: Option<String>,
    pub description: String,
    pub sealed_secret: Sealed,
    pub created_at: Timestamp,
    pub removed_at: Option<Timestamp>,
}

impl Subscription {
    /// Whether it wants an event of `event_type` about `company`.
    pub fn wants(&self, event_type: &str, company: Option<&str>) -> bool {
        self.removed_at.is_none()
            && self.event_types.iter().any(|t| t == event_type)
            && match (&self.company_id, company) {
                (None, _) => true,
                (Some(only), Some(company)) => only == company,
                (Some(_), None) => false,
            }
    }
}

/// Something that happened, to be told to every subscription that wants
/// it: read from a topic at `offset` of `(topic, partition)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Occurrence {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    /// Tells apart several occurrences of one message (and seeds the
    /// message ids, so reading the message again makes the same ones).
    pub key: String,
    pub event_type: String,
    pub company_id: Option<String>,
    pub at: Timestamp,
    pub data: serde_json::Value,
    /// A connection's status: told only when it differs from the last one
    /// seen (its `data.previous_status` is set from it).
    pub connection_status: Option<(String, String)>,
}

/// A reconciliation check owed after a manifest: does the store hold
/// what the company's connections published of this data type?
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    pub company_id: String,
    pub data_type: String,
    pub due_at: Timestamp,
    /// 1, then 2 after a first mismatch (told only if it stays).
    pub attempt: i64,
}

/// A delivery as the log shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub id: String,
    pub message_id: String,
    pub subscription_id: String,
    pub event_type: String,
    pub company_id: Option<String>,
    pub payload: String,
    pub created_at: Timestamp,
    pub status: String,
    pub attempts: i64,
    pub next_attempt_at: Option<Timestamp>,
    pub last_attempt_at: Option<Timestamp>,
    pub last_status_code: Option<i64>,
    pub last_error: Option<String>,
    pub finished_at: Option<Timestamp>,
    pub replay_of: Option<String>,
}

/// A delivery queued by hand: a test event, a replay.
#[derive(Debug, Clone)]
pub struct NewDelivery<'a> {
    pub id: &'a str,
    /// The `webhook-id`: a replay keeps the original's.
    pub message_id: &'a str,
    pub subscription_id: &'a str,
    pub event_type: &'a str,
    pub company_id: Option<&'a str>,
    pub payload: &'a str,
    pub replay_of: Option<&'a str>,
}

/// One attempt of a delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    pub attempt: i64,
    pub at: Timestamp,
    pub duration_ms: i64,
    pub status_code: Option<i64>,
    pub error: Option<String>,
}

/// What became of an attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum AttemptOutcome {
    Delivered,
    /// Failed; tried again at this time.
    RetryAt(Timestamp),
    /// Failed, and the schedule is spent: given up.
    GiveUp,
}

const DELIVERY_COLUMNS: &str = "id, message_id, subscription_id, event_type, company_id, payload, created_at, \
     status, attempts, next_attempt_at, last_attempt_at, last_status_code, last_error, finished_at, replay_of";

type DeliveryRow = (
    String,
    String,
    String,
    String,
    Option<String>,
    String,
    i64,
    String,
    i64,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<String>,
    Option<i64>,
    Option<String>,
);

fn delivery(row: DeliveryRow) -> Delivery {
    let (
        id,
        message_id,
        subscription_id,
        event_type,
        company_id,
        payload,
        created_at,
        status,
        attempts,
        next_attempt_at,
        last_attempt_at,
        last_status_code,
        last_error,
        finished_at,
        replay_of,
    ) = row;
    Delivery {
        id,
        message_id,
        subscription_id,
        event_type,
        company_id,
        payload,
        created_at: Timestamp(created_at),
        status,
        attempts,
        next_attempt_at: next_attempt_at.map(Timestamp),
        last_attempt_at: last_attempt_at.map(Timestamp),
        last_status_code,
        last_error,
        finished_at: finished_at.map(Timestamp),
        replay_of,
    }
}

const SUBSCRIPTION_COLUMNS: &str = "id, url, event_types, company_id, description, key_id, nonce, ciphertext, created_at, removed_at";

type SubscriptionRow = (
    String,
    String,
    String,
    Option<String>,
    String,
    String,
    Vec<u8>,
    Vec<u8>,
    i64,
    Option<i64>,
);

fn subscription(row: SubscriptionRow) -> Result<Subscription, ProducerError> {
    let (id, url, types, company_id, description, key_id, nonce, ciphertext, created, removed) =
        row;
    let event_types = serde_json::from_str(&types).map_err(|e| {
        ProducerError::State(format!(
            "webhook subscription {id} has unreadable event types: {e}"
        ))
    })?;
    Ok(Subscription {
        id,
        url,
        event_types,
        company_id,
        description,
        sealed_secret: Sealed {
            key_id,
            nonce,
            ciphertext,
        },
        created_at: Timestamp(created),
        removed_at: removed.map(Timestamp),
    })
}

/// The message id (`webhook-id`) of an occurrence for a subscription: the
/// same whenever the same message is read again.
pub fn message_id(subscription_id: &str, occurrence: &Occurrence) -> String {
    use sha2::Digest;
    let mut hasher = sha2::Sha256::new();
    for part in [
        subscription_id,
        &occurrence.topic,
        &occurrence.partition.to_string(),
        &occurrence.offset.to_string(),
        &occurrence.key,
    ] {
        hasher.update(part.as_bytes());
        hasher.update([0u8]);
    }
    let digest = hasher.finalize();
    let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
    format!("msg_{hex}")
}

/// The JSON body of an occurrence: `type`, `timestamp`, `data`.
fn body(occurrence: &Occurrence) -> String {
    tributary_connector_api::webhook_events::WebhookEvent {
        event_type: occurrence.event_type.clone(),
        timestamp: occurrence.at.to_string(),
        data: occurrence.data.clone(),
    }
    .to_body()
}

const INSERT_DELIVERY: &str = "INSERT INTO webhook_deliveries \
     (id, message_id, subscription_id, event_type, company_id, payload, created_at, status, next_attempt_at, replay_of) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', $8, $9) ON CONFLICT (id) DO NOTHING";

impl StateStore {
    pub async fn add_subscription(&self, s: &Subscription) -> Result<(), ProducerError> {
        let types = serde_json::to_string(&s.event_types)
            .map_err(|e| ProducerError::State(format!("event types: {e}")))?;
        let sql = format!(
            "INSERT INTO webhook_subscriptions ({SUBSCRIPTION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NULL)"
        );
        on_pool!(self, p => sqlx::query(AssertSqlSafe(sql.as_str()))
            .bind(&s.id)
            .bind(&s.url)
            .bind(types)
            .bind(&s.company_id)
            .bind(&s.description)
            .bind(&s.sealed_secret.key_id)
            .bind(&s.sealed_secret.nonce)
            .bind(&s.sealed_secret.ciphertext)
            .bind(s.created_at.millis())
            .execute(p)
            .await
            .map(drop))
        .map_err(state_err)
    }

    /// Every subscription, removed ones included, oldest first.
    pub async fn subscriptions(&self) -> Result<Vec<Subscription>, ProducerError> {
        let sql = format!(
            "SELECT {SUBSCRIPTION_COLUMNS} FROM webhook_subscriptions ORDER BY created_at, id"
        );
        let rows =
            on_pool!(self, p => sqlx::query_as::<_, SubscriptionRow>(AssertSqlSafe(sql.as_str()))
            .fetch_all(p)
            .await)
            .map_err(state_err)?;
        rows.into_iter().map(subscription).collect()
    }

    pub async fn subscription(&self, id: &str) -> Result<Option<Subscription>, ProducerError> {
        let sql = format!("SELECT {SUBSCRIPTION_COLUMNS} FROM webhook_subscriptions WHERE id = $1");
        let row =
            on_pool!(self, p => sqlx::query_as::<_, SubscriptionRow>(AssertSqlSafe(sql.as_str()))
            .bind(id)
            .fetch_optional(p)
            .await)
            .map_err(state_err)?;
        row.map(subscription).transpose()
    }

    /// Replaces a subscription's sealed secret (key rotation).
    pub async fn reseal_subscription(
        &self,
        id: &str,
        sealed: &Sealed,
    ) -> Result<(), ProducerError> {
        const SQL: &str = "UPDATE webhook_subscriptions SET key_id = $1, nonce = $2, ciphertext = $3 WHERE id = $4";
        on_pool!(self, p => sqlx::query(SQL)
            .bind(&sealed.key_id)
            .bind(&sealed.nonce)
            .bind(&sealed.ciphertext)
            .bind(id)
            .execute(p)
            .await
            .map(drop))
        .map_err(state_err)
    }

    /// Removes a subscription: nothing new is queued for it and what was
    /// pending is cancelled; its log stays. False when there is no such
    /// subscription (or it was removed before).
    pub async fn remove_subscription(
        &self,
        id: &str,
        now: Timestamp,
    ) -> Result<bool, ProducerError> {
        on_pool!(self, p => async {
            let mut tx = p.begin().await?;
            let removed = sqlx::query(
                "UPDATE webhook_subscriptions SET removed_at = $1 WHERE id = $2 AND removed_at IS NULL",
            )
            .bind(now.millis())
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
            sqlx::query(
                "UPDATE webhook_deliveries SET status = 'cancelled', next_attempt_at = NULL, finished_at = $1 \
                 WHERE subscription_id = $2 AND status = 'pending'",
            )
            .bind(now.millis())
            .bind(id)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>(removed)
        }
        .await)
        .map_err(state_err)
    }

    /// The dispatcher's checkpoint: next offset per topic partition.
    pub async fn webhook_checkpoint(&self) -> Result<Vec<(String, i32, i64)>, ProducerError> {
        let rows = on_pool!(self, p => sqlx::query_as::<_, (String, i64, i64)>(
            "SELECT topic, partition, next_offset FROM webhook_checkpoints")
            .fetch_all(p)
            .await)
        .map_err(state_err)?;
        Ok(rows.into_iter().map(|(t, p, n)| (t, p as i32, n)).collect())
    }

    /// Queues a delivery of each occurrence to every subscription that
    /// wants it, and moves the checkpoint to `positions`, in one
    /// transaction. Occurrences below the stored checkpoint were queued
    /// before and are skipped. Returns how many deliveries were queued.
    pub async fn queue_occurrences(
        &self,
        occurrences: &[Occurrence],
        checks: &[Check],
        positions: &[(String, i32, i64)],
        now: Timestamp,
    ) -> Result<u64, ProducerError> {
        // A batch of manifests only tells no one: no need to read whom.
        let subscriptions: Vec<Subscription> = if occurrences.is_empty() {
            Vec::new()
        } else {
            self.subscriptions()
                .await?
                .into_iter()
                .filter(|s| s.removed_at.is_none())
                .collect()
        };
        let begin = self.begin_write();
        on_pool!(self, p => async {
            let mut tx = p.begin_with(begin).await?;
            let mut stored = std::collections::HashMap::new();
            for (topic, partition, _) in positions {
                let row: Option<(i64,)> = sqlx::query_as(
                    "SELECT next_offset FROM webhook_checkpoints WHERE topic = $1 AND partition = $2",
                )
                .bind(topic)
                .bind(*partition as i64)
                .fetch_optional(&mut *tx)
                .await?;
                if let Some((next,)) = row {
                    stored.insert((topic.clone(), *partition), next);
                }
            }
            let mut queued = 0;
            for occurrence in occurrences {
                let done = stored
                    .get(&(occurrence.topic.clone(), occurrence.partition))
                    .is_some_and(|next| occurrence.offset < *next);
                if done {
                    continue;
                }
                let mut occurrence = occurrence.clone();
                if let Some((connection_id, status)) = &occurrence.connection_status {
                    let previous: Option<(String,)> = sqlx::query_as(
                        "SELECT status FROM webhook_connection_status WHERE connection_id = $1",
                    )
                    .bind(connection_id)
                    .fetch_optional(&mut *tx)
                    .await?;
                    let previous = previous.map(|(s,)| s);
                    if previous.as_deref() == Some(status.as_str()) {
                        continue;
                    }
                    sqlx::query(
                        "INSERT INTO webhook_connection_status (connection_id, status) VALUES ($1, $2) \
                         ON CONFLICT (connection_id) DO UPDATE SET status = excluded.status",
                    )
                    .bind(connection_id)
                    .bind(status)
                    .execute(&mut *tx)
                    .await?;
                    occurrence.data["previous_status"] = previous.into();
                }
                let payload = body(&occurrence);
                for s in subscriptions
                    .iter()
                    .filter(|s| s.wants(&occurrence.event_type, occurrence.company_id.as_deref()))
                {
                    let id = message_id(&s.id, &occurrence);
                    queued += sqlx::query(INSERT_DELIVERY)
                        .bind(&id)
                        .bind(&id)
                        .bind(&s.id)
                        .bind(&occurrence.event_type)
                        .bind(&occurrence.company_id)
                        .bind(&payload)
                        .bind(now.millis())
                        .bind(now.millis())
                        .bind(None::<String>)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                }
            }
            for check in checks {
                sqlx::query(
                    "INSERT INTO webhook_checks (company_id, data_type, due_at, attempt) VALUES ($1, $2, $3, 1) \
                     ON CONFLICT (company_id, data_type) DO UPDATE SET due_at = excluded.due_at, attempt = 1",
                )
                .bind(&check.company_id)
                .bind(&check.data_type)
                .bind(check.due_at.millis())
                .execute(&mut *tx)
                .await?;
            }
            for (topic, partition, next) in positions {
                sqlx::query(
                    "INSERT INTO webhook_checkpoints (topic, partition, next_offset) VALUES ($1, $2, $3) \
                     ON CONFLICT (topic, partition) DO UPDATE SET next_offset = \
                     CASE WHEN excluded.next_offset > webhook_checkpoints.next_offset \
                     THEN excluded.next_offset ELSE webhook_checkpoints.next_offset END",
                )
                .bind(topic)
                .bind(*partition as i64)
                .bind(*next)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok::<_, sqlx::Error>(queued)
        }
        .await)
        .map_err(state_err)
    }

    /// Reconciliation checks due at `now`, oldest first, at most `limit`.
    pub async fn due_checks(
        &self,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<Check>, ProducerError> {
        const SQL: &str = "SELECT company_id, data_type, due_at, attempt FROM webhook_checks \
             WHERE due_at <= $1 ORDER BY due_at LIMIT $2";
        let rows = on_pool!(self, p => sqlx::query_as::<_, (String, String, i64, i64)>(SQL)
            .bind(now.millis())
            .bind(limit as i64)
            .fetch_all(p)
            .await)
        .map_err(state_err)?;
        Ok(rows
            .into_iter()
            .map(|(company_id, data_type, due, attempt)| Check {
                company_id,
                data_type,
                due_at: Timestamp(due),
                attempt,
            })
            .collect())
    }

    /// Ends a check, if it is still as read (no newer manifest replaced
    /// it, no other dispatcher ended it): whether this caller ended it.
    pub async fn end_check(&self, check: &Check) -> Result<bool, ProducerError> {
        const SQL: &str = "DELETE FROM webhook_checks WHERE company_id = $1 AND data_type = $2 \
             AND due_at = $3 AND attempt = $4";
        on_pool!(self, p => sqlx::query(SQL)
            .bind(&check.company_id)
            .bind(&check.data_type)
            .bind(check.due_at.millis())
            .bind(check.attempt)
            .execute(p)
            .await
            .map(|done| done.rows_affected() == 1))
        .map_err(state_err)
    }

    /// Makes a check due again at `due_at` as its next attempt, if it is
    /// still as read.
    pub async fn recheck(&self, check: &Check, due_at: Timestamp) -> Result<bool, ProducerError> {
        const SQL: &str = "UPDATE webhook_checks SET due_at = $1, attempt = attempt + 1 \
             WHERE company_id = $2 AND data_type = $3 AND due_at = $4 AND attempt = $5";
        on_pool!(self, p => sqlx::query(SQL)
            .bind(due_at.millis())
            .bind(&check.company_id)
            .bind(&check.data_type)
            .bind(check.due_at.millis())
            .bind(check.attempt)
            .execute(p)
            .await
            .map(|done| done.rows_affected() == 1))
        .map_err(state_err)
    }

    /// Queues one delivery to one subscription now (a test event, a replay).
    pub async fn queue_delivery(
        &self,
        d: &NewDelivery<'_>,
        now: Timestamp,
    ) -> Result<(), ProducerError> {
        on_pool!(self, p => sqlx::query(INSERT_DELIVERY)
            .bind(d.id)
            .bind(d.message_id)
            .bind(d.subscription_id)
            .bind(d.event_type)
            .bind(d.company_id)
            .bind(d.payload)
            .bind(now.millis())
            .bind(now.millis())
            .bind(d.replay_of)
            .execute(p)
            .await
            .map(drop))
        .map_err(state_err)
    }

    /// Subscriptions with a delivery due at `now` that no dispatcher holds.
    pub async fn subscriptions_due(&self, now: Timestamp) -> Result<Vec<String>, ProducerError> {
        const SQL: &str = "SELECT DISTINCT subscription_id FROM webhook_deliveries \
             WHERE next_attempt_at <= $1 AND (claimed_until IS NULL OR claimed_until <= $1)";
        let rows = on_pool!(self, p => sqlx::query_as::<_, (String,)>(SQL)
            .bind(now.millis())
            .fetch_all(p)
            .await)
        .map_err(state_err)?;
        Ok(rows.into_iter().map(|(s,)| s).collect())
    }

    /// When the next delivery is due, if any is pending.
    pub async fn next_delivery_due(&self) -> Result<Option<Timestamp>, ProducerError> {
        const SQL: &str =
            "SELECT MIN(next_attempt_at) FROM webhook_deliveries WHERE next_attempt_at IS NOT NULL";
        let row = on_pool!(self, p => sqlx::query_as::<_, (Option<i64>,)>(SQL)
            .fetch_one(p)
            .await)
        .map_err(state_err)?;
        Ok(row.0.map(Timestamp))
    }

    /// Claims for `owner`, until `until`, up to `limit` of a subscription's
    /// deliveries due at `now` (oldest due first). A claim lapses at
    /// `until`: a dispatcher that died mid-delivery leaves it to another.
    pub async fn claim_deliveries(
        &self,
        subscription_id: &str,
        owner: &str,
        now: Timestamp,
        until: Timestamp,
        limit: usize,
    ) -> Result<Vec<Delivery>, ProducerError> {
        // The due test is repeated outside the subquery: of two
        // dispatchers that picked the same row, one updates it.
        let sql = format!(
            "UPDATE webhook_deliveries SET claimed_by = $1, claimed_until = $2 \
             WHERE id IN (SELECT id FROM webhook_deliveries WHERE subscription_id = $3 \
                 AND next_attempt_at <= $4 AND (claimed_until IS NULL OR claimed_until <= $4) \
                 ORDER BY next_attempt_at, id LIMIT $5) \
             AND next_attempt_at <= $4 AND (claimed_until IS NULL OR claimed_until <= $4) \
             RETURNING {DELIVERY_COLUMNS}"
        );
        let rows =
            on_pool!(self, p => sqlx::query_as::<_, DeliveryRow>(AssertSqlSafe(sql.as_str()))
            .bind(owner)
            .bind(until.millis())
            .bind(subscription_id)
            .bind(now.millis())
            .bind(limit as i64)
            .fetch_all(p)
            .await)
            .map_err(state_err)?;
        let mut claimed: Vec<Delivery> = rows.into_iter().map(delivery).collect();
        claimed.sort_by(|a, b| (a.next_attempt_at, &a.id).cmp(&(b.next_attempt_at, &b.id)));
        Ok(claimed)
    }

    /// Records an attempt of a delivery `owner` holds, and what follows
    /// it. False when `owner` no longer holds it (its claim lapsed and
    /// another dispatcher took it): the attempt is not recorded.
    pub async fn record_attempt(
        &self,
        delivery_id: &str,
        owner: &str,
        attempt: &Attempt,
        outcome: &AttemptOutcome,
    ) -> Result<bool, ProducerError> {
        let (status, next, finished) = match outcome {
            AttemptOutcome::Delivered => ("delivered", None, Some(attempt.at.millis())),
            AttemptOutcome::RetryAt(at) => ("pending", Some(at.millis()), None),
            AttemptOutcome::GiveUp => ("failed", None, Some(attempt.at.millis())),
        };
        on_pool!(self, p => async {
            let mut tx = p.begin().await?;
            let held = sqlx::query(
                "UPDATE webhook_deliveries SET status = $1, attempts = attempts + 1, next_attempt_at = $2, \
                 finished_at = $3, last_attempt_at = $4, last_status_code = $5, last_error = $6, \
                 claimed_by = NULL, claimed_until = NULL \
                 WHERE id = $7 AND claimed_by = $8 AND status = 'pending'",
            )
            .bind(status)
            .bind(next)
            .bind(finished)
            .bind(attempt.at.millis())
            .bind(attempt.status_code)
            .bind(&attempt.error)
            .bind(delivery_id)
            .bind(owner)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
            if held {
                sqlx::query(
                    "INSERT INTO webhook_attempts (delivery_id, attempt, at, duration_ms, status_code, error) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(delivery_id)
                .bind(attempt.attempt)
                .bind(attempt.at.millis())
                .bind(attempt.duration_ms)
                .bind(attempt.status_code)
                .bind(&attempt.error)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok::<_, sqlx::Error>(held)
        }
        .await)
        .map_err(state_err)
    }

    /// Frees every delivery `owner` holds (a restarted dispatcher's).
    pub async fn release_deliveries_of(&self, owner: &str) -> Result<u64, ProducerError> {
        const SQL: &str = "UPDATE webhook_deliveries SET claimed_by = NULL, claimed_until = NULL WHERE claimed_by = $1";
        on_pool!(self, p => sqlx::query(SQL)
            .bind(owner)
            .execute(p)
            .await
            .map(|done| done.rows_affected()))
        .map_err(state_err)
    }

    /// Forgets deliveries that ended before `before`, with their attempts;
    /// how many. Pending ones are kept, however old.
    pub async fn prune_deliveries(&self, before: Timestamp) -> Result<u64, ProducerError> {
        on_pool!(self, p => async {
            let mut tx = p.begin().await?;
            sqlx::query(
                "DELETE FROM webhook_attempts WHERE delivery_id IN \
                 (SELECT id FROM webhook_deliveries WHERE finished_at < $1)",
            )
            .bind(before.millis())
            .execute(&mut *tx)
            .await?;
            let pruned = sqlx::query("DELETE FROM webhook_deliveries WHERE finished_at < $1")
                .bind(before.millis())
                .execute(&mut *tx)
                .await?
                .rows_affected();
            tx.commit().await?;
            Ok::<_, sqlx::Error>(pruned)
        }
        .await)
        .map_err(state_err)
    }

    /// A subscription's deliveries, newest first, at most `limit`, older
    /// than delivery `before` when given; of one status when given.
    pub async fn deliveries(
        &self,
        subscription_id: &str,
        status: Option<&str>,
        before: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Delivery>, ProducerError> {
        let sql = format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE subscription_id = $1 \
             AND ($2 IS NULL OR status = $2) \
             AND ($3 IS NULL OR (created_at, id) < (SELECT created_at, id FROM webhook_deliveries WHERE id = $3)) \
             ORDER BY created_at DESC, id DESC LIMIT $4"
        );
        let rows =
            on_pool!(self, p => sqlx::query_as::<_, DeliveryRow>(AssertSqlSafe(sql.as_str()))
            .bind(subscription_id)
            .bind(status)
            .bind(before)
            .bind(limit as i64)
            .fetch_all(p)
            .await)
            .map_err(state_err)?;
        Ok(rows.into_iter().map(delivery).collect())
    }

    pub async fn delivery(&self, id: &str) -> Result<Option<Delivery>, ProducerError> {
        let sql = format!("SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE id = $1");
        let row = on_pool!(self, p => sqlx::query_as::<_, DeliveryRow>(AssertSqlSafe(sql.as_str()))
            .bind(id)
            .fetch_optional(p)
            .await)
        .map_err(state_err)?;
        Ok(row.map(delivery))
    }

    /// A delivery's attempts, first first.
    pub async fn attempts(&self, delivery_id: &str) -> Result<Vec<Attempt>, ProducerError> {
        const SQL: &str = "SELECT attempt, at, duration_ms, status_code, error FROM webhook_attempts \
             WHERE delivery_id = $1 ORDER BY attempt";
        let rows = on_pool!(self, p => sqlx::query_as::<_, (i64, i64, i64, Option<i64>, Option<String>)>(SQL)
            .bind(delivery_id)
            .fetch_all(p)
            .await)
        .map_err(state_err)?;
        Ok(rows
            .into_iter()
            .map(|(attempt, at, duration_ms, status_code, error)| Attempt {
                attempt,
                at: Timestamp(at),
                duration_ms,
                status_code,
                error,
            })
            .collect())
    }

    /// How many deliveries are in each status, per subscription.
    pub async fn delivery_counts(&self) -> Result<Vec<(String, String, i64)>, ProducerError> {
        const SQL: &str = "SELECT subscription_id, status, COUNT(*) FROM webhook_deliveries \
             GROUP BY subscription_id, status";
        on_pool!(self, p => sqlx::query_as::<_, (String, String, i64)>(SQL)
            .fetch_all(p)
            .await)
        .map_err(state_err)
    }
}
