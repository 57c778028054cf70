//! The command line's errors and the exit code each maps to.

/// Redis answered an error, or something unexpected.
pub(crate) const EXIT_FAILURE: u8 = 1;
/// Bad arguments, or a setting refused for safety.
pub(crate) const EXIT_USAGE: u8 = 2;
/// Redis could not be reached.
pub(crate) const EXIT_UNREACHABLE: u8 = 3;
/// An unknown queue, or ids that matched nothing.
pub(crate) const EXIT_NOT_FOUND: u8 = 4;

/// What went wrong; its message is printed after `crewpool: `.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CliError {
    /// Connecting to Redis failed.
    #[error("cannot reach Redis at {url}: {source}")]
    Unreachable {
        url: String,
        #[source]
        source: crewpool_redis::Error,
    },
    /// A Redis call failed.
    #[error("{0}")]
    Redis(#[from] crewpool_redis::Error),
    /// The arguments do not make sense.
    #[error("{0}")]
    Usage(String),
    /// Nothing matched.
    #[error("{0}")]
    NotFound(String),
    /// Writing the output or serving HTTP failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl CliError {
    pub(crate) fn exit_code(&self) -> u8 {
        match self {
            CliError::Unreachable { .. } => EXIT_UNREACHABLE,
            CliError::Redis(error) if error.is_connection() => EXIT_UNREACHABLE,
            CliError::Redis(crewpool_redis::Error::Config(_)) | CliError::Usage(_) => EXIT_USAGE,
            CliError::Redis(_) | CliError::Io(_) => EXIT_FAILURE,
            CliError::NotFound(_) => EXIT_NOT_FOUND,
        }
    }
}

pub(crate) type Result<T, E = CliError> = std::result::Result<T, E>;
