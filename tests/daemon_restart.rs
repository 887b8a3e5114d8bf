//! A restart of the real daemon right after a SIGKILL: it is never refused because of what
//! the killed daemon left behind, and it resumes the interrupted job at once, before its
//! first poll (which the store holds).
// Unix: sockets, signals, modes, shell stand-ins. Windows: tests/windows_daemon.rs.
#![cfg(unix)]

mod support;

use std::os::fd::{FromRawFd, OwnedFd};
use std::time::Duration;

use nix::libc;
use support::daemon::{kill_mid_job, set_config, Daemon};
use support::sandbox::{store_with_job, Sandbox};

const T: Duration = Duration::from_secs(5);

/// Copies of every descriptor of process `pid` beyond stdio (pidfd_getfd: the same open
/// files, sockets and locks), which is what a child holds between its fork and its exec,
/// before close-on-exec acts.
fn copy_descriptors(pid: u32) -> Vec<OwnedFd> {
    // SAFETY: plain syscalls; every descriptor returned is new and owned by us.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::c_int, 0) };
    assert!(pidfd >= 0, "pidfd_open: {}", std::io::Error::last_os_error());
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd as i32) };
    let mut held = Vec::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap() {
        let n: i32 = entry.unwrap().file_name().to_string_lossy().parse().unwrap();
        if n <= 2 {
            continue;
        }
        use std::os::fd::AsRawFd;
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), n, 0) };
        if fd >= 0 {
            held.push(unsafe { OwnedFd::from_raw_fd(fd as i32) });
        }
    }
    assert!(held.len() > 3, "only {} descriptors copied", held.len());
    held
}

#[test]
fn a_restart_while_a_child_still_holds_the_killed_daemons_descriptors_is_not_refused() {
    let store = store_with_job("crash-1");
    let sb = Sandbox::new(&store.url(), "", "");
    sb.plesk_switch("delay", "2");
    let d = Daemon::start(&sb);
    d.wait_job_started(&sb);

    // A child caught between fork and exec at the moment of the kill (under load that is
    // milliseconds): it holds the lock file, the control socket and all the rest.
    let held = copy_descriptors(d.pid());
    d.kill();
    let release = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        drop(held);
    });
    sb.plesk_unswitch("delay");
    sb.forget_job_started();
    let d = Daemon::start(&sb);
    release.join().unwrap();

    assert!(
        store.wait_for(|s| !s.results().is_empty(), T),
        "no result after the restart; log:\n{}",
        d.log_text()
    );
    let results = store.results();
    assert_eq!(results[0].0, "crash-1");
    assert_eq!(results[0].1["status"], "succeeded");
    assert_eq!(results[0].1["attempts"], 2);
    assert_eq!(d.stop().code(), Some(0));
}

#[test]
fn an_interrupted_job_is_resumed_at_start_not_after_a_held_first_poll() {
    let store = store_with_job("crash-2");
    let sb = Sandbox::new(&store.url(), "", "");
    set_config(&sb, "central", "long_poll", "25");
    kill_mid_job(&sb, "3");

    // The restarted daemon's first poll carries the ETag it kept, so the store holds it for
    // up to 25 s; the running record on disk must not wait for that.
    let d = Daemon::start(&sb);
    assert!(
        store.wait_for(|s| !s.results().is_empty(), T),
        "the interrupted job was not resumed within {T:?} of the restart; log:\n{}",
        d.log_text()
    );
    let results = store.results();
    assert_eq!(results.len(), 1, "{results:?}");
    assert_eq!(results[0].1["attempts"], 2);
    assert_eq!(sb.license_calls().len(), 2, "{:?}", sb.license_calls());
    assert_eq!(d.stop().code(), Some(0));
}
