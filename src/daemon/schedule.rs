//! When to poll next (contract 5.1): at most one poll per second on average (a token
//! bucket), `poll_interval` ±10 % for a store that does not hold polls open, exponential
//! backoff with full jitter after failures (the delays themselves are in `crate::backoff`).

use std::time::{Duration, Instant};

pub use crate::backoff::{backoff, backoff_cap, jittered, BACKOFF_CAP};

/// A token bucket: `burst` polls at once, refilled at one per second.
#[derive(Debug, Clone)]
pub struct RateLimit {
    tokens: f64,
    burst: f64,
    last: Instant,
}

impl RateLimit {
    pub fn new(burst: u32, now: Instant) -> Self {
        RateLimit {
            tokens: burst as f64,
            burst: burst as f64,
            last: now,
        }
    }

    /// How long to wait before the next poll may start (zero: now). Takes the token.
    pub fn take(&mut self, now: Instant) -> Duration {
        let refill = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + refill).min(self.burst);
        self.last = now;
        self.tokens -= 1.0;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens)
        }
    }
}

/// How a poll went, for the schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Polled {
    /// The store sent something new.
    Changed,
    /// Nothing new (304 or the same instructions), after `held` of waiting.
    Unchanged {
        held: Duration,
    },
    Failed {
        failures: u32,
    },
}

/// Delay before the next poll. `long_poll` zero means the store is polled every interval.
pub fn next_delay(polled: Polled, long_poll: Duration, poll_interval: Duration) -> Duration {
    match polled {
        Polled::Failed { failures } => backoff(failures),
        _ if long_poll.is_zero() => jittered(poll_interval),
        Polled::Changed => Duration::ZERO,
        // A store that answers well before the wait ends is not holding polls open.
        Polled::Unchanged { held } if held < long_poll / 2 => jittered(poll_interval),
        Polled::Unchanged { .. } => Duration::ZERO,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_a_burst_then_one_per_second() {
        let t0 = Instant::now();
        let mut r = RateLimit::new(3, t0);
        assert_eq!(r.take(t0), Duration::ZERO);
        assert_eq!(r.take(t0), Duration::ZERO);
        assert_eq!(r.take(t0), Duration::ZERO);
        let wait = r.take(t0);
        assert!(
            wait > Duration::from_millis(900) && wait <= Duration::from_secs(1),
            "{wait:?}"
        );
        // 100 polls asked for at once over 10 s get at most 3 + 10 free slots.
        let mut r = RateLimit::new(3, t0);
        let mut clock = t0;
        let mut started = 0;
        while clock < t0 + Duration::from_secs(10) {
            let w = r.take(clock);
            clock += w;
            if clock <= t0 + Duration::from_secs(10) {
                started += 1;
            }
        }
        assert!(started <= 13, "{started}");
    }

    #[test]
    fn backoff_grows_to_the_cap_with_full_jitter() {
        assert_eq!(backoff_cap(1), Duration::from_secs(1));
        assert_eq!(backoff_cap(2), Duration::from_secs(2));
        assert_eq!(backoff_cap(9), Duration::from_secs(256));
        assert_eq!(backoff_cap(10), BACKOFF_CAP);
        assert_eq!(backoff_cap(1000), BACKOFF_CAP);
        for n in 1..20 {
            assert!(backoff(n) <= backoff_cap(n));
        }
    }

    #[test]
    fn a_store_that_does_not_hold_polls_is_polled_every_interval() {
        let lp = Duration::from_secs(25);
        let iv = Duration::from_secs(60);
        let d = next_delay(
            Polled::Unchanged {
                held: Duration::from_millis(5),
            },
            lp,
            iv,
        );
        assert!(d >= Duration::from_secs(54) && d <= Duration::from_secs(66), "{d:?}");
        assert_eq!(
            next_delay(
                Polled::Unchanged {
                    held: Duration::from_secs(25)
                },
                lp,
                iv
            ),
            Duration::ZERO
        );
        assert_eq!(next_delay(Polled::Changed, lp, iv), Duration::ZERO);
        assert!(next_delay(Polled::Changed, Duration::ZERO, iv) >= Duration::from_secs(54));
    }
}
