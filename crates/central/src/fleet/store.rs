//! The fleet and its queue in the database: hosts, tokens, jobs, results, reports. Every
//! change that concerns a host bumps its `rev` in the same transaction and, after the commit,
//! goes through [`Store::changed`], the one place that wakes polls and pushes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};
use tokio::sync::mpsc;

use crate::db::Db;
use crate::events::{self, EventType};
use crate::fleet::waiters::Waiters;

/// A store operation that failed; names the host or job at fault.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("host {0} already exists")]
    HostExists(String),
    #[error("there is no host {0}")]
    NoHost(String),
    #[error("there is no job {0}")]
    NoJob(String),
    #[error("job {id} is {state}, not queued")]
    NotQueued { id: String, state: String },
    #[error("no host has reported the key number {0}")]
    NoKeyNumber(String),
    #[error("the key number {key} is reported by several hosts: {hosts}")]
    AmbiguousKeyNumber { key: String, hosts: String },
    #[error("the database {url} failed: {reason}")]
    Db { url: String, reason: String },
}

/// Every state a job can be in: queued until its result or its cancellation.
pub const JOB_STATES: &[&str] = &["queued", "succeeded", "failed", "rejected", "cancelled"];

/// Milliseconds since the epoch; injected so tests can drive time.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

pub fn system_clock() -> Clock {
    Arc::new(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    })
}

/// A host as the admin API shows it (never its token).
// ToSchema describes this very serialisation in the admin API's OpenAPI document.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Host {
    pub id: String,
    /// Where wake pushes go; `null`: none.
    pub push_url: Option<String>,
    /// panel.ini `[extensions] buyUrl` for this host; `null`: the fleet value, `""`: absent.
    pub buy_url: Option<String>,
    /// panel.ini `[extensions] catalog.url` for this host; `null`: the fleet value, `""`: absent.
    pub catalog_url: Option<String>,
    #[serde(serialize_with = "crate::times::req")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
    #[serde(serialize_with = "crate::times::opt")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_seen_at: Option<i64>,
    /// The Plesk key number of the last report (`PLSK.12345678.0001`).
    pub key_number: Option<String>,
    pub agent_version: Option<String>,
    /// The agent's last report (agent contract section 5.3).
    #[schema(value_type = Option<plesk_reseller_protocol::Report>)]
    pub report: Option<serde_json::Value>,
    #[serde(serialize_with = "crate::times::opt")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub report_at: Option<i64>,
    /// The enroll key that enrolled it (None: `hosts add`), and when (version 2).
    pub enrolled_by: Option<String>,
    #[serde(serialize_with = "crate::times::opt")]
    pub enrolled_at: Option<i64>,
    #[serde(skip)]
    pub push_secret: String,
}

/// A job as the admin API shows it (never its activation code).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = Job)]
pub struct JobRow {
    pub id: String,
    pub host: String,
    #[serde(rename = "type")]
    #[schema(schema_with = job_type_schema)]
    pub kind: String,
    #[schema(schema_with = job_state_schema)]
    pub state: String,
    pub idempotency_key: Option<String>,
    #[serde(serialize_with = "crate::times::req")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
    #[serde(serialize_with = "crate::times::opt")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub ended_at: Option<i64>,
    /// The agent's result once the job ended (agent contract section 5.2).
    #[schema(value_type = Option<plesk_reseller_protocol::JobResult>)]
    pub result: Option<serde_json::Value>,
    #[serde(skip)]
    pub activation_code: Option<String>,
}

/// The OpenAPI schema of a string that is one of `values` (the same constants the code checks).
pub fn one_of(values: &[&str]) -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::Type::String)
        .enum_values(Some(values.iter().copied()))
        .build()
}

/// The job types, as on the wire.
pub const JOB_TYPES: &[&str] = &["install_key", "retrieve_keys"];

/// `type` of a job in the OpenAPI document.
pub fn job_type_schema() -> utoipa::openapi::Object {
    one_of(JOB_TYPES)
}

/// `state` of a job in the OpenAPI document.
pub fn job_state_schema() -> utoipa::openapi::Object {
    one_of(JOB_STATES)
}

/// A per-host value change: `None` leaves it, `Some(None)` unsets it, `Some(Some(v))` sets it.
#[derive(Debug, Default, Clone)]
pub struct HostChanges {
    pub buy_url: Option<Option<String>>,
    pub catalog_url: Option<Option<String>>,
    pub push_url: Option<Option<String>>,
}

/// What became of a result the agent posted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultOutcome {
    Stored,
    SameAgain,
    Different,
    Cancelled,
    /// The job is another host's.
    NotFound,
    /// No host has this job (any more): removed with its host, or never queued.
    Gone,
}

#[derive(Clone)]
pub struct Store {
    pub db: Db,
    pub waiters: Arc<Waiters>,
    clock: Clock,
    seq: Arc<AtomicU64>,
    /// Hosts to push a wake to; bounded, a full queue drops (the poll is the guarantee).
    push_tx: Option<mpsc::Sender<String>>,
}

const HOST_COLS: &str = "id, push_url, buy_url, catalog_url, created_at, last_seen_at, key_number, \
                         agent_version, report, report_at, push_secret, enrolled_by, enrolled_at";
const JOB_COLS: &str = "id, host_id, type, state, idempotency_key, created_at, ended_at, result, activation_code";

fn host_of(r: &AnyRow) -> Host {
    Host {
        id: r.get(0),
        push_url: r.get(1),
        buy_url: r.get(2),
        catalog_url: r.get(3),
        created_at: r.get(4),
        last_seen_at: r.get(5),
        key_number: r.get(6),
        agent_version: r.get(7),
        report: r
            .get::<Option<String>, _>(8)
            .and_then(|s| serde_json::from_str(&s).ok()),
        report_at: r.get(9),
        push_secret: r.get(10),
        enrolled_by: r.get(11),
        enrolled_at: r.get(12),
    }
}

fn job_of(r: &AnyRow) -> JobRow {
    JobRow {
        id: r.get(0),
        host: r.get(1),
        kind: r.get(2),
        state: r.get(3),
        idempotency_key: r.get(4),
        created_at: r.get(5),
        ended_at: r.get(6),
        result: r
            .get::<Option<String>, _>(7)
            .and_then(|s| serde_json::from_str(&s).ok()),
        activation_code: r.get(8),
    }
}

impl Store {
    pub fn new(db: Db, clock: Clock, push_tx: Option<mpsc::Sender<String>>) -> Store {
        Store {
            db,
            waiters: Arc::new(Waiters::default()),
            clock,
            seq: Arc::new(AtomicU64::new(0)),
            push_tx,
        }
    }

    pub fn now(&self) -> i64 {
        (self.clock)()
    }

    pub(crate) fn err(&self, e: sqlx::Error) -> StoreError {
        StoreError::Db {
            url: self.db.url.clone(),
            reason: e.to_string(),
        }
    }

    pub(crate) async fn begin(&self) -> Result<Transaction<'static, Any>, StoreError> {
        self.db
            .pool
            .begin_with(self.db.dialect.begin_write())
            .await
            .map_err(|e| self.err(e))
    }

    pub(crate) async fn commit(&self, tx: Transaction<'static, Any>) -> Result<(), StoreError> {
        tx.commit().await.map_err(|e| self.err(e))
    }

    /// After a commit that concerns `host`: wake its held polls here and push a wake to it.
    /// (On PostgreSQL the other replicas learn of it from the NOTIFY sent by [`Store::bump`].)
    pub fn changed(&self, host: &str) {
        self.waiters.notify(host);
        if let Some(tx) = &self.push_tx {
            let _ = tx.try_send(host.to_string());
        }
    }

    /// After a commit the host itself caused (its result): wake polls, but push nothing —
    /// the agent knows already.
    fn changed_by_agent(&self, host: &str) {
        self.waiters.notify(host);
    }

    async fn bump(&self, tx: &mut Transaction<'static, Any>, host: &str) -> Result<bool, StoreError> {
        let r = sqlx::query("UPDATE hosts SET rev = rev + 1 WHERE id = $1")
            .bind(host)
            .execute(&mut **tx)
            .await
            .map_err(|e| self.err(e))?;
        self.notify_replicas(tx, host).await?;
        Ok(r.rows_affected() == 1)
    }

    /// PostgreSQL: NOTIFY the other replicas in the same transaction (delivered at commit).
    pub(crate) async fn notify_replicas(
        &self,
        tx: &mut Transaction<'static, Any>,
        host: &str,
    ) -> Result<(), StoreError> {
        if let Some(sql) = self.db.dialect.notify_statement() {
            sqlx::query(sql)
                .bind(host)
                .execute(&mut **tx)
                .await
                .map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    /// A job id in the contract's grammar: `j-` + 16 hex of (ms << 20 | counter), unique
    /// within the process, + 4 random hex so two processes never collide. Only an id: the
    /// queue's order is the database's `job_sequence`, which no clock can step back.
    fn next_job_id(&self) -> String {
        let floor = (self.now().max(0) as u64) << 20;
        let mut cur = self.seq.load(Ordering::Relaxed);
        loop {
            let next = floor.max(cur + 1);
            match self
                .seq
                .compare_exchange(cur, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return format!("j-{next:016x}{:04x}", fastrand::u16(..)),
                Err(seen) => cur = seen,
            }
        }
    }

    pub async fn add_host(
        &self,
        id: &str,
        token_hash: &str,
        push_url: Option<&str>,
        push_secret: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        let exists = sqlx::query("SELECT 1 FROM hosts WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(|e| self.err(e))?;
        if exists.is_some() {
            return Err(StoreError::HostExists(id.into()));
        }
        sqlx::query(
            "INSERT INTO hosts (id, token_sha256, push_url, push_secret, rev, created_at) VALUES ($1, $2, $3, $4, 1, $5)",
        )
        .bind(id)
        .bind(token_hash)
        .bind(push_url)
        .bind(push_secret)
        .bind(self.now())
        .execute(&mut *tx)
        .await
        .map_err(|e| self.err(e))?;
        self.commit(tx).await
    }

    /// The host whose token hashes to `token_hash` (one lookup in the token's unique index),
    /// and when it was last seen (None: never).
    pub async fn host_by_token(&self, token_hash: &str) -> Result<Option<(String, Option<i64>)>, StoreError> {
        let row = sqlx::query("SELECT id, last_seen_at FROM hosts WHERE token_sha256 = $1")
            .bind(token_hash)
            .fetch_optional(&self.db.pool)
            .await
            .map_err(|e| self.err(e))?;
        Ok(row.map(|r| (r.get(0), r.get(1))))
    }

    /// A host's first poll or report is written at once (later ones are batched), so a
    /// host that has talked to the central is never shown as never seen.
    pub async fn first_seen(&self, host: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE hosts SET last_seen_at = $1 WHERE id = $2 AND last_seen_at IS NULL")
            .bind(self.now())
            .bind(host)
            .execute(&self.db.pool)
            .await
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    pub async fn host(&self, id: &str) -> Result<Host, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {HOST_COLS} FROM hosts WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.db.pool)
        .await
        .map_err(|e| self.err(e))?;
        row.map(|r| host_of(&r)).ok_or_else(|| StoreError::NoHost(id.into()))
    }

    pub async fn hosts(&self) -> Result<Vec<Host>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {HOST_COLS} FROM hosts ORDER BY id"
        )))
        .fetch_all(&self.db.pool)
        .await
        .map_err(|e| self.err(e))?;
        Ok(rows.iter().map(host_of).collect())
    }

    pub async fn set_host(&self, id: &str, c: &HostChanges) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        if !self.bump(&mut tx, id).await? {
            return Err(StoreError::NoHost(id.into()));
        }
        for (col, change) in [
            ("buy_url", &c.buy_url),
            ("catalog_url", &c.catalog_url),
            ("push_url", &c.push_url),
        ] {
            if let Some(v) = change {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "UPDATE hosts SET {col} = $1 WHERE id = $2"
                )))
                .bind(v.as_deref())
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(|e| self.err(e))?;
            }
        }
        self.commit(tx).await?;
        self.changed(id);
        Ok(())
    }

    /// A new token; the old one stops working with the commit, for polls already held too:
    /// they are woken here and on every replica, and re-check their token.
    pub async fn rotate_token(&self, id: &str, token_hash: &str) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        let r = sqlx::query("UPDATE hosts SET token_sha256 = $1, rev = rev + 1 WHERE id = $2")
            .bind(token_hash)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.err(e))?;
        if r.rows_affected() == 0 {
            return Err(StoreError::NoHost(id.into()));
        }
        self.notify_replicas(&mut tx, id).await?;
        self.commit(tx).await?;
        // No push: the agent holding the new token polls by itself; the old one must not.
        self.waiters.notify(id);
        Ok(())
    }

    pub async fn remove_host(&self, id: &str) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        for sql in ["DELETE FROM jobs WHERE host_id = $1", "DELETE FROM hosts WHERE id = $1"] {
            let r = sqlx::query(sql)
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(|e| self.err(e))?;
            if sql.contains("hosts") && r.rows_affected() == 0 {
                return Err(StoreError::NoHost(id.into()));
            }
        }
        // No row left to bump: polls held elsewhere must still re-read (and get 401).
        self.notify_replicas(&mut tx, id).await?;
        self.commit(tx).await?;
        self.db.after_erase().await;
        self.changed(id);
        Ok(())
    }

    /// The host whose last report carried `key` (already normalised).
    pub async fn host_by_key_number(&self, key: &str) -> Result<String, StoreError> {
        let rows = sqlx::query("SELECT id FROM hosts WHERE key_number = $1 ORDER BY id")
            .bind(key)
            .fetch_all(&self.db.pool)
            .await
            .map_err(|e| self.err(e))?;
        let ids: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
        match ids.len() {
            0 => Err(StoreError::NoKeyNumber(key.into())),
            1 => Ok(ids.into_iter().next().unwrap_or_default()),
            _ => Err(StoreError::AmbiguousKeyNumber {
                key: key.into(),
                hosts: ids.join(", "),
            }),
        }
    }

    /// Queues a job; with an idempotency key already used for this host, returns the first
    /// job instead (`false`: nothing new was queued).
    pub async fn add_job(
        &self,
        host: &str,
        kind: &str,
        code: Option<&str>,
        idem: Option<&str>,
    ) -> Result<(JobRow, bool), StoreError> {
        let mut tx = self.begin().await?;
        if let Some(key) = idem {
            let sql = format!("SELECT {JOB_COLS} FROM jobs WHERE host_id = $1 AND idempotency_key = $2");
            let row = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(host)
                .bind(key)
                .fetch_optional(&mut *tx)
                .await
                .map_err(|e| self.err(e))?;
            if let Some(r) = row {
                return Ok((job_of(&r), false));
            }
        }
        if !self.bump(&mut tx, host).await? {
            return Err(StoreError::NoHost(host.into()));
        }
        let id = self.next_job_id();
        // After the host's bump: one lock order (host, then counter) for every queuer.
        let seq: i64 = sqlx::query_scalar("UPDATE job_sequence SET value = value + 1 WHERE id = 1 RETURNING value")
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| self.err(e))?;
        sqlx::query(
            "INSERT INTO jobs (id, host_id, seq, type, activation_code, idempotency_key, state, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, 'queued', $7)",
        )
        .bind(&id)
        .bind(host)
        .bind(seq)
        .bind(kind)
        .bind(code)
        .bind(idem)
        .bind(self.now())
        .execute(&mut *tx)
        .await
        .map_err(|e| self.err(e))?;
        self.commit(tx).await?;
        self.changed(host);
        Ok((self.job(&id).await?, true))
    }

    pub async fn job(&self, id: &str) -> Result<JobRow, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {JOB_COLS} FROM jobs WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.db.pool)
        .await
        .map_err(|e| self.err(e))?;
        row.map(|r| job_of(&r)).ok_or_else(|| StoreError::NoJob(id.into()))
    }

    /// Jobs, oldest first, optionally of one host and/or in one state.
    pub async fn jobs(&self, host: Option<&str>, state: Option<&str>) -> Result<Vec<JobRow>, StoreError> {
        let sql = format!(
            "SELECT {JOB_COLS} FROM jobs WHERE ($1 IS NULL OR host_id = $1) AND ($2 IS NULL OR state = $2) ORDER BY seq"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(host)
            .bind(state)
            .fetch_all(&self.db.pool)
            .await
            .map_err(|e| self.err(e))?;
        Ok(rows.iter().map(job_of).collect())
    }

    /// One page of jobs, newest first, and how many match in all (the fleet page's jobs).
    pub async fn recent_jobs(
        &self,
        host: Option<&str>,
        state: Option<&str>,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<JobRow>, i64), StoreError> {
        let filter = "($1 IS NULL OR host_id = $1) AND ($2 IS NULL OR state = $2)";
        let sql = format!("SELECT {JOB_COLS} FROM jobs WHERE {filter} ORDER BY seq DESC LIMIT $3 OFFSET $4");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(host)
            .bind(state)
            .bind(limit)
            .bind(offset)
            .fetch_all(&self.db.pool)
            .await
            .map_err(|e| self.err(e))?;
        let total: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM jobs WHERE {filter}")))
            .bind(host)
            .bind(state)
            .fetch_one(&self.db.pool)
            .await
            .map_err(|e| self.err(e))?;
        Ok((rows.iter().map(job_of).collect(), total))
    }

    /// Cancels a queued job and erases its code.
    pub async fn cancel_job(&self, id: &str) -> Result<JobRow, StoreError> {
        let mut tx = self.begin().await?;
        let job = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {JOB_COLS} FROM jobs WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(|e| self.err(e))?
        .map(|r| job_of(&r))
        .ok_or_else(|| StoreError::NoJob(id.into()))?;
        if job.state != "queued" {
            return Err(StoreError::NotQueued {
                id: id.into(),
                state: job.state,
            });
        }
        sqlx::query("UPDATE jobs SET state = 'cancelled', activation_code = NULL, ended_at = $1 WHERE id = $2")
            .bind(self.now())
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.err(e))?;
        self.bump(&mut tx, &job.host).await?;
        self.commit(tx).await?;
        self.db.after_erase().await;
        self.changed(&job.host);
        self.job(id).await
    }

    /// The first result of a job ends it; the same body again is acknowledged, another one is
    /// a conflict. A job of another host is reported as not found, one nobody has as gone.
    pub async fn put_result(
        &self,
        host: &str,
        id: &str,
        status: &str,
        body: &serde_json::Value,
    ) -> Result<ResultOutcome, StoreError> {
        let mut tx = self.begin().await?;
        let row = sqlx::query("SELECT state, result, type FROM jobs WHERE id = $1 AND host_id = $2")
            .bind(id)
            .bind(host)
            .fetch_optional(&mut *tx)
            .await
            .map_err(|e| self.err(e))?;
        let Some(row) = row else {
            let elsewhere = sqlx::query("SELECT 1 FROM jobs WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(|e| self.err(e))?;
            return Ok(match elsewhere {
                Some(_) => ResultOutcome::NotFound,
                None => ResultOutcome::Gone,
            });
        };
        let state: String = row.get(0);
        let stored: Option<String> = row.get(1);
        if state == "cancelled" {
            return Ok(ResultOutcome::Cancelled);
        }
        if state != "queued" {
            let same = stored
                .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
                .is_some_and(|v| &v == body);
            return Ok(if same {
                ResultOutcome::SameAgain
            } else {
                ResultOutcome::Different
            });
        }
        sqlx::query("UPDATE jobs SET state = $1, result = $2, activation_code = NULL, ended_at = $3 WHERE id = $4")
            .bind(status)
            .bind(body.to_string())
            .bind(self.now())
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.err(e))?;
        self.bump(&mut tx, host).await?;
        let kind: String = row.get(2);
        let event = if status == "succeeded" {
            EventType::JobSucceeded
        } else {
            EventType::JobFailed
        };
        // The job's id, state and type; not the result body (the agent's output).
        let data = serde_json::json!({"job": id, "state": status, "host": host, "type": kind});
        events::record(&mut tx, event, data).await.map_err(|e| self.err(e))?;
        self.commit(tx).await?;
        self.db.after_erase().await;
        self.changed_by_agent(host);
        Ok(ResultOutcome::Stored)
    }

    /// Keeps the host's last report, written only when it differs from the stored one. No
    /// rev bump: a report changes nothing the host is told.
    pub async fn put_report(
        &self,
        host: &str,
        body: &str,
        key: Option<&str>,
        agent_version: Option<&str>,
    ) -> Result<bool, StoreError> {
        let r = sqlx::query(
            "UPDATE hosts SET report = $1, key_number = $2, agent_version = $3, report_at = $4 \
             WHERE id = $5 AND (report IS NULL OR report <> $1)",
        )
        .bind(body)
        .bind(key)
        .bind(agent_version)
        .bind(self.now())
        .bind(host)
        .execute(&self.db.pool)
        .await
        .map_err(|e| self.err(e))?;
        Ok(r.rows_affected() > 0)
    }

    /// The host's values (NULL = fleet) and its queued jobs in queue order, for a poll.
    pub async fn poll_inputs(&self, host: &str) -> Result<(Option<String>, Option<String>, Vec<JobRow>), StoreError> {
        let h = sqlx::query("SELECT buy_url, catalog_url FROM hosts WHERE id = $1")
            .bind(host)
            .fetch_optional(&self.db.pool)
            .await
            .map_err(|e| self.err(e))?
            .ok_or_else(|| StoreError::NoHost(host.into()))?;
        let jobs = self.jobs(Some(host), Some("queued")).await?;
        Ok((h.get(0), h.get(1), jobs))
    }

    /// Writes batched last-seen times in one transaction.
    pub async fn flush_last_seen(&self, seen: &[(String, i64)]) -> Result<(), StoreError> {
        if seen.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin().await?;
        for (host, at) in seen {
            sqlx::query("UPDATE hosts SET last_seen_at = $1 WHERE id = $2")
                .bind(*at)
                .bind(host)
                .execute(&mut *tx)
                .await
                .map_err(|e| self.err(e))?;
        }
        // host.back: the flag flips once (a conditional UPDATE), whichever replica sees the
        // host first; the few offline hosts are read first so a busy fleet costs one query.
        let offline: Vec<String> = sqlx::query_scalar("SELECT id FROM hosts WHERE offline = 1")
            .fetch_all(&mut *tx)
            .await
            .map_err(|e| self.err(e))?;
        for (host, at) in seen.iter().filter(|(h, _)| offline.contains(h)) {
            let r = sqlx::query("UPDATE hosts SET offline = 0 WHERE id = $1 AND offline = 1")
                .bind(host)
                .execute(&mut *tx)
                .await
                .map_err(|e| self.err(e))?;
            if r.rows_affected() == 1 {
                let data = serde_json::json!({"host": host, "state": "online",
                                              "last_seen_at": crate::times::rfc3339(*at)});
                events::record(&mut tx, EventType::HostBack, data)
                    .await
                    .map_err(|e| self.err(e))?;
            }
        }
        self.commit(tx).await
    }

    /// host.offline for every host seen before but not since `cutoff` (ms): each transition
    /// is a conditional UPDATE with its event in one transaction, so it is recorded once
    /// across replicas. Returns how many hosts went offline.
    pub async fn mark_offline(&self, cutoff: i64) -> Result<usize, StoreError> {
        let stale: Vec<(String, i64)> = sqlx::query_as(
            "SELECT id, last_seen_at FROM hosts WHERE offline = 0 AND last_seen_at IS NOT NULL AND last_seen_at < $1",
        )
        .bind(cutoff)
        .fetch_all(&self.db.pool)
        .await
        .map_err(|e| self.err(e))?;
        let mut n = 0;
        for (host, seen) in stale {
            let mut tx = self.begin().await?;
            let r = sqlx::query(
                "UPDATE hosts SET offline = 1 WHERE id = $1 AND offline = 0 AND last_seen_at IS NOT NULL \
                 AND last_seen_at < $2",
            )
            .bind(&host)
            .bind(cutoff)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.err(e))?;
            if r.rows_affected() == 1 {
                let data = serde_json::json!({"host": host, "state": "offline",
                                              "last_seen_at": crate::times::rfc3339(seen)});
                events::record(&mut tx, EventType::HostOffline, data)
                    .await
                    .map_err(|e| self.err(e))?;
                n += 1;
            }
            self.commit(tx).await?;
        }
        Ok(n)
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.db.pool)
            .await
            .map_err(|e| self.err(e))?;
        Ok(())
    }
}

impl Store {
    /// Every host's last poll time and report, and nothing else: `/metrics` counts hosts by
    /// health on each scrape, and the other columns cost more to read than the count.
    pub async fn health_rows(&self) -> Result<Vec<(Option<i64>, Option<serde_json::Value>)>, StoreError> {
        let rows = sqlx::query("SELECT last_seen_at, report FROM hosts")
            .fetch_all(&self.db.pool)
            .await
            .map_err(|e| self.err(e))?;
        Ok(rows
            .iter()
            .map(|r| {
                let report = r
                    .get::<Option<String>, _>(1)
                    .and_then(|s| serde_json::from_str(&s).ok());
                (r.get(0), report)
            })
            .collect())
    }

    /// `(state, count)` for the metrics.
    pub async fn job_counts(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let rows = sqlx::query("SELECT state, COUNT(*) FROM jobs GROUP BY state ORDER BY state")
            .fetch_all(&self.db.pool)
            .await
            .map_err(|e| self.err(e))?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }
}
