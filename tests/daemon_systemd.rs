//! systemd integration of the real daemon (contract section 9): READY once the control
//! socket answers, STATUS lines, watchdog pings when `WATCHDOG_USEC`/`WATCHDOG_PID` ask for
//! them, STOPPING on SIGTERM — all from the daemon's own process, through `NOTIFY_SOCKET`.
// Unix: sockets, signals, modes, shell stand-ins. Windows: tests/windows_daemon.rs.
#![cfg(unix)]

mod support;

use std::os::unix::net::UnixDatagram;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::sandbox::{bin, Sandbox};

/// Reads the notify socket on a thread of its own, as systemd does: a receiver that stops
/// reading fills the datagram queue and blocks the sender.
struct Listener {
    got: Arc<Mutex<Vec<String>>>,
}

impl Listener {
    fn bind(path: &std::path::Path) -> Listener {
        let sock = UnixDatagram::bind(path).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
        let got = Arc::new(Mutex::new(Vec::new()));
        let sink = got.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            // Bounded: the test is over long before.
            let end = Instant::now() + Duration::from_secs(60);
            while Instant::now() < end {
                if let Ok(n) = sock.recv(&mut buf) {
                    sink.lock()
                        .unwrap()
                        .push(String::from_utf8_lossy(&buf[..n]).into_owned());
                }
            }
        });
        Listener { got }
    }

    /// The messages so far, once `until` holds or the deadline passed.
    fn collect(&self, deadline: Duration, until: impl Fn(&[String]) -> bool) -> Vec<String> {
        let end = Instant::now() + deadline;
        loop {
            let got = self.got.lock().unwrap().clone();
            if until(&got) || Instant::now() >= end {
                return got;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Starts the daemon with a notify socket and a 200 ms watchdog meant for it.
fn run_under_watchdog(sb: &Sandbox) -> (Listener, std::process::Child) {
    let sock_path = sb.dir.path().join("notify.sock");
    let sock = Listener::bind(&sock_path);
    // WATCHDOG_PID must be the daemon's pid: the shell execs the agent, keeping its pid.
    let child = std::process::Command::new("sh")
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
    (sock, child)
}

#[test]
fn ready_status_watchdog_and_stopping_reach_the_notify_socket() {
    let sb = Sandbox::new("", "buy_url = https://shop.example.com", "");
    let (sock, mut child) = run_under_watchdog(&sb);

    let got = sock.collect(Duration::from_secs(10), |g| {
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
    let got = sock.collect(Duration::from_secs(10), |g| g.iter().any(|m| m.contains("STOPPING=1")));
    assert!(got.iter().any(|m| m.contains("STOPPING=1")), "{got:?}");
    assert_eq!(child.wait().unwrap().code(), Some(0));
}

#[test]
fn no_watchdog_pings_when_the_watchdog_is_meant_for_another_process() {
    let sb = Sandbox::new("", "", "");
    let sock_path = sb.dir.path().join("notify.sock");
    let sock = Listener::bind(&sock_path);
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
    let got = sock.collect(Duration::from_secs(2), |_| false);
    assert!(got.iter().any(|m| m.contains("READY=1")), "{got:?}");
    assert!(!got.iter().any(|m| m.contains("WATCHDOG=1")), "{got:?}");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(0));
}

#[test]
fn the_watchdog_is_fed_while_a_stopping_daemon_finishes_its_job() {
    let sb = Sandbox::with_spool("");
    sb.plesk_switch("delay", "2");
    std::fs::write(
        sb.spool.join("instructions.json"),
        r#"{"jobs": [{"id": "slow-1", "type": "retrieve_keys"}]}"#,
    )
    .unwrap();
    let (sock, mut child) = run_under_watchdog(&sb);
    assert!(sb.wait_job_started(Duration::from_secs(10)), "the job never started");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let got = sock.collect(Duration::from_secs(10), |g| {
        g.iter()
            .skip_while(|m| !m.contains("STOPPING=1"))
            .filter(|m| m.contains("WATCHDOG=1"))
            .count()
            >= 5
    });
    let after_stop = got
        .iter()
        .skip_while(|m| !m.contains("STOPPING=1"))
        .filter(|m| m.contains("WATCHDOG=1"))
        .count();
    assert!(after_stop >= 5, "{after_stop} pings after STOPPING: {got:?}");
    assert_eq!(child.wait().unwrap().code(), Some(0));
    assert!(
        sb.spool.join("results/slow-1.json").exists(),
        "the job finished and its result was written"
    );
}
