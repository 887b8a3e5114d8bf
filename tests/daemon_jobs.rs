//! Jobs under the real daemon: crash safety across SIGKILL, SIGTERM waiting for the job,
//! `sync` handed to the running daemon, and the spool transport.
// Unix: sockets, signals, modes, shell stand-ins. Windows: tests/windows_daemon.rs.
#![cfg(unix)]

mod support;

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde_json::json;
use support::daemon::{eventually, kill_mid_job, Daemon};
use support::sandbox::{store, store_with_job, Sandbox};

const T: Duration = Duration::from_secs(5);

#[test]
fn sigkill_during_a_job_runs_it_again_once_and_never_after_success() {
    let store = store_with_job("crash-1");
    let sb = Sandbox::new(&store.url(), "", "");
    kill_mid_job(&sb, "3");
    assert!(store.results().is_empty());

    let d = Daemon::start(&sb);
    assert!(
        store.wait_for(|s| !s.results().is_empty(), T),
        "no result after the restart; log:\n{}",
        d.log_text()
    );
    assert!(d.wait_status(|s| s["jobs"]["undelivered_results"] == 0, T).is_some());
    let results = store.results();
    // The interrupted job runs and is delivered before the first poll; that poll still lists
    // it (this store never drops a job), so the same result may go once more: never another.
    assert!(
        results.len() <= 2 && results.iter().all(|r| r == &results[0]),
        "{results:?}"
    );
    assert_eq!(results[0].0, "crash-1");
    assert_eq!(results[0].1["status"], "succeeded");
    assert_eq!(results[0].1["attempts"], 2);
    assert_eq!(sb.license_calls().len(), 2);
    assert_eq!(d.stop().code(), Some(0));

    // The store still lists it: a restart sends the stored result again but never reruns it.
    let d = Daemon::start(&sb);
    assert!(d
        .wait_status(
            |s| s["central"]["last_poll_ok"] == true && s["jobs"]["undelivered_results"] == 0,
            T
        )
        .is_some());
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(sb.license_calls().len(), 2, "{:?}", sb.license_calls());
    for (id, r) in store.results() {
        assert_eq!(id, "crash-1");
        assert_eq!(r["attempts"], 2);
    }
    assert_eq!(d.stop().code(), Some(0));
}

#[test]
fn sigterm_during_a_job_waits_for_it_delivers_and_exits_0() {
    let store = store_with_job("term-1");
    let sb = Sandbox::new(&store.url(), "", "");
    sb.plesk_switch("delay", "2");
    let d = Daemon::start(&sb);
    d.wait_job_started(&sb);
    // status does not wait for the running job
    let t0 = Instant::now();
    let s = d.status_json();
    assert!(t0.elapsed() < Duration::from_secs(2));
    assert_eq!(s["jobs"]["running"], "term-1");

    let t0 = Instant::now();
    let log = d.log.clone();
    let st = d.stop();
    assert_eq!(st.code(), Some(0), "log:\n{}", std::fs::read_to_string(&log).unwrap());
    // The sandbox's job timeout is 20 s.
    assert!(t0.elapsed() < Duration::from_secs(20), "{:?}", t0.elapsed());
    let results = store.results();
    assert_eq!(results.len(), 1, "{results:?}");
    assert_eq!(results[0].1["status"], "succeeded");
    assert_eq!(results[0].1["attempts"], 1);

    // Nothing is left to redo.
    let out = sb.agent(&["status", "--json"]);
    assert_eq!(out.status.code(), Some(3));
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s["jobs"]["undelivered_results"], 0);
    assert_eq!(s["jobs"]["recent"][0]["status"], "succeeded");
}

#[test]
fn sync_while_the_daemon_runs_is_done_by_the_daemon() {
    let store = store();
    let sb = Sandbox::new(&store.url(), "", "");
    let d = Daemon::start(&sb);
    assert!(d.wait_status(|s| s["central"]["last_poll_ok"] == true, T).is_some());
    store.set_instructions(json!({"jobs": [{"id": "sync-1", "type": "retrieve_keys"}]}));

    let out = sb.agent(&["sync"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let results = store.results();
    assert_eq!(results.len(), 1, "{results:?}");
    assert_eq!(results[0].0, "sync-1");
    assert_eq!(sb.license_calls().len(), 1);
    let log = d.log_text();
    assert!(
        log.lines().any(|l| l.contains("running job") && l.contains("sync-1")),
        "the daemon's log does not show the pass:\n{log}"
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(store.results().len(), 1);
    d.signal(Signal::SIGTERM);
    let mut d = d;
    assert_eq!(d.wait_exit(Duration::from_secs(10)).and_then(|s| s.code()), Some(0));
}

fn write_instructions(sb: &Sandbox, v: serde_json::Value) {
    let tmp = sb.spool.join(".instructions.json.tmp");
    std::fs::write(&tmp, v.to_string()).unwrap();
    std::fs::rename(&tmp, sb.spool.join("instructions.json")).unwrap();
}

#[test]
fn spool_instructions_created_or_replaced_run_within_seconds() {
    let sb = Sandbox::with_spool("");
    let d = Daemon::start(&sb);
    assert_eq!(d.status_json()["central"]["transport"], "spool");

    write_instructions(&sb, json!({"jobs": [{"id": "spool-1", "type": "retrieve_keys"}]}));
    let r1 = sb.spool.join("results/spool-1.json");
    assert!(eventually(T, || r1.exists()), "no result file; log:\n{}", d.log_text());
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&r1).unwrap()).unwrap();
    assert_eq!(v["status"], "succeeded");

    write_instructions(
        &sb,
        json!({"jobs": [{"id": "spool-1", "type": "retrieve_keys"}, {"id": "spool-2", "type": "retrieve_keys"}]}),
    );
    let r2 = sb.spool.join("results/spool-2.json");
    assert!(eventually(T, || r2.exists()), "no result file; log:\n{}", d.log_text());
    assert_eq!(sb.license_calls().len(), 2, "{:?}", sb.license_calls());
    assert_eq!(d.stop().code(), Some(0));
}

#[test]
fn status_answers_and_panel_ini_follows_a_reload_while_a_job_runs_and_while_stopping() {
    let store = store_with_job("slow-1");
    let sb = Sandbox::new(&store.url(), "buy_url = https://one.example.com", "");
    // Long enough that a reload waiting for the job would be seen.
    sb.plesk_switch("delay", "8");
    let d = Daemon::start(&sb);
    d.wait_job_started(&sb);

    // SIGHUP while the job runs: panel.ini follows without waiting for the job.
    support::daemon::set_config(&sb, "panel", "buy_url", "https://two.example.com");
    d.signal(Signal::SIGHUP);
    assert!(
        eventually(Duration::from_secs(5), || sb
            .read_panel_ini()
            .contains("https://two.example.com")),
        "the reload waited for the job: {:?}; log:\n{}",
        sb.read_panel_ini(),
        d.log_text()
    );
    assert!(store.results().is_empty(), "the job should still run");

    // SIGTERM while the job runs: the daemon still answers status until it exits.
    d.signal(Signal::SIGTERM);
    std::thread::sleep(Duration::from_millis(300));
    let s = d.status_json();
    assert_eq!(s["daemon"]["running"], true);
    assert_eq!(s["jobs"]["running"], "slow-1");
    let mut d = d;
    let st = d.wait_exit(Duration::from_secs(20)).expect("no exit after SIGTERM");
    assert_eq!(st.code(), Some(0));
    assert_eq!(store.results().len(), 1);
}
