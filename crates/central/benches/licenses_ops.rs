//! License operation to the server: time from `licenses suspend|resume` returning to the
//! stand-in plesk starting `license --retrieve`, with the fake KA answering every call in
//! 200 ms. Real processes: the central binary, the real agent (long-polling), the stand-in
//! plesk behind a wrapper that stamps `$EPOCHREALTIME` when a license command starts.
//! Goal: KA's time + at most 50 ms. `cargo bench -p plesk-reseller-central --bench licenses_ops`
//! (LICENSES_BENCH_N=50 operations, LICENSES_BENCH_GAP_MS=3000 between them: the agent's poll
//! rate limit, as in the orders bench).

#[path = "../tests/support/mod.rs"]
mod support;

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use support::agent::Agent;
use support::central::Central;
use support::fake_ka::{self, FakeKa};
use support::wait_for;

const KA_DELAY: Duration = Duration::from_millis(200);
const KN: &str = "PLSK.12345678.0001";

fn now_us() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_micros() as i64
}

fn main() {
    let env = |k: &str, d: u64| std::env::var(k).ok().and_then(|v| v.parse().ok()).unwrap_or(d);
    let n = env("LICENSES_BENCH_N", 50) as usize;
    let gap = Duration::from_millis(env("LICENSES_BENCH_GAP_MS", 3000));
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let ka = rt.block_on(FakeKa::start(&["PLESK-12-WEB-HOST-1M"]));
    ka.add_key(KN);
    let pw = dir.path().join("ka.password");
    std::fs::write(&pw, fake_ka::PASSWORD).unwrap();
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
    let extra = format!(
        "[ka]\nurl = {}\nusername = {}\npassword_file = {}\nowner_id = {}\nplesk_item = PLESK-12-WEB-HOST-1M\n",
        ka.base_url(),
        fake_ka::USER,
        pw.display(),
        fake_ka::OWNER
    );
    let mut central = Central::new(&dir.path().join("central"), &extra);
    central.start();
    let token = central.add_host("web-1", &[])["token"].as_str().unwrap().to_string();
    let mut agent = Agent::new(&dir.path().join("agent"), &central.url(), "web-1", &token, 25, "");
    agent.set_key("PLSK123456780001");
    let plesk = agent.plesk_dir.join("plesk");
    let real = agent.plesk_dir.join("plesk-real");
    std::fs::rename(&plesk, &real).unwrap();
    let starts = agent.plesk_dir.join("starts.log");
    std::fs::write(
        &plesk,
        format!(
            "#!/bin/bash\n[ \"$1 $2\" = \"bin license\" ] && echo \"$EPOCHREALTIME\" >>{}\nexec \"$(dirname \"$0\")/plesk-real\" \"$@\"\n",
            starts.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&plesk, std::fs::Permissions::from_mode(0o755)).unwrap();
    agent.start();
    wait_for(30, "the host's key number", || {
        (central.json(&["hosts", "show", "web-1"])["key_number"] == KN).then_some(())
    });
    central.json(&["licenses", "adopt", "--key-number", KN]);
    ka.set_delay(KA_DELAY);
    let stamps = || -> Vec<i64> {
        std::fs::read_to_string(&starts)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let (s, us) = l.trim().split_once('.')?;
                Some(s.parse::<i64>().ok()? * 1_000_000 + us.parse::<i64>().ok()?)
            })
            .collect()
    };

    let mut lat_ms = Vec::with_capacity(n);
    for i in 0..n {
        let op = format!("bench-{i}");
        let kind = if i % 2 == 0 { "suspend" } else { "resume" };
        let out = central.cli(&["licenses", kind, "12345678", "--op-id", &op]);
        let returned = now_us();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let started = wait_for(30, "the retrieve command", || {
            let s = stamps();
            (s.len() > i).then(|| s[i])
        });
        lat_ms.push((started - returned) as f64 / 1000.0);
        std::thread::sleep(gap);
    }
    lat_ms.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| lat_ms[((lat_ms.len() as f64 - 1.0) * p).round() as usize];
    let ka_ms = KA_DELAY.as_millis() as f64;
    println!(
        "licenses suspend/resume returning -> license --retrieve starting, {n} operations {} ms apart, KA answering in {ka_ms} ms:\n  \
         median {:.1} ms (KA + {:.1} ms), p99 {:.1} ms (KA + {:.1} ms), min {:.1} ms, max {:.1} ms; goal KA + <= 50 ms",
        gap.as_millis(),
        pct(0.5),
        pct(0.5) - ka_ms,
        pct(0.99),
        pct(0.99) - ka_ms,
        lat_ms[0],
        lat_ms[lat_ms.len() - 1]
    );
    let puts = ka.calls().iter().filter(|c| c.method == "PUT").count();
    assert_eq!(puts, n, "one KA call per operation");
    drop(agent);
    central.stop();
}
