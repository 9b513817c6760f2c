//! Connection administration over the workers' state store: add, list,
//! check, remove, OAuth2 authorization, sync requests and credential key
//! rotation. One connector runtime: the same registry, cipher and call
//! limits as the workers, so a check from the API counts against a source's
//! limits like a sync does. The HTTP API and the CLI both drive it through
//! [`ConnectionAdmin`].

use std::sync::Arc;

use serde_json::{Value, json};
use tributary_connector_api::admin::{
    AdminError, ConnectionAdmin, ConnectionView, RunFilter, RunView,
};
use tributary_connector_api::views::{self, ConnectionBody, RunBody, RunStateBody};
use tributary_connector_api::{ConnectionInfo, ConnectorRegistry, Webhook, WebhookRefusal};
use tributary_schemas::{ConnectionStatus, DataType, ManifestEvent, SyncTrigger, Timestamp};

use crate::limits::Limiters;
use crate::secrets::{Cipher, Key};
use crate::state::{AlreadyOpen, SyncRun};
use crate::vault::StateVault;
use crate::{
    ProducerError, StateStore, StoredConnection, SyncPlan, SyncSettings, fetch_with_retry,
};

/// How long an authorization URL stays valid.
const AUTHORIZATION_MAX_AGE_MS: i64 = 30 * 60 * 1000;

/// Connection management for one state store.
pub struct Admin {
    pub state: StateStore,
    pub registry: Arc<ConnectorRegistry>,
    pub cipher: Arc<Cipher>,
    pub settings: SyncSettings,
    pub limiters: Arc<Limiters>,
}

fn view(c: &StoredConnection) -> ConnectionView {
    views::json(&ConnectionBody {
        id: c.info.connection_id.clone(),
        company_id: c.info.company_id.clone(),
        source: c.info.source.clone(),
        status: c.status.as_str().to_string(),
        status_reason: c.status_reason.clone(),
        settings: c.info.settings.clone(),
        created_at: c.created_at.to_string(),
        updated_at: c.updated_at.to_string(),
    })
}

/// A run as the API shows it: its states in order, each with its time.
pub fn run_view(r: &SyncRun) -> RunView {
    views::json(&RunBody {
        id: r.id.clone(),
        company_id: r.company_id.clone(),
        connection_id: r.connection_id.clone(),
        data_type: r.data_type.as_str().to_string(),
        trigger: r.trigger.as_str().to_string(),
        record_id: r.record_id.clone(),
        status: r.status.as_str().to_string(),
        states: r
            .states()
            .into_iter()
            .map(|(state, at)| RunStateBody {
                state: state.as_str().to_string(),
                at: at.to_string(),
            })
            .collect(),
        worker: r.worker.clone(),
        pages_fetched: r.pages_fetched,
        records_fetched: r.records_fetched,
        records_published: r.records_published,
        records_dead_lettered: r.records_dead_lettered,
        records_deleted: r.records_deleted,
        error: r.error.clone(),
        error_fault: r.error_fault.clone(),
        resumed_from: r.resumed_from.clone(),
        repeats: r.repeats,
    })
}

fn failed(e: impl std::fmt::Display) -> AdminError {
    AdminError::Failed(e.to_string())
}

fn user_or_failed(e: tributary_connector_api::ConnectorError) -> AdminError {
    if e.fault == tributary_connector_api::Fault::User {
        AdminError::BadRequest(e.to_string())
    } else {
        AdminError::Failed(e.to_string())
    }
}

impl Admin {
    pub fn new(
        state: StateStore,
        registry: ConnectorRegistry,
        cipher: Cipher,
        settings: SyncSettings,
    ) -> Admin {
        Admin {
            state,
            registry: Arc::new(registry),
            cipher: Arc::new(cipher),
            settings,
            limiters: Arc::new(Limiters::default()),
        }
    }

    fn vault(&self, connection_id: &str) -> Arc<StateVault> {
        StateVault::new(&self.state, &self.cipher, connection_id)
    }

    async fn stored(&self, id: &str) -> Result<StoredConnection, AdminError> {
        self.state
            .connection(id)
            .await
            .map_err(failed)?
            .ok_or_else(|| AdminError::NotFound(format!("no connection {id:?}")))
    }

    /// A company's connections that sync (not unlinked, not waiting for
    /// authorization); not found when it has none.
    async fn linked(&self, company_id: &str) -> Result<Vec<StoredConnection>, AdminError> {
        let connections: Vec<StoredConnection> = self
            .state
            .connections()
            .await
            .map_err(failed)?
            .into_iter()
            .filter(|c| {
                c.info.company_id == company_id
                    && !matches!(
                        c.status,
                        ConnectionStatus::Unlinked | ConnectionStatus::PendingAuth
                    )
            })
            .collect();
        if connections.is_empty() {
            return Err(AdminError::NotFound(format!(
                "company {company_id:?} has no linked connection"
            )));
        }
        Ok(connections)
    }

    /// Queues runs, all or none: a conflict names the open run.
    async fn queue(
        &self,
        company_id: &str,
        wanted: &[(&str, &str, DataType)],
        trigger: SyncTrigger,
        record_id: Option<&str>,
    ) -> Result<Vec<RunView>, AdminError> {
        match self
            .state
            .queue_runs(wanted, trigger, record_id)
            .await
            .map_err(failed)?
        {
            Ok(runs) => {
                tracing::info!(company = %company_id, runs = runs.len(), %trigger, "runs queued");
                Ok(runs.iter().map(run_view).collect())
            }
            Err(AlreadyOpen(open)) => Err(AdminError::Conflict {
                message: format!(
                    "run {} of {} for company {company_id} (connection {}) is {} already: nothing was queued",
                    open.id, open.data_type, open.connection_id, open.status
                ),
                open: run_view(&open),
            }),
        }
    }

    /// Re-seals every connection's credentials with the current key.
    pub async fn rotate_key(&self) -> Result<usize, ProducerError> {
        let mut n = 0;
        for c in self.state.connections().await? {
            let id = &c.info.connection_id;
            if let Some(sealed) = self.state.sealed_credentials(id).await? {
                let plain = self.cipher.open(id, &sealed).map_err(|e| {
                    ProducerError::State(format!("credentials of connection {id}: {e}"))
                })?;
                let resealed = self.cipher.seal(id, &plain);
                self.state
                    .save_sealed_credentials(id, &resealed, Timestamp::now())
                    .await?;
                n += 1;
            }
        }
        Ok(n)
    }
}

#[async_trait::async_trait]
impl ConnectionAdmin for Admin {
    async fn list(&self) -> Result<Vec<ConnectionView>, AdminError> {
        Ok(self
            .state
            .connections()
            .await
            .map_err(failed)?
            .iter()
            .map(view)
            .collect())
    }

    async fn add(
        &self,
        company_id: &str,
        source: &str,
        settings: Value,
    ) -> Result<(ConnectionView, Option<String>), AdminError> {
        if company_id.is_empty()
            || !company_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(AdminError::BadRequest(format!(
                "company id {company_id:?} must be letters, digits, '-', '_' or '.'"
            )));
        }
        let factory = self.registry.factory(source).map_err(user_or_failed)?;
        factory.check_settings(&settings).map_err(user_or_failed)?;
        let connection_id = format!(
            "conn-{source}-{company_id}-{}",
            &Key::generate().to_hex()[..8]
        );
        let info = ConnectionInfo {
            connection_id: connection_id.clone(),
            company_id: company_id.to_string(),
            source: source.to_string(),
            settings,
        };
        let needs_auth = factory.needs_authorization();
        let now = Timestamp::now();
        self.state
            .add_connection_with_status(
                &info,
                if needs_auth {
                    ConnectionStatus::PendingAuth
                } else {
                    ConnectionStatus::Linked
                },
                now,
            )
            .await
            .map_err(failed)?;
        let url = if needs_auth {
            let state = Key::generate().to_hex();
            self.state
                .start_authorization(&state, &connection_id, now)
                .await
                .map_err(failed)?;
            Some(
                factory
                    .authorization_url(&info, &state, self.vault(&connection_id))
                    .await
                    .map_err(user_or_failed)?,
            )
        } else {
            None
        };
        Ok((view(&self.stored(&connection_id).await?), url))
    }

    async fn check(&self, connection_id: &str) -> Result<String, AdminError> {
        let stored = self.stored(connection_id).await?;
        if stored.status == ConnectionStatus::Unlinked {
            return Err(AdminError::BadRequest(format!(
                "connection {connection_id} is unlinked"
            )));
        }
        let connector = self
            .registry
            .build(&stored.info, self.vault(connection_id))
            .map_err(user_or_failed)?;
        connector.authenticate().await.map_err(user_or_failed)?;
        let data_type = connector.data_types()[0];
        let limiter = connector.rate_limits().map(|l| self.limiters.get(&l));
        let request = tributary_connector_api::PageRequest {
            data_type,
            cursor: None,
            now: Timestamp::now(),
            page_size: 1,
        };
        let page = fetch_with_retry(
            connector.as_ref(),
            &request,
            &self.settings,
            limiter.as_deref(),
        )
        .await
        .map_err(user_or_failed)?;
        let mapped = page
            .records
            .iter()
            .filter(|r| connector.map(data_type, r).is_ok())
            .count();
        Ok(format!(
            "authenticated; fetched {} {data_type} record(s), {mapped} mapped",
            page.records.len()
        ))
    }

    async fn remove(&self, connection_id: &str) -> Result<(), AdminError> {
        self.stored(connection_id).await?;
        self.state
            .unlink(connection_id, "removed by an operator", Timestamp::now())
            .await
            .map_err(failed)
    }

    async fn sync_settings(&self, connection_id: &str) -> Result<Value, AdminError> {
        let stored = self.stored(connection_id).await?;
        let offered = self
            .registry
            .build(&stored.info, self.vault(connection_id))
            .map_err(user_or_failed)?
            .data_types();
        let plan = stored.plan.over(&self.settings.plan);
        let effective: Vec<Value> = plan
            .ordered(&offered)
            .into_iter()
            .map(|t| {
                json!({
                    "data_type": t.as_str(),
                    "interval_secs": plan.interval(t, self.settings.interval).as_secs_f64(),
                    "reconcile_hours": plan.reconcile(t, self.settings.reconcile).as_secs_f64() / 3_600.0,
                    "enabled": plan.enabled(t),
                })
            })
            .collect();
        Ok(json!({
            "connection_id": connection_id,
            "overrides": stored.plan,
            "effective": effective,
        }))
    }

    async fn set_sync_settings(
        &self,
        connection_id: &str,
        overrides: Value,
    ) -> Result<Value, AdminError> {
        self.stored(connection_id).await?;
        let plan: SyncPlan = serde_json::from_value(overrides)
            .map_err(|e| AdminError::BadRequest(format!("invalid sync settings: {e}")))?;
        plan.check()
            .map_err(|e| AdminError::BadRequest(format!("invalid sync settings: {e}")))?;
        self.state
            .set_plan(connection_id, &plan)
            .await
            .map_err(failed)?;
        tracing::info!(connection = %connection_id, "sync settings changed");
        self.sync_settings(connection_id).await
    }

    async fn request_sync(&self) -> Result<(), AdminError> {
        tracing::info!("sync requested");
        self.state.request_sync().await.map_err(failed)
    }

    async fn request_company_sync(
        &self,
        company_id: &str,
        data_types: &[DataType],
        trigger: SyncTrigger,
    ) -> Result<Vec<RunView>, AdminError> {
        if matches!(trigger, SyncTrigger::Schedule | SyncTrigger::Refetch) {
            return Err(AdminError::BadRequest(
                "a sync is asked for as a request, a resync or a reconciliation".into(),
            ));
        }
        let connections = self.linked(company_id).await?;
        let mut wanted = Vec::new();
        let mut offered_by_any = Vec::new();
        for c in &connections {
            let id = &c.info.connection_id;
            let offered = self
                .registry
                .build(&c.info, self.vault(id))
                .map_err(user_or_failed)?
                .data_types();
            for data_type in &offered {
                if data_types.is_empty() || data_types.contains(data_type) {
                    wanted.push((id.as_str(), company_id, *data_type));
                }
            }
            offered_by_any.extend(offered);
        }
        if let Some(missing) = data_types.iter().find(|t| !offered_by_any.contains(t)) {
            offered_by_any.sort();
            offered_by_any.dedup();
            let offered: Vec<&str> = offered_by_any.iter().map(|t| t.as_str()).collect();
            return Err(AdminError::BadRequest(format!(
                "no connection of company {company_id:?} offers {missing}; they offer: {}",
                offered.join(", ")
            )));
        }
        self.queue(company_id, &wanted, trigger, None).await
    }

    async fn request_refetch(
        &self,
        company_id: &str,
        data_type: DataType,
        record_id: &str,
    ) -> Result<Vec<RunView>, AdminError> {
        if record_id.is_empty() {
            return Err(AdminError::BadRequest("a refetch needs a record id".into()));
        }
        let connections = self.linked(company_id).await?;
        let mut wanted = Vec::new();
        let mut cannot = Vec::new();
        for c in &connections {
            let id = &c.info.connection_id;
            let connector = self
                .registry
                .build(&c.info, self.vault(id))
                .map_err(user_or_failed)?;
            if !connector.data_types().contains(&data_type) {
                continue;
            }
            if connector.can_fetch_record(data_type) {
                wanted.push((id.as_str(), company_id, data_type));
            } else {
                cannot.push(c.info.source.clone());
            }
        }
        if wanted.is_empty() {
            return Err(AdminError::BadRequest(if cannot.is_empty() {
                format!("no connection of company {company_id:?} offers {data_type}")
            } else {
                format!(
                    "no connection of company {company_id:?} can fetch one {data_type} record by id ({} cannot): resync the data type instead",
                    cannot.join(", ")
                )
            }));
        }
        self.queue(company_id, &wanted, SyncTrigger::Refetch, Some(record_id))
            .await
    }

    async fn runs(&self, company_id: &str, filter: &RunFilter) -> Result<Vec<RunView>, AdminError> {
        Ok(self
            .state
            .runs(company_id, filter)
            .await
            .map_err(failed)?
            .iter()
            .map(run_view)
            .collect())
    }

    async fn run(&self, company_id: &str, run_id: &str) -> Result<RunView, AdminError> {
        self.state
            .run(company_id, run_id)
            .await
            .map_err(failed)?
            .map(|r| run_view(&r))
            .ok_or_else(|| {
                AdminError::NotFound(format!("no run {run_id:?} for company {company_id:?}"))
            })
    }

    async fn manifests(&self, company_id: &str) -> Result<Vec<ManifestEvent>, AdminError> {
        self.state.manifests(company_id).await.map_err(failed)
    }

    async fn open_runs(&self, company_id: &str) -> Result<Vec<RunView>, AdminError> {
        Ok(self
            .state
            .open_runs(company_id)
            .await
            .map_err(failed)?
            .iter()
            .map(run_view)
            .collect())
    }

    async fn source_webhook(
        &self,
        source: &str,
        webhook: &Webhook,
    ) -> Result<Vec<RunView>, AdminError> {
        let factory = self
            .registry
            .factory(source)
            .map_err(|e| AdminError::NotFound(e.message))?;
        let changes = factory.receive_webhook(webhook).map_err(|e| {
            tracing::warn!(source, error = %e, "webhook refused");
            match e {
                WebhookRefusal::Unverified(m) => AdminError::Unauthorized(m),
                WebhookRefusal::NotReceived(m) => AdminError::NotFound(m),
                WebhookRefusal::Malformed(m) => AdminError::BadRequest(m),
            }
        })?;
        if changes.is_empty() {
            return Ok(vec![]);
        }
        let connections = self.state.connections().await.map_err(failed)?;
        let mut queued = Vec::new();
        for change in &changes {
            let readers = connections.iter().filter(|c| {
                c.info.source == source
                    && !matches!(
                        c.status,
                        ConnectionStatus::Unlinked | ConnectionStatus::PendingAuth
                    )
                    && factory.tenant(&c.info).as_deref() == Some(change.tenant.as_str())
            });
            let mut read = false;
            for c in readers {
                read = true;
                let info = &c.info;
                // One by one: a data type with a run open already is left
                // to that run, and the others are queued all the same.
                for data_type in &change.data_types {
                    let wanted = [(
                        info.connection_id.as_str(),
                        info.company_id.as_str(),
                        *data_type,
                    )];
                    match self
                        .state
                        .queue_runs(&wanted, SyncTrigger::SourceWebhook, None)
                        .await
                        .map_err(failed)?
                    {
                        Ok(runs) => queued.extend(runs.iter().map(run_view)),
                        Err(AlreadyOpen(open)) => tracing::info!(
                            connection = %info.connection_id, %data_type, run = %open.id,
                            "source webhook: a run is open already"
                        ),
                    }
                }
            }
            if !read {
                tracing::info!(source, tenant = %change.tenant, "source webhook for a tenant no linked connection reads");
            }
        }
        tracing::info!(source, runs = queued.len(), "source webhook: runs queued");
        Ok(queued)
    }

    async fn complete_authorization(
        &self,
        source: &str,
        state: &str,
        code: &str,
    ) -> Result<ConnectionView, AdminError> {
        let now = Timestamp::now();
        let Some(connection_id) = self
            .state
            .take_authorization(state, now, AUTHORIZATION_MAX_AGE_MS)
            .await
            .map_err(failed)?
        else {
            return Err(AdminError::BadRequest(
                "unknown, used or expired authorization state: add the connection again".into(),
            ));
        };
        let stored = self.stored(&connection_id).await?;
        if stored.info.source != source {
            return Err(AdminError::BadRequest(format!(
                "the authorization was for a {} connection",
                stored.info.source
            )));
        }
        let factory = self.registry.factory(source).map_err(user_or_failed)?;
        let granted = factory
            .complete_authorization(&stored.info, code, self.vault(&connection_id))
            .await
            .map_err(user_or_failed)?;
        let mut settings = stored.info.settings.clone();
        if let (Some(into), Some(from)) = (settings.as_object_mut(), granted.as_object()) {
            for (k, v) in from {
                into.insert(k.clone(), v.clone());
            }
        }
        self.state
            .set_settings(&connection_id, &settings, now)
            .await
            .map_err(failed)?;
        self.state
            .set_status(&connection_id, ConnectionStatus::Linked, None, now)
            .await
            .map_err(failed)?;
        Ok(view(&self.stored(&connection_id).await?))
    }
}
