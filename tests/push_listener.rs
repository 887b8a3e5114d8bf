//! The push listener over real TCP on 127.0.0.1:0, with a hand-written HTTP/1.1 client
//! so bodies, headers and framing are exactly what the test says.
// Unix: sockets, signals, modes, shell stand-ins. Windows: tests/windows_daemon.rs.
#![cfg(unix)]

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use plesk_reseller_agent::clock::Clock;
use plesk_reseller_agent::daemon::push::{self, PushCounters};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, Notify};

mod support;
use support::net::{self, sign};

const NOW: u64 = 1_700_000_000;
/// python3 -c 'import hmac,hashlib;print(hmac.new(b"s3cret",b"1700000000.{}",hashlib.sha256).hexdigest())'
const VECTOR: &str = "97926816e98fbb41ccb1673225ff29a2f35369099990e1b1561651e7bd097ebf";

struct FixedClock(u64);

impl Clock for FixedClock {
    fn now(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(self.0)
    }
}

struct Server {
    addr: SocketAddr,
    wake: Arc<Notify>,
    counters: Arc<PushCounters>,
    secret: Arc<RwLock<Vec<u8>>>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

async fn start() -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let wake = Arc::new(Notify::new());
    let counters = Arc::new(PushCounters::default());
    let secret = Arc::new(RwLock::new(b"s3cret".to_vec()));
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(push::serve(
        listener,
        secret.clone(),
        Arc::new(FixedClock(NOW)),
        wake.clone(),
        counters.clone(),
        async move {
            let _ = stopped.await;
        },
    ));
    Server {
        addr,
        wake,
        counters,
        secret,
        stop: Some(stop),
        task,
    }
}

impl Server {
    fn counts(&self) -> (u64, u64) {
        (
            self.counters.accepted.load(Ordering::SeqCst),
            self.counters.rejected.load(Ordering::SeqCst),
        )
    }

    async fn woken(&self) -> bool {
        tokio::time::timeout(Duration::from_millis(300), self.wake.notified())
            .await
            .is_ok()
    }
}

/// Writes `request` (ignoring a write the server cut short) and returns the response text.
async fn exchange(addr: SocketAddr, request: &[u8]) -> String {
    let request = request.to_vec();
    let out = tokio::task::spawn_blocking(move || net::exchange(addr, &request))
        .await
        .unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

fn post(path: &str, signature: Option<&str>, body: &[u8]) -> Vec<u8> {
    net::request("POST", path, signature, body)
}

fn status(response: &str) -> u16 {
    net::status(response.as_bytes())
}

async fn read_response(stream: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let read = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(15), read)
        .await
        .expect("server neither answered nor closed");
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn hmac_test_vector_matches_python() {
    assert_eq!(sign(b"s3cret", NOW, b"{}"), format!("t={NOW},v1={VECTOR}"));
}

#[tokio::test]
async fn valid_signature_is_accepted_and_wakes() {
    let s = start().await;
    let sig = format!("t={NOW},v1={VECTOR}");
    let resp = exchange(s.addr, &post("/v1/wake", Some(&sig), b"{}")).await;
    assert_eq!(status(&resp), 202, "{resp}");
    assert!(s.woken().await, "a valid push must wake the poll loop");
    assert_eq!(s.counts(), (1, 0));

    // No body at all is fine too.
    let sig = sign(b"s3cret", NOW - 299, b"");
    let resp = exchange(s.addr, &post("/v1/wake", Some(&sig), b"")).await;
    assert_eq!(status(&resp), 202, "{resp}");
    assert!(s.woken().await);
    assert_eq!(s.counts(), (2, 0));
}

#[tokio::test]
async fn bad_signatures_get_401_and_do_not_wake() {
    let s = start().await;
    let stale = NOW - 301;
    let cases: Vec<(&str, Option<String>)> = vec![
        ("unsigned", None),
        ("wrong secret", Some(sign(b"other", NOW, b"{}"))),
        ("other body", Some(sign(b"s3cret", NOW, b"{ }"))),
        ("stale", Some(sign(b"s3cret", stale, b"{}"))),
        ("malformed", Some(format!("v1={VECTOR}"))),
        ("garbage", Some("hello".to_string())),
    ];
    for (n, (what, sig)) in cases.iter().enumerate() {
        let resp = exchange(s.addr, &post("/v1/wake", sig.as_deref(), b"{}")).await;
        assert_eq!(status(&resp), 401, "{what}: {resp}");
        assert!(!resp.contains("s3cret"), "{what}: the answer must not carry the secret");
        assert_eq!(s.counts(), (0, n as u64 + 1), "{what}");
    }
    assert!(!s.woken().await, "a refused push must not wake anything");
}

#[tokio::test]
async fn wrong_method_and_path() {
    let s = start().await;
    let resp = exchange(
        s.addr,
        b"GET /v1/wake HTTP/1.1\r\nHost: agent\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status(&resp), 405, "{resp}");
    assert!(resp.to_ascii_lowercase().contains("\r\nallow: post\r\n"), "{resp}");

    let sig = format!("t={NOW},v1={VECTOR}");
    let resp = exchange(s.addr, &post("/other", Some(&sig), b"{}")).await;
    assert_eq!(status(&resp), 404, "{resp}");
    let resp = exchange(s.addr, &post("/v1/wake/", Some(&sig), b"{}")).await;
    assert_eq!(status(&resp), 404, "{resp}");

    assert!(!s.woken().await);
    assert_eq!(s.counts(), (0, 3));
}

#[tokio::test]
async fn declared_body_over_64k_is_refused_before_it_is_sent() {
    let s = start().await;
    let body = vec![b'x'; 65 * 1024];
    let sig = sign(b"s3cret", NOW, &body);
    // Headers only: the answer must come from Content-Length alone.
    let mut request = post("/v1/wake", Some(&sig), &body);
    request.truncate(request.len() - body.len());
    let resp = exchange(s.addr, &request).await;
    assert_eq!(status(&resp), 413, "{resp}");
    assert!(!s.woken().await);
    assert_eq!(s.counts(), (0, 1));
}

#[tokio::test]
async fn chunked_body_over_64k_is_refused() {
    let s = start().await;
    let body = vec![b'x'; 65 * 1024];
    let sig = sign(b"s3cret", NOW, &body);
    let mut request =
        format!("POST /v1/wake HTTP/1.1\r\nHost: agent\r\nTransfer-Encoding: chunked\r\nX-Signature: {sig}\r\n\r\n")
            .into_bytes();
    for chunk in body.chunks(4096) {
        request.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        request.extend_from_slice(chunk);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    let resp = exchange(s.addr, &request).await;
    assert_eq!(status(&resp), 413, "{resp}");
    assert!(!s.woken().await);
    assert_eq!(s.counts(), (0, 1));

    // Exactly 64 KiB, chunked, is still fine.
    let body = vec![b'y'; 64 * 1024];
    let sig = sign(b"s3cret", NOW, &body);
    let mut request =
        format!("POST /v1/wake HTTP/1.1\r\nHost: agent\r\nTransfer-Encoding: chunked\r\nX-Signature: {sig}\r\n\r\n")
            .into_bytes();
    request.extend_from_slice(format!("{:x}\r\n", body.len()).as_bytes());
    request.extend_from_slice(&body);
    request.extend_from_slice(b"\r\n0\r\n\r\n");
    let resp = exchange(s.addr, &request).await;
    assert_eq!(status(&resp), 202, "{resp}");
    assert_eq!(s.counts(), (1, 1));
}

#[tokio::test]
async fn wakes_coalesce_into_one_permit() {
    let s = start().await;
    let sig = format!("t={NOW},v1={VECTOR}");
    for _ in 0..5 {
        let resp = exchange(s.addr, &post("/v1/wake", Some(&sig), b"{}")).await;
        assert_eq!(status(&resp), 202, "{resp}");
    }
    assert_eq!(s.counts(), (5, 0));
    assert!(s.woken().await, "the first wait sees the stored wake");
    assert!(
        !s.woken().await,
        "five wakes while nobody listened are one more poll, not five"
    );
}

#[tokio::test]
async fn secret_is_reread_for_each_request() {
    let s = start().await;
    let old = format!("t={NOW},v1={VECTOR}");
    *s.secret.write().unwrap() = b"rotated".to_vec();
    let resp = exchange(s.addr, &post("/v1/wake", Some(&old), b"{}")).await;
    assert_eq!(status(&resp), 401, "{resp}");
    let new = sign(b"rotated", NOW, b"{}");
    let resp = exchange(s.addr, &post("/v1/wake", Some(&new), b"{}")).await;
    assert_eq!(status(&resp), 202, "{resp}");
    assert_eq!(s.counts(), (1, 1));
}

#[tokio::test]
async fn connections_beyond_64_are_dropped() {
    let s = start().await;
    let mut idle = Vec::new();
    for _ in 0..64 {
        idle.push(TcpStream::connect(s.addr).await.unwrap());
    }
    // The accept loop takes connections in order, so these 64 hold every slot.
    let sig = format!("t={NOW},v1={VECTOR}");
    let resp = exchange(s.addr, &post("/v1/wake", Some(&sig), b"{}")).await;
    assert_eq!(resp, "", "the 65th connection must be closed unanswered");
    assert_eq!(s.counts(), (0, 0));

    drop(idle);
    // Slots come back once the server has seen the idle clients go away.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let resp = exchange(s.addr, &post("/v1/wake", Some(&sig), b"{}")).await;
        if !resp.is_empty() {
            assert_eq!(status(&resp), 202, "{resp}");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "slots never came back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_cut_off() {
    let s = start().await;
    let mut stream = TcpStream::connect(s.addr).await.unwrap();
    stream
        .write_all(b"POST /v1/wake HTTP/1.1\r\nHost: agent\r\n")
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let _ = read_response(&mut stream).await;
    // Header timeout is 5 s; the bound is generous on purpose.
    assert!(started.elapsed() < Duration::from_secs(12));
    assert!(!s.woken().await);
}

#[tokio::test]
async fn shutdown_stops_accepting() {
    let mut s = start().await;
    s.stop.take().unwrap().send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), &mut s.task)
        .await
        .expect("serve must return after shutdown")
        .unwrap();
    assert!(TcpStream::connect(s.addr).await.is_err());
}
