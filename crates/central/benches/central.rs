//! The central's benchmarks, on the real binaries (run with `cargo bench -p plesk-reseller-central`):
//!
//! 1. latency: from `jobs add` returning to the stand-in plesk's start of `license` through
//!    the real agent holding a poll (median and p99 over 60 jobs; goal: median ≤ 30 ms);
//! 2. memory: 2 000 simulated agents each holding a poll; held polls per GiB of the
//!    central's RSS (goal ≥ 20 000 per GiB).

#[path = "../tests/support/mod.rs"]
mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant, SystemTime};

use support::agent::Agent;
use support::central::Central;
use support::http::request;
use support::wait_for;

fn main() {
    if let Ok((_, hard)) = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE) {
        let _ = nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE, hard, hard);
    }
    let only = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    if only.as_deref().is_none_or(|o| "latency".contains(o)) {
        latency();
    }
    if only.as_deref().is_none_or(|o| "memory".contains(o)) {
        memory();
    }
}

fn held(c: &Central) -> i64 {
    let m = request(&c.addr, "GET", "/metrics", None, &[], b"").body;
    m.lines()
        .find_map(|l| l.strip_prefix("central_held_polls "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(-1)
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn latency() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = Central::new(&dir.path().join("central"), "");
    c.start();
    let token = c.add_host("web-1", &[])["token"].as_str().unwrap().to_string();
    let mut agent = Agent::new(&dir.path().join("agent"), &c.url(), "web-1", &token, 25, "");
    agent.start();
    let started = agent.plesk_dir.join("started");
    let n = 60;
    let mut ms = Vec::new();
    for i in 0..n {
        wait_for(30, "the agent's held poll", || (held(&c) >= 1).then_some(()));
        let _ = std::fs::remove_file(&started);
        let out = c.cli(&["jobs", "add", "--host", "web-1", "retrieve-keys", "--json"]);
        let returned = SystemTime::now();
        assert!(out.status.success());
        let id: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let at = wait_for(30, "the stand-in's start of license", || {
            std::fs::metadata(&started).and_then(|m| m.modified()).ok()
        });
        let d = at.duration_since(returned).unwrap_or(Duration::ZERO);
        ms.push(d.as_secs_f64() * 1000.0);
        wait_for(30, "the job's result", || {
            let j = c.json(&["jobs", "show", id["id"].as_str().unwrap()]);
            (j["state"] == "succeeded").then_some(())
        });
        if i == 0 {
            ms.clear(); // the first job also pays for the agent's start-up reads
        }
        // The agent sends at most one poll a second on average (agent contract 5.1): let
        // that window pass so each job meets a poll that is already held.
        std::thread::sleep(Duration::from_millis(1100));
    }
    ms.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "latency jobs add -> license start (n={}): median {:.1} ms, p99 {:.1} ms, max {:.1} ms (goal: median <= 30 ms)",
        ms.len(),
        pct(&ms, 0.5),
        pct(&ms, 0.99),
        ms[ms.len() - 1]
    );
}

fn rss_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn memory() {
    let agents = 2000;
    let dir = tempfile::tempdir().unwrap();
    let mut c = Central::new(&dir.path().join("central"), "[server]\n");
    c.start();
    let pid = c.pid().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = plesk_reseller_central::cli::client::Client::new(&c.root.join("run/admin.sock"));
    let t0 = Instant::now();
    let tokens: Vec<String> = rt.block_on(async {
        let mut v = Vec::new();
        for i in 0..agents {
            let body = serde_json::json!({ "id": format!("sim-{i}") });
            let r = client
                .call(hyper::Method::POST, "/admin/v1/hosts", Some(body))
                .await
                .unwrap();
            v.push(r["token"].as_str().unwrap().to_string());
        }
        v
    });
    println!("registered {agents} hosts in {:.1} s", t0.elapsed().as_secs_f64());
    let etag = support::http::poll(&c.addr, "sim-0", &tokens[0], 0, None)
        .header("etag")
        .unwrap()
        .to_string();
    let base = rss_kib(pid);
    let mut conns = Vec::new();
    for (i, t) in tokens.iter().enumerate() {
        let mut s = TcpStream::connect(&c.addr).unwrap();
        let req = format!(
            "GET /v1/hosts/sim-{i}/instructions?wait=60 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {t}\r\nIf-None-Match: {etag}\r\n\r\n"
        );
        s.write_all(req.as_bytes()).unwrap();
        conns.push(s);
    }
    wait_for(60, "2000 held polls", || (held(&c) >= agents as i64).then_some(()));
    std::thread::sleep(Duration::from_millis(500));
    let rss = rss_kib(pid);
    let gib = rss as f64 / (1024.0 * 1024.0);
    println!(
        "memory: {agents} held polls, central RSS {:.1} MiB ({:.1} MiB before the polls): {:.0} held polls per GiB of RSS (goal >= 20000)",
        rss as f64 / 1024.0,
        base as f64 / 1024.0,
        agents as f64 / gib
    );
    // Every held poll is still open and answers when the server stops: 503 + Retry-After: 1
    // (version 2; an early 304 would tell the agents that this store does not hold polls).
    assert_eq!(c.stop(), Some(0));
    let mut answered = 0;
    for mut s in conns {
        let mut buf = [0u8; 12];
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        if s.read_exact(&mut buf).is_ok() && &buf == b"HTTP/1.1 503" {
            answered += 1;
        }
    }
    println!("at stop: {answered} of {agents} held polls answered 503");
}
