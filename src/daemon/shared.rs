//! The state the tasks share and the control socket reads: the engine behind its lock, the
//! last status snapshot for while a job holds it, push counters; and the control handler.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use tokio::sync::{mpsc, oneshot, Notify};

use super::control::{ControlRequest, Reply, SyncReply};
use super::push::PushCounters;
use crate::clock::{rfc3339, Clock};
use crate::engine::{DaemonFacts, Engine, EngineView, PanelKeeper, PassOutcome};
use crate::status::{self, Status};
use crate::systemd;

pub(super) struct Shared {
    pub(super) engine: tokio::sync::Mutex<Engine>,
    pub(super) panel: Arc<Mutex<PanelKeeper>>,
    pub(super) running: Arc<Mutex<Option<String>>>,
    /// The engine's stop flag, reachable while a job holds the engine.
    pub(super) stop: Arc<AtomicBool>,
    /// The engine's part of the status, taken while it was last free; used while a job runs.
    pub(super) snapshot: Mutex<EngineView>,
    pub(super) wake: Arc<Notify>,
    pub(super) sync_tx: mpsc::UnboundedSender<oneshot::Sender<PassOutcome>>,
    pub(super) counters: Arc<PushCounters>,
    pub(super) push_problem: Mutex<Option<String>>,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) started_at: SystemTime,
    pub(super) started: Instant,
    pub(super) state_dir: PathBuf,
    pub(super) status_line: Mutex<String>,
}

impl Shared {
    pub(super) fn new(
        engine: Engine,
        sync_tx: mpsc::UnboundedSender<oneshot::Sender<PassOutcome>>,
        clock: Arc<dyn Clock>,
        state_dir: PathBuf,
    ) -> Self {
        Shared {
            panel: engine.panel.clone(),
            running: engine.running.clone(),
            stop: engine.stop.clone(),
            snapshot: Mutex::new(engine.view()),
            engine: tokio::sync::Mutex::new(engine),
            wake: Arc::new(Notify::new()),
            sync_tx,
            counters: Arc::new(PushCounters::default()),
            push_problem: Mutex::new(None),
            started_at: clock.now(),
            clock,
            started: Instant::now(),
            state_dir,
            status_line: Mutex::new(String::new()),
        }
    }

    /// The status as `status` shows it; never waits for a running job (then the engine's
    /// part is the one taken after the last pass).
    pub(super) fn status(&self) -> Status {
        let view = match self.engine.try_lock() {
            Ok(e) => {
                let v = e.view();
                *self.snapshot.lock().unwrap() = v.clone();
                v
            }
            Err(_) => self.snapshot.lock().unwrap().clone(),
        };
        let facts = DaemonFacts {
            daemon: Some(status::Daemon {
                running: true,
                pid: Some(std::process::id()),
                version: crate::VERSION.to_string(),
                started_at: Some(rfc3339(self.started_at)),
                uptime_s: Some(self.started.elapsed().as_secs()),
            }),
            push_accepted: self.counters.accepted.load(Ordering::Relaxed),
            push_rejected: self.counters.rejected.load(Ordering::Relaxed),
            problems: self.push_problem.lock().unwrap().iter().cloned().collect(),
        };
        let running = self.running.lock().unwrap().clone();
        view.status(&self.panel.lock().unwrap(), running, &facts)
    }

    /// Persists the status and tells systemd a one-line summary when it changed.
    pub(super) fn publish(&self) {
        let s = self.status();
        if let Err(e) = status::persist(&self.state_dir, &s) {
            tracing::warn!("cannot save the status to {}: {e}", self.state_dir.display());
        }
        let line = format!(
            "{}; panel.ini {}; {} undelivered result(s){}",
            if s.health.is_ok() { "healthy" } else { "degraded" },
            if s.panel_ini.in_sync { "in sync" } else { "not in sync" },
            s.jobs.undelivered_results,
            s.health.problems.first().map_or(String::new(), |p| format!("; {p}")),
        );
        let mut last = self.status_line.lock().unwrap();
        if *last != line {
            systemd::status(&line);
            *last = line;
        }
    }
}

pub(super) async fn handle_control(shared: &Arc<Shared>, req: ControlRequest) -> Reply {
    match req {
        ControlRequest::Status => Reply::Status(Box::new(shared.status())),
        ControlRequest::PollNow => {
            shared.wake.notify_one();
            Reply::PollNow
        }
        ControlRequest::Sync => {
            let (tx, rx) = oneshot::channel();
            if shared.sync_tx.send(tx).is_err() {
                return Reply::Refused("the daemon is stopping".into());
            }
            match rx.await {
                Ok(out) => Reply::Sync(SyncReply {
                    failures: out.failures,
                    jobs_run: out.jobs_run,
                }),
                Err(_) => Reply::Refused("the daemon stopped before the pass ended".into()),
            }
        }
    }
}
