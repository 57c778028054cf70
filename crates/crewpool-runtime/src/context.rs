//! What the runtime adds to a job's [`JobContext`]: cancellation.

use std::sync::Arc;

use crewpool_core::JobContext;
use tokio_util::sync::CancellationToken;

/// The cancellation tokens a running job can see, carried as its context's extension.
#[derive(Debug)]
pub(crate) struct JobTokens {
    /// Cancelled by the job's handle ([`JobHandle::cancel`](crate::JobHandle::cancel)).
    pub(crate) job: Option<CancellationToken>,
    /// The pool-wide token ([`PoolBuilder::cancellation_token`](crate::PoolBuilder::cancellation_token)).
    pub(crate) pool: CancellationToken,
}

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

fn tokens<J>(cx: &JobContext<J>) -> Option<Arc<JobTokens>>
where
    J: 'static,
{
    cx.extension()
        .and_then(|extension| Arc::clone(extension).downcast::<JobTokens>().ok())
}

impl<J: 'static> ContextExt for JobContext<J> {
    fn cancellation_token(&self) -> CancellationToken {
        tokens(self).map_or_else(CancellationToken::new, |tokens| tokens.pool.clone())
    }

    fn is_cancelled(&self) -> bool {
        tokens(self).is_some_and(|tokens| {
            tokens.pool.is_cancelled()
                || tokens
                    .job
                    .as_ref()
                    .is_some_and(CancellationToken::is_cancelled)
        })
    }

    fn cancelled(&self) -> impl Future<Output = ()> + Send {
        let tokens = tokens(self);
        async move {
            let Some(tokens) = tokens else {
                return std::future::pending().await;
            };
            match &tokens.job {
                Some(job) => {
                    crate::future::first_of(job.cancelled(), tokens.pool.cancelled()).await;
                }
                None => tokens.pool.cancelled().await,
            }
        }
    }
}
