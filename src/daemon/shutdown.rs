//! What stops or reloads the daemon: SIGTERM/SIGINT and SIGHUP, fed into [`Signals`].

use tokio::sync::{mpsc, watch};

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
