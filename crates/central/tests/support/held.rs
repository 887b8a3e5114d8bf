//! Polls held open in a thread, and the gauge that says they are held.

use std::thread::JoinHandle;
use std::time::Instant;

use super::central::Central;
use super::http::{poll, request, Resp};

/// `central_held_polls` from the central's `/metrics`.
pub fn held_polls(c: &Central) -> Option<u64> {
    let m = request(&c.addr, "GET", "/metrics", None, &[], b"").body;
    m.lines()
        .find_map(|l| l.strip_prefix("central_held_polls "))
        .and_then(|n| n.parse().ok())
}

/// Takes `host`'s current ETag with `token`, then holds a poll with it (`wait` seconds) in a
/// thread, and returns once the central counts it held: the answer and when it came.
pub fn hold(c: &Central, host: &str, token: &str, wait: u64) -> JoinHandle<(Resp, Instant)> {
    let before = held_polls(c).unwrap_or(0);
    let etag = poll(&c.addr, host, token, 0, None)
        .header("etag")
        .expect("an ETag")
        .to_string();
    let (addr, host, token) = (c.addr.clone(), host.to_string(), token.to_string());
    let t = std::thread::spawn(move || {
        let r = poll(&addr, &host, &token, wait, Some(&etag));
        (r, Instant::now())
    });
    super::wait_for(10, "the poll to be held", || {
        (held_polls(c).unwrap_or(0) > before).then_some(())
    });
    t
}
