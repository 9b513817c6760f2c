//! Sending queued deliveries: claimed from the state store (so any
//! dispatcher process continues another's work), signed, posted, and on
//! failure tried again by the retry schedule until it is spent.
//!
//! Each subscription is sent by a task of its own, one delivery after
//! another: a slow or dead subscriber holds up only its own deliveries.
//! A claim lapses after `claim` (a dispatcher killed mid-delivery leaves
//! its claims to others then); a restarted dispatcher frees its own at
//! once. A delivery can thus be sent twice (killed after the receiver
//! took it, before the outcome was saved): always with the same
//! `webhook-id`, by which receivers deduplicate.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tributary_connector_http::NetworkPolicy;
use tributary_producer::secrets::Cipher;
use tributary_producer::state::{Attempt, AttemptOutcome, Delivery, Subscription};
use tributary_producer::{ProducerError, StateStore};
use tributary_schemas::Timestamp;

use crate::sign::SigningSecret;
use crate::{Clock, metrics};

/// How the dispatcher sends and retries.
#[derive(Debug, Clone)]
pub struct DispatchSettings {
    /// Who claims deliveries (unique per process, stable across restarts).
    pub owner: String,
    /// The waits after each failed attempt: one more attempt than waits,
    /// then the delivery is given up.
    pub schedule: Vec<Duration>,
    /// Longest wait for a subscriber's answer.
    pub timeout: Duration,
    /// Deliveries of one subscription claimed at once.
    pub batch: usize,
    /// Longest wait between two looks for due deliveries (others' replays
    /// and tests; this process's own queueing wakes it at once).
    pub poll: Duration,
    /// How long an ended delivery stays in the log.
    pub keep: Duration,
}

impl DispatchSettings {
    /// How long a claim on `batch` deliveries holds.
    fn claim(&self) -> Duration {
        self.timeout * (self.batch as u32 + 1) + Duration::from_secs(30)
    }

    /// What follows failed attempt number `attempt` (1 is the first).
    pub fn after_failure(&self, attempt: i64, now: Timestamp) -> AttemptOutcome {
        match usize::try_from(attempt - 1)
            .ok()
            .and_then(|i| self.schedule.get(i))
        {
            Some(wait) => AttemptOutcome::RetryAt(Timestamp(
                now.millis() + i64::try_from(wait.as_millis()).unwrap_or(i64::MAX / 2),
            )),
            None => AttemptOutcome::GiveUp,
        }
    }
}

/// What a subscriber answered: its status code, or why there was none.
pub type Answer = Result<u16, String>;

/// How a signed request reaches a subscriber.
#[async_trait]
pub trait Transport: Send + Sync {
    async fn post(&self, url: &str, headers: &[(&'static str, String)], body: &str) -> Answer;
}

/// Over HTTPS, through the same outbound guard as connectors: no internal
/// addresses (unless `security.allow_private_network`), no redirects.
pub struct HttpTransport {
    client: reqwest::Client,
    policy: NetworkPolicy,
}

impl HttpTransport {
    pub fn new(policy: NetworkPolicy, timeout: Duration) -> Result<Self, String> {
        let client =
            tributary_connector_http::client(policy, timeout).map_err(|e| e.to_string())?;
        Ok(HttpTransport { client, policy })
    }
}

/// Bytes of a subscriber's answer read (and dropped).
const ANSWER_LIMIT: usize = 64 * 1024;

#[async_trait]
impl Transport for HttpTransport {
    async fn post(&self, url: &str, headers: &[(&'static str, String)], body: &str) -> Answer {
        let url =
            tributary_connector_http::check_url(url, self.policy).map_err(|e| e.to_string())?;
        let mut request = self
            .client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_string());
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let response = request
            .send()
            .await
            .map_err(|e| tributary_connector_http::oauth::error_chain(&e))?;
        let status = response.status().as_u16();
        // Read, so the connection can be used again; what it says is not kept.
        let _ = tributary_connector_http::read_body(response, ANSWER_LIMIT).await;
        Ok(status)
    }
}

/// What the dispatcher keeps its deliveries in: the state store (any
/// dispatcher process continues another's work), or in a test a model of it.
#[async_trait]
pub trait DeliveryStore: Send + Sync {
    /// Frees every claim `owner` holds; how many.
    async fn release_claims_of(&self, owner: &str) -> Result<u64, ProducerError>;
    /// Subscriptions with an unclaimed delivery due at `now`.
    async fn subscriptions_due(&self, now: Timestamp) -> Result<Vec<String>, ProducerError>;
    /// When the next pending delivery is due.
    async fn next_due(&self) -> Result<Option<Timestamp>, ProducerError>;
    /// Claims up to `limit` of a subscription's due deliveries until `until`.
    async fn claim(
        &self,
        subscription_id: &str,
        owner: &str,
        now: Timestamp,
        until: Timestamp,
        limit: usize,
    ) -> Result<Vec<Delivery>, ProducerError>;
    async fn subscription(&self, id: &str) -> Result<Option<Subscription>, ProducerError>;
    /// Forgets deliveries that ended before `before`; how many.
    async fn prune(&self, before: Timestamp) -> Result<u64, ProducerError>;
    /// Saves an attempt and its outcome if `owner` still holds the delivery.
    async fn record(
        &self,
        delivery_id: &str,
        owner: &str,
        attempt: &Attempt,
        outcome: &AttemptOutcome,
    ) -> Result<bool, ProducerError>;
}

#[async_trait]
impl DeliveryStore for StateStore {
    async fn release_claims_of(&self, owner: &str) -> Result<u64, ProducerError> {
        self.release_deliveries_of(owner).await
    }
    async fn subscriptions_due(&self, now: Timestamp) -> Result<Vec<String>, ProducerError> {
        StateStore::subscriptions_due(self, now).await
    }
    async fn next_due(&self) -> Result<Option<Timestamp>, ProducerError> {
        self.next_delivery_due().await
    }
    async fn claim(
        &self,
        subscription_id: &str,
        owner: &str,
        now: Timestamp,
        until: Timestamp,
        limit: usize,
    ) -> Result<Vec<Delivery>, ProducerError> {
        self.claim_deliveries(subscription_id, owner, now, until, limit)
            .await
    }
    async fn subscription(&self, id: &str) -> Result<Option<Subscription>, ProducerError> {
        StateStore::subscription(self, id).await
    }
    async fn prune(&self, before: Timestamp) -> Result<u64, ProducerError> {
        self.prune_deliveries(before).await
    }
    async fn record(
        &self,
        delivery_id: &str,
        owner: &str,
        attempt: &Attempt,
        outcome: &AttemptOutcome,
    ) -> Result<bool, ProducerError> {
        self.record_attempt(delivery_id, owner, attempt, outcome)
            .await
    }
}

/// Sends what is due until `shutdown`.
pub struct Dispatcher {
    pub store: Arc<dyn DeliveryStore>,
    pub cipher: Arc<Cipher>,
    pub transport: Arc<dyn Transport>,
    pub settings: DispatchSettings,
    pub clock: Clock,
    /// Notified when something was queued in this process.
    pub wake: Arc<Notify>,
}

impl Dispatcher {
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        match self.store.release_claims_of(&self.settings.owner).await {
            Ok(0) => {}
            Ok(n) => {
                tracing::info!(owner = %self.settings.owner, deliveries = n, "freed this dispatcher's claims from before its restart")
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot free this dispatcher's old claims; they lapse by themselves")
            }
        }
        let mut sending: HashMap<String, JoinHandle<()>> = HashMap::new();
        let mut pruned_at: Option<Timestamp> = None;
        loop {
            sending.retain(|_, task| !task.is_finished());
            let now = self.clock.now();
            if pruned_at.is_none_or(|at| now.millis() - at.millis() >= PRUNE_EVERY_MS) {
                pruned_at = Some(now);
                let before = Timestamp(now.millis() - millis(self.settings.keep));
                match self.store.prune(before).await {
                    Ok(0) => {}
                    Ok(n) => {
                        tracing::info!(deliveries = n, before = %before, "forgot webhook deliveries past webhooks.log_days")
                    }
                    Err(e) => metrics::error("prune the delivery log", &e.to_string()),
                }
            }
            match self.store.subscriptions_due(now).await {
                Ok(due) => {
                    for subscription in due {
                        if sending.contains_key(&subscription) {
                            continue;
                        }
                        let me = Arc::clone(&self);
                        let id = subscription.clone();
                        sending.insert(
                            subscription,
                            tokio::spawn(async move { me.send_due(&id).await }),
                        );
                    }
                }
                Err(e) => metrics::error("find due deliveries", &e.to_string()),
            }
            let wait = match self.store.next_due().await {
                Ok(Some(next)) => Duration::from_millis(
                    u64::try_from(next.millis() - self.clock.now().millis()).unwrap_or(0),
                )
                .clamp(Duration::from_millis(50), self.settings.poll),
                _ => self.settings.poll,
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.wake.notified() => {}
                _ = shutdown.changed() => break,
            }
        }
        // What is mid-send finishes (or its claim lapses); nothing new starts.
        for (_, task) in sending {
            let _ = tokio::time::timeout(self.settings.timeout, task).await;
        }
    }

    /// Sends a subscription's due deliveries, oldest first, until none is due.
    async fn send_due(&self, subscription_id: &str) {
        loop {
            let now = self.clock.now();
            let until = Timestamp(now.millis() + millis(self.settings.claim()));
            let claimed = match self
                .store
                .claim(
                    subscription_id,
                    &self.settings.owner,
                    now,
                    until,
                    self.settings.batch,
                )
                .await
            {
                Ok(claimed) if claimed.is_empty() => return,
                Ok(claimed) => claimed,
                Err(e) => return metrics::error("claim deliveries", &e.to_string()),
            };
            let subscription = match self.store.subscription(subscription_id).await {
                Ok(Some(s)) => s,
                Ok(None) => {
                    return metrics::error(
                        "send",
                        &format!("deliveries for unknown subscription {subscription_id}"),
                    );
                }
                Err(e) => return metrics::error("read subscription", &e.to_string()),
            };
            let secret = self
                .cipher
                .open(
                    &crate::secret_aad(&subscription.id),
                    &subscription.sealed_secret,
                )
                .map_err(|e| format!("cannot open the signing secret: {e}"))
                .and_then(|bytes| {
                    SigningSecret::parse(&String::from_utf8_lossy(&bytes))
                        .map_err(|e| e.to_string())
                });
            for delivery in claimed {
                self.attempt(&subscription, secret.as_ref(), &delivery)
                    .await;
            }
        }
    }

    /// One attempt of one delivery, and its outcome saved.
    async fn attempt(
        &self,
        subscription: &Subscription,
        secret: Result<&SigningSecret, &String>,
        delivery: &Delivery,
    ) {
        let at = self.clock.now();
        let started = Instant::now();
        let answer: Answer = match secret {
            Ok(secret) => {
                let timestamp = at.millis().div_euclid(1000);
                let headers = [
                    ("webhook-id", delivery.message_id.clone()),
                    ("webhook-timestamp", timestamp.to_string()),
                    (
                        "webhook-signature",
                        secret.sign(&delivery.message_id, timestamp, &delivery.payload),
                    ),
                ];
                self.transport
                    .post(&subscription.url, &headers, &delivery.payload)
                    .await
            }
            Err(why) => Err(why.clone()),
        };
        let number = delivery.attempts + 1;
        let (status_code, error) = match &answer {
            Ok(code) if (200..300).contains(code) => (Some(i64::from(*code)), None),
            Ok(code) => (Some(i64::from(*code)), Some(format!("answered {code}"))),
            Err(why) => (None, Some(why.clone())),
        };
        // The wait runs from the attempt's end: a subscriber that times
        // out is not tried again the moment it gave up.
        let outcome = match error {
            None => AttemptOutcome::Delivered,
            Some(_) => self.settings.after_failure(number, self.clock.now()),
        };
        let attempt = Attempt {
            attempt: number,
            at,
            duration_ms: millis(started.elapsed()),
            status_code,
            error,
        };
        metrics::attempted(&subscription.id, &delivery.event_type, &attempt, &outcome);
        // Saved until it is: an outcome lost would send the delivery again.
        loop {
            match self
                .store
                .record(&delivery.id, &self.settings.owner, &attempt, &outcome)
                .await
            {
                Ok(true) => return,
                Ok(false) => {
                    tracing::warn!(delivery = %delivery.id, "the claim on this delivery lapsed before its outcome was saved; another dispatcher sends it again with the same webhook-id");
                    return;
                }
                Err(e) => metrics::error("save an attempt", &e.to_string()),
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

/// How often ended deliveries past `keep` are forgotten.
const PRUNE_EVERY_MS: i64 = 3_600_000;

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
