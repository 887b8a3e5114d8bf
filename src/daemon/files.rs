//! File events: panel.ini drift is repaired through the shared panel keeper (never waiting
//! for a job); a changed spool `instructions.json` wakes the poller.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::config::{CentralUrl, Config};
use crate::engine::Reconcile;
use crate::watch::{self as filewatch, FileEvent};

use super::shared::Shared;

/// Quiet time after a file event before panel.ini is read, so a writer's truncate-then-write
/// is not mistaken for the final content.
const SETTLE: Duration = Duration::from_millis(30);

/// The files whose changes matter: panel.ini, and the spool's instructions.
pub(super) fn watch_targets(cfg: &Config) -> Vec<PathBuf> {
    let mut v = vec![cfg.panel.ini_path.clone()];
    if let CentralUrl::Spool(dir) = &cfg.central.url {
        v.push(dir.join("instructions.json"));
    }
    v
}

pub(super) fn start_watch(files: &[PathBuf], tx: mpsc::UnboundedSender<FileEvent>) -> Option<filewatch::FileWatch> {
    match filewatch::watch_events(files.to_vec(), tx) {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::error!("{e}; changes will be noticed at the next poll only");
            None
        }
    }
}

pub(super) async fn file_events(
    shared: Arc<Shared>,
    mut rx: mpsc::UnboundedReceiver<FileEvent>,
    stop: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(stop);
    loop {
        let first = tokio::select! {
            _ = &mut stop => return,
            e = rx.recv() => match e { Some(e) => e, None => return },
        };
        let mut events = vec![first];
        while let Ok(e) = rx.try_recv() {
            events.push(e);
        }
        // A file renamed into place or closed by its writer is read at once; after a bare
        // truncate or partial write, let the writer finish (a close, or SETTLE of quiet).
        for _ in 0..20 {
            if last_events_complete(&events) {
                break;
            }
            match tokio::time::timeout(SETTLE, rx.recv()).await {
                Err(_) => break,
                Ok(None) => return,
                Ok(Some(e)) => {
                    events.push(e);
                    while let Ok(e) = rx.try_recv() {
                        events.push(e);
                    }
                }
            }
        }
        let panel_path = shared.panel.lock().unwrap().path().clone();
        let mut publish = false;
        for p in dedup(events.into_iter().map(|e| e.path).collect()) {
            if p == panel_path || std::fs::canonicalize(&panel_path).is_ok_and(|t| t == p) {
                let r = shared.panel.lock().unwrap().reconcile(shared.clock.now());
                publish |= !matches!(r, Reconcile::InSync);
            } else {
                shared.wake.notify_one();
            }
        }
        if publish {
            shared.publish();
        }
        // The daemon runs on one thread and a reconcile blocks it (file I/O, fsync): under a
        // stream of file events, give the control socket, the poller and the watchdog a turn
        // after every batch instead of only when tokio's budget runs out.
        tokio::task::yield_now().await;
    }
}

/// True when, for every file touched, its latest event left it complete.
fn last_events_complete(events: &[FileEvent]) -> bool {
    events
        .iter()
        .enumerate()
        .all(|(i, e)| e.complete || events[i + 1..].iter().any(|l| l.path == e.path && l.complete))
}

fn dedup(mut v: Vec<PathBuf>) -> Vec<PathBuf> {
    v.sort();
    v.dedup();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(path: &str, complete: bool) -> FileEvent {
        FileEvent {
            path: PathBuf::from(path),
            complete,
        }
    }

    #[test]
    fn a_file_is_read_at_once_only_when_its_last_event_completes_it() {
        assert!(last_events_complete(&[ev("/a", true)]));
        assert!(!last_events_complete(&[ev("/a", false)]));
        assert!(last_events_complete(&[
            ev("/a", false),
            ev("/a", false),
            ev("/a", true)
        ]));
        assert!(!last_events_complete(&[ev("/a", true), ev("/a", false)]));
        assert!(!last_events_complete(&[ev("/a", true), ev("/b", false)]));
        assert!(last_events_complete(&[ev("/b", false), ev("/a", true), ev("/b", true)]));
    }
}
