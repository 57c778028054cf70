//! The retry policy: one type, one meaning, for pools and for the queues that retry
//! jobs themselves.

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
///
/// Pools build one for every failed attempt; build one yourself to test a predicate.
///
/// # Examples
///
/// ```
/// use crewpool_core::{Failure, FailureKind, RetryPolicy};
///
/// let policy = RetryPolicy::exponential(3).retry_if(|f| f.error::<u16>() != Some(&404));
/// let not_found: u16 = 404;
/// let failure = Failure::new(FailureKind::Failed, 1, &"HTTP 404").with_error(&not_found);
/// assert!(!policy.should_retry(&failure));
/// ```
pub struct Failure<'a> {
    kind: FailureKind,
    attempt: u32,
    error: Option<&'a (dyn Any + Send)>,
    message: &'a dyn fmt::Display,
}

impl<'a> Failure<'a> {
    /// Attempt `attempt` (from 1) failed as `kind`; `message` is what its
    /// `Display` shows (the error's text, a panic message).
    pub fn new(kind: FailureKind, attempt: u32, message: &'a dyn fmt::Display) -> Self {
        Failure {
            kind,
            attempt,
            error: None,
            message,
        }
    }

    /// Attaches the worker's typed error, which [`error`](Failure::error) hands back.
    #[must_use]
    pub fn with_error(mut self, error: &'a (dyn Any + Send)) -> Self {
        self.error = Some(error);
        self
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
    /// `Error` type). `None` for panics, time-outs, and failures a queue reports by
    /// their text only.
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

/// When and how soon a failed job runs again: at most
/// [`attempts`](RetryPolicy::attempts) attempts in all, exponential backoff
/// with jitter between them, and an optional predicate that decides from the failure.
///
/// The same type and the same meaning everywhere: a pool's policy
/// (`PoolBuilder::retry` in `crewpool-runtime`) and a durable queue's own (the Redis
/// backend's `RedisConfig::retry`, which it also applies to jobs whose worker process
/// died). A pool on a queue applies exactly one policy to its jobs; see
/// [`Queue::retry_policy`](crate::Queue::retry_policy).
///
/// A job is retried while it has attempts left and the predicate (if any) agrees; the
/// delay before attempt `n + 1` is `base * factor^(n - 1)`, capped at `max_delay`,
/// with jitter drawn uniformly from its upper half so retries of many jobs spread out
/// without ever coming back sooner than half the nominal delay. Panics and timeouts
/// are failures like any other.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use crewpool_core::{FailureKind, RetryPolicy};
///
/// let policy = RetryPolicy::exponential(5)
///     .base_delay(Duration::from_millis(100))
///     .max_delay(Duration::from_secs(10))
///     .retry_if(|failure| failure.kind() != FailureKind::Panicked);
/// assert_eq!(policy.attempts(), 5);
/// let no_jitter = policy.jitter(false);
/// assert_eq!(no_jitter.delay_after(1), Duration::from_millis(100)); // before attempt 2
/// assert_eq!(no_jitter.delay_after(2), Duration::from_millis(200));
/// assert_eq!(no_jitter.delay_after(9), Duration::from_secs(10)); // capped
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
    /// At most `max_attempts` attempts in all, the first run included (so
    /// `max_attempts - 1` retries), with delays from 100 ms doubling up to 30 s,
    /// jittered. `max_attempts` of 0 or 1 means the first failure is final (never
    /// retried); there is no "unlimited" (`u32::MAX` comes closest).
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

    /// Sets the number of attempts in all (see [`exponential`](RetryPolicy::exponential)).
    #[must_use]
    pub fn max_attempts(mut self, max_attempts: u32) -> Self {
        self.max_attempts = max_attempts.max(1);
        self
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

    /// The most attempts a job gets, the first run included (at least 1).
    pub fn attempts(&self) -> u32 {
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
        Failure::new(FailureKind::Failed, attempt, &"boom")
    }

    #[test]
    fn delays_grow_exponentially_up_to_the_cap() {
        let policy = RetryPolicy::exponential(10)
            .base_delay(Duration::from_millis(10))
            .max_delay(Duration::from_millis(100))
            .jitter(false);
        let delays: Vec<_> = (1..=6).map(|n| policy.delay_after(n).as_millis()).collect();
        assert_eq!(delays, vec![10, 20, 40, 80, 100, 100]);
        assert_eq!(policy.delay_after(u32::MAX), Duration::from_millis(100));
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
        let other = Failure::new(FailureKind::Failed, 1, &"other");
        assert!(!policy.should_retry(&other));
    }

    #[test]
    fn zero_attempts_means_the_first_failure_is_final() {
        for policy in [
            RetryPolicy::exponential(0),
            RetryPolicy::exponential(5).max_attempts(0),
        ] {
            assert_eq!(policy.attempts(), 1);
            assert!(!policy.should_retry(&failure(1)));
        }
    }

    #[test]
    fn the_predicate_can_read_the_typed_error() {
        let policy = RetryPolicy::exponential(3).retry_if(|f| f.error::<u8>() == Some(&7));
        let seven: u8 = 7;
        let typed = Failure::new(FailureKind::Failed, 1, &"seven").with_error(&seven);
        assert!(policy.should_retry(&typed));
        let eight: u8 = 8;
        let other = Failure::new(FailureKind::Failed, 1, &"eight").with_error(&eight);
        assert!(!policy.should_retry(&other));
    }
}
