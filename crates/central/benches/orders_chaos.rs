//! Orders under chaos (issue 17): 200 orders over 2 replica processes on one PostgreSQL
//! database while the fake KA loses 20 % of create answers after making the key, and every
//! few seconds a replica is killed with SIGKILL (and started again) or every database session
//! of the replicas is terminated. Afterwards every order must be `done` and KA must hold
//! exactly one key per order id. Prints the counts and the wall time.
//! `cargo bench -p plesk-reseller-central --bench orders_chaos` (or `cargo test --bench
//! orders_chaos` for a debug build); ORDERS_CHAOS_N orders (200), ORDERS_CHAOS_EVERY_MS
//! between two blows (3000). Jobs are completed by a stand-in agent over the real HTTP API.

#[path = "../tests/support/mod.rs"]
mod support;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::central::{bin, Central};
use support::fake_ka::{self, FakeKa};
use support::http::{result_body, try_request};

const ITEM: &str = "PLESK-12-WEB-HOST-1M";

fn env(k: &str, d: u64) -> u64 {
    std::env::var(k).ok().and_then(|v| v.parse().ok()).unwrap_or(d)
}

/// An admin command through replica `config`; None when it is down or refuses.
fn cli(config: &std::path::Path, args: &[&str]) -> Option<Value> {
    let out = Command::new(bin())
        .arg("--config")
        .arg(config)
        .args(args)
        .arg("--json")
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| serde_json::from_slice(&out.stdout).ok())
        .flatten()
}

fn main() {
    let n = env("ORDERS_CHAOS_N", 200) as usize;
    let every = Duration::from_millis(env("ORDERS_CHAOS_EVERY_MS", 3000));
    let Some(db) = support::TestDb::postgres() else {
        eprintln!("orders_chaos needs PostgreSQL");
        return;
    };
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let ka = rt.block_on(FakeKa::start(&[ITEM]));
    ka.set_delay(Duration::from_millis(20));
    ka.lose_answers_percent(20);
    let pw = dir.path().join("ka.password");
    std::fs::write(&pw, fake_ka::PASSWORD).unwrap();
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
    let extra = format!(
        "[ka]\nurl = {}\nusername = {}\npassword_file = {}\nowner_id = {}\nplesk_item = {ITEM}\ntimeout = 2\n",
        ka.base_url(),
        fake_ka::USER,
        pw.display(),
        fake_ka::OWNER
    );
    let url = db.url(dir.path());
    let dbname = url.rsplit('/').next().unwrap().to_string();
    let mut replicas = [
        Central::on(&dir.path().join("a"), &extra, &url),
        Central::on(&dir.path().join("b"), &extra, &url),
    ];
    for c in replicas.iter_mut() {
        c.start();
        c.pin_port();
    }
    let configs: Vec<_> = replicas.iter().map(|c| c.config.clone()).collect();
    let addrs: Vec<_> = replicas.iter().map(|c| c.addr.clone()).collect();
    let hosts: Vec<(String, String)> = (1..=2)
        .map(|i| {
            let id = format!("web-{i}");
            let t = replicas[0].add_host(&id, &[])["token"].as_str().unwrap().to_string();
            (id, t)
        })
        .collect();

    // The store: every order once, through either replica, again on the other if refused.
    let added = Arc::new(AtomicUsize::new(0));
    let adder = {
        let (configs, added) = (configs.clone(), added.clone());
        std::thread::spawn(move || {
            for i in 0..n {
                let (id, host) = (format!("ord-{i}"), format!("web-{}", 1 + i % 2));
                let args = ["orders", "add", "--order-id", &id, "--host", &host, "--plesk"];
                let mut k = i;
                while cli(&configs[k % 2], &args).is_none() {
                    k += 1;
                    std::thread::sleep(Duration::from_millis(100));
                }
                added.fetch_add(1, Ordering::Relaxed);
                // Spread over about a minute, so that blows land among the orders.
                std::thread::sleep(Duration::from_millis(150));
            }
        })
    };
    // The agents: each host's queued jobs end `succeeded`, through whichever replica answers.
    let finished = Arc::new(AtomicBool::new(false));
    let agents = {
        let (addrs, hosts, finished) = (addrs.clone(), hosts.clone(), finished.clone());
        std::thread::spawn(move || {
            let mut k = 0;
            while !finished.load(Ordering::Relaxed) {
                for (host, token) in &hosts {
                    k += 1;
                    let addr = &addrs[k % 2];
                    let path = format!("/v1/hosts/{host}/instructions?wait=0");
                    let Some(r) = try_request(addr, "GET", &path, Some(token), &[], b"") else {
                        continue;
                    };
                    let Ok(v) = serde_json::from_str::<Value>(&r.body) else {
                        continue;
                    };
                    for job in v["jobs"].as_array().into_iter().flatten() {
                        let path = format!("/v1/hosts/{host}/jobs/{}/result", job["id"].as_str().unwrap_or("-"));
                        let body = result_body("succeeded", "installed");
                        let _ = try_request(addr, "POST", &path, Some(token), &[], body.as_bytes());
                    }
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        })
    };

    // The blows, until every order was added and a little after.
    let (mut kills, mut cuts) = (0, 0);
    let pg = db.pg().unwrap();
    let mut round = 0;
    let mut calm_from: Option<Instant> = None;
    while calm_from.is_none_or(|t| t.elapsed() < Duration::from_secs(15)) {
        std::thread::sleep(every);
        match round % 4 {
            0 | 2 => {
                let r = &mut replicas[(round / 2) % 2];
                r.kill();
                std::thread::sleep(Duration::from_millis(500));
                r.start();
                kills += 1;
            }
            _ => {
                pg.sql(
                    &dbname,
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                     WHERE datname = current_database() AND pid <> pg_backend_pid()",
                );
                cuts += 1;
            }
        }
        round += 1;
        if calm_from.is_none() && added.load(Ordering::Relaxed) == n {
            calm_from = Some(Instant::now());
        }
    }
    adder.join().unwrap();
    let chaos_done = started.elapsed();

    // Calm: every order must end done.
    let deadline = Instant::now() + Duration::from_secs(900);
    let orders = loop {
        let list = cli(&configs[0], &["orders", "list"]).unwrap_or(Value::Null);
        let list = list.as_array().cloned().unwrap_or_default();
        let done = list.iter().filter(|o| o["state"] == "done").count();
        if done == n || Instant::now() > deadline {
            break list;
        }
        std::thread::sleep(Duration::from_secs(2));
    };
    finished.store(true, Ordering::Relaxed);
    agents.join().unwrap();

    let mut by_state = std::collections::BTreeMap::new();
    for o in &orders {
        *by_state
            .entry(o["state"].as_str().unwrap_or("?").to_string())
            .or_insert(0) += 1;
    }
    let keys = ka.keys();
    let creates = ka.calls().iter().filter(|c| c.method == "POST").count();
    let not_one: Vec<String> = (0..n)
        .map(|i| format!("ord-{i}"))
        .filter(|id| {
            keys.iter()
                .filter(|k| k.nickname.as_deref() == Some(id.as_str()))
                .count()
                != 1
        })
        .collect();
    println!("orders_chaos: {n} orders over 2 replicas on PostgreSQL");
    println!("  blows: {kills} SIGKILL+restart of a replica, {cuts} terminations of every database session");
    println!(
        "  KA: {creates} creates, {} answers lost after committing, {} keys",
        ka.lost_answers(),
        keys.len()
    );
    println!("  orders by state: {by_state:?}");
    println!("  order ids without exactly one key: {}", not_one.len());
    println!(
        "  wall time: {:.1} s ({:.1} s of chaos)",
        started.elapsed().as_secs_f64(),
        chaos_done.as_secs_f64()
    );
    assert_eq!(orders.len(), n, "orders listed");
    assert_eq!(by_state.get("done"), Some(&n), "every order done: {by_state:?}");
    assert!(not_one.is_empty(), "not exactly one key: {not_one:?}");
    assert_eq!(keys.len(), n, "one key per order, nothing else");
}
