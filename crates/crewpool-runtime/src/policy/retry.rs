//! Retrying failed jobs with exponential backoff and jitter.

use std::any::Any;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// How a job failed, as a [`RetryPolicy`] predicate sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailureKind {
    /// The worker returned `Err`.
    Failed,
    /// The job panicked.
    Panicked,
    /// The job ran past the pool's timeout.
    TimedOut,
}

/// A failed attempt, for deciding whether to retry it.
pub struct Failure<'a> {
    kind: FailureKind,
    attempt: u32,
    error: Option<&'a (dyn Any + Send)>,
    message: &'a dyn fmt::Display,
}

impl<'a> Failure<'a> {
    pub(crate) fn new(
        kind: FailureKind,
        attempt: u32,
        error: Option<&'a (dyn Any + Send)>,
        message: &'a dyn fmt::Display,
    ) -> Self {
        Failure {
            kind,
            attempt,
            error,
            message,
        }
    }

    /// How the attempt failed.
    pub fn kind(&self) -> FailureKind {
        self.kind
    }

    /// Which attempt failed, from 1.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The worker's error, if the attempt failed with one of type `E` (the worker's
    /// `Error` type).
    pub fn error<E: 'static>(&self) -> Option<&E> {
        self.error.and_then(|error| error.downcast_ref::<E>())
    }
}

impl fmt::Display for Failure<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.message.fmt(f)
    }
}

impl fmt::Debug for Failure<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Failure")
            .field("kind", &self.kind)
            .field("attempt", &self.attempt)
            .field("message", &self.message.to_string())
            .finish()
    }
}

type Predicate = dyn Fn(&Failure<'_>) -> bool + Send + Sync;

/// When and how soon a failed job runs again.
///
/// A job is retried while it has attempts left and the predicate (if any) agrees; the
/// delay before attempt `n + 1` is `base * factor^(n - 1)`, capped at `max_delay`, and
/// with jitter drawn uniformly from its upper half so retries of many jobs spread out
/// without ever coming back sooner than half the nominal delay. Panics and timeouts are
/// failures like any other.
///
/// On in-memory queues the pool keeps a copy of each job (hence `Clone` on the job
/// type) and runs it again after the delay, without blocking a worker in the meantime;
/// durable queues schedule the retry themselves (Redis: its delayed set). Jobs read
/// their attempt number from [`JobContext::attempt`](crewpool_core::JobContext::attempt).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use crewpool_runtime::{FailureKind, RetryPolicy};
///
/// let policy = RetryPolicy::exponential(5)
///     .base_delay(Duration::from_millis(100))
///     .max_delay(Duration::from_secs(10))
///     .retry_if(|failure| failure.kind() != FailureKind::Panicked);
/// assert_eq!(policy.max_attempts(), 5);
/// ```
#[derive(Clone)]
pub struct RetryPolicy {
    max_attempts: u32,
    base: Duration,
    factor: f64,
    max_delay: Duration,
    jitter: bool,
    predicate: Option<Arc<Predicate>>,
}

impl RetryPolicy {
    /// At most `max_attempts` attempts in all (so `max_attempts - 1` retries), with
    /// delays from 100 ms doubling up to 30 s, jittered. `max_attempts` of 0 is
    /// treated as 1 (no retry).
    pub fn exponential(max_attempts: u32) -> Self {
        RetryPolicy {
            max_attempts: max_attempts.max(1),
            base: Duration::from_millis(100),
            factor: 2.0,
            max_delay: Duration::from_secs(30),
            jitter: true,
            predicate: None,
        }
    }

    /// The delay before the first retry.
    #[must_use]
    pub fn base_delay(mut self, base: Duration) -> Self {
        self.base = base;
        self
    }

    /// How much each delay grows over the previous one (at least 1).
    #[must_use]
    pub fn factor(mut self, factor: f64) -> Self {
        self.factor = if factor.is_finite() {
            factor.max(1.0)
        } else {
            1.0
        };
        self
    }

    /// The longest delay.
    #[must_use]
    pub fn max_delay(mut self, max_delay: Duration) -> Self {
        self.max_delay = max_delay;
        self
    }

    /// Turns jitter on or off (on by default).
    #[must_use]
    pub fn jitter(mut self, jitter: bool) -> Self {
        self.jitter = jitter;
        self
    }

    /// Retries only failures for which `predicate` returns true.
    #[must_use]
    pub fn retry_if(
        mut self,
        predicate: impl Fn(&Failure<'_>) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.predicate = Some(Arc::new(predicate));
        self
    }

    /// The most attempts a job gets.
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// Whether the attempt that failed should be followed by another.
    pub fn should_retry(&self, failure: &Failure<'_>) -> bool {
        failure.attempt < self.max_attempts
            && self
                .predicate
                .as_ref()
                .is_none_or(|predicate| predicate(failure))
    }

    /// The delay before the attempt after `attempt` (which failed).
    pub fn delay_after(&self, attempt: u32) -> Duration {
        let exponent = i32::try_from(attempt.saturating_sub(1)).unwrap_or(i32::MAX);
        let nominal = self.base.as_secs_f64() * self.factor.powi(exponent);
        let capped = nominal.min(self.max_delay.as_secs_f64());
        let seconds = if self.jitter {
            capped * (0.5 + fastrand::f64() * 0.5)
        } else {
            capped
        };
        Duration::try_from_secs_f64(seconds).unwrap_or(self.max_delay)
    }
}

impl fmt::Debug for RetryPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryPolicy")
            .field("max_attempts", &self.max_attempts)
            .field("base", &self.base)
            .field("factor", &self.factor)
            .field("max_delay", &self.max_delay)
            .field("jitter", &self.jitter)
            .field("predicate", &self.predicate.is_some())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(attempt: u32) -> Failure<'static> {
        Failure::new(FailureKind::Failed, attempt, None, &"boom")
    }

    #[test]
    fn delays_grow_exponentially_up_to_the_cap() {
        let policy = RetryPolicy::exponential(10)
            .base_delay(Duration::from_millis(10))
            .max_delay(Duration::from_millis(100))
            .jitter(false);
        let delays: Vec<_> = (1..=6).map(|n| policy.delay_after(n).as_millis()).collect();
        assert_eq!(delays, vec![10, 20, 40, 80, 100, 100]);
    }

    #[test]
    fn jitter_stays_within_the_upper_half() {
        let policy = RetryPolicy::exponential(10).base_delay(Duration::from_millis(100));
        for _ in 0..1000 {
            let delay = policy.delay_after(1);
            assert!(delay >= Duration::from_millis(50) && delay <= Duration::from_millis(100));
        }
    }

    #[test]
    fn attempts_and_predicate_decide() {
        let policy = RetryPolicy::exponential(3).retry_if(|f| f.to_string() == "boom");
        assert!(policy.should_retry(&failure(1)));
        assert!(policy.should_retry(&failure(2)));
        assert!(
            !policy.should_retry(&failure(3)),
            "the third attempt was the last"
        );
        let other = Failure::new(FailureKind::Failed, 1, None, &"other");
        assert!(!policy.should_retry(&other));
        assert!(!RetryPolicy::exponential(0).should_retry(&failure(1)));
    }

    #[test]
    fn the_predicate_can_read_the_typed_error() {
        let policy = RetryPolicy::exponential(3).retry_if(|f| f.error::<u8>() == Some(&7));
        let seven: u8 = 7;
        let typed = Failure::new(FailureKind::Failed, 1, Some(&seven), &"seven");
        assert!(policy.should_retry(&typed));
        let eight: u8 = 8;
        let other = Failure::new(FailureKind::Failed, 1, Some(&eight), &"eight");
        assert!(!policy.should_retry(&other));
    }
}
