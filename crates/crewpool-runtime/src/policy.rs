//! Policies a pool applies to every job, the same on every backend: retries with
//! backoff, a per-job timeout, and a rate limit on job starts.

mod rate;

pub use crewpool_core::{Failure, FailureKind, RetryPolicy};
pub(crate) use rate::{RateLimit, RateLimiter};

use std::time::Duration;

/// Everything a pool applies to each job, fixed at build time.
#[derive(Debug, Default)]
pub(crate) struct Policies {
    pub(crate) timeout: Option<Duration>,
    /// The one policy that decides retries of this pool's jobs: the builder's, or the
    /// queue's own when the builder set none (see `Queue::retry_policy`).
    pub(crate) retry: Option<RetryPolicy>,
    pub(crate) rate: Option<RateLimiter>,
    pub(crate) metrics: bool,
}
