//! The root agent and a hostile panel.ini (agent contract section 4, version 2): a FIFO never
//! hangs `sync` or the daemon, a symlink is followed only through root-owned directories no
//! one else can write, a dangling link is never created through; `status` and `check` name
//! the refused file and why.
// Unix: sockets, signals, modes, shell stand-ins. Windows: tests/windows_daemon.rs.
#![cfg(unix)]

mod support;

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use support::daemon::{eventually, Daemon};
use support::sandbox::{text, Sandbox};

const BUY: &str = "https://shop.example.com/buy";
/// Generous bound for a command that must not hang (the old code hung for ever).
const PROMPT: Duration = Duration::from_secs(5);

/// Runs the agent; None when it had not exited after `limit` (it is killed then).
fn agent_within(sb: &Sandbox, args: &[&str], limit: Duration) -> Option<(Output, Duration)> {
    let start = Instant::now();
    let mut child = sb
        .command(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    while start.elapsed() < limit {
        if child.try_wait().unwrap().is_some() {
            return Some((child.wait_with_output().unwrap(), start.elapsed()));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

fn problems(status: &serde_json::Value) -> String {
    status["health"]["problems"].to_string()
}

fn mkfifo(p: &Path) {
    nix::unistd::mkfifo(p, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
}

#[test]
fn fifo_at_panel_ini_is_refused_by_sync_check_and_the_daemon_which_keeps_answering() {
    let sb = Sandbox::new("", &format!("buy_url = {BUY}"), "");
    mkfifo(&sb.panel_ini);
    let path = sb.panel_ini.display().to_string();

    // Without a daemon: the pass refuses the FIFO with a sentence and ends.
    let (out, took) = agent_within(&sb, &["sync"], PROMPT).expect("sync hung on a FIFO at panel.ini");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.contains(&path) && err.contains("FIFO"), "{err} (after {took:?})");

    let (out, _) = agent_within(&sb, &["check"], PROMPT).expect("check hung on a FIFO at panel.ini");
    assert_eq!(out.status.code(), Some(1));
    let lines = text(&out.stdout);
    let line = lines
        .lines()
        .find(|l| l.contains("panel.ini:"))
        .unwrap_or_else(|| panic!("{lines}"));
    assert!(
        line.starts_with("FAIL") && line.contains(&path) && line.contains("FIFO"),
        "{line}"
    );

    // The daemon starts, answers status at once and names the FIFO in it.
    let d = Daemon::start(&sb);
    let s = d
        .wait_status(|s| problems(s).contains("FIFO"), PROMPT)
        .expect("status does not name the FIFO");
    assert_eq!(s["health"]["status"], "degraded");
    assert!(problems(&s).contains(&path), "{s}");

    // A sync through the daemon ends with the sentence, and the daemon still answers fast.
    let (out, _) = agent_within(&sb, &["sync"], PROMPT).expect("sync through the daemon hung");
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("FIFO"), "{}", text(&out.stderr));
    for _ in 0..3 {
        let (out, took) = agent_within(&sb, &["status", "--json"], PROMPT).expect("status hung");
        assert_eq!(out.status.code(), Some(1), "degraded: {}", text(&out.stderr));
        assert!(took < Duration::from_secs(1), "status took {took:?}");
        assert!(text(&out.stdout).contains("FIFO"));
    }

    // Put a regular file back: the daemon repairs it and is healthy again.
    fs::remove_file(&sb.panel_ini).unwrap();
    sb.write_panel_ini("[debug]\nenabled = on\n");
    let _ = agent_within(&sb, &["sync"], PROMPT).expect("sync hung");
    assert!(
        eventually(PROMPT, || sb.read_panel_ini().contains(BUY)),
        "{}",
        d.log_text()
    );
    assert!(d.wait_status(|s| s["health"]["status"] == "ok", PROMPT).is_some());

    // A FIFO renamed over the file while the daemon watches it: the watcher's re-read
    // refuses it too, and status keeps answering at once.
    let fifo = sb.panel_ini.with_file_name("panel.ini.fifo");
    mkfifo(&fifo);
    fs::rename(&fifo, &sb.panel_ini).unwrap();
    let s = d
        .wait_status(|s| problems(s).contains("FIFO"), PROMPT)
        .unwrap_or_else(|| panic!("the watcher did not refuse the FIFO; log:\n{}", d.log_text()));
    assert!(problems(&s).contains(&path), "{s}");
    let (_, took) = agent_within(&sb, &["status"], PROMPT).expect("status hung");
    assert!(took < Duration::from_secs(1), "status took {took:?}");
    assert_eq!(d.stop().code(), Some(0));
}

/// panel.ini in the sandbox's conf dir as a link to `real/panel.ini` holding `before`.
fn link_panel_ini(sb: &Sandbox, before: &str) -> std::path::PathBuf {
    let real = sb.dir.path().join("real");
    fs::create_dir_all(&real).unwrap();
    fs::set_permissions(&real, fs::Permissions::from_mode(0o755)).unwrap();
    let target = real.join("panel.ini");
    fs::write(&target, before).unwrap();
    symlink(&target, &sb.panel_ini).unwrap();
    target
}

#[test]
fn a_safe_link_is_followed_and_its_target_edited() {
    let sb = Sandbox::new("", &format!("buy_url = {BUY}"), "");
    let target = link_panel_ini(&sb, "[debug]\nenabled = on\n");
    let out = sb.agent(&["sync"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(fs::symlink_metadata(&sb.panel_ini).unwrap().file_type().is_symlink());
    assert_eq!(
        fs::read_to_string(&target).unwrap(),
        format!("[debug]\nenabled = on\n\n[extensions]\nbuyUrl = \"{BUY}\"\n")
    );
}

#[test]
fn an_unsafe_link_is_refused_touching_nothing_and_named_by_check_and_status() {
    let sb = Sandbox::new("", &format!("buy_url = {BUY}"), "");
    let before = "; the admin's\n[extensions]\nbuyUrl = \"https://old.example\"\n";
    let target = link_panel_ini(&sb, before);
    // Anyone may now replace the link in Plesk's conf dir.
    let conf = sb.panel_ini.parent().unwrap();
    fs::set_permissions(conf, fs::Permissions::from_mode(0o777)).unwrap();

    let out = sb.agent(&["sync"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains(&sb.panel_ini.display().to_string()) && err.contains("writable by group or others"),
        "{err}"
    );
    assert_eq!(
        fs::read(&target).unwrap(),
        before.as_bytes(),
        "written through an unsafe link"
    );
    assert!(!sb.state_dir.join("backup").exists());

    let check = text(&sb.agent(&["check"]).stdout);
    assert!(
        check
            .lines()
            .any(|l| l.starts_with("FAIL panel.ini") && l.contains("writable by group or others")),
        "{check}"
    );
    let out = sb.agent(&["status", "--json"]);
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(problems(&s).contains("symlink"), "{s}");

    // Not root-owned (as root, hand the link's directory to nobody), even if not writable.
    if nix::unistd::geteuid().is_root() {
        fs::set_permissions(conf, fs::Permissions::from_mode(0o755)).unwrap();
        nix::unistd::chown(conf, Some(65534.into()), None).unwrap();
        let out = sb.agent(&["sync"]);
        assert_eq!(out.status.code(), Some(1));
        assert!(text(&out.stderr).contains("not root"), "{}", text(&out.stderr));
        assert_eq!(fs::read(&target).unwrap(), before.as_bytes());
    }
}

#[test]
fn a_dangling_link_never_gets_its_target_created() {
    let sb = Sandbox::new("", &format!("buy_url = {BUY}"), "");
    let target = sb.dir.path().join("etc-sudoers-stand-in");
    symlink(&target, &sb.panel_ini).unwrap();
    let d = Daemon::start(&sb);
    let s = d
        .wait_status(|s| problems(s).contains("does not exist"), PROMPT)
        .expect("status does not name the dangling link");
    assert!(problems(&s).contains(&sb.panel_ini.display().to_string()), "{s}");
    let out = d.agent(&["sync"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(!target.exists(), "the agent created a file through a dangling link");
    assert!(fs::symlink_metadata(&sb.panel_ini).unwrap().file_type().is_symlink());
    assert_eq!(d.stop().code(), Some(0));
}
