//! What every request handler shares: the store, the config, the counters, the batched
//! last-seen times and the shutdown signal.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use crate::config::Config;
use crate::fleet::store::Store;
use crate::metrics::Metrics;

#[derive(Clone)]
pub struct App {
    pub store: Store,
    pub config: Arc<Config>,
    pub metrics: Arc<Metrics>,
    /// host → last poll time (ms); flushed in one transaction every few seconds.
    pub seen: Arc<Mutex<HashMap<String, i64>>>,
    /// Turns true when the server stops: held polls answer at once.
    pub shutdown: watch::Receiver<bool>,
    /// The admin token for `admin_listen`, read at start.
    pub admin_token: Option<Arc<str>>,
    /// Orders and their worker (None only where orders are not served).
    pub orders: Option<Arc<crate::commerce::orders::Orders>>,
    /// Licenses, their operations' workers and reconcile (None where not served).
    pub licenses: Option<Arc<crate::commerce::licenses::Licenses>>,
    /// The event feed and its webhooks (None only where they are not served).
    pub webhooks: Option<Arc<crate::commerce::webhooks::Webhooks>>,
}

impl App {
    pub fn saw(&self, host: &str) {
        let now = self.store.now();
        self.seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(host.to_string(), now);
    }

    /// Writes the batched last-seen times (every few seconds and at shutdown).
    pub async fn flush_seen(&self) {
        let batch: Vec<(String, i64)> = {
            let mut m = self.seen.lock().unwrap_or_else(|e| e.into_inner());
            m.drain().collect()
        };
        if let Err(e) = self.store.flush_last_seen(&batch).await {
            tracing::warn!("cannot record when {} hosts were last seen: {e}", batch.len());
        }
    }
}
