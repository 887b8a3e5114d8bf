//! Load benchmark (not a test): N simulated agents (default 10 000) against one central
//! replica on loopback, on SQLite and on PostgreSQL (two replicas: polls held on A, jobs
//! queued through B). Measures the reconnect storm (every agent polls at once without
//! holding), RSS and CPU while the polls are held idle, and the wake latency of the held
//! polls when jobs are queued for 1 000 random hosts.
//!
//! `cargo bench -p plesk-reseller-central --bench load [-- --agents 10000 --jobs 1000]`
//! Raises its own RLIMIT_NOFILE (the central inherits it); bounded in time: every phase
//! gives up after a deadline and says so.

#[path = "../tests/support/pg.rs"]
mod pg;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use plesk_reseller_central::db;
use plesk_reseller_central::fleet::tokens;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, UnixStream};

const MAX_WAIT: u64 = 120;

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1)?.parse().ok())
        .unwrap_or(default)
}

fn raise_nofile() -> u64 {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain syscalls on a local struct.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut r);
        r.rlim_cur = r.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &r);
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut r);
    }
    r.rlim_cur
}

/// Resident set size (KiB) and utime+stime (seconds) of a process.
fn rss_cpu(pid: u32) -> (u64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 =
        f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0) + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    (rss, ticks as f64 / hz)
}

struct Resp {
    status: u16,
    etag: Option<String>,
    body: String,
}

fn parse(raw: &[u8]) -> Resp {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let etag = head.lines().find_map(|l| {
        l.to_ascii_lowercase()
            .starts_with("etag:")
            .then(|| l[5..].trim().to_string())
    });
    Resp {
        status,
        etag,
        body: body.to_string(),
    }
}

/// One request per connection from source address `src` (spreads the ephemeral ports).
async fn get(src: IpAddr, addr: SocketAddr, req: &str) -> std::io::Result<Resp> {
    let sock = TcpSocket::new_v4()?;
    sock.bind(SocketAddr::new(src, 0))?;
    let mut s = sock.connect(addr).await?;
    s.write_all(req.as_bytes()).await?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await?;
    Ok(parse(&buf))
}

fn poll_req(addr: SocketAddr, host: &str, token: &str, wait: u64, etag: Option<&str>) -> String {
    let inm = etag.map(|e| format!("If-None-Match: {e}\r\n")).unwrap_or_default();
    format!(
        "GET /v1/hosts/{host}/instructions?wait={wait} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n{inm}Connection: close\r\n\r\n"
    )
}

async fn admin(sock: &Path, method: &str, path: &str, body: &str) -> std::io::Result<Resp> {
    let mut s = UnixStream::connect(sock).await?;
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: admin\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await?;
    Ok(parse(&buf))
}

struct Server {
    child: Child,
    addr: SocketAddr,
    socket: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(root: &Path, url: &str) -> Server {
    std::fs::create_dir_all(root).unwrap();
    let r = root.display();
    let config = root.join("central.ini");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = 127.0.0.1:0\nadmin_socket = {r}/admin.sock\nmax_wait = {MAX_WAIT}\nmax_connections = 30000\n[database]\nurl = {url}\n"
        ),
    )
    .unwrap();
    let addr_file = root.join("addr");
    let child = Command::new(env!("CARGO_BIN_EXE_plesk-reseller-central"))
        .arg("--config")
        .arg(&config)
        .args(["serve", "--address-file"])
        .arg(&addr_file)
        .env_remove("NOTIFY_SOCKET")
        .env("PLESK_RESELLER_CENTRAL_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(root.join("central.log")).unwrap())
        .spawn()
        .unwrap();
    // Owned at once, so a failed start still kills it.
    let mut server = Server {
        child,
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        socket: root.join("admin.sock"),
    };
    let end = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(t) = std::fs::read_to_string(&addr_file) {
            if t.ends_with('\n') {
                server.addr = t.trim().parse().unwrap();
                return server;
            }
        }
        assert!(Instant::now() < end, "the central did not start; see {r}/central.log");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// 10 000 hosts in one transaction (the CLI would take minutes), tokens known to the bench.
async fn seed(url: &str, n: usize) -> Vec<(String, String)> {
    let d = db::connect(url).await.unwrap();
    d.migrate().await.unwrap();
    let hosts: Vec<(String, String)> = (0..n)
        .map(|i| {
            (
                format!("web-{i:05}"),
                format!("bench-token-{i:08}-{:016x}", fastrand::u64(..)),
            )
        })
        .collect();
    let mut tx = d.pool.begin().await.unwrap();
    for (id, token) in &hosts {
        sqlx::query("INSERT INTO hosts (id, token_sha256, push_secret, rev, created_at) VALUES ($1, $2, 'x', 1, 0)")
            .bind(id)
            .bind(tokens::hash(token))
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
    d.close().await;
    hosts
}

fn src_ip(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 1 + (i / 200 % 200) as u8, 1 + (i % 200) as u8))
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

async fn held_polls(addr: SocketAddr) -> u64 {
    let req = format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    match get(IpAddr::V4(Ipv4Addr::LOCALHOST), addr, &req).await {
        Ok(r) => r
            .body
            .lines()
            .find_map(|l| l.strip_prefix("central_held_polls "))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0),
        Err(_) => 0,
    }
}

async fn run(name: &str, url: &str, dir: &Path, agents: usize, jobs: usize, two: bool) {
    let hosts = Arc::new(seed(url, agents).await);
    let a = start(&dir.join("a"), url);
    let b = two.then(|| start(&dir.join("b"), url));
    let addr = a.addr;
    let pid = a.child.id();

    // 1. Reconnect storm: every agent polls at once, not held.
    let t0 = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for i in 0..hosts.len() {
        let hosts = hosts.clone();
        set.spawn(async move {
            let (h, t) = &hosts[i];
            let start = Instant::now();
            let r = get(src_ip(i), addr, &poll_req(addr, h, t, 0, None)).await;
            (i, start.elapsed().as_secs_f64() * 1000.0, r)
        });
    }
    let mut etags = vec![String::new(); hosts.len()];
    let (mut lat, mut failed) = (Vec::new(), 0usize);
    while let Some(j) = set.join_next().await {
        let (i, ms, r) = j.unwrap();
        match r {
            Ok(r) if r.status == 200 && r.etag.is_some() => {
                etags[i] = r.etag.unwrap();
                lat.push(ms);
            }
            _ => failed += 1,
        }
    }
    let storm = t0.elapsed().as_secs_f64();
    lat.sort_by(f64::total_cmp);
    println!(
        "{name}: storm of {agents} polls: {storm:.2} s, {:.0} polls/s, failed {failed}, latency p50 {:.0} ms p99 {:.0} ms max {:.0} ms",
        agents as f64 / storm,
        pct(&lat, 0.5),
        pct(&lat, 0.99),
        lat.last().copied().unwrap_or(f64::NAN)
    );

    // 2. Every agent holds a poll with its ETag.
    let (rss0, _) = rss_cpu(pid);
    let etags = Arc::new(etags);
    let mut held = tokio::task::JoinSet::new();
    for i in 0..hosts.len() {
        let (hosts, etags) = (hosts.clone(), etags.clone());
        held.spawn(async move {
            let (h, t) = &hosts[i];
            let r = get(src_ip(i), addr, &poll_req(addr, h, t, MAX_WAIT, Some(&etags[i]))).await;
            (i, Instant::now(), r)
        });
    }
    let end = Instant::now() + Duration::from_secs(120);
    while held_polls(addr).await < agents as u64 {
        if Instant::now() > end {
            println!(
                "{name}: only {} of {agents} polls held after 120 s",
                held_polls(addr).await
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (_, cpu0) = rss_cpu(pid);
    let idle = Duration::from_secs(10);
    tokio::time::sleep(idle).await;
    let (rss, cpu1) = rss_cpu(pid);
    println!(
        "{name}: {} polls held: RSS {:.1} MiB (before holding {:.1} MiB), CPU {:.2} % of one core over {} s idle",
        held_polls(addr).await,
        rss as f64 / 1024.0,
        rss0 as f64 / 1024.0,
        (cpu1 - cpu0) / idle.as_secs_f64() * 100.0,
        idle.as_secs()
    );

    // 3. Jobs for `jobs` random hosts, queued through the admin socket (B's with two
    //    replicas), 8 at a time; latency = admin request sent → held poll answered.
    let mut pick: Vec<usize> = (0..hosts.len()).collect();
    fastrand::shuffle(&mut pick);
    pick.truncate(jobs);
    let socket = b.as_ref().map(|b| b.socket.clone()).unwrap_or(a.socket.clone());
    let sent: Arc<std::sync::Mutex<Vec<Option<Instant>>>> = Arc::new(std::sync::Mutex::new(vec![None; hosts.len()]));
    let pick = Arc::new(pick);
    let mut senders = tokio::task::JoinSet::new();
    for s in 0..8 {
        let (pick, hosts, sent, socket) = (pick.clone(), hosts.clone(), sent.clone(), socket.clone());
        senders.spawn(async move {
            let mut errors = 0;
            for k in (s..pick.len()).step_by(8) {
                let i = pick[k];
                let body = format!("{{\"host\":\"{}\",\"type\":\"retrieve_keys\"}}", hosts[i].0);
                sent.lock().unwrap()[i] = Some(Instant::now());
                match admin(&socket, "POST", "/admin/v1/jobs", &body).await {
                    Ok(r) if r.status / 100 == 2 => {}
                    _ => errors += 1,
                }
            }
            errors
        });
    }
    let mut admin_errors = 0;
    while let Some(e) = senders.join_next().await {
        admin_errors += e.unwrap();
    }
    let (mut wake, mut wrong) = (Vec::new(), 0usize);
    let chosen: std::collections::HashSet<usize> = pick.iter().copied().collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while wake.len() + wrong < jobs {
        let Ok(Some(j)) = tokio::time::timeout_at(deadline, held.join_next()).await else {
            break;
        };
        let (i, at, r) = j.unwrap();
        let ok = r
            .as_ref()
            .is_ok_and(|r| r.status == 200 && r.body.contains("retrieve_keys"));
        match (chosen.contains(&i), ok, sent.lock().unwrap()[i]) {
            (true, true, Some(t)) => wake.push(at.duration_since(t).as_secs_f64() * 1000.0),
            _ => wrong += 1,
        }
    }
    wake.sort_by(f64::total_cmp);
    println!(
        "{name}: {} of {jobs} held polls woken by a job{}: median {:.1} ms, p99 {:.1} ms, max {:.1} ms; {wrong} wrong or failed answers, {admin_errors} admin errors",
        wake.len(),
        if two { " queued on the other replica" } else { "" },
        pct(&wake, 0.5),
        pct(&wake, 0.99),
        wake.last().copied().unwrap_or(f64::NAN)
    );
    held.abort_all();
}

fn main() {
    let agents = arg("--agents", 10_000);
    let jobs = arg("--jobs", 1_000).min(agents);
    let nofile = raise_nofile();
    println!(
        "RLIMIT_NOFILE {nofile}; {agents} agents, {jobs} jobs; {}",
        std::env::consts::ARCH
    );
    assert!(
        nofile as usize > agents + 1000,
        "RLIMIT_NOFILE {nofile} is too low for {agents} agents"
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    rt.block_on(async {
        let sqlite = format!("sqlite://{}/sqlite/central.db", dir.path().display());
        run("sqlite", &sqlite, &dir.path().join("sqlite"), agents, jobs, false).await;
        match pg::PgCluster::start() {
            Some(c) => {
                let url = c.database("bench");
                run("postgres", &url, &dir.path().join("pg"), agents, jobs, true).await;
            }
            None => println!("postgres: not installed, skipped"),
        }
    });
}
