//! Policies a pool applies to every job, the same on every backend: retries with
//! backoff, a per-job timeout, and a rate limit on job starts.

mod rate;
mod retry;

pub(crate) use rate::{RateLimit, RateLimiter};
pub use retry::{Failure, FailureKind, RetryPolicy};

use std::time::Duration;

/// Everything a pool applies to each job, fixed at build time.
#[derive(Debug, Default)]
pub(crate) struct Policies {
    pub(crate) timeout: Option<Duration>,
    pub(crate) retry: Option<RetryPolicy>,
    pub(crate) rate: Option<RateLimiter>,
    pub(crate) metrics: bool,
}
