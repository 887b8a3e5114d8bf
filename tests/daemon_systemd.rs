//! systemd integration of the real daemon (contract section 9): READY once the control
//! socket answers, STATUS lines, watchdog pings when `WATCHDOG_USEC`/`WATCHDOG_PID` ask for
//! them, STOPPING on SIGTERM — all from the daemon's own process, through `NOTIFY_SOCKET`.

mod support;

use std::os::unix::net::UnixDatagram;
use std::process::Stdio;
use std::time::{Duration, Instant};

use support::sandbox::{bin, Sandbox};

/// Every datagram received until `until` matches one, or the deadline.
fn collect(sock: &UnixDatagram, deadline: Duration, until: impl Fn(&[String]) -> bool) -> Vec<String> {
    let end = Instant::now() + deadline;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < end && !until(&got) {
        sock.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
        if let Ok(n) = sock.recv(&mut buf) {
            got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
    got
}

#[test]
fn ready_status_watchdog_and_stopping_reach_the_notify_socket() {
    let sb = Sandbox::new("", "buy_url = https://shop.example.com", "");
    let sock_path = sb.dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    // WATCHDOG_PID must be the daemon's pid: the shell execs the agent, keeping its pid.
    let mut child = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "WATCHDOG_PID=$$ exec '{}' --config '{}' run",
            bin(),
            sb.config.display()
        ))
        .env("NOTIFY_SOCKET", &sock_path)
        .env("WATCHDOG_USEC", "200000")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();

    let got = collect(&sock, Duration::from_secs(10), |g| {
        g.iter().any(|m| m.contains("READY=1")) && g.iter().filter(|m| m.contains("WATCHDOG=1")).count() >= 3
    });
    assert!(got.iter().any(|m| m.contains("READY=1")), "{got:?}");
    assert!(got.iter().any(|m| m.starts_with("STATUS=")), "{got:?}");
    assert!(got.iter().filter(|m| m.contains("WATCHDOG=1")).count() >= 3, "{got:?}");
    // READY comes after the first reconcile: panel.ini already holds the value.
    assert!(std::fs::read_to_string(&sb.panel_ini)
        .unwrap()
        .contains("https://shop.example.com"));
    // And the control socket answers by then.
    let status = sb.agent(&["status", "--json"]);
    assert_eq!(status.status.code(), Some(0));

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let got = collect(&sock, Duration::from_secs(10), |g| {
        g.iter().any(|m| m.contains("STOPPING=1"))
    });
    assert!(got.iter().any(|m| m.contains("STOPPING=1")), "{got:?}");
    assert_eq!(child.wait().unwrap().code(), Some(0));
}

#[test]
fn no_watchdog_pings_when_the_watchdog_is_meant_for_another_process() {
    let sb = Sandbox::new("", "", "");
    let sock_path = sb.dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    let mut child = std::process::Command::new(bin())
        .arg("--config")
        .arg(&sb.config)
        .arg("run")
        .env("NOTIFY_SOCKET", &sock_path)
        .env("WATCHDOG_USEC", "200000")
        .env("WATCHDOG_PID", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let got = collect(&sock, Duration::from_secs(2), |_| false);
    assert!(got.iter().any(|m| m.contains("READY=1")), "{got:?}");
    assert!(!got.iter().any(|m| m.contains("WATCHDOG=1")), "{got:?}");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(0));
}
