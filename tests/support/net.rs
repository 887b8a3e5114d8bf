//! Loopback networking for tests and benches: the one free port finder, the one raw
//! HTTP/1.1 request writer and reader (bytes exactly as the test wrote them), and the wake
//! signer (the protocol crate's; the tests that check it hold their own vector).
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::Duration;

/// `t=<t>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>` (contract 5.4).
pub fn sign(secret: &[u8], t: u64, body: &[u8]) -> String {
    plesk_reseller_protocol::wake::sign(secret, t, body)
}

/// A loopback port nothing listens on right now.
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("a bound address").port()
}

/// Seconds since the epoch, for the `t=` of a signature.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

/// An HTTP/1.1 request with `Content-Length`, `Connection: close` and an optional
/// `X-Signature`, followed by `body`.
pub fn request(method: &str, path: &str, signature: Option<&str>, body: &[u8]) -> Vec<u8> {
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: agent\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if let Some(sig) = signature {
        head.push_str(&format!("X-Signature: {sig}\r\n"));
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// Writes `request` to `addr` and reads until the server closes (at most 15 s). A write the
/// server cut short (it answered before reading the whole body) is not an error; a server
/// that drops the connection unanswered gives an empty answer.
pub fn exchange(addr: SocketAddr, request: &[u8]) -> Vec<u8> {
    let mut s = std::net::TcpStream::connect(addr).unwrap_or_else(|e| panic!("cannot connect to {addr}: {e}"));
    s.set_nodelay(true).ok();
    s.set_read_timeout(Some(Duration::from_secs(15))).ok();
    let _ = s.write_all(request);
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    out
}

/// The status code of a response.
pub fn status(response: &[u8]) -> u16 {
    let text = String::from_utf8_lossy(response);
    text.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP status line in {text:?}"))
}

/// Sends one request to `127.0.0.1:port` and returns the status code.
pub fn http(port: u16, method: &str, path: &str, signature: Option<&str>, body: &[u8]) -> u16 {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    status(&exchange(addr, &request(method, path, signature, body)))
}
