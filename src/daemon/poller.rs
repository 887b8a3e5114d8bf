//! The poller: decides when a pass runs (schedule, wake-ups, `sync` requests) and makes the
//! poll outside the engine's lock, so a wake can drop a held long-poll; the engine runs the
//! rest of the pass.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use super::schedule::{Polled, RateLimit, Schedule};
use crate::central::{CentralError, PollOutcome};
use crate::engine::PassOutcome;

use super::shared::Shared;
use super::shutdown::StopSignal;

/// Polls allowed in [`POLL_WINDOW`] (contract 5.1 version 2: a burst of 10, one a second on average).
const POLL_BURST: u32 = 10;
const POLL_WINDOW: Duration = Duration::from_secs(10);

/// The poller: the only place passes run.
pub(super) async fn poll_loop(
    shared: Arc<Shared>,
    sync_rx: mpsc::UnboundedReceiver<oneshot::Sender<PassOutcome>>,
    stop: StopSignal,
) {
    {
        let mut e = shared.engine.lock().await;
        e.refresh_plesk_facts().await;
        // Interrupted jobs run now, not after the first poll (which a store may hold for
        // `long_poll` seconds): their running records are on disk already.
        if e.resume_at_start().await {
            *shared.snapshot.lock().unwrap() = e.view();
            drop(e);
            shared.publish();
        }
    }
    let mut p = Poller {
        shared,
        sync_rx,
        stop,
        rate: RateLimit::new(POLL_BURST, POLL_WINDOW),
        schedule: Schedule::default(),
        next_due: Instant::now(),
        waiting_syncs: Vec::new(),
    };
    loop {
        if !p.wait_for_turn().await {
            break;
        }
        match p.poll().await {
            Step::Stop => break,
            Step::Again => continue,
            Step::Answered(done) => p.finish(done).await,
        }
    }
    for tx in p.waiting_syncs.drain(..) {
        let _ = tx.send(PassOutcome {
            failures: vec!["the daemon is stopping".into()],
            jobs_run: 0,
        });
    }
}

struct Poller {
    shared: Arc<Shared>,
    sync_rx: mpsc::UnboundedReceiver<oneshot::Sender<PassOutcome>>,
    stop: StopSignal,
    rate: RateLimit,
    schedule: Schedule,
    next_due: Instant,
    /// `sync` requests answered by the next pass's outcome.
    waiting_syncs: Vec<oneshot::Sender<PassOutcome>>,
}

/// How a poll attempt ended.
enum Step {
    Stop,
    /// A wake-up or `sync` dropped the poll under way: start a new one.
    Again,
    Answered(Done),
}

/// A finished poll and what the schedule needs to know of it.
struct Done {
    polled: Option<Result<PollOutcome, CentralError>>,
    kind: Polled,
    http: bool,
    long_poll: Duration,
    poll_interval: Duration,
}

impl Poller {
    /// Waits until a pass is due (schedule, wake-up, `sync`) and the rate ceiling allows it;
    /// false when the daemon stops.
    async fn wait_for_turn(&mut self) -> bool {
        if self.waiting_syncs.is_empty() {
            tokio::select! {
                _ = self.stop.stopped() => return false,
                _ = tokio::time::sleep_until(self.next_due.into()) => {}
                _ = self.shared.wake.notified() => {}
                Some(tx) = self.sync_rx.recv() => self.waiting_syncs.push(tx),
            }
        }
        // Only as long as the rate rule needs; a poll allowed now starts now.
        loop {
            let delay = self.rate.delay(Instant::now());
            if delay.is_zero() {
                break;
            }
            tokio::select! {
                _ = self.stop.stopped() => return false,
                _ = tokio::time::sleep(delay) => {}
            }
        }
        self.rate.record(Instant::now());
        true
    }

    /// One poll, outside the engine's lock; a wake-up or `sync` does not wait for a held one.
    async fn poll(&mut self) -> Step {
        let (transport, long_poll, poll_interval, before) = {
            let e = self.shared.engine.lock().await;
            let c = &e.config().central;
            (e.transport(), c.long_poll, c.poll_interval, e.instructions().clone())
        };
        let http = transport.as_ref().is_some_and(|t| t.kind() == "http");
        let wait = (http && self.waiting_syncs.is_empty()).then_some(long_poll);
        let req = self.shared.engine.lock().await.poll_request(wait);
        let sent_etag = req.etag.clone();
        let t0 = Instant::now();
        let polled = match &transport {
            None => None,
            Some(t) => {
                let poll = t.poll(req);
                tokio::pin!(poll);
                tokio::select! {
                    r = &mut poll => Some(r),
                    _ = self.stop.stopped() => return Step::Stop,
                    _ = self.shared.wake.notified() => { self.next_due = Instant::now(); return Step::Again; }
                    Some(tx) = self.sync_rx.recv() => {
                        self.waiting_syncs.push(tx);
                        self.next_due = Instant::now();
                        return Step::Again;
                    }
                }
            }
        };
        let held = t0.elapsed();
        if let Some(Err(CentralError::RetryAfter { url, secs })) = &polled {
            // A store restarting: come back when it says, with no failure counted (health
            // and backoff unchanged). A `sync` waiting for this pass gets the answer as is.
            if self.waiting_syncs.is_empty() {
                tracing::info!(url = %url, "the store is restarting; polling again in {secs} s");
                self.next_due = Instant::now() + Duration::from_secs(*secs);
                return Step::Again;
            }
        }
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
        Step::Answered(Done {
            polled,
            kind,
            http,
            long_poll,
            poll_interval,
        })
    }

    /// The engine runs the rest of the pass; then publish, answer `sync`s, schedule the next.
    async fn finish(&mut self, done: Done) {
        // Not enrolled and refused: the next attempt is due when the transport says (5 min).
        let enrolling = match &done.polled {
            Some(Err(CentralError::Enrolling { retry_in, .. })) => Some(*retry_in),
            _ => None,
        };
        let (outcome, failures) = {
            let mut e = self.shared.engine.lock().await;
            let out = e.complete_pass(done.polled).await;
            let f = e.conn.consecutive_failures();
            *self.shared.snapshot.lock().unwrap() = e.view();
            (out, f)
        };
        self.shared.publish();
        for tx in self.waiting_syncs.drain(..) {
            let _ = tx.send(outcome.clone());
        }
        let kind = match done.kind {
            Polled::Failed { .. } => Polled::Failed { failures },
            k => k,
        };
        let long_poll = if done.http { done.long_poll } else { Duration::ZERO };
        self.next_due = Instant::now() + self.schedule.next_delay(kind, long_poll, done.poll_interval);
        if let Some(wait) = enrolling.filter(|w| !w.is_zero()) {
            self.next_due = Instant::now() + wait;
        }
    }
}
