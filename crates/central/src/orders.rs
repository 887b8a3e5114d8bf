//! Orders (contract section 6): a durable state machine from "the customer paid" to a license
//! on the server. `pending` → `licensed` (KA answered) → `queued` (the job is in the queue) →
//! `done` / `failed`. Every step is committed before the next one starts, so a central killed
//! at any point neither buys twice nor forgets a license it bought:
//! - `ka_attempts` is bumped and committed BEFORE each KA create; an order found `pending`
//!   with attempts > 0 is looked up in KA by its nickname (= the order id) first;
//! - the job is queued with idempotency key = order id, so queueing again after a crash
//!   returns the same job.

// Handlers return a ready error Response; built once per failed request.
#![allow(clippy::result_large_err)]

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use plesk_reseller_protocol as proto;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::app::App;
use crate::config::Config;
use crate::ka::{KaClient, KaError, KaSettings, Key, NewKey};
use crate::metrics::Metrics;
use crate::store::{JobRow, Store, StoreError};

/// The states, in order.
pub const STATES: &[&str] = &["pending", "licensed", "queued", "done", "failed"];
/// Retry of a transient KA failure: 1 s doubling to 60 s.
const BACKOFF_FIRST: Duration = Duration::from_secs(1);
/// How often a replica looks again at an order another replica drives.
const CLAIM_RETRY: Duration = Duration::from_secs(5);
const BACKOFF_MAX: Duration = Duration::from_secs(60);

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
    #[error("KA failed for order {id}: {reason}")]
    Ka { id: String, reason: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the database {url} failed on order {id}: {reason}")]
    Db { url: String, id: String, reason: String },
}

/// An order as the admin API shows it; the activation code never leaves the database.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Order {
    pub id: String,
    pub kind: String,
    pub host: String,
    pub key_number: Option<String>,
    pub extension_id: Option<String>,
    pub ka_item: String,
    pub state: String,
    pub ka_attempts: i64,
    pub ka_key_id: Option<i64>,
    pub ka_key_number: Option<String>,
    pub job_id: Option<String>,
    /// KA's answer verbatim (last transient error while pending; the final one when failed).
    pub error: Option<String>,
    #[serde(serialize_with = "crate::times::req")]
    pub created_at: i64,
    #[serde(serialize_with = "crate::times::req")]
    pub updated_at: i64,
    #[serde(skip)]
    pub activation_code: Option<String>,
}

const COLS: &str = "id, kind, host_id, key_number, extension_id, ka_item, state, ka_attempts, ka_key_id, \
                    ka_key_number, job_id, error, created_at, updated_at, activation_code";

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
    }
}

/// What `POST /admin/v1/orders` takes.
#[derive(Debug, Deserialize)]
pub struct NewOrder {
    pub order_id: String,
    pub host: Option<String>,
    #[serde(default)]
    pub plesk: bool,
    pub key_number: Option<String>,
    pub extension: Option<String>,
}

/// The orders' database rows and the worker that drives them.
pub struct Orders {
    store: Store,
    config: Arc<Config>,
    ka: Option<KaClient>,
    /// Orders a task is driving in this process: one task per order.
    driving: Mutex<HashSet<String>>,
    /// Where KA calls and errors are counted.
    metrics: Arc<Metrics>,
}

impl Orders {
    /// Builds the KA client when `[ka]` is filled in; an unusable password file is an error
    /// at start rather than at the first order.
    pub fn new(store: Store, config: Arc<Config>, metrics: Arc<Metrics>) -> Result<Arc<Orders>, KaError> {
        let ka = KaSettings::from_config(&config.ka)?.map(KaClient::new).transpose()?;
        Ok(Arc::new(Orders {
            store,
            config,
            ka,
            driving: Mutex::new(HashSet::new()),
            metrics,
        }))
    }

    fn db_err(&self, id: &str, e: sqlx::Error) -> OrderError {
        OrderError::Db {
            url: self.store.db.url.clone(),
            id: id.into(),
            reason: e.to_string(),
        }
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
        let inserted = sqlx::query(
            "INSERT INTO orders (id, kind, host_id, key_number, extension_id, ka_item, state, ka_attempts, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, 'pending', 0, $7, $7) ON CONFLICT (id) DO NOTHING",
        )
        .bind(id)
        .bind(kind)
        .bind(&host)
        .bind(key_number.as_deref())
        .bind(extension.as_deref())
        .bind(&item)
        .bind(now)
        .execute(&self.store.db.pool)
        .await
        .map_err(|e| self.db_err(id, e))?
        .rows_affected()
            == 1;
        let order = self.get(id).await?;
        if !inserted {
            // Another request took the same order id just now.
            return self.repeat(order, req);
        }
        self.drive(id);
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
        if order.state != "done" && order.state != "failed" {
            self.drive(&order.id);
        }
        Ok((order, false))
    }

    /// At start: every order not yet at its end is driven again.
    pub async fn resume(self: &Arc<Self>) {
        match self.list(None).await {
            Ok(all) => {
                for o in all
                    .iter()
                    .filter(|o| ["pending", "licensed", "queued"].contains(&o.state.as_str()))
                {
                    self.drive(&o.id);
                }
            }
            Err(e) => tracing::error!("cannot resume the orders: {e}"),
        }
    }

    /// Starts a task driving the order unless one already does.
    pub fn drive(self: &Arc<Self>, id: &str) {
        {
            let mut d = self.driving.lock().unwrap_or_else(|e| e.into_inner());
            if !d.insert(id.to_string()) {
                return;
            }
        }
        let (me, id) = (self.clone(), id.to_string());
        tokio::spawn(async move {
            me.run(&id).await;
            me.driving.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
        });
    }

    /// Drives one order to its end, holding the order's claim so no other replica drives it
    /// at the same time (two creates at KA for one order would buy it twice).
    async fn run(&self, id: &str) {
        let claim = loop {
            match self.store.db.try_claim(&format!("order:{id}")).await {
                Ok(Some(claim)) => break claim,
                Ok(None) => {}
                Err(e) => tracing::warn!("order {id}: cannot claim it: {e}"),
            }
            // Another replica drives it; take over only if it dies before the order ends.
            match self.get(id).await {
                Ok(o) if ["done", "failed"].contains(&o.state.as_str()) => return,
                Err(OrderError::NoOrder(_)) => return,
                _ => tokio::time::sleep(CLAIM_RETRY).await,
            }
        };
        self.run_claimed(id).await;
        claim.release().await;
    }

    async fn run_claimed(&self, id: &str) {
        let mut backoff = BACKOFF_FIRST;
        loop {
            let step = match self.get(id).await {
                Ok(o) => self.step(&o).await,
                Err(e) => Err(e),
            };
            match step {
                Ok(true) => backoff = BACKOFF_FIRST,
                Ok(false) => return,
                Err(e) => {
                    tracing::warn!("order {id}: {e}; trying again in {}s", backoff.as_secs());
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
    }

    /// One step of the machine; `Ok(true)`: there is a next step now.
    async fn step(&self, o: &Order) -> Result<bool, OrderError> {
        match o.state.as_str() {
            "pending" => self.buy(o).await,
            "licensed" => self.queue(o).await,
            "queued" => {
                // The result may have come while this central was down.
                if let Some(job) = &o.job_id {
                    match self.store.job(job).await {
                        Ok(j) => self.job_ended(&j).await?,
                        // `hosts rm` deletes a host's jobs; the license is bought, not lost.
                        Err(StoreError::NoJob(_)) => return self.unqueue(o).await,
                        Err(e) => return Err(e.into()),
                    }
                }
                Ok(false)
            }
            _ => Ok(false),
        }
    }

    /// `pending` → `licensed`: ask KA by nickname first when a create may have happened (a
    /// crash or a lost answer), create only when KA has nothing for this order.
    async fn buy(&self, o: &Order) -> Result<bool, OrderError> {
        let Some(ka) = &self.ka else {
            return Err(OrderError::NoKa);
        };
        let found = if o.ka_attempts > 0 {
            match self.reconcile(ka, o).await {
                Ok(k) => k,
                Err(e) => return self.ka_failed(o, e).await,
            }
        } else {
            None
        };
        let key = match found {
            Some(k) => k,
            None => {
                sqlx::query(
                    "UPDATE orders SET ka_attempts = ka_attempts + 1, updated_at = $1 WHERE id = $2 AND state = 'pending'",
                )
                .bind(self.store.now())
                .bind(&o.id)
                .execute(&self.store.db.pool)
                .await
                .map_err(|e| self.db_err(&o.id, e))?;
                self.metrics.ka_calls.fetch_add(1, Ordering::Relaxed);
                let new = NewKey {
                    items: vec![o.ka_item.clone()],
                    parent_key_number: o.key_number.clone(),
                    nickname: o.id.clone(),
                };
                match ka.create_key(&new).await {
                    Ok(k) => k,
                    Err(e) => return self.ka_failed(o, e).await,
                }
            }
        };
        sqlx::query(
            "UPDATE orders SET state = 'licensed', ka_key_id = $1, ka_key_number = $2, activation_code = $3, \
             error = NULL, updated_at = $4 WHERE id = $5 AND state = 'pending'",
        )
        .bind(key.key_id as i64)
        .bind(&key.key_number)
        .bind((o.kind == "plesk").then_some(key.activation_code.as_str()))
        .bind(self.store.now())
        .bind(&o.id)
        .execute(&self.store.db.pool)
        .await
        .map_err(|e| self.db_err(&o.id, e))?;
        tracing::info!("order {}: KA key {}", o.id, key.key_number);
        Ok(true)
    }

    /// The key KA already made for this order, if any.
    async fn reconcile(&self, ka: &KaClient, o: &Order) -> Result<Option<Key>, KaError> {
        self.metrics.ka_calls.fetch_add(1, Ordering::Relaxed);
        let found = ka.find_by_nickname(&o.id).await?;
        let Some(first) = found.first() else { return Ok(None) };
        if found.len() > 1 {
            tracing::warn!(
                "order {}: KA has {} keys with this nickname; using {}",
                o.id,
                found.len(),
                first.key_id
            );
        }
        self.metrics.ka_calls.fetch_add(1, Ordering::Relaxed);
        ka.get_key(&first.key_id.to_string()).await.map(Some)
    }

    /// KA's final word fails the order with its body verbatim; a transient failure keeps it
    /// pending with the error shown, to be tried again.
    async fn ka_failed(&self, o: &Order, e: KaError) -> Result<bool, OrderError> {
        self.metrics.ka_errors.fetch_add(1, Ordering::Relaxed);
        let final_ = !e.is_transient();
        sqlx::query("UPDATE orders SET state = $1, error = $2, updated_at = $3 WHERE id = $4 AND state = 'pending'")
            .bind(if final_ { "failed" } else { "pending" })
            .bind(e.verbatim())
            .bind(self.store.now())
            .bind(&o.id)
            .execute(&self.store.db.pool)
            .await
            .map_err(|e| self.db_err(&o.id, e))?;
        if final_ {
            tracing::warn!("order {} failed: {e}", o.id);
            return Ok(false);
        }
        Err(OrderError::Ka {
            id: o.id.clone(),
            reason: e.to_string(),
        })
    }

    /// `licensed` → `queued`: the job with idempotency key = order id (queued again after a
    /// crash, it is the same job), which wakes the host.
    async fn queue(&self, o: &Order) -> Result<bool, OrderError> {
        let (kind, code) = if o.kind == "plesk" {
            ("install_key", o.activation_code.as_deref())
        } else {
            ("retrieve_keys", None)
        };
        let (job, _) = match self.store.add_job(&o.host, kind, code, Some(&o.id)).await {
            Ok(j) => j,
            Err(StoreError::NoHost(h)) => {
                // Not retried in a loop: `hosts add` of the same id drives it again.
                let why = format!("host {h} is not registered; the order waits for `hosts add {h}`");
                tracing::warn!("order {}: {why}", o.id);
                self.wait_for_host(o, &why).await?;
                return Ok(false);
            }
            Err(e) => return Err(e.into()),
        };
        sqlx::query(
            "UPDATE orders SET state = 'queued', job_id = $1, error = NULL, updated_at = $2 WHERE id = $3 AND state = 'licensed'",
        )
        .bind(&job.id)
        .bind(self.store.now())
        .bind(&o.id)
        .execute(&self.store.db.pool)
        .await
        .map_err(|e| self.db_err(&o.id, e))?;
        Ok(true)
    }

    /// `queued` → `licensed` when the job is gone with its host: queued again once the host is back.
    async fn unqueue(&self, o: &Order) -> Result<bool, OrderError> {
        let why = format!(
            "job {} was removed with host {}",
            o.job_id.as_deref().unwrap_or("-"),
            o.host
        );
        self.wait_for_host(o, &why).await?;
        Ok(true)
    }

    /// Back to (or still) `licensed`, without a job, with the reason shown: the license is
    /// bought and waits for its host.
    async fn wait_for_host(&self, o: &Order, why: &str) -> Result<(), OrderError> {
        sqlx::query(
            "UPDATE orders SET state = 'licensed', job_id = NULL, error = $1, updated_at = $2 \
             WHERE id = $3 AND state IN ('licensed', 'queued')",
        )
        .bind(why)
        .bind(self.store.now())
        .bind(&o.id)
        .execute(&self.store.db.pool)
        .await
        .map_err(|e| self.db_err(&o.id, e))?;
        Ok(())
    }

    /// A host was added or removed: its orders between KA and the agent look again (a
    /// removal took their jobs; an addition is what a waiting order waits for).
    pub async fn host_changed(self: &Arc<Self>, host: &str) {
        for state in ["licensed", "queued"] {
            match self.recent(Some(host), Some(state), 1000, 0).await {
                Ok((waiting, _)) => waiting.iter().for_each(|o| self.drive(&o.id)),
                Err(e) => tracing::error!("cannot resume the orders of host {host}: {e}"),
            }
        }
    }

    /// A job ended: its order (if any) is `done` or `failed`, and its code is erased.
    pub async fn job_ended(&self, job: &JobRow) -> Result<(), OrderError> {
        if job.state == "queued" {
            return Ok(());
        }
        let (state, error) = if job.state == "succeeded" {
            ("done", None)
        } else {
            let why = job
                .result
                .as_ref()
                .map(|r| r.to_string())
                .unwrap_or_else(|| format!("the job was {}", job.state));
            ("failed", Some(why))
        };
        let r = sqlx::query(
            "UPDATE orders SET state = $1, error = $2, activation_code = NULL, updated_at = $3 WHERE job_id = $4 AND state = 'queued'",
        )
        .bind(state)
        .bind(error)
        .bind(self.store.now())
        .bind(&job.id)
        .execute(&self.store.db.pool)
        .await
        .map_err(|e| self.db_err(&job.id, e))?;
        if r.rows_affected() > 0 {
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

// ---- the admin API: POST/GET /admin/v1/orders, GET /admin/v1/orders/{id} ----

fn error(status: StatusCode, msg: &str) -> Response {
    (status, Json(json!({ "error": msg }))).into_response()
}

fn order_error(e: OrderError) -> Response {
    let status = match &e {
        OrderError::BadId(_) | OrderError::Shape | OrderError::BadKeyNumber(_) => StatusCode::BAD_REQUEST,
        OrderError::NotSold(_) | OrderError::NoPleskItem => StatusCode::UNPROCESSABLE_ENTITY,
        OrderError::NoKa => StatusCode::SERVICE_UNAVAILABLE,
        OrderError::Conflict(_) => StatusCode::CONFLICT,
        OrderError::NoOrder(_) | OrderError::Store(StoreError::NoHost(_)) => StatusCode::NOT_FOUND,
        OrderError::Store(StoreError::NoKeyNumber(_) | StoreError::AmbiguousKeyNumber { .. }) => {
            StatusCode::UNPROCESSABLE_ENTITY
        }
        OrderError::Store(_) | OrderError::Db { .. } | OrderError::Ka { .. } => {
            tracing::error!("{e}");
            StatusCode::INTERNAL_SERVER_ERROR
        }
    };
    error(status, &e.to_string())
}

pub fn router(app: App) -> Router {
    Router::new()
        .route("/admin/v1/orders", get(list).post(add))
        .route("/admin/v1/orders/{id}", get(show))
        .with_state(app)
}

fn orders_of(app: &App) -> Result<&Arc<Orders>, Response> {
    app.orders
        .as_ref()
        .ok_or_else(|| error(StatusCode::SERVICE_UNAVAILABLE, "orders are not served here"))
}

async fn add(State(app): State<App>, headers: HeaderMap, body: Body) -> Response {
    let orders = match orders_of(&app) {
        Ok(o) => o,
        Err(r) => return r,
    };
    let bytes = match crate::api::read_body(body, &headers).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let req: NewOrder = match serde_json::from_slice(&bytes) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, &format!("the order is not valid: {e}")),
    };
    match orders.add(&req).await {
        Ok((o, true)) => (StatusCode::CREATED, Json(o)).into_response(),
        Ok((o, false)) => (StatusCode::OK, Json(o)).into_response(),
        Err(e) => order_error(e),
    }
}

#[derive(Deserialize)]
struct Filter {
    state: Option<String>,
}

async fn list(State(app): State<App>, Query(f): Query<Filter>) -> Response {
    let orders = match orders_of(&app) {
        Ok(o) => o,
        Err(r) => return r,
    };
    if let Some(s) = &f.state {
        if !STATES.contains(&s.as_str()) {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("the state {s:?} is none of {}", STATES.join(", ")),
            );
        }
    }
    match orders.list(f.state.as_deref()).await {
        Ok(list) => Json(list).into_response(),
        Err(e) => order_error(e),
    }
}

async fn show(State(app): State<App>, Path(id): Path<String>) -> Response {
    let orders = match orders_of(&app) {
        Ok(o) => o,
        Err(r) => return r,
    };
    match orders.get(&id).await {
        Ok(o) => Json(o).into_response(),
        Err(e) => order_error(e),
    }
}
