//! systemd integration for the agent and the catalog proxy: READY, STATUS, STOPPING and
//! watchdog pings, all from the service's own process (sd-notify sends nothing when
//! `NOTIFY_SOCKET` is unset).

use std::time::Duration;

use sd_notify::NotifyState;

pub fn ready() {
    let _ = sd_notify::notify(false, &[NotifyState::Ready]);
}

pub fn stopping() {
    let _ = sd_notify::notify(false, &[NotifyState::Stopping]);
}

pub fn reloading() {
    let mut states = vec![NotifyState::Reloading];
    if let Ok(m) = NotifyState::monotonic_usec_now() {
        states.push(m);
    }
    let _ = sd_notify::notify(false, &states);
}

pub fn status(line: &str) {
    let _ = sd_notify::notify(false, &[NotifyState::Status(line)]);
}

pub fn watchdog_ping() {
    let _ = sd_notify::notify(false, &[NotifyState::Watchdog]);
}

/// The ping interval (half of `WATCHDOG_USEC`) when systemd asked for pings from this
/// process (`WATCHDOG_PID`), else None.
pub fn watchdog_interval() -> Option<Duration> {
    let mut usec = 0;
    if sd_notify::watchdog_enabled(false, &mut usec) && usec > 0 {
        Some(Duration::from_micros(usec) / 2)
    } else {
        None
    }
}
