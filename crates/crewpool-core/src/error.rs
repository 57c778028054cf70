//! Errors shared by every backend.
//!
//! Errors that refuse an item (a push, a spawn) always hand the item back, so a caller
//! never loses a job to an error: [`PushError::into_inner`], [`TryPushError::into_inner`],
//! [`SpawnError::into_inner`].

use std::error::Error as StdError;
use std::fmt;

/// A boxed error from a backend (a Redis connection error, a codec error).
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// A queue operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QueueError {
    /// The queue is closed.
    #[error("the queue is closed")]
    Closed,
    /// The backend failed (connection, protocol, encoding).
    #[error("queue backend error: {0}")]
    Backend(#[source] BoxError),
}

impl QueueError {
    /// Wraps a backend error.
    pub fn backend(error: impl Into<BoxError>) -> Self {
        QueueError::Backend(error.into())
    }
}

/// [`Queue::push`](crate::Queue::push) did not accept the item; the item comes back.
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum PushError<T> {
    /// The queue is closed and accepts nothing more.
    #[error("the queue is closed")]
    Closed(T),
    /// The backend failed before it accepted the item.
    #[error("the queue backend failed: {source}")]
    Backend {
        /// The item that was not accepted.
        item: T,
        /// Why.
        #[source]
        source: QueueError,
    },
}

impl<T> PushError<T> {
    /// Returns the item that was not accepted.
    pub fn into_inner(self) -> T {
        match self {
            PushError::Closed(item) | PushError::Backend { item, .. } => item,
        }
    }

    /// Replaces the item, keeping the reason.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> PushError<U> {
        match self {
            PushError::Closed(item) => PushError::Closed(f(item)),
            PushError::Backend { item, source } => PushError::Backend {
                item: f(item),
                source,
            },
        }
    }
}

impl<T> fmt::Debug for PushError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PushError::Closed(_) => f.write_str("Closed(..)"),
            PushError::Backend { source, .. } => f
                .debug_struct("Backend")
                .field("source", source)
                .finish_non_exhaustive(),
        }
    }
}

/// [`TryPush::try_push`](crate::TryPush::try_push) did not accept the item; the item comes back.
#[derive(thiserror::Error)]
pub enum TryPushError<T> {
    /// The queue is at capacity.
    #[error("the queue is full")]
    Full(T),
    /// The queue is closed and accepts nothing more.
    #[error("the queue is closed")]
    Closed(T),
}

impl<T> TryPushError<T> {
    /// Returns the item that was not accepted.
    pub fn into_inner(self) -> T {
        match self {
            TryPushError::Full(item) | TryPushError::Closed(item) => item,
        }
    }

    /// Replaces the item, keeping the reason.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> TryPushError<U> {
        match self {
            TryPushError::Full(item) => TryPushError::Full(f(item)),
            TryPushError::Closed(item) => TryPushError::Closed(f(item)),
        }
    }

    /// Whether the queue was full (as opposed to closed).
    pub fn is_full(&self) -> bool {
        matches!(self, TryPushError::Full(_))
    }
}

impl<T> fmt::Debug for TryPushError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryPushError::Full(_) => f.write_str("Full(..)"),
            TryPushError::Closed(_) => f.write_str("Closed(..)"),
        }
    }
}

/// [`JobContext::spawn`](crate::JobContext::spawn) did not accept a sub-job; the job comes back.
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum SpawnError<J> {
    /// The queue is at capacity (spawning never waits).
    #[error("the queue is full")]
    Full(J),
    /// The pool no longer accepts jobs.
    #[error("the queue is closed")]
    Closed(J),
    /// This context cannot spawn (it was not created by a pool).
    #[error("this job context cannot spawn sub-jobs")]
    Unsupported(J),
}

impl<J> SpawnError<J> {
    /// Returns the job that was not accepted.
    pub fn into_inner(self) -> J {
        match self {
            SpawnError::Full(job) | SpawnError::Closed(job) | SpawnError::Unsupported(job) => job,
        }
    }
}

impl<J> fmt::Debug for SpawnError<J> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpawnError::Full(_) => f.write_str("Full(..)"),
            SpawnError::Closed(_) => f.write_str("Closed(..)"),
            SpawnError::Unsupported(_) => f.write_str("Unsupported(..)"),
        }
    }
}

impl<J> From<TryPushError<J>> for SpawnError<J> {
    fn from(error: TryPushError<J>) -> Self {
        match error {
            TryPushError::Full(job) => SpawnError::Full(job),
            TryPushError::Closed(job) => SpawnError::Closed(job),
        }
    }
}
