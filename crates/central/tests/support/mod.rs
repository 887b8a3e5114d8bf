//! Black-box helpers for the central's tests: the real `plesk-reseller-central` binary on
//! port 0 with SQLite in a temp dir, the real agent binary with the stand-in plesk, and a
//! small raw HTTP/1.1 client.

#![allow(dead_code)]

pub mod agent;
pub mod central;
pub mod fake_ka;
pub mod http;

use std::time::{Duration, Instant};

pub const CODE: &str = "A00000-K6QK03-KSG046-H6BK67-1GE201";

/// Waits up to `secs` for `f` to return Some; panics with `what` otherwise. A deadline for
/// something that must happen, not a timing measurement.
pub fn wait_for<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() > end {
            panic!("gave up waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// True when any of the files contains `needle`.
pub fn files_hold(paths: &[std::path::PathBuf], needle: &str) -> bool {
    paths.iter().any(|p| {
        let bytes = std::fs::read(p).unwrap_or_default();
        bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
    })
}
