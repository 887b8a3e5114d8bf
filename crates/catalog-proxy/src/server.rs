//! The HTTP side: request checks, routing, conditional and gzip responses.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};

use super::cache::{Fetched, Got, Parsed, Rendered};
use super::metrics::{Kind, Metrics};
use super::{Proxy, Shape};

/// Connections served at once; more wait in the listen backlog.
const MAX_CONNECTIONS: usize = 4096;
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);
const STALE_WARNING: &str = "110 - \"Response is Stale\"";

type Resp = Response<Full<Bytes>>;

/// Accepts connections until `stop` fires (or its sender goes away).
pub async fn serve(listener: tokio::net::TcpListener, proxy: Arc<Proxy>, mut stop: tokio::sync::oneshot::Receiver<()>) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let permit = tokio::select! {
            _ = &mut stop => return,
            p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
        };
        let (stream, _) = tokio::select! {
            _ = &mut stop => return,
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and the like: back off instead of spinning.
                    tracing::warn!("cannot accept a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let proxy = proxy.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let proxy = proxy.clone();
                async move { Ok::<_, Infallible>(handle(&proxy, req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service)
                .await;
            drop(permit);
        });
    }
}

/// Answers one request and counts it.
pub async fn handle(proxy: &Arc<Proxy>, req: Request<Incoming>) -> Resp {
    let (kind, resp) = route(proxy, req.method(), req.uri(), req.headers()).await;
    proxy.metrics.request(kind, resp.status().as_u16());
    resp
}

async fn route(proxy: &Arc<Proxy>, method: &Method, uri: &hyper::Uri, headers: &HeaderMap) -> (Kind, Resp) {
    if method != Method::GET && method != Method::HEAD {
        let mut r = error(
            StatusCode::METHOD_NOT_ALLOWED,
            &format!("method {method} is not allowed; use GET or HEAD"),
        );
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return (Kind::Other, r);
    }
    let path = uri.path();
    if uri.scheme().is_some() || uri.authority().is_some() || !path.starts_with('/') {
        return (
            Kind::Other,
            error(
                StatusCode::BAD_REQUEST,
                "only origin-form request targets (/path?query) are accepted",
            ),
        );
    }
    let decoded = percent_decode(path.as_bytes());
    if decoded != b"/" && decoded[1..].split(|&b| b == b'/').any(|s| s.is_empty() || s == b"..") {
        return (
            Kind::Other,
            error(StatusCode::BAD_REQUEST, "the path has an empty or \"..\" segment"),
        );
    }
    match decoded.as_slice() {
        b"/healthz" => (
            Kind::Other,
            text(StatusCode::OK, "application/json", proxy.health_json()),
        ),
        b"/metrics" => (
            Kind::Other,
            text(
                StatusCode::OK,
                "text/plain; version=0.0.4; charset=utf-8",
                proxy.metrics.render(),
            ),
        ),
        d if d.starts_with(b"/api/") => api(proxy, classify(d), uri, headers).await,
        _ => (
            Kind::Other,
            error(StatusCode::NOT_FOUND, "not found; the catalog is under /api/"),
        ),
    }
}

/// `/api/v<N>/packages` and `/api/v<N>/categories` (names in any letter case, so an upstream
/// that ignores case cannot be used to skip the filter); everything else passes through.
fn classify(decoded: &[u8]) -> Shape {
    let segs: Vec<&[u8]> = decoded[1..].split(|&b| b == b'/').collect();
    if let [b"api", v, name] = segs.as_slice() {
        let version = v.len() > 1 && v[0].eq_ignore_ascii_case(&b'v') && v[1..].iter().all(u8::is_ascii_digit);
        if version && name.eq_ignore_ascii_case(b"packages") {
            return Shape::Packages;
        }
        if version && name.eq_ignore_ascii_case(b"categories") {
            return Shape::Categories;
        }
    }
    Shape::Raw
}

async fn api(proxy: &Arc<Proxy>, shape: Shape, uri: &hyper::Uri, headers: &HeaderMap) -> (Kind, Resp) {
    let kind = match shape {
        Shape::Packages => Kind::Packages,
        Shape::Categories => Kind::Categories,
        Shape::Raw => Kind::Passthrough,
    };
    let pq = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    // A fresh entry proves the target was forwardable; skip building the URL again.
    let url = if proxy.cache.is_fresh(pq) {
        None
    } else {
        match proxy.upstream.url_for(pq) {
            Ok(u) => Some(u),
            Err(e) => return (kind, error(StatusCode::BAD_REQUEST, &e.to_string())),
        }
    };
    let (fetched, stale) = match proxy.lookup(pq, url, shape).await {
        Got::Fresh { fetched, .. } => (fetched, false),
        Got::Stale { fetched, .. } => (fetched, true),
        Got::Failed(why) => return (kind, error(StatusCode::BAD_GATEWAY, &why.to_string())),
    };
    if fetched.answer.status != 200 {
        return (kind, passthrough(&fetched));
    }
    let allow = proxy.allow.current();
    let (rendered, stale) = match &fetched.parsed {
        Parsed::Raw => (fetched.rendered((0, 0), || (fetched.answer.body.clone(), 0)), stale),
        Parsed::Packages(p) => (
            fetched.rendered((allow.generation, 0), || {
                let v = p.render(&allow);
                (v.body, v.hidden)
            }),
            stale,
        ),
        Parsed::Categories(c) => {
            let pq = packages_query(pq);
            let url = match proxy.upstream.url_for(&pq) {
                Ok(u) => u,
                Err(e) => return (kind, error(StatusCode::BAD_REQUEST, &e.to_string())),
            };
            let (pk, pk_stale) = match proxy.lookup(&pq, Some(url), Shape::Packages).await {
                Got::Fresh { fetched, .. } => (fetched, false),
                Got::Stale { fetched, .. } => (fetched, true),
                Got::Failed(why) => return (kind, error(StatusCode::BAD_GATEWAY, &why.to_string())),
            };
            let Parsed::Packages(p) = &pk.parsed else {
                let why = format!(
                    "the packages list for this categories request ({pq}) answered HTTP {}",
                    pk.answer.status
                );
                return (kind, error(StatusCode::BAD_GATEWAY, &why.to_string()));
            };
            let r = fetched.rendered((allow.generation, pk.id), || {
                let shown = p.shown_codes(&allow);
                (c.render(|code| shown.contains(code) || allow.contains(code)), 0)
            });
            (r, stale || pk_stale)
        }
    };
    if stale {
        Metrics::add(&proxy.metrics.stale_served, 1);
    }
    let resp = send(&fetched, &rendered, headers, stale);
    if resp.status() == StatusCode::OK {
        Metrics::add(&proxy.metrics.hidden_items, rendered.hidden as u64);
    }
    (kind, resp)
}

/// The packages request with the same query as a categories request: `platform`, `locale`,
/// `country` and `with-*` parameters, in their original order and form.
pub fn packages_query(categories_pq: &str) -> String {
    let (path, query) = categories_pq.split_once('?').unwrap_or((categories_pq, ""));
    let dir = path.rsplit_once('/').map_or("", |(d, _)| d);
    let kept: Vec<&str> = query
        .split('&')
        .filter(|p| {
            let name = percent_decode(p.split('=').next().unwrap_or("").as_bytes());
            matches!(name.as_slice(), b"platform" | b"locale" | b"country") || name.starts_with(b"with-")
        })
        .collect();
    if kept.is_empty() {
        format!("{dir}/packages")
    } else {
        format!("{dir}/packages?{}", kept.join("&"))
    }
}

fn send(fetched: &Fetched, r: &Rendered, headers: &HeaderMap, stale: bool) -> Resp {
    let gz = accepts_gzip(headers);
    let etag = if gz { &r.gzip_etag } else { &r.etag };
    let not_modified = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| etag_matches(v, r));
    let mut resp = if not_modified {
        Response::new(Full::new(Bytes::new()))
    } else {
        Response::new(Full::new(if gz { r.gzip().clone() } else { r.body.clone() }))
    };
    *resp.status_mut() = if not_modified {
        StatusCode::NOT_MODIFIED
    } else {
        StatusCode::OK
    };
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(etag) {
        h.insert(header::ETAG, v);
    }
    h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    if !not_modified {
        let ct = fetched.answer.content_type.as_deref().unwrap_or("application/json");
        if let Ok(v) = HeaderValue::from_str(ct) {
            h.insert(header::CONTENT_TYPE, v);
        }
        if gz {
            h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
    }
    if stale {
        h.insert(header::WARNING, HeaderValue::from_static(STALE_WARNING));
    }
    resp
}

/// Weak comparison against either representation's tag; `*` matches.
fn etag_matches(if_none_match: &str, r: &Rendered) -> bool {
    if_none_match.split(',').map(str::trim).any(|t| {
        let t = t.strip_prefix("W/").unwrap_or(t);
        t == "*" || t == r.etag || t == r.gzip_etag
    })
}

fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|part| {
            let mut it = part.split(';');
            let coding = it.next().unwrap_or("").trim();
            let refused = it.any(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .is_some_and(|q| q.trim().parse::<f32>().is_ok_and(|q| q <= 0.0))
            });
            !refused && (coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip"))
        })
}

fn passthrough(f: &Fetched) -> Resp {
    let mut resp = Response::new(Full::new(f.answer.body.clone()));
    *resp.status_mut() = StatusCode::from_u16(f.answer.status).unwrap_or(StatusCode::BAD_GATEWAY);
    if let Some(v) = f
        .answer
        .content_type
        .as_deref()
        .and_then(|c| HeaderValue::from_str(c).ok())
    {
        resp.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    resp
}

fn text(status: StatusCode, content_type: &'static str, body: String) -> Resp {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

/// The proxy's own error: one line of JSON.
fn error(status: StatusCode, sentence: &str) -> Resp {
    let body = format!("{{\"error\":{}}}\n", serde_json::Value::String(sentence.to_string()));
    text(status, "application/json", body)
}

/// Decodes `%XX` once; malformed escapes stay as they are.
pub fn percent_decode(s: &[u8]) -> Vec<u8> {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%' && i + 2 < s.len() {
            if let (Some(h), Some(l)) = (hex(s[i + 1]), hex(s[i + 2])) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(s[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoding_and_classifying() {
        assert_eq!(percent_decode(b"/a%2e%2E/%2F%zz%4"), b"/a../\x2f%zz%4".to_vec());
        assert_eq!(classify(b"/api/v4/packages"), Shape::Packages);
        assert_eq!(classify(b"/api/V12/PACKAGES"), Shape::Packages);
        assert_eq!(classify(b"/api/v4/categories"), Shape::Categories);
        assert_eq!(classify(b"/api/v/packages"), Shape::Raw);
        assert_eq!(classify(b"/api/v4/packages/x"), Shape::Raw);
        assert_eq!(classify(b"/api/v4/extensions"), Shape::Raw);
    }

    #[test]
    fn same_query_for_categories() {
        assert_eq!(
            packages_query("/api/v4/categories?platform=unix&with-hidden&page=2&locale=en-US&country=DE&with-unstable"),
            "/api/v4/packages?platform=unix&with-hidden&locale=en-US&country=DE&with-unstable"
        );
        assert_eq!(packages_query("/api/v4/categories"), "/api/v4/packages");
        assert_eq!(packages_query("/api/v4/categories?x=1"), "/api/v4/packages");
        assert_eq!(
            packages_query("/api/v4/categories?%70latform=w"),
            "/api/v4/packages?%70latform=w"
        );
    }

    #[test]
    fn accept_encoding_and_etags() {
        let mut h = HeaderMap::new();
        assert!(!accepts_gzip(&h));
        h.insert(header::ACCEPT_ENCODING, HeaderValue::from_static("deflate, GZIP;q=0.5"));
        assert!(accepts_gzip(&h));
        h.insert(header::ACCEPT_ENCODING, HeaderValue::from_static("gzip;q=0, br"));
        assert!(!accepts_gzip(&h));
        let r = Rendered::new((0, 0), Bytes::from_static(b"[]"), 0);
        assert!(etag_matches(&format!("\"x\", W/{}", r.etag), &r));
        assert!(etag_matches(&r.gzip_etag.clone(), &r));
        assert!(etag_matches("*", &r));
        assert!(!etag_matches("\"other\"", &r));
    }
}
