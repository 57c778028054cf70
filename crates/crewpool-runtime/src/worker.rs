//! Workers: starting them, resizing the crew, and one worker's loop: take a job, run
//! an attempt of it ([`attempt`](crate::attempt)), let [`fate`](crate::fate) decide
//! and settle, repeat.
//!
//! The loop's synchronisation uses no tokio type, so the loom models run it as it is;
//! tokio appears only in the optional policies (timeouts, delayed retries, the rate
//! limiter), which the models leave off. The loop leaves when:
//!
//! - its consumer says the queue is closed and drained, and no retry is pending;
//! - the pool stops (see [`lifecycle`](crate::lifecycle) for the states and races);
//! - it claims a resize-down token (see [`Retire`](crate::lifecycle::Retire)), after its
//!   current job.

use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::task::Poll;
use std::time::Instant;

use crewpool_core::{
    Consumer, ContextSupport, Envelope, JobContext, Queue, Received, Reply, Worker,
};
use crossbeam_utils::CachePadded;
use tokio_util::sync::CancellationToken;

use crate::attempt::{self, Job};
use crate::backend::DeliveryOf;
use crate::context::Support;
use crate::error::ResizeError;
use crate::fate::{Ending, Ran, success_is_only_counted};
use crate::future::{Either, first_of, yield_now};
use crate::handle::ResultSink;
use crate::lane::RetryLane;
use crate::shared::{Executor, Shared};
use crate::signal::Listen;
use crate::stats::{Finish, WorkerCounters};
use crewpool_core::sync::{Arc, Ordering, lock};

/// How many jobs a worker runs back to back before yielding to other tasks on its
/// thread, so a queue that is never empty cannot monopolise an executor thread.
///
/// A worker on a dedicated thread shares its runtime only with tasks its own jobs
/// spawned: it yields only when there are some (`num_alive_tasks`), since a yield
/// costs a turn of the runtime's scheduler, and its driver, for nothing otherwise.
const JOBS_PER_YIELD: u32 = 32;

/// Whether a worker should give its thread a turn after [`JOBS_PER_YIELD`] jobs.
fn others_may_wait(executor: &Executor) -> bool {
    match executor {
        Executor::Threads => tokio::runtime::Handle::try_current()
            .is_ok_and(|runtime| runtime.metrics().num_alive_tasks() > 0),
        Executor::Tokio(_) | Executor::Manual => true,
    }
}

/// How many times an idle worker on a dedicated thread yields its thread to the
/// operating system, looking for a job after each, before it parks.
#[cfg(not(crewpool_loom))]
const SNOOZES: u32 = 8;

/// A worker on a dedicated thread that found no job, and shares its runtime with no
/// task its jobs spawned: gives its thread to the operating system a few times
/// ([`SNOOZES`]), looking for a job after each, before it parks. On a busy machine the
/// producer may be the thread waiting for a core: the yield lets it run and push the
/// next job, which the worker then takes without going to sleep and being woken, a
/// system call on each side. Each yield returns at once when nothing else waits for
/// the core, so this costs a few microseconds at most before the worker parks as
/// usual; it never holds a thread that other tasks could use (a worker on a shared
/// runtime, or with spawned tasks alive on its own, parks at once). Not under loom:
/// it only adds looks before the same parking protocol.
fn snooze<C: Consumer>(
    executor: &Executor,
    consumer: &mut C,
) -> Option<Received<C::Job, C::Delivery>> {
    // Only on a dedicated thread with no spawned task alive: `others_may_wait` is
    // true on every other executor.
    #[cfg(not(crewpool_loom))]
    if !others_may_wait(executor) {
        for _ in 0..SNOOZES {
            std::thread::yield_now();
            if let Some(received) = consumer.try_next() {
                return Some(received);
            }
        }
    }
    #[cfg(crewpool_loom)]
    let _ = (executor, consumer);
    None
}

/// Counts the worker out of `live` however the loop ends (even by a panic in a
/// backend, or its runtime dropping its task), and tells a stopping shutdown.
struct Exit<'a, Q: Queue, W: Worker<Q::Job>> {
    shared: &'a Shared<Q, W>,
    counters: &'a Arc<CachePadded<WorkerCounters>>,
    /// The worker's key in the pool's spawner registry (see `Shared::spawners`).
    key: usize,
}

impl<Q: Queue, W: Worker<Q::Job>> Drop for Exit<'_, Q, W> {
    fn drop(&mut self) {
        let shared = self.shared;
        shared.unregister_spawner(self.key);
        if let Some(metrics) = &shared.metrics {
            metrics.workers.decrement(1.0);
        }
        shared.counters.retire(self.counters);
        shared.lifecycle.live.count_down();
        shared.lifecycle.exited.notify_all();
    }
}

/// A job a worker took: from its consumer, or a due retry from the pool's lane.
enum Taken<Q: Queue> {
    Queue(Received<Q::Job, DeliveryOf<Q>>),
    Retry(Envelope<Q::Job>),
}

/// What a wait for work ended with.
enum Wake<Q: Queue> {
    Job(Taken<Q>),
    /// The consumer is closed and drained.
    Exhausted,
    /// The retry lane is empty and nothing is pending.
    LaneIdle,
    Stop,
    Retire,
}

/// Waits for the first of: a due retry, a job from the consumer (unless it is
/// exhausted), the stop signal, a resize departure. Polled in that order, in place:
/// the futures are pinned here once.
async fn wait<Q, W>(
    shared: &Shared<Q, W>,
    consumer: &mut Q::Consumer,
    exhausted: bool,
    retiring: &mut Listen<'_>,
) -> Wake<Q>
where
    Q: Queue,
    W: Worker<Q::Job>,
{
    let mut from_queue = pin!((!exhausted).then(|| consumer.next()));
    let mut from_lane = pin!(shared.lane.as_ref().map(|lane| lane.next(exhausted)));
    let mut stop = pin!(shared.lifecycle.stop.wait());
    let mut retiring = Pin::new(retiring);
    poll_fn(|cx| {
        if let Some(next) = from_lane.as_mut().as_pin_mut()
            && let Poll::Ready(due) = next.poll(cx)
        {
            return Poll::Ready(match due {
                Some(envelope) => Wake::Job(Taken::Retry(envelope)),
                None => Wake::LaneIdle,
            });
        }
        if let Some(next) = from_queue.as_mut().as_pin_mut()
            && let Poll::Ready(received) = next.poll(cx)
        {
            return Poll::Ready(match received {
                Some(received) => Wake::Job(Taken::Queue(received)),
                None => Wake::Exhausted,
            });
        }
        if stop.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Wake::Stop);
        }
        if retiring.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Wake::Retire);
        }
        Poll::Pending
    })
    .await
}

/// Runs one worker until the queue is drained, the pool stops, or a resize retires it.
pub(crate) async fn run<Q, W>(
    shared: Arc<Shared<Q, W>>,
    mut consumer: Q::Consumer,
    counters: Arc<CachePadded<WorkerCounters>>,
    results: Option<ResultSink<W, Q::Job>>,
) where
    Q: Queue,
    W: Worker<Q::Job>,
{
    let support = std::sync::Arc::new(Support::new(Arc::clone(&shared), &consumer));
    // The worker's identity, for jobs' submits to recognise (see `current`).
    let key = std::sync::Arc::as_ptr(&support) as usize;
    shared.register_spawner(key, &consumer);
    let _exit = Exit {
        shared: &shared,
        counters: &counters,
        key,
    };
    let support: std::sync::Arc<dyn ContextSupport<Q::Job>> = support;
    let mut exhausted = false;
    let mut streak = 0;
    // Listen before claiming: see `Retire`. One listener serves every turn until a
    // post notifies it; only then is a new one made, still before the claim below.
    let mut retiring = shared.retire.posted.listen();
    loop {
        if retiring.notified() {
            retiring = shared.retire.posted.listen();
        }
        if shared.retire.try_claim() {
            break;
        }
        if exhausted && shared.lane.as_ref().is_none_or(|lane| lane.pending() == 0) {
            break;
        }
        // Fast path, without building any future: a due retry (older work first),
        // else a job the consumer has at hand.
        let ready = match shared.lane.as_ref().and_then(RetryLane::try_next) {
            Some(envelope) => Some(Taken::Retry(envelope)),
            None if exhausted => None,
            None => consumer
                .try_next()
                .or_else(|| snooze(&shared.executor, &mut consumer))
                .map(Taken::Queue),
        };
        let taken = match ready {
            Some(taken) => taken,
            None => match wait(&shared, &mut consumer, exhausted, &mut retiring).await {
                Wake::Job(taken) => taken,
                Wake::Exhausted => {
                    exhausted = true;
                    continue;
                }
                Wake::LaneIdle | Wake::Retire => continue,
                Wake::Stop => break,
            },
        };
        if shared.lifecycle.is_stopping() {
            give_back(&shared, taken).await;
            break;
        }
        if let Some(rate) = &shared.policies.rate
            && let Either::Right(()) = first_of(rate.acquire(), shared.lifecycle.stop.wait()).await
        {
            give_back(&shared, taken).await;
            break;
        }
        let (envelope, delivery) = match taken {
            Taken::Queue(received) => (received.envelope, Some(received.delivery)),
            Taken::Retry(envelope) => (envelope, None),
        };
        if let Some((envelope, delivery)) = run_plain_now(
            &shared,
            &counters,
            &support,
            key,
            envelope,
            delivery,
            results.as_ref(),
        ) {
            run_one(
                &shared,
                &counters,
                &support,
                key,
                envelope,
                delivery,
                results.as_ref(),
            )
            .await;
        }
        streak += 1;
        if streak == JOBS_PER_YIELD {
            streak = 0;
            if others_may_wait(&shared.executor) {
                yield_now().await;
            }
        }
    }
    if shared.lifecycle.is_stopping() {
        // Whatever this consumer can hand over without waiting (a local deque, a
        // prefetched batch) goes back now; the rest stays in the queue for shutdown.
        while let Some(received) = consumer.try_next() {
            shared.hand_back(received).await;
        }
    }
}

async fn give_back<Q: Queue, W: Worker<Q::Job>>(shared: &Shared<Q, W>, taken: Taken<Q>) {
    match taken {
        Taken::Queue(received) => shared.hand_back(received).await,
        Taken::Retry(envelope) => shared.hand_back_envelope(envelope),
    }
}

/// Runs a plain job (`Worker::PLAIN`) that nobody awaits (no handle, no results
/// stream), in memory, without metrics or retries, right here: one call and a count,
/// with no future of `run_one`'s. Nothing on this path awaits, so the job's books
/// (`Ending`) need not guard it; they are opened only for an outcome other than a
/// success. Gives the envelope back for `run_one` when the job is not such a job, or
/// the worker turned out not to be plain.
#[inline]
fn run_plain_now<Q, W>(
    shared: &Shared<Q, W>,
    counters: &WorkerCounters,
    support: &std::sync::Arc<dyn ContextSupport<Q::Job>>,
    key: usize,
    envelope: Envelope<Q::Job>,
    delivery: Option<DeliveryOf<Q>>,
    results: Option<&ResultSink<W, Q::Job>>,
) -> Option<(Envelope<Q::Job>, Option<DeliveryOf<Q>>)>
where
    Q: Queue,
    W: Worker<Q::Job>,
{
    // No retry lane: a failure goes straight to its fate.
    if !(W::PLAIN
        && shared.lane.is_none()
        && success_is_only_counted(shared, envelope.reply.is_some(), results))
    {
        return Some((envelope, delivery));
    }
    // No reply (checked), and the enqueue stamp serves only metrics (off).
    let Envelope {
        job, id, attempt, ..
    } = envelope;
    let cx = JobContext::new(id, attempt, std::sync::Arc::clone(support));
    let span = job_span(shared, delivery.as_ref(), id, attempt);
    let polls = Job {
        counters,
        id,
        key,
        span: &span,
    };
    match polls.run_plain(|| shared.worker.run_plain(job, cx)) {
        Ok(Ran::Ok(_)) => counters.record(Finish::Completed),
        Ok(ran) => {
            let ending = Ending {
                shared,
                counters,
                id,
                attempt,
                reply: None,
                delivery,
                results,
                started: None,
                backup: None,
                armed: true,
            };
            // In memory (checked above): nothing is owed to the queue.
            let owed = ending.decide(ran);
            debug_assert!(owed.is_none(), "an in-memory job owes its queue nothing");
        }
        // Not plain after all: `run_one` makes its future.
        Err((job, _)) => {
            let envelope = Envelope::new(job).with_id(id).with_attempt(attempt);
            return Some((envelope, delivery));
        }
    }
    None
}

/// Runs one job: opens its books, runs its attempt (see [`attempt`](crate::attempt):
/// a job ready on its first poll builds no future of the runtime's own), and has its
/// fate decided and settled.
#[allow(clippy::too_many_arguments)]
async fn run_one<Q, W>(
    shared: &Shared<Q, W>,
    counters: &WorkerCounters,
    support: &std::sync::Arc<dyn ContextSupport<Q::Job>>,
    key: usize,
    envelope: Envelope<Q::Job>,
    delivery: Option<DeliveryOf<Q>>,
    results: Option<&ResultSink<W, Q::Job>>,
) where
    Q: Queue,
    W: Worker<Q::Job>,
{
    let enqueued_at = envelope.enqueued_at();
    let Envelope {
        job,
        id,
        attempt,
        reply,
        ..
    } = envelope;
    // A job with a handle carries the handle's token as its reply's attachment; the
    // job's context gets the same attachment (a reference count, no token clone).
    let attachment = reply.as_ref().and_then(Reply::attachment).cloned();
    let token = attempt::job_token(attachment.as_ref());
    let started = shared.metrics.as_ref().map(|metrics| {
        if let Some(at) = enqueued_at {
            metrics.record_wait(at.elapsed());
        }
        metrics.queue_depth.set(shared.queue.depth() as f64);
        Instant::now()
    });
    let mut ending = Ending {
        shared,
        counters,
        id,
        attempt,
        reply,
        delivery,
        results,
        started,
        backup: None,
        armed: true,
    };
    let ran = if token.is_some_and(CancellationToken::is_cancelled) {
        Ran::Cancelled
    } else {
        // A copy for a retry, taken before the job moves into the worker; none on the
        // last attempt, which is never retried, nor where the queue keeps the job.
        ending.backup = match (&shared.lane, shared.cloner, &shared.policies.retry) {
            (Some(_), Some(copy), Some(policy)) if attempt < policy.attempts() => copy(&job),
            _ => None,
        };
        let mut cx = JobContext::new(id, attempt, std::sync::Arc::clone(support));
        if let Some(attachment) = &attachment {
            cx = cx.with_extension(std::sync::Arc::clone(attachment));
        }
        if let Some(metrics) = &shared.metrics {
            metrics.running.increment(1.0);
        }
        // Taken before the first poll: the timeout covers it.
        let deadline = shared
            .policies
            .timeout
            .map(|after| (after, tokio::time::Instant::now() + after));
        let span = job_span(shared, ending.delivery.as_ref(), id, attempt);
        let polls = Job {
            counters,
            id,
            key,
            span: &span,
        };
        // A plain job is one call: no future (see `Worker::PLAIN`).
        let plain = if W::PLAIN {
            polls.run_plain(|| shared.worker.run_plain(job, cx))
        } else {
            Err((job, cx))
        };
        let made = match plain {
            Ok(ran) => Err(ran),
            Err((job, cx)) => polls.make(|| shared.worker.run(job, cx)),
        };
        let ran = match made {
            Err(ran) => ran,
            Ok(future) => {
                let mut future = pin!(future);
                match poll_fn(|task| Poll::Ready(polls.poll(future.as_mut(), task))).await {
                    Poll::Ready(ran) => ran,
                    Poll::Pending => {
                        attempt::supervise(shared, &polls, future, deadline, token).await
                    }
                }
            }
        };
        if matches!(
            ran,
            Ran::TimedOut(_) | Ran::Cancelled | Ran::Interrupted | Ran::Abandoned
        ) {
            // Ended between polls (a Ready poll, or a panic, set the worker idle already).
            counters.idle();
        }
        if let Some(metrics) = &shared.metrics {
            metrics.running.decrement(1.0);
        }
        ran
    };
    if let Some(owed) = ending.decide(ran) {
        owed.settle(&shared.name).await;
    }
}

/// The job's span: under the producer's span when the queue carried its trace context;
/// else under whatever span is current.
fn job_span<Q: Queue, W: Worker<Q::Job>>(
    shared: &Shared<Q, W>,
    delivery: Option<&DeliveryOf<Q>>,
    id: crewpool_core::JobId,
    attempt: u32,
) -> tracing::Span {
    match delivery.and_then(crewpool_core::Delivery::parent_span) {
        Some(parent) => {
            tracing::info_span!(parent: parent, "job", pool = %shared.name, id = id.0, attempt)
        }
        None => tracing::info_span!("job", pool = %shared.name, id = id.0, attempt),
    }
}

impl<Q: Queue, W: Worker<Q::Job>> Shared<Q, W> {
    /// Starts one worker on a new consumer. Its place in `live` must already be
    /// counted.
    ///
    /// # Errors
    ///
    /// When the queue cannot make a consumer or a thread cannot start; the caller then
    /// counts the worker out again.
    pub(crate) fn start_worker(this: &Arc<Self>) -> Result<(), ResizeError> {
        let shared = &**this;
        let consumer = shared.queue.consumer().map_err(ResizeError::Queue)?;
        let counters = shared.counters.add_worker();
        let results = lock(&shared.results).clone();
        let index = shared.next_worker.fetch_add(1, Ordering::Relaxed);
        let work = run(Arc::clone(this), consumer, counters, results);
        match &shared.executor {
            Executor::Tokio(handle) => {
                handle.spawn(work);
            }
            Executor::Threads => {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(ResizeError::Thread)?;
                std::thread::Builder::new()
                    .name(format!("{}-{index}", shared.name))
                    .spawn(move || runtime.block_on(work))
                    .map_err(ResizeError::Thread)?;
            }
            Executor::Manual => {}
        }
        if let Some(metrics) = &shared.metrics {
            metrics.workers.increment(1.0);
        }
        Ok(())
    }

    /// Sets the number of workers: starts new ones, or asks some to leave after their
    /// current job.
    pub(crate) fn resize(this: &Arc<Self>, workers: usize) -> Result<(), ResizeError> {
        let shared = &**this;
        if workers == 0 {
            return Err(ResizeError::ZeroWorkers);
        }
        let mut target = lock(&shared.target);
        if !shared.lifecycle.is_open() {
            return Err(ResizeError::Closed);
        }
        if workers < *target {
            shared.retire.post(*target - workers);
        } else {
            // Cancel pending departures first, then start the rest.
            // `target` counts each worker kept or started, so it stays true if a
            // start fails half-way.
            let more = workers - *target;
            let stay = shared.retire.withdraw(more);
            *target += stay;
            for _ in stay..more {
                if !shared.lifecycle.live.try_count_up() {
                    return Err(ResizeError::Closed);
                }
                if let Err(error) = Self::start_worker(this) {
                    shared.lifecycle.live.count_down();
                    return Err(error);
                }
                *target += 1;
            }
        }
        *target = workers;
        Ok(())
    }
}
