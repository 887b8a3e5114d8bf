//! Held polls' wake-up: an in-process map host → `watch` of a change counter. A poll
//! subscribes BEFORE it reads the database, so a commit landing in between still wakes it.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::watch;

#[derive(Default)]
pub struct Waiters {
    map: Mutex<HashMap<String, watch::Sender<u64>>>,
}

impl Waiters {
    pub fn subscribe(&self, host: &str) -> watch::Receiver<u64> {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(host.to_string())
            .or_insert_with(|| watch::channel(0).0)
            .subscribe()
    }

    /// Wakes every poll held for `host`; forgets the entry when nobody listens.
    pub fn notify(&self, host: &str) {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(tx) = map.get(host) {
            if tx.receiver_count() == 0 {
                map.remove(host);
            } else {
                tx.send_modify(|n| *n += 1);
            }
        }
    }

    /// Wakes every held poll (e.g. when a notification channel was lost).
    pub fn notify_all(&self) {
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        for tx in map.values() {
            tx.send_modify(|n| *n += 1);
        }
    }

    /// Drops entries nobody listens to (called by the periodic flusher).
    pub fn sweep(&self) {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, tx| tx.receiver_count() > 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_notify_after_subscribe_wakes_and_others_stay_asleep() {
        let w = Waiters::default();
        let mut a = w.subscribe("a");
        let b = w.subscribe("b");
        w.notify("a");
        assert!(a.has_changed().unwrap());
        a.changed().await.unwrap();
        assert!(!b.has_changed().unwrap());
        drop(b);
        w.notify("b");
        w.sweep();
        assert_eq!(w.map.lock().unwrap().len(), 1);
    }
}
