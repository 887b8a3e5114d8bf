//! Catalog proxy benchmark (not a test): cached `packages` requests at 64 concurrent
//! keep-alive connections, identity and gzip, beside two baselines on the same machine:
//!
//! - ceiling: a bare hyper server answering the very bytes the proxy sends, from memory
//!   (the gzip variant serves pre-compressed bytes);
//! - pass-through: a model of Plesk's example proxy — fetch upstream on every request,
//!   decode the JSON, drop Plesk-sold items, encode again, gzip per request when asked.
//!
//! Every server runs on its own thread with a current-thread runtime (as the proxy does in
//! production); the load generator is a small raw HTTP/1.1 client on another thread.
//! `cargo bench -p plesk-catalog-proxy --bench catalog_proxy`; `CATALOG_BENCH_SECS` (default 5) and
//! `CATALOG_BENCH_CONNS` (default 64) change the run. `CATALOG_BENCH_BIN` names an agent
//! binary (e.g. the portable one the packages ship) whose `catalog-proxy` is measured instead
//! of the in-process proxy, as its own process with the same settings.

use std::collections::HashSet;
use std::convert::Infallible;
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response};
use plesk_catalog_proxy::{self as catalog_proxy, ProxyConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PACKAGES: &[u8] = include_bytes!("../tests/fixtures/catalog/packages.json");
const SOLD: &str = include_str!("../tests/fixtures/catalog/plesk-sold.json");
const PATH: &str = "/api/v4/packages?platform=unix&with-hidden&locale=en-US";

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Runs `make`'s future forever on a new thread with its own current-thread runtime.
fn on_thread<F, Fut>(make: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + 'static,
{
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(make());
    });
}

type Handler = Arc<dyn Fn(Request<hyper::body::Incoming>) -> HandlerFut + Send + Sync>;
type HandlerFut = std::pin::Pin<Box<dyn std::future::Future<Output = Response<Full<Bytes>>> + Send>>;

/// A plain hyper HTTP/1 server on its own thread; returns its address.
fn hyper_server(handler: Handler) -> SocketAddr {
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    std_listener.set_nonblocking(true).unwrap();
    let addr = std_listener.local_addr().unwrap();
    on_thread(move || async move {
        let listener = tokio::net::TcpListener::from_std(std_listener).unwrap();
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let _ = stream.set_nodelay(true);
            let handler = handler.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| {
                    let h = handler.clone();
                    async move { Ok::<_, Infallible>(h(req).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

fn wants_gzip(req: &Request<hyper::body::Incoming>) -> bool {
    req.headers()
        .get("accept-encoding")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("gzip"))
}

fn response(body: Bytes, gz: bool) -> Response<Full<Bytes>> {
    let mut b = Response::builder()
        .header("content-type", "application/json")
        .header("vary", "Accept-Encoding");
    if gz {
        b = b.header("content-encoding", "gzip");
    }
    b.body(Full::new(body)).unwrap()
}

fn gzip(b: &[u8], level: flate2::Compression) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), level);
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

struct Stats {
    requests: u64,
    rps: f64,
    p50: Duration,
    p99: Duration,
}

/// `conns` keep-alive connections sending `request` back to back for `secs`.
fn load(addr: SocketAddr, gz: bool, conns: u64, secs: u64) -> Stats {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let request: Arc<[u8]> = format!(
        "GET {PATH} HTTP/1.1\r\nHost: bench\r\nUser-Agent: bench{}\r\n\r\n",
        if gz { "\r\nAccept-Encoding: gzip" } else { "" }
    )
    .into_bytes()
    .into();
    rt.block_on(async move {
        // Warm up: connections open, caches filled.
        let warm_until = Instant::now() + Duration::from_millis(500);
        let until = warm_until + Duration::from_secs(secs);
        let tasks: Vec<_> = (0..conns)
            .map(|_| {
                let request = request.clone();
                tokio::spawn(async move { connection(addr, &request, warm_until, until).await })
            })
            .collect();
        let mut lat: Vec<Duration> = Vec::new();
        for t in tasks {
            lat.extend(t.await.unwrap());
        }
        lat.sort_unstable();
        let pick = |q: f64| {
            lat.get(((lat.len() as f64 * q) as usize).min(lat.len().saturating_sub(1)))
                .copied()
        };
        Stats {
            requests: lat.len() as u64,
            rps: lat.len() as f64 / secs as f64,
            p50: pick(0.50).unwrap_or_default(),
            p99: pick(0.99).unwrap_or_default(),
        }
    })
}

/// Latencies of the requests completed between `from` and `until` on one connection.
async fn connection(addr: SocketAddr, request: &[u8], from: Instant, until: Instant) -> Vec<Duration> {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.set_nodelay(true).unwrap();
    let mut buf: Vec<u8> = Vec::with_capacity(1 << 20);
    let mut lat = Vec::new();
    loop {
        let t0 = Instant::now();
        if t0 >= until {
            return lat;
        }
        s.write_all(request).await.unwrap();
        let (head, len) = loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = std::str::from_utf8(&buf[..end]).unwrap();
                assert!(head.starts_with("HTTP/1.1 200"), "{head}");
                let len = head
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse::<usize>().ok())?
                    })
                    .expect("a Content-Length");
                break (end + 4, len);
            }
            if s.read_buf(&mut buf).await.unwrap() == 0 {
                panic!("the server closed the connection");
            }
        };
        while buf.len() < head + len {
            buf.reserve(head + len - buf.len());
            if s.read_buf(&mut buf).await.unwrap() == 0 {
                panic!("the server closed the connection mid-body");
            }
        }
        buf.drain(..head + len);
        if t0 >= from {
            lat.push(t0.elapsed());
        }
    }
}

/// Kills the external proxy when the bench ends; its config dir goes with it.
struct Child {
    process: std::process::Child,
    _dir: tempfile::TempDir,
}
impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// Starts `BIN catalog-proxy` on a free loopback port with the bench's upstream and allow
/// list; its address comes from the "serving" log line (listen=...).
fn spawn_proxy_bin(bin: &str, upstream: SocketAddr, allow: &[String]) -> (SocketAddr, Child) {
    use std::io::BufRead as _;
    let dir = tempfile::tempdir().unwrap();
    let ini = dir.path().join("catalog-proxy.ini");
    std::fs::write(
        &ini,
        format!(
            "[catalog_proxy]\nlisten = 127.0.0.1:0\nupstream = http://{upstream}\nallow = {}\n",
            allow.join(",")
        ),
    )
    .unwrap();
    let mut child = std::process::Command::new(bin)
        .arg("--config")
        .arg(&ini)
        .arg("catalog-proxy")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start CATALOG_BENCH_BIN {bin}: {e}"));
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = loop {
        let line = lines
            .next()
            .unwrap_or_else(|| panic!("{bin} catalog-proxy exited before serving"))
            .unwrap();
        if let Some(rest) = line.split("listen=").nth(1) {
            break rest.split_whitespace().next().unwrap().parse().unwrap();
        }
    };
    // Keep draining its log so that it never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    println!("proxy under test: {bin} catalog-proxy (pid {})", child.id());
    (
        addr,
        Child {
            process: child,
            _dir: dir,
        },
    )
}

fn main() {
    let secs = env_num("CATALOG_BENCH_SECS", 5);
    let conns = env_num("CATALOG_BENCH_CONNS", 64);
    let sold: Vec<String> = serde_json::from_str(SOLD).unwrap();
    let allow: Vec<String> = sold.iter().step_by(10).cloned().collect();

    // The upstream: the fixture feed from memory.
    let upstream = hyper_server(Arc::new(|_req| {
        Box::pin(async { response(Bytes::from_static(PACKAGES), false) }) as HandlerFut
    }));

    // The proxy under test: on its own thread like the others, or another binary's.
    let external = std::env::var("CATALOG_BENCH_BIN").ok().filter(|b| !b.is_empty());
    let (proxy, _child) = match external {
        Some(bin) => {
            let (addr, child) = spawn_proxy_bin(&bin, upstream, &allow);
            (addr, Some(child))
        }
        None => {
            let (tx, rx) = std::sync::mpsc::channel();
            let cfg = ProxyConfig {
                listen: "127.0.0.1:0".parse().unwrap(),
                upstream: format!("http://{upstream}"),
                allow: allow.clone(),
                ..ProxyConfig::defaults()
            };
            on_thread(move || async move {
                let running = catalog_proxy::start(cfg).await.unwrap();
                tx.send(running.addr).unwrap();
                std::future::pending::<()>().await;
            });
            (rx.recv().unwrap(), None)
        }
    };

    // The exact bytes the proxy sends, for the ceiling.
    let (identity, gzipped) = {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let c = reqwest::Client::builder().no_proxy().build().unwrap();
            let url = format!("http://{proxy}{PATH}");
            let id = c.get(&url).send().await.unwrap().bytes().await.unwrap();
            let gz = c.get(&url).header("accept-encoding", "gzip").send().await.unwrap();
            assert_eq!(gz.headers()["content-encoding"], "gzip");
            (id, gz.bytes().await.unwrap())
        })
    };
    let ceiling = {
        let (identity, gzipped) = (identity.clone(), gzipped.clone());
        hyper_server(Arc::new(move |req| {
            let body = if wants_gzip(&req) {
                gzipped.clone()
            } else {
                identity.clone()
            };
            let gz = wants_gzip(&req);
            Box::pin(async move { response(body, gz) }) as HandlerFut
        }))
    };

    // Plesk's example, modelled: fetch, decode, filter by prefix, encode, (nginx) gzip.
    let passthrough = {
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        let url = format!("http://{upstream}{PATH}");
        let allow: Arc<HashSet<String>> = Arc::new(allow.iter().cloned().collect());
        hyper_server(Arc::new(move |req| {
            let (client, url, allow, gz) = (client.clone(), url.clone(), allow.clone(), wants_gzip(&req));
            Box::pin(async move {
                let body = client.get(&url).send().await.unwrap().bytes().await.unwrap();
                let items: Vec<serde_json::Value> = serde_json::from_slice(&body).unwrap();
                let kept: Vec<&serde_json::Value> = items
                    .iter()
                    .filter(|i| {
                        let sold = i["buy_url"]
                            .as_str()
                            .is_some_and(|u| u.starts_with("https://go.plesk.com"));
                        !sold || i["code"].as_str().is_some_and(|c| allow.contains(c))
                    })
                    .collect();
                let out = serde_json::to_vec(&kept).unwrap();
                let out = if gz {
                    gzip(&out, flate2::Compression::fast())
                } else {
                    out
                };
                response(out.into(), gz)
            }) as HandlerFut
        }))
    };

    println!(
        "catalog-proxy benchmark: cached packages, {} bytes identity / {} bytes gzip, {conns} connections, {secs} s each",
        identity.len(),
        gzipped.len()
    );
    println!(
        "{:<26} {:>10} {:>12} {:>10} {:>10}",
        "server", "requests", "requests/s", "p50 ms", "p99 ms"
    );
    let mut results = Vec::new();
    for (name, addr, gz) in [
        ("ceiling identity", ceiling, false),
        ("proxy identity", proxy, false),
        ("pass-through identity", passthrough, false),
        ("ceiling gzip", ceiling, true),
        ("proxy gzip", proxy, true),
        ("pass-through gzip", passthrough, true),
    ] {
        let s = load(addr, gz, conns, secs);
        println!(
            "{name:<26} {:>10} {:>12.0} {:>10.2} {:>10.2}",
            s.requests,
            s.rps,
            s.p50.as_secs_f64() * 1e3,
            s.p99.as_secs_f64() * 1e3
        );
        results.push(s);
    }
    let ratio = |a: &Stats, b: &Stats| a.rps / b.rps;
    let p99 = |a: &Stats, b: &Stats| a.p99.as_secs_f64() / b.p99.as_secs_f64();
    let (ci, pi, ti, cg, pg, tg) = (
        &results[0],
        &results[1],
        &results[2],
        &results[3],
        &results[4],
        &results[5],
    );
    println!();
    println!(
        "proxy/ceiling throughput: identity {:.2}x, gzip {:.2}x (target >= 0.5x)",
        ratio(pi, ci),
        ratio(pg, cg)
    );
    println!(
        "proxy/ceiling p99:        identity {:.2}x, gzip {:.2}x (target <= 2x)",
        p99(pi, ci),
        p99(pg, cg)
    );
    println!(
        "proxy/pass-through throughput: identity {:.1}x, gzip {:.1}x",
        ratio(pi, ti),
        ratio(pg, tg)
    );
}
