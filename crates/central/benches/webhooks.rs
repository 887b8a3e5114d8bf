//! Webhooks, measured against the goals with the real central binary (SQLite) and a
//! receiver on loopback. `cargo bench -p plesk-reseller-central --bench webhooks`
//!
//! 1. Commit → webhook received: a job result is POSTed as the agent would (its commit makes a
//!    job.succeeded event); the time from sending that POST (so the figure includes the
//!    result's own handling: an upper bound) to the receiver reading the webhook. Goal: median
//!    ≤ 50 ms. WEBHOOKS_BENCH_N samples (default 50).
//! 2. Backlog: WEBHOOKS_BENCH_BACKLOG events (default 10 000) written with the central's own
//!    writer while no URL is configured, then the central started with a fast receiver: events
//!    per second until the last one is received. Goal: ≥ 500/s.
//! 3. Bounded retry state: the receiver down (connection refused) while events keep coming
//!    (20/s), the central's RSS sampled every 10 s for WEBHOOKS_BENCH_DOWN_S seconds (default
//!    120; the issue asks for 10 minutes, shortened to keep the shared machine usable). Goal: no
//!    growth after the first minute beyond noise.

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use plesk_reseller_central::events::{self, EventType};
use support::central::Central;
use support::http::{request, result_body};
use support::receiver::{webhooks_config, Receiver};
use support::wait_for;

fn env(k: &str, d: u64) -> u64 {
    std::env::var(k).ok().and_then(|v| v.parse().ok()).unwrap_or(d)
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Writes `n` events into the database at `url` with the central's own writer, in
/// transactions of 500.
fn write_events(rt: &tokio::runtime::Runtime, url: &str, n: usize) {
    rt.block_on(async {
        let db = plesk_reseller_central::db::connect(url).await.unwrap();
        db.migrate().await.unwrap();
        let mut left = n;
        while left > 0 {
            let batch = left.min(500);
            let mut tx = db.pool.begin_with(db.dialect.begin_write()).await.unwrap();
            for i in 0..batch {
                let data =
                    serde_json::json!({"job": format!("j-bench-{left}-{i}"), "state": "succeeded", "host": "web-1"});
                events::record(&mut tx, EventType::JobSucceeded, data).await.unwrap();
            }
            tx.commit().await.unwrap();
            left -= batch;
        }
        db.close().await;
    });
}

fn latency(dir: &std::path::Path, n: usize) {
    let rx = Receiver::start(&[], 200);
    std::fs::create_dir_all(dir).unwrap();
    let (wh, _) = webhooks_config(dir, &rx.url());
    let mut c = Central::new(dir, &wh);
    c.start();
    let token = c.add_host("web-1", &[])["token"].as_str().unwrap().to_string();
    let mut ms = Vec::new();
    for i in 0..n {
        let job = c.json(&["jobs", "add", "--host", "web-1", "retrieve-keys"]);
        let id = job["id"].as_str().unwrap().to_string();
        let path = format!("/v1/hosts/web-1/jobs/{id}/result");
        let body = result_body("succeeded", "done");
        let t0 = Instant::now();
        let r = request(&c.addr, "POST", &path, Some(&token), &[], body.as_bytes());
        assert!(r.status / 100 == 2);
        let got = wait_for(30, "the webhook", || {
            rx.got().into_iter().find(|d| d.json()["data"]["job"] == id.as_str())
        });
        ms.push((got.at - t0).as_secs_f64() * 1000.0);
        if i % 10 == 9 {
            eprint!(".");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    ms.sort_by(f64::total_cmp);
    let p = |q: f64| ms[((ms.len() - 1) as f64 * q).round() as usize];
    println!(
        "commit -> webhook received ({n} events): median {:.1} ms, p90 {:.1} ms, max {:.1} ms (goal: median <= 50 ms) {}",
        p(0.5),
        p(0.9),
        p(1.0),
        if p(0.5) <= 50.0 { "OK" } else { "MISSED" }
    );
}

fn backlog(rt: &tokio::runtime::Runtime, dir: &std::path::Path, n: usize) {
    std::fs::create_dir_all(dir).unwrap();
    let url = format!("sqlite://{}/db/central.db", dir.display());
    write_events(rt, &url, n);
    let rx = Receiver::start(&[], 200);
    let (wh, _) = webhooks_config(dir, &rx.url());
    let mut c = Central::new(dir, &wh);
    let t0 = Instant::now();
    c.start();
    let started = t0.elapsed();
    wait_for(600, "the whole backlog", || (rx.count() >= n).then_some(()));
    let all = t0.elapsed();
    let rate = n as f64 / (all - started).as_secs_f64();
    println!(
        "backlog of {n} events drained in {:.1} s after the start ({:.0} events/s; goal >= 500/s) {}",
        (all - started).as_secs_f64(),
        rate,
        if rate >= 500.0 { "OK" } else { "MISSED" }
    );
}

fn receiver_down(rt: &tokio::runtime::Runtime, dir: &std::path::Path, secs: u64) {
    std::fs::create_dir_all(dir).unwrap();
    // A port nothing listens on: every attempt is refused at once.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (wh, _) = webhooks_config(dir, &format!("http://127.0.0.1:{port}/hook"));
    let mut c = Central::new(dir, &wh);
    c.start();
    let pid = c.pid().unwrap();
    let url = c.db_url.clone();
    let t0 = Instant::now();
    let mut samples = Vec::new();
    let mut next_sample = Duration::ZERO;
    let mut written = 0;
    while t0.elapsed() < Duration::from_secs(secs) {
        write_events(rt, &url, 20);
        written += 20;
        if t0.elapsed() >= next_sample {
            samples.push((t0.elapsed().as_secs(), rss_kib(pid)));
            next_sample += Duration::from_secs(10);
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    samples.push((t0.elapsed().as_secs(), rss_kib(pid)));
    let after_warmup: Vec<u64> = samples.iter().filter(|(t, _)| *t >= 60).map(|(_, r)| *r).collect();
    let (first, last) = (
        after_warmup.first().copied().unwrap_or(0),
        after_warmup.last().copied().unwrap_or(0),
    );
    let max = after_warmup.iter().copied().max().unwrap_or(0);
    println!(
        "receiver down for {secs} s, {written} events pending and retrying: RSS {} KiB at 60 s, {last} KiB at the end, \
         max {max} KiB after 60 s (goal: flat) {}",
        first,
        if last <= first + first / 10 { "OK" } else { "GREW" }
    );
    println!(
        "  RSS samples (s, KiB): {}",
        samples
            .iter()
            .map(|(t, r)| format!("{t}:{r}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    latency(&dir.path().join("latency"), env("WEBHOOKS_BENCH_N", 50) as usize);
    backlog(
        &rt,
        &dir.path().join("backlog"),
        env("WEBHOOKS_BENCH_BACKLOG", 10_000) as usize,
    );
    receiver_down(&rt, &dir.path().join("down"), env("WEBHOOKS_BENCH_DOWN_S", 120));
}
