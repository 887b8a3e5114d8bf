//! Enroll keys against the real central (contract version 2, section 10), on SQLite and
//! PostgreSQL: the answers of `POST /v1/enroll`, uses counted atomically, re-enrollment only
//! with a key bound to the host, and the key never kept or shown in clear.

mod support;

use serde_json::{json, Value};
use support::central::Central;
use support::held::hold;
use support::http::{poll, request, Resp};
use support::{files_hold, wait_for};

fn enroll(c: &Central, key: &str, host: &str) -> Resp {
    let body = json!({"enroll_key": key, "host_id": host, "agent_version": "test"}).to_string();
    request(
        &c.addr,
        "POST",
        "/v1/enroll",
        None,
        &[("Content-Type", "application/json")],
        body.as_bytes(),
    )
}

fn create(c: &Central, args: &[&str]) -> (String, String) {
    let mut all = vec!["enroll-keys", "create"];
    all.extend_from_slice(args);
    let v = c.json(&all);
    (
        v["key"].as_str().unwrap().to_string(),
        v["id"].as_str().unwrap().to_string(),
    )
}

fn started(dir: &std::path::Path, db: &support::TestDb) -> Central {
    let root = dir.join("central");
    let mut c = Central::on(&root, "", &db.url(&root));
    c.start();
    c
}

on_both! {
#[test]
fn every_unusable_key_gets_the_same_401(db) {
    let dir = tempfile::tempdir().unwrap();
    let c = started(dir.path(), &db);
    let (good, _) = create(&c, &["--uses", "5", "--host-pattern", "web-*", "--note", "fleet"]);
    let (revoked, rid) = create(&c, &[]);
    c.json(&["enroll-keys", "revoke", &rid]);
    let (expired, _) = create(&c, &["--expires", "1s"]);
    let (used, _) = create(&c, &[]);
    assert_eq!(enroll(&c, &used, "db-1").status, 201);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let unknown = format!("prk_{}_{}", "0".repeat(12), "1".repeat(64));
    let mut tampered = good.clone();
    tampered.replace_range(tampered.len() - 4.., "0000");
    let mut sentences = Vec::new();
    for key in [&unknown, &revoked, &expired, &used, &tampered, &"not-a-key".to_string()] {
        let r = enroll(&c, key, "web-1");
        assert_eq!(r.status, 401, "{key}: {}", r.body);
        sentences.push(r.body);
    }
    sentences.dedup();
    assert_eq!(sentences.len(), 1, "one sentence for every unusable key: {sentences:?}");
    no_secret_shown(&c, &db, &[&good, &revoked, &expired, &used]);
}
}

/// No key's secret in `enroll-keys list` (JSON or text), the log, or the database.
fn no_secret_shown(c: &Central, db: &support::TestDb, keys: &[&String]) {
    let listed = c.json(&["enroll-keys", "list"]).to_string();
    let text = String::from_utf8(c.cli(&["enroll-keys", "list"]).stdout).unwrap();
    let shown = [listed, text, c.log_text()];
    for key in keys {
        let secret = key.rsplit('_').next().unwrap();
        assert!(shown.iter().all(|o| !o.contains(secret)), "the secret is shown");
        assert!(!files_hold(&c.db_files(), secret), "the secret is in the database file");
        if let Some(pg) = db.pg() {
            let name = c.db_url.rsplit('/').next().unwrap();
            let dump = pg.sql(name, "SELECT * FROM enroll_keys") + &pg.sql(name, "SELECT * FROM hosts");
            assert!(!dump.contains(secret), "the secret is in PostgreSQL");
        }
    }
}

on_both! {
#[test]
fn a_key_enrolls_only_the_host_ids_it_allows_and_never_takes_over_a_host(db) {
    let dir = tempfile::tempdir().unwrap();
    let c = started(dir.path(), &db);
    let (good, _) = create(&c, &["--uses", "5", "--host-pattern", "web-*", "--note", "fleet"]);

    let r = enroll(&c, &good, "db-7");
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body.contains("web-*"), "{}", r.body);
    let r = enroll(&c, &good, "web/../x");
    assert_eq!(r.status, 400, "{}", r.body);

    // A host made with `hosts add` is not taken over by a reusable key.
    let added = c.add_host("web-2", &[]);
    let r = enroll(&c, &good, "web-2");
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(r.body.contains("web-2"), "{}", r.body);
    let old = added["token"].as_str().unwrap();
    assert_eq!(poll(&c.addr, "web-2", old, 0, None).status, 200, "the old token still works");

    // A host-bound key enrolls only its host.
    let (bound, _) = create(&c, &["--host", "web-9", "--expires", "1h"]);
    let r = enroll(&c, &bound, "web-8");
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body.contains("web-9"), "{}", r.body);

    let r = enroll(&c, &good, "web-3");
    assert_eq!(r.status, 201, "{}", r.body);
    let v: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(v["host_id"], "web-3");
    let token = v["token"].as_str().unwrap();
    assert!(v["push_secret"].as_str().unwrap().len() >= 32);
    assert_eq!(poll(&c.addr, "web-3", token, 0, None).status, 200);

    let keys = c.json(&["enroll-keys", "list"]);
    let k = keys.as_array().unwrap().iter().find(|k| k["note"] == "fleet").unwrap().clone();
    assert_eq!(k["uses"], 5);
    assert_eq!(k["uses_left"], 4);
    assert_eq!(k["host_pattern"], "web-*");
    assert_eq!(k["hosts"], json!(["web-3"]));
    assert!(k["last_used_at"].is_string(), "{k}");
    let host = c.json(&["hosts", "show", "web-3"]);
    assert_eq!(host["enrolled_by"], k["id"]);
    no_secret_shown(&c, &db, &[&good, &bound]);
}
}

on_both! {
#[test]
fn fifty_enrolls_at_once_with_a_key_of_twenty_uses_make_exactly_twenty_hosts(db) {
    let dir = tempfile::tempdir().unwrap();
    let c = started(dir.path(), &db);
    let (key, id) = create(&c, &["--uses", "20"]);
    let addr = c.addr.clone();
    let threads: Vec<_> = (0..50)
        .map(|i| {
            let (addr, key) = (addr.clone(), key.clone());
            std::thread::spawn(move || {
                let body = json!({"enroll_key": key, "host_id": format!("n-{i}")}).to_string();
                request(&addr, "POST", "/v1/enroll", None, &[], body.as_bytes()).status
            })
        })
        .collect();
    let statuses: Vec<u16> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let made = statuses.iter().filter(|s| **s == 201).count();
    assert_eq!(made, 20, "{statuses:?}");
    // The others: 401 (used up), or 429 once this address failed ten times in the minute.
    assert!(statuses.iter().all(|s| [201, 401, 429].contains(s)), "{statuses:?}");
    assert_eq!(c.json(&["hosts", "list"]).as_array().unwrap().len(), 20);
    let k = c.json(&["enroll-keys", "list"]);
    let k = k.as_array().unwrap().iter().find(|k| k["id"] == id.as_str()).unwrap();
    assert_eq!(k["uses_left"], 0);
    assert_eq!(k["hosts"].as_array().unwrap().len(), 20);
}
}

on_both! {
#[test]
fn a_key_bound_to_a_host_re_enrolls_it_keeping_its_jobs_and_killing_the_old_token(db) {
    let dir = tempfile::tempdir().unwrap();
    let c = started(dir.path(), &db);
    let old = c.add_host("web-042", &[])["token"].as_str().unwrap().to_string();
    let job = c.json(&["jobs", "add", "--host", "web-042", "retrieve-keys"]);
    c.json(&["hosts", "set", "web-042", "--buy-url", "https://shop.example.com/b"]);
    let held = hold(&c, "web-042", &old, 25);

    let (key, _) = create(&c, &["--host", "web-042", "--expires", "1h"]);
    let r = enroll(&c, &key, "web-042");
    assert_eq!(r.status, 201, "{}", r.body);
    let v: Value = serde_json::from_str(&r.body).unwrap();
    let new = v["token"].as_str().unwrap();

    let (answer, _) = held.join().unwrap();
    assert_eq!(answer.status, 401, "the poll held with the old token ends: {}", answer.body);
    assert_eq!(poll(&c.addr, "web-042", &old, 0, None).status, 401);
    let r = poll(&c.addr, "web-042", new, 0, None);
    assert_eq!(r.status, 200);
    assert!(r.body.contains(job["id"].as_str().unwrap()), "the job is kept: {}", r.body);
    assert!(r.body.contains("https://shop.example.com/b"), "the values are kept: {}", r.body);
    // Used once: the same key again is used up.
    assert_eq!(enroll(&c, &key, "web-042").status, 401);
    // The store hears of it (contract section 11), without the key or the new token.
    let events = c.json(&["events", "list", "--type", "host.enrolled"]);
    assert_eq!(events.as_array().unwrap().len(), 1, "{events}");
    assert_eq!(events[0]["data"]["host"], "web-042", "{events}");
    assert_eq!(events[0]["data"]["re_enrolled"], true, "{events}");
    let text = events.to_string();
    assert!(!text.contains(&key[key.len() - 20..]) && !text.contains(new), "{text}");
}
}

#[test]
fn ten_failed_attempts_a_minute_from_one_address_then_429() {
    let dir = tempfile::tempdir().unwrap();
    let c = started(dir.path(), &support::TestDb::sqlite());
    let (good, _) = create(&c, &[]);
    for _ in 0..10 {
        assert_eq!(enroll(&c, "prk_x_y", "web-1").status, 401);
    }
    let r = enroll(&c, &good, "web-1");
    assert_eq!(r.status, 429, "{}", r.body);
    assert!(r.header("retry-after").is_some());
    wait_for(5, "nothing enrolled", || {
        c.json(&["hosts", "list"]).as_array().unwrap().is_empty().then_some(())
    });
}

#[test]
fn create_refuses_what_the_contract_does_not_allow() {
    let dir = tempfile::tempdir().unwrap();
    let c = started(dir.path(), &support::TestDb::sqlite());
    for (args, needle) in [
        (vec!["--expires", "91d"], "90 days"),
        (vec!["--expires", "soon"], "soon"),
        (vec!["--uses", "0"], "uses"),
        (vec!["--host", "bad id"], "bad id"),
        (vec!["--host-pattern", "web/*"], "web/*"),
    ] {
        let mut all = vec!["enroll-keys", "create"];
        all.extend_from_slice(&args);
        let out = c.cli(&all);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
    }
    let v = c.json(&["enroll-keys", "create"]);
    assert!(v["key"]
        .as_str()
        .unwrap()
        .starts_with(&format!("prk_{}_", v["id"].as_str().unwrap())));
    assert_eq!(v["uses"], 1);
    let out = c.cli(&["enroll-keys", "revoke", "nope"]);
    assert_eq!(out.status.code(), Some(1));
}
