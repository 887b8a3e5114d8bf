//! Stopping: SIGTERM/SIGINT and SIGHUP fed into [`Signals`]; the one idiom the daemon's
//! tasks stop by ([`StopSignal`]); the stop sequence that lets a running job finish while
//! the watchdog stays fed.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use super::shared::Shared;
use crate::systemd;

/// Asks the tasks holding the matching [`StopSignal`]s to stop.
pub(super) struct Stopper(watch::Sender<bool>);

impl Stopper {
    pub(super) fn stop(&self) {
        let _ = self.0.send(true);
    }
}

/// Completes once stop is asked; cloned into each task it stops.
#[derive(Clone)]
pub(super) struct StopSignal(watch::Receiver<bool>);

impl StopSignal {
    /// Completes once stop is asked (also when the [`Stopper`] is gone).
    pub(super) async fn stopped(&mut self) {
        let _ = self.0.wait_for(|v| *v).await;
    }

    /// [`StopSignal::stopped`] as a future that owns the signal, for `serve(…, shutdown)`.
    pub(super) async fn wait(mut self) {
        self.stopped().await
    }
}

pub(super) fn stop_signal() -> (Stopper, StopSignal) {
    let (tx, rx) = watch::channel(false);
    (Stopper(tx), StopSignal(rx))
}

/// Watchdog pings at half of systemd's `WATCHDOG_USEC`, when it asked for them.
pub(super) struct Watchdog {
    enabled: bool,
    ticker: tokio::time::Interval,
}

impl Watchdog {
    pub(super) fn from_env() -> Self {
        let interval = systemd::watchdog_interval();
        let mut ticker = tokio::time::interval(interval.unwrap_or(Duration::from_secs(3600)));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Watchdog {
            enabled: interval.is_some(),
            ticker,
        }
    }

    /// Waits for the next tick and pings.
    pub(super) async fn tick(&mut self) {
        self.ticker.tick().await;
        if self.enabled {
            systemd::watchdog_ping();
        }
    }
}

/// Stops the poller: the engine starts no other job, the one under way finishes (up to its
/// timeout) while `status` still answers, panel.ini is still kept and the watchdog is fed.
pub(super) async fn stop_poller(
    shared: &Arc<Shared>,
    stopper: Stopper,
    poller: tokio::task::JoinHandle<()>,
    watchdog: &mut Watchdog,
) {
    tracing::info!("stopping: finishing the job under way, if any");
    systemd::stopping();
    shared.stop.store(true, Ordering::SeqCst);
    stopper.stop();
    tokio::pin!(poller);
    loop {
        tokio::select! {
            _ = &mut poller => break,
            _ = watchdog.tick() => {}
        }
    }
}

/// What stops or reloads the daemon; the binary feeds them from signals, tests directly.
pub struct Signals {
    /// Becomes true to stop (SIGTERM, SIGINT).
    pub shutdown: watch::Receiver<bool>,
    /// One message per reload request (SIGHUP).
    pub reload: mpsc::UnboundedReceiver<()>,
}

/// Installs SIGTERM/SIGINT/SIGHUP handlers feeding [`Signals`].
#[cfg(unix)]
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

/// Windows: Ctrl+C, Ctrl+Break and closing the console stop the daemon in console mode, and
/// the service manager's Stop stops the service (`platform::windows::service`). There is no
/// SIGHUP: a config change is picked up by restarting the service.
#[cfg(windows)]
pub fn os_signals() -> std::io::Result<Signals> {
    use tokio::signal::windows::{ctrl_break, ctrl_c, ctrl_close};
    let mut c = ctrl_c()?;
    let mut brk = ctrl_break()?;
    let mut close = ctrl_close()?;
    let service_stop = crate::platform::windows::service::stop_requested();
    let (stop_tx, stop_rx) = watch::channel(false);
    let (_reload_tx, reload_rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        tokio::select! {
            _ = c.recv() => {}
            _ = brk.recv() => {}
            _ = close.recv() => {}
            _ = service_stop.notified() => {}
        }
        let _ = stop_tx.send(true);
        // Keep the reload sender alive so the daemon's reload loop does not end.
        let _keep = _reload_tx;
        std::future::pending::<()>().await;
    });
    Ok(Signals {
        shutdown: stop_rx,
        reload: reload_rx,
    })
}
