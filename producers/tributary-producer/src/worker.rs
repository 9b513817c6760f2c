//! The connector runtime: pages, retries, publishing, cursors, schedule.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tributary_connector_api::{
    ConnectionInfo, Connector, ConnectorError, ConnectorRegistry, Cursor, Fault, MappedRecord,
    Page, PageRequest,
};
use tributary_schemas::{
    ConnectionStatus, DataType, Event, ManifestEvent, Record, SyncRunEvent, SyncRunStatus,
    SyncTrigger, Timestamp, event_id,
};
use tributary_telemetry::crash_point;

use crate::limits::{Limiter, Limiters};
use crate::publisher::{Publisher, SetAside};
use crate::recent::Recent;
use crate::secrets::Cipher;
use crate::state::{Claimed, PairState, Seen, StateStore, StoredConnection, SyncRun};
use crate::vault::StateVault;
use crate::{ProducerError, metrics};

/// Why a run left open by a dead worker was closed.
const INTERRUPTED: &str = "interrupted: the worker running it stopped before it ended (a run an operator asked for resumes from the saved cursor)";
/// Why a run was closed by its own worker stopping.
const STOPPED: &str = "stopped with its worker before the source's last page (a run an operator asked for resumes from the saved cursor)";

/// Who is at fault for a failed run, in the history's words: `user`
/// (settings, credentials), `source` (down, slow, limits), `data` (a
/// record) or `tributary` (our side: the broker, the registry, the state
/// store, a bug).
pub fn fault_word(e: &ProducerError) -> &'static str {
    match e {
        ProducerError::Connector(e) => match e.fault {
            Fault::User => "user",
            Fault::Source | Fault::RateLimited => "source",
            Fault::Data => "data",
            Fault::Internal => "tributary",
        },
        _ => "tributary",
    }
}

/// What one connection's sync did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Round {
    /// The source asked for a long wait: the connection is next due then.
    pub pause: Option<Duration>,
    /// When the connection is next due by schedule: when its earliest
    /// data type is (each has its interval); `None` keeps the due time it
    /// had (only what operators asked for was synced).
    pub next_due: Option<Duration>,
}

/// How the runtime fetches.
#[derive(Debug, Clone)]
pub struct SyncSettings {
    pub page_size: u32,
    /// Attempts of one page before the run fails.
    pub max_attempts: u32,
    /// First retry delay; doubled each attempt, with up to 50% jitter.
    pub retry_base: Duration,
    /// How long after a connection's sync ends it is synced again.
    pub interval: Duration,
    /// Connections synced at once by this worker.
    pub concurrency: usize,
    /// A source asking to wait longer than this (a day's quota used up)
    /// pauses the connection instead: it resumes from its cursor later.
    pub max_retry_wait: Duration,
    /// How long a worker's claim on a connection lasts unless renewed: how
    /// soon another worker takes over the connections of one that died.
    pub lease: Duration,
    /// How long finished runs stay in the sync history.
    pub history: Duration,
    /// How often each connection and data type gets a full pass that
    /// deletes what the source no longer lists (a reconciliation).
    pub reconcile: Duration,
    /// Settings per data type for every connection (each connection may
    /// override them): intervals, reconciliation, enabled, order.
    pub plan: crate::SyncPlan,
}

/// Fetches one page within the connector's call limits, retrying what the
/// outside world got wrong: see [`call_with_retry`].
pub async fn fetch_with_retry(
    connector: &dyn Connector,
    request: &PageRequest,
    settings: &SyncSettings,
    limiter: Option<&Limiter>,
) -> Result<Page, ConnectorError> {
    call_with_retry(settings, limiter, || connector.fetch_page(request)).await
}

/// Makes one call to a source within its call limits, retrying what the
/// outside world got wrong: rate limits (after the source's Retry-After when
/// it gave one) and source errors (with exponential backoff and jitter). A
/// user or data fault is returned at once, and so is a wait longer than
/// `settings.max_retry_wait` (a rate-limit error whose `retry_after` says
/// how long), which the caller turns into a pause.
pub async fn call_with_retry<T, F, Fut>(
    settings: &SyncSettings,
    limiter: Option<&Limiter>,
    call: F,
) -> Result<T, ConnectorError>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T, ConnectorError>>,
{
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
        let result = call().await;
        drop(permit);
        match result {
            Ok(answer) => return Ok(answer),
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
                tracing::info!(attempt, delay_ms = delay.as_millis() as u64, error = %e, "retrying a call to the source");
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

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// What tracking keeps of an event.
pub fn seen_of(e: &Event) -> Seen {
    Seen {
        record_id: e.source_record_id.clone(),
        modified_at: e.source_modified_at,
        revision: e.revision,
        deleted: e.deleted,
    }
}

/// The event of one mapped record of a connection, at `revision`.
pub fn event_of(
    info: &ConnectionInfo,
    data_type: DataType,
    mapped: MappedRecord,
    revision: i64,
    fetched_at: Timestamp,
) -> Event {
    Event {
        event_id: event_id(
            &info.connection_id,
            data_type,
            &mapped.source_record_id,
            mapped.source_modified_at,
            mapped.deleted,
            revision,
        ),
        company_id: info.company_id.clone(),
        connection_id: info.connection_id.clone(),
        data_type: data_type.as_str().into(),
        source: info.source.clone(),
        source_record_id: mapped.source_record_id,
        source_modified_at: mapped.source_modified_at,
        fetched_at,
        deleted: mapped.deleted,
        revision,
        record: mapped.record,
    }
}

/// How long idle scheduled runs are counted in memory before the count is
/// written to the history.
const IDLE_FLUSH: Duration = Duration::from_secs(60);

/// How often a connection and data type gets a manifest while changes go on.
const MANIFEST_EVERY: Duration = Duration::from_secs(30);

/// What one data type's run did.
#[derive(Debug, Clone)]
pub struct Ran {
    /// Its outcome, for the `sync_runs` topic.
    pub event: SyncRunEvent,
    /// How long to pause the connection (the source asked for a long
    /// wait), and why.
    pub pause: Option<(Duration, String)>,
    /// The manifest to publish after it, if one is due.
    pub manifest: Option<ManifestEvent>,
    /// An idle scheduled run only counted in memory: its outcome goes out
    /// with the run that writes the count (at most once a minute per
    /// connection and data type), so an idle pipeline publishes next to
    /// nothing.
    pub counted_only: bool,
}

/// How often the connections no worker syncs are published (each once
/// per version per worker process).
const ANNOUNCE_EVERY: Duration = Duration::from_secs(15);

/// How often a worker prunes the sync history.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Runs connectors and publishes what they fetch. Any number of workers,
/// in any number of processes, may share one state store: each connection
/// is synced by one worker at a time, under a lease (see [`crate::state`]).
pub struct Worker {
    /// This worker's name in the leases it holds. Stable across restarts
    /// (host and data directory), so a restarted worker resumes its own
    /// connections at once instead of waiting for its leases to expire.
    pub id: String,
    pub state: StateStore,
    pub connectors: Arc<ConnectorRegistry>,
    pub publisher: Arc<Publisher>,
    pub settings: SyncSettings,
    /// Seals and opens connection credentials.
    pub cipher: Arc<Cipher>,
    pub limiters: Arc<Limiters>,
    /// The version of each connection's record this worker published last:
    /// it is published again only when it changes.
    announced: std::sync::Mutex<HashMap<String, Timestamp>>,
    /// Versions published lately, not sent again when a source re-serves them.
    recent: Recent,
    /// Idle scheduled runs counted but not yet written, per connection and
    /// data type, and when the count was last written.
    idle_runs: std::sync::Mutex<HashMap<(String, DataType), (i64, Instant)>>,
    /// When each connection and data type last had a manifest, and whether
    /// changes since wait for one.
    manifests: std::sync::Mutex<HashMap<(String, DataType), (Instant, bool)>>,
}

impl Worker {
    pub fn new(
        id: String,
        state: StateStore,
        connectors: Arc<ConnectorRegistry>,
        publisher: Arc<Publisher>,
        settings: SyncSettings,
        cipher: Arc<Cipher>,
    ) -> Worker {
        Worker {
            id,
            state,
            connectors,
            publisher,
            settings,
            cipher,
            limiters: Arc::new(Limiters::default()),
            announced: std::sync::Mutex::new(HashMap::new()),
            recent: Recent::default(),
            idle_runs: std::sync::Mutex::new(HashMap::new()),
            manifests: std::sync::Mutex::new(HashMap::new()),
        }
    }

    /// A worker sharing `admin`'s connector runtime: the same state, connector
    /// registry, cipher and call limits, so checks from the API count
    /// against the same limits as syncs.
    pub fn of_admin(id: String, admin: &crate::Admin, publisher: Arc<Publisher>) -> Worker {
        let mut worker = Worker::new(
            id,
            admin.state.clone(),
            Arc::clone(&admin.registry),
            publisher,
            admin.settings.clone(),
            Arc::clone(&admin.cipher),
        );
        worker.limiters = Arc::clone(&admin.limiters);
        worker
    }

    /// Builds a connection's connector with its vault.
    pub fn build(&self, info: &ConnectionInfo) -> Result<Arc<dyn Connector>, ConnectorError> {
        self.connectors.build(
            info,
            StateVault::new(&self.state, &self.cipher, &info.connection_id),
        )
    }

    /// Syncs one connection with this worker's lease on it, its data types
    /// in the order its sync settings give: when its schedule came round
    /// (`scheduled`), each enabled data type that is due (each has its
    /// interval); when a sync of all was asked for, each enabled data type;
    /// and in any case the data types operators queued runs for. Each data
    /// type's sync is a run of the history.
    /// Runs of this connection left open by a worker that died are closed
    /// first (those an operator asked for resume, queued again).
    #[tracing::instrument(skip_all, fields(connection = %stored.info.connection_id, company = %stored.info.company_id, source = %stored.info.source))]
    pub async fn sync_connection(
        &self,
        stored: &StoredConnection,
        scheduled: bool,
        shutdown: &watch::Receiver<bool>,
    ) -> Result<Round, ProducerError> {
        let info = &stored.info;
        let mut round = Round {
            pause: None,
            next_due: None,
        };
        if matches!(
            stored.status,
            ConnectionStatus::PendingAuth | ConnectionStatus::Unlinked
        ) {
            tracing::debug!(status = %stored.status, "not synced");
            return Ok(round);
        }
        let interrupted = self
            .state
            .close_interrupted(&info.connection_id, INTERRUPTED)
            .await?;
        for run in &interrupted {
            tracing::warn!(run = %run.id, data_type = %run.data_type, worker = ?run.worker, "closed a run its worker left open");
        }
        self.publish_connection(stored).await?;
        let queued = self.state.queued_runs(&info.connection_id).await?;
        let connector = match self.build(info) {
            Ok(c) => c,
            Err(e) => {
                self.set_status(stored, ConnectionStatus::Unlinked, Some(&e.to_string()))
                    .await?;
                self.fail_queued(info, &queued, &e).await?;
                return Err(ProducerError::Connector(e));
            }
        };
        if let Err(e) = connector.authenticate().await {
            let status = if e.fault == Fault::User {
                ConnectionStatus::Deauthorized
            } else {
                ConnectionStatus::Linked
            };
            self.set_status(stored, status, Some(&e.to_string()))
                .await?;
            self.fail_queued(info, &queued, &e).await?;
            return Err(ProducerError::Connector(e));
        }
        if stored.status != ConnectionStatus::Linked || stored.status_reason.is_some() {
            self.set_status(stored, ConnectionStatus::Linked, None)
                .await?;
        }
        let offered = connector.data_types();
        let (unknown, queued): (Vec<_>, Vec<_>) = queued
            .into_iter()
            .partition(|r| !offered.contains(&r.data_type));
        for run in &unknown {
            let e = ConnectorError::new(
                &info.source,
                Fault::User,
                format!("{} does not offer {}", info.source, run.data_type),
            );
            self.fail_queued(info, std::slice::from_ref(run), &e)
                .await?;
        }
        // Due by schedule, or all asked for at once (POST /v1/sync): the
        // enabled data types (those due, when by schedule); else only the
        // data types operators queued runs for.
        let whole = scheduled || queued.is_empty();
        let trigger = if scheduled {
            SyncTrigger::Schedule
        } else {
            SyncTrigger::Request
        };
        let plan = stored.plan.over(&self.settings.plan);
        let limiter = connector.rate_limits().map(|l| self.limiters.get(&l));
        let mut runs = Vec::new();
        let mut manifests = Vec::new();
        let mut due_times = Vec::new();
        // When each enabled data type is next due, for the connection's.
        let mut next_due: Option<i64> = None;
        for data_type in plan.ordered(&offered) {
            let asked = queued.iter().any(|r| r.data_type == data_type);
            if !asked && (!whole || !plan.enabled(data_type)) {
                continue;
            }
            let pair = self.state.pair(&info.connection_id, data_type).await?;
            if !asked && scheduled && pair.due.is_some_and(|at| at > Timestamp::now()) {
                let at = pair.due.map_or(0, Timestamp::millis);
                next_due = Some(next_due.map_or(at, |n| n.min(at)));
                continue;
            }
            if *shutdown.borrow() {
                break;
            }
            let ran = self
                .sync_data_type(
                    info,
                    connector.as_ref(),
                    data_type,
                    trigger,
                    asked,
                    pair,
                    plan.reconcile(data_type, self.settings.reconcile),
                    limiter.as_deref(),
                    shutdown,
                )
                .await?;
            let interval = plan.interval(data_type, self.settings.interval);
            let due = Timestamp(Timestamp::now().millis() + millis(interval));
            if plan.enabled(data_type) {
                next_due = Some(next_due.map_or(due.millis(), |n| n.min(due.millis())));
            }
            due_times.push((data_type, due));
            metrics::sync_finished(&info.source, data_type, ran.event.status);
            if !ran.counted_only {
                runs.push(ran.event);
            }
            manifests.extend(ran.manifest);
            if let Some((retry_after, reason)) = ran.pause {
                // The rest would hit the same limit: resume them all later,
                // each from its cursor (the lease's next due time, which
                // every worker sees).
                let why = format!("paused for {}s: {reason}", retry_after.as_secs());
                tracing::warn!(reason = %why, "connection paused");
                self.set_status(stored, ConnectionStatus::Linked, Some(&why))
                    .await?;
                round.pause = Some(retry_after);
                break;
            }
        }
        // One write for the round's due times, one acked publish for its
        // outcomes and manifests: not one per data type.
        self.state
            .set_types_due(&info.connection_id, &due_times)
            .await?;
        self.publisher.publish_round(&runs, &manifests).await?;
        for manifest in &manifests {
            self.state.save_manifest(manifest).await?;
        }
        if whole {
            // None enabled: look at its settings again an interval from now.
            let now = Timestamp::now().millis();
            round.next_due = Some(next_due.map_or(self.settings.interval, |at| {
                Duration::from_millis(u64::try_from(at - now).unwrap_or(0))
            }));
        }
        Ok(round)
    }

    /// Ends queued runs that cannot start: the connection could not be
    /// built or authenticated.
    async fn fail_queued(
        &self,
        info: &ConnectionInfo,
        queued: &[SyncRun],
        error: &ConnectorError,
    ) -> Result<(), ProducerError> {
        for queued in queued {
            let mut run = self
                .state
                .start_run(
                    &info.connection_id,
                    &info.company_id,
                    queued.data_type,
                    queued.trigger,
                    &self.id,
                )
                .await?;
            run.status = SyncRunStatus::Failed;
            run.error = Some(error.to_string());
            run.error_fault = Some(fault_word(&ProducerError::Connector(error.clone())).into());
            self.state.finish_run(&run, false).await?;
        }
        Ok(())
    }

    async fn set_status(
        &self,
        stored: &StoredConnection,
        status: ConnectionStatus,
        reason: Option<&str>,
    ) -> Result<(), ProducerError> {
        let now = Timestamp::now();
        self.state
            .set_status(&stored.info.connection_id, status, reason, now)
            .await?;
        let mut updated = stored.clone();
        updated.status = status;
        updated.status_reason = reason.map(str::to_string);
        updated.updated_at = now;
        self.publish_connection(&updated).await
    }

    /// Publishes the connections no worker syncs (unlinked, waiting for
    /// authorization), so their status reaches the connections topic (and
    /// webhook subscribers) too: a synced one is published as it is synced.
    async fn announce_unsynced(&self) {
        let unsynced = match self.state.connections_unsynced().await {
            Ok(list) => list,
            Err(e) => return tracing::warn!(error = %e, "cannot read the connections not synced"),
        };
        for stored in unsynced {
            if let Err(e) = self.publish_connection(&stored).await {
                tracing::warn!(connection = %stored.info.connection_id, error = %e, "cannot publish the connection's status");
            }
        }
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
                0,
            ),
            company_id: info.company_id.clone(),
            connection_id: info.connection_id.clone(),
            data_type: DataType::Connection.as_str().into(),
            source: info.source.clone(),
            source_record_id: info.connection_id.clone(),
            source_modified_at: stored.updated_at,
            fetched_at: Timestamp::now(),
            deleted: stored.status == ConnectionStatus::Unlinked,
            revision: 0,
            record: Some(Record::Connection(record)),
        };
        self.publisher.publish_events(&[event]).await?;
        self.announced
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(info.connection_id.clone(), stored.updated_at);
        Ok(())
    }

    /// Pages through one data type as one run of the history: fetch, map,
    /// publish, wait for delivery, then save the cursor. A crash anywhere
    /// repeats at most one page. A resync first forgets the cursor and
    /// raises the revision its events carry. `asked`: an operator queued a
    /// run for it, which this takes over; else the run is a scheduled one,
    /// written only once it has something to publish (or ends). Returns
    /// what the run did; only the state store failing is an error.
    #[tracing::instrument(skip_all, fields(data_type = %data_type))]
    #[allow(clippy::too_many_arguments)]
    pub async fn sync_data_type(
        &self,
        info: &ConnectionInfo,
        connector: &dyn Connector,
        data_type: DataType,
        trigger: SyncTrigger,
        asked: bool,
        pair: PairState,
        reconcile_every: Duration,
        limiter: Option<&Limiter>,
        shutdown: &watch::Receiver<bool>,
    ) -> Result<Ran, ProducerError> {
        // A scheduled run whose last full pass is older than the reconcile
        // interval is one (never had one but synced before: one now; a
        // first sync from the start is a full pass by itself).
        let reconcile_due = match pair.last_pass {
            Some(at) => Timestamp::now().millis() - at.millis() >= millis(reconcile_every),
            None => pair.cursor.is_some(),
        };
        let trigger = if trigger == SyncTrigger::Schedule && reconcile_due {
            SyncTrigger::Reconcile
        } else {
            trigger
        };
        let mut run = if asked || !matches!(trigger, SyncTrigger::Schedule | SyncTrigger::Reconcile)
        {
            self.state
                .start_run(
                    &info.connection_id,
                    &info.company_id,
                    data_type,
                    trigger,
                    &self.id,
                )
                .await?
        } else {
            self.state.scheduled_run(
                &info.connection_id,
                &info.company_id,
                data_type,
                trigger,
                &self.id,
            )
        };
        tracing::debug!(run = %run.id, trigger = %run.trigger, "run started");
        let mut pause = None;
        let mut manifest = None;
        // A run that pages from the start sees everything the source
        // lists: a full pass, which ends by deleting what it did not see.
        let pass_began = Timestamp::now();
        let mut full_pass = false;
        let outcome = match self.prepare_run(info, &run, pair).await {
            Ok(pair) if run.trigger == SyncTrigger::Refetch => self
                .refetch(info, connector, pair.revision, limiter, &mut run)
                .await
                .map(|done| (done, pair.revision)),
            Ok(pair) => {
                // A reconciliation pages from the start without touching
                // the saved cursor: the incremental syncs go on from it.
                let cursor = pair
                    .cursor
                    .filter(|_| run.trigger != SyncTrigger::Reconcile);
                full_pass = cursor.is_none();
                self.sync_pages(
                    info,
                    connector,
                    data_type,
                    pair.revision,
                    cursor,
                    limiter,
                    shutdown,
                    &mut run,
                )
                .await
                .map(|done| (done, pair.revision))
            }
            Err(e) => Err(e),
        };
        let outcome = match outcome {
            Ok((true, revision)) => self
                .after_run(info, data_type, revision, full_pass, pass_began, &mut run)
                .await
                .map(|m| {
                    manifest = m;
                    true
                }),
            other => other.map(|(done, _)| done),
        };
        match outcome {
            Ok(true) => run.status = SyncRunStatus::Succeeded,
            Ok(false) => {
                // Stopped with the worker: closed now, and resumed by the
                // next sync if an operator asked for it.
                run.status = SyncRunStatus::Failed;
                run.error = Some(STOPPED.into());
                run.error_fault = Some("tributary".into());
                if run.recorded {
                    self.state.finish_run(&run, true).await?;
                } else {
                    self.state.record_finished(&mut run).await?;
                }
                let event = self.outcome_event(info, &run);
                return Ok(Ran {
                    event,
                    pause: None,
                    manifest: None,
                    counted_only: false,
                });
            }
            Err(ProducerError::Connector(e))
                if e.fault == Fault::RateLimited
                    && e.retry_after
                        .is_some_and(|after| after > self.settings.max_retry_wait) =>
            {
                run.status = SyncRunStatus::Paused;
                run.error = Some(e.to_string());
                run.error_fault = Some("source".into());
                pause = Some((e.retry_after.unwrap_or_default(), e.to_string()));
            }
            Err(e) => {
                metrics::error(&info.source, data_type, "sync", &e.to_string());
                run.status = SyncRunStatus::Failed;
                run.error = Some(e.to_string());
                run.error_fault = Some(fault_word(&e).into());
            }
        }
        let written = self.record_end(&mut run).await?;
        let mut event = self.outcome_event(info, &run);
        event.repeats = written.unwrap_or(0);
        let counted_only = written.is_none();
        Ok(Ran {
            event,
            pause,
            manifest,
            counted_only,
        })
    }

    /// Writes how a run ended. A scheduled run that succeeded and found
    /// nothing is counted into the idle run before it (at most one write a
    /// minute per connection and data type); any other run is written in
    /// full, and first adds the idle runs still counted in memory. `None`
    /// when the run was only counted, else how many idle runs before it
    /// were counted in memory (and so published no event).
    async fn record_end(&self, run: &mut SyncRun) -> Result<Option<i64>, ProducerError> {
        let key = (run.connection_id.clone(), run.data_type);
        let idle = !run.recorded
            && run.trigger == SyncTrigger::Schedule
            && run.status == SyncRunStatus::Succeeded
            && run.records_fetched == 0
            && run.records_dead_lettered == 0
            && run.records_deleted == 0;
        let pending = {
            let mut idle_runs = self.idle_runs.lock().unwrap_or_else(|p| p.into_inner());
            match idle_runs.get_mut(&key) {
                Some((pending, flushed)) if idle && flushed.elapsed() < IDLE_FLUSH => {
                    *pending += 1;
                    // Kept under the row it will be counted into.
                    run.id = String::new();
                    return Ok(None);
                }
                Some(_) => idle_runs.remove(&key).map_or(0, |(pending, _)| pending),
                None => 0,
            }
        };
        if idle {
            if let Some(id) = self.state.fold_idle_runs(run, pending + 1, true).await? {
                run.id = id;
            }
            self.idle_runs
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(key, (0, Instant::now()));
            return Ok(Some(pending));
        }
        if pending > 0 {
            // The idle stretch before this run, counted in full.
            self.state
                .fold_idle_runs(&mut run.clone(), pending, false)
                .await?;
        }
        if run.recorded {
            self.state.finish_run(run, false).await?;
        } else {
            self.state.record_finished(run).await?;
        }
        Ok(Some(pending))
    }

    /// After a run that ended well: a full pass publishes a tombstone for
    /// every record published live before it began and not seen since (the
    /// source no longer lists it), then remembers the pass. Returns the
    /// manifest to publish, if one is due ([`Worker::manifest_due`]).
    async fn after_run(
        &self,
        info: &ConnectionInfo,
        data_type: DataType,
        revision: i64,
        full_pass: bool,
        pass_began: Timestamp,
        run: &mut SyncRun,
    ) -> Result<Option<ManifestEvent>, ProducerError> {
        if full_pass {
            let gone = self
                .state
                .vanished(&info.connection_id, data_type, pass_began)
                .await?;
            if !gone.is_empty() {
                let now = Timestamp::now();
                let tombstones: Vec<Event> = gone
                    .iter()
                    .map(|g| {
                        // Later than the version stored, so every store takes it.
                        let at = Timestamp(now.millis().max(g.modified_at.millis() + 1));
                        Event {
                            event_id: event_id(
                                &info.connection_id,
                                data_type,
                                &g.record_id,
                                at,
                                true,
                                revision,
                            ),
                            company_id: info.company_id.clone(),
                            connection_id: info.connection_id.clone(),
                            data_type: data_type.as_str().into(),
                            source: info.source.clone(),
                            source_record_id: g.record_id.clone(),
                            source_modified_at: at,
                            fetched_at: now,
                            deleted: true,
                            revision,
                            record: None,
                        }
                    })
                    .collect();
                self.publisher.publish_events(&tombstones).await?;
                let seen: Vec<Seen> = tombstones.iter().map(seen_of).collect();
                self.state
                    .track(&info.connection_id, data_type, &seen, now)
                    .await?;
                run.records_deleted = tombstones.len() as i64;
                tracing::info!(
                    deleted = tombstones.len(),
                    "reconciliation: tombstones for records the source no longer lists"
                );
            }
            self.state
                .record_pass(&info.connection_id, data_type, pass_began)
                .await?;
        }
        let changed = run.records_published > 0 || run.records_deleted > 0;
        if !self.manifest_due(&info.connection_id, data_type, full_pass, changed) {
            return Ok(None);
        }
        {
            let (live_count, digest) = self
                .state
                .live_digest(&info.connection_id, data_type)
                .await?;
            let as_of = Timestamp::now();
            let manifest = ManifestEvent {
                event_id: event_id(&info.connection_id, data_type, "manifest", as_of, false, 0),
                company_id: info.company_id.clone(),
                connection_id: info.connection_id.clone(),
                source: info.source.clone(),
                data_type: data_type.as_str().into(),
                run_id: run.id.clone(),
                as_of,
                full_pass,
                live_count,
                digest,
            };
            Ok(Some(manifest))
        }
    }

    /// Whether a run of a connection and data type is followed by a
    /// manifest: after every full pass and this worker's first run of it;
    /// after changes, at most every
    /// [`MANIFEST_EVERY`] while they go on, and at the first run that
    /// finds nothing new once they stop (so a manifest always follows the
    /// last change soon). Reading every live id for the digest is the cost
    /// this bounds.
    fn manifest_due(
        &self,
        connection_id: &str,
        data_type: DataType,
        full_pass: bool,
        changed: bool,
    ) -> bool {
        let mut manifests = self.manifests.lock().unwrap_or_else(|p| p.into_inner());
        let key = (connection_id.to_string(), data_type);
        let due = match manifests.get(&key) {
            _ if full_pass => true,
            // This worker's first run of the pair: one then, so a manifest
            // lost to a crash before its round was published comes back.
            None => true,
            Some((at, pending)) => {
                (changed && at.elapsed() >= MANIFEST_EVERY) || (*pending && !changed)
            }
        };
        if due {
            manifests.insert(key, (Instant::now(), false));
        } else if changed && let Some((_, pending)) = manifests.get_mut(&key) {
            *pending = true;
        }
        due
    }

    /// A refetch run: fetches its one record by id and publishes it (or
    /// sets it aside, when it cannot be mapped), at the current revision.
    /// The cursor does not move.
    async fn refetch(
        &self,
        info: &ConnectionInfo,
        connector: &dyn Connector,
        revision: i64,
        limiter: Option<&Limiter>,
        run: &mut SyncRun,
    ) -> Result<bool, ProducerError> {
        let data_type = run.data_type;
        let id = run.record_id.clone().ok_or_else(|| {
            ProducerError::State(format!("refetch run {} names no record", run.id))
        })?;
        let now = Timestamp::now();
        let raw = call_with_retry(&self.settings, limiter, || {
            connector.fetch_record(data_type, &id, now)
        })
        .await?;
        run.pages_fetched = 1;
        let Some(raw) = raw else {
            return Err(ProducerError::Connector(ConnectorError::new(
                &info.source,
                Fault::User,
                format!("the source has no {data_type} record {id:?}"),
            )));
        };
        run.records_fetched = 1;
        self.state.mark_publishing(&run.id).await?;
        match connector.map(data_type, &raw) {
            Ok(mapped) => {
                let event = event_of(info, data_type, mapped, revision, now);
                let seen = seen_of(&event);
                let too_large = self.publisher.publish_events(&[event]).await?;
                if let Some(t) = too_large.first() {
                    let set_aside = SetAside {
                        reason: t.to_string(),
                        raw: &raw,
                        record_id: Some(id.clone()),
                    };
                    self.publisher
                        .publish_dead_letters(
                            &info.company_id,
                            &info.connection_id,
                            data_type,
                            &[set_aside],
                        )
                        .await?;
                    run.records_dead_lettered = 1;
                } else {
                    self.state
                        .track(&info.connection_id, data_type, &[seen], now)
                        .await?;
                    run.records_published = 1;
                }
            }
            Err(e) => {
                metrics::error(&info.source, data_type, "map", &e.to_string());
                self.publisher
                    .publish_dead_letters(
                        &info.company_id,
                        &info.connection_id,
                        data_type,
                        &[SetAside::unmapped(e.to_string(), &raw)],
                    )
                    .await?;
                run.records_dead_lettered = 1;
            }
        }
        Ok(true)
    }

    /// The revision a run's events carry: a resync (not one resuming an
    /// interrupted resync, which goes on from where that one was) forgets
    /// the cursor and raises it first.
    async fn prepare_run(
        &self,
        info: &ConnectionInfo,
        run: &SyncRun,
        pair: PairState,
    ) -> Result<PairState, ProducerError> {
        if run.trigger == SyncTrigger::Resync && run.resumed_from.is_none() {
            let revision = self
                .state
                .begin_resync(&info.connection_id, run.data_type, &self.id)
                .await?
                .ok_or_else(|| ProducerError::LeaseLost(info.connection_id.clone()))?;
            return Ok(PairState {
                cursor: None,
                revision,
                ..pair
            });
        }
        Ok(pair)
    }

    /// The event a finished run publishes on the `sync_runs` topic.
    fn outcome_event(&self, info: &ConnectionInfo, run: &SyncRun) -> SyncRunEvent {
        let started_at = run.fetching_at.unwrap_or(run.queued_at);
        SyncRunEvent {
            event_id: event_id(
                &info.connection_id,
                run.data_type,
                "sync_run",
                started_at,
                false,
                0,
            ),
            company_id: info.company_id.clone(),
            connection_id: info.connection_id.clone(),
            source: info.source.clone(),
            data_type: run.data_type.as_str().into(),
            started_at,
            finished_at: Timestamp::now(),
            status: run.status,
            records_fetched: run.records_fetched,
            pages_fetched: run.pages_fetched,
            error: run.error.clone(),
            run_id: run.id.clone(),
            trigger: run.trigger,
            records_published: run.records_published,
            records_dead_lettered: run.records_dead_lettered,
            error_fault: run.error_fault.clone(),
            repeats: 0,
        }
    }

    /// The pages of one run; `Ok(false)` when the worker is stopping and
    /// the run ended before the source's last page.
    #[allow(clippy::too_many_arguments)]
    async fn sync_pages(
        &self,
        info: &ConnectionInfo,
        connector: &dyn Connector,
        data_type: DataType,
        revision: i64,
        mut cursor: Option<Cursor>,
        limiter: Option<&Limiter>,
        shutdown: &watch::Receiver<bool>,
        run: &mut SyncRun,
    ) -> Result<bool, ProducerError> {
        // A reconciliation leaves the saved cursor alone.
        let reconcile = run.trigger == SyncTrigger::Reconcile;
        // The positions this run asked from: a source that leads back to
        // one of them would page for ever.
        let mut asked: HashSet<Option<Cursor>> = HashSet::new();
        loop {
            if !asked.insert(cursor.clone()) {
                return Err(ProducerError::Connector(ConnectorError::new(
                    &info.source,
                    Fault::Source,
                    format!(
                        "the source led paging back to a position it had served ({}): stopping this sync instead of paging for ever",
                        cursor.as_ref().map_or("the start", |c| c.0.as_str())
                    ),
                )));
            }
            let now = Timestamp::now();
            let request = PageRequest {
                data_type,
                cursor: cursor.clone(),
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
                    Ok(mapped) => events.push(event_of(info, data_type, mapped, revision, now)),
                    Err(e) => {
                        // A bad record never stops the sync: it is kept, with the reason.
                        metrics::error(&info.source, data_type, "map", &e.to_string());
                        dead.push(SetAside::unmapped(e.to_string(), raw));
                    }
                }
            }
            if run.status == SyncRunStatus::Fetching && !page.records.is_empty() {
                run.status = SyncRunStatus::Publishing;
                run.publishing_at = Some(Timestamp::now());
                if run.recorded {
                    self.state.mark_publishing(&run.id).await?;
                } else {
                    // A scheduled run with records: written now, so the
                    // status shows it running.
                    self.state.record_run(run).await?;
                }
            }
            run.records_dead_lettered += dead.len() as i64;
            // Dead letters first: the cursor moves only once they are safe too.
            if !dead.is_empty() {
                self.publisher
                    .publish_dead_letters(&info.company_id, &info.connection_id, data_type, &dead)
                    .await?;
            }
            // Everything the page holds was seen, published lately or not.
            let seen: Vec<(String, Seen)> = events
                .iter()
                .map(|e| (e.event_id.clone(), seen_of(e)))
                .collect();
            let events = self
                .recent
                .unpublished(&info.connection_id, data_type, events);
            let too_large = self.publisher.publish_events(&events).await?;
            if !too_large.is_empty() {
                // Set aside like a record that cannot be mapped, so the
                // records behind them are not held up.
                // Rare: find their raw records by mapping again (map is pure),
                // rather than keeping an index of every record on the hot path.
                let dead: Vec<SetAside> = too_large
                    .iter()
                    .filter_map(|t| {
                        page.records.iter().find_map(|raw| {
                            let m = connector.map(data_type, raw).ok()?;
                            let id = event_id(
                                &info.connection_id,
                                data_type,
                                &m.source_record_id,
                                m.source_modified_at,
                                m.deleted,
                                revision,
                            );
                            (id == t.event_id).then(|| SetAside {
                                reason: t.to_string(),
                                raw,
                                record_id: Some(m.source_record_id),
                            })
                        })
                    })
                    .collect();
                for set_aside in &dead {
                    metrics::error(&info.source, data_type, "too_large", &set_aside.reason);
                }
                self.publisher
                    .publish_dead_letters(&info.company_id, &info.connection_id, data_type, &dead)
                    .await?;
            }
            run.records_published += (events.len() - too_large.len()) as i64;
            run.records_dead_lettered += too_large.len() as i64;
            self.recent
                .published(&info.connection_id, data_type, &events);
            let seen: Vec<Seen> = seen
                .into_iter()
                .filter(|(id, _)| !too_large.iter().any(|t| t.event_id == *id))
                .map(|(_, s)| s)
                .collect();
            crash_point("worker.after_publish");
            if run.trigger == SyncTrigger::Resync {
                crash_point("worker.resync_after_publish");
            }
            // What the page held, and the cursor past it, in one write. An
            // unchanged cursor is not written again; a reconciliation
            // leaves it alone.
            let next = page
                .next_cursor
                .filter(|n| Some(n) != request.cursor.as_ref());
            let save = next
                .as_ref()
                .filter(|_| !reconcile)
                .map(|c| (c, self.id.as_str()));
            let saved = self
                .state
                .save_page(&info.connection_id, data_type, save, &seen, now)
                .await?;
            if !saved {
                return Err(ProducerError::LeaseLost(info.connection_id.clone()));
            }
            if next.is_some() {
                cursor = next;
            }
            if !page.has_more {
                return Ok(true);
            }
            if *shutdown.borrow() {
                return Ok(false);
            }
        }
    }

    /// Syncs connections as they fall due (or are asked for, through the
    /// state store: [`StateStore::request_sync`]), `concurrency` at a time,
    /// until `shutdown` turns true. Connections are claimed through the
    /// state store's leases, so other workers sharing it split the work and
    /// take over a dead one's.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        tracing::info!(worker = %self.id, "connector worker started");
        match self.state.release_leases_of(&self.id).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                leases = n,
                "freed this worker's leases from before its restart"
            ),
            Err(e) => {
                tracing::warn!(error = %e, "cannot free this worker's old leases; they expire by themselves")
            }
        }
        // How often to look for due connections: they may fall due, or
        // another worker's may come free, at any time. A quarter of the
        // interval keeps the wait past a due time small next to it.
        let poll =
            (self.settings.interval / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
        let mut syncing = tokio::task::JoinSet::new();
        let mut pruned: Option<Instant> = None;
        let mut announced: Option<Instant> = None;
        loop {
            if announced.is_none_or(|at| at.elapsed() >= ANNOUNCE_EVERY) {
                announced = Some(Instant::now());
                self.announce_unsynced().await;
            }
            if pruned.is_none_or(|at| at.elapsed() >= PRUNE_EVERY) {
                pruned = Some(Instant::now());
                match self.state.prune_runs(self.settings.history).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(runs = n, "pruned the sync history"),
                    Err(e) => tracing::warn!(error = %e, "cannot prune the sync history"),
                }
            }
            let free = self.settings.concurrency.saturating_sub(syncing.len());
            match self
                .state
                .claim_due(&self.id, free, self.settings.lease)
                .await
            {
                Ok(claimed) => {
                    for claim in claimed {
                        let worker = Arc::clone(&self);
                        let shutdown = shutdown.clone();
                        syncing.spawn(async move { worker.sync_leased(claim, shutdown).await });
                    }
                }
                Err(e) => tracing::error!(error = %e, "cannot claim connections to sync"),
            }
            tokio::select! {
                _ = tokio::time::sleep(poll) => {}
                Some(joined) = syncing.join_next(), if !syncing.is_empty() => {
                    if let Err(e) = joined {
                        tracing::error!(error = %e, "connection sync task died");
                    }
                }
                _ = shutdown.changed() => {}
            }
            if *shutdown.borrow() {
                break;
            }
        }
        while let Some(joined) = syncing.join_next().await {
            if let Err(e) = joined {
                tracing::error!(error = %e, "connection sync task died");
            }
        }
    }

    /// Syncs a connection this worker claimed, renewing the lease until the
    /// sync ends, then releases it with the time the connection is next due.
    async fn sync_leased(&self, claim: Claimed, shutdown: watch::Receiver<bool>) {
        let stored = &claim.connection;
        let id = &stored.info.connection_id;
        tracing::debug!(connection = %id, scheduled = claim.scheduled, "leased");
        let sync = self.sync_connection(stored, claim.scheduled, &shutdown);
        tokio::pin!(sync);
        let result = tokio::select! {
            result = &mut sync => result,
            // Lost: the sync ends at its next page, its cursor refused.
            () = self.keep_lease(id) => sync.await,
        };
        let next_sync_in = match result {
            Ok(Round {
                pause: Some(pause), ..
            }) => Some(pause),
            // None: only what was asked for; the schedule stays as it was.
            Ok(Round { next_due, .. }) => next_due,
            Err(e) => {
                tracing::warn!(connection = %id, error = %e, "connection sync failed");
                Some(self.settings.interval)
            }
        };
        // Stopped half way: due at once, for whichever worker is up first.
        let next_sync_in = if *shutdown.borrow() {
            Some(Duration::ZERO)
        } else {
            next_sync_in
        };
        if let Err(e) = self.state.release_lease(id, &self.id, next_sync_in).await {
            // It expires by itself; until then no one else syncs it.
            tracing::warn!(connection = %id, error = %e, "cannot release the sync lease");
        }
    }

    /// Renews the lease on a connection every third of its length; returns
    /// only when another worker holds it.
    async fn keep_lease(&self, connection_id: &str) {
        loop {
            tokio::time::sleep(self.settings.lease / 3).await;
            match self
                .state
                .renew_lease(connection_id, &self.id, self.settings.lease)
                .await
            {
                Ok(true) => {}
                Ok(false) => {
                    tracing::warn!(connection = %connection_id, "sync lease lost to another worker");
                    return;
                }
                // The state store is unreachable: keep trying while the
                // lease lasts; cursor saves fail meanwhile anyway.
                Err(e) => {
                    tracing::warn!(connection = %connection_id, error = %e, "cannot renew the sync lease")
                }
            }
        }
    }
}
