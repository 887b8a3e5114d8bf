//! systemd integration for the agent and the catalog proxy: READY, STATUS, STOPPING and
//! watchdog pings, all from the service's own process (sd-notify sends nothing when
//! `NOTIFY_SOCKET` is unset). On Windows there is no systemd (sd-notify does not build
//! there): every call is a no-op and the service manager is told by `windows-service`.

use std::time::Duration;

#[cfg(unix)]
use sd_notify::NotifyState;

#[cfg(unix)]
pub fn ready() {
    let _ = sd_notify::notify(false, &[NotifyState::Ready]);
}

#[cfg(unix)]
pub fn stopping() {
    let _ = sd_notify::notify(false, &[NotifyState::Stopping]);
}

#[cfg(unix)]
pub fn reloading() {
    let mut states = vec![NotifyState::Reloading];
    if let Ok(m) = NotifyState::monotonic_usec_now() {
        states.push(m);
    }
    let _ = sd_notify::notify(false, &states);
}

#[cfg(unix)]
pub fn status(line: &str) {
    let _ = sd_notify::notify(false, &[NotifyState::Status(line)]);
}

#[cfg(unix)]
pub fn watchdog_ping() {
    let _ = sd_notify::notify(false, &[NotifyState::Watchdog]);
}

/// The ping interval (half of `WATCHDOG_USEC`) when systemd asked for pings from this
/// process (`WATCHDOG_PID`), else None.
#[cfg(unix)]
pub fn watchdog_interval() -> Option<Duration> {
    let mut usec = 0;
    if sd_notify::watchdog_enabled(false, &mut usec) && usec > 0 {
        Some(Duration::from_micros(usec) / 2)
    } else {
        None
    }
}

#[cfg(windows)]
pub fn ready() {}
#[cfg(windows)]
pub fn stopping() {}
#[cfg(windows)]
pub fn reloading() {}
#[cfg(windows)]
pub fn status(_line: &str) {}
#[cfg(windows)]
pub fn watchdog_ping() {}
#[cfg(windows)]
pub fn watchdog_interval() -> Option<Duration> {
    None
}
