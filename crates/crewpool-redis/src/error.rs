//! The errors of the Redis backend.
//!
//! Each error's `Display` describes its own level only; what caused it is its
//! [`source`](std::error::Error::source), so printing the chain (as `anyhow` does, or
//! this crate's logs) shows every part once.

use std::fmt;
use std::time::Duration;

use crewpool_core::{JobId, QueueError};

use crate::RedisUrl;

/// What went wrong talking to Redis or handling a job.
///
/// Messages never contain the password of the URL: errors from the Redis client are
/// scrubbed before they are wrapped (see [`RedisUrl`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is invalid (a bad URL, a lease shorter than its heartbeat).
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The Redis server cannot run this backend (too old).
    #[error("unsupported Redis server: {0}")]
    Unsupported(String),
    /// Connecting to Redis failed: the server is unreachable, refused the connection,
    /// did not answer in time, or refused the credentials. The source says which.
    #[error("could not connect to Redis at {url}")]
    Connect {
        /// Where (the password hidden).
        url: RedisUrl,
        /// What the client reported.
        #[source]
        source: ClientError,
    },
    /// A call to Redis failed: the connection dropped or timed out, or the server
    /// answered with an error. The source says which.
    #[error("Redis at {url}: {call} failed")]
    Redis {
        /// What this backend was doing (e.g. "fetching jobs").
        call: &'static str,
        /// Where (the password hidden).
        url: RedisUrl,
        /// What the client reported.
        #[source]
        source: ClientError,
    },
    /// Redis answered something this backend did not expect (a script of another
    /// version, a foreign key of the same name).
    #[error("unexpected reply from Redis: {0}")]
    Protocol(String),
    /// A job could not be encoded as JSON.
    #[error("could not encode the job as JSON")]
    Encode(#[source] serde_json::Error),
    /// The encoded envelope is larger than the configured maximum.
    #[error(
        "the encoded job is {size} bytes, over the limit of {max} bytes (raise it with \
         `RedisConfig::max_payload`)"
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
    /// The write was made on the master, but fewer replicas than
    /// [`Durability::Replicated`](crate::Durability::Replicated) asks for confirmed it
    /// in time: a failover now may lose it. Retrying an enqueue may enqueue the job
    /// twice.
    #[error(
        "written, but only {confirmed} of {wanted} replicas confirmed it within {waited_ms} ms"
    )]
    NotReplicated {
        /// Replicas that confirmed.
        confirmed: u32,
        /// Replicas asked for.
        wanted: u32,
        /// How long `WAIT` waited (ms).
        waited_ms: u64,
    },
    /// The queue was closed in this process ([`Queue::close`](crewpool_core::Queue::close),
    /// which a pool's shutdown does): it neither enqueues nor settles any more.
    #[error("the queue is closed")]
    Closed,
}

impl Error {
    /// Whether retrying later may succeed: the connection failed, dropped or timed out.
    /// Not when the server refused the credentials or answered the call with an error.
    pub fn is_connection(&self) -> bool {
        self.client_error().is_some_and(ClientError::is_connection)
    }

    /// Whether Redis did not answer in time (see [`ClientError::is_timeout`]).
    pub fn is_timeout(&self) -> bool {
        self.client_error().is_some_and(ClientError::is_timeout)
    }

    /// Whether the server refused the credentials or the ACL user's permissions.
    pub fn is_auth(&self) -> bool {
        self.client_error().is_some_and(ClientError::is_auth)
    }

    /// Whether the queue was closed in this process ([`Error::Closed`]).
    pub fn is_closed(&self) -> bool {
        matches!(self, Error::Closed)
    }

    fn client_error(&self) -> Option<&ClientError> {
        match self {
            Error::Connect { source, .. } | Error::Redis { source, .. } => Some(source),
            _ => None,
        }
    }

    /// A copy of a Redis failure, to answer several callers with it; `None` for the
    /// other kinds.
    pub(crate) fn duplicate(&self) -> Option<Error> {
        match self {
            Error::Connect { url, source } => Some(Error::Connect {
                url: url.clone(),
                source: source.clone(),
            }),
            Error::Redis { call, url, source } => Some(Error::Redis {
                call,
                url: url.clone(),
                source: source.clone(),
            }),
            Error::NotReplicated {
                confirmed,
                wanted,
                waited_ms,
            } => Some(Error::NotReplicated {
                confirmed: *confirmed,
                wanted: *wanted,
                waited_ms: *waited_ms,
            }),
            _ => None,
        }
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

/// What the Redis client reported about a failed connection or call, its password
/// removed: the source of [`Error::Connect`] and [`Error::Redis`].
#[derive(Debug, Clone)]
pub struct ClientError {
    message: String,
    kind: ClientErrorKind,
}

/// How a client error is classified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientErrorKind {
    /// Refused, dropped, unreachable: retrying later may succeed.
    Connection,
    /// No answer in time: retrying later may succeed.
    Timeout,
    /// The credentials or the ACL permissions were refused: retrying will not help.
    Auth,
    /// The server answered with an error, or something else went wrong.
    Other,
}

impl ClientError {
    /// Classifies and scrubs a Redis client error; `waited` is how long the call had
    /// been waiting, which a time-out's message states.
    pub(crate) fn new(error: &redis::RedisError, url: &RedisUrl, waited: Duration) -> Self {
        use redis::{ErrorKind, ServerErrorKind};
        let auth = matches!(
            error.kind(),
            ErrorKind::AuthenticationFailed | ErrorKind::Server(ServerErrorKind::NoPerm)
        ) || matches!(error.code(), Some("NOAUTH" | "WRONGPASS" | "NOPERM"));
        let kind = if auth {
            ClientErrorKind::Auth
        } else if error.is_timeout() {
            ClientErrorKind::Timeout
        } else if error.is_io_error()
            || error.is_connection_dropped()
            || error.is_connection_refusal()
            || error.is_unrecoverable_error()
        {
            ClientErrorKind::Connection
        } else {
            ClientErrorKind::Other
        };
        let message = match kind {
            ClientErrorKind::Timeout => format!("no reply within {}", seconds(waited)),
            _ => url.scrub(error.to_string()),
        };
        ClientError { message, kind }
    }

    /// A time-out this backend measured itself, described by `what`.
    pub(crate) fn timeout(what: String) -> Self {
        ClientError {
            message: what,
            kind: ClientErrorKind::Timeout,
        }
    }

    /// Whether retrying later may succeed: the connection was refused, dropped or
    /// could not be made, or no answer came in time.
    pub fn is_connection(&self) -> bool {
        matches!(
            self.kind,
            ClientErrorKind::Connection | ClientErrorKind::Timeout
        )
    }

    /// Whether no answer came in time ([`RedisConfig::connect_timeout`] for opening a
    /// connection, [`RedisConfig::response_timeout`] for a call).
    ///
    /// [`RedisConfig::connect_timeout`]: crate::RedisConfig::connect_timeout
    /// [`RedisConfig::response_timeout`]: crate::RedisConfig::response_timeout
    pub fn is_timeout(&self) -> bool {
        self.kind == ClientErrorKind::Timeout
    }

    /// Whether the server refused the credentials (a wrong user name or password) or
    /// the ACL user's permissions: retrying will not help.
    pub fn is_auth(&self) -> bool {
        self.kind == ClientErrorKind::Auth
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ClientError {}

/// Displays an error and its sources, `: `-separated, for logs.
pub(crate) struct Chain<'a>(pub(crate) &'a dyn std::error::Error);

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(error) = source {
            write!(f, ": {error}")?;
            source = error.source();
        }
        Ok(())
    }
}

/// `1.5s`-style durations for messages.
pub(crate) fn seconds(duration: Duration) -> String {
    format!("{:.1}s", duration.as_secs_f64())
}

/// This crate's results.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    /// Every level of a chain says something the others do not.
    #[test]
    fn a_chain_says_each_thing_once() {
        let url = RedisUrl::new("redis://u:secret@10.0.0.5:6379/0");
        let io =
            redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        let error = Error::Connect {
            url: url.clone(),
            source: ClientError::new(&io, &url, Duration::ZERO),
        };
        let top = error.to_string();
        let cause = error.source().map(ToString::to_string).unwrap_or_default();
        assert_eq!(
            top,
            "could not connect to Redis at redis://u:***@10.0.0.5:6379/0"
        );
        assert!(!cause.is_empty() && !top.contains(&cause) && !cause.contains(&top));
        assert!(error.is_connection() && !error.is_auth());

        let json = serde_json::from_str::<u8>("x").unwrap_err();
        let error = Error::Encode(json);
        let cause = error.source().map(ToString::to_string).unwrap_or_default();
        assert!(!error.to_string().contains(&cause), "{error}");

        let too_large = Error::PayloadTooLarge { size: 10, max: 5 };
        assert!(too_large.to_string().contains("RedisConfig::max_payload"));
        assert!(too_large.source().is_none());
    }

    #[test]
    fn refused_credentials_are_not_worth_retrying() {
        let url = RedisUrl::new("redis://127.0.0.1:1");
        let refused = redis::RedisError::from((
            redis::ErrorKind::AuthenticationFailed,
            "Password authentication failed",
        ));
        let client = ClientError::new(&refused, &url, Duration::ZERO);
        assert!(client.is_auth());
        assert!(!client.is_connection());

        let timed_out = redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::TimedOut));
        let client = ClientError::new(&timed_out, &url, Duration::from_millis(2000));
        assert!(client.is_timeout() && client.is_connection());
        assert_eq!(client.to_string(), "no reply within 2.0s");
    }
}
