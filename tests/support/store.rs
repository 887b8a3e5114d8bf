//! A fake central store (contract section 5) for tests: a real HTTP/1.1 server on
//! 127.0.0.1 in a background thread, independent of the library, so it can serve the
//! compiled binary as well as the transport in-process.
//!
//! ```ignore
//! let store = FakeStore::start();
//! store.expect_token("s3cret");
//! store.set_instructions(json!({"jobs": [{"id": "j1", "type": "retrieve_keys"}]}));
//! // point the agent at store.url() with host_id anything (or store.expect_host("web-042"))
//! assert!(store.wait_for(|s| s.results().len() == 1, Duration::from_secs(5)));
//! ```
//!
//! Routes under `{url}/v1/hosts/{host}/`: `GET instructions`, `POST jobs/{id}/result`,
//! `PUT report`. Every request is recorded, whatever it is answered.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use hyper::body::{Body, Bytes, Frame, Incoming, SizeHint};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::sync::{oneshot, watch};

/// The path prefix of [`FakeStore::url`], so tests see that the agent keeps the base's path.
pub const BASE_PATH: &str = "/plesk-agent";

/// One request as the store saw it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    /// Path without the query, e.g. `/plesk-agent/v1/hosts/web-042/instructions`.
    pub path: String,
    /// The raw query string (`wait=25`), if any.
    pub query: Option<String>,
    /// Header names in lowercase, in arrival order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub at: Instant,
}

impl Recorded {
    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }

    /// True for a poll (`GET …/instructions`).
    pub fn is_poll(&self) -> bool {
        self.method == "GET" && self.path.ends_with("/instructions")
    }

    /// The `wait` query parameter, if any.
    pub fn wait(&self) -> Option<u64> {
        self.query
            .as_deref()?
            .split('&')
            .find_map(|kv| kv.strip_prefix("wait="))
            .and_then(|v| v.parse().ok())
    }
}

/// What a poll is answered with.
#[derive(Debug, Clone)]
enum PollAnswer {
    /// 200 with this body and ETag, 304 when `If-None-Match` matches.
    Json { body: Vec<u8>, etag: String },
    /// Exactly this status and body, no ETag; `chunked` leaves out Content-Length.
    Raw { status: u16, body: Vec<u8>, chunked: bool },
}

struct State {
    token: Option<String>,
    host: Option<String>,
    answer: PollAnswer,
    etag_counter: u64,
    honour_wait: bool,
    result_default: u16,
    result_queue: VecDeque<u16>,
    /// Statuses for the results of given jobs, before the queue and the default.
    result_for: std::collections::HashMap<String, u16>,
    /// The longest the store holds a poll, whatever `wait` asks (the central's `max_wait`).
    max_hold: Option<Duration>,
    /// Polls held up to this hold number are answered `503` + `Retry-After: <secs>` when
    /// released (a central stopping).
    held_503: Option<(u64, u64)>,
    report_status: u16,
    requests: Vec<Recorded>,
    results: Vec<(String, serde_json::Value)>,
    reports: Vec<serde_json::Value>,
    poll_count: usize,
    held: usize,
    /// The connections of the polls being held, by hold number, to see which the client closed.
    holding: Vec<(u64, Arc<std::net::TcpStream>)>,
    hold_counter: u64,
    /// The most polls the client had open at once, counted at each poll's arrival.
    max_open_polls: usize,
}

struct Shared {
    state: Mutex<State>,
    /// Bumped on every change of the poll answer, to release held polls.
    changed: watch::Sender<u64>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking test thread must not turn every later call into a second panic.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The fake store; shuts its server down when dropped.
pub struct FakeStore {
    shared: Arc<Shared>,
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl FakeStore {
    /// Starts the server on an ephemeral loopback port. Polls are answered `200 {}` with
    /// ETag `v0` until [`FakeStore::set_instructions`] is called.
    pub fn start() -> FakeStore {
        let (changed, _) = watch::channel(0u64);
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                token: None,
                host: None,
                answer: PollAnswer::Json {
                    body: b"{}".to_vec(),
                    etag: "v0".into(),
                },
                etag_counter: 0,
                honour_wait: true,
                result_default: 200,
                result_queue: VecDeque::new(),
                result_for: Default::default(),
                max_hold: None,
                held_503: None,
                report_status: 200,
                requests: Vec::new(),
                results: Vec::new(),
                reports: Vec::new(),
                poll_count: 0,
                held: 0,
                holding: Vec::new(),
                hold_counter: 0,
                max_open_polls: 0,
            }),
            changed,
        });
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener.set_nonblocking(true).expect("non-blocking listener");
        let addr = listener.local_addr().expect("local address");
        let (shutdown_tx, shutdown_rx) = oneshot::channel();
        let server_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name("fake-store".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("tokio runtime for the fake store");
                rt.block_on(serve(listener, server_shared, shutdown_rx));
                // Dropping the runtime cancels open connections and held polls.
            })
            .expect("spawn the fake store thread");
        FakeStore {
            shared,
            addr,
            shutdown: Some(shutdown_tx),
            thread: Some(thread),
        }
    }

    /// The base URL to configure as `[central] url`, e.g. `http://127.0.0.1:41234/plesk-agent`.
    pub fn url(&self) -> String {
        format!("http://{}{BASE_PATH}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// From now on, requests without `Authorization: Bearer <token>` get 401.
    pub fn expect_token(&self, token: &str) {
        self.shared.lock().token = Some(token.to_string());
    }

    /// From now on, requests for another host id get 404.
    pub fn expect_host(&self, host: &str) {
        self.shared.lock().host = Some(host.to_string());
    }

    /// New instructions with a new ETag `v<N>`; releases held polls.
    pub fn set_instructions(&self, json: serde_json::Value) {
        let mut st = self.shared.lock();
        st.etag_counter += 1;
        st.answer = PollAnswer::Json {
            body: json.to_string().into_bytes(),
            etag: format!("v{}", st.etag_counter),
        };
        drop(st);
        self.shared.changed.send_modify(|v| *v += 1);
    }

    /// Polls get exactly this status and body (no ETag, never 304); releases held polls.
    pub fn set_raw_instructions(&self, status: u16, body: Vec<u8>) {
        self.set_raw(status, body, false);
    }

    /// Like [`FakeStore::set_raw_instructions`], but streamed in 64 KiB chunks without a
    /// Content-Length, so a client must count what it reads.
    pub fn set_raw_instructions_chunked(&self, status: u16, body: Vec<u8>) {
        self.set_raw(status, body, true);
    }

    fn set_raw(&self, status: u16, body: Vec<u8>, chunked: bool) {
        self.shared.lock().answer = PollAnswer::Raw { status, body, chunked };
        self.shared.changed.send_modify(|v| *v += 1);
    }

    /// The ETag polls currently get (None while a raw answer is set).
    pub fn etag(&self) -> Option<String> {
        match &self.shared.lock().answer {
            PollAnswer::Json { etag, .. } => Some(etag.clone()),
            PollAnswer::Raw { .. } => None,
        }
    }

    /// false: a poll with `wait` is answered at once, like a store without long-poll.
    pub fn set_honour_wait(&self, honour: bool) {
        self.shared.lock().honour_wait = honour;
    }

    /// The status every result POST gets once the queue is empty (default 200).
    pub fn result_status(&self, code: u16) {
        self.shared.lock().result_default = code;
    }

    /// Statuses for the next result POSTs, in order (e.g. `[500, 200]`); then the default.
    pub fn result_statuses(&self, codes: &[u16]) {
        self.shared.lock().result_queue.extend(codes.iter().copied());
    }

    /// The status every result of job `id` gets (e.g. 410 for a job the store dropped).
    pub fn result_status_for(&self, id: &str, code: u16) {
        self.shared.lock().result_for.insert(id.to_string(), code);
    }

    /// Holds polls at most `max` (a central whose `max_wait` is below the agent's `wait`).
    pub fn set_max_hold(&self, max: Duration) {
        self.shared.lock().max_hold = Some(max);
    }

    /// Answers every poll held now `503` with `Retry-After: <secs>` at once, as a central
    /// does at a stop; polls that come later are served as usual.
    pub fn answer_held_polls_503(&self, retry_after_secs: u64) {
        {
            let mut st = self.shared.lock();
            st.held_503 = Some((st.hold_counter, retry_after_secs));
        }
        self.shared.changed.send_modify(|v| *v += 1);
    }

    /// The status report PUTs get (default 200).
    pub fn report_status(&self, code: u16) {
        self.shared.lock().report_status = code;
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.lock().requests.clone()
    }

    /// Every POSTed result, in order (retries included), as `(job_id, body)`.
    pub fn results(&self) -> Vec<(String, serde_json::Value)> {
        self.shared.lock().results.clone()
    }

    /// Every PUT report body, in order.
    pub fn reports(&self) -> Vec<serde_json::Value> {
        self.shared.lock().reports.clone()
    }

    /// Polls received so far (counted on arrival, held ones included).
    pub fn poll_count(&self) -> usize {
        self.shared.lock().poll_count
    }

    /// Polls being held open right now. A poll whose client closed the connection stops
    /// being held at once.
    pub fn held_polls(&self) -> usize {
        self.shared.lock().held
    }

    /// The most polls the client had open at once (a poll arriving while another is held and
    /// its connection still open counts two).
    pub fn max_open_polls(&self) -> usize {
        self.shared.lock().max_open_polls
    }

    /// Forgets recorded requests, results and reports (not the configuration).
    pub fn clear_recorded(&self) {
        let mut st = self.shared.lock();
        st.requests.clear();
        st.results.clear();
        st.reports.clear();
        st.poll_count = 0;
    }

    /// Re-checks `pred` every 10 ms until it holds (true) or `timeout` passes (false).
    pub fn wait_for(&self, pred: impl Fn(&FakeStore) -> bool, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if pred(self) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for FakeStore {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn serve(listener: std::net::TcpListener, shared: Arc<Shared>, mut shutdown: oneshot::Receiver<()>) {
    let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
    loop {
        let stream = tokio::select! {
            _ = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(_) => continue,
            },
        };
        // A second handle on the socket, to see a client close it while its poll is held
        // (hyper reads nothing from a connection while its request is being answered).
        let Ok((stream, peer)) = split_off_peer(stream) else {
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let shared = shared.clone();
                let peer = peer.clone();
                async move { Ok::<_, Infallible>(handle(shared, peer, req).await) }
            });
            // Keep-alive is hyper's default; errors from clients going away are expected.
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// The stream for hyper and a duplicate of its socket (non-blocking) for [`client_closed`].
fn split_off_peer(stream: tokio::net::TcpStream) -> std::io::Result<(tokio::net::TcpStream, Arc<std::net::TcpStream>)> {
    let std = stream.into_std()?;
    let peer = std.try_clone()?;
    Ok((tokio::net::TcpStream::from_std(std)?, Arc::new(peer)))
}

/// True when the client has closed (or reset) its side of the connection.
fn client_closed(peer: &std::net::TcpStream) -> bool {
    match peer.peek(&mut [0u8; 1]) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
    }
}

/// Completes when the client closes the connection; never, if it sends more data instead.
async fn closed_by_client(peer: &std::net::TcpStream) {
    let Ok(dup) = peer.try_clone().and_then(tokio::net::TcpStream::from_std) else {
        return std::future::pending().await;
    };
    match dup.peek(&mut [0u8; 1]).await {
        Ok(0) | Err(_) => {}
        // A pipelined request, not a close.
        Ok(_) => std::future::pending().await,
    }
}

async fn handle(shared: Arc<Shared>, peer: Arc<std::net::TcpStream>, req: Request<Incoming>) -> Response<StoreBody> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map(|b| b.to_bytes().to_vec()).unwrap_or_default();
    let rec = Recorded {
        method: parts.method.as_str().to_string(),
        path: parts.uri.path().to_string(),
        query: parts.uri.query().map(str::to_string),
        headers: parts
            .headers
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_ascii_lowercase(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body,
        at: Instant::now(),
    };
    // Decided under the lock; a poll is answered (and maybe held) after it is released.
    match answer_now(&shared, &rec) {
        Some(response) => response,
        None => poll(&shared, &peer, &rec).await,
    }
}

/// The answer to anything but a well-routed poll, which gets None.
fn answer_now(shared: &Shared, rec: &Recorded) -> Option<Response<StoreBody>> {
    let route = route(&rec.path);
    let mut st = shared.lock();
    st.requests.push(rec.clone());
    if matches!(route, Route::Instructions(_)) && rec.method == "GET" {
        st.poll_count += 1;
    }
    if let Some(token) = &st.token {
        if rec.header("authorization") != Some(format!("Bearer {token}").as_str()) {
            return Some(text(401, "wrong token"));
        }
    }
    let host = match &route {
        Route::Instructions(h) | Route::Result(h, _) | Route::Report(h) => h.clone(),
        Route::Unknown => return Some(text(404, "no such route")),
    };
    if st.host.as_ref().is_some_and(|want| *want != host) {
        return Some(text(404, "unknown host"));
    }
    Some(match (route, rec.method.as_str()) {
        (Route::Instructions(_), "GET") => return None,
        (Route::Result(_, job_id), "POST") => {
            let status = match st.result_for.get(&job_id) {
                Some(code) => *code,
                None => st.result_queue.pop_front().unwrap_or(st.result_default),
            };
            st.results.push((job_id, json_or_string(&rec.body)));
            text(status, "")
        }
        (Route::Report(_), "PUT") => {
            st.reports.push(json_or_string(&rec.body));
            text(st.report_status, "")
        }
        _ => text(405, "method not allowed"),
    })
}

async fn poll(shared: &Shared, peer: &Arc<std::net::TcpStream>, rec: &Recorded) -> Response<StoreBody> {
    // Subscribed before the state is read, so a change in between is not missed.
    let mut changed = shared.changed.subscribe();
    let inm = rec.header("if-none-match").map(str::to_string);
    let hold = {
        let mut st = shared.lock();
        let open = st.holding.iter().filter(|(_, p)| !client_closed(p)).count() + 1;
        st.max_open_polls = st.max_open_polls.max(open);
        let wait = rec.wait().unwrap_or(0);
        match &st.answer {
            PollAnswer::Json { etag, .. } if wait > 0 && st.honour_wait && inm.as_deref() == Some(etag) => {
                let wait = Duration::from_secs(wait);
                Some(st.max_hold.map_or(wait, |m| m.min(wait)))
            }
            _ => None,
        }
    };
    if let Some(wait) = hold {
        let held = HeldGuard::new(shared, peer.clone());
        tokio::select! {
            _ = tokio::time::timeout(wait, changed.changed()) => {}
            // Nobody to answer: stop holding (hyper then drops the connection).
            _ = closed_by_client(peer) => return text(499, "client closed the poll"),
        }
        let stop = shared.lock().held_503.filter(|(upto, _)| held.1 <= *upto);
        if let Some((_, secs)) = stop {
            let mut r = text(503, "stopping");
            r.headers_mut()
                .insert("retry-after", secs.to_string().parse().expect("retry-after header"));
            return r;
        }
    }
    let st = shared.lock();
    match &st.answer {
        PollAnswer::Json { etag, .. } if inm.as_deref() == Some(etag) => {
            let mut r = text(304, "");
            r.headers_mut().insert("etag", etag.parse().expect("etag header"));
            r
        }
        PollAnswer::Json { body, etag } => {
            let mut r = respond(200, body.clone(), false);
            r.headers_mut().insert("etag", etag.parse().expect("etag header"));
            r.headers_mut()
                .insert("content-type", "application/json".parse().expect("content type"));
            r
        }
        PollAnswer::Raw { status, body, chunked } => respond(*status, body.clone(), *chunked),
    }
}

/// Counts a held poll for [`FakeStore::held_polls`], also when the client goes away.
struct HeldGuard<'a>(&'a Shared, u64);

impl<'a> HeldGuard<'a> {
    fn new(shared: &'a Shared, peer: Arc<std::net::TcpStream>) -> Self {
        let mut st = shared.lock();
        st.held += 1;
        st.hold_counter += 1;
        let id = st.hold_counter;
        st.holding.push((id, peer));
        HeldGuard(shared, id)
    }
}

impl Drop for HeldGuard<'_> {
    fn drop(&mut self) {
        let mut st = self.0.lock();
        st.held -= 1;
        st.holding.retain(|(id, _)| *id != self.1);
    }
}

enum Route {
    Instructions(String),
    Result(String, String),
    Report(String),
    Unknown,
}

fn route(path: &str) -> Route {
    let Some(rest) = path.strip_prefix(BASE_PATH).and_then(|p| p.strip_prefix("/v1/hosts/")) else {
        return Route::Unknown;
    };
    let parts: Vec<String> = rest.split('/').map(percent_decode).collect();
    match parts.as_slice() {
        [host, what] if what == "instructions" => Route::Instructions(host.clone()),
        [host, what] if what == "report" => Route::Report(host.clone()),
        [host, jobs, id, what] if jobs == "jobs" && what == "result" => Route::Result(host.clone(), id.clone()),
        _ => Route::Unknown,
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(hi), Some(lo)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push(hi << 4 | lo);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn json_or_string(body: &[u8]) -> serde_json::Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(body).into_owned()))
}

fn text(status: u16, body: &str) -> Response<StoreBody> {
    respond(status, body.as_bytes().to_vec(), false)
}

fn respond(status: u16, body: Vec<u8>, chunked: bool) -> Response<StoreBody> {
    let mut r = Response::new(StoreBody {
        data: Bytes::from(body),
        chunked,
    });
    *r.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    r
}

/// A response body sent whole (with Content-Length) or in 64 KiB chunks (without).
struct StoreBody {
    data: Bytes,
    chunked: bool,
}

impl Body for StoreBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.data.is_empty() {
            return Poll::Ready(None);
        }
        let n = if self.chunked {
            self.data.len().min(64 * 1024)
        } else {
            self.data.len()
        };
        let chunk = self.data.split_to(n);
        Poll::Ready(Some(Ok(Frame::data(chunk))))
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        if self.chunked {
            SizeHint::default()
        } else {
            SizeHint::with_exact(self.data.len() as u64)
        }
    }
}
