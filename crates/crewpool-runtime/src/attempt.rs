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
use std::time::Duration;

use crewpool_core::{Attachment, JobId, Queue, Worker};
use tokio_util::sync::CancellationToken;

use crate::current::Polling;
use crate::fate::Ran;
use crate::future::panic_message;
use crate::shared::Shared;
use crate::stats::WorkerCounters;

/// The job's own cancellation token, if it was submitted with a handle (the
/// attachment its handle put on its reply).
pub(crate) fn job_token(attachment: Option<&Attachment>) -> Option<&CancellationToken> {
    attachment.and_then(|attachment| attachment.downcast_ref::<CancellationToken>())
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

    /// Runs a plain job (`Worker::PLAIN`) to its end: the one call, marked as inside
    /// the job, its panic caught, with no future. `Err` gives the job back from a
    /// worker that turned out not to be plain; the caller then makes its future.
    #[inline]
    pub(crate) fn run_plain<T, E, B>(
        &self,
        call: impl FnOnce() -> Result<Result<T, E>, B>,
    ) -> Result<Ran<T, E>, B> {
        self.counters.polling(self.id);
        let done = {
            let _entered = self.span.enter();
            let _polling = Polling::enter(self.key);
            catch_unwind(AssertUnwindSafe(call))
        };
        let done = match done {
            Ok(Err(back)) => {
                self.counters.idle();
                return Err(back);
            }
            Ok(Ok(result)) => Ok(result),
            Err(payload) => Err(payload),
        };
        if !self.counters.polled(self.id, true) {
            return Ok(Ran::Abandoned);
        }
        Ok(match done {
            Ok(Ok(output)) => Ran::Ok(output),
            Ok(Err(error)) => Ran::Failed(error),
            Err(payload) => Ran::Panicked(panic_message(payload)),
        })
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
