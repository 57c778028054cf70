//! The state a pool's handle and its workers share.

use std::fmt;
use std::future::{Future, poll_fn};
use std::pin::pin;
use std::task::{Poll, ready};

use crewpool_core::{
    Batch, Consumer, Envelope, JobId, Queue, Spawn, TryPush, TryPushError, Worker,
};
use crossbeam_utils::CachePadded;
use tokio_util::sync::CancellationToken;

use crate::backend::is_durable;
use crate::current;
use crate::error::{SpawnAllError, SubmitError};
use crate::handle::ResultSink;
use crate::lane::RetryLane;
use crate::lifecycle::{Lifecycle, Retire};
use crate::metrics::PoolMetrics;
use crate::policy::Policies;
use crate::report::ShutdownReport;
use crate::stats::{Counters, Stats};
use crewpool_core::sync::{AtomicU64, AtomicUsize, Mutex, Ordering, lock};

/// The pool-wide token ([`PoolBuilder::cancellation_token`](crate::PoolBuilder::cancellation_token)),
/// carried by each worker's support object for every job it runs. A job with a handle
/// also carries its own token ([`JobHandle::cancel`](crate::JobHandle::cancel)) as its
/// context's extension: the attachment the handle put on the job's reply.
#[derive(Debug)]
pub(crate) struct PoolToken(pub(crate) CancellationToken);

/// Where workers run.
#[derive(Debug, Clone)]
pub(crate) enum Executor {
    /// Tasks on a tokio runtime.
    Tokio(tokio::runtime::Handle),
    /// One OS thread per worker, each with its own single-threaded tokio runtime.
    Threads,
    /// Started by the caller (the loom models drive `worker::run` themselves).
    #[cfg_attr(not(all(test, crewpool_loom)), allow(dead_code))]
    Manual,
}

/// Everything configured at build time besides the queue and the worker.
#[derive(Debug)]
pub(crate) struct Setup<J> {
    pub(crate) name: String,
    pub(crate) executor: Executor,
    pub(crate) policies: Policies,
    /// How to keep a copy of a job for its retry (`Retryable::copy_for_retry`), when
    /// the pool was built with a retry policy of its own.
    pub(crate) cloner: Option<fn(&J) -> Option<J>>,
    pub(crate) token: CancellationToken,
}

pub(crate) struct Shared<Q: Queue, W: Worker<Q::Job>> {
    pub(crate) name: String,
    pub(crate) queue: Q,
    pub(crate) worker: W,
    pub(crate) lifecycle: Lifecycle,
    pub(crate) counters: Counters,
    pub(crate) policies: Policies,
    pub(crate) metrics: Option<PoolMetrics>,
    /// Delayed retries of in-memory jobs (`None` without a retry policy, or durable).
    pub(crate) lane: Option<RetryLane<Q::Job>>,
    /// Copies a job before it runs, when it may have to run again.
    pub(crate) cloner: Option<fn(&Q::Job) -> Option<Q::Job>>,
    /// The pool-wide token every job sees (through each worker's `Support`).
    pub(crate) pool_token: std::sync::Arc<PoolToken>,
    /// Ids are handed out by producers; kept off the lines workers read per job.
    next_id: CachePadded<AtomicU64>,
    pub(crate) retire: Retire,
    pub(crate) executor: Executor,
    /// The results stream's sender, for workers added later; dropped when the pool
    /// stops accepting jobs, so the stream ends once the workers have left.
    pub(crate) results: Mutex<Option<ResultSink<W, Q::Job>>>,
    /// The worker count asked for (by build and resize).
    pub(crate) target: Mutex<usize>,
    pub(crate) next_worker: AtomicUsize,
    /// Unstarted jobs handed back while stopping, for the shutdown report.
    pub(crate) returned: Mutex<Vec<Envelope<Q::Job>>>,
    /// Jobs interrupted while stopping.
    pub(crate) interrupted: Mutex<Vec<JobId>>,
    /// Jobs a stopping shutdown gave up on while their workers were inside them.
    still_running: Mutex<Vec<JobId>>,
    /// Each live worker's spawner, under the worker's key (see `current`): a submit
    /// made from inside one of the pool's jobs goes through it, never waiting for room.
    spawners: Mutex<Vec<(usize, std::sync::Arc<dyn Spawn<Q::Job>>)>>,
}

impl<Q: Queue, W: Worker<Q::Job>> Shared<Q, W> {
    pub(crate) fn new(
        setup: Setup<Q::Job>,
        queue: Q,
        worker: W,
        workers: usize,
        results: Option<ResultSink<W, Q::Job>>,
    ) -> Self {
        let durable = is_durable::<Q>();
        let lane = (setup.policies.retry.is_some() && !durable && setup.cloner.is_some())
            .then(RetryLane::new);
        let metrics = setup
            .policies
            .metrics
            .then(|| PoolMetrics::new(&setup.name));
        Shared {
            lifecycle: Lifecycle::new(workers),
            counters: Counters::new(),
            metrics,
            lane,
            cloner: setup.cloner,
            pool_token: std::sync::Arc::new(PoolToken(setup.token)),
            retire: Retire::new(),
            executor: setup.executor,
            results: Mutex::new(results),
            target: Mutex::new(workers),
            next_worker: AtomicUsize::new(0),
            next_id: CachePadded::new(AtomicU64::new(1)),
            returned: Mutex::new(Vec::new()),
            interrupted: Mutex::new(Vec::new()),
            still_running: Mutex::new(Vec::new()),
            spawners: Mutex::new(Vec::new()),
            policies: setup.policies,
            name: setup.name,
            queue,
            worker,
        }
    }

    pub(crate) fn next_id(&self) -> JobId {
        // Relaxed: ids need to be unique, not ordered with anything else.
        JobId(self.next_id.fetch_add(1, Ordering::Relaxed))
    }

    /// A block of `n` consecutive ids, the first returned: one atomic operation for
    /// a whole batch.
    pub(crate) fn next_ids(&self, n: usize) -> u64 {
        // Relaxed: as `next_id`.
        self.next_id.fetch_add(n as u64, Ordering::Relaxed)
    }

    /// The worker count asked for.
    pub(crate) fn target(&self) -> usize {
        *lock(&self.target)
    }

    /// A graceful shutdown: drain, wait for every worker, report ([`Pool::shutdown`](crate::Pool::shutdown)).
    pub(crate) async fn shutdown(&self) -> ShutdownReport<Q::Job> {
        self.begin_drain();
        self.lifecycle.live.wait().await;
        self.finish().await
    }

    /// Stops now and reports ([`Pool::abort`](crate::Pool::abort), and a shutdown past
    /// its deadline).
    pub(crate) async fn stop(&self) -> ShutdownReport<Q::Job> {
        self.begin_stop();
        self.wait_stopped().await;
        self.finish().await
    }

    /// Waits, once the pool is stopping, until every worker has left, except those
    /// blocked inside a job's own code, which are given up on.
    ///
    /// # States and races
    ///
    /// Stopping wakes every worker waiting for work or awaiting inside a job; they
    /// leave promptly. A worker inside a poll of its job sees the stop only when the
    /// poll returns, which a blocking call never does. So the wait goes on while some
    /// live worker is not polling (it is leaving), and ends when every live worker is
    /// polling: then each is abandoned (`Counters::abandon_stuck`, a compare-and-swap
    /// against the worker's own swap at the end of its poll, so exactly one side reports
    /// the job). A worker whose poll ended meanwhile keeps its job and leaves. Each exit
    /// notifies `exited`, and the listener is made before the check, so an exit between
    /// the check and the wait is not missed.
    pub(crate) async fn wait_stopped(&self) {
        loop {
            let exited = self.lifecycle.exited.listen();
            let live = self.lifecycle.live.count();
            if live == 0 {
                return;
            }
            let (abandoned, all) = self.counters.abandon_stuck(live);
            if !abandoned.is_empty() {
                for id in &abandoned {
                    tracing::warn!(pool = %self.name, job = %id, "a stopping pool gave up on a job blocked inside its code; its worker finishes it in the background");
                }
                lock(&self.still_running).extend(abandoned);
            }
            if all {
                return;
            }
            exited.await;
        }
    }

    /// Open → Draining, closing the queue. Idempotent.
    pub(crate) fn begin_drain(&self) {
        if self.lifecycle.begin_drain() {
            self.queue.close();
            lock(&self.results).take();
        }
    }

    /// → Stopping (closing the queue first if still open).
    pub(crate) fn begin_stop(&self) {
        self.begin_drain();
        self.queue.close();
        self.lifecycle.begin_stop();
    }

    /// A new envelope for a submitted or spawned job, stamped for wait-time metrics if
    /// they are on.
    pub(crate) fn envelope(&self, job: Q::Job, id: JobId) -> Envelope<Q::Job> {
        let envelope = Envelope::new(job).with_id(id);
        if self.metrics.is_some() {
            envelope.with_enqueued_at(std::time::Instant::now())
        } else {
            envelope
        }
    }

    /// Submits a job unless the pool is closing; returns the id the queue knows it by.
    ///
    /// Made from inside one of this pool's own jobs, it never waits for room (see
    /// "Submitting from inside a job" on [`Pool`](crate::Pool)): it goes through the
    /// job's worker's spawner and fails with `Full` when there is no room.
    ///
    /// Counting: on an in-memory queue the job is counted around each poll of the
    /// push, and taken back unless that poll accepted it (the queue accepts only in
    /// such a poll: see the `Queue` contract), so `submitted` counts exactly the
    /// accepted jobs, never a push waiting for room or dropped, and never lags behind a
    /// job that already finished. On a durable queue, once the queue confirmed it.
    ///
    /// Each poll also takes a unit of tokio's cooperative budget, so a producer that
    /// never has to wait (room keeps appearing) still gives its runtime back now and
    /// then, like tokio's own channels do.
    pub(crate) async fn submit(
        &self,
        envelope: Envelope<Q::Job>,
    ) -> Result<JobId, SubmitError<Q::Job>> {
        if !self.lifecycle.is_open() {
            return Err(SubmitError::Closed(envelope.job));
        }
        if let Some(spawner) = self.own_spawner() {
            let id = envelope.id;
            return self
                .counted_spawn(&*spawner, envelope)
                .map(|()| id)
                .map_err(|refused| spawn_refused(refused.is_full(), refused.into_inner().job));
        }
        if is_durable::<Q>() {
            let pushed = self.queue.push(envelope).await;
            if pushed.is_ok() {
                self.counters.submitted();
                if let Some(metrics) = &self.metrics {
                    metrics.submitted.increment(1);
                }
            }
            return pushed.map_err(|error| error.map(|envelope| envelope.job).into());
        }
        // Tried at once first (`Queue::push_now`): an in-memory queue with room takes
        // the job with a plain call; only a job it gives back gets `push`'s future.
        let id = envelope.id;
        let mut envelope = Some(envelope);
        let mut push = pin!(None);
        poll_fn(|cx| {
            let coop = ready!(tokio::task::coop::poll_proceed(cx));
            self.counters.submitted();
            if let Some(now) = envelope.take() {
                match self.queue.push_now(now) {
                    Ok(()) => {
                        self.settle_submitted(true);
                        coop.made_progress();
                        return Poll::Ready(Ok(id));
                    }
                    Err(back) => push.set(Some(self.queue.push(back))),
                }
            }
            let Some(pushing) = push.as_mut().as_pin_mut() else {
                unreachable!("a submit is polled after it completed");
            };
            let polled = pushing.poll(cx);
            self.settle_submitted(matches!(polled, Poll::Ready(Ok(_))));
            if polled.is_ready() {
                coop.made_progress();
            }
            polled.map_err(|error| error.map(|envelope| envelope.job).into())
        })
        .await
    }

    /// The envelopes of a batch of jobs, numbered with one block of ids, in order.
    pub(crate) fn batch(&self, jobs: impl Iterator<Item = Q::Job>) -> Batch<Q::Job> {
        // Numbered from 0 first, then moved to the block: its size is known only now.
        let mut envelopes: std::collections::VecDeque<Envelope<Q::Job>> = jobs
            .zip(0u64..)
            .map(|(job, at)| self.envelope(job, JobId(at)))
            .collect();
        if !envelopes.is_empty() {
            let first = self.next_ids(envelopes.len());
            for envelope in &mut envelopes {
                envelope.id.0 += first;
            }
        }
        Batch::new(envelopes)
    }

    /// Submits a batch unless the pool is closing; returns how many were accepted
    /// (all of them) or why the rest was refused, with the rest.
    ///
    /// From inside one of this pool's own jobs it goes through that worker's spawner
    /// one job at a time, never waiting for room, like [`submit`](Shared::submit).
    ///
    /// Counting: on an in-memory queue the whole batch is counted as submitted before
    /// the first poll of the queue's `push_batch`, and what it did not accept is taken
    /// back when the push ends, fails or is dropped ([`Counted`]): a job is never seen
    /// finished before it is seen submitted, and once `spawn_all` has returned (or been
    /// dropped) `submitted` counts exactly the accepted jobs. While the batch waits for
    /// room, the jobs not yet accepted are counted too. Each poll takes a unit of
    /// tokio's cooperative budget, as a submit's does.
    pub(crate) async fn submit_batch(
        &self,
        mut batch: Batch<Q::Job>,
    ) -> Result<usize, SpawnAllError<Q::Job>> {
        let refused = |batch: Batch<Q::Job>, reason: SubmitError<()>| {
            let accepted = batch.accepted();
            let rest = batch.into_rest().map(|envelope| envelope.job).collect();
            Err(SpawnAllError::new(accepted, rest, reason))
        };
        if batch.is_empty() {
            return Ok(0);
        }
        if !self.lifecycle.is_open() {
            return refused(batch, SubmitError::Closed(()));
        }
        if let Some(spawner) = self.own_spawner() {
            while let Some(envelope) = batch.take_front() {
                match self.counted_spawn(&*spawner, envelope) {
                    Ok(()) => batch.accept(1),
                    Err(error) => {
                        let reason = spawn_refused(error.is_full(), ());
                        batch.put_back(error.into_inner());
                        return refused(batch, reason);
                    }
                }
            }
            return Ok(batch.accepted());
        }
        let pushed = if is_durable::<Q>() {
            let pushed = self.queue.push_batch(&mut batch).await;
            self.counters.submitted_many(batch.accepted());
            if let Some(metrics) = &self.metrics {
                metrics.submitted.increment(batch.accepted() as u64);
            }
            pushed
        } else {
            let counted = Counted::new(self, &mut batch);
            let mut push = pin!(self.queue.push_batch(&mut *counted.batch));
            poll_fn(|cx| {
                let coop = ready!(tokio::task::coop::poll_proceed(cx));
                let polled = push.as_mut().poll(cx);
                if polled.is_ready() {
                    coop.made_progress();
                }
                polled
            })
            .await
        };
        match pushed {
            Ok(()) => Ok(batch.accepted()),
            Err(error) => refused(batch, error.into()),
        }
    }

    /// Completes the count `counters.submitted()` began before a try (counted first:
    /// see `loom_shutdown`): the metric if the queue took the job, else the count back.
    fn settle_submitted(&self, accepted: bool) {
        if !accepted {
            self.counters.unsubmitted();
        } else if let Some(metrics) = &self.metrics {
            metrics.submitted.increment(1);
        }
    }

    /// Offers a job to a spawner, counted like a submit.
    pub(crate) fn counted_spawn(
        &self,
        spawner: &dyn Spawn<Q::Job>,
        envelope: Envelope<Q::Job>,
    ) -> Result<(), TryPushError<Envelope<Q::Job>>> {
        self.counters.submitted();
        let spawned = spawner.spawn(envelope);
        self.settle_submitted(spawned.is_ok());
        spawned
    }

    /// Records a worker's spawner under its key, if its consumer has one.
    pub(crate) fn register_spawner(&self, key: usize, consumer: &Q::Consumer) {
        if let Some(spawner) = consumer.spawner() {
            lock(&self.spawners).push((key, spawner));
        }
    }

    pub(crate) fn unregister_spawner(&self, key: usize) {
        lock(&self.spawners).retain(|(worker, _)| *worker != key);
    }

    /// The spawner of the worker whose job is calling, if the call comes from inside
    /// one of this pool's jobs (see `current`).
    #[inline]
    fn own_spawner(&self) -> Option<std::sync::Arc<dyn Spawn<Q::Job>>> {
        match current::worker() {
            0 => None,
            worker => self.spawner_of(worker),
        }
    }

    #[cold]
    fn spawner_of(&self, worker: usize) -> Option<std::sync::Arc<dyn Spawn<Q::Job>>> {
        lock(&self.spawners)
            .iter()
            .find(|(key, _)| *key == worker)
            .map(|(_, spawner)| std::sync::Arc::clone(spawner))
    }

    pub(crate) fn stats(&self) -> Stats {
        self.counters.snapshot(
            self.lifecycle.live.count(),
            self.queue.depth(),
            self.queue.undeliverable(),
        )
    }

    /// Once every worker has left: collects what is still queued or waiting to be
    /// retried (if the pool stopped) and reports. The first caller gets the returned
    /// and interrupted jobs.
    pub(crate) async fn finish(&self) -> ShutdownReport<Q::Job> {
        if self.lifecycle.is_stopping() {
            if !is_durable::<Q>() {
                self.collect_queued().await;
            }
            if let Some(lane) = &self.lane {
                lock(&self.returned).extend(lane.drain());
            }
        }
        let returned = std::mem::take(&mut *lock(&self.returned))
            .into_iter()
            .map(|envelope| envelope.job)
            .collect();
        ShutdownReport {
            returned,
            interrupted: std::mem::take(&mut *lock(&self.interrupted)),
            still_running: std::mem::take(&mut *lock(&self.still_running)),
            stats: self.stats(),
        }
    }

    /// Moves every job left in the (closed) queue into the returned list. `next`, not
    /// `try_next`: a push that was already waiting for room when the queue closed may
    /// still land, and `next` returns `None` only once nothing more can arrive.
    async fn collect_queued(&self) {
        let mut consumer = match self.queue.consumer() {
            Ok(consumer) => consumer,
            Err(error) => {
                tracing::error!(pool = %self.name, %error, "could not collect queued jobs at shutdown");
                return;
            }
        };
        while let Some(received) = consumer.next().await {
            self.hand_back(received).await;
        }
    }
}

/// The count of a batch pushed to an in-memory queue: counted as submitted whole
/// when made, and what the queue did not accept taken back when dropped (the push
/// ended, failed, or its future was dropped). See [`Shared::submit_batch`].
struct Counted<'a, Q: Queue, W: Worker<Q::Job>> {
    shared: &'a Shared<Q, W>,
    batch: &'a mut Batch<Q::Job>,
    /// The batch's length and accepted count when counted.
    held: usize,
    accepted: usize,
}

impl<'a, Q: Queue, W: Worker<Q::Job>> Counted<'a, Q, W> {
    fn new(shared: &'a Shared<Q, W>, batch: &'a mut Batch<Q::Job>) -> Self {
        let (held, accepted) = (batch.len(), batch.accepted());
        shared.counters.submitted_many(held);
        Counted {
            shared,
            batch,
            held,
            accepted,
        }
    }
}

impl<Q: Queue, W: Worker<Q::Job>> Drop for Counted<'_, Q, W> {
    fn drop(&mut self) {
        let accepted = self.batch.accepted() - self.accepted;
        self.shared
            .counters
            .unsubmitted_many(self.held.saturating_sub(accepted));
        if let Some(metrics) = &self.shared.metrics {
            metrics.submitted.increment(accepted as u64);
        }
    }
}

impl<Q: TryPush, W: Worker<Q::Job>> Shared<Q, W> {
    /// Pushes a submitted envelope if there is room right now and the pool is open.
    pub(crate) fn try_push(
        &self,
        envelope: Envelope<Q::Job>,
    ) -> Result<(), TryPushError<Envelope<Q::Job>>> {
        if !self.lifecycle.is_open() {
            return Err(TryPushError::Closed(envelope));
        }
        self.counters.submitted();
        let pushed = self.queue.try_push(envelope);
        self.settle_submitted(pushed.is_ok());
        pushed
    }
}

impl<Q: Queue, W: Worker<Q::Job>> fmt::Debug for Shared<Q, W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("name", &self.name)
            .field("lifecycle", &self.lifecycle)
            .finish_non_exhaustive()
    }
}

/// What a job offered to a worker's own spawner from inside one of the pool's jobs
/// and refused means to its submitter: the queue was full, or closed.
fn spawn_refused<T>(full: bool, value: T) -> SubmitError<T> {
    if full {
        SubmitError::Full(value)
    } else {
        SubmitError::Closed(value)
    }
}
