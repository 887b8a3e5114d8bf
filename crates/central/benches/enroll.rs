//! Enrollment benchmark (not a test): N agents (default 10 000; a load client, not processes)
//! enroll at once with one enroll key of N uses, against one central on SQLite and against two
//! replicas on PostgreSQL (requests alternate between them). Reports the wall time (goal
//! <= 60 s), errors (goal 0), hosts made (exactly N), then the same clients' first polls with
//! their new tokens and how long until every one of them is held.
//!
//! `cargo bench -p plesk-reseller-central --bench enroll [-- --agents 10000 --concurrency 500]`

#[path = "../tests/support/pg.rs"]
mod pg;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use plesk_reseller_central::db;
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

fn enroll_req(addr: SocketAddr, key: &str, host: &str) -> String {
    let body = format!("{{\"enroll_key\":\"{key}\",\"host_id\":\"{host}\",\"agent_version\":\"bench\"}}");
    format!(
        "POST /v1/enroll HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

fn token_of(body: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    Some(v["token"].as_str()?.to_string())
}

async fn run(name: &str, url: &str, dir: &Path, agents: usize, concurrency: usize, two: bool) {
    let a = start(&dir.join("a"), url);
    let b = two.then(|| start(&dir.join("b"), url));
    let addrs: Arc<Vec<SocketAddr>> = Arc::new(std::iter::once(a.addr).chain(b.as_ref().map(|b| b.addr)).collect());
    let created = admin(
        &a.socket,
        "POST",
        "/admin/v1/enroll-keys",
        &format!("{{\"uses\": {agents}, \"expires\": \"1h\", \"note\": \"bench\"}}"),
    )
    .await
    .unwrap();
    assert_eq!(created.status, 201, "{}", created.body);
    let key: Arc<str> = serde_json::from_str::<serde_json::Value>(&created.body).unwrap()["key"]
        .as_str()
        .unwrap()
        .into();

    // 1. Every agent enrolls, `concurrency` at a time.
    let gate = Arc::new(tokio::sync::Semaphore::new(concurrency));
    let t0 = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for i in 0..agents {
        let (key, addrs, gate) = (key.clone(), addrs.clone(), gate.clone());
        set.spawn(async move {
            let _p = gate.acquire_owned().await.unwrap();
            let addr = addrs[i % addrs.len()];
            let host = format!("web-{i:05}");
            let start = Instant::now();
            let r = get(src_ip(i), addr, &enroll_req(addr, &key, &host)).await;
            (i, start.elapsed().as_secs_f64() * 1000.0, r)
        });
    }
    let mut tokens = vec![String::new(); agents];
    let (mut lat, mut errors) = (Vec::new(), 0usize);
    while let Some(j) = set.join_next().await {
        let (i, ms, r) = j.unwrap();
        match r.ok().filter(|r| r.status == 201).and_then(|r| token_of(&r.body)) {
            Some(t) => {
                tokens[i] = t;
                lat.push(ms);
            }
            None => errors += 1,
        }
    }
    let wall = t0.elapsed().as_secs_f64();
    lat.sort_by(f64::total_cmp);
    let d = db::connect(url).await.unwrap();
    let hosts: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM hosts")
        .fetch_one(&d.pool)
        .await
        .unwrap();
    let left: i64 = sqlx::query_scalar("SELECT uses_left FROM enroll_keys")
        .fetch_one(&d.pool)
        .await
        .unwrap();
    d.close().await;
    println!(
        "{name}: {agents} enrolls ({concurrency} at a time{}): wall {wall:.2} s ({:.0}/s), errors {errors}, hosts made {hosts}, uses left {left}, latency p50 {:.0} ms p99 {:.0} ms max {:.0} ms",
        if two { ", alternating between two replicas" } else { "" },
        agents as f64 / wall,
        pct(&lat, 0.5),
        pct(&lat, 0.99),
        lat.last().copied().unwrap_or(f64::NAN)
    );

    // 2. The same clients' first polls with their new tokens (answered at once: no ETag yet),
    //    then each holds the next one with the ETag it got.
    let tokens = Arc::new(tokens);
    let t1 = Instant::now();
    let mut held = tokio::task::JoinSet::new();
    for i in 0..agents {
        let (tokens, addrs, gate) = (tokens.clone(), addrs.clone(), gate.clone());
        held.spawn(async move {
            let addr = addrs[i % addrs.len()];
            let host = format!("web-{i:05}");
            let first = {
                let _p = gate.acquire_owned().await.unwrap();
                get(src_ip(i), addr, &poll_req(addr, &host, &tokens[i], 0, None)).await
            };
            let Ok(Some(etag)) = first.map(|r| r.etag) else {
                return false;
            };
            let _ = get(
                src_ip(i),
                addr,
                &poll_req(addr, &host, &tokens[i], MAX_WAIT, Some(&etag)),
            )
            .await;
            true
        });
    }
    let end = Instant::now() + Duration::from_secs(120);
    let count = |addrs: Arc<Vec<SocketAddr>>| async move {
        let mut n = 0;
        for a in addrs.iter() {
            n += held_polls(*a).await;
        }
        n
    };
    let mut n = 0;
    while n < agents as u64 && Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(100)).await;
        n = count(addrs.clone()).await;
    }
    println!(
        "{name}: first polls of the {agents} enrolled agents: {n} held after {:.2} s",
        t1.elapsed().as_secs_f64()
    );
    held.abort_all();
}

fn main() {
    let agents = arg("--agents", 10_000);
    let concurrency = arg("--concurrency", 500);
    let nofile = raise_nofile();
    println!("RLIMIT_NOFILE {nofile}; {agents} agents; {}", std::env::consts::ARCH);
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
        run(
            "sqlite",
            &sqlite,
            &dir.path().join("sqlite"),
            agents,
            concurrency,
            false,
        )
        .await;
        match pg::PgCluster::start() {
            Some(c) => {
                let url = c.database("bench");
                run("postgres", &url, &dir.path().join("pg"), agents, concurrency, true).await;
            }
            None => println!("postgres: not installed, skipped"),
        }
    });
}
