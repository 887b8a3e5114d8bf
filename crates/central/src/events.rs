//! The event feed (contract section 11), in the outside layer so that both the fleet and
//! commerce can write to it: an outbox in the database, one row per event, written in the
//! same transaction as the change it describes.
//!
//! Writing an event is one call, made last in the transaction that makes the change:
//!
//! ```ignore
//! let mut tx = pool.begin_with(dialect.begin_write()).await?;
//! // ... UPDATE licenses SET state = 'suspended' WHERE id = $1 ...
//! events::record(&mut tx, EventType::LicenseSuspended, json!({"license": id, "state": "suspended"})).await?;
//! tx.commit().await?;
//! ```
//!
//! Rules for the caller: call it only when the change really happened (after the conditional
//! UPDATE changed a row), and last in the transaction (it takes the feed's counter lock, held
//! until commit, so a transaction that takes it last holds it shortest and no lock order can
//! deadlock with it). `data` names the object by id and its new state; activation codes are
//! masked here anyway, and tokens or secrets must never be passed. After the commit nothing
//! else is needed: the webhook workers are woken (this process at once, other PostgreSQL
//! replicas by a NOTIFY sent with the commit).
//!
//! The rest of the module is the feed's reads and the delivery state the webhook worker
//! (`commerce::webhooks`) moves on: claim with a lease, acknowledge, retry later, give up.

use serde::Serialize;
use serde_json::Value;
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};
use tokio::sync::Notify;

use crate::db::Db;

/// Every event type the contract lists, in its order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    OrderLicensed,
    OrderDone,
    OrderFailed,
    OrderAttention,
    LicenseSuspended,
    LicenseResumed,
    LicenseChanged,
    LicenseTerminated,
    LicenseDrift,
    LicenseOperationFailed,
    JobSucceeded,
    JobFailed,
    HostEnrolled,
    HostOffline,
    HostBack,
}

impl EventType {
    pub const ALL: [EventType; 15] = [
        EventType::OrderLicensed,
        EventType::OrderDone,
        EventType::OrderFailed,
        EventType::OrderAttention,
        EventType::LicenseSuspended,
        EventType::LicenseResumed,
        EventType::LicenseChanged,
        EventType::LicenseTerminated,
        EventType::LicenseDrift,
        EventType::LicenseOperationFailed,
        EventType::JobSucceeded,
        EventType::JobFailed,
        EventType::HostEnrolled,
        EventType::HostOffline,
        EventType::HostBack,
    ];

    /// The name on the wire (`type`), e.g. `order.done`.
    pub fn name(self) -> &'static str {
        match self {
            EventType::OrderLicensed => "order.licensed",
            EventType::OrderDone => "order.done",
            EventType::OrderFailed => "order.failed",
            EventType::OrderAttention => "order.attention",
            EventType::LicenseSuspended => "license.suspended",
            EventType::LicenseResumed => "license.resumed",
            EventType::LicenseChanged => "license.changed",
            EventType::LicenseTerminated => "license.terminated",
            EventType::LicenseDrift => "license.drift",
            EventType::LicenseOperationFailed => "license.operation_failed",
            EventType::JobSucceeded => "job.succeeded",
            EventType::JobFailed => "job.failed",
            EventType::HostEnrolled => "host.enrolled",
            EventType::HostOffline => "host.offline",
            EventType::HostBack => "host.back",
        }
    }

    pub fn parse(s: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|t| t.name() == s)
    }

    /// Every name, comma-separated (for messages).
    pub fn names() -> String {
        EventType::ALL.map(EventType::name).join(", ")
    }
}

/// The delivery states of an event.
pub const DELIVERY_STATES: &[&str] = &["pending", "delivered", "undeliverable", "skipped"];

/// Wakes this process's webhook worker; [`record`] rings it (before the commit, so the worker
/// looks again for a short while after a ring; see `commerce::webhooks`).
static WAKE: Notify = Notify::const_new();

pub fn wake() {
    WAKE.notify_one();
}

pub fn wakeup() -> &'static Notify {
    &WAKE
}

/// The PostgreSQL channel on which a commit with an event tells every replica's worker.
pub const CHANNEL: &str = "central_events";

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Masks anything shaped like an activation code in the strings of `data` (defence in
/// depth: callers pass ids and states only).
fn scrub(v: &mut Value) {
    match v {
        Value::String(s) => {
            let masked = plesk_reseller_protocol::mask::activation_codes(s);
            if masked != *s {
                *s = masked;
            }
        }
        Value::Array(a) => a.iter_mut().for_each(scrub),
        Value::Object(o) => o.values_mut().for_each(scrub),
        _ => {}
    }
}

/// Records one event in `tx` (see the module's doc): returns its id. Ids increase in commit
/// order.
pub async fn record(tx: &mut Transaction<'_, Any>, kind: EventType, mut data: Value) -> Result<i64, sqlx::Error> {
    scrub(&mut data);
    let id: i64 = sqlx::query_scalar("UPDATE event_sequence SET value = value + 1 WHERE id = 1 RETURNING value")
        .fetch_one(&mut **tx)
        .await?;
    sqlx::query("INSERT INTO events (id, type, created_at, data) VALUES ($1, $2, $3, $4)")
        .bind(id)
        .bind(kind.name())
        .bind(now_ms())
        .bind(data.to_string())
        .execute(&mut **tx)
        .await?;
    if tx.backend_name() == "PostgreSQL" {
        // Delivered with the commit, to every replica's listener (fleet::replicas).
        sqlx::query("SELECT 1 FROM (SELECT pg_notify('central_events', '')) AS n")
            .execute(&mut **tx)
            .await?;
    }
    wake();
    Ok(id)
}

/// A feed read or delivery update that failed; names the database.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error("the database {url} failed on the event feed: {reason}")]
    Db { url: String, reason: String },
}

/// An event as the feed shows it (and, without `delivery`, as a webhook's body).
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct Event {
    /// Increases in commit order; also the webhook's `webhook-id`.
    pub id: i64,
    /// One of the contract's event types, e.g. `order.done`.
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(serialize_with = "crate::times::req")]
    #[schema(value_type = String, format = DateTime)]
    pub timestamp: i64,
    /// The object's id and state (never an activation code or token).
    #[schema(value_type = Object)]
    pub data: Value,
    pub delivery: Delivery,
}

/// Where the event's webhook stands.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct Delivery {
    pub state: String,
    pub attempts: i64,
    /// When a pending event is tried next.
    #[serde(serialize_with = "crate::times::opt")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub next_attempt_at: Option<i64>,
    pub last_error: Option<String>,
    #[serde(serialize_with = "crate::times::opt")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub delivered_at: Option<i64>,
}

impl Event {
    /// The webhook body: `{"id", "type", "timestamp", "data"}`.
    pub fn body(&self) -> String {
        serde_json::json!({
            "id": self.id,
            "type": self.kind,
            "timestamp": crate::times::rfc3339(self.timestamp),
            "data": self.data,
        })
        .to_string()
    }
}

const COLS: &str = "id, type, created_at, data, delivery, attempts, next_at, last_error, delivered_at";

fn event_of(r: &AnyRow) -> Event {
    let state: String = r.get(4);
    let next_at: i64 = r.get(6);
    Event {
        id: r.get(0),
        kind: r.get(1),
        timestamp: r.get(2),
        data: serde_json::from_str(&r.get::<String, _>(3)).unwrap_or(Value::Null),
        delivery: Delivery {
            next_attempt_at: (state == "pending").then_some(next_at),
            state,
            attempts: r.get(5),
            last_error: r.get(7),
            delivered_at: r.get(8),
        },
    }
}

/// What a list of the feed asks for.
#[derive(Debug, Default, Clone)]
pub struct Query {
    pub after: i64,
    pub kind: Option<String>,
    /// Pending or undeliverable only.
    pub undelivered: bool,
    pub limit: i64,
}

/// The feed's reads and its delivery state.
#[derive(Clone)]
pub struct Feed {
    pub db: Db,
}

impl Feed {
    pub fn new(db: Db) -> Feed {
        Feed { db }
    }

    fn err(&self, e: sqlx::Error) -> EventError {
        EventError::Db {
            url: self.db.url.clone(),
            reason: e.to_string(),
        }
    }

    /// Events with ids after `q.after`, oldest first, at most `q.limit`.
    pub async fn list(&self, q: &Query) -> Result<Vec<Event>, EventError> {
        let sql = format!(
            "SELECT {COLS} FROM events WHERE id > $1 AND ($2 IS NULL OR type = $2) \
             AND ($3 = 0 OR delivery IN ('pending', 'undeliverable')) ORDER BY id LIMIT $4"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(q.after)
            .bind(q.kind.as_deref())
            .bind(i64::from(q.undelivered))
            .bind(q.limit)
            .fetch_all(&self.db.pool)
            .await
            .map_err(|e| self.err(e))?;
        Ok(rows.iter().map(event_of).collect())
    }

    /// The newest undeliverable events (the fleet page), and how many there are.
    pub async fn undeliverable(&self, limit: i64) -> Result<(Vec<Event>, i64), EventError> {
        let sql = format!("SELECT {COLS} FROM events WHERE delivery = 'undeliverable' ORDER BY id DESC LIMIT $1");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(limit)
            .fetch_all(&self.db.pool)
            .await
            .map_err(|e| self.err(e))?;
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM events WHERE delivery = 'undeliverable'")
            .fetch_one(&self.db.pool)
            .await
            .map_err(|e| self.err(e))?;
        Ok((rows.iter().map(event_of).collect(), n))
    }

    /// `(delivery state, count)` for the metrics.
    pub async fn counts(&self) -> Result<Vec<(String, i64)>, EventError> {
        let rows = sqlx::query("SELECT delivery, COUNT(*) FROM events GROUP BY delivery")
            .fetch_all(&self.db.pool)
            .await
            .map_err(|e| self.err(e))?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    /// Takes the lease of up to `n` due events for `owner`, longest due first (the order of
    /// the `events_due` index: ordering by id would sort every pending row on each claim, and
    /// delivery order is not promised anyway), in one conditional
    /// UPDATE: the conditions are on the updated rows themselves, so of two replicas racing
    /// for a row (PostgreSQL re-checks them after the row lock) exactly one gets it.
    pub async fn claim(&self, owner: &str, n: i64, now: i64, lease_ms: i64) -> Result<Vec<Event>, EventError> {
        // A read first: an idle worker's look must not take SQLite's write lock (an UPDATE
        // takes it even when no row matches).
        let due = sqlx::query(
            "SELECT 1 FROM events WHERE delivery = 'pending' AND next_at <= $1 AND lease_until < $1 LIMIT 1",
        )
        .bind(now)
        .fetch_optional(&self.db.pool)
        .await
        .map_err(|e| self.err(e))?;
        if due.is_none() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "UPDATE events SET lease_owner = $1, lease_until = $2 \
             WHERE id IN (SELECT id FROM events WHERE delivery = 'pending' AND next_at <= $3 AND lease_until < $3 \
                          ORDER BY next_at LIMIT $4) \
             AND delivery = 'pending' AND next_at <= $3 AND lease_until < $3 \
             RETURNING {COLS}"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(owner)
            .bind(now + lease_ms)
            .bind(now)
            .bind(n)
            .fetch_all(&self.db.pool)
            .await
            .map_err(|e| self.err(e))?;
        let mut events: Vec<Event> = rows.iter().map(event_of).collect();
        events.sort_by_key(|e| e.id);
        Ok(events)
    }

    /// One statement that moves an event this owner holds; false when the lease was lost.
    async fn settle(
        &self,
        sql: &'static str,
        id: i64,
        owner: &str,
        a: i64,
        b: Option<&str>,
    ) -> Result<bool, EventError> {
        let r = sqlx::query(sql)
            .bind(a)
            .bind(b)
            .bind(id)
            .bind(owner)
            .execute(&self.db.pool)
            .await
            .map_err(|e| self.err(e))?;
        Ok(r.rows_affected() == 1)
    }

    /// A 2xx answer: delivered.
    pub async fn delivered(&self, id: i64, owner: &str, now: i64) -> Result<bool, EventError> {
        self.settle(
            "UPDATE events SET delivery = 'delivered', delivered_at = $1, attempts = attempts + 1, last_error = $2, \
             lease_owner = NULL, lease_until = 0 WHERE id = $3 AND lease_owner = $4 AND delivery = 'pending'",
            id,
            owner,
            now,
            None,
        )
        .await
    }

    /// 2xx answers, acknowledged in one statement (ids are this feed's integers, written into
    /// the SQL as such): how many were still this owner's.
    pub async fn delivered_many(&self, ids: &[i64], owner: &str, now: i64) -> Result<u64, EventError> {
        if ids.is_empty() {
            return Ok(0);
        }
        let list = ids.iter().map(i64::to_string).collect::<Vec<_>>().join(", ");
        let sql = format!(
            "UPDATE events SET delivery = 'delivered', delivered_at = $1, attempts = attempts + 1, last_error = NULL, \
             lease_owner = NULL, lease_until = 0 WHERE lease_owner = $2 AND delivery = 'pending' AND id IN ({list})"
        );
        let r = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(now)
            .bind(owner)
            .execute(&self.db.pool)
            .await
            .map_err(|e| self.err(e))?;
        Ok(r.rows_affected())
    }

    /// A failed attempt: tried again at `next_at`.
    pub async fn retry_at(&self, id: i64, owner: &str, next_at: i64, error: &str) -> Result<bool, EventError> {
        self.settle(
            "UPDATE events SET next_at = $1, last_error = $2, attempts = attempts + 1, lease_owner = NULL, \
             lease_until = 0 WHERE id = $3 AND lease_owner = $4 AND delivery = 'pending'",
            id,
            owner,
            next_at,
            Some(error),
        )
        .await
    }

    /// The last attempt failed after the retry window: undeliverable.
    pub async fn give_up(&self, id: i64, owner: &str, error: &str) -> Result<bool, EventError> {
        self.settle(
            "UPDATE events SET delivery = 'undeliverable', next_at = $1, last_error = $2, attempts = attempts + 1, \
             lease_owner = NULL, lease_until = 0 WHERE id = $3 AND lease_owner = $4 AND delivery = 'pending'",
            id,
            owner,
            0,
            Some(error),
        )
        .await
    }

    /// Not in `[webhooks] events`: never sent.
    pub async fn skip(&self, id: i64, owner: &str) -> Result<bool, EventError> {
        self.settle(
            "UPDATE events SET delivery = 'skipped', next_at = $1, last_error = $2, lease_owner = NULL, \
             lease_until = 0 WHERE id = $3 AND lease_owner = $4 AND delivery = 'pending'",
            id,
            owner,
            0,
            None,
        )
        .await
    }

    /// At a clean stop: this owner's leases back, so the next start or another replica need
    /// not wait for them to expire.
    pub async fn release(&self, owner: &str) -> Result<(), EventError> {
        sqlx::query("UPDATE events SET lease_owner = NULL, lease_until = 0 WHERE lease_owner = $1")
            .bind(owner)
            .execute(&self.db.pool)
            .await
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Leases left by a process that is gone (SQLite has one process: all of them).
    pub async fn release_all(&self) -> Result<(), EventError> {
        sqlx::query("UPDATE events SET lease_owner = NULL, lease_until = 0 WHERE lease_until > 0")
            .execute(&self.db.pool)
            .await
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Deletes events older than `before` (ms), at most `batch` at a time: how many went.
    pub async fn purge(&self, before: i64, batch: i64) -> Result<u64, EventError> {
        let r = sqlx::query(
            "DELETE FROM events WHERE id IN (SELECT id FROM events WHERE created_at < $1 ORDER BY id LIMIT $2)",
        )
        .bind(before)
        .bind(batch)
        .execute(&self.db.pool)
        .await
        .map_err(|e| self.err(e))?;
        Ok(r.rows_affected())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_has_a_name_that_parses_back() {
        for t in EventType::ALL {
            assert_eq!(EventType::parse(t.name()), Some(t));
        }
        assert_eq!(EventType::parse("order.shipped"), None);
        assert!(EventType::names().starts_with("order.licensed, order.done"));
    }

    #[test]
    fn an_activation_code_in_data_is_masked() {
        let mut v = serde_json::json!({"order": "o-1", "why": ["install A00000-K6QK03-KSG046-H6BK67-1GE201 failed"]});
        scrub(&mut v);
        let s = v.to_string();
        assert!(!s.contains("K6QK03-KSG046-H6BK67"), "{s}");
        assert!(s.contains("o-1"));
    }
}
