//! The runtime's errors. Errors that refuse a job hand it back.
//!
//! They follow the conventions of `crewpool_core`'s errors: `Display` describes this
//! level only, the cause is the [`source`](std::error::Error::source); errors that
//! refuse a job answer `is_closed` and `is_full` and give the job back with
//! `into_inner`.

use std::error::Error as StdError;
use std::fmt;

use crewpool_core::{BoxError, PushError, QueueError};

pub use crewpool_core::TryPushError as TrySubmitError;

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
    #[error("the queue could not create a consumer for a worker")]
    Queue(#[source] QueueError),
    /// A worker thread could not be started.
    #[error("could not start a worker thread")]
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

/// [`Pool::submit`](crate::Pool::submit) or [`Pool::spawn`](crate::Pool::spawn) did
/// not accept the job; it comes back.
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum SubmitError<J> {
    /// The pool is shutting down or shut down, and accepts nothing more.
    #[error("the pool no longer accepts jobs")]
    Closed(J),
    /// The queue is full, and this submit does not wait for room: it was made from
    /// inside one of the pool's own jobs (see "Submitting from inside a job" on
    /// [`Pool`](crate::Pool)).
    #[error(
        "the queue is full, and a submit from inside one of the pool's own jobs does not \
         wait for room"
    )]
    Full(J),
    /// The queue's backend did not accept the job (a durable queue could not store it,
    /// or refused it as too large); the backend's error is the
    /// [`source`](std::error::Error::source), and
    /// [`backend_error`](SubmitError::backend_error) returns it typed.
    #[error("the queue backend did not accept the job")]
    Backend {
        /// The job that was not accepted.
        job: J,
        /// The backend's error.
        #[source]
        source: BoxError,
    },
    /// The pool's queue cannot bring a job's result back to its submitter (it does not
    /// implement [`Replies`](crewpool_core::Replies)), so no handle can be given:
    /// [`AnyPool::submit`](crate::AnyPool::submit) on such a queue. Use `spawn`; the
    /// pool that runs the job reports its outcome in its results stream.
    #[error("the pool's queue cannot bring results back to the submitter: use `spawn`")]
    ResultsUnavailable(J),
}

impl<J> SubmitError<J> {
    /// Returns the job that was not accepted.
    pub fn into_inner(self) -> J {
        match self {
            SubmitError::Closed(job)
            | SubmitError::Full(job)
            | SubmitError::Backend { job, .. }
            | SubmitError::ResultsUnavailable(job) => job,
        }
    }

    /// Whether the pool no longer accepts jobs.
    pub fn is_closed(&self) -> bool {
        matches!(self, SubmitError::Closed(_))
    }

    /// Whether the queue was full (a submit from inside one of the pool's own jobs).
    pub fn is_full(&self) -> bool {
        matches!(self, SubmitError::Full(_))
    }

    /// The backend's own error, if it refused the job with one of type `E`: for the
    /// Redis backend, `crewpool_redis::Error::PayloadTooLarge` for a job over its
    /// size limit.
    pub fn backend_error<E: StdError + 'static>(&self) -> Option<&E> {
        match self {
            SubmitError::Backend { source, .. } => source.downcast_ref::<E>(),
            _ => None,
        }
    }
}

impl<J> From<PushError<J>> for SubmitError<J> {
    fn from(error: PushError<J>) -> Self {
        match error {
            PushError::Backend { item, source } => SubmitError::Backend { job: item, source },
            other => SubmitError::Closed(other.into_inner()),
        }
    }
}

impl<J> fmt::Debug for SubmitError<J> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SubmitError::Closed(_) => f.write_str("Closed(..)"),
            SubmitError::Full(_) => f.write_str("Full(..)"),
            SubmitError::Backend { source, .. } => f
                .debug_struct("Backend")
                .field("source", source)
                .finish_non_exhaustive(),
            SubmitError::ResultsUnavailable(_) => f.write_str("ResultsUnavailable(..)"),
        }
    }
}

/// [`Pool::spawn_all`](crate::Pool::spawn_all) did not accept every job of a batch:
/// how many it accepted (the first ones, in the batch's order), and the rest, back.
///
/// Why the rest was refused is the [`source`](std::error::Error::source), a
/// [`SubmitError`] that carries no job; it is also answered by
/// [`is_closed`](SpawnAllError::is_closed) and [`is_full`](SpawnAllError::is_full).
#[derive(thiserror::Error)]
#[error("the pool accepted {accepted} jobs of the batch and refused the rest")]
pub struct SpawnAllError<J> {
    accepted: usize,
    rest: Vec<J>,
    #[source]
    reason: SubmitError<()>,
}

impl<J> SpawnAllError<J> {
    pub(crate) fn new(accepted: usize, rest: Vec<J>, reason: SubmitError<()>) -> Self {
        SpawnAllError {
            accepted,
            rest,
            reason,
        }
    }

    /// How many jobs, from the front of the batch, were accepted: they run as if
    /// spawned one by one.
    pub fn accepted(&self) -> usize {
        self.accepted
    }

    /// The jobs not accepted, in the batch's order.
    pub fn rest(&self) -> &[J] {
        &self.rest
    }

    /// Returns the jobs not accepted, in the batch's order.
    pub fn into_inner(self) -> Vec<J> {
        self.rest
    }

    /// Why the rest was refused.
    pub fn reason(&self) -> &SubmitError<()> {
        &self.reason
    }

    /// Whether the pool no longer accepts jobs.
    pub fn is_closed(&self) -> bool {
        self.reason.is_closed()
    }

    /// Whether the queue was full (a batch spawned from inside one of the pool's own
    /// jobs, which does not wait for room).
    pub fn is_full(&self) -> bool {
        self.reason.is_full()
    }

    /// The backend's own error, if it refused the rest with one of type `E`.
    pub fn backend_error<E: StdError + 'static>(&self) -> Option<&E> {
        self.reason.backend_error()
    }
}

impl<J> fmt::Debug for SpawnAllError<J> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SpawnAllError")
            .field("accepted", &self.accepted)
            .field("rest", &self.rest.len())
            .field("reason", &self.reason)
            .finish()
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
    #[error("the pool no longer accepts jobs")]
    Closed(J),
}

impl<J> SubmitTimeoutError<J> {
    /// Returns the job that was not accepted.
    pub fn into_inner(self) -> J {
        match self {
            SubmitTimeoutError::Timeout(job) | SubmitTimeoutError::Closed(job) => job,
        }
    }

    /// Whether the pool no longer accepts jobs.
    pub fn is_closed(&self) -> bool {
        matches!(self, SubmitTimeoutError::Closed(_))
    }

    /// Whether the queue was full (it stayed full until the timeout).
    pub fn is_full(&self) -> bool {
        matches!(self, SubmitTimeoutError::Timeout(_))
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
    #[error("the queue could not create a consumer for a worker")]
    Queue(#[source] QueueError),
    /// A new worker thread could not be started.
    #[error("could not start a worker thread")]
    Thread(#[source] std::io::Error),
}
