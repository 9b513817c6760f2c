//! The sync history and the revisions, in the state store.
//!
//! Every sync of one connection and data type is a run: created `queued`
//! when an operator asks for it (or `fetching` when the schedule starts
//! it), then `fetching`, `publishing` (from its first page's events on),
//! and ended `succeeded`, `failed` or `paused`. At most one run of a
//! connection and data type is open at a time (a unique index), so a
//! second request for it is refused with the open one.
//!
//! A run whose worker died (or stopped) mid-run is closed as `failed` by
//! the next worker to take the connection, or by the stopping worker
//! itself; one an operator asked for is queued again to resume from the
//! saved cursor (`resumed_from` names the run it continues). So no run
//! stays open for ever.
//!
//! Scheduled runs are written lazily: once they have records to publish,
//! or when they end. Idle ones (succeeded, found nothing) fold: right after
//! another such run of the same connection and data type, one is not kept
//! as a row of its own; the earlier one counts it in `repeats` and takes
//! its end time (the worker writes these counts at most once a minute per
//! pair). At a 15 s interval most runs are such, and this keeps the
//! history, and the writes, to the runs that did something.
//!
//! Revisions: each (connection, data type) has one, 0 until its first
//! resync. Every event the worker publishes carries it; a resync raises it
//! (and forgets the cursor), so its events replace the versions the stores
//! hold even at the same source modification time, and repeating them is
//! harmless (equal versions and revisions are ignored).

use std::time::Duration;

use sqlx::AssertSqlSafe;
pub use tributary_connector_api::admin::RunFilter;
use tributary_schemas::{DataType, SyncRunStatus, SyncTrigger, Timestamp};

use super::{Pool, StateStore, millis, on_pool, state_err};
use crate::ProducerError;

/// One run of the sync history.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncRun {
    pub id: String,
    pub connection_id: String,
    pub company_id: String,
    pub data_type: DataType,
    pub trigger: SyncTrigger,
    /// A refetch's record: its source id.
    pub record_id: Option<String>,
    pub status: SyncRunStatus,
    /// The worker that ran (or runs) it.
    pub worker: Option<String>,
    pub queued_at: Timestamp,
    pub fetching_at: Option<Timestamp>,
    pub publishing_at: Option<Timestamp>,
    /// `None` while the run is open.
    pub finished_at: Option<Timestamp>,
    pub pages_fetched: i64,
    pub records_fetched: i64,
    pub records_published: i64,
    pub records_dead_lettered: i64,
    /// Tombstones published for records the source no longer lists.
    pub records_deleted: i64,
    pub error: Option<String>,
    /// Who is at fault when it did not succeed: `user`, `source`, `data`
    /// or `tributary`.
    pub error_fault: Option<String>,
    /// The interrupted run this one continues.
    pub resumed_from: Option<String>,
    /// Later scheduled runs that found nothing, folded into this one (its
    /// end is the last one's).
    pub repeats: i64,
    /// Whether the state store holds it yet: a scheduled run is written
    /// once it has records to publish, or when it ends (see
    /// [`StateStore::scheduled_run`]).
    pub recorded: bool,
}

impl SyncRun {
    /// The states the run went through, in order, with the time of each.
    pub fn states(&self) -> Vec<(SyncRunStatus, Timestamp)> {
        let mut states = vec![(SyncRunStatus::Queued, self.queued_at)];
        if let Some(at) = self.fetching_at {
            states.push((SyncRunStatus::Fetching, at));
        }
        if let Some(at) = self.publishing_at {
            states.push((SyncRunStatus::Publishing, at));
        }
        if let Some(at) = self.finished_at {
            states.push((self.status, at));
        }
        states
    }
}

/// A run asked for while another of the same connection and data type is
/// open.
#[derive(Debug, Clone)]
pub struct AlreadyOpen(pub SyncRun);

#[derive(sqlx::FromRow)]
struct RunRow {
    id: String,
    connection_id: String,
    company_id: String,
    data_type: String,
    trigger: String,
    record_id: Option<String>,
    status: String,
    worker: Option<String>,
    queued_at: i64,
    fetching_at: Option<i64>,
    publishing_at: Option<i64>,
    finished_at: Option<i64>,
    pages_fetched: i64,
    records_fetched: i64,
    records_published: i64,
    records_dead_lettered: i64,
    records_deleted: i64,
    error: Option<String>,
    error_fault: Option<String>,
    resumed_from: Option<String>,
    repeats: i64,
}

const COLUMNS: &str = "id, connection_id, company_id, data_type, trigger, record_id, status, worker, \
     queued_at, fetching_at, publishing_at, finished_at, pages_fetched, records_fetched, \
     records_published, records_dead_lettered, records_deleted, error, error_fault, resumed_from, repeats";

impl TryFrom<RunRow> for SyncRun {
    type Error = ProducerError;
    fn try_from(r: RunRow) -> Result<SyncRun, ProducerError> {
        let bad =
            |e: &dyn std::fmt::Display| ProducerError::State(format!("sync run {}: {e}", r.id));
        Ok(SyncRun {
            data_type: r.data_type.parse().map_err(|e| bad(&e))?,
            trigger: r.trigger.parse().map_err(|e| bad(&e))?,
            status: r.status.parse().map_err(|e| bad(&e))?,
            record_id: r.record_id,
            id: r.id,
            connection_id: r.connection_id,
            company_id: r.company_id,
            worker: r.worker,
            queued_at: Timestamp(r.queued_at),
            fetching_at: r.fetching_at.map(Timestamp),
            publishing_at: r.publishing_at.map(Timestamp),
            finished_at: r.finished_at.map(Timestamp),
            pages_fetched: r.pages_fetched,
            records_fetched: r.records_fetched,
            records_published: r.records_published,
            records_dead_lettered: r.records_dead_lettered,
            records_deleted: r.records_deleted,
            error: r.error,
            error_fault: r.error_fault,
            resumed_from: r.resumed_from,
            repeats: r.repeats,
            recorded: true,
        })
    }
}

/// Queues a run continuing an interrupted one: $1 id, $2 connection,
/// $3 company, $4 data type, $5 trigger, $6 the interrupted run, $7 its
/// record (a refetch's).
const RESUME: &str = "INSERT INTO sync_runs (id, connection_id, company_id, data_type, trigger, status, queued_at, resumed_from, record_id) \
     VALUES ($1, $2, $3, $4, $5, 'queued', {now}, $6, $7)";

/// A new run id: the creation time first, so ids sort by age, then
/// randomness, so ids made in the same millisecond differ.
fn new_run_id() -> String {
    format!(
        "run-{:013}-{}",
        Timestamp::now().millis(),
        &crate::secrets::Key::generate().to_hex()[..8]
    )
}

fn unique_violation(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .is_some_and(|d| d.is_unique_violation())
}

impl StateStore {
    async fn fetch_runs(
        &self,
        sql: &str,
        binds: &[Bind<'_>],
    ) -> Result<Vec<SyncRun>, ProducerError> {
        let rows: Vec<RunRow> = on_pool!(self, p => {
            let mut q = sqlx::query_as::<_, RunRow>(AssertSqlSafe(sql));
            for b in binds {
                q = match b {
                    Bind::Text(s) => q.bind(*s),
                    Bind::Int(i) => q.bind(*i),
                };
            }
            q.fetch_all(p).await
        })
        .map_err(state_err)?;
        rows.into_iter().map(SyncRun::try_from).collect()
    }

    /// Queues a run with `trigger` for each (connection, company, data
    /// type) of `wanted`, all or none, and makes those connections due at
    /// once; a refetch names its `record_id`. When one of them has an open
    /// run already, nothing is queued and that run is returned as
    /// [`AlreadyOpen`].
    pub async fn queue_runs(
        &self,
        wanted: &[(&str, &str, DataType)],
        trigger: SyncTrigger,
        record_id: Option<&str>,
    ) -> Result<Result<Vec<SyncRun>, AlreadyOpen>, ProducerError> {
        let insert = self.sql(&format!(
            "INSERT INTO sync_runs (id, connection_id, company_id, data_type, trigger, status, queued_at, record_id) \
             VALUES ($1, $2, $3, $4, $5, 'queued', {{now}}, $6) RETURNING {COLUMNS}"
        ));
        let due = self.sql(
            "INSERT INTO sync_leases (connection_id, owner, claimed_at, expires_at, next_sync_at, requested_at) \
             VALUES ($1, NULL, 0, 0, 0, {now}) \
             ON CONFLICT (connection_id) DO UPDATE SET requested_at = excluded.requested_at",
        );
        let outcome: Result<Result<Vec<RunRow>, (String, DataType)>, sqlx::Error> = on_pool!(self, p => async {
                let mut tx = p.begin().await?;
                let mut rows = Vec::new();
                for (connection_id, company_id, data_type) in wanted {
                    let row = sqlx::query_as::<_, RunRow>(AssertSqlSafe(insert.as_str()))
                        .bind(new_run_id())
                        .bind(*connection_id)
                        .bind(*company_id)
                        .bind(data_type.as_str())
                        .bind(trigger.as_str())
                        .bind(record_id)
                        .fetch_one(&mut *tx)
                        .await;
                    match row {
                        Ok(row) => rows.push(row),
                        Err(e) if unique_violation(&e) => {
                            return Ok(Err((connection_id.to_string(), *data_type)));
                        }
                        Err(e) => return Err(e),
                    }
                }
                for (connection_id, _, _) in wanted {
                    sqlx::query(AssertSqlSafe(due.as_str()))
                        .bind(*connection_id)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(Ok(rows))
            }
            .await);
        match outcome.map_err(state_err)? {
            Ok(rows) => Ok(Ok(rows
                .into_iter()
                .map(SyncRun::try_from)
                .collect::<Result<_, _>>()?)),
            Err((connection_id, data_type)) => {
                let open = self
                    .open_run(&connection_id, data_type)
                    .await?
                    .ok_or_else(|| {
                        ProducerError::State(format!(
                            "a {data_type} run of {connection_id} was open, then gone"
                        ))
                    })?;
                Ok(Err(AlreadyOpen(open)))
            }
        }
    }

    /// For each data type of each linked or deauthorized connection with
    /// runs in the history: (company, data type, since), `since` (ms) being
    /// the end of its newest successful run, or the connection's creation
    /// when the history holds none (so its age counts from then; history
    /// older than `sync.history_days` is gone, which can only make it look
    /// older).
    pub async fn last_successes(&self) -> Result<Vec<(String, String, i64)>, ProducerError> {
        let sql = "SELECT c.company_id, r.data_type, \
                   COALESCE(MAX(CASE WHEN r.status = 'succeeded' THEN r.finished_at END), c.created_at) \
                   FROM connections c JOIN sync_runs r ON r.connection_id = c.id \
                   WHERE c.status IN ('linked', 'deauthorized') \
                   GROUP BY c.id, c.company_id, r.data_type, c.created_at";
        on_pool!(self, p => sqlx::query_as::<_, (String, String, i64)>(sql)
            .fetch_all(p)
            .await)
        .map_err(state_err)
    }

    /// The open run of a connection and data type, if any.
    pub async fn open_run(
        &self,
        connection_id: &str,
        data_type: DataType,
    ) -> Result<Option<SyncRun>, ProducerError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM sync_runs WHERE connection_id = $1 AND data_type = $2 AND finished_at IS NULL"
        );
        Ok(self
            .fetch_runs(
                &sql,
                &[Bind::Text(connection_id), Bind::Text(data_type.as_str())],
            )
            .await?
            .pop())
    }

    /// The queued runs of a connection (asked for, not started).
    pub async fn queued_runs(&self, connection_id: &str) -> Result<Vec<SyncRun>, ProducerError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM sync_runs WHERE connection_id = $1 AND status = 'queued' ORDER BY id"
        );
        self.fetch_runs(&sql, &[Bind::Text(connection_id)]).await
    }

    /// Starts the run of a connection and data type for `worker`: the
    /// queued one if an operator asked for it, else a new one with
    /// `trigger`.
    pub async fn start_run(
        &self,
        connection_id: &str,
        company_id: &str,
        data_type: DataType,
        trigger: SyncTrigger,
        worker: &str,
    ) -> Result<SyncRun, ProducerError> {
        let take = self.sql(&format!(
            "UPDATE sync_runs SET status = 'fetching', fetching_at = {{now}}, worker = $3 \
             WHERE connection_id = $1 AND data_type = $2 AND status = 'queued' RETURNING {COLUMNS}"
        ));
        let insert = self.sql(&format!(
            "INSERT INTO sync_runs (id, connection_id, company_id, data_type, trigger, status, worker, queued_at, fetching_at) \
             VALUES ($1, $2, $3, $4, $5, 'fetching', $6, {{now}}, {{now}}) RETURNING {COLUMNS}"
        ));
        // Twice at most: a request may queue a run between the two statements.
        for _ in 0..2 {
            let taken = self
                .fetch_runs(
                    &take,
                    &[
                        Bind::Text(connection_id),
                        Bind::Text(data_type.as_str()),
                        Bind::Text(worker),
                    ],
                )
                .await?;
            if let Some(run) = taken.into_iter().next() {
                return Ok(run);
            }
            let inserted = self
                .fetch_runs(
                    &insert,
                    &[
                        Bind::Text(&new_run_id()),
                        Bind::Text(connection_id),
                        Bind::Text(company_id),
                        Bind::Text(data_type.as_str()),
                        Bind::Text(trigger.as_str()),
                        Bind::Text(worker),
                    ],
                )
                .await;
            match inserted {
                Ok(mut runs) => {
                    if let Some(run) = runs.pop() {
                        return Ok(run);
                    }
                }
                Err(ProducerError::Database(e)) if unique_violation(&e) => {}
                Err(e) => return Err(e),
            }
        }
        Err(ProducerError::State(format!(
            "cannot start a {data_type} run of {connection_id}: another is open"
        )))
    }

    /// Marks a run as publishing, once: from its first page's events on.
    pub async fn mark_publishing(&self, run_id: &str) -> Result<(), ProducerError> {
        let sql = self.sql(
            "UPDATE sync_runs SET status = 'publishing', publishing_at = {now} \
             WHERE id = $1 AND status = 'fetching'",
        );
        on_pool!(self, p => sqlx::query(AssertSqlSafe(sql.as_str())).bind(run_id).execute(p).await.map(drop))
            .map_err(state_err)
    }

    /// A scheduled run starting now, in memory only: it is written when it
    /// has records to publish ([`StateStore::record_run`]) or when it ends
    /// ([`StateStore::record_finished`], [`StateStore::fold_idle_runs`]),
    /// so the many scheduled runs that find nothing cost no write each.
    pub fn scheduled_run(
        &self,
        connection_id: &str,
        company_id: &str,
        data_type: DataType,
        trigger: SyncTrigger,
        worker: &str,
    ) -> SyncRun {
        let now = Timestamp::now();
        SyncRun {
            id: new_run_id(),
            connection_id: connection_id.to_string(),
            company_id: company_id.to_string(),
            data_type,
            trigger,
            record_id: None,
            status: SyncRunStatus::Fetching,
            worker: Some(worker.to_string()),
            queued_at: now,
            fetching_at: Some(now),
            publishing_at: None,
            finished_at: None,
            pages_fetched: 0,
            records_fetched: 0,
            records_published: 0,
            records_dead_lettered: 0,
            records_deleted: 0,
            error: None,
            error_fault: None,
            resumed_from: None,
            repeats: 0,
            recorded: false,
        }
    }

    /// Writes a run kept in memory so far, as it stands (open, or finished
    /// when its `finished_at` is set). An open one is refused (false) when
    /// the pair has another open run (an operator's request queued
    /// meanwhile); a finished one never is.
    async fn insert_run(&self, run: &SyncRun) -> Result<bool, ProducerError> {
        const SQL: &str = "INSERT INTO sync_runs (id, connection_id, company_id, data_type, trigger, record_id, \
             status, worker, queued_at, fetching_at, publishing_at, finished_at, pages_fetched, records_fetched, \
             records_published, records_dead_lettered, records_deleted, error, error_fault, resumed_from, repeats) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)";
        let done = on_pool!(self, p => sqlx::query(SQL)
            .bind(&run.id)
            .bind(&run.connection_id)
            .bind(&run.company_id)
            .bind(run.data_type.as_str())
            .bind(run.trigger.as_str())
            .bind(&run.record_id)
            .bind(run.status.as_str())
            .bind(&run.worker)
            .bind(run.queued_at.millis())
            .bind(run.fetching_at.map(Timestamp::millis))
            .bind(run.publishing_at.map(Timestamp::millis))
            .bind(run.finished_at.map(Timestamp::millis))
            .bind(run.pages_fetched)
            .bind(run.records_fetched)
            .bind(run.records_published)
            .bind(run.records_dead_lettered)
            .bind(run.records_deleted)
            .bind(&run.error)
            .bind(&run.error_fault)
            .bind(&run.resumed_from)
            .bind(run.repeats)
            .execute(p)
            .await
            .map(drop));
        match done {
            Ok(_) => Ok(true),
            Err(e) if unique_violation(&e) => Ok(false),
            Err(e) => Err(state_err(e)),
        }
    }

    /// Writes a scheduled run that has records to publish, open, so the
    /// status shows it running; says whether it could (another run of
    /// the pair may have been queued meanwhile: then it is written when it
    /// ends).
    pub async fn record_run(&self, run: &mut SyncRun) -> Result<(), ProducerError> {
        run.recorded = self.insert_run(run).await?;
        Ok(())
    }

    /// Writes a run kept in memory, ended now.
    pub async fn record_finished(&self, run: &mut SyncRun) -> Result<(), ProducerError> {
        run.finished_at = Some(Timestamp::now());
        run.recorded = self.insert_run(run).await?;
        Ok(())
    }

    /// Counts `n` scheduled runs that found nothing into the latest run of
    /// their pair when it is such a run too (its end moves to now), and
    /// returns its id; otherwise, with `or_write`, `run` (one of them) is
    /// written, ended, holding the others in `repeats`.
    pub async fn fold_idle_runs(
        &self,
        run: &mut SyncRun,
        n: i64,
        or_write: bool,
    ) -> Result<Option<String>, ProducerError> {
        let fold = self.sql(
            "UPDATE sync_runs SET repeats = repeats + $3, finished_at = {now} \
             WHERE id = (SELECT id FROM sync_runs WHERE connection_id = $1 AND data_type = $2 \
                 AND finished_at IS NOT NULL ORDER BY id DESC LIMIT 1) \
             AND trigger = 'schedule' AND status = 'succeeded' \
             AND records_fetched = 0 AND records_dead_lettered = 0 AND records_deleted = 0 RETURNING id",
        );
        let folded =
            on_pool!(self, p => sqlx::query_as::<_, (String,)>(AssertSqlSafe(fold.as_str()))
            .bind(&run.connection_id)
            .bind(run.data_type.as_str())
            .bind(n)
            .fetch_optional(p)
            .await)
            .map_err(state_err)?;
        if let Some((id,)) = folded {
            return Ok(Some(id));
        }
        if !or_write {
            return Ok(None);
        }
        run.repeats = n - 1;
        self.record_finished(run).await?;
        Ok(Some(run.id.clone()))
    }

    /// Ends a recorded run with its status, counts and error. With
    /// `resume`, a run an operator asked for (not a scheduled one) is
    /// queued again to go on from the saved cursor, in the same
    /// transaction.
    pub async fn finish_run(&self, run: &SyncRun, resume: bool) -> Result<(), ProducerError> {
        let finish = self.sql(
            "UPDATE sync_runs SET status = $2, finished_at = {now}, pages_fetched = $3, \
             records_fetched = $4, records_published = $5, records_dead_lettered = $6, \
             error = $7, error_fault = $8, records_deleted = $9 WHERE id = $1 AND finished_at IS NULL",
        );
        let resume_sql = self.sql(RESUME);
        let resume = resume && run.trigger != SyncTrigger::Schedule;
        on_pool!(self, p => async {
            let mut tx = p.begin().await?;
            sqlx::query(AssertSqlSafe(finish.as_str()))
                .bind(&run.id)
                .bind(run.status.as_str())
                .bind(run.pages_fetched)
                .bind(run.records_fetched)
                .bind(run.records_published)
                .bind(run.records_dead_lettered)
                .bind(&run.error)
                .bind(&run.error_fault)
                .bind(run.records_deleted)
                .execute(&mut *tx)
                .await?;
            if resume {
                sqlx::query(AssertSqlSafe(resume_sql.as_str()))
                    .bind(new_run_id())
                    .bind(&run.connection_id)
                    .bind(&run.company_id)
                    .bind(run.data_type.as_str())
                    .bind(run.trigger.as_str())
                    .bind(&run.id)
                    .bind(&run.record_id)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await
        }
        .await)
        .map_err(state_err)
    }

    /// Closes a connection's started, unfinished runs as `failed` with
    /// `reason` (their worker died mid-run: whoever holds the lease now
    /// knows no one else runs them), and queues again those an operator
    /// asked for, to resume from the saved cursor. Returns the runs closed.
    pub async fn close_interrupted(
        &self,
        connection_id: &str,
        reason: &str,
    ) -> Result<Vec<SyncRun>, ProducerError> {
        let close = self.sql(&format!(
            "UPDATE sync_runs SET status = 'failed', finished_at = {{now}}, error = $2, error_fault = 'tributary' \
             WHERE connection_id = $1 AND finished_at IS NULL AND status <> 'queued' RETURNING {COLUMNS}"
        ));
        let resume = self.sql(RESUME);
        let rows: Vec<RunRow> = on_pool!(self, p => async {
            let mut tx = p.begin().await?;
            let rows = sqlx::query_as::<_, RunRow>(AssertSqlSafe(close.as_str()))
                .bind(connection_id)
                .bind(reason)
                .fetch_all(&mut *tx)
                .await?;
            for row in rows.iter().filter(|r| r.trigger != SyncTrigger::Schedule.as_str()) {
                sqlx::query(AssertSqlSafe(resume.as_str()))
                    .bind(new_run_id())
                    .bind(&row.connection_id)
                    .bind(&row.company_id)
                    .bind(&row.data_type)
                    .bind(&row.trigger)
                    .bind(&row.id)
                    .bind(&row.record_id)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(rows)
        }
        .await)
        .map_err(state_err)?;
        rows.into_iter().map(SyncRun::try_from).collect()
    }

    /// A company's runs, newest first.
    pub async fn runs(
        &self,
        company_id: &str,
        filter: &RunFilter,
    ) -> Result<Vec<SyncRun>, ProducerError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM sync_runs WHERE company_id = $1 \
             AND ($2 = '' OR data_type = $2) AND ($3 = '' OR status = $3) \
             AND ($4 = '' OR trigger = $4) AND ($5 = '' OR id < $5) \
             ORDER BY id DESC LIMIT $6"
        );
        self.fetch_runs(
            &sql,
            &[
                Bind::Text(company_id),
                Bind::Text(filter.data_type.map_or("", |t| t.as_str())),
                Bind::Text(filter.status.map_or("", |s| s.as_str())),
                Bind::Text(filter.trigger.map_or("", |t| t.as_str())),
                Bind::Text(filter.after.as_deref().unwrap_or("")),
                Bind::Int(i64::from(filter.limit)),
            ],
        )
        .await
    }

    /// One run of a company.
    pub async fn run(
        &self,
        company_id: &str,
        run_id: &str,
    ) -> Result<Option<SyncRun>, ProducerError> {
        let sql = format!("SELECT {COLUMNS} FROM sync_runs WHERE company_id = $1 AND id = $2");
        Ok(self
            .fetch_runs(&sql, &[Bind::Text(company_id), Bind::Text(run_id)])
            .await?
            .pop())
    }

    /// A company's open runs (queued or running), oldest first.
    pub async fn open_runs(&self, company_id: &str) -> Result<Vec<SyncRun>, ProducerError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM sync_runs WHERE company_id = $1 AND finished_at IS NULL ORDER BY id"
        );
        self.fetch_runs(&sql, &[Bind::Text(company_id)]).await
    }

    /// Deletes the runs that ended more than `keep` ago; returns how many.
    pub async fn prune_runs(&self, keep: Duration) -> Result<u64, ProducerError> {
        let sql = self.sql("DELETE FROM sync_runs WHERE finished_at < {now} - $1");
        on_pool!(self, p => sqlx::query(AssertSqlSafe(sql.as_str()))
            .bind(millis(keep))
            .execute(p)
            .await
            .map(|done| done.rows_affected()))
        .map_err(state_err)
    }

    /// The revision a connection and data type's events carry now.
    pub async fn revision(
        &self,
        connection_id: &str,
        data_type: DataType,
    ) -> Result<i64, ProducerError> {
        const SQL: &str =
            "SELECT revision FROM revisions WHERE connection_id = $1 AND data_type = $2";
        Ok(self
            .number_of(SQL, connection_id, data_type)
            .await?
            .unwrap_or(0))
    }

    /// Starts a resync of a connection and data type, if `owner` holds the
    /// connection's lease: forgets the cursor and raises the revision, in
    /// one transaction. Returns the new revision, or `None` without the
    /// lease.
    pub async fn begin_resync(
        &self,
        connection_id: &str,
        data_type: DataType,
        owner: &str,
    ) -> Result<Option<i64>, ProducerError> {
        // The write comes first, so SQLite takes its write lock (waiting for
        // it) at once, instead of failing an upgrade from a read.
        let revision: Option<i64> = on_pool!(self, p => async {
            let mut tx = p.begin().await?;
            let raised = sqlx::query_as::<_, (i64,)>(
                "INSERT INTO revisions (connection_id, data_type, revision) \
                 SELECT $1, $2, 1 WHERE EXISTS \
                 (SELECT 1 FROM sync_leases WHERE connection_id = $1 AND owner = $3) \
                 ON CONFLICT (connection_id, data_type) DO UPDATE SET revision = revisions.revision + 1 \
                 RETURNING revision",
            )
            .bind(connection_id)
            .bind(data_type.as_str())
            .bind(owner)
            .fetch_optional(&mut *tx)
            .await?;
            let Some((revision,)) = raised else {
                return Ok(None);
            };
            sqlx::query("DELETE FROM cursors WHERE connection_id = $1 AND data_type = $2")
                .bind(connection_id)
                .bind(data_type.as_str())
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(Some(revision))
        }
        .await)
        .map_err(state_err)?;
        Ok(revision)
    }
}

/// A query parameter of [`StateStore::fetch_runs`].
enum Bind<'a> {
    Text(&'a str),
    Int(i64),
}
