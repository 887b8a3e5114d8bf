//! Orders (contract section 6): a durable state machine from "the customer paid" to a license
//! on the server. `pending` → `licensed` (KA answered) → `queued` (the job is in the queue) →
//! `done` / `failed`, and `attention` from `pending` when KA's answers cannot settle whether a
//! key exists. Every step is committed before the next one starts.
//!
//! The one machine for KA mutations: no task per order and no long-lived claim. A few driver
//! workers per replica pick due orders from the database (`next_at`), each under a lease that
//! only says who works (`lease_owner`/`lease_until`, taken and renewed by conditional
//! UPDATEs). Whether KA is called is decided by the fence alone:
//! - before each create, `ka_attempts` is bumped and `create_open` set by a compare-and-set
//!   on the order row; only the driver whose UPDATE changed one row calls KA, and the outcome
//!   is recorded with the same kind of compare-and-set (`WHERE ka_attempts = n`);
//! - while `create_open` is set (no answer, an unreadable or unexpected answer, a 5xx, a
//!   crash), nothing creates: after `attempt_until` a driver looks the nickname (= order id)
//!   up, and only a lookup KA answered that found no key of this order clears it;
//! - what KA's answers cannot settle goes to `attention`, never bought again by itself.
//!
//! No database connection is held across a KA call or a wait: each statement takes one from
//! the pool and gives it back; waits are `next_at`, not sleeps.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use plesk_reseller_protocol as proto;
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::Row;
use tokio::sync::{watch, Notify};

use crate::config::Config;
use crate::events::{self, EventType};
use crate::fleet::store::{JobRow, Store, StoreError};
use crate::ka::{KaClient, KaError, KaSettings, Key, NewKey};
use crate::metrics::Metrics;

/// The states, in order.
pub const STATES: &[&str] = &["pending", "licensed", "queued", "done", "failed", "attention"];
/// Driver workers per replica: at most this many KA calls and pool connections for orders.
const WORKERS: usize = 4;
/// How often an idle worker looks for due orders without being woken (other replicas'
/// changes, a job ended elsewhere, a lost wake).
pub(crate) const SCAN_EVERY: Duration = Duration::from_secs(2);
/// A lease lasts this long and is renewed every third of it while its driver works.
pub(crate) const LEASE_MS: i64 = 15_000;
/// Retry of a transient failure: 1 s doubling to 60 s.
pub(crate) const BACKOFF_FIRST_MS: i64 = 1_000;
const BACKOFF_MAX_MS: i64 = 60_000;
/// After a create's request timeout, how much longer a lookup waits (a create still being
/// processed at KA, clocks of replicas a little apart).
pub(crate) const ATTEMPT_MARGIN_MS: i64 = 5_000;
/// `next_at` of an order that only an event moves on (its job ending, `orders retry`).
pub(crate) const NEVER: i64 = i64::MAX / 4;
/// An order waiting for its host looks again this often even if no `hosts add` wakes it.
const HOST_RECHECK_MS: i64 = 300_000;

/// An order that cannot be taken or driven; names the order, host or extension at fault.
#[derive(Debug, thiserror::Error)]
pub enum OrderError {
    #[error("the order id {0:?} is not letters, digits and . _ - (first a letter or digit, at most 128)")]
    BadId(String),
    #[error("the extension {0:?} is not in the [sell] list of the config; nothing was bought")]
    NotSold(String),
    #[error("the config has no [ka] plesk_item, so no Plesk key can be ordered")]
    NoPleskItem,
    #[error("KA is not configured: set [ka] username and password_file in the config")]
    NoKa,
    #[error("give --host HOST --plesk, or --key-number KN --extension EXT-ID")]
    Shape,
    #[error("the key number {0:?} is not of the form PLSK.12345678.0001")]
    BadKeyNumber(String),
    #[error("order {0} exists already with other parameters")]
    Conflict(String),
    #[error("there is no order {0}")]
    NoOrder(String),
    #[error("order {id} is {state}; only an order in attention or failed can be retried")]
    NotRetriable { id: String, state: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the database {url} failed on order {id}: {reason}")]
    Db { url: String, id: String, reason: String },
}

/// An order as the admin API shows it; the activation code never leaves the database.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct Order {
    pub id: String,
    /// `plesk` (a main key) or `extension` (an extension key attached to `key_number`).
    pub kind: String,
    pub host: String,
    pub key_number: Option<String>,
    pub extension_id: Option<String>,
    pub ka_item: String,
    #[schema(schema_with = state_schema)]
    pub state: String,
    pub ka_attempts: i64,
    pub ka_key_id: Option<i64>,
    pub ka_key_number: Option<String>,
    pub job_id: Option<String>,
    /// KA's answer verbatim (last transient error while pending; the final one when failed;
    /// why KA's answers cannot settle it in attention).
    pub error: Option<String>,
    #[serde(serialize_with = "crate::times::req")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
    #[serde(serialize_with = "crate::times::req")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: i64,
    #[serde(skip)]
    pub activation_code: Option<String>,
    /// A create whose outcome is not known yet: look up before anything else.
    #[serde(skip)]
    pub create_open: bool,
    #[serde(skip)]
    pub attempt_until: i64,
    #[serde(skip)]
    pub transient: i64,
    #[serde(skip)]
    pub retries: i64,
}

const COLS: &str = "id, kind, host_id, key_number, extension_id, ka_item, state, ka_attempts, ka_key_id, \
                    ka_key_number, job_id, error, created_at, updated_at, activation_code, create_open, \
                    attempt_until, transient, retries";

fn order_of(r: &AnyRow) -> Order {
    Order {
        id: r.get(0),
        kind: r.get(1),
        host: r.get(2),
        key_number: r.get(3),
        extension_id: r.get(4),
        ka_item: r.get(5),
        state: r.get(6),
        ka_attempts: r.get(7),
        ka_key_id: r.get(8),
        ka_key_number: r.get(9),
        job_id: r.get(10),
        error: r.get(11),
        created_at: r.get(12),
        updated_at: r.get(13),
        activation_code: r.get(14),
        create_open: r.get::<i64, _>(15) != 0,
        attempt_until: r.get(16),
        transient: r.get(17),
        retries: r.get(18),
    }
}

fn state_schema() -> utoipa::openapi::Object {
    crate::fleet::store::one_of(STATES)
}

/// What `POST /admin/v1/orders` takes: `order_id`, `host` and `plesk: true` (a main Plesk
/// key for that host), or `order_id`, `key_number` and `extension` (an extension key attached
/// to that main key).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct NewOrder {
    /// The store's order id: letters, digits and . _ - (first a letter or digit, at most 128).
    pub order_id: String,
    pub host: Option<String>,
    #[serde(default)]
    pub plesk: bool,
    /// A main key number (`PLSK.12345678.0001`) for an extension order.
    pub key_number: Option<String>,
    /// An extension id listed in `[sell]`.
    pub extension: Option<String>,
}

/// What a step of the machine leaves: go on with the same order now, or stop (the step has
/// written when the order is due again).
enum Next {
    Now,
    Done,
}

/// What a nickname lookup in KA settled.
enum Lookup {
    /// Exactly one key of this order: adopt it.
    Found(Box<Key>),
    /// KA answered and holds no key of this order: a create is allowed.
    None,
    /// KA unreachable or failing on its side: look again later.
    Transient(String),
    /// KA's answers cannot settle it: `attention`, with this reason.
    Undecidable(String),
}

/// A create KA refused (4xx on the create itself): the key was not made. 408 and 429 say
/// nothing about that, and every other failure (5xx, no answer, an unreadable or unexpected
/// 2xx) leaves the outcome unknown.
pub(crate) fn refused(e: &KaError) -> bool {
    matches!(e, KaError::Api { status, .. } if (400..500).contains(status) && *status != 408 && *status != 429)
}

/// KA's answer came back (read or not): the request is over, no create is still in flight.
pub(crate) fn answered(e: &KaError) -> bool {
    matches!(e, KaError::Api { .. } | KaError::Answer { .. } | KaError::Unread { .. })
}

/// The error with KA's body verbatim (the summary in the message alone may cut it).
pub(crate) fn reason(e: &KaError) -> String {
    match e {
        KaError::Api { body, .. } => format!("{e}; KA's answer: {body}"),
        other => other.to_string(),
    }
}

pub(crate) fn backoff_ms(transient: i64) -> i64 {
    (BACKOFF_FIRST_MS << transient.clamp(0, 10)).min(BACKOFF_MAX_MS)
}

/// The orders' database rows and the workers that drive them.
pub struct Orders {
    store: Store,
    config: Arc<Config>,
    ka: Option<KaClient>,
    /// Where KA calls and errors are counted.
    metrics: Arc<Metrics>,
    /// Wakes idle workers: an order added or retried, a host added, a job ended.
    wake: Notify,
    /// This process's name in `lease_owner`.
    me: String,
    /// How long after a create starts a lookup may run: KA's request timeout + a margin.
    attempt_ms: i64,
}

impl Orders {
    /// Builds the KA client when `[ka]` is filled in; an unusable password file is an error
    /// at start rather than at the first order.
    pub fn new(store: Store, config: Arc<Config>, metrics: Arc<Metrics>) -> Result<Arc<Orders>, KaError> {
        let ka = KaSettings::from_config(&config.ka)?.map(KaClient::new).transpose()?;
        let attempt_ms = (config.ka.timeout as i64) * 1000 + ATTEMPT_MARGIN_MS;
        Ok(Arc::new(Orders {
            store,
            config,
            ka,
            metrics,
            wake: Notify::new(),
            me: format!("{}-{:016x}", std::process::id(), fastrand::u64(..)),
            attempt_ms,
        }))
    }

    fn db_err(&self, id: &str, e: sqlx::Error) -> OrderError {
        OrderError::Db {
            url: self.store.db.url.clone(),
            id: id.into(),
            reason: e.to_string(),
        }
    }

    /// One statement on the pool: the connection goes back as soon as it is done.
    async fn exec(
        &self,
        id: &str,
        q: sqlx::query::Query<'_, sqlx::Any, sqlx::any::AnyArguments>,
    ) -> Result<u64, OrderError> {
        q.execute(&self.store.db.pool)
            .await
            .map(|r| r.rows_affected())
            .map_err(|e| self.db_err(id, e))
    }

    /// One conditional UPDATE and, when it changed a row, the event that says so, in one
    /// transaction (the outbox): the event exists exactly when the change does.
    async fn exec_event(
        &self,
        id: &str,
        q: sqlx::query::Query<'_, sqlx::Any, sqlx::any::AnyArguments>,
        kind: EventType,
        data: serde_json::Value,
    ) -> Result<u64, OrderError> {
        let db = &self.store.db;
        let mut tx = db
            .pool
            .begin_with(db.dialect.begin_write())
            .await
            .map_err(|e| self.db_err(id, e))?;
        let n = q
            .execute(&mut *tx)
            .await
            .map_err(|e| self.db_err(id, e))?
            .rows_affected();
        if n == 1 {
            events::record(&mut tx, kind, data)
                .await
                .map_err(|e| self.db_err(id, e))?;
        }
        tx.commit().await.map_err(|e| self.db_err(id, e))?;
        Ok(n)
    }

    pub async fn get(&self, id: &str) -> Result<Order, OrderError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {COLS} FROM orders WHERE id = $1")))
            .bind(id)
            .fetch_optional(&self.store.db.pool)
            .await
            .map_err(|e| self.db_err(id, e))?;
        row.map(|r| order_of(&r)).ok_or_else(|| OrderError::NoOrder(id.into()))
    }

    pub async fn list(&self, state: Option<&str>) -> Result<Vec<Order>, OrderError> {
        let sql = format!("SELECT {COLS} FROM orders WHERE ($1 IS NULL OR state = $1) ORDER BY created_at, id");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(state)
            .fetch_all(&self.store.db.pool)
            .await
            .map_err(|e| self.db_err("-", e))?;
        Ok(rows.iter().map(order_of).collect())
    }

    /// One page of orders, newest first, optionally of one host and/or state, and how many
    /// match in all (the fleet page's orders).
    pub async fn recent(
        &self,
        host: Option<&str>,
        state: Option<&str>,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<Order>, i64), OrderError> {
        let filter = "($1 IS NULL OR host_id = $1) AND ($2 IS NULL OR state = $2)";
        let sql =
            format!("SELECT {COLS} FROM orders WHERE {filter} ORDER BY created_at DESC, id DESC LIMIT $3 OFFSET $4");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(host)
            .bind(state)
            .bind(limit)
            .bind(offset)
            .fetch_all(&self.store.db.pool)
            .await
            .map_err(|e| self.db_err("-", e))?;
        let total: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT COUNT(*) FROM orders WHERE {filter}"
        )))
        .bind(host)
        .bind(state)
        .fetch_one(&self.store.db.pool)
        .await
        .map_err(|e| self.db_err("-", e))?;
        Ok((rows.iter().map(order_of).collect(), total))
    }

    /// `(state, count)` for the metrics.
    pub async fn counts(&self) -> Vec<(String, i64)> {
        sqlx::query("SELECT state, COUNT(*) FROM orders GROUP BY state ORDER BY state")
            .fetch_all(&self.store.db.pool)
            .await
            .map(|rows| rows.iter().map(|r| (r.get(0), r.get(1))).collect())
            .unwrap_or_default()
    }

    /// Validates and records a new order as `pending`, before any KA call; the same order
    /// again returns the existing one (`false`), with other parameters it is refused.
    pub async fn add(self: &Arc<Self>, req: &NewOrder) -> Result<(Order, bool), OrderError> {
        if !proto::is_valid_host_id(&req.order_id) {
            return Err(OrderError::BadId(req.order_id.clone()));
        }
        // A repeat is answered from the order as it was taken: the host's key number or the
        // [sell] list may have changed since (an installed key changes the key number).
        match self.get(&req.order_id).await {
            Ok(existing) => return self.repeat(existing, req),
            Err(OrderError::NoOrder(_)) => {}
            Err(e) => return Err(e),
        }
        let (kind, host, key_number, extension, item) = match (req, req.plesk) {
            (
                NewOrder {
                    host: Some(h),
                    key_number: None,
                    extension: None,
                    ..
                },
                true,
            ) => {
                let item = Some(self.config.ka.plesk_item.clone())
                    .filter(|i| !i.is_empty())
                    .ok_or(OrderError::NoPleskItem)?;
                self.store.host(h).await?;
                ("plesk", h.clone(), None, None, item)
            }
            (
                NewOrder {
                    host: None,
                    key_number: Some(k),
                    extension: Some(ext),
                    ..
                },
                false,
            ) => {
                // Refused before anything else, KA above all.
                let item = self
                    .config
                    .sell
                    .iter()
                    .find(|(id, _)| id == ext)
                    .map(|(_, item)| item.clone())
                    .ok_or_else(|| OrderError::NotSold(ext.clone()))?;
                let norm = proto::normalize_key_number(k).ok_or_else(|| OrderError::BadKeyNumber(k.clone()))?;
                let host = self.store.host_by_key_number(&norm).await?;
                ("extension", host, Some(norm), Some(ext.clone()), item)
            }
            _ => return Err(OrderError::Shape),
        };
        if self.ka.is_none() {
            return Err(OrderError::NoKa);
        }
        let now = self.store.now();
        let id = &req.order_id;
        // ON CONFLICT DO NOTHING: two stores' retries racing still make one row.
        let inserted = self
            .exec(
                id,
                sqlx::query(
                    "INSERT INTO orders (id, kind, host_id, key_number, extension_id, ka_item, state, ka_attempts, \
                     created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, 'pending', 0, $7, $7) \
                     ON CONFLICT (id) DO NOTHING",
                )
                .bind(id)
                .bind(kind)
                .bind(&host)
                .bind(key_number.as_deref())
                .bind(extension.as_deref())
                .bind(&item)
                .bind(now),
            )
            .await?
            == 1;
        let order = self.get(id).await?;
        if !inserted {
            // Another request took the same order id just now.
            return self.repeat(order, req);
        }
        self.wake();
        Ok((order, true))
    }

    /// The same order id again: the same parameters return the order, others are refused.
    fn repeat(self: &Arc<Self>, order: Order, req: &NewOrder) -> Result<(Order, bool), OrderError> {
        let same = if req.plesk {
            order.kind == "plesk" && req.host.as_deref() == Some(order.host.as_str()) && req.key_number.is_none()
        } else {
            order.kind == "extension"
                && req.host.is_none()
                && req.extension == order.extension_id
                && req.key_number.as_deref().and_then(proto::normalize_key_number) == order.key_number
        };
        if !same {
            return Err(OrderError::Conflict(order.id));
        }
        Ok((order, false))
    }

    /// `orders retry ID`: an `attention` or `failed` order is driven again from the lookup
    /// (a new purchase only if KA answers that it holds no key of this order).
    pub async fn retry(&self, id: &str) -> Result<Order, OrderError> {
        let n = self
            .exec(
                id,
                sqlx::query(
                    "UPDATE orders SET state = 'pending', create_open = 1, attempt_until = 0, next_at = 0, \
                     transient = 0, retries = retries + 1, job_id = NULL, error = NULL, updated_at = $1 \
                     WHERE id = $2 AND state IN ('attention', 'failed')",
                )
                .bind(self.store.now())
                .bind(id),
            )
            .await?;
        let o = self.get(id).await?;
        if n == 0 {
            return Err(OrderError::NotRetriable {
                id: o.id,
                state: o.state,
            });
        }
        tracing::info!("order {id}: retried by the operator");
        self.wake();
        Ok(o)
    }

    /// Wakes this replica's idle workers (the others find the change at their next scan).
    pub fn wake(&self) {
        self.wake.notify_waiters();
    }

    /// Starts the driver workers; they stop when `stop` turns true, abandoning any KA call
    /// (a create in flight stays `create_open`: the unknown-outcome case).
    pub async fn start(self: &Arc<Self>, stop: watch::Receiver<bool>) -> Vec<tokio::task::JoinHandle<()>> {
        if self.store.db.dialect == crate::db::Dialect::Sqlite {
            // One process owns an SQLite file: a lease left by a crashed predecessor is stale.
            let q = sqlx::query("UPDATE orders SET lease_owner = NULL, lease_until = 0 WHERE lease_until > 0");
            if let Err(e) = self.exec("-", q).await {
                tracing::warn!("cannot clear the orders' old leases: {e}");
            }
        }
        (0..WORKERS)
            .map(|_| tokio::spawn(self.clone().worker(stop.clone())))
            .collect()
    }

    /// At a clean stop: leases of this process are given back so another replica (or the
    /// next start) need not wait for them to expire.
    pub async fn release_all(&self) {
        let q =
            sqlx::query("UPDATE orders SET lease_owner = NULL, lease_until = 0 WHERE lease_owner = $1").bind(&self.me);
        let _ = tokio::time::timeout(Duration::from_secs(1), self.exec("-", q)).await;
    }

    async fn worker(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        loop {
            if *stop.borrow() {
                return;
            }
            // Registered before the scan, so a wake during the scan is not lost.
            let notified = self.wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let work = async {
                while let Some(id) = self.take_due().await {
                    self.drive_leased(&id).await;
                }
            };
            tokio::select! {
                _ = work => {}
                _ = stop.changed() => return,
            }
            let jitter = Duration::from_millis(fastrand::u64(0..500));
            tokio::select! {
                _ = notified => {}
                _ = tokio::time::sleep(SCAN_EVERY + jitter) => {}
                _ = stop.changed() => return,
            }
        }
    }

    /// Takes the lease of one due order: pending or licensed with `next_at` passed, or
    /// queued with its job ended, cancelled or gone.
    async fn take_due(&self) -> Option<String> {
        let now = self.store.now();
        let due = sqlx::query(
            "SELECT o.id, o.lease_until FROM orders o LEFT JOIN jobs j ON j.id = o.job_id \
             WHERE o.lease_until < $1 AND ((o.state IN ('pending', 'licensed') AND o.next_at <= $1) \
             OR (o.state = 'queued' AND (j.id IS NULL OR j.state <> 'queued'))) \
             ORDER BY o.next_at, o.id LIMIT 16",
        )
        .bind(now)
        .fetch_all(&self.store.db.pool)
        .await;
        let due = match due {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!("cannot look for due orders: {}", self.db_err("-", e));
                return None;
            }
        };
        // Shuffled: the workers of several replicas do not all race for the same first row.
        let mut due: Vec<(String, i64)> = due.iter().map(|r| (r.get(0), r.get(1))).collect();
        fastrand::shuffle(&mut due);
        for (id, seen) in due {
            // Still due: the row may have changed since the SELECT (another driver set next_at).
            let q = sqlx::query(
                "UPDATE orders SET lease_owner = $1, lease_until = $2 WHERE id = $3 AND lease_until = $4 \
                 AND (state = 'queued' OR next_at <= $5)",
            )
            .bind(&self.me)
            .bind(now + LEASE_MS)
            .bind(&id)
            .bind(seen)
            .bind(now);
            if let Ok(1) = self.exec(&id, q).await {
                return Some(id);
            }
        }
        None
    }

    /// Drives the order while renewing its lease, then gives the lease back.
    async fn drive_leased(&self, id: &str) {
        let renew = async {
            loop {
                tokio::time::sleep(Duration::from_millis(LEASE_MS as u64 / 3)).await;
                let q = sqlx::query("UPDATE orders SET lease_until = $1 WHERE id = $2 AND lease_owner = $3")
                    .bind(self.store.now() + LEASE_MS)
                    .bind(id)
                    .bind(&self.me);
                if let Ok(0) = self.exec(id, q).await {
                    // Lost (expired and taken): the fence keeps KA safe; stop working on it.
                    return;
                }
            }
        };
        tokio::select! {
            _ = self.drive(id) => {}
            _ = renew => tracing::warn!("order {id}: lost its lease; another driver takes over"),
        }
        let q = sqlx::query("UPDATE orders SET lease_owner = NULL, lease_until = 0 WHERE id = $1 AND lease_owner = $2")
            .bind(id)
            .bind(&self.me);
        if let Err(e) = self.exec(id, q).await {
            tracing::warn!("{e}");
        }
    }

    async fn drive(&self, id: &str) {
        loop {
            let step = match self.get(id).await {
                Ok(o) => self.step(&o).await,
                Err(e) => Err(e),
            };
            match step {
                Ok(Next::Now) => {}
                Ok(Next::Done) => return,
                Err(e) => {
                    // The database failed (KA's failures are written by the step): look
                    // again after the backoff.
                    tracing::warn!("order {id}: {e}");
                    let q = sqlx::query("UPDATE orders SET next_at = $1, transient = transient + 1 WHERE id = $2")
                        .bind(self.store.now() + BACKOFF_FIRST_MS * 5)
                        .bind(id);
                    let _ = self.exec(id, q).await;
                    return;
                }
            }
        }
    }

    /// One step of the machine.
    async fn step(&self, o: &Order) -> Result<Next, OrderError> {
        match o.state.as_str() {
            "pending" => self.buy(o).await,
            "licensed" => self.queue(o).await,
            "queued" => {
                let Some(job) = &o.job_id else {
                    return self.unqueue(o).await;
                };
                match self.store.job(job).await {
                    Ok(j) if j.state == "queued" => Ok(Next::Done),
                    Ok(j) => {
                        self.job_ended(&j).await?;
                        Ok(Next::Done)
                    }
                    // `hosts rm` deletes a host's jobs; the license is bought, not lost.
                    Err(StoreError::NoJob(_)) => self.unqueue(o).await,
                    Err(e) => Err(e.into()),
                }
            }
            _ => Ok(Next::Done),
        }
    }

    /// `pending` → `licensed`: with a create of unknown outcome, the lookup first; a create
    /// only after the fence let this driver through.
    async fn buy(&self, o: &Order) -> Result<Next, OrderError> {
        let Some(ka) = &self.ka else {
            return self.transient(o, &OrderError::NoKa.to_string()).await;
        };
        let now = self.store.now();
        if o.create_open {
            if now < o.attempt_until {
                // A create may still be in flight (a driver whose session or process died).
                let q = sqlx::query(
                    "UPDATE orders SET next_at = $1 WHERE id = $2 AND state = 'pending' AND ka_attempts = $3",
                )
                .bind(o.attempt_until)
                .bind(&o.id)
                .bind(o.ka_attempts);
                self.exec(&o.id, q).await?;
                return Ok(Next::Done);
            }
            match self.lookup(ka, o).await {
                Lookup::Found(key) => return self.licensed(o, o.ka_attempts, &key).await,
                Lookup::Transient(why) => return self.transient(o, &why).await,
                Lookup::Undecidable(why) => return self.attention(o, &why).await,
                Lookup::None => {
                    let q = sqlx::query(
                        "UPDATE orders SET create_open = 0, updated_at = $1 \
                         WHERE id = $2 AND state = 'pending' AND ka_attempts = $3 AND create_open = 1",
                    )
                    .bind(now)
                    .bind(&o.id)
                    .bind(o.ka_attempts);
                    if self.exec(&o.id, q).await? != 1 {
                        return Ok(Next::Now);
                    }
                    tracing::info!("order {}: KA holds no key for it; buying", o.id);
                }
            }
        }
        // The fence: only the driver whose compare-and-set changed the row calls KA.
        let n = o.ka_attempts + 1;
        let q = sqlx::query(
            "UPDATE orders SET ka_attempts = $1, create_open = 1, attempt_until = $2, updated_at = $3 \
             WHERE id = $4 AND state = 'pending' AND ka_attempts = $5 AND create_open = 0",
        )
        .bind(n)
        .bind(self.store.now() + self.attempt_ms)
        .bind(now)
        .bind(&o.id)
        .bind(o.ka_attempts);
        if self.exec(&o.id, q).await? != 1 {
            // Another driver recorded an attempt first: read the row again.
            return Ok(Next::Now);
        }
        self.metrics.ka_calls.fetch_add(1, Ordering::Relaxed);
        let new = NewKey {
            items: vec![o.ka_item.clone()],
            parent_key_number: o.key_number.clone(),
            nickname: o.id.clone(),
        };
        let e = match ka.create_key(&new).await {
            Ok(key) => return self.licensed(o, n, &key).await,
            Err(e) => e,
        };
        self.metrics.ka_errors.fetch_add(1, Ordering::Relaxed);
        let o = Order {
            ka_attempts: n,
            ..o.clone()
        };
        if refused(&e) {
            tracing::warn!("order {} failed: {e}", o.id);
            let q = sqlx::query(
                "UPDATE orders SET state = 'failed', create_open = 0, error = $1, next_at = $2, updated_at = $3 \
                 WHERE id = $4 AND state = 'pending' AND ka_attempts = $5",
            )
            .bind(e.verbatim())
            .bind(NEVER)
            .bind(self.store.now())
            .bind(&o.id)
            .bind(n);
            let data = serde_json::json!({"order": o.id, "state": "failed", "host": o.host, "error": e.verbatim()});
            self.exec_event(&o.id, q, EventType::OrderFailed, data).await?;
            return Ok(Next::Done);
        }
        if answered(&e) {
            // The request is over: the lookup need not wait for it.
            let q = sqlx::query("UPDATE orders SET attempt_until = $1 WHERE id = $2 AND ka_attempts = $3")
                .bind(self.store.now())
                .bind(&o.id)
                .bind(n);
            self.exec(&o.id, q).await?;
        }
        self.transient(
            &o,
            &format!("the outcome of KA's create is unknown, to be looked up: {}", reason(&e)),
        )
        .await
    }

    /// Which key KA holds for this order: `nickname` equal to the order id exactly, not
    /// terminated, and for an extension the order's main key as parent. KA's search filter
    /// is not trusted to be exact.
    async fn lookup(&self, ka: &KaClient, o: &Order) -> Lookup {
        let failed = |e: KaError| {
            self.metrics.ka_errors.fetch_add(1, Ordering::Relaxed);
            let transient = matches!(e, KaError::Network { .. })
                || matches!(e, KaError::Api { status, .. } if status >= 500 || status == 408 || status == 429);
            if transient {
                Lookup::Transient(format!("cannot look the order up in KA yet: {}", reason(&e)))
            } else {
                Lookup::Undecidable(format!(
                    "cannot tell whether KA made a key for this order: {}",
                    reason(&e)
                ))
            }
        };
        self.metrics.ka_calls.fetch_add(1, Ordering::Relaxed);
        let found = match ka.find_by_nickname(&o.id).await {
            Ok(f) => f,
            Err(e) => return failed(e),
        };
        let parent = o.key_number.as_deref().and_then(crate::ka::key_id_of);
        let mut mine = Vec::new();
        for short in found {
            self.metrics.ka_calls.fetch_add(1, Ordering::Relaxed);
            let key = match ka.get_key(&short.key_id.to_string()).await {
                Ok(k) => k,
                Err(e) => return failed(e),
            };
            let parent_ok = o.kind != "extension" || (parent.is_some() && key.parent_key_id == parent);
            if key.nickname.as_deref() == Some(o.id.as_str()) && !key.terminated && parent_ok {
                mine.push(key);
            }
        }
        match mine.len() {
            0 => Lookup::None,
            1 => Lookup::Found(Box::new(mine.remove(0))),
            n => Lookup::Undecidable(format!(
                "KA holds {n} keys for this order (nickname {}): {}; terminate the extra ones in KA, then retry",
                o.id,
                mine.iter()
                    .map(|k| k.key_number.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }

    /// `pending` → `licensed` with KA's key, if attempt `n` is still the order's; the key
    /// becomes a license in the same transaction (contract section 6: each order that KA
    /// answered makes a license).
    async fn licensed(&self, o: &Order, n: i64, key: &Key) -> Result<Next, OrderError> {
        let db = &self.store.db;
        let mut tx = db
            .pool
            .begin_with(db.dialect.begin_write())
            .await
            .map_err(|e| self.db_err(&o.id, e))?;
        let q = sqlx::query(
            "UPDATE orders SET state = 'licensed', ka_key_id = $1, ka_key_number = $2, activation_code = $3, \
             create_open = 0, error = NULL, transient = 0, next_at = 0, updated_at = $4 \
             WHERE id = $5 AND state = 'pending' AND ka_attempts = $6",
        )
        .bind(key.key_id as i64)
        .bind(&key.key_number)
        .bind((o.kind == "plesk").then_some(key.activation_code.as_str()))
        .bind(self.store.now())
        .bind(&o.id)
        .bind(n);
        let changed = q
            .execute(&mut *tx)
            .await
            .map_err(|e| self.db_err(&o.id, e))?
            .rows_affected();
        if changed == 1 {
            crate::commerce::licenses::insert_from_order(&mut tx, key, &o.kind, &o.host, &o.id, self.store.now())
                .await
                .map_err(|e| self.db_err(&o.id, e))?;
            let data = serde_json::json!({"order": o.id, "state": "licensed", "host": o.host,
                                          "key_number": key.key_number, "ka_key_id": key.key_id});
            events::record(&mut tx, EventType::OrderLicensed, data)
                .await
                .map_err(|e| self.db_err(&o.id, e))?;
        }
        tx.commit().await.map_err(|e| self.db_err(&o.id, e))?;
        if changed == 1 {
            tracing::info!("order {}: KA key {}", o.id, key.key_number);
        }
        Ok(Next::Now)
    }

    /// Still `pending`, the reason shown, looked at again after the backoff.
    async fn transient(&self, o: &Order, why: &str) -> Result<Next, OrderError> {
        let wait = backoff_ms(o.transient);
        tracing::warn!("order {}: {why}; trying again in {} s", o.id, wait / 1000);
        let q = sqlx::query(
            "UPDATE orders SET error = $1, next_at = $2, transient = transient + 1, updated_at = $3 \
             WHERE id = $4 AND state = 'pending' AND ka_attempts = $5",
        )
        .bind(why)
        .bind(self.store.now() + wait)
        .bind(self.store.now())
        .bind(&o.id)
        .bind(o.ka_attempts);
        self.exec(&o.id, q).await?;
        Ok(Next::Done)
    }

    /// KA's answers cannot settle whether a key exists: never bought again by itself.
    async fn attention(&self, o: &Order, why: &str) -> Result<Next, OrderError> {
        tracing::warn!("order {} needs attention: {why}", o.id);
        let q = sqlx::query(
            "UPDATE orders SET state = 'attention', error = $1, next_at = $2, updated_at = $3 \
             WHERE id = $4 AND state = 'pending' AND ka_attempts = $5",
        )
        .bind(why)
        .bind(NEVER)
        .bind(self.store.now())
        .bind(&o.id)
        .bind(o.ka_attempts);
        let data = serde_json::json!({"order": o.id, "state": "attention", "host": o.host, "error": why});
        self.exec_event(&o.id, q, EventType::OrderAttention, data).await?;
        Ok(Next::Done)
    }

    /// `licensed` → `queued`: the job with idempotency key = order id (queued again after a
    /// crash, it is the same job; after `orders retry`, a new one), which wakes the host.
    async fn queue(&self, o: &Order) -> Result<Next, OrderError> {
        let (kind, code) = if o.kind == "plesk" {
            ("install_key", o.activation_code.as_deref())
        } else {
            ("retrieve_keys", None)
        };
        let idem = match o.retries {
            0 => o.id.clone(),
            r => format!("{}~retry{r}", o.id),
        };
        let job = match self.store.add_job(&o.host, kind, code, Some(&idem)).await {
            Ok((j, _)) => j,
            Err(StoreError::NoHost(h)) => {
                let why = format!("host {h} is not registered; the order waits for `hosts add {h}`");
                tracing::warn!("order {}: {why}", o.id);
                self.wait_for_host(o, &why).await?;
                return Ok(Next::Done);
            }
            Err(e) => return Err(e.into()),
        };
        let q = sqlx::query(
            "UPDATE orders SET state = 'queued', job_id = $1, error = NULL, transient = 0, next_at = $2, \
             updated_at = $3 WHERE id = $4 AND state = 'licensed'",
        )
        .bind(&job.id)
        .bind(NEVER)
        .bind(self.store.now())
        .bind(&o.id);
        self.exec(&o.id, q).await?;
        Ok(Next::Done)
    }

    /// `queued` → `licensed` when the job is gone with its host: queued again at once if the
    /// host is back, else it waits for it.
    async fn unqueue(&self, o: &Order) -> Result<Next, OrderError> {
        let why = format!(
            "job {} was removed with host {}",
            o.job_id.as_deref().unwrap_or("-"),
            o.host
        );
        let q = sqlx::query(
            "UPDATE orders SET state = 'licensed', job_id = NULL, error = $1, next_at = 0, updated_at = $2 \
             WHERE id = $3 AND state = 'queued'",
        )
        .bind(&why)
        .bind(self.store.now())
        .bind(&o.id);
        self.exec(&o.id, q).await?;
        Ok(Next::Now)
    }

    /// Still `licensed`, the reason shown, until `hosts add` wakes it. Written only while
    /// the host is absent: a `hosts add` committed meanwhile leaves the order due.
    async fn wait_for_host(&self, o: &Order, why: &str) -> Result<(), OrderError> {
        let q = sqlx::query(
            "UPDATE orders SET error = $1, next_at = $2, updated_at = $3 WHERE id = $4 AND state = 'licensed' \
             AND NOT EXISTS (SELECT 1 FROM hosts WHERE hosts.id = orders.host_id)",
        )
        .bind(why)
        .bind(self.store.now() + HOST_RECHECK_MS)
        .bind(self.store.now())
        .bind(&o.id);
        self.exec(&o.id, q).await?;
        Ok(())
    }

    /// A host was added or removed: its orders waiting for it are due now (a removal takes
    /// their jobs; the scan finds those).
    pub async fn host_changed(self: &Arc<Self>, host: &str) {
        let q = sqlx::query("UPDATE orders SET next_at = 0 WHERE host_id = $1 AND state = 'licensed'").bind(host);
        if let Err(e) = self.exec("-", q).await {
            tracing::error!("cannot resume the orders of host {host}: {e}");
        }
        self.wake();
    }

    /// A job ended or was cancelled: its order (if any) is `done` or `failed`, and its code
    /// is erased. Best effort from the handlers: the workers' scan finds any order whose job
    /// ended and calls this again.
    pub async fn job_ended(&self, job: &JobRow) -> Result<(), OrderError> {
        if job.state == "queued" {
            return Ok(());
        }
        let (state, error) = match job.state.as_str() {
            "succeeded" => ("done", None),
            "cancelled" if job.kind == "install_key" => ("failed", Some("install job cancelled".to_string())),
            "cancelled" => ("failed", Some("retrieve_keys job cancelled".to_string())),
            _ => {
                let why = job
                    .result
                    .as_ref()
                    .map(|r| r.to_string())
                    .unwrap_or_else(|| format!("the job was {}", job.state));
                ("failed", Some(why))
            }
        };
        // The order's end and its event in one transaction; RETURNING names the order.
        let db = &self.store.db;
        let mut tx = db
            .pool
            .begin_with(db.dialect.begin_write())
            .await
            .map_err(|e| self.db_err(&job.id, e))?;
        let ended = sqlx::query(
            "UPDATE orders SET state = $1, error = $2, activation_code = NULL, next_at = $3, updated_at = $4 \
             WHERE job_id = $5 AND state = 'queued' RETURNING id, host_id, ka_key_number",
        )
        .bind(state)
        .bind(error.as_deref())
        .bind(NEVER)
        .bind(self.store.now())
        .bind(&job.id)
        .fetch_all(&mut *tx)
        .await
        .map_err(|e| self.db_err(&job.id, e))?;
        for r in &ended {
            let (id, host, kn): (String, String, Option<String>) = (r.get(0), r.get(1), r.get(2));
            let (kind, data) = if state == "done" {
                let data = serde_json::json!({"order": id, "state": "done", "host": host,
                                              "key_number": kn, "job": job.id});
                (EventType::OrderDone, data)
            } else {
                let data = serde_json::json!({"order": id, "state": "failed", "host": host,
                                              "job": job.id, "error": error});
                (EventType::OrderFailed, data)
            };
            events::record(&mut tx, kind, data)
                .await
                .map_err(|e| self.db_err(&job.id, e))?;
        }
        tx.commit().await.map_err(|e| self.db_err(&job.id, e))?;
        if !ended.is_empty() {
            self.store.db.after_erase().await;
        }
        Ok(())
    }

    /// Prometheus lines: orders by state (KA's counters are in [`Metrics`]).
    pub async fn render_metrics(&self) -> String {
        let counts = self.counts().await;
        let mut out = String::from("# HELP central_orders Orders by state.\n# TYPE central_orders gauge\n");
        for s in STATES {
            let n = counts.iter().find(|(k, _)| k == s).map(|(_, n)| *n).unwrap_or(0);
            out.push_str(&format!("central_orders{{state=\"{s}\"}} {n}\n"));
        }
        out
    }
}
