//! What the runtime adds to a job's [`JobContext`]: cancellation.

use crewpool_core::JobContext;
use tokio_util::sync::CancellationToken;

/// The pool-wide token ([`PoolBuilder::cancellation_token`](crate::PoolBuilder::cancellation_token)),
/// carried by each worker's support object for every job it runs. A job with a handle
/// also carries its own token ([`JobHandle::cancel`](crate::JobHandle::cancel)) as its
/// context's extension: the attachment the handle put on the job's reply.
#[derive(Debug)]
pub(crate) struct PoolToken(pub(crate) CancellationToken);

/// Cancellation, for jobs: read through the [`JobContext`] a worker receives (see
/// [`with_context`](crewpool_core::with_context)).
///
/// Two things can ask a job to stop: its own handle
/// ([`JobHandle::cancel`](crate::JobHandle::cancel)), and the pool-wide
/// [`CancellationToken`] (yours, if you passed one to
/// [`PoolBuilder::cancellation_token`](crate::PoolBuilder::cancellation_token)). A
/// handle's cancel also drops the job's future at its next await; the pool-wide token
/// is cooperative: jobs that care check it or await it.
///
/// # Examples
///
/// ```
/// use crewpool_core::{JobContext, with_context};
/// use crewpool_runtime::ContextExt;
///
/// let worker = with_context(|pages: u32, cx: JobContext<u32>| async move {
///     let mut done = 0;
///     for _ in 0..pages {
///         if cx.is_cancelled() {
///             return Err(format!("stopped after {done} pages"));
///         }
///         done += 1; // one page of work
///     }
///     Ok(done)
/// });
/// # let _ = worker;
/// ```
pub trait ContextExt {
    /// The pool-wide cancellation token (a clone), or a fresh never-cancelled one for a
    /// context that did not come from a pool.
    fn cancellation_token(&self) -> CancellationToken;

    /// Whether this job, or the whole pool, was asked to stop.
    fn is_cancelled(&self) -> bool;

    /// Completes when this job, or the whole pool, is asked to stop.
    fn cancelled(&self) -> impl Future<Output = ()> + Send;
}

/// The job's own token, if it was submitted with a handle.
fn job_token<J: 'static>(cx: &JobContext<J>) -> Option<&CancellationToken> {
    // Without one, `extension` falls back to the support's `PoolToken`: not a token.
    cx.extension()?.downcast_ref::<CancellationToken>()
}

/// The pool-wide token, for a context that came from a pool.
fn pool_token<J: 'static>(cx: &JobContext<J>) -> Option<&CancellationToken> {
    let PoolToken(token) = cx.support()?.extension()?.downcast_ref::<PoolToken>()?;
    Some(token)
}

impl<J: 'static> ContextExt for JobContext<J> {
    fn cancellation_token(&self) -> CancellationToken {
        pool_token(self).map_or_else(CancellationToken::new, CancellationToken::clone)
    }

    fn is_cancelled(&self) -> bool {
        pool_token(self).is_some_and(CancellationToken::is_cancelled)
            || job_token(self).is_some_and(CancellationToken::is_cancelled)
    }

    fn cancelled(&self) -> impl Future<Output = ()> + Send {
        let (job, pool) = (job_token(self).cloned(), pool_token(self).cloned());
        async move {
            match (job, pool) {
                (Some(job), Some(pool)) => {
                    crate::future::first_of(job.cancelled(), pool.cancelled()).await;
                }
                (Some(token), None) | (None, Some(token)) => token.cancelled().await,
                (None, None) => std::future::pending().await,
            }
        }
    }
}
