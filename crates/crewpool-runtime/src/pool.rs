//! The pool handle: submit jobs, watch statistics, shut down.

use std::fmt;
use std::time::Duration;

use crewpool_core::{JobId, Queue, TryPush, Worker};

use crate::Stats;
use crate::error::{ResizeError, SubmitError, SubmitTimeoutError, TrySubmitError};
use crate::handle::{JobHandle, Results};
use crate::loom::{Arc, Mutex, lock};
use crate::report::ShutdownReport;
use crate::shared::{Shared, is_durable};

/// A fixed crew of workers running jobs from a queue.
///
/// Build one with [`PoolBuilder`](crate::PoolBuilder). Methods take `&self`; share a pool between tasks
/// with an `Arc`.
///
/// # Shutdown
///
/// - [`shutdown`](Pool::shutdown) stops accepting jobs and waits until every accepted
///   job has run.
/// - [`shutdown_timeout`](Pool::shutdown_timeout) does the same until a deadline, then
///   stops: jobs that have not started come back in the report, running ones are
///   interrupted and listed.
/// - [`abort`](Pool::abort) stops at once, with the same report.
///
/// Submitting after shutdown began fails and hands the job back. No accepted job is
/// lost silently: it finishes, comes back in a [`ShutdownReport`], or is listed as
/// interrupted.
///
/// # Dropping
///
/// Dropping a pool without shutting it down closes its queue and returns at once; the
/// workers finish the jobs already accepted in the background, then exit. Nothing waits
/// for them, so jobs still queued when the program (or, for tokio workers, the
/// runtime) exits are lost: call [`shutdown`](Pool::shutdown) to wait.
pub struct Pool<Q: Queue, W: Worker<Q::Job>> {
    shared: Arc<Shared<Q, W>>,
    results: Mutex<Option<Results<W::Output, W::Error>>>,
}

impl<Q: Queue, W: Worker<Q::Job>> Pool<Q, W> {
    pub(crate) fn new(
        shared: Arc<Shared<Q, W>>,
        results: Option<Results<W::Output, W::Error>>,
    ) -> Self {
        Pool {
            shared,
            results: Mutex::new(results),
        }
    }

    /// Submits a job, waiting while a bounded queue is full; returns a handle to await
    /// its result.
    ///
    /// On a durable queue the job runs in whichever process takes it, so the handle
    /// resolves to [`JobError::Unavailable`](crate::JobError::Unavailable) (its
    /// [`id`](JobHandle::id) is the one the backend assigned); prefer
    /// [`spawn`](Pool::spawn) there.
    ///
    /// # Errors
    ///
    /// [`SubmitError::Closed`] once shutdown has begun; [`SubmitError::Backend`] when a
    /// durable queue cannot store the job. The job comes back either way.
    ///
    /// # Cancel safety
    ///
    /// If the future is dropped before it completes, the job was not accepted and is
    /// dropped with it. Use [`submit_timeout`](Pool::submit_timeout) to bound the wait
    /// and keep the job.
    pub async fn submit(
        &self,
        job: Q::Job,
    ) -> Result<JobHandle<W::Output, W::Error>, SubmitError<Q::Job>> {
        let id = self.shared.next_id();
        if is_durable::<Q>() {
            let id = self.shared.push(self.shared.envelope(job, id)).await?;
            return Ok(JobHandle::unavailable(id));
        }
        let (reply, handle) = JobHandle::new(id);
        self.shared
            .push(self.shared.envelope(job, id).with_reply(reply))
            .await?;
        Ok(handle)
    }

    /// Submits a job without a handle (fire and forget), waiting while a bounded queue
    /// is full. Its result goes to the [`Results`] stream, if the pool has one.
    ///
    /// Returns the job's id, the one its worker sees in
    /// [`JobContext::id`](crewpool_core::JobContext::id): the pool's own number on an
    /// in-memory queue, the one the backend assigned on a durable queue.
    ///
    /// # Errors
    ///
    /// As for [`submit`](Pool::submit).
    ///
    /// # Cancel safety
    ///
    /// As for [`submit`](Pool::submit).
    pub async fn spawn(&self, job: Q::Job) -> Result<JobId, SubmitError<Q::Job>> {
        let id = self.shared.next_id();
        let id = self.shared.push(self.shared.envelope(job, id)).await?;
        Ok(id)
    }

    /// Takes the pool-wide results stream, once. `None` if the pool was built without
    /// [`PoolBuilder::results`](crate::PoolBuilder::results) or the stream was already taken.
    pub fn take_results(&self) -> Option<Results<W::Output, W::Error>> {
        lock(&self.results).take()
    }

    /// A snapshot of the pool's state and counters.
    pub fn stats(&self) -> Stats {
        self.shared.stats()
    }

    /// The pool's name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// The queue the pool runs on.
    pub fn queue(&self) -> &Q {
        &self.shared.queue
    }

    /// Whether the pool still accepts jobs.
    pub fn is_open(&self) -> bool {
        self.shared.lifecycle.is_open()
    }

    /// The number of workers asked for (at build, or by the last
    /// [`resize`](Pool::resize)). [`Stats::workers`] counts those actually running.
    pub fn workers(&self) -> usize {
        self.shared.target()
    }

    /// Changes the number of workers while the pool runs, like ants' `Tune` or pond's
    /// `Resize`. Growing starts new workers at once. Shrinking asks workers to leave
    /// after their current job: running jobs finish, nothing queued is lost (a leaving
    /// worker's local jobs go back to the queue).
    ///
    /// # Errors
    ///
    /// [`ResizeError::ZeroWorkers`] for 0; [`ResizeError::Closed`] once shutdown has
    /// begun; [`ResizeError::Queue`] or [`ResizeError::Thread`] when a new worker
    /// cannot start (the workers started before it keep running).
    pub fn resize(&self, workers: usize) -> Result<(), ResizeError> {
        Shared::resize(&self.shared, workers)
    }

    /// The pool-wide cancellation token every job sees through
    /// [`ContextExt`](crate::ContextExt). Cancelling it asks running jobs to stop
    /// cooperatively; it does not stop the pool (see [`abort`](Pool::abort)).
    pub fn cancellation_token(&self) -> tokio_util::sync::CancellationToken {
        self.shared.pool_token.0.clone()
    }

    /// Stops accepting jobs and waits until every accepted job has run and every
    /// worker has stopped.
    ///
    /// Calling it again, or concurrently, waits for the same end; the first call to
    /// finish gets whatever the report holds.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future does not undo the shutdown: the queue stays closed and the
    /// workers drain it in the background. Call it again to wait.
    pub async fn shutdown(&self) -> ShutdownReport<Q::Job> {
        self.shared.shutdown().await
    }

    /// Like [`shutdown`](Pool::shutdown), but waits at most `grace`; then stops: jobs
    /// not yet started come back in the report, running jobs are interrupted (their
    /// futures dropped) and listed.
    ///
    /// # Cancel safety
    ///
    /// As for [`shutdown`](Pool::shutdown).
    pub async fn shutdown_timeout(&self, grace: Duration) -> ShutdownReport<Q::Job> {
        self.shared.begin_drain();
        let drained = tokio::time::timeout(grace, self.shared.lifecycle.live.wait()).await;
        if drained.is_err() {
            self.shared.begin_stop();
            self.shared.lifecycle.live.wait().await;
        }
        self.shared.finish().await
    }

    /// Stops now: nothing new starts, running jobs are interrupted, queued jobs come
    /// back in the report.
    ///
    /// # Cancel safety
    ///
    /// As for [`shutdown`](Pool::shutdown).
    pub async fn abort(&self) -> ShutdownReport<Q::Job> {
        self.shared.begin_stop();
        self.shared.lifecycle.live.wait().await;
        self.shared.finish().await
    }
}

impl<Q: TryPush, W: Worker<Q::Job>> Pool<Q, W> {
    /// Submits a job if the queue has room right now; returns a handle to await its
    /// result.
    ///
    /// # Errors
    ///
    /// [`TrySubmitError::Full`] when a bounded queue is full, [`TrySubmitError::Closed`]
    /// once shutdown has begun. The job comes back either way.
    pub fn try_submit(
        &self,
        job: Q::Job,
    ) -> Result<JobHandle<W::Output, W::Error>, TrySubmitError<Q::Job>> {
        let id = self.shared.next_id();
        let (reply, handle) = JobHandle::new(id);
        self.shared
            .try_push(self.shared.envelope(job, id).with_reply(reply))
            .map_err(|error| error.map(|envelope| envelope.job))?;
        Ok(handle)
    }

    /// Submits a job without a handle if the queue has room right now.
    ///
    /// # Errors
    ///
    /// As for [`try_submit`](Pool::try_submit).
    pub fn try_spawn(&self, job: Q::Job) -> Result<JobId, TrySubmitError<Q::Job>> {
        let id = self.shared.next_id();
        self.shared
            .try_push(self.shared.envelope(job, id))
            .map_err(|error| error.map(|envelope| envelope.job))?;
        Ok(id)
    }

    /// Submits a job, waiting at most `timeout` for room; returns a handle to await its
    /// result.
    ///
    /// # Errors
    ///
    /// [`SubmitTimeoutError::Timeout`] when the queue stayed full,
    /// [`SubmitTimeoutError::Closed`] once shutdown has begun. The job comes back
    /// either way.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: dropping the future drops the job.
    pub async fn submit_timeout(
        &self,
        job: Q::Job,
        timeout: Duration,
    ) -> Result<JobHandle<W::Output, W::Error>, SubmitTimeoutError<Q::Job>> {
        let deadline = tokio::time::Instant::now() + timeout;
        let id = self.shared.next_id();
        let (reply, handle) = JobHandle::new(id);
        let mut envelope = self.shared.envelope(job, id).with_reply(reply);
        loop {
            match self.shared.try_push(envelope) {
                Ok(()) => return Ok(handle),
                Err(TrySubmitError::Closed(envelope)) => {
                    return Err(SubmitTimeoutError::Closed(envelope.job));
                }
                Err(TrySubmitError::Full(back)) => envelope = back,
            }
            let room = self.shared.queue.ready();
            if tokio::time::timeout_at(deadline, room).await.is_err() {
                return Err(SubmitTimeoutError::Timeout(envelope.job));
            }
        }
    }
}

impl<Q: Queue, W: Worker<Q::Job>> Drop for Pool<Q, W> {
    fn drop(&mut self) {
        // Close the queue; the workers drain it and exit on their own. See "Dropping".
        self.shared.begin_drain();
    }
}

impl<Q: Queue, W: Worker<Q::Job>> fmt::Debug for Pool<Q, W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("name", &self.shared.name)
            .field("stats", &self.stats())
            .finish()
    }
}
