//! The runtime's errors. Errors that refuse a job hand it back.

use std::fmt;

use crewpool_core::QueueError;

pub use crewpool_core::{PushError as SubmitError, TryPushError as TrySubmitError};

/// [`PoolBuilder::build`](crate::PoolBuilder::build) could not start the pool.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// A pool needs at least one worker.
    #[error("a pool needs at least one worker, but the worker count is 0")]
    ZeroWorkers,
    /// The workers run as tokio tasks, but there is no tokio runtime here.
    #[error(
        "no tokio runtime: build the pool inside one, pass one with `runtime(handle)`, \
         or use `dedicated_threads()`"
    )]
    NoRuntime,
    /// The queue could not create a consumer for a worker.
    #[error("the queue could not create a consumer: {0}")]
    Queue(#[source] QueueError),
    /// A worker thread could not be started.
    #[error("could not start worker thread: {0}")]
    Thread(#[source] std::io::Error),
    /// The rate limit allows no job at all.
    #[error("a rate limit needs at least one start in a non-zero period")]
    RateLimit,
}

impl From<ResizeError> for BuildError {
    fn from(error: ResizeError) -> Self {
        match error {
            ResizeError::Queue(error) => BuildError::Queue(error),
            ResizeError::Thread(error) => BuildError::Thread(error),
            ResizeError::ZeroWorkers | ResizeError::Closed => BuildError::ZeroWorkers,
        }
    }
}

/// [`Pool::submit_timeout`](crate::Pool::submit_timeout) did not accept the job; it
/// comes back.
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum SubmitTimeoutError<J> {
    /// The queue stayed full for the whole timeout.
    #[error("the queue stayed full until the timeout")]
    Timeout(J),
    /// The pool no longer accepts jobs.
    #[error("the pool is shut down")]
    Closed(J),
}

impl<J> SubmitTimeoutError<J> {
    /// Returns the job that was not accepted.
    pub fn into_inner(self) -> J {
        match self {
            SubmitTimeoutError::Timeout(job) | SubmitTimeoutError::Closed(job) => job,
        }
    }
}

impl<J> fmt::Debug for SubmitTimeoutError<J> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SubmitTimeoutError::Timeout(_) => f.write_str("Timeout(..)"),
            SubmitTimeoutError::Closed(_) => f.write_str("Closed(..)"),
        }
    }
}

/// [`Pool::resize`](crate::Pool::resize) could not apply the new worker count.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ResizeError {
    /// A pool needs at least one worker.
    #[error("a pool needs at least one worker, but the worker count is 0")]
    ZeroWorkers,
    /// The pool is shutting down or shut down.
    #[error("the pool is shut down")]
    Closed,
    /// The queue could not create a consumer for a new worker.
    #[error("the queue could not create a consumer: {0}")]
    Queue(#[source] QueueError),
    /// A new worker thread could not be started.
    #[error("could not start worker thread: {0}")]
    Thread(#[source] std::io::Error),
}
