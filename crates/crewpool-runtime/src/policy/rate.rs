//! At most N job starts per period, pool-wide.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

use crewpool_core::sync::{Mutex, lock};

/// A limit on how many jobs may start in any window of `period`.
///
/// The window slides: the limiter remembers the last `starts` start times, and a job
/// may start only once the start `starts` places before it is at least `period` old.
/// Memory is one timestamp per allowed start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RateLimit {
    pub(crate) starts: usize,
    pub(crate) period: Duration,
}

impl RateLimit {
    /// At most `starts` job starts in any window of `period`; `None` when either is
    /// zero.
    pub(crate) fn new(starts: usize, period: Duration) -> Option<Self> {
        (starts > 0 && !period.is_zero()).then_some(RateLimit { starts, period })
    }
}

/// Hands out start times; waits are tokio sleeps (workers are on a tokio runtime).
#[derive(Debug)]
pub(crate) struct RateLimiter {
    limit: RateLimit,
    /// Start times handed out, oldest first (some may be in the future: reserved).
    starts: Mutex<VecDeque<Instant>>,
}

impl RateLimiter {
    pub(crate) fn new(limit: RateLimit) -> Self {
        RateLimiter {
            limit,
            starts: Mutex::new(VecDeque::with_capacity(limit.starts)),
        }
    }

    /// Reserves the earliest allowed start time and waits for it.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future after it reserved a start leaves that start used: the limit
    /// is never exceeded, at worst a start slot goes unused.
    pub(crate) async fn acquire(&self) {
        let start = self.reserve(Instant::now());
        tokio::time::sleep_until(start).await;
    }

    /// The start time for a job asking at `now`, recorded as taken.
    fn reserve(&self, now: Instant) -> Instant {
        let mut starts = lock(&self.starts);
        let start = if starts.len() < self.limit.starts {
            // Never before the last reserved start: keeps starts in order.
            starts.back().map_or(now, |&last| last.max(now))
        } else {
            let oldest = starts.pop_front().unwrap_or(now);
            let last = starts.back().copied().unwrap_or(now);
            (oldest + self.limit.period).max(now).max(last)
        };
        starts.push_back(start);
        start
    }
}

#[cfg(all(test, not(crewpool_loom)))]
mod tests {
    use super::*;

    #[test]
    fn zero_is_rejected() {
        assert!(RateLimit::new(0, Duration::from_secs(1)).is_none());
        assert!(RateLimit::new(1, Duration::ZERO).is_none());
    }

    #[test]
    fn no_window_holds_more_than_the_limit() {
        let limit = RateLimit::new(3, Duration::from_millis(100)).unwrap();
        let limiter = RateLimiter::new(limit);
        let t0 = Instant::now();
        let starts: Vec<Instant> = (0..10).map(|_| limiter.reserve(t0)).collect();
        for (i, &start) in starts.iter().enumerate() {
            let in_window = starts
                .iter()
                .filter(|&&s| s >= start && s < start + limit.period)
                .count();
            assert!(
                in_window <= 3,
                "start {i}: {in_window} starts in one window"
            );
        }
        assert_eq!(
            starts[..3],
            [t0, t0, t0],
            "a burst of the limit starts at once"
        );
        assert_eq!(starts[3], t0 + limit.period);
        assert_eq!(starts[9], t0 + 3 * limit.period);
    }
}
