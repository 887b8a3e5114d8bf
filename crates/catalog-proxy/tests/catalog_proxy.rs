//! The catalog proxy against a fake upstream (hyper on 127.0.0.1:0) serving the fixture feed
//! in tests/fixtures/catalog (see generate.py there; plesk-sold.json is the oracle).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use plesk_catalog_proxy::{self as catalog_proxy, ProxyConfig, Running};
use serde_json::value::RawValue;
use serde_json::Value;

mod support;
use support::net;
use support::upstream::*;

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

async fn get(p: &Running, pq: &str) -> reqwest::Response {
    client().get(format!("http://{}{pq}", p.addr)).send().await.unwrap()
}

async fn json(r: reqwest::Response) -> Value {
    serde_json::from_slice(&r.bytes().await.unwrap()).unwrap()
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

#[test]
fn the_fixture_is_realistic() {
    let items: Vec<Value> = serde_json::from_slice(PACKAGES).unwrap();
    assert!(items.len() >= 300 && PACKAGES.len() > 200_000);
    let sold = sold();
    assert!(sold.len() > 100 && sold.len() < items.len() / 2);
}
