//! The poller: decides when a pass runs (schedule, wake-ups, `sync` requests) and makes the
//! poll outside the engine's lock, so a wake can drop a held long-poll; the engine runs the
//! rest of the pass.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use super::schedule::{self, Polled, RateLimit};
use crate::central::{CentralError, PollOutcome};
use crate::engine::PassOutcome;

use super::shared::Shared;
use super::shutdown::StopSignal;

/// Polls allowed back to back before the one-per-second ceiling bites.
const POLL_BURST: u32 = 3;

/// The poller: the only place passes run.
pub(super) async fn poll_loop(
    shared: Arc<Shared>,
    mut sync_rx: mpsc::UnboundedReceiver<oneshot::Sender<PassOutcome>>,
    mut stop: StopSignal,
) {
    {
        shared.engine.lock().await.refresh_plesk_facts().await;
    }
    let mut rate = RateLimit::new(POLL_BURST, Instant::now());
    let mut next_due = Instant::now();
    let mut waiting_syncs: Vec<oneshot::Sender<PassOutcome>> = Vec::new();
    'outer: loop {
        if waiting_syncs.is_empty() {
            tokio::select! {
                _ = stop.stopped() => break,
                _ = tokio::time::sleep_until(next_due.into()) => {}
                _ = shared.wake.notified() => {}
                Some(tx) = sync_rx.recv() => waiting_syncs.push(tx),
            }
        }
        let delay = rate.take(Instant::now());
        if !delay.is_zero() {
            tokio::select! {
                _ = stop.stopped() => break,
                _ = tokio::time::sleep(delay) => {}
            }
        }

        let (transport, long_poll, poll_interval, before) = {
            let e = shared.engine.lock().await;
            let c = &e.config().central;
            (e.transport(), c.long_poll, c.poll_interval, e.instructions().clone())
        };
        let wait = match &transport {
            Some(t) if t.kind() == "http" && waiting_syncs.is_empty() => Some(long_poll),
            _ => None,
        };
        let req = shared.engine.lock().await.poll_request(wait);
        let sent_etag = req.etag.clone();
        let t0 = Instant::now();
        let polled: Option<Result<PollOutcome, CentralError>> = match &transport {
            None => None,
            Some(t) => {
                let poll = t.poll(req);
                tokio::pin!(poll);
                tokio::select! {
                    r = &mut poll => Some(r),
                    _ = stop.stopped() => break 'outer,
                    // A wake-up or a `sync` does not wait for a held poll: start a new one.
                    _ = shared.wake.notified() => { next_due = Instant::now(); continue 'outer; }
                    Some(tx) = sync_rx.recv() => { waiting_syncs.push(tx); next_due = Instant::now(); continue 'outer; }
                }
            }
        };
        let held = t0.elapsed();
        let kind = match &polled {
            // A new ETag counts as a change too: the first poll has none to send, so the store
            // answers at once, and only the next poll (carrying it) can be held open.
            Some(Ok(PollOutcome::Instructions { instructions, etag }))
                if *instructions != before || (etag.is_some() && *etag != sent_etag) =>
            {
                Polled::Changed
            }
            Some(Ok(_)) | None => Polled::Unchanged { held },
            Some(Err(_)) => Polled::Failed { failures: 0 },
        };
        let (outcome, failures) = {
            let mut e = shared.engine.lock().await;
            let out = e.complete_pass(polled).await;
            let f = e.conn.consecutive_failures();
            *shared.snapshot.lock().unwrap() = e.status();
            (out, f)
        };
        shared.publish();
        for tx in waiting_syncs.drain(..) {
            let _ = tx.send(outcome.clone());
        }
        let kind = match kind {
            Polled::Failed { .. } => Polled::Failed { failures },
            k => k,
        };
        let wait_for_schedule = if transport.as_ref().is_some_and(|t| t.kind() == "http") {
            long_poll
        } else {
            Duration::ZERO
        };
        next_due = Instant::now() + schedule::next_delay(kind, wait_for_schedule, poll_interval);
    }
    for tx in waiting_syncs.drain(..) {
        let _ = tx.send(PassOutcome {
            failures: vec!["the daemon is stopping".into()],
            jobs_run: 0,
        });
    }
}
