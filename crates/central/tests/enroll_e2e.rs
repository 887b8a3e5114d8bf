//! Enrollment end to end (contract version 2: central section 10, agent section 5.5): the
//! real central on SQLite and PostgreSQL, the real agent with only `url` and an enroll key.

mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::agent::Agent;
use support::central::{admin_listen, Central};
use support::held::hold;
use support::http::{poll, request};
use support::{files_hold, wait_for, CODE};

const ADMIN: &str = "admin-token-of-a-decent-length-0123456789";

fn key(c: &Central, args: &[&str]) -> (String, String) {
    let mut all = vec!["enroll-keys", "create"];
    all.extend_from_slice(args);
    let v = c.json(&all);
    (
        v["key"].as_str().unwrap().to_string(),
        v["id"].as_str().unwrap().to_string(),
    )
}

fn host_exists(c: &Central, id: &str) -> bool {
    c.json(&["hosts", "list"])
        .as_array()
        .unwrap()
        .iter()
        .any(|h| h["id"] == id)
}

fn fleet_page(port: u16) -> String {
    use base64::Engine as _;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("admin:{ADMIN}"));
    let r = request(
        &format!("127.0.0.1:{port}"),
        "GET",
        "/ui",
        None,
        &[("Authorization", &format!("Basic {auth}"))],
        b"",
    );
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
}

on_both! {
#[test]
fn a_fresh_agent_with_only_a_key_enrolls_and_runs_its_first_job_within_two_seconds(db) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("central");
    let (admin, port) = admin_listen(dir.path(), ADMIN);
    let mut c = Central::on(&root, &admin, &db.url(&root));
    c.start();
    let (k, id) = key(&c, &["--host", "web-042", "--expires", "1h", "--note", "order 1001"]);
    // Started before any `hosts add`: the key is all it has.
    let mut agent = Agent::enrolling(&dir.path().join("agent"), &c.url(), "web-042", &k);
    agent.start();
    wait_for(30, "the agent to enroll", || host_exists(&c, "web-042").then_some(()));
    let enrolled = Instant::now();
    let job = c.json(&["jobs", "add", "--host", "web-042", "install-key", CODE]);
    let jid = job["id"].as_str().unwrap().to_string();
    let done = wait_for(30, "the job's result", || {
        let j = c.json(&["jobs", "show", &jid]);
        (j["state"] != "queued").then_some(j)
    });
    let took = enrolled.elapsed();
    assert_eq!(done["state"], "succeeded", "{done}");
    assert!(took <= Duration::from_secs(2), "the first job took {took:?} after enrolling");

    let root_a = &agent.root;
    assert!(!root_a.join("enroll.key").exists(), "the key file is removed");
    use std::os::unix::fs::PermissionsExt;
    for f in ["token", "push.secret"] {
        let m = std::fs::metadata(root_a.join(f)).unwrap();
        assert_eq!(m.permissions().mode() & 0o777, 0o600, "{f}");
    }
    let status = agent.status();
    assert_eq!(status["central"]["state"], "healthy", "{status}");
    let host = c.json(&["hosts", "show", "web-042"]);
    assert_eq!(host["enrolled_by"], id.as_str());
    let keys = c.json(&["enroll-keys", "list"]).to_string();
    let page = fleet_page(port);
    assert!(page.contains(&id), "the fleet page shows the key: {page}");

    let secret = k.rsplit('_').next().unwrap().to_string();
    assert_eq!(c.stop(), Some(0));
    let mut files = c.db_files();
    files.push(c.log.clone());
    files.push(agent.log.clone());
    files.push(agent.root.join("state/status.json"));
    assert!(!files_hold(&files, &secret), "the key is in a log, the status or the database");
    for shown in [&status.to_string(), &keys, &page] {
        assert!(!shown.contains(&secret), "the key is shown");
    }
    if let Some(pg) = db.pg() {
        let name = c.db_url.rsplit('/').next().unwrap();
        let dump = pg.sql(name, "SELECT * FROM enroll_keys") + &pg.sql(name, "SELECT * FROM hosts");
        assert!(!dump.contains(&secret), "the key is in PostgreSQL");
    }
}
}

on_both! {
#[test]
fn every_refused_key_shows_the_stores_sentence_in_status_and_never_gives_a_token(db) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("central");
    let mut c = Central::on(&root, "", &db.url(&root));
    c.start();
    let (expired, _) = key(&c, &["--expires", "1s"]);
    let (revoked, rid) = key(&c, &[]);
    c.json(&["enroll-keys", "revoke", &rid]);
    let (used, _) = key(&c, &[]);
    let r = request(
        &c.addr,
        "POST",
        "/v1/enroll",
        None,
        &[],
        format!("{{\"enroll_key\":\"{used}\",\"host_id\":\"other\"}}").as_bytes(),
    );
    assert_eq!(r.status, 201);
    let (pattern, _) = key(&c, &["--uses", "5", "--host-pattern", "web-*"]);
    let unknown = format!("prk_{}_{}", "a".repeat(12), "b".repeat(64));
    // A host added by hand is not taken over by a reusable key that matches it.
    c.add_host("web-7", &[]);
    std::thread::sleep(Duration::from_millis(1200));

    let cases = [
        ("web-1", &expired, "not valid"),
        ("web-2", &revoked, "not valid"),
        ("web-3", &used, "not valid"),
        ("db-4", &pattern, "web-*"),
        ("web-5", &unknown, "not valid"),
        ("web-7", &pattern, "already exists"),
    ];
    let mut agents = Vec::new();
    for (host, k, _) in &cases {
        let mut a = Agent::enrolling(&dir.path().join(host), &c.url(), host, k);
        a.start();
        agents.push(a);
    }
    for ((host, k, needle), a) in cases.iter().zip(&agents) {
        let s = wait_for(30, "the agent to show its refusal", || {
            let s = a.status();
            (s["central"]["state"] == "enrolling").then_some(s)
        });
        let err = s["central"]["last_error"].as_str().unwrap_or_default().to_string();
        assert!(err.contains(needle), "{host}: {err}");
        assert!(err.starts_with("not enrolled yet"), "{host}: {err}");
        assert_eq!(s["health"]["status"], "degraded", "{host}: {s}");
        assert!(!a.root.join("token").exists(), "{host} got a token");
        assert!(a.root.join("enroll.key").exists(), "{host}'s key file is kept");
        let secret = k.rsplit('_').next().unwrap();
        assert!(!s.to_string().contains(secret), "{host}: the key is in status");
        assert!(!a.log_text().contains(secret), "{host}: the key is in the log");
        // `check` says so too.
        let out = std::process::Command::new(support::agent::bin())
            .arg("--config")
            .arg(&a.config)
            .arg("check")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{host}: {text}");
        assert!(text.contains("not enrolled yet") && text.contains(needle), "{host}: {text}");
    }
    // Retried only every five minutes: one attempt each so far.
    let failed = c.log_text().matches("a refused enroll attempt").count();
    assert_eq!(failed, cases.len(), "{}", c.log_text());
    assert!(!host_exists(&c, "web-1") && !host_exists(&c, "db-4"));
}
}

on_both! {
#[test]
fn a_reinstall_with_a_host_bound_key_keeps_the_jobs_and_kills_the_old_token(db) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("central");
    let mut c = Central::on(&root, "", &db.url(&root));
    c.start();
    let old = c.add_host("web-042", &[])["token"].as_str().unwrap().to_string();
    // Queued while the server is being re-imaged.
    let job = c.json(&["jobs", "add", "--host", "web-042", "install-key", CODE]);
    let jid = job["id"].as_str().unwrap().to_string();
    let held = hold(&c, "web-042", &old, 25);

    let (k, _) = key(&c, &["--host", "web-042", "--expires", "1h"]);
    let mut agent = Agent::enrolling(&dir.path().join("agent"), &c.url(), "web-042", &k);
    agent.start();
    let (answer, _) = held.join().unwrap();
    assert_eq!(answer.status, 401, "the poll held with the old token ends: {}", answer.body);
    let done = wait_for(30, "the kept job to run on the new install", || {
        let j = c.json(&["jobs", "show", &jid]);
        (j["state"] != "queued").then_some(j)
    });
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(poll(&c.addr, "web-042", &old, 0, None).status, 401);
    let hosts: Value = c.json(&["hosts", "list"]);
    assert_eq!(hosts.as_array().unwrap().len(), 1);
}
}

fn agent_cmd(a: &Agent, args: &[&str], stdin: Option<&str>) -> std::process::Output {
    use std::io::Write;
    let mut child = std::process::Command::new(support::agent::bin())
        .arg("--config")
        .arg(&a.config)
        .args(args)
        .env_remove("PLESK_RESELLER_AGENT_CONFIG")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    drop(input);
    child.wait_with_output().unwrap()
}

#[test]
fn the_enroll_command_and_sync_enroll_without_a_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("central");
    let mut c = Central::on(&root, "", &support::TestDb::sqlite().url(&root));
    c.start();
    let (k, _) = key(&c, &["--uses", "2", "--host-pattern", "web-*"]);

    // `enroll --key-stdin`: the key never touches the disk.
    let a = Agent::enrolling(&dir.path().join("a"), &c.url(), "web-1", "unused");
    let out = agent_cmd(&a, &["enroll", "--key-stdin"], Some(&format!("{k}\n")));
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("enrolled as web-1"));
    assert!(a.root.join("token").exists() && host_exists(&c, "web-1"));
    // A second time: it has a token already.
    let out = agent_cmd(&a, &["enroll", "--key-stdin"], Some(&k));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already has a token"));

    // `sync` enrolls with the key file, then does its pass with the new token.
    let b = Agent::enrolling(&dir.path().join("b"), &c.url(), "web-2", &k);
    let out = agent_cmd(&b, &["sync"], None);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!b.root.join("enroll.key").exists(), "the key file is removed");
    assert!(host_exists(&c, "web-2"));

    // Used up now: `enroll` says the store's sentence and exits 1; the key file stays.
    let d = Agent::enrolling(&dir.path().join("d"), &c.url(), "web-3", &k);
    let out = agent_cmd(&d, &["enroll"], None);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("not valid") && !err.contains(k.rsplit('_').next().unwrap()),
        "{err}"
    );
    assert!(d.root.join("enroll.key").exists());
    assert!(!d.root.join("token").exists());
}
