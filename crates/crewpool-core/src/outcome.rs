//! What a job came to, as whoever waits for it sees it: shared by the runtime's
//! handles and result streams and by durable backends that carry results back to
//! their producers.

use crate::JobId;

/// Why a job produced no output.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JobError<E> {
    /// The worker returned `Err`.
    #[error("job failed: {0}")]
    Failed(E),
    /// The job panicked; the message is the panic's, when it was a string.
    #[error("job panicked: {0}")]
    Panicked(String),
    /// The job was running when the pool was aborted, a shutdown deadline passed, or
    /// the tokio runtime its worker ran on was dropped, and was stopped (its future
    /// dropped).
    #[error("job was interrupted by shutdown")]
    Interrupted,
    /// The job ran past the pool's per-job timeout (on its last attempt) and was
    /// stopped.
    #[error("job timed out")]
    TimedOut,
    /// The job was cancelled through its handle, before or while it ran.
    #[error("job was cancelled")]
    Cancelled,
    /// The job never ran: it was handed back by a shutdown (see the
    /// runtime's `ShutdownReport::returned`), or the pool's
    /// runtime went away with it still queued. (A job that was running when its
    /// runtime went away is [`Interrupted`](JobError::Interrupted).)
    #[error("job did not run")]
    NotRun,
}

impl<E> JobError<E> {
    /// The worker's error, if the job failed with one.
    pub fn into_failure(self) -> Option<E> {
        match self {
            JobError::Failed(error) => Some(error),
            _ => None,
        }
    }
}

/// What a job came to.
pub type Outcome<T, E> = Result<T, JobError<E>>;

/// One job's result, as a pool's results stream yields it (and a Redis
/// queue's result stream).
#[derive(Debug)]
pub struct JobResult<T, E> {
    /// Which job.
    pub id: JobId,
    /// What it came to.
    pub outcome: Outcome<T, E>,
}
