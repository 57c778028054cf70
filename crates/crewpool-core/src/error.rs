//! Errors shared by every backend.
//!
//! Errors that refuse an item (a push, a spawn) always hand the item back, so a caller
//! never loses a job to an error: [`PushError::into_inner`], [`TryPushError::into_inner`],
//! [`SpawnError::into_inner`].
//!
//! # Conventions
//!
//! Every error of crewpool follows these, so a chain printed cause by cause (the way
//! `anyhow` or a logger does) says each thing once:
//!
//! - `Display` describes this level only; an underlying error is reachable through
//!   [`source`](std::error::Error::source), never repeated in the message.
//! - Errors that refuse a job answer [`is_closed`](PushError::is_closed) and
//!   [`is_full`](PushError::is_full), and hand the job back with `into_inner`.
//! - A backend's own error is one typed call away: [`PushError::backend_error`],
//!   [`QueueError::backend_error`].
//! - Every public error enum is `#[non_exhaustive]`.

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
    /// The backend failed (connection, protocol, encoding); the cause is the
    /// error's [`source`](std::error::Error::source).
    #[error("the queue backend failed")]
    Backend(#[source] BoxError),
}

impl QueueError {
    /// Wraps a backend error.
    pub fn backend(error: impl Into<BoxError>) -> Self {
        QueueError::Backend(error.into())
    }

    /// Whether the queue was closed (as opposed to failing).
    pub fn is_closed(&self) -> bool {
        matches!(self, QueueError::Closed)
    }

    /// The backend's own error, if it failed with one of type `E`.
    pub fn backend_error<E: StdError + 'static>(&self) -> Option<&E> {
        match self {
            QueueError::Backend(error) => error.downcast_ref::<E>(),
            QueueError::Closed => None,
        }
    }
}

/// [`Queue::push`](crate::Queue::push) did not accept the item; the item comes back.
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum PushError<T> {
    /// The queue is closed and accepts nothing more.
    #[error("the queue is closed")]
    Closed(T),
    /// The backend failed before it accepted the item (a durable queue could not
    /// store it, or refused it); the backend's error is the
    /// [`source`](std::error::Error::source), and [`backend_error`](PushError::backend_error)
    /// returns it typed.
    #[error("the queue backend did not accept the job")]
    Backend {
        /// The item that was not accepted.
        item: T,
        /// Why: the backend's error.
        #[source]
        source: BoxError,
    },
}

impl<T> PushError<T> {
    /// Returns the item that was not accepted.
    pub fn into_inner(self) -> T {
        match self {
            PushError::Closed(item) | PushError::Backend { item, .. } => item,
        }
    }

    /// Whether the queue was closed.
    pub fn is_closed(&self) -> bool {
        matches!(self, PushError::Closed(_))
    }

    /// Whether the queue was full: never, for a push (it waits for room); here so
    /// every error that refuses a job answers the same questions.
    pub fn is_full(&self) -> bool {
        false
    }

    /// The backend's own error, if it refused the item with one of type `E`: a
    /// payload over a durable queue's size limit, say.
    ///
    /// ```
    /// use crewpool_core::PushError;
    ///
    /// let refused = PushError::Backend { item: 7, source: "disk full".into() };
    /// assert!(refused.backend_error::<std::io::Error>().is_none());
    /// assert_eq!(refused.into_inner(), 7);
    /// ```
    pub fn backend_error<E: StdError + 'static>(&self) -> Option<&E> {
        match self {
            PushError::Backend { source, .. } => source.downcast_ref::<E>(),
            PushError::Closed(_) => None,
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
#[non_exhaustive]
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

    /// Whether the queue was closed.
    pub fn is_closed(&self) -> bool {
        matches!(self, TryPushError::Closed(_))
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

    /// Whether the queue was full.
    pub fn is_full(&self) -> bool {
        matches!(self, SpawnError::Full(_))
    }

    /// Whether the pool no longer accepts jobs.
    pub fn is_closed(&self) -> bool {
        matches!(self, SpawnError::Closed(_))
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
