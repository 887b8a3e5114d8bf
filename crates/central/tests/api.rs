//! The agents' API of the real central over loopback HTTP: tokens, ETag/304, held polls,
//! results first-wins, limits; the admin CLI's exits; restart and SIGKILL durability.

mod support;

use std::collections::HashSet;

use support::central::Central;
use support::http::{poll, request, result_body};
use support::{wait_for, CODE};

fn started(dir: &tempfile::TempDir, db: &support::TestDb) -> Central {
    let root = dir.path().join("central");
    let mut c = Central::on(
        &root,
        "[fleet]\ncatalog_url = http://catalog.example.com:8080\n",
        &db.url(&root),
    );
    c.start();
    c
}

fn token(c: &Central, host: &str) -> String {
    c.add_host(host, &[])["token"].as_str().unwrap().to_string()
}

on_both! {
#[test]
fn tokens_answer_401_403_and_rotation_stops_the_old_one(db) {
    let dir = tempfile::tempdir().unwrap();
    let c = started(&dir, &db);
    let a = token(&c, "web-a");
    let _b = token(&c, "web-b");
    assert_eq!(poll(&c.addr, "web-a", &a, 0, None).status, 200);
    assert_eq!(
        request(&c.addr, "GET", "/v1/hosts/web-a/instructions", None, &[], b"").status,
        401
    );
    assert_eq!(poll(&c.addr, "web-a", "not-a-token", 0, None).status, 401);
    // A valid token on another host's paths: 403 whether or not that host exists.
    assert_eq!(poll(&c.addr, "web-b", &a, 0, None).status, 403);
    assert_eq!(poll(&c.addr, "nobody", &a, 0, None).status, 403);
    let rotated = c.json(&["hosts", "rotate-token", "web-a"]);
    let new = rotated["token"].as_str().unwrap();
    assert_eq!(poll(&c.addr, "web-a", &a, 0, None).status, 401);
    assert_eq!(poll(&c.addr, "web-a", new, 0, None).status, 200);
    // The database keeps the hash only.
    assert!(!support::files_hold(&c.db_files(), new));
    // A held poll of a host being removed ends with 401, and its token stops working.
    let (addr, held_token) = (c.addr.clone(), new.to_string());
    let etag = poll(&c.addr, "web-a", new, 0, None).header("etag").unwrap().to_string();
    let held = std::thread::spawn(move || poll(&addr, "web-a", &held_token, 30, Some(&etag)));
    wait_for(10, "the poll to be held", || {
        let m = request(&c.addr, "GET", "/metrics", None, &[], b"").body;
        m.contains("central_held_polls 1").then_some(())
    });
    c.json(&["hosts", "rm", "web-a"]);
    // Version 2: the token died with its host, so the held poll gets what the token gets.
    assert_eq!(held.join().unwrap().status, 401);
    assert_eq!(poll(&c.addr, "web-a", new, 0, None).status, 401);
    assert_eq!(c.cli(&["hosts", "add", "web-b"]).status.code(), Some(1));
}
}

on_both! {
#[test]
fn etag_304_and_a_held_poll_answers_with_the_new_job(db) {
    let dir = tempfile::tempdir().unwrap();
    let c = started(&dir, &db);
    let t = token(&c, "web-1");
    let first = poll(&c.addr, "web-1", &t, 0, None);
    assert_eq!(first.status, 200);
    let body: serde_json::Value = serde_json::from_str(&first.body).unwrap();
    assert_eq!(body["panel_ini"]["catalog_url"], "http://catalog.example.com:8080");
    assert_eq!(body["jobs"], serde_json::json!([]));
    let etag = first.header("etag").unwrap().to_string();
    let same = poll(&c.addr, "web-1", &t, 1, Some(&etag));
    assert_eq!(same.status, 304);
    assert_eq!(same.header("etag"), Some(etag.as_str()));
    // Held with wait=30: only a job queued meanwhile makes it answer 200.
    let (addr, t2, e2) = (c.addr.clone(), t.clone(), etag.clone());
    let held = std::thread::spawn(move || poll(&addr, "web-1", &t2, 30, Some(&e2)));
    wait_for(10, "the poll to be held", || {
        let m = request(&c.addr, "GET", "/metrics", None, &[], b"").body;
        m.contains("central_held_polls 1").then_some(())
    });
    let job = c.json(&[
        "jobs",
        "add",
        "--host",
        "web-1",
        "install-key",
        CODE,
        "--idempotency-key",
        "order-1",
    ]);
    let woken = held.join().unwrap();
    assert_eq!(woken.status, 200);
    let body: serde_json::Value = serde_json::from_str(&woken.body).unwrap();
    assert_eq!(body["jobs"][0]["id"], job["id"]);
    assert_eq!(body["jobs"][0]["activation_code"], CODE);
    assert_ne!(woken.header("etag"), Some(etag.as_str()));
    // The same idempotency key returns the first job.
    let again = c.json(&[
        "jobs",
        "add",
        "--host",
        "web-1",
        "install-key",
        CODE,
        "--idempotency-key",
        "order-1",
    ]);
    assert_eq!(again["id"], job["id"]);
    // A per-host "" is sent as "" (the key must be absent); unset goes back to the fleet.
    c.json(&["hosts", "set", "web-1", "--catalog-url", ""]);
    let b: serde_json::Value = serde_json::from_str(&poll(&c.addr, "web-1", &t, 0, None).body).unwrap();
    assert_eq!(b["panel_ini"]["catalog_url"], "");
    c.json(&["hosts", "set", "web-1", "--unset-catalog-url"]);
    let b: serde_json::Value = serde_json::from_str(&poll(&c.addr, "web-1", &t, 0, None).body).unwrap();
    assert_eq!(b["panel_ini"]["catalog_url"], "http://catalog.example.com:8080");
}
}

on_both! {
#[test]
fn results_first_wins_409_on_another_body_or_a_cancelled_job(db) {
    let dir = tempfile::tempdir().unwrap();
    let c = started(&dir, &db);
    let t = token(&c, "web-1");
    let other = token(&c, "web-2");
    let job = c.json(&["jobs", "add", "--host", "web-1", "retrieve-keys"]);
    let id = job["id"].as_str().unwrap();
    let path = format!("/v1/hosts/web-1/jobs/{id}/result");
    let ok = result_body("succeeded", "Updating license key ...: Done");
    assert_eq!(request(&c.addr, "POST", &path, Some(&t), &[], b"{not json").status, 400);
    // Another host's job: 404 on its own paths (its token on web-1's paths is 403).
    let other_path = format!("/v1/hosts/web-2/jobs/{id}/result");
    assert_eq!(
        request(&c.addr, "POST", &other_path, Some(&other), &[], ok.as_bytes()).status,
        404
    );
    assert_eq!(
        request(&c.addr, "POST", &path, Some(&t), &[], ok.as_bytes()).status,
        200
    );
    assert_eq!(
        request(&c.addr, "POST", &path, Some(&t), &[], ok.as_bytes()).status,
        200
    );
    let different = result_body("failed", "boom");
    assert_eq!(
        request(&c.addr, "POST", &path, Some(&t), &[], different.as_bytes()).status,
        409
    );
    let shown = c.json(&["jobs", "show", id]);
    assert_eq!(shown["state"], "succeeded");
    assert_eq!(shown["result"]["output"], "Updating license key ...: Done");
    let b: serde_json::Value = serde_json::from_str(&poll(&c.addr, "web-1", &t, 0, None).body).unwrap();
    assert_eq!(b["jobs"], serde_json::json!([]));

    let job = c.json(&["jobs", "add", "--host", "web-1", "install-key", CODE]);
    let id = job["id"].as_str().unwrap();
    assert_eq!(c.json(&["jobs", "cancel", id])["state"], "cancelled");
    let path = format!("/v1/hosts/web-1/jobs/{id}/result");
    assert_eq!(
        request(&c.addr, "POST", &path, Some(&t), &[], ok.as_bytes()).status,
        409
    );
    wait_for(10, "the cancelled job's code erased", || {
        (!support::files_hold(&c.db_files(), CODE)).then_some(())
    });
    let cancel_again = c.cli(&["jobs", "cancel", id]);
    assert_eq!(cancel_again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&cancel_again.stderr).contains("cancelled, not queued"));
}
}

on_both! {
#[test]
fn bodies_over_1_mib_get_413_and_bad_jobs_are_refused_with_one_sentence(db) {
    let dir = tempfile::tempdir().unwrap();
    let c = started(&dir, &db);
    let t = token(&c, "web-1");
    let big = vec![b' '; 1024 * 1024 + 1];
    assert_eq!(
        request(&c.addr, "PUT", "/v1/hosts/web-1/report", Some(&t), &[], &big).status,
        413
    );
    let bad = c.cli(&["jobs", "add", "--host", "web-1", "install-key", "not-a-code"]);
    assert_eq!(bad.status.code(), Some(1));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("activation code") && err.lines().count() == 1, "{err}");
    let none = c.cli(&["jobs", "add", "--key-number", "PLSK.99999999.0001", "retrieve-keys"]);
    assert!(String::from_utf8_lossy(&none.stderr).contains("PLSK.99999999.0001"));
    let unknown = c.cli(&["jobs", "add", "--host", "nobody", "retrieve-keys"]);
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("nobody"));
    assert!(c.json(&["jobs", "list"]).as_array().unwrap().is_empty());
    let health = request(&c.addr, "GET", "/healthz", None, &[], b"");
    assert_eq!(health.status, 200);
    assert!(health.body.contains("\"status\":\"ok\""));
}
}

on_both! {
#[test]
fn without_a_server_admin_commands_exit_3_and_a_stale_socket_does_not_stop_serve(db) {
    let dir = tempfile::tempdir().unwrap();
    let mut c = started(&dir, &db);
    let t = token(&c, "web-1");
    // A second server on the same admin socket is refused.
    let second = c.cli(&["serve"]);
    assert_eq!(second.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&second.stderr).contains("already answers"));
    c.kill();
    assert!(
        c.root.join("run/admin.sock").exists(),
        "SIGKILL leaves the socket behind"
    );
    let out = c.cli(&["hosts", "list"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no central server is running"));
    assert_eq!(c.cli(&["check"]).status.code(), Some(0));
    c.start();
    assert_eq!(poll(&c.addr, "web-1", &t, 0, None).status, 200);
}
}

on_both! {
#[test]
fn a_restart_loses_no_job_result_or_token_and_keeps_the_etag(db) {
    let dir = tempfile::tempdir().unwrap();
    let mut c = started(&dir, &db);
    c.pin_port();
    let t = token(&c, "web-1");
    let a = c.json(&["jobs", "add", "--host", "web-1", "install-key", CODE]);
    let b = c.json(&["jobs", "add", "--host", "web-1", "retrieve-keys"]);
    let done = c.json(&["jobs", "add", "--host", "web-1", "retrieve-keys"]);
    let path = format!("/v1/hosts/web-1/jobs/{}/result", done["id"].as_str().unwrap());
    assert_eq!(
        request(
            &c.addr,
            "POST",
            &path,
            Some(&t),
            &[],
            result_body("succeeded", "ok").as_bytes()
        )
        .status,
        200
    );
    let before = poll(&c.addr, "web-1", &t, 0, None);
    assert_eq!(c.stop(), Some(0));
    c.start();
    let after = poll(&c.addr, "web-1", &t, 0, None);
    assert_eq!(after.status, 200, "the token survives");
    assert_eq!(after.body, before.body);
    assert_eq!(after.header("etag"), before.header("etag"));
    let body: serde_json::Value = serde_json::from_str(&after.body).unwrap();
    let ids: Vec<_> = body["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].clone())
        .collect();
    assert_eq!(ids, vec![a["id"].clone(), b["id"].clone()]);
    assert_eq!(
        c.json(&["jobs", "show", done["id"].as_str().unwrap()])["result"]["output"],
        "ok"
    );
}
}

on_both! {
#[test]
fn sigkill_during_a_burst_of_jobs_add_keeps_every_acknowledged_job_exactly_once(db) {
    let dir = tempfile::tempdir().unwrap();
    let mut c = started(&dir, &db);
    token(&c, "web-1");
    let burst = support::central::jobs_add_burst(c.config.clone());
    wait_for(60, "a few acknowledged jobs", || {
        // 21 listed: every one but the last was answered, so at least 20 acknowledged.
        let n = c.json(&["jobs", "list"]).as_array().unwrap().len();
        (n >= 21).then_some(())
    });
    c.kill();
    let acked = burst.join().unwrap();
    assert!(
        acked.len() >= 20 && acked.len() < 400,
        "the kill landed mid-burst ({} acked)",
        acked.len()
    );
    c.start();
    let jobs = c.json(&["jobs", "list", "--host", "web-1"]);
    let listed: Vec<(String, String)> = jobs
        .as_array()
        .unwrap()
        .iter()
        .map(|j| {
            (
                j["idempotency_key"].as_str().unwrap().to_string(),
                j["id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let keys: HashSet<_> = listed.iter().map(|(k, _)| k.clone()).collect();
    assert_eq!(keys.len(), listed.len(), "no idempotency key twice");
    for (key, id) in &acked {
        assert_eq!(
            listed.iter().filter(|(_, i)| i == id).count(),
            1,
            "{key} / {id} not exactly once"
        );
    }
    // Repeating an acknowledged add after the crash returns the same job.
    let (key, id) = &acked[0];
    let again = c.json(&[
        "jobs",
        "add",
        "--host",
        "web-1",
        "retrieve-keys",
        "--idempotency-key",
        key,
    ]);
    assert_eq!(again["id"].as_str(), Some(id.as_str()));
}
}

on_both! {
#[test]
fn slow_clients_do_not_keep_others_from_being_served(db) {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let c = started(&dir, &db);
    let t = token(&c, "web-1");
    // 200 connections that send half a request line and then nothing, and 20 that send a
    // body's first bytes only.
    let mut idle = Vec::new();
    for i in 0..220 {
        let mut s = std::net::TcpStream::connect(&c.addr).unwrap();
        if i < 200 {
            s.write_all(b"GET /v1/hosts/web-1/instr").unwrap();
        } else {
            let head = format!("PUT /v1/hosts/web-1/report HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {t}\r\nContent-Length: 1000\r\n\r\n{{");
            s.write_all(head.as_bytes()).unwrap();
        }
        idle.push(s);
    }
    for _ in 0..5 {
        assert_eq!(poll(&c.addr, "web-1", &t, 0, None).status, 200);
    }
    drop(idle);
}
}

#[test]
fn the_tcp_admin_api_needs_the_admin_token() {
    let dir = tempfile::tempdir().unwrap();
    let (extra, port) = support::central::admin_listen(dir.path(), "an-admin-token-of-some-length");
    // [server] appears twice: rust-ini merges the keys of repeated sections.
    let mut c = Central::new(&dir.path().join("central"), &extra);
    c.start();
    let admin = format!("127.0.0.1:{port}");
    assert_eq!(request(&admin, "GET", "/admin/v1/hosts", None, &[], b"").status, 401);
    assert_eq!(
        request(&admin, "GET", "/admin/v1/hosts", Some("wrong"), &[], b"").status,
        401
    );
    let body = br#"{"id": "web-9"}"#;
    let added = request(
        &admin,
        "POST",
        "/admin/v1/hosts",
        Some("an-admin-token-of-some-length"),
        &[],
        body,
    );
    assert_eq!(added.status, 201, "{}", added.body);
    assert_eq!(c.json(&["hosts", "list"])[0]["id"], "web-9");
    // check: the running server holds both addresses.
    let check = c.cli(&["check"]);
    assert_eq!(
        check.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
}

#[test]
fn check_reports_unknown_keys_and_a_missing_database() {
    let dir = tempfile::tempdir().unwrap();
    let c = Central::new(
        &dir.path().join("central"),
        "[fleet]\nbuy_ulr = https://typo.example.com\n",
    );
    let out = c.cli(&["check"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1));
    assert!(text.contains("[fleet] buy_ulr"), "{text}");
    assert!(text.contains("FAIL database") && text.contains("migrate"), "{text}");
    assert_eq!(c.cli(&["migrate"]).status.code(), Some(0));
    assert_eq!(c.cli(&["check"]).status.code(), Some(0));
    let bad = Central::new(&dir.path().join("bad"), "[server]\nmax_wait = soon\n");
    let out = bad.cli(&["hosts", "list"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("[server] max_wait") && err.lines().count() == 1, "{err}");
}

on_both! {
#[test]
fn a_poll_held_with_a_rotated_or_removed_token_gets_401_and_never_a_later_job(db) {
    use std::time::{Duration, Instant};
    let dir = tempfile::tempdir().unwrap();
    let c = started(&dir, &db);
    let old = token(&c, "web-1");
    let held = support::held::hold(&c, "web-1", &old, 30);
    let rotated = c.json(&["hosts", "rotate-token", "web-1"]);
    let at = Instant::now();
    // Queued at once: a poll still held with the old token would carry it.
    let job = c.json(&["jobs", "add", "--host", "web-1", "install-key", CODE]);
    let (answer, when) = held.join().unwrap();
    assert_eq!(answer.status, 401, "{}", answer.body);
    assert!(!answer.body.contains(CODE) && !answer.body.contains(job["id"].as_str().unwrap()));
    assert!(
        when.saturating_duration_since(at) < Duration::from_secs(1),
        "answered {:?} after rotate-token",
        when.saturating_duration_since(at)
    );
    // The new token gets the job.
    let new = rotated["token"].as_str().unwrap();
    assert!(poll(&c.addr, "web-1", new, 0, None).body.contains(CODE));

    // `hosts rm` and `hosts add` of the same id: the poll held with the first host's token
    // gets 401, never the new host's job.
    let held = support::held::hold(&c, "web-1", new, 30);
    c.json(&["hosts", "rm", "web-1"]);
    let second = token(&c, "web-1");
    let job = c.json(&["jobs", "add", "--host", "web-1", "install-key", CODE]);
    let (answer, _) = held.join().unwrap();
    assert_eq!(answer.status, 401, "{}", answer.body);
    assert!(!answer.body.contains(CODE));
    assert!(poll(&c.addr, "web-1", &second, 0, None).body.contains(job["id"].as_str().unwrap()));
}
}

on_both! {
#[test]
fn a_result_for_a_job_the_central_no_longer_has_gets_410(db) {
    let dir = tempfile::tempdir().unwrap();
    let c = started(&dir, &db);
    token(&c, "web-1");
    let job = c.json(&["jobs", "add", "--host", "web-1", "retrieve-keys"]);
    let id = job["id"].as_str().unwrap();
    // The host is removed (its jobs with it) and registered again under the same id.
    c.json(&["hosts", "rm", "web-1"]);
    let t = token(&c, "web-1");
    let ok = result_body("succeeded", "Updating license key ...: Done");
    let path = format!("/v1/hosts/web-1/jobs/{id}/result");
    let gone = request(&c.addr, "POST", &path, Some(&t), &[], ok.as_bytes());
    assert_eq!(gone.status, 410, "{}", gone.body);
    let never = "/v1/hosts/web-1/jobs/j-00000000000000010000/result";
    assert_eq!(request(&c.addr, "POST", never, Some(&t), &[], ok.as_bytes()).status, 410);
    assert!(c.json(&["jobs", "list"]).as_array().unwrap().is_empty());
}
}

on_both! {
#[test]
fn last_seen_at_is_set_by_the_first_report_and_the_first_poll_at_once(db) {
    let dir = tempfile::tempdir().unwrap();
    let c = started(&dir, &db);
    let t = token(&c, "web-1");
    assert!(c.json(&["hosts", "show", "web-1"])["last_seen_at"].is_null());
    let report = br#"{"agent_version": "0.1.0", "plesk_key_number": "PLSK.12345678.0001", "problems": []}"#;
    assert_eq!(
        request(&c.addr, "PUT", "/v1/hosts/web-1/report", Some(&t), &[], report).status,
        204
    );
    let shown = c.json(&["hosts", "show", "web-1"]);
    assert_eq!(shown["key_number"], "PLSK.12345678.0001");
    assert!(shown["last_seen_at"].is_string(), "{shown}");

    let t2 = token(&c, "web-2");
    assert_eq!(poll(&c.addr, "web-2", &t2, 0, None).status, 200);
    let shown = c.json(&["hosts", "show", "web-2"]);
    assert!(shown["last_seen_at"].is_string(), "{shown}");
}
}

on_both! {
#[test]
fn at_a_stop_a_held_poll_gets_503_with_retry_after_1(db) {
    let dir = tempfile::tempdir().unwrap();
    let mut c = started(&dir, &db);
    let t = token(&c, "web-1");
    let held = support::held::hold(&c, "web-1", &t, 30);
    assert_eq!(c.stop(), Some(0));
    let (answer, _) = held.join().unwrap();
    assert_eq!(answer.status, 503, "{}", answer.body);
    assert_eq!(answer.header("retry-after"), Some("1"));
}
}

#[test]
fn admin_listen_beyond_loopback_without_tls_is_refused_by_check_and_serve() {
    let dir = tempfile::tempdir().unwrap();
    let (extra, port) = support::central::admin_listen(dir.path(), "an-admin-token-of-some-length");
    let extra = extra.replace("127.0.0.1", "0.0.0.0");
    let c = Central::new(&dir.path().join("central"), &extra);
    assert_eq!(c.cli(&["migrate"]).status.code(), Some(1));
    for cmd in ["check", "serve"] {
        let out = c.cli(&[cmd]);
        assert_eq!(out.status.code(), Some(1), "{cmd}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("[server] admin_listen") && err.contains("[server] tls_cert") && err.lines().count() == 1,
            "{cmd}: {err}"
        );
    }
    assert!(
        std::net::TcpListener::bind(("0.0.0.0", port)).is_ok(),
        "serve did not listen"
    );
}

#[test]
fn failed_admin_tokens_are_limited_per_address() {
    let dir = tempfile::tempdir().unwrap();
    let good = "an-admin-token-of-some-length";
    let (extra, port) = support::central::admin_listen(dir.path(), good);
    let mut c = Central::new(&dir.path().join("central"), &extra);
    c.start();
    let admin = format!("127.0.0.1:{port}");
    for i in 0..10 {
        // A public path answers 200 whatever the token: that must not reset the count.
        let css = request(&admin, "GET", "/ui/style.css", Some("guess"), &[], b"");
        assert_eq!(css.status, 200);
        let r = request(&admin, "GET", "/admin/v1/hosts", Some(&format!("guess-{i}")), &[], b"");
        assert_eq!(r.status, 401, "attempt {i}");
    }
    // The 11th attempt within the minute, and even the right token, wait.
    for token in ["guess-10", good] {
        let r = request(&admin, "GET", "/admin/v1/hosts", Some(token), &[], b"");
        assert_eq!(r.status, 429, "{token}: {}", r.body);
        let after: u64 = r.header("retry-after").unwrap().parse().unwrap();
        assert!((1..=300).contains(&after), "{after}");
    }
    // The admin socket (local trust) is not limited.
    assert!(c.json(&["hosts", "list"]).as_array().unwrap().is_empty());
}

#[test]
fn unknown_admin_paths_are_404_and_never_lock_the_store_out() {
    // A store's client that asks for a route this central does not have (an older central)
    // must learn "no such route", not "wrong token", and must not be locked out by it.
    let dir = tempfile::tempdir().unwrap();
    let good = "an-admin-token-of-some-length";
    let (extra, port) = support::central::admin_listen(dir.path(), good);
    let mut c = Central::new(&dir.path().join("central"), &extra);
    c.start();
    let admin = format!("127.0.0.1:{port}");
    for i in 0..12 {
        let r = request(
            &admin,
            "GET",
            &format!("/admin/v1/no-such-route-{i}"),
            Some(good),
            &[],
            b"",
        );
        assert_eq!(r.status, 404, "attempt {i}: {}", r.body);
        assert!(r.body.contains("no such admin route"), "{}", r.body);
    }
    let r = request(&admin, "GET", "/admin/v1/hosts", Some(good), &[], b"");
    assert_eq!(r.status, 200, "{}", r.body);
}

#[test]
fn check_and_serve_name_the_admin_socket_when_it_cannot_be_created() {
    let dir = tempfile::tempdir().unwrap();
    // A regular file where the socket's directory should be: nobody, root included, can
    // create the socket.
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, "").unwrap();
    let extra = format!("[server]\nadmin_socket = {}/run/admin.sock\n", file.display());
    let c = Central::new(&dir.path().join("central"), &extra);
    assert_eq!(c.cli(&["migrate"]).status.code(), Some(0));
    let out = c.cli(&["check"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let line = text.lines().find(|l| l.contains("admin_socket")).unwrap_or_default();
    assert!(
        line.starts_with("FAIL") && line.contains("[server] admin_socket"),
        "{text}"
    );
    let out = c.cli(&["serve"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("[server] admin_socket") && err.lines().count() == 1,
        "{err}"
    );

    // As root: a user who may not write the socket's directory (uid 65534, as a service
    // user without the right group would be).
    if unsafe { libc::geteuid() } != 0 {
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    let open = |p: &std::path::Path| std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
    let root_only = dir.path().join("root-only");
    std::fs::create_dir(&root_only).unwrap();
    open(dir.path());
    open(&root_only);
    let extra = format!("[server]\nadmin_socket = {}/run/admin.sock\n", root_only.display());
    let c = Central::new(&dir.path().join("user"), &extra);
    open(&c.root);
    std::fs::set_permissions(&c.config, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = std::process::Command::new(support::central::bin())
        .arg("--config")
        .arg(&c.config)
        .arg("check")
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let line = text.lines().find(|l| l.contains("admin_socket")).unwrap_or_default();
    assert!(
        line.starts_with("FAIL") && line.contains("[server] admin_socket"),
        "{text}"
    );
}
