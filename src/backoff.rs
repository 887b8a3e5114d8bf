//! Retry delays shared by polling and result delivery: exponential backoff with full
//! jitter from 1 s, capped at 300 s (contract 5.1), and ±10 % jitter for fixed intervals.
//! Jitter is added here and nowhere else.

use std::time::Duration;

/// Backoff cap after failures.
pub const BACKOFF_CAP: Duration = Duration::from_secs(300);

/// `base` ±10 %.
pub fn jittered(base: Duration) -> Duration {
    base.mul_f64(0.9 + fastrand::f64() * 0.2)
}

/// Full-jitter backoff after `failures` consecutive failures (1 → up to 1 s, 2 → 2 s, …).
pub fn backoff(failures: u32) -> Duration {
    let cap = backoff_cap(failures);
    cap.mul_f64(fastrand::f64())
}

/// The upper bound of [`backoff`].
pub fn backoff_cap(failures: u32) -> Duration {
    let exp = failures.saturating_sub(1).min(16);
    Duration::from_secs(1u64 << exp).min(BACKOFF_CAP)
}
