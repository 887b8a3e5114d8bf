//! The catalog proxy against a fake upstream (hyper on 127.0.0.1:0) serving the fixture feed
//! in tests/fixtures/catalog (see generate.py there; plesk-sold.json is the oracle).

use std::collections::HashSet;
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response};
use plesk_reseller_agent::catalog_proxy::{self, ProxyConfig, Running};
use serde_json::value::RawValue;
use serde_json::Value;

mod support;
use support::net::{self, free_port};

const PACKAGES: &[u8] = include_bytes!("fixtures/catalog/packages.json");
const CATEGORIES: &[u8] = include_bytes!("fixtures/catalog/categories.json");
const SOLD: &str = include_str!("fixtures/catalog/plesk-sold.json");

#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    Normal,
    Status503,
    Hang,
    /// 200 with a body that is not JSON.
    Garbage,
    /// 200 with a JSON array of non-objects.
    NotObjects,
}

struct FakeState {
    fetches: AtomicUsize,
    mode: Mutex<Mode>,
    delay_ms: AtomicU64,
    gzip: AtomicBool,
    seen: Mutex<Vec<(String, hyper::HeaderMap)>>,
}

struct Fake {
    addr: SocketAddr,
    state: Arc<FakeState>,
    _task: tokio::task::JoinHandle<()>,
}

impl Fake {
    async fn start() -> Fake {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(FakeState {
            fetches: AtomicUsize::new(0),
            mode: Mutex::new(Mode::Normal),
            delay_ms: AtomicU64::new(0),
            gzip: AtomicBool::new(false),
            seen: Mutex::new(Vec::new()),
        });
        let st = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let st = st.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| {
                        let st = st.clone();
                        async move { Ok::<_, std::convert::Infallible>(fake_answer(&st, req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Fake {
            addr,
            state,
            _task: task,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
    fn fetches(&self) -> usize {
        self.state.fetches.load(Ordering::SeqCst)
    }
    fn set_mode(&self, m: Mode) {
        *self.state.mode.lock().unwrap() = m;
    }
    fn seen(&self) -> Vec<(String, hyper::HeaderMap)> {
        self.state.seen.lock().unwrap().clone()
    }
}

async fn fake_answer(st: &FakeState, req: Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
    st.fetches.fetch_add(1, Ordering::SeqCst);
    let pq = req.uri().path_and_query().map(|p| p.to_string()).unwrap_or_default();
    st.seen.lock().unwrap().push((pq, req.headers().clone()));
    let delay = st.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let mode = *st.mode.lock().unwrap();
    let path = req.uri().path().to_string();
    let (status, ctype, body): (u16, &str, Bytes) = match mode {
        Mode::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            unreachable!()
        }
        Mode::Status503 => (503, "text/html", Bytes::from_static(b"<h1>down</h1>")),
        Mode::Garbage => (200, "application/json", Bytes::from_static(b"<html>maintenance</html>")),
        Mode::NotObjects => (200, "application/json", Bytes::from_static(b"[1,\"x\",null]")),
        Mode::Normal => match path.as_str() {
            "/api/v4/packages" => (200, "application/json; charset=utf-8", Bytes::from_static(PACKAGES)),
            "/api/v4/categories" => (200, "application/json; charset=utf-8", Bytes::from_static(CATEGORIES)),
            "/api/v4/other" => (
                200,
                "text/x-other",
                Bytes::from_static(b"{\"buy_url\":\"https://go.plesk.com/x\"}"),
            ),
            "/api/v4/moved" => (302, "text/plain", Bytes::from_static(b"moved")),
            _ => (404, "text/plain", Bytes::from_static(b"no such thing")),
        },
    };
    let mut b = Response::builder().status(status).header("content-type", ctype);
    if status == 302 {
        b = b.header("location", "http://127.0.0.1:1/elsewhere");
    }
    let body = if st.gzip.load(Ordering::SeqCst) {
        b = b.header("content-encoding", "gzip");
        gzip(&body).into()
    } else {
        body
    };
    b.body(Full::new(body)).unwrap()
}

fn gzip(b: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

fn gunzip(b: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(b).read_to_end(&mut out).unwrap();
    out
}

fn config(upstream: &str, allow: &[&str]) -> ProxyConfig {
    ProxyConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        upstream: upstream.to_string(),
        allow: allow.iter().map(|s| s.to_string()).collect(),
        ..ProxyConfig::defaults()
    }
}

async fn proxy(cfg: ProxyConfig) -> Running {
    catalog_proxy::start(cfg).await.unwrap()
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

async fn get(p: &Running, pq: &str) -> reqwest::Response {
    client().get(format!("http://{}{pq}", p.addr)).send().await.unwrap()
}

async fn json(r: reqwest::Response) -> Value {
    serde_json::from_slice(&r.bytes().await.unwrap()).unwrap()
}

fn sold() -> Vec<String> {
    serde_json::from_str(SOLD).unwrap()
}

fn codes(body: &[u8]) -> Vec<String> {
    let v: Vec<Value> = serde_json::from_slice(body).unwrap();
    v.iter()
        .map(|i| i["code"].as_str().map(String::from).unwrap_or_default())
        .collect()
}

fn fixture_codes() -> Vec<String> {
    codes(PACKAGES)
}

/// One counter's value from the metrics text.
fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(' ')))
        .map(|v| v.trim().parse().unwrap())
        .unwrap_or(0)
}

async fn metrics(p: &Running) -> String {
    get(p, "/metrics").await.text().await.unwrap()
}

/// A request sent as written (reqwest would normalise the target); returns status, head, body.
async fn raw(addr: SocketAddr, request: &str) -> (u16, String, Vec<u8>) {
    let request = request.as_bytes().to_vec();
    let buf = tokio::task::spawn_blocking(move || net::exchange(addr, &request))
        .await
        .unwrap();
    let split = buf.windows(4).position(|w| w == b"\r\n\r\n").expect("a response head");
    let head = String::from_utf8_lossy(&buf[..split]).to_string();
    (net::status(&buf), head, buf[split + 4..].to_vec())
}

#[tokio::test]
async fn hidden_items_are_exactly_the_plesk_sold_ones_not_allowed() {
    let fake = Fake::start().await;
    let sold = sold();
    let allowed = [sold[0].as_str(), sold[7].as_str(), "not-in-the-feed"];
    let p = proxy(config(&fake.url(), &allowed)).await;
    let resp = get(&p, "/api/v4/packages?platform=unix&with-hidden&locale=en-US&country=DE").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-type"],
        "application/json; charset=utf-8",
        "the upstream's Content-Type is kept"
    );
    let body = resp.bytes().await.unwrap();

    let hidden: HashSet<&str> = sold
        .iter()
        .map(String::as_str)
        .filter(|c| !allowed.contains(c))
        .collect();
    let expected: Vec<String> = fixture_codes()
        .into_iter()
        .filter(|c| !hidden.contains(c.as_str()))
        .collect();
    assert_eq!(
        codes(&body),
        expected,
        "exactly the Plesk-sold, not-allowed items go, order kept"
    );
    assert!(hidden.len() > 100, "the fixture hides plenty: {}", hidden.len());

    // Every kept item is the upstream's bytes: fields, order, number formats all intact.
    let kept: Vec<&RawValue> = serde_json::from_slice(&body).unwrap();
    let up: Vec<&RawValue> = serde_json::from_slice(PACKAGES).unwrap();
    let up_by_code: std::collections::HashMap<String, &str> = up
        .iter()
        .map(|r| (codes(format!("[{}]", r.get()).as_bytes())[0].clone(), r.get()))
        .collect();
    for k in &kept {
        let code = &codes(format!("[{}]", k.get()).as_bytes())[0];
        assert_eq!(k.get(), up_by_code[code], "item {code} changed");
    }
    // Free items, items sold elsewhere, look-alike hosts and odd buy_urls all pass.
    for (needle, what) in [
        ("\"buy_url\":null", "free"),
        ("\"buy_url\":\"\"", "empty buy_url"),
        ("https://shop.imunify360.com/order", "sold elsewhere"),
        ("https://store.example-vendor.io/plesk", "sold elsewhere"),
        ("https://www.cloudlinux.com/buy", "sold elsewhere"),
        ("https://www.acronis.com/", "sold elsewhere"),
        ("https://example.com/go.plesk.com/", "Plesk host in the path only"),
        ("\"buy_url\":12345", "a number"),
        ("\"buy_url\":\"not a url\"", "not a URL"),
        ("https://go.plesk.com.example.net/", "look-alike host"),
        ("https://notgo.plesk.com/", "look-alike host"),
        ("\"buy_url\":\"go.plesk.com/buy/", "not a URL"),
        ("\"buy_url\":{\"url\":\"https://go.plesk.com/x\"}", "not a string"),
    ] {
        let n_up = PACKAGES
            .windows(needle.len())
            .filter(|w| *w == needle.as_bytes())
            .count();
        let n_out = body.windows(needle.len()).filter(|w| *w == needle.as_bytes()).count();
        assert!(n_up > 0 && n_up == n_out, "{what}: {n_up} upstream, {n_out} served");
    }
    let m = metrics(&p).await;
    assert_eq!(metric(&m, "catalog_proxy_hidden_items_total"), hidden.len() as u64);
    p.stop().await;
}

#[tokio::test]
async fn categories_follow_the_packages_of_the_same_query() {
    let fake = Fake::start().await;
    let sold = sold();
    let allow = [sold[1].as_str(), "retired-extension-not-in-packages"];
    let p = proxy(config(&fake.url(), &allow)).await;
    let q = "?platform=unix&page=2&with-hidden&locale=en-US&sort=name&country=XX&with-unstable";
    let resp = get(&p, &format!("/api/v4/categories{q}")).await;
    assert_eq!(resp.status(), 200);
    let cats: Vec<Value> = serde_json::from_value(json(resp).await).unwrap();
    let seen: Vec<String> = fake.seen().into_iter().map(|(pq, _)| pq).collect();
    assert_eq!(
        seen,
        [
            format!("/api/v4/categories{q}"),
            "/api/v4/packages?platform=unix&with-hidden&locale=en-US&country=XX&with-unstable".to_string()
        ]
    );
    let pk = get(
        &p,
        "/api/v4/packages?platform=unix&with-hidden&locale=en-US&country=XX&with-unstable",
    )
    .await;
    let shown: HashSet<String> = codes(&pk.bytes().await.unwrap()).into_iter().collect();
    assert_eq!(fake.fetches(), 2, "the packages list was taken from the cache");

    let up: Vec<Value> = serde_json::from_slice(CATEGORIES).unwrap();
    assert_eq!(cats.len(), up.len());
    let mut dropped = 0;
    for (c, u) in cats.iter().zip(&up) {
        match u.get("top_packages") {
            Some(Value::Array(entries)) => {
                let want: Vec<&Value> = entries
                    .iter()
                    .filter(|e| {
                        let code = e["code"].as_str().unwrap();
                        shown.contains(code) || allow.contains(&code)
                    })
                    .collect();
                dropped += entries.len() - want.len();
                let got: Vec<&Value> = c["top_packages"].as_array().unwrap().iter().collect();
                assert_eq!(got, want, "category {}", u["code"]);
                let mut rest = c.clone();
                let mut rest_up = u.clone();
                rest.as_object_mut().unwrap().remove("top_packages");
                rest_up.as_object_mut().unwrap().remove("top_packages");
                assert_eq!(rest, rest_up, "other fields are kept");
            }
            _ => assert_eq!(c, u, "objects without top_packages (or null) are left alone"),
        }
    }
    assert!(dropped > 5, "the fixture's categories name hidden items: {dropped}");
    let text = serde_json::to_string(&cats).unwrap();
    assert!(
        text.contains("retired-extension-not-in-packages"),
        "allow-listed codes are kept"
    );
    p.stop().await;
}

#[tokio::test]
async fn allow_file_edit_applies_within_a_second_without_a_fetch() {
    let fake = Fake::start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("allow.txt");
    std::fs::write(&file, "; codes we sell\n").unwrap();
    let mut cfg = config(&fake.url(), &[]);
    cfg.allow_file = Some(file.clone());
    let p = proxy(cfg).await;
    let code = sold()[3].clone();

    let first = get(&p, "/api/v4/packages").await;
    let etag1 = first.headers()["etag"].to_str().unwrap().to_string();
    assert!(!codes(&first.bytes().await.unwrap()).contains(&code));
    assert_eq!(fake.fetches(), 1);

    // Editors replace the file; write a temporary and rename it over.
    let tmp = dir.path().join(".allow.txt.tmp");
    std::fs::write(&tmp, format!("\u{feff}; codes we sell\r\n  {code}  ; since today\r\n")).unwrap();
    std::fs::rename(&tmp, &file).unwrap();
    let written = Instant::now();
    let etag2 = loop {
        let r = get(&p, "/api/v4/packages").await;
        let etag = r.headers()["etag"].to_str().unwrap().to_string();
        if codes(&r.bytes().await.unwrap()).contains(&code) {
            break etag;
        }
        assert!(
            written.elapsed() < Duration::from_secs(1),
            "the edit did not apply within 1 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_ne!(etag1, etag2, "the ETag follows the body");
    assert_eq!(fake.fetches(), 1, "re-filtered from the cache, not re-fetched");
    let health: Value = json(get(&p, "/healthz").await).await;
    assert_eq!(health["allow"], 1);

    // An old ETag no longer matches: the client gets the new list.
    let r = client()
        .get(format!("http://{}/api/v4/packages", p.addr))
        .header("if-none-match", &etag1)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    p.stop().await;
}

#[tokio::test]
async fn hundred_concurrent_cold_requests_make_one_fetch() {
    let fake = Fake::start().await;
    fake.state.delay_ms.store(300, Ordering::SeqCst);
    let p = proxy(config(&fake.url(), &[])).await;
    let c = client();
    let url = format!("http://{}/api/v4/packages?platform=unix", p.addr);
    let reqs = (0..100).map(|_| {
        let c = c.clone();
        let url = url.clone();
        tokio::spawn(async move {
            let r = c.get(url).send().await.unwrap();
            (r.status().as_u16(), r.bytes().await.unwrap())
        })
    });
    let mut bodies = HashSet::new();
    for h in reqs.collect::<Vec<_>>() {
        let (status, body) = h.await.unwrap();
        assert_eq!(status, 200);
        bodies.insert(body);
    }
    assert_eq!(bodies.len(), 1);
    assert_eq!(fake.fetches(), 1, "one upstream fetch for 100 concurrent requests");
    let m = metrics(&p).await;
    assert_eq!(metric(&m, "catalog_proxy_upstream_fetches_total"), 1);
    assert_eq!(
        metric(&m, "catalog_proxy_cache_hits_total") + metric(&m, "catalog_proxy_cache_misses_total"),
        100
    );
    assert!(
        m.contains("catalog_proxy_requests_total{kind=\"packages\",code=\"200\"} 100"),
        "{m}"
    );
    p.stop().await;
}

#[tokio::test]
async fn upstream_failure_serves_stale_with_warning_or_502() {
    let fake = Fake::start().await;
    let mut cfg = config(&fake.url(), &[]);
    cfg.cache_ttl = Duration::ZERO; // every request goes upstream
    cfg.upstream_timeout = Duration::from_millis(500);
    let p = proxy(cfg).await;
    let good = get(&p, "/api/v4/packages").await;
    assert!(good.headers().get("warning").is_none());
    let good_etag = good.headers()["etag"].clone();
    let good = good.bytes().await.unwrap();

    for mode in [Mode::Status503, Mode::Hang, Mode::Garbage, Mode::NotObjects] {
        fake.set_mode(mode);
        let r = get(&p, "/api/v4/packages").await;
        assert_eq!(r.status(), 200, "{mode:?}");
        assert!(r.headers()["warning"].to_str().unwrap().starts_with("110 "), "{mode:?}");
        assert_eq!(r.headers()["etag"], good_etag);
        assert_eq!(r.bytes().await.unwrap(), good, "{mode:?}: the filtered stale copy");
        // Nothing cached for this query: 502 with a one-line JSON error, never upstream's body.
        let r = get(&p, "/api/v4/packages?locale=de-DE").await;
        assert_eq!(r.status(), 502, "{mode:?}");
        let body = r.text().await.unwrap();
        let v: Value = serde_json::from_str(&body).unwrap();
        assert!(
            v["error"].as_str().unwrap().contains("/api/v4/packages?locale=de-DE"),
            "{body}"
        );
        assert_eq!(body.trim_end().lines().count(), 1);
    }
    let health: Value = json(get(&p, "/healthz").await).await;
    assert_eq!(health["status"], "ok");
    assert_eq!(health["upstream_ok"], false);
    assert_eq!(health["problems"].as_array().unwrap().len(), 1);
    let m = metrics(&p).await;
    assert_eq!(metric(&m, "catalog_proxy_stale_served_total"), 4);
    assert_eq!(metric(&m, "catalog_proxy_upstream_errors_total"), 8);
    assert!(
        m.contains("catalog_proxy_requests_total{kind=\"packages\",code=\"502\"} 4"),
        "{m}"
    );
    p.stop().await;
}

#[tokio::test]
async fn malformed_or_unreachable_upstream_with_nothing_cached_is_502() {
    let fake = Fake::start().await;
    fake.set_mode(Mode::Garbage);
    let p = proxy(config(&fake.url(), &[])).await;
    for path in ["/api/v4/packages", "/api/v4/categories"] {
        let r = get(&p, path).await;
        assert_eq!(r.status(), 502, "{path}");
        assert!(!r.text().await.unwrap().contains("maintenance"));
    }
    // A passthrough path has no shape to check: its 200 is passed on.
    let r = get(&p, "/api/v4/other").await;
    assert_eq!(r.status(), 200);
    p.stop().await;

    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let p = proxy(config(&format!("http://{closed}"), &[])).await;
    assert_eq!(get(&p, "/api/v4/packages").await.status(), 502);
    p.stop().await;
}

#[tokio::test]
async fn gzip_from_upstream_is_decoded_and_filtered() {
    let fake = Fake::start().await;
    fake.state.gzip.store(true, Ordering::SeqCst);
    let p = proxy(config(&fake.url(), &[])).await;
    let r = get(&p, "/api/v4/packages").await;
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("content-encoding").is_none());
    let body = r.bytes().await.unwrap();
    assert_eq!(codes(&body).len(), fixture_codes().len() - sold().len());
    let (_, headers) = &fake.seen()[0];
    assert_eq!(headers["accept-encoding"], "gzip");
    p.stop().await;
}

#[tokio::test]
async fn bad_targets_and_methods_are_refused_without_reaching_upstream() {
    let fake = Fake::start().await;
    let p = proxy(config(&fake.url(), &[])).await;
    for (req, want) in [
        ("GET /api/../api/v4/packages HTTP/1.1", 400),
        ("GET /api/v4/../../etc/passwd HTTP/1.1", 400),
        ("GET /api/%2e%2e/v4/packages HTTP/1.1", 400),
        ("GET /api/%2E%2E%2Fx HTTP/1.1", 400),
        ("GET /api//v4/packages HTTP/1.1", 400),
        ("GET /api/v4%2F%2Fpackages HTTP/1.1", 400),
        ("GET //ext.plesk.com/api/v4/packages HTTP/1.1", 400),
        ("GET http://evil.example/api/v4/packages HTTP/1.1", 400),
        ("GET http://127.0.0.1/api/v4/packages HTTP/1.1", 400),
        ("POST /api/v4/packages HTTP/1.1\r\nContent-Length: 0", 405),
        ("PUT /api/v4/packages HTTP/1.1\r\nContent-Length: 0", 405),
        ("DELETE /api/v4/packages HTTP/1.1", 405),
        ("OPTIONS * HTTP/1.1", 405),
        ("CONNECT ext.plesk.com:443 HTTP/1.1", 405),
        ("GET / HTTP/1.1", 404),
        ("GET /index.php HTTP/1.1", 404),
    ] {
        let (status, head, body) = raw(p.addr, &format!("{req}\r\nHost: x\r\nConnection: close\r\n\r\n")).await;
        assert_eq!(status, want, "{req}\n{head}");
        if status == 405 {
            assert!(head.to_ascii_lowercase().contains("allow: get, head"), "{head}");
        }
        if status != 404 || !body.is_empty() {
            let v: Value = serde_json::from_slice(&body).unwrap_or_else(|_| panic!("{req}: JSON error body"));
            assert!(v["error"].is_string());
        }
    }
    assert_eq!(fake.fetches(), 0, "nothing reached upstream");
    let m = metrics(&p).await;
    assert!(
        m.contains("catalog_proxy_requests_total{kind=\"other\",code=\"400\"} 9"),
        "{m}"
    );
    assert!(
        m.contains("catalog_proxy_requests_total{kind=\"other\",code=\"405\"} 5"),
        "{m}"
    );
    p.stop().await;
}

#[tokio::test]
async fn head_etag_304_and_gzip() {
    let fake = Fake::start().await;
    let p = proxy(config(&fake.url(), &[])).await;
    let c = client();
    let url = format!("http://{}/api/v4/packages?platform=unix&with-hidden", p.addr);
    let get = c.get(&url).send().await.unwrap();
    assert_eq!(get.headers()["vary"], "Accept-Encoding");
    let etag = get.headers()["etag"].to_str().unwrap().to_string();
    let body = get.bytes().await.unwrap();

    let (status, head, hbody) = raw(
        p.addr,
        "HEAD /api/v4/packages?platform=unix&with-hidden HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, 200);
    assert!(hbody.is_empty());
    let head = head.to_ascii_lowercase();
    assert!(head.contains(&format!("content-length: {}", body.len())), "{head}");
    assert!(head.contains(&format!("etag: {}", etag.to_ascii_lowercase())), "{head}");

    for inm in [
        etag.clone(),
        format!("W/{etag}"),
        "*".to_string(),
        format!("\"nope\", {etag}"),
    ] {
        let r = c.get(&url).header("if-none-match", &inm).send().await.unwrap();
        assert_eq!(r.status(), 304, "{inm}");
        assert_eq!(r.headers()["etag"].to_str().unwrap(), etag);
        assert!(r.bytes().await.unwrap().is_empty());
    }
    let r = c.get(&url).header("if-none-match", "\"nope\"").send().await.unwrap();
    assert_eq!(r.status(), 200);

    let gz = c.get(&url).header("accept-encoding", "gzip").send().await.unwrap();
    assert_eq!(gz.headers()["content-encoding"], "gzip");
    assert_eq!(gz.headers()["vary"], "Accept-Encoding");
    let gz_etag = gz.headers()["etag"].to_str().unwrap().to_string();
    assert_ne!(gz_etag, etag, "the gzip body is another representation");
    let zipped = gz.bytes().await.unwrap();
    assert!(zipped.len() < body.len() / 3);
    assert_eq!(gunzip(&zipped), body);
    let r = c
        .get(&url)
        .header("accept-encoding", "gzip")
        .header("if-none-match", &gz_etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);
    let again = c.get(&url).header("accept-encoding", "gzip").send().await.unwrap();
    assert_eq!(again.bytes().await.unwrap(), zipped, "compressed once, served as is");
    assert_eq!(fake.fetches(), 1);
    p.stop().await;
}

#[tokio::test]
async fn passthrough_keeps_status_body_type_and_sends_only_our_headers() {
    let fake = Fake::start().await;
    let p = proxy(config(&fake.url(), &[])).await;
    let c = client();
    let r = c
        .get(format!("http://{}/api/v4/other?a=%20b&flag&&x=%2F", p.addr))
        .header("cookie", "session=secret")
        .header("authorization", "Bearer secret")
        .header("user-agent", "Plesk/18")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/x-other");
    assert!(r.headers().get("etag").is_some());
    assert_eq!(r.text().await.unwrap(), "{\"buy_url\":\"https://go.plesk.com/x\"}");
    let (pq, headers) = fake.seen().remove(0);
    assert_eq!(pq, "/api/v4/other?a=%20b&flag&&x=%2F", "path and query byte for byte");
    assert!(headers.get("cookie").is_none() && headers.get("authorization").is_none());
    assert!(headers["user-agent"]
        .to_str()
        .unwrap()
        .starts_with("plesk-reseller-agent"));

    let r = get(&p, "/api/v4/moved").await;
    assert_eq!(r.status(), 302, "redirects are passed on, not followed");
    assert_eq!(r.text().await.unwrap(), "moved");
    let r = get(&p, "/api/v4/nothing").await;
    assert_eq!(r.status(), 404);
    assert_eq!(r.headers()["content-type"], "text/plain");
    assert_eq!(r.text().await.unwrap(), "no such thing");
    assert_eq!(fake.fetches(), 3, "no request followed the Location");
    let m = metrics(&p).await;
    assert!(
        m.contains("catalog_proxy_requests_total{kind=\"passthrough\",code=\"302\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("catalog_proxy_requests_total{kind=\"passthrough\",code=\"404\"} 1"),
        "{m}"
    );
    p.stop().await;
}

#[tokio::test]
async fn healthz_and_metrics_move() {
    let fake = Fake::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(&fake.url(), &["a", "b"]);
    cfg.allow_file = Some(dir.path().join("missing.txt"));
    let p = proxy(cfg).await;
    let h: Value = json(get(&p, "/healthz").await).await;
    assert_eq!(h["status"], "ok");
    assert_eq!(h["upstream_ok"], true);
    assert_eq!(h["cache_entries"], 0);
    assert_eq!(h["allow"], 2);
    assert!(h["problems"][0].as_str().unwrap().contains("missing.txt"), "{h}");

    get(&p, "/api/v4/packages").await;
    get(&p, "/api/v4/packages").await;
    get(&p, "/api/v4/categories").await;
    let m = metrics(&p).await;
    assert_eq!(metric(&m, "catalog_proxy_upstream_fetches_total"), 2);
    assert_eq!(metric(&m, "catalog_proxy_cache_misses_total"), 2);
    assert_eq!(
        metric(&m, "catalog_proxy_cache_hits_total"),
        2,
        "second packages + categories' packages"
    );
    assert_eq!(metric(&m, "catalog_proxy_upstream_errors_total"), 0);
    assert_eq!(metric(&m, "catalog_proxy_hidden_items_total"), 2 * sold().len() as u64);
    assert!(
        m.contains("catalog_proxy_requests_total{kind=\"packages\",code=\"200\"} 2"),
        "{m}"
    );
    assert!(
        m.contains("catalog_proxy_requests_total{kind=\"categories\",code=\"200\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("catalog_proxy_requests_total{kind=\"other\",code=\"200\"} 1"),
        "{m}"
    );
    let h: Value = json(get(&p, "/healthz").await).await;
    assert_eq!(h["cache_entries"], 2);
    p.stop().await;
}

#[tokio::test]
async fn the_binary_serves_from_its_config() {
    let fake = Fake::start().await;
    let dir = tempfile::tempdir().unwrap();
    let allow_file = dir.path().join("allow.txt");
    let sold = sold();
    std::fs::write(&allow_file, format!("{}\n", sold[2])).unwrap();
    let port = free_port();
    let cfg = dir.path().join("agent.ini");
    std::fs::write(
        &cfg,
        format!(
            "[central]\nurl = https://store.example.com\n[catalog_proxy]\nlisten = 127.0.0.1:{port}\n\
             upstream = {} ; the fake\nallow = {}\nallow_file = {}\ncache_ttl = 60\nmystery = 1\n",
            fake.url(),
            sold[5],
            allow_file.display()
        ),
    )
    .unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_plesk-reseller-agent"))
        .args(["catalog-proxy", "--config"])
        .arg(&cfg)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(r) = client().get(format!("{base}/healthz")).send().await {
            assert_eq!(r.status(), 200);
            break;
        }
        if let Some(status) = child.try_wait().unwrap() {
            let mut stderr = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
            panic!("the proxy exited ({status}): {stderr}");
        }
        assert!(Instant::now() < deadline, "the proxy did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r = client().get(format!("{base}/api/v4/packages")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let shown = codes(&r.bytes().await.unwrap());
    assert!(shown.contains(&sold[2]) && shown.contains(&sold[5]) && !shown.contains(&sold[4]));
    assert_eq!(shown.len(), fixture_codes().len() - sold.len() + 2);

    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::SIGTERM).unwrap();
    let out = wait_with_deadline(&mut child, Duration::from_secs(10));
    assert!(out.success(), "{out:?}");
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(stderr.contains("unknown key [catalog_proxy] mystery"), "{stderr}");
    assert!(
        !stderr.contains("[central]"),
        "the agent's sections are not the proxy's business: {stderr}"
    );
}

fn wait_with_deadline(child: &mut std::process::Child, limit: Duration) -> std::process::ExitStatus {
    let end = Instant::now() + limit;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if Instant::now() > end {
            let _ = child.kill();
            panic!("the proxy did not stop on SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn the_fixture_is_realistic() {
    let items: Vec<Value> = serde_json::from_slice(PACKAGES).unwrap();
    assert!(items.len() >= 300 && PACKAGES.len() > 200_000);
    let sold = sold();
    assert!(sold.len() > 100 && sold.len() < items.len() / 2);
}
