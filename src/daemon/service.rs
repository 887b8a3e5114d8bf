//! The daemon (`run`): one tokio runtime where polling, push wake-ups, file events, control
//! requests and signals all feed one engine, so dedupe, journal and results are shared.
//! This file wires the tasks together and runs the main loop (signals, reload, watchdog).
//!
//! Tasks: the poller ([`super::poller`], the only caller of the engine's pass), the file
//! watcher ([`super::files`]), the push listener, the control socket (answered from
//! [`super::shared`]); reloads are [`super::reload`], signals and stopping [`super::shutdown`].

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch, Notify};

use super::control::{self, ControlRequest, ControlResponse};
use super::push::{self, PushCounters};
use crate::config::Config;
use crate::engine::{self, Deps, Engine};
use crate::systemd;

use super::files::{file_events, start_watch, watch_targets};
use super::poller::poll_loop;
use super::reload::{read_secret, reload, reload_engine};
use super::shared::{handle_control, Shared};
pub use super::shutdown::{os_signals, Signals};

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
