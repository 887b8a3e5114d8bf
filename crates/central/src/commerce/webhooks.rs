//! Webhooks (contract section 11): every event of the feed POSTed to `[webhooks] url`,
//! signed per the Standard Webhooks specification, at least once.
//!
//! One delivery worker per replica. It takes due events from the outbox with a lease (one
//! conditional UPDATE: of two replicas exactly one gets each event), gives the connection
//! back, and POSTs each one in a task of its own, at most [`CONCURRENCY`] at once and each
//! bounded by [`TIMEOUT`], so a receiver that hangs delays only its own deliveries. The
//! outcome is written with another conditional UPDATE: a 2xx acknowledges; anything else is
//! tried again after 5 s doubling to 1 h, for 3 days after the event, then the event is
//! undeliverable. Every retry's state is in the database, none in memory: a restart or a
//! SIGKILL loses nothing (a lease left behind expires and the event is sent again, with the
//! same `webhook-id`), and a receiver that is down for days costs no memory.
//!
//! The worker is woken by [`crate::events::record`] in this process and, on PostgreSQL, by
//! the NOTIFY its commit sends to every replica (`fleet::replicas`); it also looks every
//! second, for retries that came due and for wakes that were missed.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use hmac::{KeyInit, Mac};
use tokio::sync::{mpsc, watch, Semaphore};

use crate::config::{Config, WebhooksConfig};
use crate::events::{Event, EventType, Feed};

/// Deliveries in flight per replica.
pub const CONCURRENCY: usize = 16;
/// The longest one delivery may take (connect, send, answer).
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// A lease outlives the delivery's timeout by far, so it never expires under a live POST
/// (which would let another replica send the same attempt).
const LEASE_MS: i64 = 60_000;
/// Backoff: 5 s doubling to 1 h ...
const BACKOFF_FIRST_MS: i64 = 5_000;
const BACKOFF_MAX_MS: i64 = 3_600_000;
/// ... for 3 days after the event, then undeliverable.
pub const RETRY_FOR_MS: i64 = 3 * 86_400_000;
/// Events are kept this long, delivered or not.
pub const KEEP_MS: i64 = 30 * 86_400_000;
/// How often an idle worker looks without being woken.
const POLL: Duration = Duration::from_secs(1);
/// After a wake that found nothing (the transaction that rang has not committed yet), the
/// worker looks again every HOT_POLL for HOT_FOR.
const HOT_POLL: Duration = Duration::from_millis(5);
const HOT_FOR: Duration = Duration::from_millis(500);
/// How often events older than [`KEEP_MS`] are deleted, and how many per statement.
const PURGE_EVERY: Duration = Duration::from_secs(3600);
const PURGE_BATCH: i64 = 5_000;
/// Acknowledgements written in one statement, at most this many (and queued at most ACK_QUEUE).
const ACK_BATCH: usize = 256;
const ACK_QUEUE: usize = 4096;

/// A webhook setting that cannot be used; names the file or value at fault.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("cannot use the webhook secret file {path} ([webhooks] secret_file): {reason}")]
    Secret { path: PathBuf, reason: String },
    #[error("[webhooks] events names {name:?}, which is no event type (the types: {known})")]
    UnknownEvent { name: String, known: String },
    #[error("cannot build the webhook client for {url}: {reason}")]
    Client { url: String, reason: String },
}

/// The Standard Webhooks signature: `v1,` + base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}")).
pub fn sign(key: &[u8], id: &str, timestamp: i64, body: &str) -> String {
    let mut mac = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    let sig = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    format!("v1,{sig}")
}

/// The key in a `whsec_<base64>` secret (the prefix is optional, as in the spec's libraries).
pub fn parse_secret(text: &str) -> Result<Vec<u8>, String> {
    let t = text.trim();
    let b64 = t.strip_prefix("whsec_").unwrap_or(t);
    let key = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|_| "it is not whsec_ followed by base64".to_string())?;
    if key.len() < 16 {
        return Err(format!("its key is {} bytes; at least 16 are needed", key.len()));
    }
    Ok(key)
}

/// What identifies a version of the secret file: a change re-reads it.
type Stamp = (u64, u64, i64, i64);

fn stamp(meta: &std::fs::Metadata) -> Stamp {
    use std::os::unix::fs::MetadataExt;
    (meta.ino(), meta.len(), meta.mtime(), meta.mtime_nsec())
}

/// Reads the secret file: root-only (no group or other bits), `whsec_<base64>`.
pub fn read_secret(path: &Path) -> Result<(Stamp, Vec<u8>), WebhookError> {
    use std::os::unix::fs::PermissionsExt;
    let err = |reason: String| WebhookError::Secret {
        path: path.into(),
        reason,
    };
    let meta = std::fs::metadata(path).map_err(|e| err(e.to_string()))?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(err("group or others can read it; chmod 600 it".into()));
    }
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    let key = parse_secret(&text).map_err(err)?;
    Ok((stamp(&meta), key))
}

/// The event types `[webhooks] events` lets through (None: all).
pub fn filter(cfg: &WebhooksConfig) -> Result<Option<Vec<EventType>>, WebhookError> {
    let Some(names) = &cfg.events else { return Ok(None) };
    names
        .iter()
        .map(|n| {
            EventType::parse(n).ok_or_else(|| WebhookError::UnknownEvent {
                name: n.clone(),
                known: EventType::names(),
            })
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// `check`: the secret file and the event list are usable (the URL was checked with the
/// config).
pub fn check(cfg: &WebhooksConfig) -> Result<(), WebhookError> {
    filter(cfg)?;
    if let (Some(_), Some(path)) = (&cfg.url, &cfg.secret_file) {
        read_secret(path)?;
    }
    Ok(())
}

/// The delay before try number `attempts + 1`, after `attempts` failures (1 or more).
pub fn backoff_ms(attempts: i64) -> i64 {
    let n = (attempts - 1).clamp(0, 20);
    (BACKOFF_FIRST_MS << n).min(BACKOFF_MAX_MS)
}

/// After a failed attempt (the `attempts`-th): when to try again, or None (undeliverable).
pub fn next_try(created_at: i64, now: i64, attempts: i64) -> Option<i64> {
    let at = now + backoff_ms(attempts);
    (at <= created_at + RETRY_FOR_MS).then_some(at)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Counters for `/metrics`.
#[derive(Default)]
pub struct Counters {
    pub delivered: AtomicU64,
    pub failed_attempts: AtomicU64,
    pub undeliverable: AtomicU64,
}

/// The feed's upkeep and, with a URL, the delivery worker.
pub struct Webhooks {
    pub feed: Feed,
    url: Option<String>,
    secret_file: Option<PathBuf>,
    filter: Option<Vec<EventType>>,
    http: reqwest::Client,
    secret: Mutex<Option<(Stamp, Arc<Vec<u8>>)>>,
    pub counters: Counters,
    /// This process's name in `lease_owner`.
    me: String,
    /// 2xx answers on their way to the database: written in batches by one task (a backlog
    /// costs one UPDATE per batch, not per event; a crash before the write only sends again).
    acks: mpsc::Sender<i64>,
    acks_rx: Mutex<Option<mpsc::Receiver<i64>>>,
}

impl Webhooks {
    /// Refuses an unusable secret file or event list at start rather than at the first event.
    pub fn new(feed: Feed, config: &Config) -> Result<Arc<Webhooks>, WebhookError> {
        let cfg = &config.webhooks;
        let filter = filter(cfg)?;
        let mut secret = None;
        if let (Some(_), Some(path)) = (&cfg.url, &cfg.secret_file) {
            let (st, key) = read_secret(path)?;
            secret = Some((st, Arc::new(key)));
        }
        let http = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .connect_timeout(Duration::from_secs(5))
            // A redirect is not an acknowledgement: the receiver must answer 2xx itself.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("plesk-reseller-central/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| WebhookError::Client {
                url: cfg.url.clone().unwrap_or_default(),
                reason: e.to_string(),
            })?;
        let (acks, acks_rx) = mpsc::channel(ACK_QUEUE);
        Ok(Arc::new(Webhooks {
            acks,
            acks_rx: Mutex::new(Some(acks_rx)),
            feed,
            url: cfg.url.clone(),
            secret_file: cfg.secret_file.clone(),
            filter,
            http,
            secret: Mutex::new(secret),
            counters: Counters::default(),
            me: format!("{}-{:016x}", std::process::id(), fastrand::u64(..)),
        }))
    }

    /// The key, re-read when the file changed; a file that became unusable keeps the last
    /// good key (and says so) rather than stopping every delivery.
    fn key(&self) -> Option<Arc<Vec<u8>>> {
        let path = self.secret_file.as_ref()?;
        let mut cur = self.secret.lock().unwrap_or_else(|e| e.into_inner());
        let changed = match std::fs::metadata(path) {
            Ok(m) => cur.as_ref().is_none_or(|(st, _)| *st != stamp(&m)),
            Err(_) => cur.is_none(),
        };
        if changed {
            match read_secret(path) {
                Ok((st, key)) => {
                    if cur.is_some() {
                        tracing::info!(
                            "the webhook secret file {} changed; using the new secret",
                            path.display()
                        );
                    }
                    *cur = Some((st, Arc::new(key)));
                }
                Err(e) => tracing::warn!("{e}; keeping the secret read before"),
            }
        }
        cur.as_ref().map(|(_, k)| k.clone())
    }

    /// Starts the purge of old events and, with a URL, the delivery worker.
    pub async fn start(self: &Arc<Self>, stop: watch::Receiver<bool>) -> Vec<tokio::task::JoinHandle<()>> {
        let mut tasks = vec![tokio::spawn(self.clone().purge_loop(stop.clone()))];
        if self.url.is_some() {
            if self.feed.db.dialect == crate::db::Dialect::Sqlite {
                // One process owns an SQLite file: a lease left by a killed predecessor is stale.
                if let Err(e) = self.feed.release_all().await {
                    tracing::warn!("cannot clear the webhooks' old leases: {e}");
                }
            }
            if let Some(rx) = self.acks_rx.lock().unwrap_or_else(|e| e.into_inner()).take() {
                tasks.push(tokio::spawn(self.clone().acknowledger(rx, stop.clone())));
            }
            tasks.push(tokio::spawn(self.clone().worker(stop)));
        }
        tasks
    }

    /// At a clean stop: this replica's leases back.
    pub async fn release(&self) {
        let _ = tokio::time::timeout(Duration::from_secs(1), self.feed.release(&self.me)).await;
    }

    async fn purge_loop(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        loop {
            loop {
                match self.feed.purge(now_ms() - KEEP_MS, PURGE_BATCH).await {
                    Ok(n) if n as i64 == PURGE_BATCH => continue,
                    Ok(_) => break,
                    Err(e) => {
                        tracing::warn!("cannot delete events older than 30 days: {e}");
                        break;
                    }
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(PURGE_EVERY) => {}
                _ = stop.changed() => return,
            }
        }
    }

    /// Writes 2xx answers in batches; at a stop, what is queued is written before it returns.
    async fn acknowledger(self: Arc<Self>, mut rx: mpsc::Receiver<i64>, mut stop: watch::Receiver<bool>) {
        let mut batch = Vec::with_capacity(ACK_BATCH);
        loop {
            let stopping = tokio::select! {
                n = rx.recv_many(&mut batch, ACK_BATCH) => n == 0,
                _ = stop.changed() => true,
            };
            if stopping {
                while batch.len() < ACK_BATCH * 4 {
                    match rx.try_recv() {
                        Ok(id) => batch.push(id),
                        Err(_) => break,
                    }
                }
            }
            if let Err(e) = self.feed.delivered_many(&batch, &self.me, now_ms()).await {
                tracing::warn!(
                    "cannot record {} delivered webhooks: {e}; they are sent again",
                    batch.len()
                );
            }
            batch.clear();
            if stopping {
                return;
            }
        }
    }

    async fn worker(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let slots = Arc::new(Semaphore::new(CONCURRENCY));
        let wake = crate::events::wakeup();
        let mut hot_until = tokio::time::Instant::now();
        loop {
            if *stop.borrow() {
                return;
            }
            // A free slot first: with every slot busy, claiming more would only age leases.
            let first = tokio::select! {
                p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
                _ = stop.changed() => return,
            };
            let notified = wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            // A whole batch per claim, dispatched as slots free up: one claim per event would
            // double the database's work on a backlog. The last of a batch waits at most for
            // the batch before it (CONCURRENCY x TIMEOUT / CONCURRENCY), far within the lease.
            let batch = match self.feed.claim(&self.me, CONCURRENCY as i64, now_ms(), LEASE_MS).await {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!("cannot look for webhooks to deliver: {e}");
                    Vec::new()
                }
            };
            if batch.is_empty() {
                drop(first);
                let idle = if tokio::time::Instant::now() < hot_until {
                    HOT_POLL
                } else {
                    POLL
                };
                tokio::select! {
                    _ = notified => hot_until = tokio::time::Instant::now() + HOT_FOR,
                    _ = tokio::time::sleep(idle) => {}
                    _ = stop.changed() => return,
                }
                continue;
            }
            let mut first = Some(first);
            for ev in batch {
                let permit = match first.take() {
                    Some(p) => p,
                    None => tokio::select! {
                        p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
                        // The rest of the batch stays leased; `release` gives it back.
                        _ = stop.changed() => return,
                    },
                };
                let me = self.clone();
                tokio::spawn(async move {
                    me.deliver(ev).await;
                    drop(permit);
                });
            }
        }
    }

    /// One attempt of one event, and its outcome written.
    async fn deliver(&self, ev: Event) {
        let kind = EventType::parse(&ev.kind);
        if let (Some(only), Some(k)) = (&self.filter, kind) {
            if !only.contains(&k) {
                if let Err(e) = self.feed.skip(ev.id, &self.me).await {
                    tracing::warn!("{e}");
                }
                return;
            }
        }
        let outcome = self.post(&ev).await;
        let now = now_ms();
        let attempts = ev.delivery.attempts + 1;
        let written = match outcome {
            Ok(()) => {
                self.counters.delivered.fetch_add(1, Ordering::Relaxed);
                if self.acks.send(ev.id).await.is_ok() {
                    return;
                }
                // The acknowledger stopped (the server is stopping): write it here.
                self.feed.delivered(ev.id, &self.me, now).await
            }
            Err(why) => {
                self.counters.failed_attempts.fetch_add(1, Ordering::Relaxed);
                match next_try(ev.timestamp, now, attempts) {
                    Some(at) => {
                        tracing::warn!(
                            "webhook for event {} ({}) failed: {why}; trying again in {} s",
                            ev.id,
                            ev.kind,
                            (at - now) / 1000
                        );
                        self.feed.retry_at(ev.id, &self.me, at, &why).await
                    }
                    None => {
                        self.counters.undeliverable.fetch_add(1, Ordering::Relaxed);
                        tracing::error!(
                            "webhook for event {} ({}) is undeliverable after {attempts} attempts over 3 days: {why}",
                            ev.id,
                            ev.kind
                        );
                        self.feed.give_up(ev.id, &self.me, &why).await
                    }
                }
            }
        };
        match written {
            Ok(true) => {}
            Ok(false) => tracing::warn!("event {}: its lease was lost; another worker has it", ev.id),
            Err(e) => tracing::warn!("event {}: {e}; it is delivered again when its lease expires", ev.id),
        }
    }

    /// The POST: Ok on a 2xx, else one line saying what went wrong.
    async fn post(&self, ev: &Event) -> Result<(), String> {
        let Some(url) = &self.url else {
            return Err("no [webhooks] url".into());
        };
        let Some(key) = self.key() else {
            return Err("no usable webhook secret".into());
        };
        let body = ev.body();
        let id = ev.id.to_string();
        let ts = now_ms() / 1000;
        let sig = sign(&key, &id, ts, &body);
        let sent = self
            .http
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("webhook-id", &id)
            .header("webhook-timestamp", ts.to_string())
            .header("webhook-signature", sig)
            .body(body)
            .send()
            .await;
        match sent {
            Ok(r) if r.status().is_success() => Ok(()),
            Ok(r) => Err(format!("{url} answered {}", r.status())),
            Err(e) if e.is_timeout() => Err(format!("{url} did not answer within {} s", TIMEOUT.as_secs())),
            Err(e) => Err(format!("cannot POST to {url}: {e}")),
        }
    }

    /// Prometheus lines: events by delivery state, and the worker's counters.
    pub async fn render_metrics(&self) -> String {
        let counts = self.feed.counts().await.unwrap_or_default();
        let n = |s: &str| counts.iter().find(|(k, _)| k == s).map_or(0, |(_, n)| *n);
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        format!(
            "# HELP central_webhooks_undeliverable Events whose webhook was given up after 3 days.\n\
             # TYPE central_webhooks_undeliverable gauge\ncentral_webhooks_undeliverable {}\n\
             # HELP central_webhooks_pending Events whose webhook is not delivered yet.\n\
             # TYPE central_webhooks_pending gauge\ncentral_webhooks_pending {}\n\
             # HELP central_webhooks_delivered_total Webhooks a receiver acknowledged (this replica).\n\
             # TYPE central_webhooks_delivered_total counter\ncentral_webhooks_delivered_total {}\n\
             # HELP central_webhooks_failed_attempts_total Webhook attempts that failed (this replica).\n\
             # TYPE central_webhooks_failed_attempts_total counter\ncentral_webhooks_failed_attempts_total {}\n",
            n("undeliverable"),
            if self.url.is_some() { n("pending") } else { 0 },
            g(&self.counters.delivered),
            g(&self.counters.failed_attempts),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The test vector published with the Standard Webhooks reference libraries
    /// (standard-webhooks/standard-webhooks, libraries/rust/src/lib.rs, `test_sign`).
    #[test]
    fn the_signature_equals_the_specifications_test_vector() {
        let key = parse_secret("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD").unwrap();
        assert_eq!(
            sign(
                &key,
                "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
                1649367553,
                r#"{"email":"test@example.com","username":"test_user"}"#
            ),
            "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw="
        );
    }

    #[test]
    fn a_secret_is_whsec_and_base64_of_enough_bytes() {
        assert!(parse_secret("whsec_not base64!").is_err());
        assert!(parse_secret("whsec_c2hvcnQ=").unwrap_err().contains("at least 16"));
        assert_eq!(
            parse_secret("whsec_MDEyMzQ1Njc4OWFiY2RlZg==\n").unwrap(),
            b"0123456789abcdef"
        );
    }

    #[test]
    fn retries_back_off_from_5_s_to_1_h_for_3_days_then_give_up() {
        assert_eq!(backoff_ms(1), 5_000);
        assert_eq!(backoff_ms(2), 10_000);
        assert_eq!(backoff_ms(4), 40_000);
        assert_eq!(backoff_ms(11), 3_600_000);
        assert_eq!(backoff_ms(500), 3_600_000);
        let t0 = 1_000_000;
        assert_eq!(next_try(t0, t0, 1), Some(t0 + 5_000));
        // Replaying the schedule: about 80 attempts fit in the 3 days, then none.
        let (mut now, mut attempts) = (t0, 0);
        while let Some(at) = next_try(t0, now, attempts + 1) {
            attempts += 1;
            now = at;
        }
        assert!(now <= t0 + RETRY_FOR_MS && now + 3_600_000 > t0 + RETRY_FOR_MS);
        assert!((70..=90).contains(&attempts), "{attempts}");
    }

    #[test]
    fn the_event_list_names_known_types_only() {
        let mut c = WebhooksConfig::default();
        assert_eq!(filter(&c).unwrap(), None);
        c.events = Some(vec!["order.done".into(), "host.back".into()]);
        assert_eq!(
            filter(&c).unwrap(),
            Some(vec![EventType::OrderDone, EventType::HostBack])
        );
        c.events = Some(vec!["order.shipped".into()]);
        let e = filter(&c).unwrap_err().to_string();
        assert!(e.contains("order.shipped") && e.contains("order.licensed"), "{e}");
    }
}
