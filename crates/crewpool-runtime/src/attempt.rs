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
//! Around every poll (and the call that makes the future) the worker marks itself as
//! inside the job's code: see `current` and `stats::activity`.

use std::future::{Future, poll_fn};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::{Pin, pin};
use std::task::{Context, Poll};

use crewpool_core::{JobContext, JobId, Queue, Worker};
use tokio_util::sync::CancellationToken;

use crate::current::Polling;
use crate::fate::Ran;
use crate::future::panic_message;
use crate::shared::Shared;
use crate::stats::WorkerCounters;

/// Runs one attempt of `job` on the worker with key `key`.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn run<Q, W>(
    shared: &Shared<Q, W>,
    counters: &WorkerCounters,
    key: usize,
    id: JobId,
    attempt: u32,
    job: Q::Job,
    cx: JobContext<Q::Job>,
    token: Option<&CancellationToken>,
    parent: Option<&tracing::Span>,
) -> Ran<W::Output, W::Error>
where
    Q: Queue,
    W: Worker<Q::Job>,
{
    // Taken before the first poll: the timeout covers it.
    let deadline = shared
        .policies
        .timeout
        .map(|after| (after, tokio::time::Instant::now() + after));
    // Under the producer's span when the queue carried its trace context; else under
    // whatever span is current.
    let span = match parent {
        Some(parent) => {
            tracing::info_span!(parent: parent, "job", pool = %shared.name, id = id.0, attempt)
        }
        None => tracing::info_span!("job", pool = %shared.name, id = id.0, attempt),
    };
    counters.polling(id);
    let made = {
        let _entered = span.enter();
        let _polling = Polling::enter(key);
        catch_unwind(AssertUnwindSafe(|| shared.worker.run(job, cx)))
    };
    let future = match made {
        Ok(future) => future,
        Err(payload) if counters.polled(id, true) => return Ran::Panicked(panic_message(payload)),
        Err(_) => return Ran::Abandoned,
    };
    let mut future = pin!(future);
    let job = Job {
        counters,
        id,
        key,
        span: &span,
    };
    let first = poll_fn(|cx| Poll::Ready(job.poll(future.as_mut(), cx))).await;
    if let Poll::Ready(ran) = first {
        return ran;
    }
    supervise(shared, &job, future, deadline, token).await
}

/// What each poll of the job needs.
struct Job<'a> {
    counters: &'a WorkerCounters,
    id: JobId,
    key: usize,
    span: &'a tracing::Span,
}

impl Job<'_> {
    /// Polls the job's future once, marked as inside the job, its panic caught.
    /// The worker's activity says "polling" when this is called.
    #[inline]
    fn poll<F, T, E>(&self, future: Pin<&mut F>, cx: &mut Context<'_>) -> Poll<Ran<T, E>>
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
async fn supervise<Q, W, F>(
    shared: &Shared<Q, W>,
    job: &Job<'_>,
    mut future: Pin<&mut F>,
    deadline: Option<(std::time::Duration, tokio::time::Instant)>,
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
