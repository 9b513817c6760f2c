//! Subscriptions and the delivery log, for the API and the CLI.

use std::sync::Arc;

use serde_json::json;
use tributary_connector_api::admin::{
    AdminError, DeliveryFilter, NewSubscription, WebhookAdmin, WebhookView,
};
use tributary_connector_http::NetworkPolicy;
use tributary_producer::StateStore;
use tributary_producer::secrets::Cipher;
use tributary_producer::state::{Attempt, Delivery, NewDelivery, Subscription};
use tributary_schemas::Timestamp;

use crate::events::TEST;
use crate::sign::SigningSecret;
use crate::{Clock, secret_aad};
use tributary_connector_api::views::{self, AttemptBody, DeliveryBody, SubscriptionBody};
use tributary_connector_api::webhook_events::{WebhookEvent, event_type_names, is_event_type};

/// [`WebhookAdmin`] over the state store.
pub struct Webhooks {
    pub state: StateStore,
    pub cipher: Arc<Cipher>,
    /// Which subscriber URLs are allowed: the connectors' outbound guard.
    pub policy: NetworkPolicy,
    pub clock: Clock,
}

fn failed(e: impl std::fmt::Display) -> AdminError {
    AdminError::Failed(e.to_string())
}

fn random_id(prefix: &str) -> String {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 12];
    let _ = ring::rand::SystemRandom::new().fill(&mut bytes);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{prefix}_{hex}")
}

fn subscription_view(s: &Subscription) -> WebhookView {
    views::json(&SubscriptionBody {
        id: s.id.clone(),
        url: s.url.clone(),
        event_types: s.event_types.clone(),
        company_id: s.company_id.clone(),
        description: s.description.clone(),
        created_at: s.created_at.to_string(),
        removed_at: s.removed_at.map(|t| t.to_string()),
    })
}

fn delivery_body(d: &Delivery) -> DeliveryBody {
    let payload: serde_json::Value =
        serde_json::from_str(&d.payload).unwrap_or_else(|_| d.payload.clone().into());
    DeliveryBody {
        id: d.id.clone(),
        message_id: d.message_id.clone(),
        subscription_id: d.subscription_id.clone(),
        event_type: d.event_type.clone(),
        company_id: d.company_id.clone(),
        status: d.status.clone(),
        attempts: d.attempts,
        created_at: d.created_at.to_string(),
        next_attempt_at: d.next_attempt_at.map(|t| t.to_string()),
        last_attempt_at: d.last_attempt_at.map(|t| t.to_string()),
        last_status_code: d.last_status_code,
        last_error: d.last_error.clone(),
        finished_at: d.finished_at.map(|t| t.to_string()),
        replay_of: d.replay_of.clone(),
        payload,
        attempt_log: None,
    }
}

fn delivery_view(d: &Delivery) -> WebhookView {
    views::json(&delivery_body(d))
}

fn attempt_body(a: &Attempt) -> AttemptBody {
    AttemptBody {
        attempt: a.attempt,
        at: a.at.to_string(),
        duration_ms: a.duration_ms,
        status_code: a.status_code,
        error: a.error.clone(),
    }
}

impl Webhooks {
    async fn stored(&self, id: &str) -> Result<Subscription, AdminError> {
        self.state
            .subscription(id)
            .await
            .map_err(failed)?
            .ok_or_else(|| AdminError::NotFound(format!("no webhook subscription {id:?}")))
    }

    async fn active(&self, id: &str) -> Result<Subscription, AdminError> {
        let s = self.stored(id).await?;
        match s.removed_at {
            Some(at) => Err(AdminError::BadRequest(format!(
                "webhook subscription {id} was removed at {at}"
            ))),
            None => Ok(s),
        }
    }

    /// Re-seals every subscription's secret with the current key; returns
    /// how many (key rotation, with the connections' credentials).
    pub async fn rotate_key(&self) -> Result<usize, AdminError> {
        let mut n = 0;
        for s in self.state.subscriptions().await.map_err(failed)? {
            let aad = secret_aad(&s.id);
            let secret = self.cipher.open(&aad, &s.sealed_secret).map_err(failed)?;
            let sealed = self.cipher.seal(&aad, &secret);
            self.state
                .reseal_subscription(&s.id, &sealed)
                .await
                .map_err(failed)?;
            n += 1;
        }
        Ok(n)
    }
}

#[async_trait::async_trait]
impl WebhookAdmin for Webhooks {
    async fn subscriptions(&self) -> Result<Vec<WebhookView>, AdminError> {
        let list = self.state.subscriptions().await.map_err(failed)?;
        Ok(list.iter().map(subscription_view).collect())
    }

    async fn subscription(&self, id: &str) -> Result<WebhookView, AdminError> {
        Ok(subscription_view(&self.stored(id).await?))
    }

    async fn subscribe(&self, new: NewSubscription) -> Result<(WebhookView, String), AdminError> {
        let url = tributary_connector_http::check_url(new.url.trim(), self.policy)
            .map_err(|e| AdminError::BadRequest(format!("webhook url: {e}")))?;
        if new.event_types.is_empty() {
            return Err(AdminError::BadRequest(format!(
                "name at least one event type; known: {}",
                event_type_names()
            )));
        }
        let mut event_types = Vec::new();
        for t in new.event_types {
            let t = t.trim().to_string();
            if !is_event_type(&t) {
                return Err(AdminError::BadRequest(format!(
                    "unknown event type {t:?}; known: {}",
                    event_type_names()
                )));
            }
            if !event_types.contains(&t) {
                event_types.push(t);
            }
        }
        let company_id = new.company_id.filter(|c| !c.trim().is_empty());
        let id = random_id("sub");
        let secret = SigningSecret::generate();
        let subscription = Subscription {
            sealed_secret: self
                .cipher
                .seal(&secret_aad(&id), secret.expose().as_bytes()),
            id,
            url: url.to_string(),
            event_types,
            company_id,
            description: new.description,
            created_at: self.clock.now(),
            removed_at: None,
        };
        self.state
            .add_subscription(&subscription)
            .await
            .map_err(failed)?;
        Ok((subscription_view(&subscription), secret.expose()))
    }

    async fn unsubscribe(&self, id: &str) -> Result<(), AdminError> {
        self.active(id).await?;
        self.state
            .remove_subscription(id, self.clock.now())
            .await
            .map_err(failed)?;
        Ok(())
    }

    async fn test(&self, id: &str) -> Result<WebhookView, AdminError> {
        let s = self.active(id).await?;
        let now = self.clock.now();
        let message_id = random_id("msg");
        let payload = WebhookEvent {
            event_type: TEST.to_string(),
            timestamp: now.to_string(),
            data: json!({"subscription_id": s.id, "company_id": s.company_id}),
        }
        .to_body();
        let delivery = NewDelivery {
            id: &message_id,
            message_id: &message_id,
            subscription_id: &s.id,
            event_type: TEST,
            company_id: s.company_id.as_deref(),
            payload: &payload,
            replay_of: None,
        };
        self.state
            .queue_delivery(&delivery, now)
            .await
            .map_err(failed)?;
        self.delivery(&message_id).await
    }

    async fn deliveries(
        &self,
        subscription_id: &str,
        filter: &DeliveryFilter,
    ) -> Result<Vec<WebhookView>, AdminError> {
        self.stored(subscription_id).await?;
        if let Some(status) = &filter.status
            && !["pending", "delivered", "failed", "cancelled"].contains(&status.as_str())
        {
            return Err(AdminError::BadRequest(format!(
                "unknown delivery status {status:?}; known: pending, delivered, failed, cancelled"
            )));
        }
        let list = self
            .state
            .deliveries(
                subscription_id,
                filter.status.as_deref(),
                filter.before.as_deref(),
                filter.limit,
            )
            .await
            .map_err(failed)?;
        Ok(list.iter().map(delivery_view).collect())
    }

    async fn delivery(&self, id: &str) -> Result<WebhookView, AdminError> {
        let d = self
            .state
            .delivery(id)
            .await
            .map_err(failed)?
            .ok_or_else(|| AdminError::NotFound(format!("no webhook delivery {id:?}")))?;
        let attempts = self.state.attempts(id).await.map_err(failed)?;
        let mut body = delivery_body(&d);
        body.attempt_log = Some(attempts.iter().map(attempt_body).collect());
        Ok(views::json(&body))
    }

    async fn replay(&self, id: &str) -> Result<WebhookView, AdminError> {
        let d = self
            .state
            .delivery(id)
            .await
            .map_err(failed)?
            .ok_or_else(|| AdminError::NotFound(format!("no webhook delivery {id:?}")))?;
        self.active(&d.subscription_id).await?;
        let now: Timestamp = self.clock.now();
        let replay_id = format!("{}.replay_{}", d.message_id, now.millis());
        let replay = NewDelivery {
            id: &replay_id,
            message_id: &d.message_id,
            subscription_id: &d.subscription_id,
            event_type: &d.event_type,
            company_id: d.company_id.as_deref(),
            payload: &d.payload,
            replay_of: Some(&d.id),
        };
        self.state
            .queue_delivery(&replay, now)
            .await
            .map_err(failed)?;
        self.delivery(&replay_id).await
    }
}
