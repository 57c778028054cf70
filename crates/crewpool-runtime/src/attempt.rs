//! One attempt of a job: its future made and polled under the pool's policies, with
//! its panic caught, ending in a [`Ran`] for [`fate`](crate::fate) to decide on.
//!
//! # The fast path
//!
//! The job's future is polled once, in place, with nothing around it. A job that is
//! ready on that first poll (a plain function: the common case for CPU-bound work on
//! dedicated threads) ends there: no timer is started, no cancellation future built,
//! nothing registered with the stop signal. Only a job that returns `Pending` is
//! supervised: from then on its timeout, its handle's cancellation and the pool's stop
//! signal are polled after it each time it wakes, the job first, so a job that
//! completes in the same poll as a stop, a timeout or a cancel counts as done (see
//! "Races" in `lifecycle`). The timeout counts from before the first poll.
//!
//! The worker pins one slot for job futures when it starts and reuses it for every
//! job, and runs all of the above but the supervision as plain function calls: a job
//! that is ready on its first poll costs no future of the runtime's own.
//!
//! Around every poll (and the call that makes the future) the worker marks itself as
//! inside the job's code: see `current` and `stats::activity`.

use std::future::{Future, poll_fn};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::{Pin, pin};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crewpool_core::{
    Attachment, ContextSupport, Envelope, JobContext, JobId, Queue, Reply, Worker,
};
use tokio_util::sync::CancellationToken;

use crate::backend::DeliveryOf;
use crate::current::Polling;
use crate::fate::{Ending, Owed, Ran};
use crate::future::panic_message;
use crate::handle::ResultSink;
use crate::shared::Shared;
use crate::stats::WorkerCounters;

/// A job about to be attempted: what its attempt needs besides its future.
pub(crate) struct Prepared<'a, Q: Queue, W: Worker<Q::Job>> {
    pub(crate) ending: Ending<'a, Q, W>,
    pub(crate) job: Q::Job,
    pub(crate) cx: JobContext<Q::Job>,
    /// The job's own data (its handle's cancellation token), if it has a handle.
    pub(crate) attachment: Option<Attachment>,
    /// When the timeout (if any) ends the attempt, taken before the first poll.
    pub(crate) deadline: Option<(Duration, tokio::time::Instant)>,
    pub(crate) span: tracing::Span,
}

impl<Q: Queue, W: Worker<Q::Job>> Prepared<'_, Q, W> {
    /// The job's own cancellation token, if it was submitted with a handle.
    pub(crate) fn token(attachment: Option<&Attachment>) -> Option<&CancellationToken> {
        attachment.and_then(|attachment| attachment.downcast_ref::<CancellationToken>())
    }
}

/// Takes a job's envelope and delivery to the start of its attempt: its books opened
/// (an armed [`Ending`]), its retry copy taken, its context made. A job cancelled
/// through its handle before it started ends here: its fate is decided at once, and
/// what its queue is owed comes back as the error.
#[allow(clippy::too_many_arguments)]
pub(crate) fn prepare<'a, Q, W>(
    shared: &'a Shared<Q, W>,
    counters: &'a WorkerCounters,
    support: &std::sync::Arc<dyn ContextSupport<Q::Job>>,
    envelope: Envelope<Q::Job>,
    delivery: Option<DeliveryOf<Q>>,
    results: Option<&'a ResultSink<W, Q::Job>>,
) -> Result<Prepared<'a, Q, W>, Option<Owed<DeliveryOf<Q>>>>
where
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
    if Prepared::<Q, W>::token(attachment.as_ref()).is_some_and(CancellationToken::is_cancelled) {
        return Err(ending.decide(Ran::Cancelled));
    }
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
    // Under the producer's span when the queue carried its trace context; else under
    // whatever span is current.
    let parent = ending
        .delivery
        .as_ref()
        .and_then(crewpool_core::Delivery::parent_span);
    let span = match parent {
        Some(parent) => {
            tracing::info_span!(parent: parent, "job", pool = %shared.name, id = id.0, attempt)
        }
        None => tracing::info_span!("job", pool = %shared.name, id = id.0, attempt),
    };
    Ok(Prepared {
        ending,
        job,
        cx,
        attachment,
        deadline,
        span,
    })
}

/// What each poll of a job's future needs.
pub(crate) struct Job<'a> {
    pub(crate) counters: &'a WorkerCounters,
    pub(crate) id: JobId,
    /// The worker's key (see `current`).
    pub(crate) key: usize,
    pub(crate) span: &'a tracing::Span,
}

impl Job<'_> {
    /// Makes the job's future (calls the worker function), marked as inside the job,
    /// its panic caught; a panic ends the attempt.
    #[inline]
    pub(crate) fn make<F, T, E>(&self, make: impl FnOnce() -> F) -> Result<F, Ran<T, E>> {
        self.counters.polling(self.id);
        let made = {
            let _entered = self.span.enter();
            let _polling = Polling::enter(self.key);
            catch_unwind(AssertUnwindSafe(make))
        };
        match made {
            Ok(future) => Ok(future),
            Err(payload) if self.counters.polled(self.id, true) => {
                Err(Ran::Panicked(panic_message(payload)))
            }
            Err(_) => Err(Ran::Abandoned),
        }
    }

    /// Polls the job's future once, marked as inside the job, its panic caught.
    /// The worker's activity says "polling" when this is called.
    #[inline]
    pub(crate) fn poll<F, T, E>(&self, future: Pin<&mut F>, cx: &mut Context<'_>) -> Poll<Ran<T, E>>
    where
        F: Future<Output = Result<T, E>>,
    {
        let polled = {
            let _entered = self.span.enter();
            let _polling = Polling::enter(self.key);
            catch_unwind(AssertUnwindSafe(|| future.poll(cx)))
        };
        if !self
            .counters
            .polled(self.id, !matches!(polled, Ok(Poll::Pending)))
        {
            return Poll::Ready(Ran::Abandoned);
        }
        match polled {
            Ok(Poll::Ready(Ok(output))) => Poll::Ready(Ran::Ok(output)),
            Ok(Poll::Ready(Err(error))) => Poll::Ready(Ran::Failed(error)),
            Err(payload) => Poll::Ready(Ran::Panicked(panic_message(payload))),
            Ok(Poll::Pending) => Poll::Pending,
        }
    }
}

/// Polls a job that returned `Pending` until it ends, or its timeout, its handle's
/// cancellation or the pool's stop ends it first (polled in that order, after it).
#[cold]
pub(crate) async fn supervise<Q, W, F>(
    shared: &Shared<Q, W>,
    job: &Job<'_>,
    mut future: Pin<&mut F>,
    deadline: Option<(Duration, tokio::time::Instant)>,
    token: Option<&CancellationToken>,
) -> Ran<W::Output, W::Error>
where
    Q: Queue,
    W: Worker<Q::Job>,
    F: Future<Output = Result<W::Output, W::Error>>,
{
    let mut timeout = pin!(deadline.map(|(_, at)| tokio::time::sleep_until(at)));
    let mut cancelled = pin!(token.map(CancellationToken::cancelled));
    let mut stop = pin!(shared.lifecycle.stop.wait());
    // The job was just polled (in this same poll of the worker): not again until woken.
    let mut woken = false;
    poll_fn(|cx| {
        if std::mem::replace(&mut woken, true) {
            job.counters.polling(job.id);
            if let Poll::Ready(ran) = job.poll(future.as_mut(), cx) {
                return Poll::Ready(ran);
            }
        }
        if let Some(timeout) = timeout.as_mut().as_pin_mut()
            && timeout.poll(cx).is_ready()
        {
            let after = deadline.map(|(after, _)| after).unwrap_or_default();
            return Poll::Ready(Ran::TimedOut(after));
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
