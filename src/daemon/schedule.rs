//! When to poll next (contract 5.1, version 2): at most `burst` polls in any `window` (10 in
//! 10 s: on average at most one a second, and a burst of wakes or `poll-now`s is served at
//! once), `poll_interval` ±10 % for a store that does not hold polls open, exponential
//! backoff with full jitter after failures (the delays themselves are in `crate::backoff`),
//! and a restarting store's `Retry-After`.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

pub use crate::backoff::{backoff, backoff_cap, jittered, BACKOFF_CAP};

/// An unchanged answer after the store held the poll this long counts as held (a store may
/// cap `wait`, e.g. the central's `max_wait`).
pub const HELD_AT_LEAST: Duration = Duration::from_secs(1);
/// Quick unchanged answers to waiting polls, in a row, that mark a store as not holding.
pub const NOT_HOLDING_AFTER: u32 = 3;

/// The rate rule as a sliding window: a poll may start while fewer than `burst` started in
/// the last `window`. Nothing is owed: a poll that has to wait waits only until the oldest
/// of the last `burst` leaves the window, and one that may start now starts now, so a wake
/// after a few quick polls never pays for them.
#[derive(Debug, Clone)]
pub struct RateLimit {
    starts: VecDeque<Instant>,
    burst: usize,
    window: Duration,
}

impl RateLimit {
    pub fn new(burst: u32, window: Duration) -> Self {
        RateLimit {
            starts: VecDeque::with_capacity(burst as usize),
            burst: burst.max(1) as usize,
            window,
        }
    }

    /// How long from `now` until a poll may start (zero: at once). Takes nothing.
    pub fn delay(&self, now: Instant) -> Duration {
        if self.starts.len() < self.burst {
            return Duration::ZERO;
        }
        let oldest = self.starts[self.starts.len() - self.burst];
        (oldest + self.window).saturating_duration_since(now)
    }

    /// Records a poll starting at `now`.
    pub fn record(&mut self, now: Instant) {
        self.starts.push_back(now);
        while self.starts.len() > self.burst {
            self.starts.pop_front();
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
    /// The store is restarting (`503` with `Retry-After` of at most 60 s): not a failure.
    RetryAfter(Duration),
}

/// Whether the store holds polls, learnt from its answers.
#[derive(Debug, Clone, Default)]
pub struct Schedule {
    /// Unchanged answers to waiting polls in under [`HELD_AT_LEAST`], in a row.
    quick: u32,
}

impl Schedule {
    /// True once the store answered [`NOT_HOLDING_AFTER`] waiting polls at once in a row.
    pub fn not_holding(&self) -> bool {
        self.quick >= NOT_HOLDING_AFTER
    }

    /// Delay before the next poll. `long_poll` zero means the store is polled every interval.
    pub fn next_delay(&mut self, polled: Polled, long_poll: Duration, poll_interval: Duration) -> Duration {
        match polled {
            Polled::Failed { failures } => backoff(failures),
            Polled::RetryAfter(after) => after,
            _ if long_poll.is_zero() => jittered(poll_interval),
            Polled::Changed => Duration::ZERO,
            Polled::Unchanged { held } if held >= HELD_AT_LEAST => {
                self.quick = 0;
                Duration::ZERO
            }
            Polled::Unchanged { .. } => {
                self.quick = self.quick.saturating_add(1);
                if self.not_holding() {
                    jittered(poll_interval)
                } else {
                    // Once or twice may be a store stopping or a change racing the poll.
                    Duration::ZERO
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter() -> RateLimit {
        RateLimit::new(10, Duration::from_secs(10))
    }

    /// Starts polls as soon as the limiter allows, each asked for `gap` after the last began,
    /// for `run`; returns the start times.
    fn drive(r: &mut RateLimit, t0: Instant, gap: Duration, run: Duration) -> Vec<Instant> {
        let mut clock = t0;
        let mut starts = Vec::new();
        while clock < t0 + run {
            clock += r.delay(clock);
            r.record(clock);
            starts.push(clock);
            clock += gap;
        }
        starts
    }

    #[test]
    fn eleven_polls_in_ten_seconds_the_eleventh_waits() {
        let t0 = Instant::now();
        let mut r = limiter();
        for i in 0..10 {
            let now = t0 + Duration::from_millis(100 * i);
            assert_eq!(r.delay(now), Duration::ZERO, "poll {}", i + 1);
            r.record(now);
        }
        let now = t0 + Duration::from_millis(1000);
        assert_eq!(
            r.delay(now),
            Duration::from_secs(9),
            "the 11th waits for the 1st to age out"
        );
        // Exactly as long as needed, no more.
        assert_eq!(r.delay(t0 + Duration::from_secs(10)), Duration::ZERO);
    }

    #[test]
    fn after_five_quick_polls_a_sixth_is_immediate() {
        let t0 = Instant::now();
        let mut r = limiter();
        for i in 0..5 {
            let now = t0 + Duration::from_millis(10 * i);
            assert_eq!(r.delay(now), Duration::ZERO);
            r.record(now);
        }
        assert_eq!(r.delay(t0 + Duration::from_millis(60)), Duration::ZERO);
        // And later bursts are not paid for either: no debt carried.
        r.record(t0 + Duration::from_millis(60));
        assert_eq!(r.delay(t0 + Duration::from_secs(11)), Duration::ZERO);
    }

    #[test]
    fn the_average_stays_at_most_one_poll_per_second_over_a_long_run() {
        let t0 = Instant::now();
        for gap in [Duration::ZERO, Duration::from_millis(1), Duration::from_millis(300)] {
            let mut r = limiter();
            let run = Duration::from_secs(3600);
            let starts = drive(&mut r, t0, gap, run);
            let span = starts.last().unwrap().duration_since(t0).as_secs_f64();
            // 10 free at the start, then at most one a second.
            assert!(starts.len() as f64 <= 10.0 + span, "{} polls in {span} s", starts.len());
            assert!(starts.len() >= 3590, "the limiter starves polls: {}", starts.len());
            // No 10 s window holds more than 10.
            for w in starts.windows(11) {
                assert!(w[10].duration_since(w[0]) >= Duration::from_secs(10), "gap {gap:?}");
            }
        }
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
    fn a_store_is_not_holding_only_after_three_quick_unchanged_answers_in_a_row() {
        let lp = Duration::from_secs(25);
        let iv = Duration::from_secs(60);
        let quick = Polled::Unchanged {
            held: Duration::from_millis(5),
        };
        let mut s = Schedule::default();
        assert_eq!(s.next_delay(quick, lp, iv), Duration::ZERO);
        assert_eq!(s.next_delay(quick, lp, iv), Duration::ZERO);
        let d = s.next_delay(quick, lp, iv);
        assert!(d >= Duration::from_secs(54) && d <= Duration::from_secs(66), "{d:?}");
        assert!(s.not_holding());
        // One held answer and the store holds again.
        let held = Polled::Unchanged {
            held: Duration::from_secs(25),
        };
        assert_eq!(s.next_delay(held, lp, iv), Duration::ZERO);
        assert!(!s.not_holding());
        assert_eq!(s.next_delay(Polled::Changed, lp, iv), Duration::ZERO);
        assert!(s.next_delay(Polled::Changed, Duration::ZERO, iv) >= Duration::from_secs(54));
    }

    #[test]
    fn a_store_capping_wait_counts_as_holding() {
        // max_wait 5 against long_poll 25: below half, still held.
        let mut s = Schedule::default();
        let capped = Polled::Unchanged {
            held: Duration::from_secs(5),
        };
        for _ in 0..10 {
            assert_eq!(
                s.next_delay(capped, Duration::from_secs(25), Duration::from_secs(60)),
                Duration::ZERO
            );
        }
    }

    #[test]
    fn retry_after_is_waited_for_and_is_not_a_failure() {
        let mut s = Schedule::default();
        let d = s.next_delay(
            Polled::RetryAfter(Duration::from_secs(1)),
            Duration::from_secs(25),
            Duration::from_secs(60),
        );
        assert_eq!(d, Duration::from_secs(1));
        assert!(!s.not_holding());
    }
}
