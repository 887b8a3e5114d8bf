//! The fleet page with 10 000 hosts (run with `cargo bench -p plesk-reseller-central --bench ui`):
//!
//! 1. in the process: read every host from SQLite and render the first page (200 rows), and
//!    the whole fleet as one page (`per_page=10000`); goal: ≤ 200 ms each, median; and the
//!    hosts-by-health count each `/metrics` scrape makes;
//! 2. over HTTP from the real binary: `GET /ui` and `GET /ui?per_page=10000`, request sent to
//!    last byte read, over loopback.

#[path = "../tests/support/mod.rs"]
mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Instant;

use base64::Engine;
use plesk_reseller_central::fleet::host_health::Census;
use plesk_reseller_central::fleet::store::{system_clock, Store};
use plesk_reseller_central::http::ui::{render_fleet, FleetFilter, Paging, PER_PAGE};
use support::central::Central;

const HOSTS: usize = 10_000;
const RUNS: usize = 30;
const TOKEN: &str = "the-admin-token-for-the-bench";

fn median(mut ms: Vec<f64>) -> (f64, f64) {
    ms.sort_by(|a, b| a.total_cmp(b));
    (ms[ms.len() / 2], ms[((ms.len() - 1) as f64 * 0.95).round() as usize])
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let (extra, port) = support::central::admin_listen(dir.path(), TOKEN);
    let mut c = Central::new(&dir.path().join("central"), &extra);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let t0 = Instant::now();
    rt.block_on(support::fleet::seed(&c.db_url, HOSTS));
    println!("seeded {HOSTS} hosts in {:.1} s", t0.elapsed().as_secs_f64());

    println!("fleet page, {HOSTS} hosts, in the process (read all hosts + render), {RUNS} runs:");
    let store = rt.block_on(async {
        let db = plesk_reseller_central::db::connect(&c.db_url).await.unwrap();
        Store::new(db, system_clock(), None)
    });
    for per in [PER_PAGE, HOSTS] {
        let mut read_ms = Vec::new();
        let mut total_ms = Vec::new();
        let mut bytes = 0;
        for _ in 0..RUNS {
            let t = Instant::now();
            let hosts = rt.block_on(store.hosts()).unwrap();
            read_ms.push(t.elapsed().as_secs_f64() * 1000.0);
            let page = render_fleet(
                &hosts,
                &FleetFilter::default(),
                Paging { page: 1, per },
                store.now(),
                &(Vec::new(), 0),
                &(Vec::new(), 0),
            );
            bytes = page.into_string().len();
            total_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        let (read, _) = median(read_ms);
        let (med, p95) = median(total_ms);
        println!(
            "  {per:>5} rows: median {med:.1} ms (of which reading {read:.1} ms), p95 {p95:.1} ms, {} KiB; goal <= 200 ms",
            bytes / 1024
        );
    }
    let mut ms = Vec::new();
    for _ in 0..RUNS {
        let t = Instant::now();
        let rows = rt.block_on(store.health_rows()).unwrap();
        let census = Census::of_parts(rows.iter().map(|(s, r)| (*s, r.as_ref())), store.now());
        assert_eq!(census.total, HOSTS);
        ms.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let (med, p95) = median(ms);
    println!("  hosts by health for /metrics (read + count): median {med:.1} ms, p95 {p95:.1} ms");
    rt.block_on(store.db.close());

    c.start();
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("admin:{TOKEN}"));
    println!("over HTTP from the real binary (request to last byte), {RUNS} runs:");
    for path in ["/ui", "/ui?per_page=10000", "/ui?q=web-0004"] {
        let mut ms = Vec::new();
        let mut len = 0;
        for _ in 0..RUNS {
            let t = Instant::now();
            let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
            write!(
                s,
                "GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {auth}\r\nConnection: close\r\n\r\n"
            )
            .unwrap();
            let mut buf = Vec::new();
            s.read_to_end(&mut buf).unwrap();
            ms.push(t.elapsed().as_secs_f64() * 1000.0);
            assert!(
                buf.starts_with(b"HTTP/1.1 200"),
                "{}",
                String::from_utf8_lossy(&buf[..80.min(buf.len())])
            );
            len = buf.len();
        }
        let (med, p95) = median(ms);
        println!(
            "  GET {path:<22} median {med:.1} ms, p95 {p95:.1} ms, {} KiB; goal <= 200 ms",
            len / 1024
        );
    }
    c.stop();
}
