//! The in-memory cache of upstream answers: one slot per path and query, one upstream fetch
//! at a time per slot (requests arriving meanwhile share its outcome), stale-if-error, and a
//! per-answer cache of the filtered body, its ETag and its gzip form.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use sha2::Digest;

use super::filter::{Categories, Packages};
use super::upstream::Answer;
use super::ProxyError;

/// Most paths kept; past it, unused entries beyond their stale window go first, then the oldest.
const MAX_SLOTS: usize = 1024;

/// What was learnt from an upstream answer.
#[derive(Debug)]
pub enum Parsed {
    /// Passed through as is.
    Raw,
    Packages(Packages),
    Categories(Categories),
}

/// An upstream answer as fetched at `at`.
#[derive(Debug)]
pub struct Fetched {
    /// Unique per fetch; part of the render key of what depends on it.
    pub id: u64,
    pub at: Instant,
    pub answer: Answer,
    pub parsed: Parsed,
    rendered: Mutex<Option<Arc<Rendered>>>,
}

impl Fetched {
    pub fn new(answer: Answer, parsed: Parsed) -> Self {
        static IDS: AtomicU64 = AtomicU64::new(1);
        Fetched {
            id: IDS.fetch_add(1, Ordering::Relaxed),
            at: Instant::now(),
            answer,
            parsed,
            rendered: Mutex::new(None),
        }
    }

    /// The body to send for `key` (whatever the render depends on: allow-list generation,
    /// the packages answer's id), made by `make` once per key.
    pub fn rendered(&self, key: (u64, u64), make: impl FnOnce() -> (Bytes, usize)) -> Arc<Rendered> {
        let mut slot = self.rendered.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(r) = slot.as_ref().filter(|r| r.key == key) {
            return r.clone();
        }
        let (body, hidden) = make();
        // Same bytes, same ETag: an allow-list edit that changes nothing here keeps client caches valid.
        let r = match slot.as_ref().filter(|r| r.body == body) {
            Some(old) => Arc::new(Rendered {
                key,
                body: old.body.clone(),
                etag: old.etag.clone(),
                gzip_etag: old.gzip_etag.clone(),
                gzip: old.gzip.clone(),
                hidden,
            }),
            None => Arc::new(Rendered::new(key, body, hidden)),
        };
        *slot = Some(r.clone());
        r
    }
}

/// A body ready to send.
#[derive(Debug)]
pub struct Rendered {
    key: (u64, u64),
    pub body: Bytes,
    /// Quoted strong tag of the identity body; the gzip body's tag adds `-gz`.
    pub etag: String,
    pub gzip_etag: String,
    gzip: Arc<OnceLock<Bytes>>,
    /// Items removed from `body`.
    pub hidden: usize,
}

impl Rendered {
    pub fn new(key: (u64, u64), body: Bytes, hidden: usize) -> Self {
        let tag = hex::encode(&sha2::Sha256::digest(&body)[..12]);
        Rendered {
            key,
            etag: format!("\"{tag}\""),
            gzip_etag: format!("\"{tag}-gz\""),
            body,
            gzip: Arc::new(OnceLock::new()),
            hidden,
        }
    }

    /// The gzip form, compressed on first use only.
    pub fn gzip(&self) -> &Bytes {
        self.gzip.get_or_init(|| gzip(&self.body))
    }
}

pub fn gzip(body: &[u8]) -> Bytes {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::with_capacity(body.len() / 4), flate2::Compression::default());
    // Writing into a Vec cannot fail.
    let _ = enc.write_all(body);
    enc.finish().unwrap_or_default().into()
}

/// How a lookup ended.
pub enum Got {
    /// Fresh from the cache (`hit`) or just fetched; any status.
    Fresh { fetched: Arc<Fetched>, hit: bool },
    /// Upstream failed (`why`); this copy is within its stale-if-error window.
    Stale { fetched: Arc<Fetched>, why: ProxyError },
    /// Upstream failed and nothing usable is cached.
    Failed(ProxyError),
}

struct Attempt {
    finished: Instant,
    result: Result<Arc<Fetched>, ProxyError>,
}

#[derive(Default)]
struct Slot {
    entry: Mutex<Option<Arc<Fetched>>>,
    flight: tokio::sync::Mutex<Option<Attempt>>,
}

impl Slot {
    fn entry(&self) -> Option<Arc<Fetched>> {
        self.entry.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

pub struct Cache {
    ttl: Duration,
    stale: Duration,
    slots: Mutex<HashMap<String, Arc<Slot>>>,
}

impl Cache {
    pub fn new(ttl: Duration, stale_if_error: Duration) -> Self {
        Cache {
            ttl,
            stale: stale_if_error,
            slots: Mutex::new(HashMap::new()),
        }
    }

    /// True when `key` has a fresh answer now.
    pub fn is_fresh(&self, key: &str) -> bool {
        let slot = self.slots.lock().unwrap_or_else(|e| e.into_inner()).get(key).cloned();
        slot.and_then(|s| s.entry())
            .is_some_and(|f| self.fresh(&f, Instant::now()))
    }

    fn fresh(&self, f: &Fetched, now: Instant) -> bool {
        now.saturating_duration_since(f.at) < self.ttl
    }

    fn usable_stale(&self, f: &Fetched, now: Instant) -> bool {
        now.saturating_duration_since(f.at) < self.ttl + self.stale
    }

    /// Cached answers held (fresh or stale).
    pub fn entries(&self) -> usize {
        let slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots.values().filter(|s| s.entry().is_some()).count()
    }

    fn slot(&self, key: &str) -> Arc<Slot> {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = slots.get(key) {
            return s.clone();
        }
        if slots.len() >= MAX_SLOTS {
            let now = Instant::now();
            slots.retain(|_, s| Arc::strong_count(s) > 1 || s.entry().is_some_and(|f| self.usable_stale(&f, now)));
            if slots.len() >= MAX_SLOTS {
                let oldest = slots
                    .iter()
                    .filter(|(_, s)| Arc::strong_count(s) == 1)
                    .min_by_key(|(_, s)| s.entry().map(|f| f.at))
                    .map(|(k, _)| k.clone());
                if let Some(k) = oldest {
                    slots.remove(&k);
                }
            }
        }
        let s = Arc::new(Slot::default());
        slots.insert(key.to_string(), s.clone());
        s
    }

    /// The answer for `key`: cached while fresh, else fetched by `fetch` — once for all
    /// requests waiting meanwhile. `fetch` runs as its own task, so it completes (and fills
    /// the cache) even when the request that started it goes away. Only 200s are kept.
    pub async fn get<F, Fut>(&self, key: &str, fetch: F) -> Got
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Fetched, ProxyError>> + Send + 'static,
    {
        let slot = self.slot(key);
        let arrived = Instant::now();
        if let Some(f) = slot.entry().filter(|f| self.fresh(f, arrived)) {
            return Got::Fresh { fetched: f, hit: true };
        }
        let mut flight = slot.flight.lock().await;
        if let Some(a) = flight.as_ref().filter(|a| a.finished >= arrived) {
            let result = a.result.clone();
            drop(flight);
            return self.outcome(&slot, result);
        }
        if let Some(f) = slot.entry().filter(|f| self.fresh(f, Instant::now())) {
            return Got::Fresh { fetched: f, hit: true };
        }
        let task_slot = slot.clone();
        let fut = fetch();
        let task = tokio::spawn(async move {
            let result = fut.await.map(Arc::new);
            if let Ok(f) = &result {
                if f.answer.status == 200 {
                    *task_slot.entry.lock().unwrap_or_else(|e| e.into_inner()) = Some(f.clone());
                }
            }
            result
        });
        let result = match task.await {
            Ok(r) => r,
            Err(e) => Err(ProxyError::Upstream {
                url: key.to_string(),
                reason: format!("the fetch stopped ({e})"),
            }),
        };
        *flight = Some(Attempt {
            finished: Instant::now(),
            result: result.clone(),
        });
        drop(flight);
        self.outcome(&slot, result)
    }

    fn outcome(&self, slot: &Slot, result: Result<Arc<Fetched>, ProxyError>) -> Got {
        match result {
            Ok(f) => Got::Fresh { fetched: f, hit: false },
            Err(why) => match slot.entry().filter(|f| self.usable_stale(f, Instant::now())) {
                Some(f) => Got::Stale { fetched: f, why },
                None => Got::Failed(why),
            },
        }
    }
}
