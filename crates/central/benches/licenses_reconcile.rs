//! Reconcile of 10 000 licenses against a fake KA answering each read in 50 ms, with
//! `[ka] max_concurrency = 4`: the wall time of one pass (floor 10 000 × 50 ms / 4 = 125 s),
//! the peak of KA requests at once (never above 4), and the central's peak RSS. The licenses
//! are written to the SQLite database before the central starts; `reconcile_interval = 1`
//! leaves the spread no room, so the bound on concurrency is what is measured.
//! `cargo bench -p plesk-reseller-central --bench licenses_reconcile` (RECONCILE_BENCH_N=10000).

#[path = "../tests/support/mod.rs"]
mod support;

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use plesk_reseller_central::db;
use support::central::Central;
use support::fake_ka::{self, FakeKa};
use support::wait_for;

const KA_DELAY: Duration = Duration::from_millis(50);
const MAX_CONCURRENCY: usize = 4;

fn rss_peak_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

fn main() {
    let n: u64 = std::env::var("RECONCILE_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let ka = rt.block_on(FakeKa::start(&["PLESK-12-WEB-HOST-1M"]));
    for i in 0..n {
        ka.add_key(&format!("PLSK.{:08}.0001", 10_000_000 + i));
    }
    let pw = dir.path().join("ka.password");
    std::fs::write(&pw, fake_ka::PASSWORD).unwrap();
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
    let extra = format!(
        "[ka]\nurl = {}\nusername = {}\npassword_file = {}\nowner_id = {}\nplesk_item = PLESK-12-WEB-HOST-1M\n\
         reconcile_interval = 1\nmax_concurrency = {MAX_CONCURRENCY}\n",
        ka.base_url(),
        fake_ka::USER,
        pw.display(),
        fake_ka::OWNER
    );
    let mut central = Central::new(&dir.path().join("central"), &extra);
    rt.block_on(async {
        let db = db::connect(&central.db_url).await.unwrap();
        db.migrate().await.unwrap();
        let mut tx = db.pool.begin().await.unwrap();
        for i in 0..n as i64 {
            sqlx::query(
                "INSERT INTO licenses (id, key_number, kind, items, state, created_at, updated_at) \
                 VALUES ($1, $2, 'plesk', '[\"PLESK-12-WEB-HOST-1M\"]', 'active', 0, 0)",
            )
            .bind(10_000_000 + i)
            .bind(format!("PLSK.{:08}.0001", 10_000_000 + i))
            .execute(&mut *tx)
            .await
            .unwrap();
        }
        tx.commit().await.unwrap();
        db.close().await;
    });
    ka.set_delay(KA_DELAY);
    let started = Instant::now();
    central.start();
    let pid = central.pid().unwrap();
    let reads = || ka.calls().iter().filter(|c| c.method == "GET").count() as u64;
    let mut rss = 0;
    wait_for(3600, "a whole reconcile pass", || {
        rss = rss.max(rss_peak_kib(pid));
        std::thread::sleep(Duration::from_millis(200));
        (reads() >= n).then_some(())
    });
    let wall = started.elapsed();
    // Let the last answers be written before the figures.
    std::thread::sleep(Duration::from_millis(500));
    rss = rss.max(rss_peak_kib(pid));
    let floor = KA_DELAY.as_secs_f64() * n as f64 / MAX_CONCURRENCY as f64;
    let mutating = ka.calls().iter().filter(|c| c.method != "GET").count();
    println!(
        "reconcile of {n} licenses, KA answering in {} ms, max_concurrency {MAX_CONCURRENCY}:\n  \
         wall time {:.1} s (floor {:.1} s, {:.0} % above it, including the central's start)\n  \
         peak KA requests at once {} (goal <= {MAX_CONCURRENCY})\n  \
         central peak RSS {:.1} MiB\n  mutating KA calls {mutating} (goal 0)",
        KA_DELAY.as_millis(),
        wall.as_secs_f64(),
        floor,
        (wall.as_secs_f64() / floor - 1.0) * 100.0,
        ka.peak_concurrency(),
        rss as f64 / 1024.0
    );
    assert!(
        ka.peak_concurrency() <= MAX_CONCURRENCY,
        "more KA requests at once than allowed"
    );
    assert_eq!(mutating, 0);
    central.stop();
}
