//! Licenses (contract section 9): every KA key the central bought (an order that KA
//! answered) or adopted, and their life after the sale: `suspend`, `resume`, `change`,
//! `terminate`, `refresh`, each an operation driven by the same design as the orders
//! (`orders.rs`, docs/orders.md):
//! - the operation is recorded (`pending`) before any KA call; its id makes it idempotent,
//!   and a partial unique index keeps one pending operation per license;
//! - a few workers per replica take due operations under a lease (efficiency only);
//! - before each KA call, `ka_attempts` is bumped and `call_open` set by a compare-and-set
//!   (the fence): only the driver whose UPDATE changed the row calls KA;
//! - an answer that was lost (no answer, 5xx, a crash) leaves `call_open`: after
//!   `attempt_until` the key is read back (`GET keys/<id>`) and compared with the target;
//!   reached is `done`, not reached permits another (idempotent) call;
//! - KA's refusal is kept verbatim (`failed`); transient failures wait on `next_at`;
//! - after `done`, a `retrieve_keys` job with the operation id as its idempotency key goes to
//!   the license's host (waiting for the host as orders do).
//!
//! Reconcile reads every live license from KA over `[ka] reconcile_interval` and records what
//! changed outside the central as drift; it never calls a mutating verb. KA requests of
//! operations and reconcile share one bound, `[ka] max_concurrency`.
//!
//! No database connection is held across a KA call or a wait.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use plesk_reseller_protocol as proto;
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};
use tokio::sync::{watch, Notify, Semaphore};

use crate::commerce::orders::{
    answered, backoff_ms, reason, refused, ATTEMPT_MARGIN_MS, BACKOFF_FIRST_MS, LEASE_MS, NEVER, SCAN_EVERY,
};
use crate::config::Config;
use crate::events::{self, EventType};
use crate::fleet::store::{Store, StoreError};
use crate::ka::{KaClient, KaError, KaSettings, Key, Modify};
use crate::metrics::Metrics;

pub const STATES: &[&str] = &["active", "suspended", "terminated", "expired"];
pub const OP_KINDS: &[&str] = &["suspend", "resume", "change", "terminate", "refresh"];
/// Operation workers per replica (KA calls are bounded by `[ka] max_concurrency` besides).
const WORKERS: usize = 4;
/// An operation whose host job waits for its host looks again this often.
const HOST_RECHECK_MS: i64 = 5_000;
/// A terminate waiting for its extensions' operations looks again this often.
const CHILDREN_RECHECK_MS: i64 = 500;

/// A license or operation request that cannot be served; names the license, operation or
/// value at fault.
#[derive(Debug, thiserror::Error)]
pub enum LicenseError {
    #[error("there is no license {0}")]
    NoLicense(String),
    #[error("there is no operation {0}")]
    NoOperation(String),
    #[error("the operation id {0:?} is not letters, digits and . _ - (first a letter or digit, at most 128)")]
    BadOpId(String),
    #[error("the operation {0:?} is none of suspend, resume, change, terminate, refresh")]
    BadKind(String),
    #[error("change needs --items with at least one KA item constant (letters, digits, - _ .)")]
    BadItems,
    #[error("license {0} is terminated: only refresh is possible (terminate cannot be undone)")]
    Terminated(i64),
    #[error("license {license} has operation {op} ({kind}) pending; one operation at a time per license")]
    Busy { license: i64, op: String, kind: String },
    #[error(
        "license {license} has active extension licenses {children}; terminate them first or pass --with-extensions"
    )]
    ActiveExtensions { license: i64, children: String },
    #[error("operation {0} exists already for another license or with other parameters")]
    OpConflict(String),
    #[error("KA is not configured: set [ka] username and password_file in the config")]
    NoKa,
    #[error("give --key-number KN or --key-id N")]
    AdoptShape,
    #[error("the key number {0:?} is not of the form PLSK.12345678.0001")]
    BadKeyNumber(String),
    #[error("KA cannot give the key {key}: {reason}")]
    Ka { key: String, reason: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the database {url} failed on license {id}: {reason}")]
    Db { url: String, id: String, reason: String },
}

/// What KA said of the key when the central last read it.
#[derive(Debug, Clone, Serialize, PartialEq, Default, utoipa::ToSchema)]
pub struct KaRead {
    pub status: Option<String>,
    pub suspended: Option<bool>,
    pub terminated: Option<bool>,
    pub expiration_date: Option<String>,
    pub auto_renew: Option<bool>,
    pub items: Option<Vec<String>>,
    #[serde(serialize_with = "crate::times::opt")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub checked_at: Option<i64>,
}

/// A license as the admin API shows it.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct License {
    pub id: i64,
    /// KA's key number with its revision as KA last gave it.
    pub key_number: String,
    pub kind: String,
    pub items: Vec<String>,
    pub parent: Option<i64>,
    pub children: Vec<i64>,
    pub host: Option<String>,
    pub state: String,
    pub order: Option<String>,
    pub ka: KaRead,
    /// What reconcile found changed outside the central, if anything.
    pub drift: Option<String>,
    #[serde(serialize_with = "crate::times::opt")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub drift_at: Option<i64>,
    /// The key number (with revision) the host last reported, for a main license.
    pub host_key_number: Option<String>,
    #[serde(serialize_with = "crate::times::req")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
    #[serde(serialize_with = "crate::times::req")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: i64,
    /// Newest first (on `show`; the list leaves them out).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(no_recursion)]
    pub operations: Option<Vec<Operation>>,
}

/// One operation on a license.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct Operation {
    pub id: String,
    pub license: i64,
    pub kind: String,
    pub items: Option<Vec<String>>,
    pub retrieve: bool,
    pub state: String,
    pub ka_attempts: i64,
    /// The terminate of the main license this one is part of (`--with-extensions`).
    pub parent_op: Option<String>,
    pub job_id: Option<String>,
    /// The host job's state beside the operation's (queued, succeeded, …).
    pub job_state: Option<String>,
    /// Why the host job is not queued yet.
    pub job_wait: Option<String>,
    /// KA's refusal verbatim when failed; the last transient error while pending.
    pub error: Option<String>,
    #[serde(serialize_with = "crate::times::req")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
    #[serde(serialize_with = "crate::times::req")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: i64,
    #[serde(skip)]
    call_open: bool,
    #[serde(skip)]
    attempt_until: i64,
    #[serde(skip)]
    transient: i64,
    #[serde(skip)]
    after_children: bool,
}

/// What `POST /admin/v1/licenses/{id}/operations` takes.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
pub struct NewOperation {
    pub op_id: Option<String>,
    pub kind: String,
    #[serde(default)]
    pub items: Option<Vec<String>>,
    #[serde(default)]
    pub no_retrieve: bool,
    #[serde(default)]
    pub with_extensions: bool,
}

/// What `POST /admin/v1/licenses` (adopt) takes.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
pub struct Adopt {
    pub key_number: Option<String>,
    pub key_id: Option<u64>,
    pub host: Option<String>,
}

const LCOLS: &str = "l.id, l.key_number, l.kind, l.items, l.parent_id, l.host_id, l.state, l.order_id, l.ka_status, \
                     l.ka_suspended, l.ka_terminated, l.ka_expiration_date, l.ka_auto_renew, l.ka_items, \
                     l.checked_at, l.drift, l.drift_at, l.created_at, l.updated_at, h.key_number";
const LFROM: &str = "licenses l LEFT JOIN hosts h ON h.id = l.host_id";

fn json_list(s: Option<String>) -> Option<Vec<String>> {
    s.and_then(|t| serde_json::from_str(&t).ok())
}

fn to_json(items: &[String]) -> String {
    serde_json::to_string(items).unwrap_or_else(|_| "[]".into())
}

fn flag(v: Option<i64>) -> Option<bool> {
    v.map(|n| n != 0)
}

fn license_of(r: &AnyRow) -> License {
    let kind: String = r.get(2);
    License {
        id: r.get(0),
        key_number: r.get(1),
        items: json_list(r.get(3)).unwrap_or_default(),
        parent: r.get(4),
        children: Vec::new(),
        host: r.get(5),
        state: r.get(6),
        order: r.get(7),
        ka: KaRead {
            status: r.get(8),
            suspended: flag(r.get(9)),
            terminated: flag(r.get(10)),
            expiration_date: r.get(11),
            auto_renew: flag(r.get(12)),
            items: json_list(r.get(13)),
            checked_at: r.get(14),
        },
        drift: r.get(15),
        drift_at: r.get(16),
        created_at: r.get(17),
        updated_at: r.get(18),
        host_key_number: if kind == "plesk" { r.get(19) } else { None },
        kind,
        operations: None,
    }
}

const OCOLS: &str = "o.id, o.license_id, o.kind, o.items, o.retrieve, o.state, o.ka_attempts, o.parent_op, o.job_id, \
                     j.state, o.job_wait, o.error, o.created_at, o.updated_at, o.call_open, o.attempt_until, \
                     o.transient, o.after_children";
const OFROM: &str = "license_operations o LEFT JOIN jobs j ON j.id = o.job_id";

fn op_of(r: &AnyRow) -> Operation {
    Operation {
        id: r.get(0),
        license: r.get(1),
        kind: r.get(2),
        items: json_list(r.get(3)),
        retrieve: r.get::<i64, _>(4) != 0,
        state: r.get(5),
        ka_attempts: r.get(6),
        parent_op: r.get(7),
        job_id: r.get(8),
        job_state: r.get(9),
        job_wait: r.get(10),
        error: r.get(11),
        created_at: r.get(12),
        updated_at: r.get(13),
        call_open: r.get::<i64, _>(14) != 0,
        attempt_until: r.get(15),
        transient: r.get(16),
        after_children: r.get::<i64, _>(17) != 0,
    }
}

/// The license a KA key makes, written in the order's transaction (`Orders::licensed`).
pub async fn insert_from_order(
    tx: &mut Transaction<'static, Any>,
    key: &Key,
    kind: &str,
    host: &str,
    order: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO licenses (id, key_number, kind, items, parent_id, host_id, state, order_id, ka_status, \
         ka_suspended, ka_terminated, ka_expiration_date, ka_auto_renew, ka_items, checked_at, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, 'active', $7, $8, $9, $10, $11, $12, $4, $13, $13, $13) \
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(key.key_id as i64)
    .bind(&key.key_number)
    .bind(kind)
    .bind(to_json(&key.items))
    .bind(key.parent_key_id.map(|p| p as i64))
    .bind(host)
    .bind(order)
    .bind(key.status.as_deref())
    .bind(key.suspended as i64)
    .bind(key.terminated as i64)
    .bind(key.expiration_date.as_deref())
    .bind(key.auto_renew.map(|b| b as i64))
    .bind(now)
    .execute(&mut **tx)
    .await
    .map(|_| ())
}

/// The state KA's answer says the key is in.
fn state_of_key(key: &Key, now_iso: &str) -> &'static str {
    if key.terminated {
        "terminated"
    } else if key.suspended {
        "suspended"
    } else if key.status.as_deref().is_some_and(|s| s.eq_ignore_ascii_case("expired"))
        || key.expiration_date.as_deref().is_some_and(|d| d < now_iso)
    {
        "expired"
    } else {
        "active"
    }
}

fn sorted(items: &[String]) -> Vec<String> {
    let mut v = items.to_vec();
    v.sort();
    v
}

/// Whether KA's key shows the operation's target state.
fn reached(op: &Operation, key: &Key) -> bool {
    match op.kind.as_str() {
        "suspend" => key.suspended,
        "resume" => !key.suspended,
        "change" => op.items.as_ref().is_some_and(|t| sorted(t) == sorted(&key.items)),
        "terminate" => key.terminated,
        _ => true,
    }
}

fn valid_item(i: &str) -> bool {
    !i.is_empty() && i.len() <= 128 && i.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

/// KA's error says the key is terminated already (type 24204, the one documented body).
fn already_terminated(e: &KaError) -> bool {
    matches!(e, KaError::Api { status: 400, body, .. } if body.contains("24204"))
}

enum Next {
    Now,
    Done,
}

/// Licenses, their operations' workers and reconcile.
pub struct Licenses {
    store: Store,
    config: Arc<Config>,
    ka: Option<KaClient>,
    metrics: Arc<Metrics>,
    /// `[ka] max_concurrency`: KA requests at once of operations and reconcile together.
    ka_slots: Arc<Semaphore>,
    wake: Notify,
    me: String,
    attempt_ms: i64,
    /// Drift found by reconcile since the start (metrics).
    pub drift_found: AtomicU64,
    /// Licenses read by reconcile since the start (metrics).
    pub reconciled: AtomicU64,
}

impl Licenses {
    pub fn new(store: Store, config: Arc<Config>, metrics: Arc<Metrics>) -> Result<Arc<Licenses>, KaError> {
        let ka = KaSettings::from_config(&config.ka)?.map(KaClient::new).transpose()?;
        let attempt_ms = (config.ka.timeout as i64) * 1000 + ATTEMPT_MARGIN_MS;
        Ok(Arc::new(Licenses {
            store,
            ka_slots: Arc::new(Semaphore::new(config.ka.max_concurrency.max(1))),
            config,
            ka,
            metrics,
            wake: Notify::new(),
            me: format!("{}-{:016x}", std::process::id(), fastrand::u64(..)),
            attempt_ms,
            drift_found: AtomicU64::new(0),
            reconciled: AtomicU64::new(0),
        }))
    }

    fn db_err(&self, id: impl ToString, e: sqlx::Error) -> LicenseError {
        LicenseError::Db {
            url: self.store.db.url.clone(),
            id: id.to_string(),
            reason: e.to_string(),
        }
    }

    async fn exec(
        &self,
        id: &str,
        q: sqlx::query::Query<'_, sqlx::Any, sqlx::any::AnyArguments>,
    ) -> Result<u64, LicenseError> {
        q.execute(&self.store.db.pool)
            .await
            .map(|r| r.rows_affected())
            .map_err(|e| self.db_err(id, e))
    }

    fn now_iso(&self) -> String {
        crate::times::rfc3339(self.store.now())
    }

    // ---- reading ------------------------------------------------------------------------

    /// A license by KA key id, or by key number (any revision).
    pub async fn find(&self, reference: &str) -> Result<License, LicenseError> {
        let row = if let Ok(id) = reference.parse::<i64>() {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {LCOLS} FROM {LFROM} WHERE l.id = $1"
            )))
            .bind(id)
            .fetch_optional(&self.store.db.pool)
            .await
        } else {
            let kn =
                proto::normalize_key_number(reference).ok_or_else(|| LicenseError::NoLicense(reference.to_string()))?;
            let core = crate::ka::key_id_of(&kn).ok_or_else(|| LicenseError::BadKeyNumber(reference.into()))?;
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {LCOLS} FROM {LFROM} WHERE l.id = $1"
            )))
            .bind(core as i64)
            .fetch_optional(&self.store.db.pool)
            .await
        }
        .map_err(|e| self.db_err(reference, e))?;
        let mut l = row
            .map(|r| license_of(&r))
            .ok_or_else(|| LicenseError::NoLicense(reference.to_string()))?;
        l.children = self.children(l.id).await?;
        Ok(l)
    }

    /// With its operations, newest first.
    pub async fn show(&self, reference: &str) -> Result<License, LicenseError> {
        let mut l = self.find(reference).await?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {OCOLS} FROM {OFROM} WHERE o.license_id = $1 ORDER BY o.created_at DESC, o.id DESC"
        )))
        .bind(l.id)
        .fetch_all(&self.store.db.pool)
        .await
        .map_err(|e| self.db_err(l.id, e))?;
        l.operations = Some(rows.iter().map(op_of).collect());
        Ok(l)
    }

    async fn children(&self, id: i64) -> Result<Vec<i64>, LicenseError> {
        let rows = sqlx::query("SELECT id FROM licenses WHERE parent_id = $1 ORDER BY id")
            .bind(id)
            .fetch_all(&self.store.db.pool)
            .await
            .map_err(|e| self.db_err(id, e))?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    pub async fn list(&self, host: Option<&str>, state: Option<&str>) -> Result<Vec<License>, LicenseError> {
        let sql = format!(
            "SELECT {LCOLS} FROM {LFROM} WHERE ($1 IS NULL OR l.host_id = $1) AND ($2 IS NULL OR l.state = $2) \
             ORDER BY l.created_at, l.id"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(host)
            .bind(state)
            .fetch_all(&self.store.db.pool)
            .await
            .map_err(|e| self.db_err("-", e))?;
        let mut list: Vec<License> = rows.iter().map(license_of).collect();
        let ids: std::collections::HashMap<i64, usize> = list.iter().enumerate().map(|(i, l)| (l.id, i)).collect();
        let pairs: Vec<(i64, i64)> = list.iter().filter_map(|l| l.parent.map(|p| (p, l.id))).collect();
        for (p, c) in pairs {
            if let Some(&i) = ids.get(&p) {
                list[i].children.push(c);
            }
        }
        Ok(list)
    }

    pub async fn operation(&self, id: &str) -> Result<Operation, LicenseError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {OCOLS} FROM {OFROM} WHERE o.id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.store.db.pool)
        .await
        .map_err(|e| self.db_err(id, e))?;
        row.map(|r| op_of(&r))
            .ok_or_else(|| LicenseError::NoOperation(id.into()))
    }

    /// Operations still pending or whose host job is queued, newest first (the fleet page).
    pub async fn in_flight(&self, limit: i64) -> Result<Vec<Operation>, LicenseError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {OCOLS} FROM {OFROM} WHERE o.state = 'pending' OR (o.state = 'done' AND o.retrieve = 1 \
             AND (o.job_id IS NULL OR j.state = 'queued')) ORDER BY o.created_at DESC, o.id DESC LIMIT $1"
        )))
        .bind(limit)
        .fetch_all(&self.store.db.pool)
        .await
        .map_err(|e| self.db_err("-", e))?;
        Ok(rows.iter().map(op_of).collect())
    }

    /// The newest operation of each license in `ids` (the licenses page).
    pub async fn last_operations(&self) -> Result<std::collections::HashMap<i64, Operation>, LicenseError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {OCOLS} FROM {OFROM} ORDER BY o.created_at, o.id"
        )))
        .fetch_all(&self.store.db.pool)
        .await
        .map_err(|e| self.db_err("-", e))?;
        Ok(rows.iter().map(op_of).map(|o| (o.license, o)).collect())
    }

    // ---- adopt ------------------------------------------------------------------------

    /// `licenses adopt`: read the key from KA and record it; nothing is bought. The same key
    /// again returns the license (`false`).
    pub async fn adopt(&self, req: &Adopt) -> Result<(License, bool), LicenseError> {
        let ka = self.ka.as_ref().ok_or(LicenseError::NoKa)?;
        let key_id = match (&req.key_number, req.key_id) {
            (Some(kn), None) => {
                let norm = proto::normalize_key_number(kn).ok_or_else(|| LicenseError::BadKeyNumber(kn.clone()))?;
                crate::ka::key_id_of(&norm).ok_or_else(|| LicenseError::BadKeyNumber(kn.clone()))?
            }
            (None, Some(id)) if id > 0 => id,
            _ => return Err(LicenseError::AdoptShape),
        };
        if let Ok(l) = self.find(&key_id.to_string()).await {
            return Ok((l, false));
        }
        if let Some(h) = &req.host {
            self.store.host(h).await?;
        }
        let key = {
            let _slot = self.ka_slots.acquire().await;
            self.metrics.ka_calls.fetch_add(1, Ordering::Relaxed);
            ka.get_key(&key_id.to_string()).await.map_err(|e| {
                self.metrics.ka_errors.fetch_add(1, Ordering::Relaxed);
                LicenseError::Ka {
                    key: key_id.to_string(),
                    reason: reason(&e),
                }
            })?
        };
        let kind = if key.parent_key_id.is_some() {
            "extension"
        } else {
            "plesk"
        };
        let host = match &req.host {
            Some(h) => Some(h.clone()),
            None => {
                self.host_for(&key.key_number, key.parent_key_id.map(|p| p as i64))
                    .await
            }
        };
        let now = self.store.now();
        let state = state_of_key(&key, &self.now_iso());
        sqlx::query(
            "INSERT INTO licenses (id, key_number, kind, items, parent_id, host_id, state, ka_status, ka_suspended, \
             ka_terminated, ka_expiration_date, ka_auto_renew, ka_items, checked_at, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $4, $13, $13, $13) ON CONFLICT (id) DO NOTHING",
        )
        .bind(key.key_id as i64)
        .bind(&key.key_number)
        .bind(kind)
        .bind(to_json(&key.items))
        .bind(key.parent_key_id.map(|p| p as i64))
        .bind(host.as_deref())
        .bind(state)
        .bind(key.status.as_deref())
        .bind(key.suspended as i64)
        .bind(key.terminated as i64)
        .bind(key.expiration_date.as_deref())
        .bind(key.auto_renew.map(|b| b as i64))
        .bind(now)
        .execute(&self.store.db.pool)
        .await
        .map_err(|e| self.db_err(key.key_id, e))?;
        Ok((self.find(&key.key_id.to_string()).await?, true))
    }

    /// The host whose report carries this key number (any revision), or its parent's host.
    async fn host_for(&self, key_number: &str, parent: Option<i64>) -> Option<String> {
        if let Some(p) = parent {
            if let Ok(l) = self.find(&p.to_string()).await {
                if l.host.is_some() {
                    return l.host;
                }
            }
            return self.host_by_core(p).await;
        }
        let core = crate::ka::key_id_of(key_number)?;
        self.host_by_core(core as i64).await
    }

    /// Exactly one host reporting a key number with this 8-digit core.
    async fn host_by_core(&self, core: i64) -> Option<String> {
        let pattern = format!("%.{core:08}.%");
        let rows = sqlx::query("SELECT id FROM hosts WHERE key_number LIKE $1 ORDER BY id")
            .bind(pattern)
            .fetch_all(&self.store.db.pool)
            .await
            .ok()?;
        (rows.len() == 1).then(|| rows[0].get(0))
    }

    // ---- operations ---------------------------------------------------------------------

    /// Records an operation (`pending`, before any KA call) and wakes the workers. The same
    /// operation id again returns the first operation (`false`), never a second KA call.
    pub async fn operate(&self, reference: &str, req: &NewOperation) -> Result<(Operation, bool), LicenseError> {
        if !OP_KINDS.contains(&req.kind.as_str()) {
            return Err(LicenseError::BadKind(req.kind.clone()));
        }
        let op_id = match &req.op_id {
            Some(id) if !proto::is_valid_host_id(id) => return Err(LicenseError::BadOpId(id.clone())),
            Some(id) => id.clone(),
            None => format!("op-{:016x}", fastrand::u64(..)),
        };
        let items = if req.kind == "change" {
            let items = req.items.clone().unwrap_or_default();
            if items.is_empty() || !items.iter().all(|i| valid_item(i)) {
                return Err(LicenseError::BadItems);
            }
            Some(items)
        } else {
            None
        };
        let license = self.find(reference).await?;
        if let Ok(first) = self.operation(&op_id).await {
            return self.repeat(first, license.id, req, &items);
        }
        if self.ka.is_none() {
            return Err(LicenseError::NoKa);
        }
        if license.state == "terminated" && req.kind != "refresh" {
            return Err(LicenseError::Terminated(license.id));
        }
        let retrieve = !req.no_retrieve && req.kind != "refresh";
        let mut children = Vec::new();
        if req.kind == "terminate" && license.kind == "plesk" {
            for c in &license.children {
                let child = self.find(&c.to_string()).await?;
                if child.state != "terminated" {
                    children.push(child.id);
                }
            }
            if !children.is_empty() && !req.with_extensions {
                return Err(LicenseError::ActiveExtensions {
                    license: license.id,
                    children: children.iter().map(|c| c.to_string()).collect::<Vec<_>>().join(", "),
                });
            }
        }
        let now = self.store.now();
        let db = &self.store.db;
        let mut tx = db
            .pool
            .begin_with(db.dialect.begin_write())
            .await
            .map_err(|e| self.db_err(&op_id, e))?;
        // Children first: each its own operation, ids derived from the main one.
        let mut ops = Vec::new();
        for c in &children {
            ops.push((format!("{op_id}.x{c}"), *c, Some(op_id.clone()), false));
        }
        ops.push((op_id.clone(), license.id, None, !children.is_empty()));
        let mut inserted_all = true;
        for (id, lic, parent_op, after) in &ops {
            let n = sqlx::query(
                "INSERT INTO license_operations (id, license_id, kind, items, retrieve, after_children, parent_op, \
                 state, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', $8, $8) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(id)
            .bind(lic)
            .bind(&req.kind)
            .bind(items.as_ref().map(|i| to_json(i)))
            .bind(retrieve as i64)
            .bind(*after as i64)
            .bind(parent_op.as_deref())
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.db_err(id, e))?
            .rows_affected();
            if n != 1 {
                inserted_all = false;
                break;
            }
        }
        if !inserted_all {
            let _ = tx.rollback().await;
            // The same id taken just now by a concurrent request, or another operation
            // pending on one of the licenses.
            if let Ok(first) = self.operation(&op_id).await {
                return self.repeat(first, license.id, req, &items);
            }
            for (_, lic, _, _) in &ops {
                if let Some(p) = self.pending_of(*lic).await? {
                    return Err(LicenseError::Busy {
                        license: *lic,
                        op: p.id,
                        kind: p.kind,
                    });
                }
            }
            return Err(LicenseError::OpConflict(op_id));
        }
        tx.commit().await.map_err(|e| self.db_err(&op_id, e))?;
        tracing::info!("license {}: operation {op_id} ({}) recorded", license.id, req.kind);
        self.wake();
        Ok((self.operation(&op_id).await?, true))
    }

    fn repeat(
        &self,
        first: Operation,
        license: i64,
        req: &NewOperation,
        items: &Option<Vec<String>>,
    ) -> Result<(Operation, bool), LicenseError> {
        if first.license != license || first.kind != req.kind || (req.kind == "change" && &first.items != items) {
            return Err(LicenseError::OpConflict(first.id));
        }
        Ok((first, false))
    }

    async fn pending_of(&self, license: i64) -> Result<Option<Operation>, LicenseError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {OCOLS} FROM {OFROM} WHERE o.license_id = $1 AND o.state = 'pending'"
        )))
        .bind(license)
        .fetch_optional(&self.store.db.pool)
        .await
        .map_err(|e| self.db_err(license, e))?;
        Ok(row.map(|r| op_of(&r)))
    }

    pub fn wake(&self) {
        self.wake.notify_waiters();
    }

    /// A host was added or removed: operations waiting for a host look again now.
    pub async fn host_changed(&self) {
        let q = sqlx::query(
            "UPDATE license_operations SET next_at = 0 WHERE state = 'done' AND retrieve = 1 AND job_id IS NULL",
        );
        let _ = self.exec("-", q).await;
        self.wake();
    }

    // ---- the workers --------------------------------------------------------------------

    /// Starts the operation workers and reconcile; they stop when `stop` turns true.
    pub async fn start(self: &Arc<Self>, stop: watch::Receiver<bool>) -> Vec<tokio::task::JoinHandle<()>> {
        if self.store.db.dialect == crate::db::Dialect::Sqlite {
            let q =
                sqlx::query("UPDATE license_operations SET lease_owner = NULL, lease_until = 0 WHERE lease_until > 0");
            let _ = self.exec("-", q).await;
        }
        let mut tasks: Vec<_> = (0..WORKERS)
            .map(|_| tokio::spawn(self.clone().worker(stop.clone())))
            .collect();
        if self.config.ka.reconcile_interval > 0 && self.ka.is_some() {
            tasks.push(tokio::spawn(self.clone().reconcile_loop(stop.clone())));
        }
        tasks
    }

    pub async fn release_all(&self) {
        let q = sqlx::query("UPDATE license_operations SET lease_owner = NULL, lease_until = 0 WHERE lease_owner = $1")
            .bind(&self.me);
        let _ = tokio::time::timeout(Duration::from_secs(1), self.exec("-", q)).await;
    }

    async fn worker(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        loop {
            if *stop.borrow() {
                return;
            }
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

    /// Takes the lease of one due operation: pending, or done with its host job not queued.
    async fn take_due(&self) -> Option<String> {
        let now = self.store.now();
        let due = sqlx::query(
            "SELECT id, lease_until FROM license_operations WHERE lease_until < $1 AND next_at <= $1 \
             AND (state = 'pending' OR (state = 'done' AND retrieve = 1 AND job_id IS NULL)) \
             ORDER BY next_at, id LIMIT 16",
        )
        .bind(now)
        .fetch_all(&self.store.db.pool)
        .await
        .ok()?;
        let mut due: Vec<(String, i64)> = due.iter().map(|r| (r.get(0), r.get(1))).collect();
        fastrand::shuffle(&mut due);
        for (id, seen) in due {
            let q = sqlx::query(
                "UPDATE license_operations SET lease_owner = $1, lease_until = $2 WHERE id = $3 AND lease_until = $4 \
                 AND next_at <= $5",
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

    async fn drive_leased(&self, id: &str) {
        let renew = async {
            loop {
                tokio::time::sleep(Duration::from_millis(LEASE_MS as u64 / 3)).await;
                let q =
                    sqlx::query("UPDATE license_operations SET lease_until = $1 WHERE id = $2 AND lease_owner = $3")
                        .bind(self.store.now() + LEASE_MS)
                        .bind(id)
                        .bind(&self.me);
                if let Ok(0) = self.exec(id, q).await {
                    return;
                }
            }
        };
        tokio::select! {
            _ = self.drive(id) => {}
            _ = renew => tracing::warn!("operation {id}: lost its lease; another driver takes over"),
        }
        let q = sqlx::query(
            "UPDATE license_operations SET lease_owner = NULL, lease_until = 0 WHERE id = $1 AND lease_owner = $2",
        )
        .bind(id)
        .bind(&self.me);
        let _ = self.exec(id, q).await;
    }

    async fn drive(&self, id: &str) {
        loop {
            let step = match self.operation(id).await {
                Ok(o) => self.step(&o).await,
                Err(e) => Err(e),
            };
            match step {
                Ok(Next::Now) => {}
                Ok(Next::Done) => return,
                Err(e) => {
                    tracing::warn!("operation {id}: {e}");
                    let q = sqlx::query(
                        "UPDATE license_operations SET next_at = $1, transient = transient + 1 WHERE id = $2",
                    )
                    .bind(self.store.now() + BACKOFF_FIRST_MS * 5)
                    .bind(id);
                    let _ = self.exec(id, q).await;
                    return;
                }
            }
        }
    }

    async fn step(&self, o: &Operation) -> Result<Next, LicenseError> {
        match o.state.as_str() {
            "pending" => self.call(o).await,
            "done" if o.retrieve && o.job_id.is_none() => self.queue(o).await,
            _ => Ok(Next::Done),
        }
    }

    /// `pending` → `done` / `failed`: settle an open call by reading back, else call KA
    /// after the fence let this driver through.
    async fn call(&self, o: &Operation) -> Result<Next, LicenseError> {
        let Some(ka) = &self.ka else {
            return self.transient(o, &LicenseError::NoKa.to_string()).await;
        };
        let now = self.store.now();
        if o.after_children {
            // Children first: wait for their operations; one that failed fails this one.
            let rows = sqlx::query("SELECT id, state, error FROM license_operations WHERE parent_op = $1")
                .bind(&o.id)
                .fetch_all(&self.store.db.pool)
                .await
                .map_err(|e| self.db_err(&o.id, e))?;
            if let Some(r) = rows.iter().find(|r| r.get::<String, _>(1) == "failed") {
                let (cid, err): (String, Option<String>) = (r.get(0), r.get(2));
                let why = format!(
                    "extension operation {cid} failed, so the main license was not terminated: {}",
                    err.unwrap_or_default()
                );
                return self.fail(o, o.ka_attempts, &why).await;
            }
            if rows.iter().any(|r| r.get::<String, _>(1) == "pending") {
                let q = sqlx::query("UPDATE license_operations SET next_at = $1 WHERE id = $2 AND state = 'pending'")
                    .bind(now + CHILDREN_RECHECK_MS)
                    .bind(&o.id);
                self.exec(&o.id, q).await?;
                return Ok(Next::Done);
            }
        }
        let key_id = o.license as u64;
        if o.call_open {
            if now < o.attempt_until {
                let q = sqlx::query(
                    "UPDATE license_operations SET next_at = $1 WHERE id = $2 AND state = 'pending' AND ka_attempts = $3",
                )
                .bind(o.attempt_until)
                .bind(&o.id)
                .bind(o.ka_attempts);
                self.exec(&o.id, q).await?;
                return Ok(Next::Done);
            }
            // Settle the lost answer by reading the key back.
            let read = {
                let _slot = self.ka_slots.acquire().await;
                self.metrics.ka_calls.fetch_add(1, Ordering::Relaxed);
                ka.get_key(&key_id.to_string()).await
            };
            match read {
                Ok(key) if reached(o, &key) || o.kind == "refresh" => {
                    tracing::info!("operation {}: KA shows it applied (read back)", o.id);
                    return self.finish(o, o.ka_attempts, Some(&key)).await;
                }
                Ok(_) => {
                    let q = sqlx::query(
                        "UPDATE license_operations SET call_open = 0, updated_at = $1 \
                         WHERE id = $2 AND state = 'pending' AND ka_attempts = $3 AND call_open = 1",
                    )
                    .bind(now)
                    .bind(&o.id)
                    .bind(o.ka_attempts);
                    if self.exec(&o.id, q).await? != 1 {
                        return Ok(Next::Now);
                    }
                    tracing::info!("operation {}: KA does not show it applied; calling again", o.id);
                }
                Err(e) => {
                    self.metrics.ka_errors.fetch_add(1, Ordering::Relaxed);
                    return self
                        .transient(o, &format!("cannot read the key back from KA yet: {}", reason(&e)))
                        .await;
                }
            }
        }
        // Wait for a KA slot before the fence, so attempt_until covers the call itself.
        let _slot = self.ka_slots.acquire().await;
        let n = o.ka_attempts + 1;
        let q = sqlx::query(
            "UPDATE license_operations SET ka_attempts = $1, call_open = 1, attempt_until = $2, updated_at = $3 \
             WHERE id = $4 AND state = 'pending' AND ka_attempts = $5 AND call_open = 0",
        )
        .bind(n)
        .bind(self.store.now() + self.attempt_ms)
        .bind(self.store.now())
        .bind(&o.id)
        .bind(o.ka_attempts);
        if self.exec(&o.id, q).await? != 1 {
            return Ok(Next::Now);
        }
        self.metrics.ka_calls.fetch_add(1, Ordering::Relaxed);
        let result = match o.kind.as_str() {
            "suspend" => ka.modify_key(key_id, &Modify::Suspended(true)).await.map(Some),
            "resume" => ka.modify_key(key_id, &Modify::Suspended(false)).await.map(Some),
            "change" => ka
                .modify_key(key_id, &Modify::Items(o.items.clone().unwrap_or_default()))
                .await
                .map(Some),
            "terminate" => ka.terminate_key(key_id).await,
            _ => ka.get_key(&key_id.to_string()).await.map(Some),
        };
        drop(_slot);
        let o = Operation {
            ka_attempts: n,
            ..o.clone()
        };
        let e = match result {
            Ok(key) => return self.finish(&o, n, key.as_ref()).await,
            Err(e) => e,
        };
        self.metrics.ka_errors.fetch_add(1, Ordering::Relaxed);
        if o.kind == "terminate" && already_terminated(&e) {
            // Terminated already (by an earlier call whose answer was lost, or by hand).
            return self.finish(&o, n, None).await;
        }
        if refused(&e) {
            tracing::warn!("operation {} failed: {e}", o.id);
            return self.fail(&o, n, &e.verbatim()).await;
        }
        if answered(&e) {
            let q = sqlx::query("UPDATE license_operations SET attempt_until = $1 WHERE id = $2 AND ka_attempts = $3")
                .bind(self.store.now())
                .bind(&o.id)
                .bind(n);
            self.exec(&o.id, q).await?;
        }
        self.transient(
            &o,
            &format!(
                "the outcome of KA's {} is unknown, to be read back: {}",
                o.kind,
                reason(&e)
            ),
        )
        .await
    }

    /// `pending` → `done` with KA's key (None: a terminate KA answered without a body), the
    /// license updated in the same transaction.
    async fn finish(&self, o: &Operation, n: i64, key: Option<&Key>) -> Result<Next, LicenseError> {
        let now = self.store.now();
        let db = &self.store.db;
        let mut tx = db
            .pool
            .begin_with(db.dialect.begin_write())
            .await
            .map_err(|e| self.db_err(&o.id, e))?;
        let next_at = if o.retrieve { 0 } else { NEVER };
        let changed = sqlx::query(
            "UPDATE license_operations SET state = 'done', call_open = 0, error = NULL, transient = 0, next_at = $1, \
             updated_at = $2 WHERE id = $3 AND state = 'pending' AND ka_attempts = $4",
        )
        .bind(next_at)
        .bind(now)
        .bind(&o.id)
        .bind(n)
        .execute(&mut *tx)
        .await
        .map_err(|e| self.db_err(&o.id, e))?
        .rows_affected();
        if changed != 1 {
            let _ = tx.rollback().await;
            return Ok(Next::Now);
        }
        let state = match (o.kind.as_str(), key) {
            ("terminate", _) => "terminated".to_string(),
            (_, Some(k)) => state_of_key(k, &self.now_iso()).to_string(),
            (_, None) => "active".to_string(),
        };
        match key {
            Some(k) => {
                sqlx::query(
                    "UPDATE licenses SET state = $1, key_number = $2, items = $3, ka_items = $3, ka_status = $4, \
                     ka_suspended = $5, ka_terminated = $6, ka_expiration_date = $7, ka_auto_renew = $8, \
                     checked_at = $9, drift = NULL, drift_at = NULL, updated_at = $9 WHERE id = $10",
                )
                .bind(&state)
                .bind(&k.key_number)
                .bind(to_json(&k.items))
                .bind(k.status.as_deref())
                .bind(k.suspended as i64)
                .bind(k.terminated as i64)
                .bind(k.expiration_date.as_deref())
                .bind(k.auto_renew.map(|b| b as i64))
                .bind(now)
                .bind(o.license)
                .execute(&mut *tx)
                .await
            }
            None => {
                sqlx::query(
                    "UPDATE licenses SET state = $1, ka_terminated = 1, checked_at = $2, updated_at = $2 WHERE id = $3",
                )
                .bind(&state)
                .bind(now)
                .bind(o.license)
                .execute(&mut *tx)
                .await
            }
        }
        .map_err(|e| self.db_err(&o.id, e))?;
        let event = match o.kind.as_str() {
            "suspend" => Some(EventType::LicenseSuspended),
            "resume" => Some(EventType::LicenseResumed),
            "change" => Some(EventType::LicenseChanged),
            "terminate" => Some(EventType::LicenseTerminated),
            _ => None, // refresh changes nothing in KA
        };
        if let Some(kind) = event {
            let data = serde_json::json!({"license": o.license, "state": state, "operation": o.id,
                                          "key_number": key.map(|k| k.key_number.as_str()),
                                          "items": key.map(|k| &k.items)});
            events::record(&mut tx, kind, data)
                .await
                .map_err(|e| self.db_err(&o.id, e))?;
        }
        tx.commit().await.map_err(|e| self.db_err(&o.id, e))?;
        tracing::info!("operation {} ({}) done: license {} is {state}", o.id, o.kind, o.license);
        // A main terminate waiting for this child goes on at once.
        self.wake();
        Ok(if o.retrieve { Next::Now } else { Next::Done })
    }

    /// `pending` → `failed` with KA's refusal verbatim; no host job.
    async fn fail(&self, o: &Operation, n: i64, why: &str) -> Result<Next, LicenseError> {
        let db = &self.store.db;
        let mut tx = db
            .pool
            .begin_with(db.dialect.begin_write())
            .await
            .map_err(|e| self.db_err(&o.id, e))?;
        sqlx::query(
            "UPDATE license_operations SET state = 'failed', call_open = 0, error = $1, next_at = $2, updated_at = $3 \
             WHERE id = $4 AND state = 'pending' AND ka_attempts = $5",
        )
        .bind(why)
        .bind(NEVER)
        .bind(self.store.now())
        .bind(&o.id)
        .bind(n)
        .execute(&mut *tx)
        .await
        .map_err(|e| self.db_err(&o.id, e))?;
        let data = serde_json::json!({"license": o.license, "operation": o.id, "kind": o.kind,
                                      "state": "failed", "error": why});
        events::record(&mut tx, EventType::LicenseOperationFailed, data)
            .await
            .map_err(|e| self.db_err(&o.id, e))?;
        tx.commit().await.map_err(|e| self.db_err(&o.id, e))?;
        self.wake();
        Ok(Next::Done)
    }

    async fn transient(&self, o: &Operation, why: &str) -> Result<Next, LicenseError> {
        let wait = backoff_ms(o.transient);
        tracing::warn!("operation {}: {why}; trying again in {} s", o.id, wait / 1000);
        let q = sqlx::query(
            "UPDATE license_operations SET error = $1, next_at = $2, transient = transient + 1, updated_at = $3 \
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

    /// `done` → the host job: `retrieve_keys` with the operation id as its idempotency key
    /// (a crash here queues the same job again, not a second one).
    async fn queue(&self, o: &Operation) -> Result<Next, LicenseError> {
        let license = self.find(&o.license.to_string()).await?;
        let host = match &license.host {
            Some(h) if self.store.host(h).await.is_ok() => Some(h.clone()),
            _ => self.host_for(&license.key_number, license.parent).await,
        };
        let job = match host {
            Some(h) => match self.store.add_job(&h, "retrieve_keys", None, Some(&o.id)).await {
                Ok((j, _)) => Some(j),
                Err(StoreError::NoHost(_)) => None,
                Err(e) => return Err(e.into()),
            },
            None => None,
        };
        let Some(job) = job else {
            let why = format!(
                "no host of license {} is registered; the retrieve_keys job waits for a host reporting key {}",
                license.id, license.key_number
            );
            let q = sqlx::query(
                "UPDATE license_operations SET job_wait = $1, next_at = $2, updated_at = $3 \
                 WHERE id = $4 AND state = 'done' AND job_id IS NULL",
            )
            .bind(&why)
            .bind(self.store.now() + HOST_RECHECK_MS)
            .bind(self.store.now())
            .bind(&o.id);
            self.exec(&o.id, q).await?;
            return Ok(Next::Done);
        };
        if license.host.as_deref() != Some(job.host.as_str()) {
            let q = sqlx::query("UPDATE licenses SET host_id = $1 WHERE id = $2")
                .bind(&job.host)
                .bind(license.id);
            self.exec(&o.id, q).await?;
        }
        let q = sqlx::query(
            "UPDATE license_operations SET job_id = $1, job_wait = NULL, next_at = $2, updated_at = $3 \
             WHERE id = $4 AND state = 'done' AND job_id IS NULL",
        )
        .bind(&job.id)
        .bind(NEVER)
        .bind(self.store.now())
        .bind(&o.id);
        self.exec(&o.id, q).await?;
        Ok(Next::Done)
    }

    // ---- reconcile ----------------------------------------------------------------------

    /// Every `[ka] reconcile_interval`, each license not terminated is read from KA, the
    /// reads spread over the interval and at most `[ka] max_concurrency` at once.
    async fn reconcile_loop(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let interval = Duration::from_secs(self.config.ka.reconcile_interval);
        loop {
            let started = tokio::time::Instant::now();
            tokio::select! {
                _ = self.reconcile_pass(interval) => {}
                _ = stop.changed() => return,
            }
            tokio::select! {
                _ = tokio::time::sleep_until(started + interval) => {}
                _ = stop.changed() => return,
            }
        }
    }

    /// One pass: returns when every read has ended.
    pub async fn reconcile_pass(self: &Arc<Self>, spread: Duration) {
        let ids: Vec<i64> =
            match sqlx::query("SELECT id FROM licenses WHERE state <> 'terminated' ORDER BY checked_at, id")
                .fetch_all(&self.store.db.pool)
                .await
            {
                Ok(rows) => rows.iter().map(|r| r.get(0)).collect(),
                Err(e) => {
                    tracing::warn!("reconcile cannot list the licenses: {}", self.db_err("-", e));
                    return;
                }
            };
        if ids.is_empty() {
            return;
        }
        // Spread over 90 % of the interval, so a pass ends before the next begins.
        let gap = spread.mul_f64(0.9) / ids.len() as u32;
        let start = tokio::time::Instant::now();
        let mut reads = tokio::task::JoinSet::new();
        for (i, id) in ids.into_iter().enumerate() {
            tokio::time::sleep_until(start + gap * i as u32).await;
            let Ok(slot) = self.ka_slots.clone().acquire_owned().await else {
                return;
            };
            let me = self.clone();
            reads.spawn(async move {
                me.reconcile_one(id).await;
                drop(slot);
            });
            while reads.try_join_next().is_some() {}
        }
        while reads.join_next().await.is_some() {}
    }

    /// Reads one license from KA (the caller holds a KA slot) and records any drift.
    async fn reconcile_one(&self, id: i64) {
        let Some(ka) = &self.ka else { return };
        let asked_at = self.store.now();
        self.metrics.ka_calls.fetch_add(1, Ordering::Relaxed);
        let key = match ka.get_key(&id.to_string()).await {
            Ok(k) => k,
            Err(e) => {
                self.metrics.ka_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!("reconcile: cannot read license {id} from KA: {}", reason(&e));
                return;
            }
        };
        self.reconciled.fetch_add(1, Ordering::Relaxed);
        let Ok(l) = self.find(&id.to_string()).await else {
            return;
        };
        let ka_state = state_of_key(&key, &self.now_iso());
        let mut drift = Vec::new();
        if ka_state != l.state {
            drift.push(format!("KA has the key {ka_state}, the central expected {}", l.state));
        }
        if sorted(&key.items) != sorted(&l.items) {
            drift.push(format!(
                "KA has the items {}, the central expected {}",
                key.items.join(","),
                l.items.join(",")
            ));
        }
        let now = self.store.now();
        let db = &self.store.db;
        let write = async {
            let mut tx = db.pool.begin_with(db.dialect.begin_write()).await?;
            // Not over an operation's change: one pending or finished since the read began
            // would look like drift.
            let guard = "id = $1 AND updated_at <= $2 AND NOT EXISTS (SELECT 1 FROM license_operations \
                         WHERE license_id = $1 AND state = 'pending')";
            let n = if drift.is_empty() {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "UPDATE licenses SET key_number = $3, ka_status = $4, ka_suspended = $5, ka_terminated = $6, \
                     ka_expiration_date = $7, ka_auto_renew = $8, ka_items = $9, checked_at = $10 WHERE {guard}"
                )))
            } else {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "UPDATE licenses SET key_number = $3, ka_status = $4, ka_suspended = $5, ka_terminated = $6, \
                     ka_expiration_date = $7, ka_auto_renew = $8, ka_items = $9, checked_at = $10, items = $9, \
                     state = $11, drift = $12, drift_at = $10, updated_at = $10 WHERE {guard}"
                )))
            }
            .bind(id)
            .bind(asked_at)
            .bind(&key.key_number)
            .bind(key.status.as_deref())
            .bind(key.suspended as i64)
            .bind(key.terminated as i64)
            .bind(key.expiration_date.as_deref())
            .bind(key.auto_renew.map(|b| b as i64))
            .bind(to_json(&key.items))
            .bind(now)
            .bind(ka_state)
            .bind(drift.join("; "))
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if n == 1 && !drift.is_empty() {
                let data = serde_json::json!({"license": id, "state": ka_state, "drift": drift.join("; ")});
                events::record(&mut tx, EventType::LicenseDrift, data).await?;
            }
            tx.commit().await?;
            Ok::<u64, sqlx::Error>(n)
        };
        match write.await {
            Ok(1) if !drift.is_empty() => {
                self.drift_found.fetch_add(1, Ordering::Relaxed);
                tracing::warn!("license {id}: drift: {}", drift.join("; "));
            }
            Ok(_) => {}
            Err(e) => tracing::warn!("reconcile: {}", self.db_err(id, e)),
        }
    }

    /// Prometheus lines: licenses by state, licenses with drift, drift found, reads done.
    pub async fn render_metrics(&self) -> String {
        let counts: Vec<(String, i64)> = sqlx::query("SELECT state, COUNT(*) FROM licenses GROUP BY state")
            .fetch_all(&self.store.db.pool)
            .await
            .map(|rows| rows.iter().map(|r| (r.get(0), r.get(1))).collect())
            .unwrap_or_default();
        let drifted: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM licenses WHERE drift IS NOT NULL")
            .fetch_one(&self.store.db.pool)
            .await
            .unwrap_or(0);
        let mut out = String::from("# HELP central_licenses Licenses by state.\n# TYPE central_licenses gauge\n");
        for s in STATES {
            let n = counts.iter().find(|(k, _)| k == s).map(|(_, n)| *n).unwrap_or(0);
            out.push_str(&format!("central_licenses{{state=\"{s}\"}} {n}\n"));
        }
        out.push_str(&format!(
            "# HELP central_license_drift Licenses whose last reconcile found a change made outside the central.\n\
             # TYPE central_license_drift gauge\ncentral_license_drift {drifted}\n\
             # HELP central_license_drift_found_total Drift found by reconcile since the start.\n\
             # TYPE central_license_drift_found_total counter\ncentral_license_drift_found_total {}\n\
             # HELP central_license_reconcile_reads_total Licenses read from KA by reconcile since the start.\n\
             # TYPE central_license_reconcile_reads_total counter\ncentral_license_reconcile_reads_total {}\n",
            self.drift_found.load(Ordering::Relaxed),
            self.reconciled.load(Ordering::Relaxed)
        ));
        out
    }
}
