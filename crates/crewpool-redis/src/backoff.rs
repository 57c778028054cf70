//! Exponential backoff for the background tasks (fetcher, acker, schedule runner)
//! when a call to Redis fails.

use std::time::Duration;

/// Exponential backoff for the background tasks' retries: 10 ms doubling to 2 s.
#[derive(Debug)]
pub(crate) struct Backoff {
    next: Duration,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(10);
    const MAX: Duration = Duration::from_secs(2);

    pub(crate) fn new() -> Self {
        Backoff { next: Self::FIRST }
    }

    pub(crate) fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(Self::MAX);
        delay
    }

    pub(crate) fn reset(&mut self) {
        self.next = Self::FIRST;
    }

    pub(crate) fn is_fresh(&self) -> bool {
        self.next == Self::FIRST
    }
}
