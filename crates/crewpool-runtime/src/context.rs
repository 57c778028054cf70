//! What the runtime adds to a job's [`JobContext`]: cancellation, and the support
//! object through which a running job spawns sub-jobs.

use crewpool_core::{
    Consumer, ContextSupport, JobContext, JobId, Queue, Spawn, SpawnError, Worker,
};
use tokio_util::sync::CancellationToken;

use crate::shared::{PoolToken, Shared};
use crewpool_core::sync::Arc;

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

/// What running jobs reach through their `JobContext`: spawning sub-jobs onto their
/// worker's consumer, counted and numbered like submitted jobs.
pub(crate) struct Support<Q: Queue, W: Worker<Q::Job>> {
    shared: Arc<Shared<Q, W>>,
    spawner: Option<std::sync::Arc<dyn Spawn<Q::Job>>>,
    /// The pool-wide tokens, for jobs without a token of their own. One reference per
    /// worker, so no job touches a reference count shared with other workers.
    tokens: crewpool_core::Attachment,
}

impl<Q: Queue, W: Worker<Q::Job>> Support<Q, W> {
    pub(crate) fn new(shared: Arc<Shared<Q, W>>, consumer: &Q::Consumer) -> Self {
        let tokens = std::sync::Arc::clone(&shared.pool_token) as crewpool_core::Attachment;
        Support {
            spawner: consumer.spawner(),
            shared,
            tokens,
        }
    }
}

impl<Q, W> ContextSupport<Q::Job> for Support<Q, W>
where
    Q: Queue,
    W: Worker<Q::Job>,
{
    fn spawn(&self, job: Q::Job) -> Result<JobId, SpawnError<Q::Job>> {
        let Some(spawner) = &self.spawner else {
            return Err(SpawnError::Unsupported(job));
        };
        if self.shared.lifecycle.is_stopping() {
            return Err(SpawnError::Closed(job));
        }
        let id = self.shared.next_id();
        let envelope = self.shared.envelope(job, id);
        self.shared
            .counted_spawn(&**spawner, envelope)
            .map(|()| id)
            .map_err(|error| SpawnError::from(error.map(|envelope| envelope.job)))
    }

    fn extension(&self) -> Option<&crewpool_core::Attachment> {
        Some(&self.tokens)
    }
}
