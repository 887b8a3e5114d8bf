//! The daemon (`run`): one tokio runtime where polling, push wake-ups, file events, control
//! requests and signals all feed one engine, so dedupe, journal and results are shared.
//!
//! Tasks: the poller (the only caller of the engine's pass; a held long-poll runs outside
//! the engine's lock and is dropped when a wake-up asks for a new one), the file watcher
//! (panel.ini drift repairs through the shared panel keeper, never waiting for a job; spool
//! instructions wake the poller), the push listener, the control socket; the main loop
//! handles signals and watchdog pings.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{mpsc, oneshot, watch, Notify};

use super::control::{self, ControlRequest, ControlResponse, Reply, SyncReply};
use super::push::{self, PushCounters};
use super::schedule::{self, Polled, RateLimit};
use crate::central::{CentralError, PollOutcome};
use crate::clock::{rfc3339, Clock};
use crate::config::{self, CentralUrl, Config, HostFacts};
use crate::engine::{self, Deps, Engine, PanelKeeper, PassOutcome, Reconcile};
use crate::status::{self, Status};
use crate::systemd;
use crate::watch::{self as filewatch, FileEvent};

/// Largest push secret read.
const MAX_SECRET: u64 = 64 * 1024;
/// Polls allowed back to back before the one-per-second ceiling bites.
const POLL_BURST: u32 = 3;
/// Quiet time after a file event before panel.ini is read, so a writer's truncate-then-write
/// is not mistaken for the final content.
const SETTLE: Duration = Duration::from_millis(30);

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("another daemon is running on the state directory {path}")]
    AlreadyRunning { path: PathBuf },
    #[error("cannot lock {path}: {source}")]
    Lock { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Engine(#[from] engine::EngineError),
    #[error(transparent)]
    Control(#[from] control::ControlError),
    #[error("cannot listen for pushes on {addr}: {source}")]
    PushListen {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
}

/// What stops or reloads the daemon; the binary feeds them from signals, tests directly.
pub struct Signals {
    /// Becomes true to stop (SIGTERM, SIGINT).
    pub shutdown: watch::Receiver<bool>,
    /// One message per reload request (SIGHUP).
    pub reload: mpsc::UnboundedReceiver<()>,
}

/// Installs SIGTERM/SIGINT/SIGHUP handlers feeding [`Signals`].
pub fn os_signals() -> std::io::Result<Signals> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let (reload_tx, reload_rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = term.recv() => { let _ = stop_tx.send(true); }
                _ = int.recv() => { let _ = stop_tx.send(true); }
                _ = hup.recv() => { let _ = reload_tx.send(()); }
            }
        }
    });
    Ok(Signals {
        shutdown: stop_rx,
        reload: reload_rx,
    })
}

struct Shared {
    engine: tokio::sync::Mutex<Engine>,
    panel: Arc<Mutex<PanelKeeper>>,
    running: Arc<Mutex<Option<String>>>,
    /// The engine's stop flag, reachable while a job holds the engine.
    stop: Arc<AtomicBool>,
    /// The last full status taken while the engine was free; served while a job runs.
    snapshot: Mutex<Status>,
    wake: Arc<Notify>,
    sync_tx: mpsc::UnboundedSender<oneshot::Sender<PassOutcome>>,
    counters: Arc<PushCounters>,
    push_problem: Mutex<Option<String>>,
    clock: Arc<dyn Clock>,
    started_at: SystemTime,
    started: Instant,
    state_dir: PathBuf,
    status_line: Mutex<String>,
}

impl Shared {
    /// The status as `status` shows it; never waits for a running job.
    fn status(&self) -> Status {
        let mut s = match self.engine.try_lock() {
            Ok(e) => {
                let s = e.status();
                *self.snapshot.lock().unwrap() = s.clone();
                s
            }
            Err(_) => {
                let mut s = self.snapshot.lock().unwrap().clone();
                s.panel_ini = self.panel.lock().unwrap().status();
                s.jobs.running = self.running.lock().unwrap().clone();
                s
            }
        };
        s.daemon = status::Daemon {
            running: true,
            pid: Some(std::process::id()),
            version: crate::VERSION.to_string(),
            started_at: Some(rfc3339(self.started_at)),
            uptime_s: Some(self.started.elapsed().as_secs()),
        };
        s.push.accepted = self.counters.accepted.load(Ordering::Relaxed);
        s.push.rejected = self.counters.rejected.load(Ordering::Relaxed);
        let mut problems = s.health.problems.clone();
        problems.extend(self.push_problem.lock().unwrap().clone());
        s.health = status::Health::from_problems(problems);
        s
    }

    /// Persists the status and tells systemd a one-line summary when it changed.
    fn publish(&self) {
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

/// Runs the daemon until `signals.shutdown` turns true; the config is re-read from
/// `config_path` on reload.
pub async fn run(config_path: PathBuf, cfg: Config, deps: Deps, mut signals: Signals) -> Result<(), DaemonError> {
    let state_dir = cfg.agent.state_dir.clone();
    crate::fsutil::ensure_private_dir(&state_dir, 0o700).map_err(|source| engine::EngineError::StateDir {
        path: state_dir.clone(),
        source,
    })?;
    let lock_path = state_dir.join("agent.lock");
    let _lock = crate::fsutil::try_lock(&lock_path, &format!("{}\n", std::process::id()))
        .map_err(|source| DaemonError::Lock {
            path: lock_path.clone(),
            source,
        })?
        .ok_or_else(|| DaemonError::AlreadyRunning {
            path: state_dir.clone(),
        })?;

    let clock = deps.clock.clone();
    let engine = Engine::new(cfg.clone(), deps)?;
    engine.reconcile_panel_ini();
    let control_listener = control::bind(&cfg.agent.socket)?;

    let (sync_tx, sync_rx) = mpsc::unbounded_channel();
    let shared = Arc::new(Shared {
        panel: engine.panel.clone(),
        running: engine.running.clone(),
        stop: engine.stop.clone(),
        snapshot: Mutex::new(engine.status()),
        engine: tokio::sync::Mutex::new(engine),
        wake: Arc::new(Notify::new()),
        sync_tx,
        counters: Arc::new(PushCounters::default()),
        push_problem: Mutex::new(None),
        clock: clock.clone(),
        started_at: clock.now(),
        started: Instant::now(),
        state_dir: state_dir.clone(),
        status_line: Mutex::new(String::new()),
    });

    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|v| *v).await;
    };

    // Control socket.
    let handler_shared = shared.clone();
    let handler: Arc<dyn Fn(ControlRequest) -> crate::BoxFuture<'static, ControlResponse> + Send + Sync> =
        Arc::new(move |req| {
            let shared = handler_shared.clone();
            Box::pin(async move { handle_control(&shared, req).await.into() })
        });
    let control_task = tokio::spawn(control::serve(control_listener, handler, stopped(stop_rx.clone())));

    // Push listener.
    let secret = Arc::new(RwLock::new(Vec::new()));
    let mut push_task = None;
    if let Some(addr) = cfg.push.listen {
        match read_secret(&cfg.push.secret_file) {
            Ok(s) => {
                *secret.write().unwrap() = s;
                let listener = tokio::net::TcpListener::bind(addr)
                    .await
                    .map_err(|source| DaemonError::PushListen { addr, source })?;
                tracing::info!(%addr, "listening for signed wake-up pushes");
                push_task = Some(tokio::spawn(push::serve(
                    listener,
                    secret.clone(),
                    clock.clone(),
                    shared.wake.clone(),
                    shared.counters.clone(),
                    stopped(stop_rx.clone()),
                )));
            }
            Err(e) => {
                tracing::error!("push listener not started: {e}");
                *shared.push_problem.lock().unwrap() = Some(format!("push listener not started: {e}"));
            }
        }
    }

    // File events: panel.ini drift, spool instructions.
    let (ev_tx, ev_rx) = mpsc::unbounded_channel();
    let mut watched = watch_targets(&cfg);
    let mut file_watch = start_watch(&watched, ev_tx.clone());
    let events_task = tokio::spawn(file_events(shared.clone(), ev_rx, stopped(stop_rx.clone())));

    systemd::ready();
    tracing::info!(version = crate::VERSION, pid = std::process::id(), "daemon ready");
    shared.publish();

    let (poll_stop_tx, poll_stop_rx) = watch::channel(false);
    let poller = tokio::spawn(poll_loop(shared.clone(), sync_rx, poll_stop_rx));

    let watchdog = systemd::watchdog_interval();
    let mut ticker = tokio::time::interval(watchdog.unwrap_or(Duration::from_secs(3600)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = signals.shutdown.wait_for(|v| *v) => break,
            Some(()) = signals.reload.recv() => {
                systemd::reloading();
                if let Some((new, transport)) = reload(&config_path, &shared, &secret) {
                    let targets = watch_targets(&new);
                    if targets != watched {
                        file_watch = start_watch(&targets, ev_tx.clone());
                        watched = targets;
                    }
                    // The engine may be busy with a job for minutes: hand it the config in
                    // the background so signals and watchdog pings are not held up.
                    tokio::spawn(reload_engine(shared.clone(), new, transport, config_path.clone()));
                }
                systemd::ready();
                shared.publish();
            }
            _ = ticker.tick() => {
                if watchdog.is_some() {
                    systemd::watchdog_ping();
                }
            }
        }
    }

    tracing::info!("stopping: finishing the job under way, if any");
    systemd::stopping();
    shared.stop.store(true, Ordering::SeqCst);
    // The poller first: while it finishes the job under way, `status` still answers and
    // panel.ini is still kept.
    let _ = poll_stop_tx.send(true);
    tokio::pin!(poller);
    loop {
        tokio::select! {
            _ = &mut poller => break,
            // A job may take until its timeout to finish: keep the watchdog fed meanwhile.
            _ = ticker.tick() => {
                if watchdog.is_some() {
                    systemd::watchdog_ping();
                }
            }
        }
    }
    let _ = stop_tx.send(true);
    drop(file_watch);
    let _ = events_task.await;
    let _ = control_task.await;
    if let Some(t) = push_task {
        let _ = t.await;
    }
    shared.publish();
    let _ = std::fs::remove_file(&cfg.agent.socket);
    tracing::info!("stopped");
    Ok(())
}

fn read_secret(path: &Path) -> Result<Vec<u8>, String> {
    match crate::fsutil::read_capped(path, MAX_SECRET) {
        Ok(Some(b)) => {
            let s = b.trim_ascii_end().to_vec();
            if s.is_empty() {
                Err(format!("the push secret file {} is empty", path.display()))
            } else {
                Ok(s)
            }
        }
        Ok(None) => Err(format!("the push secret file {} does not exist", path.display())),
        Err(e) => Err(format!("cannot read the push secret file {}: {e}", path.display())),
    }
}

/// The files whose changes matter: panel.ini, and the spool's instructions.
fn watch_targets(cfg: &Config) -> Vec<PathBuf> {
    let mut v = vec![cfg.panel.ini_path.clone()];
    if let CentralUrl::Spool(dir) = &cfg.central.url {
        v.push(dir.join("instructions.json"));
    }
    v
}

fn start_watch(files: &[PathBuf], tx: mpsc::UnboundedSender<FileEvent>) -> Option<filewatch::FileWatch> {
    match filewatch::watch_events(files.to_vec(), tx) {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::error!("{e}; changes will be noticed at the next poll only");
            None
        }
    }
}

async fn file_events(
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

async fn handle_control(shared: &Arc<Shared>, req: ControlRequest) -> Reply {
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

/// Re-reads the config; on error the old one stays in force. Returns the new config and
/// transport for the engine. The panel keeper takes the new local values at once, so
/// panel.ini follows without waiting for a job that holds the engine.
fn reload(
    config_path: &Path,
    shared: &Arc<Shared>,
    secret: &Arc<RwLock<Vec<u8>>>,
) -> Option<(Config, Option<Arc<dyn crate::central::Transport>>)> {
    let cfg = match config::load(config_path, &HostFacts::real()) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("reload refused, the previous config stays in force: {e}");
            return None;
        }
    };
    for w in &cfg.warnings {
        tracing::warn!("{w}");
    }
    let transport = match engine::transport_for(&cfg) {
        Ok(t) => t,
        Err(e) => {
            tracing::error!("reload refused, the previous config stays in force: {e}");
            return None;
        }
    };
    if cfg.push.listen.is_some() {
        match read_secret(&cfg.push.secret_file) {
            Ok(s) => *secret.write().unwrap() = s,
            Err(e) => tracing::error!("keeping the previous push secret: {e}"),
        }
    }
    {
        let mut p = shared.panel.lock().unwrap();
        p.set_local(
            cfg.panel.ini_path.clone(),
            cfg.panel.buy_url.clone(),
            cfg.panel.catalog_url.clone(),
        );
        p.reconcile(shared.clock.now());
    }
    Some((cfg, transport))
}

/// Gives the engine a reloaded config once it is free, then polls with it.
async fn reload_engine(
    shared: Arc<Shared>,
    cfg: Config,
    transport: Option<Arc<dyn crate::central::Transport>>,
    config_path: PathBuf,
) {
    let mut engine = shared.engine.lock().await;
    let old = engine.config().clone();
    for (what, changed) in [
        ("[push] listen", old.push.listen != cfg.push.listen),
        ("[agent] socket", old.agent.socket != cfg.agent.socket),
        ("[agent] state_dir", old.agent.state_dir != cfg.agent.state_dir),
    ] {
        if changed {
            tracing::warn!("{what} changed; it takes effect at the next restart");
        }
    }
    engine.reload(cfg, transport);
    engine.reconcile_panel_ini();
    *shared.snapshot.lock().unwrap() = engine.status();
    drop(engine);
    shared.wake.notify_one();
    shared.publish();
    tracing::info!(path = %config_path.display(), "config reloaded");
}

/// The poller: the only place passes run.
async fn poll_loop(
    shared: Arc<Shared>,
    mut sync_rx: mpsc::UnboundedReceiver<oneshot::Sender<PassOutcome>>,
    mut stop: watch::Receiver<bool>,
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
                _ = stop.wait_for(|v| *v) => break,
                _ = tokio::time::sleep_until(next_due.into()) => {}
                _ = shared.wake.notified() => {}
                Some(tx) = sync_rx.recv() => waiting_syncs.push(tx),
            }
        }
        let delay = rate.take(Instant::now());
        if !delay.is_zero() {
            tokio::select! {
                _ = stop.wait_for(|v| *v) => break,
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
                    _ = stop.wait_for(|v| *v) => break 'outer,
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
