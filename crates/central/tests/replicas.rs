//! Two central replicas on one PostgreSQL database: replicas started together migrate it
//! once, a job queued through replica A wakes a poll held on replica B, and A killed with
//! SIGKILL mid-burst loses no acknowledged job while B keeps serving.

mod support;

use std::collections::HashSet;
use std::process::{Command, Stdio};

use support::central::{bin, Central};
use support::http::poll;
use support::{wait_for, TestDb};

fn held_polls(c: &Central) -> Option<u64> {
    let m = support::http::request(&c.addr, "GET", "/metrics", None, &[], b"").body;
    m.lines()
        .find_map(|l| l.strip_prefix("central_held_polls "))
        .and_then(|n| n.parse().ok())
}

#[test]
fn a_job_queued_on_one_replica_reaches_a_poll_held_on_the_other_and_a_sigkill_loses_nothing() {
    let Some(db) = TestDb::postgres() else { return };
    let dir = tempfile::tempdir().unwrap();
    let url = db.url(dir.path());
    let mut a = Central::on(&dir.path().join("a"), "", &url);
    let mut b = Central::on(&dir.path().join("b"), "", &url);
    // Replicas starting together on a fresh database: four `migrate` at once with both
    // `serve`s; the migrator's advisory lock lets exactly one apply the schema.
    let migrates: Vec<_> = (0..4)
        .map(|_| {
            Command::new(bin())
                .arg("--config")
                .arg(&a.config)
                .arg("migrate")
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    a.start();
    b.start();
    for m in migrates {
        let out = m.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "migrate: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(b.cli(&["check"]).status.code(), Some(0));

    // Admin commands may go to any replica: the host is added through A, polled on B.
    let t = a.add_host("web-1", &[])["token"].as_str().unwrap().to_string();
    let first = poll(&b.addr, "web-1", &t, 0, None);
    assert_eq!(first.status, 200);
    let etag = first.header("etag").unwrap().to_string();
    let (addr, t2, e2) = (b.addr.clone(), t.clone(), etag.clone());
    let held = std::thread::spawn(move || poll(&addr, "web-1", &t2, 30, Some(&e2)));
    wait_for(10, "the poll to be held on B", || {
        (held_polls(&b) == Some(1)).then_some(())
    });
    let job = a.json(&["jobs", "add", "--host", "web-1", "retrieve-keys"]);
    // Held for up to 30 s: answering well before that means B's listener woke it, not the
    // re-read at the deadline.
    wait_for(10, "the poll held on B to answer A's job", || {
        held.is_finished().then_some(())
    });
    let woken = held.join().unwrap();
    assert_eq!(woken.status, 200);
    let body: serde_json::Value = serde_json::from_str(&woken.body).unwrap();
    assert_eq!(body["jobs"][0]["id"], job["id"]);

    // A burst of adds through A, killed with SIGKILL in the middle.
    let burst = support::central::jobs_add_burst(a.config.clone());
    wait_for(60, "a few acknowledged jobs", || {
        let n = b.json(&["jobs", "list"]).as_array().unwrap().len();
        (n >= 21).then_some(())
    });
    a.kill();
    let acked: Vec<String> = burst.join().unwrap().into_iter().map(|(_, id)| id).collect();
    assert!(
        // The first job and 20 of the burst were listed; the last may not have been answered.
        acked.len() >= 19 && acked.len() < 400,
        "the kill landed mid-burst ({} acked)",
        acked.len()
    );
    // B serves every acknowledged job exactly once, to the agent and to the admin.
    let listed: Vec<String> = b
        .json(&["jobs", "list", "--host", "web-1", "--state", "queued"])
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(listed.iter().collect::<HashSet<_>>().len(), listed.len());
    let polled: serde_json::Value = serde_json::from_str(&poll(&b.addr, "web-1", &t, 0, None).body).unwrap();
    let polled: Vec<&str> = polled["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap())
        .collect();
    for id in &acked {
        assert_eq!(listed.iter().filter(|l| *l == id).count(), 1, "{id} not exactly once");
        assert!(polled.contains(&id.as_str()), "{id} missing from B's instructions");
    }
    // And B still wakes its own held polls.
    let etag = poll(&b.addr, "web-1", &t, 0, None).header("etag").unwrap().to_string();
    let (addr, t2) = (b.addr.clone(), t.clone());
    let held = std::thread::spawn(move || poll(&addr, "web-1", &t2, 30, Some(&etag)));
    wait_for(10, "the poll to be held on B", || {
        (held_polls(&b) == Some(1)).then_some(())
    });
    let last = b.json(&["jobs", "add", "--host", "web-1", "retrieve-keys"]);
    wait_for(10, "the poll held on B to answer B's job", || {
        held.is_finished().then_some(())
    });
    let woken = held.join().unwrap();
    assert_eq!(woken.status, 200);
    assert!(woken.body.contains(last["id"].as_str().unwrap()));
}

#[test]
fn a_replica_whose_listening_connection_dies_still_wakes_its_held_polls() {
    let Some(db) = TestDb::postgres() else { return };
    let dir = tempfile::tempdir().unwrap();
    let url = db.url(dir.path());
    let mut a = Central::on(&dir.path().join("a"), "", &url);
    let mut b = Central::on(&dir.path().join("b"), "", &url);
    a.start();
    b.start();
    let t = a.add_host("web-1", &[])["token"].as_str().unwrap().to_string();
    let etag = poll(&b.addr, "web-1", &t, 0, None).header("etag").unwrap().to_string();
    let (addr, t2) = (b.addr.clone(), t.clone());
    let held = std::thread::spawn(move || poll(&addr, "web-1", &t2, 30, Some(&etag)));
    wait_for(10, "the poll to be held on B", || {
        (held_polls(&b) == Some(1)).then_some(())
    });
    // Cut every listening connection (A's and B's), as a database restart or a dropped
    // TCP connection would; then queue a job while B may not be listening yet.
    let pg = db.pg().unwrap();
    let dbname = url.rsplit('/').next().unwrap();
    let cut = pg.sql(
        dbname,
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
         WHERE application_name = 'plesk-reseller-central listener'",
    );
    assert_eq!(cut, "2", "both replicas listen");
    let job = a.json(&["jobs", "add", "--host", "web-1", "retrieve-keys"]);
    wait_for(10, "the poll held on B to answer after B reconnected", || {
        held.is_finished().then_some(())
    });
    let woken = held.join().unwrap();
    assert_eq!(woken.status, 200);
    assert!(woken.body.contains(job["id"].as_str().unwrap()));
    wait_for(10, "B to say it lost its listening connection", || {
        b.log_text().contains("reconnecting").then_some(())
    });
}

#[test]
fn a_replica_whose_listening_connection_silently_goes_dead_reconnects_and_wakes_its_polls() {
    let Some(db) = TestDb::postgres() else { return };
    let dir = tempfile::tempdir().unwrap();
    let url = db.url(dir.path());
    // B reaches the database through a proxy that can black-hole its listening connection.
    let (upstream, rest) = url.trim_start_matches("postgres://postgres@").split_once('/').unwrap();
    let hole = support::blackhole::Blackhole::start(upstream.to_string(), b"plesk-reseller-central listener");
    let b_url = format!("postgres://postgres@127.0.0.1:{}/{rest}", hole.port);
    // Held polls of up to 120 s: an answer well before that is B's listener, not the deadline.
    let mut a = Central::on(&dir.path().join("a"), "", &url);
    let mut b = Central::on(&dir.path().join("b"), "[server]\nmax_wait = 120\n", &b_url);
    a.start();
    b.start();
    let t = a.add_host("web-1", &[])["token"].as_str().unwrap().to_string();
    let etag = poll(&b.addr, "web-1", &t, 0, None).header("etag").unwrap().to_string();
    hole.freeze();
    let (addr, t2) = (b.addr.clone(), t.clone());
    let held = std::thread::spawn(move || poll(&addr, "web-1", &t2, 120, Some(&etag)));
    wait_for(10, "the poll to be held on B", || {
        (held_polls(&b) == Some(1)).then_some(())
    });
    let job = a.json(&["jobs", "add", "--host", "web-1", "retrieve-keys"]);
    // Idle for 15 s, unanswered for 5 s, reconnected: every held poll re-reads.
    wait_for(
        60,
        "the poll held on B to answer after B noticed the dead connection",
        || held.is_finished().then_some(()),
    );
    let woken = held.join().unwrap();
    assert_eq!(woken.status, 200);
    assert!(woken.body.contains(job["id"].as_str().unwrap()));
    assert!(
        b.log_text().contains("does not answer; reconnecting"),
        "{}",
        b.log_text()
    );
}

#[test]
fn a_poll_held_on_one_replica_gets_401_when_the_token_is_rotated_or_removed_on_the_other() {
    use std::time::{Duration, Instant};
    let Some(db) = TestDb::postgres() else { return };
    let dir = tempfile::tempdir().unwrap();
    let url = db.url(dir.path());
    let mut a = Central::on(&dir.path().join("a"), "", &url);
    let mut b = Central::on(&dir.path().join("b"), "", &url);
    a.start();
    b.start();
    let old = a.add_host("web-1", &[])["token"].as_str().unwrap().to_string();
    let held = support::held::hold(&b, "web-1", &old, 30);
    let rotated = a.json(&["hosts", "rotate-token", "web-1"]);
    let at = Instant::now();
    let job = a.json(&["jobs", "add", "--host", "web-1", "install-key", support::CODE]);
    let (answer, when) = held.join().unwrap();
    assert_eq!(answer.status, 401, "{}", answer.body);
    assert!(!answer.body.contains(support::CODE));
    assert!(
        when.saturating_duration_since(at) < Duration::from_secs(1),
        "B answered {:?} after rotate-token on A",
        when.saturating_duration_since(at)
    );
    let new = rotated["token"].as_str().unwrap().to_string();
    assert!(poll(&b.addr, "web-1", &new, 0, None)
        .body
        .contains(job["id"].as_str().unwrap()));

    // Removed on A and added again under the same id: B's held poll never sees the new job.
    let held = support::held::hold(&b, "web-1", &new, 30);
    a.json(&["hosts", "rm", "web-1"]);
    a.add_host("web-1", &[]);
    a.json(&["jobs", "add", "--host", "web-1", "install-key", support::CODE]);
    let (answer, _) = held.join().unwrap();
    assert_eq!(answer.status, 401, "{}", answer.body);
    assert!(!answer.body.contains(support::CODE));
}
