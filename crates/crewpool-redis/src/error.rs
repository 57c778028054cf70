//! The errors of the Redis backend.

use crewpool_core::{JobId, QueueError};

/// What went wrong talking to Redis or handling a job.
///
/// Messages never contain the password of the URL: errors from the Redis client are
/// scrubbed before they are wrapped (see [`RedisUrl`](crate::RedisUrl)).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is invalid (a bad URL, a lease shorter than its heartbeat).
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The Redis server cannot run this backend (too old).
    #[error("unsupported Redis server: {0}")]
    Unsupported(String),
    /// A Redis command failed: connection refused or dropped, timeout, server error.
    #[error("redis: {message}")]
    Redis {
        /// The client's message, password removed.
        message: String,
        /// Whether the connection failed (as opposed to the server answering an error);
        /// such errors are retried with backoff by the background tasks.
        connection: bool,
    },
    /// Redis answered something this backend did not expect (a script of another
    /// version, a foreign key of the same name).
    #[error("unexpected reply from Redis: {0}")]
    Protocol(String),
    /// A job could not be encoded as JSON.
    #[error("could not encode the job: {0}")]
    Encode(#[source] serde_json::Error),
    /// The encoded envelope is larger than the configured maximum.
    #[error(
        "the encoded job is {size} bytes, over the limit of {max} bytes (raise it with \
         RedisConfig::max_payload)"
    )]
    PayloadTooLarge {
        /// The envelope's size in bytes.
        size: usize,
        /// The configured limit.
        max: usize,
    },
    /// This delivery no longer owns the job: its lease ran out and the job went back to
    /// the queue or to another worker, whose fencing token now guards it.
    #[error("the lease on job {0} was lost (it expired and the job was taken back)")]
    LeaseLost(JobId),
    /// The queue is closed in this process.
    #[error("the queue is closed")]
    Closed,
}

impl Error {
    /// Wraps a Redis client error, removing `url`'s password from its message.
    pub(crate) fn redis(error: &redis::RedisError, url: &crate::RedisUrl) -> Self {
        let connection = error.is_io_error()
            || error.is_connection_dropped()
            || error.is_connection_refusal()
            || error.is_timeout()
            || error.is_unrecoverable_error();
        Error::Redis {
            message: url.scrub(error.to_string()),
            connection,
        }
    }

    /// Whether retrying later may succeed (the connection failed, not the request).
    pub fn is_connection(&self) -> bool {
        matches!(
            self,
            Error::Redis {
                connection: true,
                ..
            }
        )
    }
}

impl From<Error> for QueueError {
    fn from(error: Error) -> Self {
        match error {
            Error::Closed => QueueError::Closed,
            other => QueueError::backend(other),
        }
    }
}

/// This crate's results.
pub type Result<T, E = Error> = std::result::Result<T, E>;
