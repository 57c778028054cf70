//! The pool handle: submit jobs, watch statistics, shut down.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use crewpool_core::{JobId, Queue, Replies, TryPush, Worker};
use tokio_util::sync::CancellationToken;

use crate::Stats;
use crate::error::{ResizeError, SpawnAllError, SubmitError, SubmitTimeoutError, TrySubmitError};
use crate::handle::{JobHandle, Results};
use crate::report::ShutdownReport;
use crate::shared::Shared;
use crewpool_core::sync::{Arc, Mutex, lock};

/// A fixed crew of workers running jobs from a queue.
///
/// Build one with [`PoolBuilder`](crate::PoolBuilder). A `Pool` is a cheap handle:
/// clone it to share the pool between tasks (every clone is the same pool), or turn it
/// into an [`AnyPool`] to keep it without naming its queue and worker types.
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
/// lost silently: it finishes, comes back in a [`ShutdownReport`], is listed as
/// interrupted, or, if its worker is blocked inside it, as still running.
///
/// **Blocking jobs.** A job blocked inside its own code (a blocking call or a long
/// computation that never returns to its executor, typically on
/// [`dedicated_threads`](crate::PoolBuilder::dedicated_threads)) cannot be stopped from
/// outside: no thread can be killed safely. `shutdown_timeout` and `abort` do not wait
/// for it: they return on time and list it in
/// [`ShutdownReport::still_running`]. Its thread goes on until the job's code returns;
/// then the job ends as interrupted (its outcome is discarded) and the worker exits.
/// A process that exits ends such threads with it.
///
/// # Submitting from inside a job
///
/// A job may add work to its own pool. The way meant for it is
/// [`JobContext::spawn`](crewpool_core::JobContext::spawn): it never waits, and puts
/// the sub-job where the job's own worker, or an idle one, picks it up first. A job
/// that holds a clone of its pool may also call [`submit`](Pool::submit) or
/// [`spawn`](Pool::spawn) on it: called from inside one of the pool's own jobs (polled
/// by the job itself, not by a task it started), they **never wait for room**. Room in
/// a full queue is made only by the pool's workers, and this one is busy running the
/// job that waits: were every worker to do that, the pool would stop for good. So such
/// a submit is accepted if there is room now, and otherwise fails at once with
/// [`SubmitError::Full`], handing the job back. (A worker that holds a clone of its
/// own pool keeps the pool open after every other clone is dropped: shut it down
/// explicitly.)
///
/// # Dropping
///
/// Dropping the last clone of a pool (and of the [`AnyPool`]s made from it) without
/// shutting it down closes its queue and returns at once; the workers finish the jobs
/// already accepted in the background, then exit. Nothing waits for them, so jobs
/// still queued when the program (or, for tokio workers, the runtime) exits are lost:
/// call [`shutdown`](Pool::shutdown) to wait. Jobs running when their tokio runtime is
/// dropped end as [`Interrupted`](crate::JobError::Interrupted).
pub struct Pool<Q: Queue, W: Worker<Q::Job>> {
    inner: std::sync::Arc<Handle<Q, W>>,
}

/// What the clones of one pool share; dropping the last one closes the queue.
struct Handle<Q: Queue, W: Worker<Q::Job>> {
    shared: Arc<Shared<Q, W>>,
    results: Mutex<Option<Results<W::Output, W::Error>>>,
}

impl<Q: Queue, W: Worker<Q::Job>> Clone for Pool<Q, W> {
    fn clone(&self) -> Self {
        Pool {
            inner: std::sync::Arc::clone(&self.inner),
        }
    }
}

impl<Q: Queue, W: Worker<Q::Job>> Pool<Q, W> {
    pub(crate) fn new(
        shared: Arc<Shared<Q, W>>,
        results: Option<Results<W::Output, W::Error>>,
    ) -> Self {
        Pool {
            inner: std::sync::Arc::new(Handle {
                shared,
                results: Mutex::new(results),
            }),
        }
    }

    fn shared(&self) -> &Shared<Q, W> {
        &self.inner.shared
    }

    /// Submits a job without a handle (fire and forget), waiting while a bounded queue
    /// is full. Its result goes to the [`Results`] stream, if the pool has one.
    ///
    /// Returns the job's id, the one its worker sees in
    /// [`JobContext::id`](crewpool_core::JobContext::id): the pool's own number on an
    /// in-memory queue, the one the backend assigned on a durable queue. On a durable
    /// queue the job runs in whichever process takes it.
    ///
    /// # Errors
    ///
    /// [`SubmitError::Closed`] once shutdown has begun; [`SubmitError::Backend`] when a
    /// durable queue cannot store the job; [`SubmitError::Full`] when called from
    /// inside one of the pool's own jobs and the queue is full (see "Submitting from
    /// inside a job"). The job comes back each time.
    ///
    /// # Cancel safety
    ///
    /// On an in-memory queue, if the future is dropped before it completes, the job
    /// was not accepted (and is not counted) and is dropped with it. Use
    /// [`submit_timeout`](Pool::submit_timeout) to bound the wait and keep the job. On
    /// a durable queue the job may have been stored before the drop.
    pub async fn spawn(&self, job: Q::Job) -> Result<JobId, SubmitError<Q::Job>> {
        let shared = self.shared();
        let id = shared.next_id();
        shared.submit(shared.envelope(job, id)).await
    }

    /// Submits many jobs without handles, in order, waiting while a bounded queue is
    /// full; returns how many were accepted: all of them.
    ///
    /// Each job runs as if [`spawn`](Pool::spawn)ed on its own, in the batch's order
    /// of acceptance, and its result goes to the [`Results`] stream, if the pool has
    /// one. What a batch saves is the producer's share of the work per job: on the
    /// deque backend, one reservation of room for as many jobs as fit, one block of
    /// ids, one update of the counts and one check for sleeping workers (waking as many
    /// as there are jobs for) per batch instead of per job. On other queues the jobs
    /// are pushed one by one (the default of
    /// [`Queue::push_batch`](crewpool_core::Queue::push_batch)), with the same result.
    ///
    /// A batch larger than the free room is accepted as room comes: the jobs that fit
    /// go at once, and the rest wait (the future is pending, nothing spins) until
    /// workers take jobs. The bound is never exceeded. On an in-memory queue the jobs
    /// are numbered consecutively; their ids are not returned (a `Vec` of them would
    /// cost an allocation per batch), and each job's worker sees its own in
    /// [`JobContext::id`](crewpool_core::JobContext::id). While the batch waits for
    /// room, [`Stats::submitted`] counts the whole batch; what was not accepted is taken
    /// back when the call returns or its future is dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// use crewpool_flume::FlumeQueue;
    /// use crewpool_runtime::PoolBuilder;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let pool = PoolBuilder::new()
    ///     .workers(2)
    ///     .queue(FlumeQueue::bounded(64))
    ///     .build(|n: u64| async move { Ok::<_, std::convert::Infallible>(n * n) })?;
    /// // 1,000 jobs through a queue of 64: the batch waits for room as it goes.
    /// assert_eq!(pool.spawn_all(0..1_000).await?, 1_000);
    /// let report = pool.shutdown().await;
    /// assert_eq!(report.stats.completed, 1_000);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`SpawnAllError`] when not every job was accepted: the pool began shutting down
    /// (before or during the batch), a durable queue could not store a job, or the
    /// batch was spawned from inside one of the pool's own jobs and the queue filled up
    /// (see "Submitting from inside a job"). It says how many jobs, from the front,
    /// were accepted, and hands back the rest, in order.
    ///
    /// # Cancel safety
    ///
    /// If the future is dropped before it completes, the jobs accepted so far (the
    /// first ones) stay accepted and run; the rest are dropped with it, not counted.
    /// On the deque backend no job is lost between the two: a job leaves the batch only
    /// in the poll that accepts it. On a queue that pushes one by one, the job whose
    /// push was waiting for room is dropped with the rest. To keep the rest, don't
    /// drop the future: wait for its error, which hands them back.
    pub async fn spawn_all<I>(&self, jobs: I) -> Result<usize, SpawnAllError<Q::Job>>
    where
        I: IntoIterator<Item = Q::Job>,
    {
        let shared = self.shared();
        shared.submit_batch(shared.batch(jobs.into_iter())).await
    }

    /// Takes the pool-wide results stream, once. `None` if the pool was built without
    /// [`PoolBuilder::results`](crate::PoolBuilder::results) or the stream was already taken.
    pub fn take_results(&self) -> Option<Results<W::Output, W::Error>> {
        lock(&self.inner.results).take()
    }

    /// A snapshot of the pool's state and counters.
    pub fn stats(&self) -> Stats {
        self.shared().stats()
    }

    /// The pool's name.
    pub fn name(&self) -> &str {
        &self.shared().name
    }

    /// The queue the pool runs on.
    pub fn queue(&self) -> &Q {
        &self.shared().queue
    }

    /// Whether the pool still accepts jobs.
    pub fn is_open(&self) -> bool {
        self.shared().lifecycle.is_open()
    }

    /// The number of workers asked for (at build, or by the last
    /// [`resize`](Pool::resize)). [`Stats::workers`] counts those actually running.
    pub fn workers(&self) -> usize {
        self.shared().target()
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
        Shared::resize(&self.inner.shared, workers)
    }

    /// The pool-wide cancellation token every job sees through
    /// [`ContextExt`](crate::ContextExt). Cancelling it asks running jobs to stop
    /// cooperatively; it does not stop the pool (see [`abort`](Pool::abort)).
    pub fn cancellation_token(&self) -> CancellationToken {
        self.shared().pool_token.0.clone()
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
        self.shared().shutdown().await
    }

    /// Like [`shutdown`](Pool::shutdown), but waits at most `grace`; then stops: jobs
    /// not yet started come back in the report, running jobs are interrupted (their
    /// futures dropped) and listed, and jobs whose workers are blocked inside them are
    /// listed as still running and not waited for (see "Blocking jobs" above).
    ///
    /// # Cancel safety
    ///
    /// As for [`shutdown`](Pool::shutdown).
    pub async fn shutdown_timeout(&self, grace: Duration) -> ShutdownReport<Q::Job> {
        let shared = self.shared();
        shared.begin_drain();
        let drained = tokio::time::timeout(grace, shared.lifecycle.live.wait()).await;
        if drained.is_err() {
            return shared.stop().await;
        }
        shared.finish().await
    }

    /// Stops now: nothing new starts, running jobs are interrupted, queued jobs come
    /// back in the report, and jobs whose workers are blocked inside them are listed as
    /// still running and not waited for (see "Blocking jobs" above).
    ///
    /// # Cancel safety
    ///
    /// As for [`shutdown`](Pool::shutdown).
    pub async fn abort(&self) -> ShutdownReport<Q::Job> {
        self.shared().stop().await
    }

    /// This pool, without its queue and worker types in its own: for keeping it in
    /// application state, a struct field, a collection of pools.
    pub fn into_any(self) -> AnyPool<Q::Job, W::Output, W::Error> {
        AnyPool { inner: self.inner }
    }
}

impl<Q: Replies, W: Worker<Q::Job>> Pool<Q, W> {
    /// Submits a job, waiting while a bounded queue is full; returns a handle to await
    /// its result.
    ///
    /// Only queues that bring results back to the submitter have it ([`Replies`]: the
    /// in-memory ones, and the Redis queue once it knows its result type, where the
    /// handle resolves when whichever process ran the job stored its outcome).
    /// [`spawn`](Pool::spawn) needs none; the running pool's [`Results`] see every
    /// outcome.
    ///
    /// # Errors
    ///
    /// As for [`spawn`](Pool::spawn).
    ///
    /// # Cancel safety
    ///
    /// If the future is dropped before it completes, the job was not accepted (and is
    /// not counted) and is dropped with it. Use
    /// [`submit_timeout`](Pool::submit_timeout) to bound the wait and keep the job.
    pub async fn submit(
        &self,
        job: Q::Job,
    ) -> Result<JobHandle<W::Output, W::Error>, SubmitError<Q::Job>> {
        let shared = self.shared();
        let id = shared.next_id();
        let (reply, handle) = JobHandle::new(id);
        // The id the queue gave (a durable queue numbers jobs itself).
        let id = shared
            .submit(shared.envelope(job, id).with_reply(reply))
            .await?;
        Ok(handle.with_id(id))
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
    ) -> Result<JobHandle<W::Output, W::Error>, TrySubmitError<Q::Job>>
    where
        Q: Replies,
    {
        let shared = self.shared();
        let id = shared.next_id();
        let (reply, handle) = JobHandle::new(id);
        shared
            .try_push(shared.envelope(job, id).with_reply(reply))
            .map_err(|error| error.map(|envelope| envelope.job))?;
        Ok(handle)
    }

    /// Submits a job without a handle if the queue has room right now.
    ///
    /// # Errors
    ///
    /// As for [`try_submit`](Pool::try_submit).
    pub fn try_spawn(&self, job: Q::Job) -> Result<JobId, TrySubmitError<Q::Job>> {
        let shared = self.shared();
        let id = shared.next_id();
        shared
            .try_push(shared.envelope(job, id))
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
    ) -> Result<JobHandle<W::Output, W::Error>, SubmitTimeoutError<Q::Job>>
    where
        Q: Replies,
    {
        let shared = self.shared();
        let deadline = tokio::time::Instant::now() + timeout;
        let id = shared.next_id();
        let (reply, handle) = JobHandle::new(id);
        let mut envelope = shared.envelope(job, id).with_reply(reply);
        loop {
            match shared.try_push(envelope) {
                Ok(()) => return Ok(handle),
                Err(TrySubmitError::Full(back)) => envelope = back,
                Err(refused) => return Err(SubmitTimeoutError::Closed(refused.into_inner().job)),
            }
            let room = shared.queue.ready();
            if tokio::time::timeout_at(deadline, room).await.is_err() {
                return Err(SubmitTimeoutError::Timeout(envelope.job));
            }
        }
    }
}

impl<Q: Queue, W: Worker<Q::Job>> Drop for Handle<Q, W> {
    fn drop(&mut self) {
        // The last clone is gone: close the queue; the workers drain it and exit on
        // their own. See "Dropping" on `Pool`.
        self.shared.begin_drain();
    }
}

impl<Q: Queue, W: Worker<Q::Job>> fmt::Debug for Pool<Q, W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("name", &self.name())
            .field("stats", &self.stats())
            .finish()
    }
}

/// A boxed future of an [`AnyPool`] method.
type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What an [`AnyPool`] can do with the pool behind it.
trait Erased<J, T, E>: Send + Sync {
    fn submit(&self, job: J) -> BoxFuture<'_, Result<JobHandle<T, E>, SubmitError<J>>>;
    fn spawn(&self, job: J) -> BoxFuture<'_, Result<JobId, SubmitError<J>>>;
    fn spawn_all(
        &self,
        jobs: &mut dyn Iterator<Item = J>,
    ) -> BoxFuture<'_, Result<usize, SpawnAllError<J>>>;
    fn take_results(&self) -> Option<Results<T, E>>;
    fn stats(&self) -> Stats;
    fn name(&self) -> &str;
    fn is_open(&self) -> bool;
    fn workers(&self) -> usize;
    fn resize(&self, workers: usize) -> Result<(), ResizeError>;
    fn cancellation_token(&self) -> CancellationToken;
    fn shutdown(&self) -> BoxFuture<'_, ShutdownReport<J>>;
    fn shutdown_timeout(&self, grace: Duration) -> BoxFuture<'_, ShutdownReport<J>>;
    fn abort(&self) -> BoxFuture<'_, ShutdownReport<J>>;
}

impl<Q: Queue, W: Worker<Q::Job>> Erased<Q::Job, W::Output, W::Error> for Handle<Q, W> {
    fn submit(
        &self,
        job: Q::Job,
    ) -> BoxFuture<'_, Result<JobHandle<W::Output, W::Error>, SubmitError<Q::Job>>> {
        if !Q::REPLIES {
            return Box::pin(std::future::ready(Err(SubmitError::ResultsUnavailable(
                job,
            ))));
        }
        let shared = &*self.shared;
        let id = shared.next_id();
        let (reply, handle) = JobHandle::new(id);
        let submitted = shared.submit(shared.envelope(job, id).with_reply(reply));
        Box::pin(async move {
            // The id the queue gave (a durable queue numbers jobs itself).
            let id = submitted.await?;
            Ok(handle.with_id(id))
        })
    }

    fn spawn(&self, job: Q::Job) -> BoxFuture<'_, Result<JobId, SubmitError<Q::Job>>> {
        let shared = &*self.shared;
        let id = shared.next_id();
        Box::pin(shared.submit(shared.envelope(job, id)))
    }

    fn spawn_all(
        &self,
        jobs: &mut dyn Iterator<Item = Q::Job>,
    ) -> BoxFuture<'_, Result<usize, SpawnAllError<Q::Job>>> {
        let shared = &*self.shared;
        Box::pin(shared.submit_batch(shared.batch(jobs)))
    }

    fn take_results(&self) -> Option<Results<W::Output, W::Error>> {
        lock(&self.results).take()
    }

    fn stats(&self) -> Stats {
        self.shared.stats()
    }

    fn name(&self) -> &str {
        &self.shared.name
    }

    fn is_open(&self) -> bool {
        self.shared.lifecycle.is_open()
    }

    fn workers(&self) -> usize {
        self.shared.target()
    }

    fn resize(&self, workers: usize) -> Result<(), ResizeError> {
        Shared::resize(&self.shared, workers)
    }

    fn cancellation_token(&self) -> CancellationToken {
        self.shared.pool_token.0.clone()
    }

    fn shutdown(&self) -> BoxFuture<'_, ShutdownReport<Q::Job>> {
        Box::pin(self.shared.shutdown())
    }

    fn shutdown_timeout(&self, grace: Duration) -> BoxFuture<'_, ShutdownReport<Q::Job>> {
        let shared = &*self.shared;
        Box::pin(async move {
            shared.begin_drain();
            let drained = tokio::time::timeout(grace, shared.lifecycle.live.wait()).await;
            if drained.is_err() {
                return shared.stop().await;
            }
            shared.finish().await
        })
    }

    fn abort(&self) -> BoxFuture<'_, ShutdownReport<Q::Job>> {
        Box::pin(self.shared.stop())
    }
}

/// A pool whose queue and worker types are erased: it takes jobs `J` and its jobs
/// produce `T` or fail with `E`. The common way to keep a pool in application state.
///
/// Made with [`Pool::into_any`] (or `From`); cheap to clone, and every clone (and every
/// [`Pool`] clone of the same pool) is the same pool: dropping the last one closes the
/// queue, as for [`Pool`]. It offers what every pool offers; `try_submit` and
/// `submit_timeout`, which depend on the queue, stay on the typed [`Pool`].
///
/// # Examples
///
/// ```
/// use crewpool_flume::FlumeQueue;
/// use crewpool_runtime::{AnyPool, PoolBuilder};
///
/// /// Application state: no closure type, no queue type.
/// struct App {
///     squares: AnyPool<u64, u64, std::convert::Infallible>,
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let pool = PoolBuilder::new()
///     .workers(2)
///     .queue(FlumeQueue::bounded(16))
///     .build(|n: u64| async move { Ok(n * n) })?;
/// let app = App { squares: pool.into_any() };
///
/// let handle = app.squares.clone().submit(12).await?;
/// assert_eq!(handle.await?, 144);
/// app.squares.shutdown().await;
/// # Ok(()) }
/// ```
pub struct AnyPool<J, T, E> {
    inner: std::sync::Arc<dyn Erased<J, T, E>>,
}

impl<J, T, E> Clone for AnyPool<J, T, E> {
    fn clone(&self) -> Self {
        AnyPool {
            inner: std::sync::Arc::clone(&self.inner),
        }
    }
}

impl<Q: Queue, W: Worker<Q::Job>> From<Pool<Q, W>> for AnyPool<Q::Job, W::Output, W::Error> {
    fn from(pool: Pool<Q, W>) -> Self {
        pool.into_any()
    }
}

impl<J, T, E> AnyPool<J, T, E> {
    /// Submits a job, waiting while a bounded queue is full; returns a handle to await
    /// its result. See [`Pool::submit`].
    ///
    /// # Errors
    ///
    /// As for [`Pool::submit`], and [`SubmitError::ResultsUnavailable`] at once when
    /// the pool's queue cannot bring results back (one that does not implement
    /// [`Replies`](crewpool_core::Replies): use [`spawn`](AnyPool::spawn) there).
    pub async fn submit(&self, job: J) -> Result<JobHandle<T, E>, SubmitError<J>> {
        self.inner.submit(job).await
    }

    /// Submits a job without a handle. See [`Pool::spawn`].
    ///
    /// # Errors
    ///
    /// As for [`Pool::spawn`].
    pub async fn spawn(&self, job: J) -> Result<JobId, SubmitError<J>> {
        self.inner.spawn(job).await
    }

    /// Submits many jobs without handles. See [`Pool::spawn_all`].
    ///
    /// # Errors
    ///
    /// As for [`Pool::spawn_all`].
    ///
    /// # Cancel safety
    ///
    /// As for [`Pool::spawn_all`].
    pub async fn spawn_all<I>(&self, jobs: I) -> Result<usize, SpawnAllError<J>>
    where
        I: IntoIterator<Item = J>,
    {
        // The iterator is used up before the wait: the future holds none of it.
        let spawned = self.inner.spawn_all(&mut jobs.into_iter());
        spawned.await
    }

    /// See [`Pool::take_results`].
    pub fn take_results(&self) -> Option<Results<T, E>> {
        self.inner.take_results()
    }

    /// See [`Pool::stats`].
    pub fn stats(&self) -> Stats {
        self.inner.stats()
    }

    /// See [`Pool::name`].
    pub fn name(&self) -> &str {
        self.inner.name()
    }

    /// See [`Pool::is_open`].
    pub fn is_open(&self) -> bool {
        self.inner.is_open()
    }

    /// See [`Pool::workers`].
    pub fn workers(&self) -> usize {
        self.inner.workers()
    }

    /// See [`Pool::resize`].
    ///
    /// # Errors
    ///
    /// As for [`Pool::resize`].
    pub fn resize(&self, workers: usize) -> Result<(), ResizeError> {
        self.inner.resize(workers)
    }

    /// See [`Pool::cancellation_token`].
    pub fn cancellation_token(&self) -> CancellationToken {
        self.inner.cancellation_token()
    }

    /// See [`Pool::shutdown`].
    pub async fn shutdown(&self) -> ShutdownReport<J> {
        self.inner.shutdown().await
    }

    /// See [`Pool::shutdown_timeout`].
    pub async fn shutdown_timeout(&self, grace: Duration) -> ShutdownReport<J> {
        self.inner.shutdown_timeout(grace).await
    }

    /// See [`Pool::abort`].
    pub async fn abort(&self) -> ShutdownReport<J> {
        self.inner.abort().await
    }
}

impl<J, T, E> fmt::Debug for AnyPool<J, T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AnyPool")
            .field("name", &self.name())
            .field("stats", &self.stats())
            .finish()
    }
}

#[cfg(all(test, not(crewpool_loom)))]
mod tests {
    use crate::PoolBuilder;
    use crewpool_flume::FlumeQueue;

    /// Yields on this single-threaded runtime until `done` holds (bounded).
    async fn settle(mut done: impl FnMut() -> bool) {
        for _ in 0..100_000 {
            if done() {
                return;
            }
            tokio::task::yield_now().await;
        }
        panic!("the pool did not reach the expected state");
    }

    #[tokio::test]
    async fn resizing_up_and_down_keeps_memory_bounded() {
        let pool = PoolBuilder::new()
            .workers(1)
            .queue(FlumeQueue::unbounded())
            .build(|n: u64| async move { Ok::<_, std::convert::Infallible>(n) })
            .unwrap();
        for round in 0..2_000u64 {
            pool.resize(2).unwrap();
            pool.spawn(round).await.unwrap();
            pool.resize(1).unwrap();
            settle(|| pool.stats().workers == 1).await;
        }
        let shared = &pool.inner.shared;
        assert!(
            shared.counters.worker_blocks() <= 2,
            "{} counter blocks kept for 1 live worker",
            shared.counters.worker_blocks()
        );
        assert!(
            shared.retire.posted.listeners() <= 2,
            "{} wakers kept by the resize event",
            shared.retire.posted.listeners()
        );
        let report = pool.shutdown().await;
        assert_eq!(report.stats.completed, 2_000);
    }

    #[tokio::test]
    async fn an_idle_worker_waiting_again_and_again_keeps_one_waker() {
        let pool = PoolBuilder::new()
            .workers(1)
            .dedicated_threads()
            .queue(FlumeQueue::unbounded())
            .build(|n: u64| async move { Ok::<_, std::convert::Infallible>(n) })
            .unwrap();
        for n in 0..1_000u64 {
            // The worker goes idle, and waits, between two jobs.
            assert_eq!(pool.submit(n).await.unwrap().await.unwrap(), n);
        }
        let listeners = pool.inner.shared.retire.posted.listeners();
        assert!(
            listeners <= 1,
            "{listeners} wakers kept for one idle worker"
        );
        pool.shutdown().await;
    }
}
