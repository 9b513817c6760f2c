//! The connector runtime: pages, retries, publishing, cursors, schedule.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, mpsc, watch};
use tributary_connector_api::{
    ConnectionInfo, Connector, ConnectorError, ConnectorRegistry, Fault, Page, PageRequest,
};
use tributary_schemas::{DataType, Event, Record, SyncRunEvent, Timestamp, event_id};
use tributary_telemetry::crash_point;

use crate::limits::{Limiter, Limiters};
use crate::publisher::Publisher;
use crate::recent::Recent;
use crate::secrets::Cipher;
use crate::state::{StateStore, StoredConnection};
use crate::vault::StateVault;
use crate::{ProducerError, metrics};

/// How the runtime fetches.
#[derive(Debug, Clone)]
pub struct SyncSettings {
    pub page_size: u32,
    /// Attempts of one page before the run fails.
    pub max_attempts: u32,
    /// First retry delay; doubled each attempt, with up to 50% jitter.
    pub retry_base: Duration,
    /// Time between scheduled rounds.
    pub interval: Duration,
    /// Connections synced at once.
    pub concurrency: usize,
    /// A source asking to wait longer than this (a day's quota used up)
    /// pauses the connection instead: it resumes from its cursor later.
    pub max_retry_wait: Duration,
}

/// Fetches one page within the connector's call limits, retrying what the
/// outside world got wrong: rate limits (after the source's Retry-After when
/// it gave one) and source errors (with exponential backoff and jitter). A
/// user or data fault is returned at once, and so is a wait longer than
/// `settings.max_retry_wait` (a rate-limit error whose `retry_after` says
/// how long), which the caller turns into a pause.
pub async fn fetch_with_retry(
    connector: &dyn Connector,
    request: &PageRequest,
    settings: &SyncSettings,
    limiter: Option<&Limiter>,
) -> Result<Page, ConnectorError> {
    let mut attempt = 1;
    loop {
        let permit = match limiter {
            Some(limiter) => Some(limiter.acquire().await.map_err(|day| {
                ConnectorError::new(
                    "runtime",
                    Fault::RateLimited,
                    format!(
                        "the daily limit of {} calls for {} is used up",
                        day.limit,
                        limiter.key()
                    ),
                )
                .with_retry_after(day.retry_after)
            })?),
            None => None,
        };
        let result = connector.fetch_page(request).await;
        drop(permit);
        match result {
            Ok(page) => return Ok(page),
            Err(e)
                if e.retry_after
                    .is_some_and(|after| after > settings.max_retry_wait) =>
            {
                return Err(e);
            }
            Err(e) if e.is_retryable() && attempt < settings.max_attempts => {
                let backoff = settings
                    .retry_base
                    .saturating_mul(1 << (attempt - 1).min(16));
                let delay = e
                    .retry_after
                    .unwrap_or_else(|| backoff + jitter(backoff / 2));
                tracing::info!(attempt, delay_ms = delay.as_millis() as u64, error = %e, "retrying page fetch");
                tokio::time::sleep(delay).await;
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// A pseudo-random duration below `max`, from the clock's low bits: enough
/// to spread retries of many connections apart.
fn jitter(max: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64)
        .unwrap_or(0);
    let max_ms = max.as_millis() as u64;
    if max_ms == 0 {
        Duration::ZERO
    } else {
        Duration::from_millis(nanos.wrapping_mul(2_654_435_761) % max_ms)
    }
}

/// Runs connectors and publishes what they fetch.
pub struct Worker {
    pub state: StateStore,
    pub connectors: Arc<ConnectorRegistry>,
    pub publisher: Arc<Publisher>,
    pub settings: SyncSettings,
    /// Seals and opens connection credentials.
    pub cipher: Arc<Cipher>,
    pub limiters: Arc<Limiters>,
    /// Connections paused until an instant (a day's quota used up), with why.
    pub paused: std::sync::Mutex<HashMap<String, (Instant, String)>>,
    /// The version of each connection's record this worker published last:
    /// it is published again only when it changes.
    announced: std::sync::Mutex<HashMap<String, Timestamp>>,
    /// Versions published lately, not sent again when a source re-serves them.
    recent: Recent,
}

impl Worker {
    pub fn new(
        state: StateStore,
        connectors: Arc<ConnectorRegistry>,
        publisher: Arc<Publisher>,
        settings: SyncSettings,
        cipher: Arc<Cipher>,
    ) -> Worker {
        Worker {
            state,
            connectors,
            publisher,
            settings,
            cipher,
            limiters: Arc::new(Limiters::default()),
            paused: std::sync::Mutex::new(HashMap::new()),
            announced: std::sync::Mutex::new(HashMap::new()),
            recent: Recent::default(),
        }
    }

    /// Builds a connection's connector with its vault.
    pub fn build(&self, info: &ConnectionInfo) -> Result<Arc<dyn Connector>, ConnectorError> {
        self.connectors.build(
            info,
            StateVault::new(&self.state, &self.cipher, &info.connection_id),
        )
    }

    fn paused_until(&self, connection_id: &str) -> Option<(Instant, String)> {
        let mut paused = self.paused.lock().unwrap_or_else(|p| p.into_inner());
        match paused.get(connection_id) {
            Some((until, _)) if *until <= Instant::now() => {
                paused.remove(connection_id);
                None
            }
            other => other.cloned(),
        }
    }

    /// Syncs every data type of one connection, in the connector's order.
    #[tracing::instrument(skip_all, fields(connection = %stored.info.connection_id, company = %stored.info.company_id, source = %stored.info.source))]
    pub async fn sync_connection(
        &self,
        stored: &StoredConnection,
        shutdown: &watch::Receiver<bool>,
    ) -> Result<Vec<SyncRunEvent>, ProducerError> {
        let info = &stored.info;
        if stored.status == "pending_auth" {
            tracing::debug!("waiting for authorization");
            return Ok(Vec::new());
        }
        if let Some((_, why)) = self.paused_until(&info.connection_id) {
            tracing::debug!(reason = %why, "paused");
            return Ok(Vec::new());
        }
        self.publish_connection(stored).await?;
        let connector = match self.build(info) {
            Ok(c) => c,
            Err(e) => {
                self.set_status(stored, "unlinked", Some(&e.to_string()))
                    .await?;
                return Err(ProducerError::Connector(e));
            }
        };
        if let Err(e) = connector.authenticate().await {
            let status = if e.fault == Fault::User {
                "deauthorized"
            } else {
                "linked"
            };
            self.set_status(stored, status, Some(&e.to_string()))
                .await?;
            return Err(ProducerError::Connector(e));
        }
        if stored.status != "linked" || stored.status_reason.is_some() {
            self.set_status(stored, "linked", None).await?;
        }
        let limiter = connector.rate_limits().map(|l| self.limiters.get(&l));
        let mut runs = Vec::new();
        for data_type in connector.data_types() {
            if *shutdown.borrow() {
                break;
            }
            let (run, pause) = self
                .sync_data_type(
                    info,
                    connector.as_ref(),
                    data_type,
                    limiter.as_deref(),
                    shutdown,
                )
                .await;
            metrics::sync_finished(&info.source, data_type, &run.status);
            runs.push(run);
            if let Some((retry_after, reason)) = pause {
                // The rest would hit the same limit: resume them all later,
                // each from its cursor.
                let until = Instant::now() + retry_after;
                let why = format!("paused for {}s: {reason}", retry_after.as_secs());
                tracing::warn!(reason = %why, "connection paused");
                self.set_status(stored, "linked", Some(&why)).await?;
                self.paused
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(info.connection_id.clone(), (until, why));
                break;
            }
        }
        // One acked publish for the round's outcomes, not one per data type.
        self.publisher.publish_sync_runs(&runs).await?;
        Ok(runs)
    }

    async fn set_status(
        &self,
        stored: &StoredConnection,
        status: &str,
        reason: Option<&str>,
    ) -> Result<(), ProducerError> {
        let now = Timestamp::now();
        self.state
            .set_status(&stored.info.connection_id, status, reason, now)
            .await?;
        let mut updated = stored.clone();
        updated.status = status.to_string();
        updated.status_reason = reason.map(str::to_string);
        updated.updated_at = now;
        self.publish_connection(&updated).await
    }

    /// The connection itself is a record: published so subscribers see its
    /// status, once per version.
    async fn publish_connection(&self, stored: &StoredConnection) -> Result<(), ProducerError> {
        let info = &stored.info;
        let already = self
            .announced
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&info.connection_id)
            == Some(&stored.updated_at);
        if already {
            return Ok(());
        }
        let record = stored.to_record();
        let event = Event {
            event_id: event_id(
                &info.connection_id,
                DataType::Connection,
                &info.connection_id,
                stored.updated_at,
                false,
            ),
            company_id: info.company_id.clone(),
            connection_id: info.connection_id.clone(),
            data_type: DataType::Connection.as_str().into(),
            source: info.source.clone(),
            source_record_id: info.connection_id.clone(),
            source_modified_at: stored.updated_at,
            fetched_at: Timestamp::now(),
            deleted: stored.status == "unlinked",
            record: Some(Record::Connection(record)),
        };
        self.publisher.publish_events(&[event]).await?;
        self.announced
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(info.connection_id.clone(), stored.updated_at);
        Ok(())
    }

    /// Pages through one data type: fetch, map, publish, wait for delivery,
    /// then save the cursor. A crash anywhere repeats at most one page.
    /// Returns the run, and how long to pause the connection if the source
    /// asked for a long wait (status `paused`).
    #[tracing::instrument(skip_all, fields(data_type = %data_type))]
    pub async fn sync_data_type(
        &self,
        info: &ConnectionInfo,
        connector: &dyn Connector,
        data_type: DataType,
        limiter: Option<&Limiter>,
        shutdown: &watch::Receiver<bool>,
    ) -> (SyncRunEvent, Option<(Duration, String)>) {
        let started_at = Timestamp::now();
        let mut run = SyncRunEvent {
            event_id: String::new(),
            company_id: info.company_id.clone(),
            connection_id: info.connection_id.clone(),
            source: info.source.clone(),
            data_type: data_type.as_str().into(),
            started_at,
            finished_at: started_at,
            status: "succeeded".into(),
            records_fetched: 0,
            pages_fetched: 0,
            error: None,
        };
        let mut pause = None;
        match self
            .sync_pages(info, connector, data_type, limiter, shutdown, &mut run)
            .await
        {
            Ok(()) => {}
            Err(ProducerError::Connector(e))
                if e.fault == Fault::RateLimited
                    && e.retry_after
                        .is_some_and(|after| after > self.settings.max_retry_wait) =>
            {
                run.status = "paused".into();
                run.error = Some(e.to_string());
                pause = Some((e.retry_after.unwrap_or_default(), e.to_string()));
            }
            Err(e) => {
                metrics::error(&info.source, data_type, "sync", &e.to_string());
                run.status = "failed".into();
                run.error = Some(e.to_string());
            }
        }
        run.finished_at = Timestamp::now();
        run.event_id = event_id(
            &info.connection_id,
            data_type,
            "sync_run",
            started_at,
            false,
        );
        (run, pause)
    }

    async fn sync_pages(
        &self,
        info: &ConnectionInfo,
        connector: &dyn Connector,
        data_type: DataType,
        limiter: Option<&Limiter>,
        shutdown: &watch::Receiver<bool>,
        run: &mut SyncRunEvent,
    ) -> Result<(), ProducerError> {
        loop {
            let cursor = self.state.cursor(&info.connection_id, data_type).await?;
            let now = Timestamp::now();
            let request = PageRequest {
                data_type,
                cursor,
                now,
                page_size: self.settings.page_size,
            };
            let started = Instant::now();
            let page = fetch_with_retry(connector, &request, &self.settings, limiter)
                .await
                .map_err(ProducerError::Connector)?;
            metrics::page_seconds(&info.source, data_type, started.elapsed().as_secs_f64());
            metrics::records_fetched(&info.source, data_type, page.records.len());
            run.pages_fetched += 1;
            run.records_fetched += page.records.len() as i64;
            let mut events = Vec::with_capacity(page.records.len());
            let mut dead = Vec::new();
            for raw in &page.records {
                match connector.map(data_type, raw) {
                    Ok(mapped) => events.push(Event {
                        event_id: event_id(
                            &info.connection_id,
                            data_type,
                            &mapped.source_record_id,
                            mapped.source_modified_at,
                            mapped.deleted,
                        ),
                        company_id: info.company_id.clone(),
                        connection_id: info.connection_id.clone(),
                        data_type: data_type.as_str().into(),
                        source: info.source.clone(),
                        source_record_id: mapped.source_record_id,
                        source_modified_at: mapped.source_modified_at,
                        fetched_at: now,
                        deleted: mapped.deleted,
                        record: mapped.record,
                    }),
                    Err(e) => {
                        // A bad record never stops the sync: it is kept, with the reason.
                        metrics::error(&info.source, data_type, "map", &e.to_string());
                        dead.push((e.to_string(), raw));
                    }
                }
            }
            // Dead letters first: the cursor moves only once they are safe too.
            if !dead.is_empty() {
                self.publisher
                    .publish_dead_letters(&info.company_id, &info.connection_id, data_type, &dead)
                    .await?;
            }
            let events = self
                .recent
                .unpublished(&info.connection_id, data_type, events);
            self.publisher.publish_events(&events).await?;
            self.recent
                .published(&info.connection_id, data_type, &events);
            crash_point("worker.after_publish");
            // An unchanged cursor is not written again (a sync to disk each).
            if let Some(next) = page
                .next_cursor
                .as_ref()
                .filter(|n| Some(*n) != request.cursor.as_ref())
            {
                self.state
                    .save_cursor(&info.connection_id, data_type, next, Timestamp::now())
                    .await?;
            }
            if !page.has_more || *shutdown.borrow() {
                return Ok(());
            }
        }
    }

    /// Syncs every connection now, `concurrency` at a time.
    pub async fn sync_all(
        self: &Arc<Self>,
        shutdown: &watch::Receiver<bool>,
    ) -> Result<Vec<SyncRunEvent>, ProducerError> {
        let connections = self.state.connections().await?;
        let limit = Arc::new(Semaphore::new(self.settings.concurrency));
        let mut tasks = tokio::task::JoinSet::new();
        for stored in connections.into_iter().filter(|c| c.status != "unlinked") {
            let worker = Arc::clone(self);
            let limit = Arc::clone(&limit);
            let shutdown = shutdown.clone();
            tasks.spawn(async move {
                let _permit = limit.acquire_owned().await;
                let id = stored.info.connection_id.clone();
                worker
                    .sync_connection(&stored, &shutdown)
                    .await
                    .map_err(|e| (id, e))
            });
        }
        let mut runs = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok(Ok(r)) => runs.extend(r),
                Ok(Err((connection, e))) => {
                    tracing::warn!(connection, error = %e, "connection sync failed")
                }
                Err(e) => tracing::error!(error = %e, "connection sync task died"),
            }
        }
        Ok(runs)
    }

    /// Syncs on a schedule and on demand until `shutdown` turns true.
    pub async fn run(
        self: Arc<Self>,
        mut on_demand: mpsc::Receiver<()>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        loop {
            if let Err(e) = self.sync_all(&shutdown).await {
                tracing::error!(error = %e, "sync round failed");
            }
            tokio::select! {
                _ = tokio::time::sleep(self.settings.interval) => {}
                Some(()) = on_demand.recv() => tracing::info!("sync requested"),
                _ = shutdown.changed() => {}
            }
            if *shutdown.borrow() {
                return;
            }
        }
    }
}
