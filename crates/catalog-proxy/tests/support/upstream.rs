//! The fake ext.plesk.com: a hyper server on 127.0.0.1:0 serving the fixture feed in
//! tests/fixtures/catalog, with failure modes; and what the tests read the feed with. Also
//! used, through `#[path]`, by the agent's test of its `catalog-proxy` command.
#![allow(dead_code)]

use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response};
use serde_json::Value;

pub const PACKAGES: &[u8] = include_bytes!("../fixtures/catalog/packages.json");
pub const CATEGORIES: &[u8] = include_bytes!("../fixtures/catalog/categories.json");
pub const SOLD: &str = include_str!("../fixtures/catalog/plesk-sold.json");

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mode {
    Normal,
    Status503,
    Hang,
    /// 200 with a body that is not JSON.
    Garbage,
    /// 200 with a JSON array of non-objects.
    NotObjects,
}

pub struct FakeState {
    pub fetches: AtomicUsize,
    pub mode: Mutex<Mode>,
    pub delay_ms: AtomicU64,
    pub gzip: AtomicBool,
    pub seen: Mutex<Vec<(String, hyper::HeaderMap)>>,
}

pub struct Fake {
    pub addr: SocketAddr,
    pub state: Arc<FakeState>,
    pub _task: tokio::task::JoinHandle<()>,
}

impl Fake {
    pub async fn start() -> Fake {
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

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
    pub fn fetches(&self) -> usize {
        self.state.fetches.load(Ordering::SeqCst)
    }
    pub fn set_mode(&self, m: Mode) {
        *self.state.mode.lock().unwrap() = m;
    }
    pub fn seen(&self) -> Vec<(String, hyper::HeaderMap)> {
        self.state.seen.lock().unwrap().clone()
    }
}

pub async fn fake_answer(st: &FakeState, req: Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
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

pub fn gzip(b: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

pub fn sold() -> Vec<String> {
    serde_json::from_str(SOLD).unwrap()
}

pub fn codes(body: &[u8]) -> Vec<String> {
    let v: Vec<Value> = serde_json::from_slice(body).unwrap();
    v.iter()
        .map(|i| i["code"].as_str().map(String::from).unwrap_or_default())
        .collect()
}

pub fn fixture_codes() -> Vec<String> {
    codes(PACKAGES)
}
