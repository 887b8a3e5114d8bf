//! Result delivery against the test store over real HTTP (agent contract 5.2, version 2): a
//! `410` is an acknowledgement, and a result the store keeps refusing never holds back the
//! results of later jobs.
// Unix: sockets, signals, modes, shell stand-ins. Windows: tests/windows_daemon.rs.
#![cfg(unix)]

mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use support::daemon::{set_config, Daemon};
use support::sandbox::{store, store_with_job, Sandbox};

const T: Duration = Duration::from_secs(5);

#[test]
fn a_result_answered_410_is_acknowledged_and_leaves_the_queue() {
    let store = store_with_job("gone-1");
    store.result_status_for("gone-1", 410);
    let sb = Sandbox::new(&store.url(), "", "");
    let d = Daemon::start(&sb);
    assert!(
        store.wait_for(|s| s.results().iter().any(|(id, _)| id == "gone-1"), T),
        "no result POSTed; log:\n{}",
        d.log_text()
    );
    let s = d
        .wait_status(
            // `recent` too: a status written before the pass that ran the job also has
            // nothing undelivered.
            |s| {
                s["jobs"]["undelivered_results"] == 0
                    && s["health"]["status"] == "ok"
                    && s["jobs"]["recent"].to_string().contains("gone-1")
            },
            T,
        )
        .unwrap_or_else(|| {
            panic!(
                "the 410'd result is still queued: {}; log:\n{}",
                d.status_json(),
                d.log_text()
            )
        });
    assert!(s["jobs"]["recent"].to_string().contains("gone-1"), "{s}");
    assert!(d.log_text().contains("410"), "the drop is not logged");
    assert_eq!(d.stop().code(), Some(0));

    // Acknowledged for good: a restart has nothing to deliver.
    store.set_instructions(json!({}));
    let before = store.results().len();
    let d = Daemon::start(&sb);
    assert!(d.wait_status(|s| s["central"]["last_poll_ok"] == true, T).is_some());
    assert_eq!(d.status_json()["jobs"]["undelivered_results"], 0);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(store.results().len(), before, "the dropped result was sent again");
    assert_eq!(d.stop().code(), Some(0));
}

#[test]
fn a_result_refused_for_ever_does_not_hold_back_a_later_jobs_result() {
    let store = store();
    store.set_instructions(json!({"jobs": [{"id": "stuck-1", "type": "retrieve_keys"}]}));
    store.result_status_for("stuck-1", 500);
    let sb = Sandbox::new(&store.url(), "", "");
    // A holding store, so the later job reaches the agent at once.
    set_config(&sb, "central", "long_poll", "25");
    let d = Daemon::start(&sb);
    assert!(
        store.wait_for(|s| s.results().iter().any(|(id, _)| id == "stuck-1"), T),
        "no first attempt; log:\n{}",
        d.log_text()
    );
    // Let the refused result go into backoff and be retried at least once.
    std::thread::sleep(Duration::from_secs(2));

    let t0 = Instant::now();
    store.set_instructions(json!({"jobs": [
        {"id": "stuck-1", "type": "retrieve_keys"},
        {"id": "later-1", "type": "retrieve_keys"}
    ]}));
    assert!(
        store.wait_for(|s| s.results().iter().any(|(id, _)| id == "later-1"), T),
        "the later job's result was not POSTed within {T:?} while stuck-1 was refused; log:\n{}",
        d.log_text()
    );
    let took = t0.elapsed();
    assert!(store
        .results()
        .iter()
        .any(|(id, r)| id == "later-1" && r["status"] == "succeeded"));
    let s = d
        .wait_status(|s| s["jobs"]["undelivered_results"] == 1, T)
        .expect("only stuck-1 stays queued");
    assert_eq!(s["jobs"]["undelivered_results"], 1, "{s} (later-1 after {took:?})");
    assert_eq!(d.stop().code(), Some(0));
}
