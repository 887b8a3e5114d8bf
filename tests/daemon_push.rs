//! Signed wake-up pushes to the real daemon (contract 5.4): a valid one runs new work at
//! once although polling is slow; every refused one is answered and causes no poll.
// Unix: sockets, signals, modes, shell stand-ins. Windows: tests/windows_daemon.rs.
#![cfg(unix)]

mod support;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use serde_json::json;
use support::daemon::{set_config, Daemon};
use support::net::{free_port, http, sign, unix_now};
use support::sandbox::{store, Sandbox};
use support::store::FakeStore;

const SECRET: &[u8] = b"push-s3cret";

fn sandbox(store: &FakeStore) -> (Sandbox, u16) {
    let port = free_port();
    let sb = Sandbox::new(&store.url(), "", "");
    let secret = sb.dir.path().join("push.secret");
    std::fs::write(&secret, [SECRET, b"\n"].concat()).unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    set_config(&sb, "central", "poll_interval", "3600");
    set_config(&sb, "push", "listen", &format!("127.0.0.1:{port}"));
    set_config(&sb, "push", "secret_file", &secret.display().to_string());
    (sb, port)
}

#[test]
fn a_signed_push_runs_new_work_at_once_and_refused_pushes_cause_no_poll() {
    let store = store();
    let (sb, port) = sandbox(&store);
    let d = Daemon::start(&sb);
    assert!(
        d.wait_status(|s| s["central"]["last_poll_ok"] == true, Duration::from_secs(5))
            .is_some(),
        "no first poll; log:\n{}",
        d.log_text()
    );
    assert_eq!(d.status_json()["push"]["listen"], format!("127.0.0.1:{port}"));

    store.set_instructions(json!({"jobs": [{"id": "push-1", "type": "retrieve_keys"}]}));
    let body = br#"{"reason":"order"}"#;
    let t = unix_now();
    assert_eq!(http(port, "POST", "/v1/wake", Some(&sign(SECRET, t, body)), body), 202);
    assert!(
        store.wait_for(|s| s.results().len() == 1, Duration::from_secs(5)),
        "the pushed job's result did not arrive; log:\n{}",
        d.log_text()
    );
    assert_eq!(store.results()[0].0, "push-1");
    assert_eq!(store.results()[0].1["status"], "succeeded");

    // Let the woken pass finish, then count polls.
    assert!(d
        .wait_status(|s| s["jobs"]["undelivered_results"] == 0, Duration::from_secs(5))
        .is_some());
    let polls = store.poll_count();
    let big = vec![b'x'; 65 * 1024];
    // (what, method, signature, body, expected status)
    type Case<'a> = (&'a str, &'a str, Option<String>, &'a [u8], u16);
    let cases: [Case; 5] = [
        ("unsigned", "POST", None, body, 401),
        ("wrong signature", "POST", Some(sign(b"other", t, body)), body, 401),
        ("stale t", "POST", Some(sign(SECRET, t - 1000, body)), body, 401),
        ("65 KiB body", "POST", Some(sign(SECRET, t, &big)), &big, 413),
        ("GET", "GET", Some(sign(SECRET, t, b"")), b"", 405),
    ];
    for (what, method, sig, b, want) in &cases {
        assert_eq!(http(port, method, "/v1/wake", sig.as_deref(), b), *want, "{what}");
    }
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(store.poll_count(), polls, "a refused push caused a poll");
    let s = d.status_json();
    assert_eq!(s["push"]["accepted"], 1);
    assert_eq!(s["push"]["rejected"], 5);
    assert_eq!(store.results().len(), 1);
    // Five refusals in a burst are one log line (a scanner must not flood the journal).
    let log = d.log_text();
    assert_eq!(log.matches("push refused").count(), 1, "{log}");
    assert_eq!(d.stop().code(), Some(0));
}
