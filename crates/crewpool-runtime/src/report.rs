//! What a shutdown tells its caller.

use std::fmt;

use crewpool_core::JobId;

use crate::Stats;

/// The account of a shutdown: what did not run, and the final statistics.
///
/// A graceful [`shutdown`](crate::Pool::shutdown) that completes has nothing returned,
/// nothing interrupted and nothing still running. After
/// [`shutdown_timeout`](crate::Pool::shutdown_timeout) hits its deadline, or after
/// [`abort`](crate::Pool::abort), every accepted job is in exactly one place: finished
/// (counted in `stats`), `returned` (never started), `interrupted` (stopped while
/// running), or `still_running` (its worker is blocked inside it and cannot be
/// stopped; see [`still_running`](ShutdownReport::still_running)). Durable queues keep
/// unstarted and interrupted jobs themselves, so for them `returned` stays empty.
#[non_exhaustive]
pub struct ShutdownReport<J> {
    /// Jobs accepted but never started, handed back to the caller. Their handles
    /// resolve to [`JobError::NotRun`](crate::JobError::NotRun).
    pub returned: Vec<J>,
    /// Jobs that were running when the pool stopped; their futures were dropped and
    /// their handles resolve to [`JobError::Interrupted`](crate::JobError::Interrupted).
    pub interrupted: Vec<JobId>,
    /// Jobs still running when the report was made, whose workers were inside the
    /// job's own code when the pool stopped and had not come back: a blocking call or
    /// a long computation, typically on [`dedicated_threads`](crate::PoolBuilder::dedicated_threads).
    /// Code that does not return to its executor cannot be stopped from outside (no
    /// thread can be killed safely), so the pool does not wait for it: the job goes on
    /// on its thread until its code returns, and then ends as it would have (its handle
    /// gets the outcome: [`Interrupted`](crate::JobError::Interrupted) if it was
    /// awaiting something, else its result, counted in the statistics then), and the
    /// worker and its thread exit. Nothing waits for them: a process that exits ends
    /// them. (A job that ends while the report is being made may also be counted in
    /// `stats`.)
    pub still_running: Vec<JobId>,
    /// The pool's statistics once every worker had stopped (or, with jobs still
    /// running, when the report was made).
    pub stats: Stats,
}

impl<J> ShutdownReport<J> {
    /// Whether every accepted job ran to its end.
    pub fn is_complete(&self) -> bool {
        self.returned.is_empty() && self.interrupted.is_empty() && self.still_running.is_empty()
    }
}

impl<J> fmt::Debug for ShutdownReport<J> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShutdownReport")
            .field("returned", &self.returned.len())
            .field("interrupted", &self.interrupted)
            .field("still_running", &self.still_running)
            .field("stats", &self.stats)
            .finish()
    }
}

impl<J> fmt::Display for ShutdownReport<J> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}; returned {} unstarted, interrupted {}",
            self.stats,
            self.returned.len(),
            self.interrupted.len()
        )?;
        if !self.still_running.is_empty() {
            write!(f, ", still running {}", self.still_running.len())?;
        }
        Ok(())
    }
}
