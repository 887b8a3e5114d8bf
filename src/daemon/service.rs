//! The daemon (`run`): one tokio runtime where polling, push wake-ups, file events, control
//! requests and signals all feed one engine, so dedupe, journal and results are shared.
//! This file wires the tasks together and runs the main loop (signals, reload, watchdog).
//!
//! Tasks: the poller ([`super::poller`], the only caller of the engine's pass), the file
//! watcher ([`super::files`]), the push listener, the control socket (answered from
//! [`super::shared`]); reloads are [`super::reload`], signals and stopping [`super::shutdown`].

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use tokio::sync::mpsc;

use super::control;
use super::push;
use super::shutdown;
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
    let _lock = lock_state_dir(&cfg)?;
    let clock = deps.clock.clone();
    let engine = Engine::new(cfg.clone(), deps)?;
    engine.reconcile_panel_ini();
    let control_listener = control::bind(&cfg.agent.socket)?;
    let (sync_tx, sync_rx) = mpsc::unbounded_channel();
    let shared = Arc::new(Shared::new(engine, sync_tx, clock, cfg.agent.state_dir.clone()));

    // Two stops, one idiom: the poller first (it may be finishing a job), then the rest.
    let (stop_poller, poller_stopped) = shutdown::stop_signal();
    let (stop_rest, rest_stopped) = shutdown::stop_signal();
    let control_task = tokio::spawn(control::serve(
        control_listener,
        control_handler(&shared),
        rest_stopped.clone().wait(),
    ));
    let secret = Arc::new(RwLock::new(Vec::new()));
    let push_task = start_push(&cfg, &shared, &secret, rest_stopped.clone()).await?;
    let (ev_tx, ev_rx) = mpsc::unbounded_channel();
    let mut files = Watched::start(&cfg, ev_tx);
    let events_task = tokio::spawn(file_events(shared.clone(), ev_rx, rest_stopped.wait()));

    systemd::ready();
    tracing::info!(version = crate::VERSION, pid = std::process::id(), "daemon ready");
    shared.publish();
    let poller = tokio::spawn(poll_loop(shared.clone(), sync_rx, poller_stopped));

    let mut watchdog = shutdown::Watchdog::from_env();
    loop {
        tokio::select! {
            _ = signals.shutdown.wait_for(|v| *v) => break,
            Some(()) = signals.reload.recv() => {
                systemd::reloading();
                if let Some((new, transport)) = reload(&config_path, &shared, &secret) {
                    files.follow(&new);
                    // The engine may be busy with a job for minutes: hand it the config in
                    // the background so signals and watchdog pings are not held up.
                    tokio::spawn(reload_engine(shared.clone(), new, transport, config_path.clone()));
                }
                systemd::ready();
                shared.publish();
            }
            _ = watchdog.tick() => {}
        }
    }

    shutdown::stop_poller(&shared, stop_poller, poller, &mut watchdog).await;
    stop_rest.stop();
    drop(files);
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

/// Makes the state directory and takes its lock: one daemon per state directory.
fn lock_state_dir(cfg: &Config) -> Result<crate::fsutil::FileLock, DaemonError> {
    let state_dir = &cfg.agent.state_dir;
    crate::fsutil::ensure_private_dir(state_dir, 0o700).map_err(|source| engine::EngineError::StateDir {
        path: state_dir.clone(),
        source,
    })?;
    let lock_path = state_dir.join("agent.lock");
    crate::fsutil::try_lock(&lock_path, &format!("{}\n", std::process::id()))
        .map_err(|source| DaemonError::Lock {
            path: lock_path.clone(),
            source,
        })?
        .ok_or_else(|| DaemonError::AlreadyRunning {
            path: state_dir.clone(),
        })
}

fn control_handler(shared: &Arc<Shared>) -> control::Handler {
    let shared = shared.clone();
    Arc::new(move |req| {
        let shared = shared.clone();
        Box::pin(async move { handle_control(&shared, req).await.into() })
    })
}

/// Binds and serves the push listener when `[push] listen` is set. Without a usable secret
/// it is not started, and `status` says so; a port that cannot be bound stops the daemon.
async fn start_push(
    cfg: &Config,
    shared: &Arc<Shared>,
    secret: &Arc<RwLock<Vec<u8>>>,
    stopped: shutdown::StopSignal,
) -> Result<Option<tokio::task::JoinHandle<()>>, DaemonError> {
    let Some(addr) = cfg.push.listen else {
        return Ok(None);
    };
    match read_secret(&cfg.push.secret_file) {
        Ok(s) => {
            *secret.write().unwrap() = s;
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| DaemonError::PushListen { addr, source })?;
            tracing::info!(%addr, "listening for signed wake-up pushes");
            Ok(Some(tokio::spawn(push::serve(
                listener,
                secret.clone(),
                shared.clock.clone(),
                shared.wake.clone(),
                shared.counters.clone(),
                stopped.wait(),
            ))))
        }
        Err(e) => {
            tracing::error!("push listener not started: {e}");
            *shared.push_problem.lock().unwrap() = Some(format!("push listener not started: {e}"));
            Ok(None)
        }
    }
}

/// The file watch and what it watches; restarted when a reload changes the files.
struct Watched {
    targets: Vec<PathBuf>,
    watch: Option<crate::watch::FileWatch>,
    tx: mpsc::UnboundedSender<crate::watch::FileEvent>,
}

impl Watched {
    fn start(cfg: &Config, tx: mpsc::UnboundedSender<crate::watch::FileEvent>) -> Self {
        let targets = watch_targets(cfg);
        let watch = start_watch(&targets, tx.clone());
        Watched { targets, watch, tx }
    }

    fn follow(&mut self, cfg: &Config) {
        let targets = watch_targets(cfg);
        if targets != self.targets {
            self.watch = start_watch(&targets, self.tx.clone());
            self.targets = targets;
        }
    }
}
