//! One worker's loop: take a job, run it under the pool's policies with its panic
//! caught, report, settle, repeat.
//!
//! The loop's synchronisation uses no tokio type, so the loom models run it as it is;
//! tokio appears only in the optional policies (timeouts, delayed retries, the rate
//! limiter), which the models leave off. The loop leaves when:
//!
//! - its consumer says the queue is closed and drained, and no retry is pending;
//! - the pool stops (see [`lifecycle`](crate::lifecycle) for the states and races);
//! - it claims a resize-down token (see [`Retire`](crate::shared::Retire)), after its
//!   current job.

use std::fmt;
use std::future::{Future, poll_fn};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::pin;
use std::task::Poll;
use std::time::{Duration, Instant};

use crewpool_core::{
    Consumer, ContextSupport, Delivery, Envelope, JobContext, JobId, Queue, Received, Reply, Worker,
};
use tokio_util::sync::CancellationToken;

use crate::current::Polling;
use crate::future::{Either, first_of, panic_message, yield_now};
use crate::handle::{JobError, JobResult, Outcome};
use crate::lane::RetryLane;
use crate::loom::Arc;
use crate::policy::{Failure, FailureKind};
use crate::shared::{DeliveryOf, Shared, Support, is_durable};
use crate::signal::Listen;
use crate::stats::{Finish, Padded, WorkerCounters};

/// Where the results of jobs nobody holds a handle for go.
pub(crate) type ResultSink<W, J> =
    flume::Sender<JobResult<<W as Worker<J>>::Output, <W as Worker<J>>::Error>>;

/// How many jobs a worker runs back to back before yielding to other tasks on its
/// thread, so a queue that is never empty cannot monopolise an executor thread.
const JOBS_PER_YIELD: u32 = 32;

/// Counts the worker out of `live` however the loop ends (even by a panic in a
/// backend, or its runtime dropping its task), and tells a stopping shutdown.
struct Exit<'a, Q: Queue, W: Worker<Q::Job>> {
    shared: &'a Shared<Q, W>,
    counters: &'a WorkerCounters,
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
        self.counters.left();
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
    retiring: Listen<'_>,
) -> Wake<Q>
where
    Q: Queue,
    W: Worker<Q::Job>,
{
    let mut from_queue = pin!((!exhausted).then(|| consumer.next()));
    let mut from_lane = pin!(shared.lane.as_ref().map(|lane| lane.next(exhausted)));
    let mut stop = pin!(shared.lifecycle.stop.wait());
    let mut retiring = pin!(retiring);
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
    counters: Arc<Padded<WorkerCounters>>,
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
    loop {
        // Listen before claiming: see `Retire`.
        let retiring = shared.retire.posted.listen();
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
            None => consumer.try_next().map(Taken::Queue),
        };
        let taken = match ready {
            Some(taken) => taken,
            None => match wait(&shared, &mut consumer, exhausted, retiring).await {
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
        streak += 1;
        if streak == JOBS_PER_YIELD {
            streak = 0;
            yield_now().await;
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

/// How one attempt ended.
enum Ran<T, E> {
    Ok(T),
    Failed(E),
    Panicked(String),
    TimedOut,
    Cancelled,
    Interrupted,
    /// A stopping shutdown gave up on the job while its worker was inside it, and
    /// reported it as still running (see `stats::activity`).
    Abandoned,
}

/// How a finished job is settled with its queue.
enum Settle {
    Ack,
    /// Failed for good (no retry policy, or it gave up).
    DeadLetter(String),
    Release,
}

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
    let job_attachment = reply.as_ref().and_then(Reply::attachment).cloned();
    let job_token = job_attachment
        .as_deref()
        .and_then(|attachment| attachment.downcast_ref::<CancellationToken>());
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
        reply,
        delivery,
        results,
        started,
        armed: true,
    };
    if job_token.is_some_and(CancellationToken::is_cancelled) {
        ending
            .finish(Finish::Cancelled, Err(JobError::Cancelled), Settle::Ack)
            .await;
        return;
    }

    // A copy for a retry, taken before the job moves into the worker; none on the
    // last attempt, which is never retried, nor where the queue keeps the job.
    let backup = match (&shared.lane, shared.cloner, &shared.policies.retry) {
        (Some(_), Some(copy), Some(policy)) if attempt < policy.attempts() => copy(&job),
        _ => None,
    };
    let mut cx = JobContext::new(id, attempt, std::sync::Arc::clone(support));
    if let Some(attachment) = &job_attachment {
        cx = cx.with_extension(std::sync::Arc::clone(attachment));
    }

    if let Some(metrics) = &shared.metrics {
        metrics.running.increment(1.0);
    }
    let span = tracing::info_span!("job", pool = %shared.name, id = id.0, attempt);
    // Inside the job's own code from here to the end of each poll: see `current` and
    // `stats::activity`.
    counters.polling(id);
    let ran = {
        // Everything is pinned here once and polled in place, the job first, so a job
        // that completes in the same poll as a stop, a timeout or a cancel counts as
        // done (see "Races" in `lifecycle`).
        let made = {
            let _entered = span.enter();
            let _polling = Polling::enter(key);
            catch_unwind(AssertUnwindSafe(|| shared.worker.run(job, cx)))
        };
        match made {
            Err(payload) if counters.polled(id, true) => Ran::Panicked(panic_message(payload)),
            Err(_) => Ran::Abandoned,
            Ok(attempt_run) => {
                let mut attempt_run = pin!(attempt_run);
                let mut timeout = pin!(shared.policies.timeout.map(tokio::time::sleep));
                let mut cancelled = pin!(job_token.map(CancellationToken::cancelled));
                let mut stop = pin!(shared.lifecycle.stop.wait());
                let mut first = true;
                poll_fn(|cx| {
                    if !std::mem::take(&mut first) {
                        counters.polling(id);
                    }
                    let polled = {
                        let _entered = span.enter();
                        let _polling = Polling::enter(key);
                        catch_unwind(AssertUnwindSafe(|| attempt_run.as_mut().poll(cx)))
                    };
                    if !counters.polled(id, !matches!(polled, Ok(Poll::Pending))) {
                        return Poll::Ready(Ran::Abandoned);
                    }
                    match polled {
                        Ok(Poll::Ready(Ok(output))) => return Poll::Ready(Ran::Ok(output)),
                        Ok(Poll::Ready(Err(error))) => return Poll::Ready(Ran::Failed(error)),
                        Err(payload) => return Poll::Ready(Ran::Panicked(panic_message(payload))),
                        Ok(Poll::Pending) => {}
                    }
                    if let Some(timeout) = timeout.as_mut().as_pin_mut()
                        && timeout.poll(cx).is_ready()
                    {
                        return Poll::Ready(Ran::TimedOut);
                    }
                    if let Some(cancelled) = cancelled.as_mut().as_pin_mut()
                        && cancelled.poll(cx).is_ready()
                    {
                        return Poll::Ready(Ran::Cancelled);
                    }
                    if stop.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(Ran::Interrupted);
                    }
                    Poll::Pending
                })
                .await
            }
        }
    };
    if matches!(
        ran,
        Ran::TimedOut | Ran::Cancelled | Ran::Interrupted | Ran::Abandoned
    ) {
        // Ended between polls (a Ready poll, or a panic, set the worker idle already).
        counters.idle();
    }
    if let Some(metrics) = &shared.metrics {
        metrics.running.decrement(1.0);
    }

    let fail = match ran {
        Ran::Ok(output) => {
            ending
                .finish(Finish::Completed, Ok(output), Settle::Ack)
                .await;
            return;
        }
        Ran::Cancelled => {
            ending
                .finish(Finish::Cancelled, Err(JobError::Cancelled), Settle::Ack)
                .await;
            return;
        }
        Ran::Interrupted => {
            shared.record_interrupted(id);
            ending
                .finish(
                    Finish::Interrupted,
                    Err(JobError::Interrupted),
                    Settle::Release,
                )
                .await;
            return;
        }
        Ran::Abandoned => {
            // Reported as still running by the shutdown that gave up on it: its
            // outcome is discarded, and it is counted as interrupted now it is over.
            ending
                .finish(
                    Finish::Interrupted,
                    Err(JobError::Interrupted),
                    Settle::Release,
                )
                .await;
            return;
        }
        Ran::Failed(error) => Fail::Failed(error),
        Ran::Panicked(message) => {
            tracing::warn!(pool = %shared.name, job = %id, %message, "job panicked");
            Fail::Panicked(message)
        }
        Ran::TimedOut => Fail::TimedOut(shared.policies.timeout.unwrap_or_default()),
    };

    // One policy decides (see `Policies::retry`); only a retry that can happen counts
    // as one: a durable queue keeps the job, an in-memory one needs the copy.
    let retry = shared.policies.retry.as_ref().filter(|policy| {
        (is_durable::<Q>() || backup.is_some()) && policy.should_retry(&fail.view(attempt))
    });
    if let Some(policy) = retry {
        let delay = policy.delay_after(attempt);
        counters.record(Finish::Retried);
        if let Some(metrics) = &shared.metrics {
            metrics.retried.increment(1);
        }
        tracing::debug!(pool = %shared.name, job = %id, attempt, ?delay, reason = %fail, "retrying");
        match (&shared.lane, backup) {
            (Some(lane), Some(job)) => {
                let mut again = Envelope::new(job).with_id(id).with_attempt(attempt + 1);
                again.reply = ending.disarm();
                if shared.metrics.is_some() {
                    again = again.with_enqueued_at(Instant::now() + delay);
                }
                lane.schedule(again, tokio::time::Instant::now() + delay);
            }
            _ => {
                // A durable queue: it runs the next attempt (in any process).
                ending.disarm();
                if let Some(delivery) = ending.delivery.take()
                    && let Err(error) = delivery.retry(delay, &fail.to_string()).await
                {
                    tracing::warn!(pool = %shared.name, job = %id, %error, "could not schedule a retry with the queue");
                }
            }
        }
        return;
    }

    // Only durable queues keep the reason; in memory the outcome carries it.
    let reason = if is_durable::<Q>() {
        fail.to_string()
    } else {
        String::new()
    };
    let (finish, error) = match fail {
        Fail::Failed(error) => (Finish::Failed, JobError::Failed(error)),
        Fail::Panicked(message) => (Finish::Panicked, JobError::Panicked(message)),
        Fail::TimedOut(_) => (Finish::TimedOut, JobError::TimedOut),
    };
    ending
        .finish(finish, Err(error), Settle::DeadLetter(reason))
        .await;
}

/// A failed attempt.
enum Fail<E> {
    Failed(E),
    Panicked(String),
    TimedOut(Duration),
}

impl<E: fmt::Display + Send + 'static> Fail<E> {
    /// The attempt as a retry predicate sees it.
    fn view(&self, attempt: u32) -> Failure<'_> {
        match self {
            Fail::Failed(error) => {
                Failure::new(FailureKind::Failed, attempt, self).with_error(error)
            }
            Fail::Panicked(_) => Failure::new(FailureKind::Panicked, attempt, self),
            Fail::TimedOut(_) => Failure::new(FailureKind::TimedOut, attempt, self),
        }
    }
}

impl<E: fmt::Display> fmt::Display for Fail<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fail::Failed(error) => error.fmt(f),
            Fail::Panicked(message) => write!(f, "panicked: {message}"),
            Fail::TimedOut(after) => write!(f, "timed out after {after:?}"),
        }
    }
}

/// Everything needed to close a job's books once its final outcome is known.
///
/// Armed until the outcome is delivered (or the job is handed on to a retry): dropped
/// armed, which happens only when the worker's task is dropped mid-job (its tokio
/// runtime went away), it counts the job as interrupted and tells its handle so.
struct Ending<'a, Q: Queue, W: Worker<Q::Job>> {
    shared: &'a Shared<Q, W>,
    counters: &'a WorkerCounters,
    id: JobId,
    reply: Option<Reply>,
    delivery: Option<DeliveryOf<Q>>,
    results: Option<&'a ResultSink<W, Q::Job>>,
    started: Option<Instant>,
    armed: bool,
}

impl<Q: Queue, W: Worker<Q::Job>> Ending<'_, Q, W> {
    /// The job's books are closed elsewhere (a retry carries its reply on): disarms
    /// and hands the reply over.
    fn disarm(&mut self) -> Option<Reply> {
        self.armed = false;
        self.reply.take()
    }

    /// Counts the outcome, delivers it, and settles the job with its queue if the
    /// queue keeps it (in-memory deliveries have nothing to settle: their methods are
    /// documented no-ops).
    async fn finish(
        mut self,
        finish: Finish,
        outcome: Outcome<W::Output, W::Error>,
        settle: Settle,
    ) {
        self.armed = false;
        self.counters.record(finish);
        if let Some(metrics) = &self.shared.metrics {
            let counter = match finish {
                Finish::Completed => Some(&metrics.completed),
                Finish::Failed => Some(&metrics.failed),
                Finish::Panicked => Some(&metrics.panicked),
                Finish::TimedOut => Some(&metrics.timed_out),
                Finish::Cancelled => Some(&metrics.cancelled),
                Finish::Interrupted | Finish::Retried => None,
            };
            if let Some(counter) = counter {
                counter.increment(1);
            }
            if let Some(started) = self.started {
                metrics.record_run(started.elapsed());
            }
        }
        deliver(self.reply.take(), self.results, self.id, outcome);
        let Some(delivery) = self.delivery.take().filter(|_| is_durable::<Q>()) else {
            return;
        };
        let settled = match settle {
            Settle::Ack => delivery.ack().await,
            Settle::DeadLetter(reason) => delivery.dead_letter(&reason).await,
            Settle::Release => delivery.release().await,
        };
        if let Err(error) = settled {
            tracing::warn!(pool = %self.shared.name, job = %self.id, %error, "could not settle a job with its queue");
        }
    }
}

impl<Q: Queue, W: Worker<Q::Job>> Drop for Ending<'_, Q, W> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        // The worker's task was dropped while the job ran: its runtime went away.
        self.counters.idle();
        self.counters.record(Finish::Interrupted);
        self.shared.record_interrupted(self.id);
        deliver(
            self.reply.take(),
            self.results,
            self.id,
            Err(JobError::Interrupted),
        );
        // A durable queue's delivery, dropped unsettled, comes back with its lease.
    }
}

/// Sends an outcome to the job's reply if it has one, and to the results stream if the
/// pool has one and the reply did not take it (a durable queue's reply only stores a
/// copy for the producer, in whichever process it is), else drops it (it was counted).
#[inline]
fn deliver<T: Send + 'static, E: Send + 'static>(
    reply: Option<Reply>,
    results: Option<&flume::Sender<JobResult<T, E>>>,
    id: JobId,
    outcome: Outcome<T, E>,
) {
    let left = match reply {
        Some(reply) => reply.send(outcome),
        None => Some(outcome),
    };
    if let (Some(outcome), Some(results)) = (left, results) {
        // Unbounded: never waits. Fails only if the stream was dropped.
        let _ = results.send(JobResult { id, outcome });
    }
}
