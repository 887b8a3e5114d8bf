//! The real ProcessRunner driving the stand-in `plesk` (tests/fixtures/plesk-standin):
//! exact argv, output kept, timeouts, process-group cleanup, a small environment.
// Unix: sockets, signals, modes, shell stand-ins. Windows: tests/windows_daemon.rs.
#![cfg(unix)]

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::kill;
use nix::unistd::Pid;
use plesk_reseller_agent::plesk::Plesk;
use plesk_reseller_agent::runner::{CommandSpec, ProcessRunner, Runner, OUTPUT_TAIL};

const CODE: &str = "A00000-K6QK03-KSG046-H6BK67-1GE201";

/// A state directory with a `plesk` symlink to the stand-in. A symlink rather than a copy:
/// writing an executable while parallel tests fork can make exec fail with ETXTBSY.
struct StandIn {
    dir: tempfile::TempDir,
}

impl StandIn {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/plesk-standin");
        std::os::unix::fs::symlink(&script, dir.path().join("plesk")).expect("symlink stand-in");
        StandIn { dir }
    }

    fn command(&self) -> PathBuf {
        self.dir.path().join("plesk")
    }

    fn set(&self, name: &str, content: &str) {
        fs::write(self.dir.path().join(name), content).expect("write stand-in switch");
    }

    fn read(&self, name: &str) -> String {
        fs::read_to_string(self.dir.path().join(name)).unwrap_or_default()
    }

    fn plesk(&self, timeout: Duration, kill_grace: Duration) -> Plesk {
        let mut p = Plesk::new(self.command(), timeout, Arc::new(ProcessRunner));
        p.kill_grace = kill_grace;
        p
    }
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// Dead: gone, or a zombie waiting for init to reap it (it was reparented there).
fn wait_until_dead(pid: i32) -> bool {
    let deadline = Instant::now() + secs(2);
    loop {
        match kill(Pid::from_raw(pid), None) {
            Err(Errno::ESRCH) => return true,
            _ => {
                let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
                let state = stat.rsplit_once(") ").and_then(|(_, rest)| rest.chars().next());
                if matches!(state, None | Some('Z') | Some('X')) {
                    return true;
                }
            }
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test]
async fn install_key_passes_exact_argv_and_changes_key_number() {
    let s = StandIn::new();
    s.set("new_key_id", "PLSK123456780001\n");
    let plesk = s.plesk(secs(60), secs(5));

    assert_eq!(plesk.key_number().await.unwrap(), None, "trial key counts as none");
    let out = plesk.install_key(CODE).await;
    assert!(out.success(), "{out:?}");
    assert!(out.output.contains("PLSK.12345678.0001"), "{}", out.output);
    assert_eq!(plesk.key_number().await.unwrap().as_deref(), Some("PLSK.12345678.0001"));

    assert_eq!(
        s.read("calls.log"),
        format!("bin keyinfo --list\nbin license -i {CODE}\nbin keyinfo --list\n")
    );
}

#[tokio::test]
async fn version_comes_from_product_version_line() {
    let s = StandIn::new();
    let plesk = s.plesk(secs(60), secs(5));
    assert_eq!(plesk.version().await.unwrap().as_deref(), Some("18.0.64.1"));
    s.set("version", "18.0.70.2\n");
    assert_eq!(plesk.version().await.unwrap().as_deref(), Some("18.0.70.2"));
    assert_eq!(s.read("calls.log"), "version\nversion\n");
}

#[tokio::test]
async fn retrieve_lists_main_and_attached_keys() {
    let s = StandIn::new();
    s.set("key_id", "PLSK111385020006\n");
    s.set("attached", "EXT.12345678.0001\nEXT.87654321.0002\n");
    let out = s.plesk(secs(60), secs(5)).retrieve_keys().await;
    assert!(out.success(), "{out:?}");
    assert_eq!(
        out.output,
        "Updating license key PLSK.11138502.0006: Done\n\
         Updating license key EXT.12345678.0001: Done\n\
         Updating license key EXT.87654321.0002: Done\n"
    );
    assert_eq!(s.read("calls.log"), "bin license --retrieve\n");
}

#[tokio::test]
async fn failing_command_keeps_exit_code_and_stderr() {
    let s = StandIn::new();
    s.set("fail", "Error: the key server refused the activation code.\n");
    s.set("fail_code", "4");
    let out = s.plesk(secs(60), secs(5)).install_key(CODE).await;
    assert_eq!(out.exit_code, Some(4));
    assert!(!out.timed_out);
    assert!(!out.success());
    assert_eq!(out.output, "Error: the key server refused the activation code.\n");
    assert_eq!(s.read("key_id"), "", "a failed install leaves the key alone");
}

#[tokio::test]
async fn unknown_utility_fails_with_message() {
    let s = StandIn::new();
    let out = ProcessRunner
        .run(CommandSpec {
            program: s.command(),
            args: vec!["bin".into(), "nosuch".into()],
            timeout: secs(60),
            kill_grace: secs(5),
        })
        .await;
    assert_eq!(out.exit_code, Some(1));
    assert_eq!(out.output, "Utility 'nosuch' not found.\n");
}

#[tokio::test]
async fn hanging_command_times_out() {
    let s = StandIn::new();
    s.set("hang", "");
    let start = Instant::now();
    let out = s.plesk(secs(1), secs(1)).install_key(CODE).await;
    assert!(out.timed_out, "{out:?}");
    assert_eq!(out.exit_code, None);
    assert!(out.output.ends_with("timed out after 1 s\n"), "{:?}", out.output);
    assert!(start.elapsed() < secs(15), "took {:?}", start.elapsed());
    let pid: i32 = s.read("started").trim().parse().expect("stand-in wrote its pid");
    assert!(wait_until_dead(pid), "stand-in {pid} still alive");
}

#[tokio::test]
async fn command_ignoring_sigterm_is_killed_after_grace() {
    let s = StandIn::new();
    s.set("ignore_term", "");
    s.set("hang", "");
    let start = Instant::now();
    let out = s.plesk(secs(1), secs(1)).retrieve_keys().await;
    let took = start.elapsed();
    assert!(out.timed_out, "{out:?}");
    assert_eq!(out.exit_code, None);
    assert!(out.output.ends_with("timed out after 1 s\n"), "{:?}", out.output);
    // SIGTERM was ignored, so only the SIGKILL after the grace ended it.
    assert!(took >= Duration::from_millis(1900), "took {took:?}");
    assert!(took < secs(15), "took {took:?}");
    let pid: i32 = s.read("started").trim().parse().expect("stand-in wrote its pid");
    assert!(wait_until_dead(pid), "stand-in {pid} still alive");
}

#[tokio::test]
async fn grandchild_left_behind_is_killed_and_does_not_hold_us() {
    let s = StandIn::new();
    s.set("key_id", "PLSK123456780001");
    s.set("grandchild", "");
    let start = Instant::now();
    let out = s.plesk(secs(60), secs(5)).retrieve_keys().await;
    assert!(out.success(), "{out:?}");
    assert_eq!(out.output, "Updating license key PLSK.12345678.0001: Done\n");
    // The grandchild holds the output pipe; without the group kill we would wait for it.
    assert!(start.elapsed() < secs(10), "took {:?}", start.elapsed());
    let pid: i32 = s.read("grandchild.pid").trim().parse().expect("grandchild pid");
    assert!(wait_until_dead(pid), "grandchild {pid} survived the run");
}

#[tokio::test]
async fn child_gets_a_small_environment() {
    // Unique to this test; a leak would show up in the child's env.log.
    std::env::set_var("PRA_TEST_CANARY", "must-not-leak");
    let s = StandIn::new();
    let out = s.plesk(secs(60), secs(5)).version().await;
    assert!(out.is_ok(), "{out:?}");
    let env = s.read("env.log");
    assert!(!env.contains("PRA_TEST_CANARY"), "{env}");
    let mut names: Vec<&str> = env.lines().filter_map(|l| l.split_once('=')).map(|(k, _)| k).collect();
    names.sort_unstable();
    // bash itself adds PWD, SHLVL and `_`.
    let allowed = ["HOME", "LANG", "LC_ALL", "OLDPWD", "PATH", "PWD", "SHLVL", "_"];
    for name in &names {
        assert!(allowed.contains(name), "unexpected variable {name} in:\n{env}");
    }
    for line in [
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "LC_ALL=C",
        "LANG=C",
    ] {
        assert!(env.lines().any(|l| l == line), "{line} missing from:\n{env}");
    }
    assert!(names.contains(&"HOME"));
}

#[tokio::test]
async fn output_keeps_only_the_last_16_kib() {
    let s = StandIn::new();
    s.set("key_id", "PLSK123456780001");
    s.set("spam", "100");
    let out = s.plesk(secs(60), secs(5)).retrieve_keys().await;
    assert!(out.success(), "exit {:?}", out.exit_code);

    let mut full = String::new();
    let dots = ".".repeat(51);
    for i in 1..=100 * 16 {
        full.push_str(&format!("spam {i:06} {dots}\n"));
    }
    full.push_str("Updating license key PLSK.12345678.0001: Done\n");
    assert_eq!(full.len(), 100 * 1024 + 46);
    assert_eq!(out.output.len(), OUTPUT_TAIL);
    assert_eq!(out.output, full[full.len() - OUTPUT_TAIL..]);
}

#[tokio::test]
async fn missing_or_unexecutable_command_is_a_spawn_error() {
    let s = StandIn::new();
    let missing = s.dir.path().join("no-plesk");
    let out = ProcessRunner
        .run(CommandSpec {
            program: missing.clone(),
            args: vec![OsString::from("version")],
            timeout: secs(5),
            kill_grace: secs(1),
        })
        .await;
    assert_eq!(out.exit_code, None);
    assert_eq!(
        out.spawn_error,
        Some(format!("cannot run {}: No such file or directory", missing.display()))
    );
    assert!(!out.success());

    let plain = s.dir.path().join("not-executable");
    fs::write(&plain, "#!/bin/sh\n").unwrap();
    let plesk = Plesk::new(plain.clone(), secs(5), Arc::new(ProcessRunner));
    let err = plesk.version().await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "`{0} version` failed: cannot run {0}: Permission denied",
            plain.display()
        )
    );
}
