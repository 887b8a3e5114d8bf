//! Signed wake pushes (contract section 4): `POST {push_url}/v1/wake` to a host when a change
//! concerns it. Best effort: at most one in flight per host (a change during it queues one
//! more), at most 64 at once, 3 s each, one retry; the poll remains the guarantee.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use plesk_reseller_protocol as proto;
use tokio::sync::{mpsc, Semaphore};

use crate::fleet::store::Store;
use crate::metrics::Metrics;

const IN_FLIGHT: usize = 64;
const TIMEOUT: Duration = Duration::from_secs(3);

/// The bounded queue of hosts to wake; a full queue drops the wake.
pub fn channel() -> (mpsc::Sender<String>, mpsc::Receiver<String>) {
    mpsc::channel(4096)
}

/// host → another push wanted while one is in flight.
type Busy = Arc<Mutex<HashMap<String, bool>>>;

pub async fn run(store: Store, metrics: Arc<Metrics>, mut rx: mpsc::Receiver<String>) {
    let client = match reqwest::Client::builder()
        .timeout(TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("wake pushes are off: cannot build an HTTP client: {e}");
            return;
        }
    };
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    let busy: Busy = Arc::default();
    while let Some(host) = rx.recv().await {
        {
            let mut b = busy.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(again) = b.get_mut(&host) {
                *again = true;
                continue;
            }
            b.insert(host.clone(), false);
        }
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let (store, metrics, client, busy) = (store.clone(), metrics.clone(), client.clone(), busy.clone());
        tokio::spawn(async move {
            let _permit = permit;
            loop {
                push_host(&store, &metrics, &client, &host).await;
                let mut b = busy.lock().unwrap_or_else(|e| e.into_inner());
                match b.get_mut(&host) {
                    Some(again) if *again => *again = false,
                    _ => {
                        b.remove(&host);
                        return;
                    }
                }
            }
        });
    }
}

async fn push_host(store: &Store, metrics: &Metrics, client: &reqwest::Client, host: &str) {
    let Ok(h) = store.host(host).await else { return };
    let Some(url) = h.push_url.filter(|u| !u.is_empty()) else {
        return;
    };
    let url = format!("{}/v1/wake", url.trim_end_matches('/'));
    let body = serde_json::json!({ "host": host }).to_string();
    for attempt in 0..2 {
        let t = (store.now() / 1000).max(0) as u64;
        let sig = proto::wake::sign(h.push_secret.as_bytes(), t, body.as_bytes());
        let sent = client
            .post(&url)
            .header(proto::SIGNATURE_HEADER, sig)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await;
        match sent {
            Ok(r) if r.status().is_success() => {
                metrics.wakes_sent.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Ok(r) => tracing::debug!("wake push to {host} at {url} answered {}", r.status()),
            Err(e) => tracing::debug!("wake push to {host} at {url} failed: {e}"),
        }
        metrics.wakes_failed.fetch_add(1, Ordering::Relaxed);
        if attempt == 0 {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
    tracing::info!("wake push to {host} at {url} failed twice; the host's poll will pick the change up");
}
