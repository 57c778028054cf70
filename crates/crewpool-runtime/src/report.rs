//! What a shutdown tells its caller.

use std::fmt;

use crewpool_core::JobId;

use crate::Stats;

/// The account of a shutdown: what did not run, and the final statistics.
///
/// A graceful [`shutdown`](crate::Pool::shutdown) that completes has nothing returned
/// and nothing interrupted. After [`shutdown_timeout`](crate::Pool::shutdown_timeout)
/// hits its deadline, or after [`abort`](crate::Pool::abort), every accepted job is in
/// exactly one place: finished (counted in `stats`), `returned` (never started), or
/// `interrupted` (stopped while running). Durable queues keep unstarted and
/// interrupted jobs themselves, so for them `returned` stays empty.
#[non_exhaustive]
pub struct ShutdownReport<J> {
    /// Jobs accepted but never started, handed back to the caller. Their handles
    /// resolve to [`JobError::NotRun`](crate::JobError::NotRun).
    pub returned: Vec<J>,
    /// Jobs that were running when the pool stopped; their futures were dropped and
    /// their handles resolve to [`JobError::Interrupted`](crate::JobError::Interrupted).
    pub interrupted: Vec<JobId>,
    /// The pool's statistics once every worker had stopped.
    pub stats: Stats,
}

impl<J> ShutdownReport<J> {
    /// Whether every accepted job ran to its end.
    pub fn is_complete(&self) -> bool {
        self.returned.is_empty() && self.interrupted.is_empty()
    }
}

impl<J> fmt::Debug for ShutdownReport<J> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShutdownReport")
            .field("returned", &self.returned.len())
            .field("interrupted", &self.interrupted)
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
        )
    }
}
