//! The producer side: [`DequeQueue`]. What it shares with its consumers is in
//! [`crate::shared`]; how a producer waits for room, in [`crate::park`].

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use crewpool_core::{
    Batch, Envelope, JobId, PushError, Queue, QueueError, Replies, Retryable, TryPush, TryPushError,
};
use crossbeam_utils::CachePadded;

use crate::consumer::DequeConsumer;
use crate::deques::{Injector, Ring};
use crate::ledger::{Ledger, Refused};
use crate::park::{poll_room, wait_for_room};
use crate::registry::Registry;
use crate::shared::Shared;
use crate::waiters::{WaitList, Waiter};
use crewpool_core::sync::Arc;

/// A work-stealing queue: a global injector for pushed jobs, and one local deque per
/// consumer that its peers steal from. See the [crate docs](crate).
pub struct DequeQueue<J> {
    shared: Arc<Shared<J>>,
}

impl<J: Send + 'static> DequeQueue<J> {
    /// A queue holding at most `capacity` jobs; pushes wait for room beyond that.
    ///
    /// The bound covers every accepted job not yet handed to a worker, wherever it
    /// waits: the global injector, consumers' local deques and inboxes.
    ///
    /// # Examples
    ///
    /// ```
    /// use crewpool_core::{Envelope, Queue, TryPush};
    /// use crewpool_deque::DequeQueue;
    ///
    /// let queue = DequeQueue::bounded(1);
    /// queue.try_push(Envelope::new(1)).unwrap();
    /// assert!(queue.try_push(Envelope::new(2)).unwrap_err().is_full());
    /// assert_eq!(queue.capacity(), Some(1));
    /// ```
    ///
    /// # Panics
    ///
    /// If `capacity` is 0, as every crewpool queue does: what a bound of zero means
    /// differs between libraries (a rendezvous in Go's channels and flume, no bound at
    /// all in pond, a panic in tokio's channels), so crewpool refuses to guess. Use
    /// `bounded(1)` for the closest to a hand-off (a submit waits while one job is
    /// queued), or [`unbounded`](DequeQueue::unbounded).
    #[track_caller]
    pub fn bounded(capacity: usize) -> Self {
        assert!(
            capacity > 0,
            "a bounded queue needs a capacity of at least 1 (crewpool gives a bound of 0 no \
             meaning): use bounded(1) or unbounded()"
        );
        Self::with_capacity(Some(capacity))
    }

    /// A queue with no bound: pushes never wait (memory is the limit).
    ///
    /// # Examples
    ///
    /// ```
    /// use crewpool_core::Queue;
    /// use crewpool_deque::DequeQueue;
    ///
    /// let queue = DequeQueue::<u64>::unbounded();
    /// assert_eq!(queue.capacity(), None);
    /// ```
    pub fn unbounded() -> Self {
        Self::with_capacity(None)
    }

    fn with_capacity(capacity: Option<usize>) -> Self {
        DequeQueue {
            shared: Arc::new(Shared {
                ledger: Ledger::new(capacity),
                ring: capacity.map(Ring::new),
                injector: Injector::new(),
                registry: CachePadded::new(Registry::new()),
                sleepers: CachePadded::new(WaitList::new()),
                room: CachePadded::new(WaitList::new()),
            }),
        }
    }
}

impl<J: Send + 'static> Queue for DequeQueue<J> {
    type Job = J;
    type Consumer = DequeConsumer<J>;
    const REPLIES: bool = true;

    fn push(
        &self,
        envelope: Envelope<J>,
    ) -> impl Future<Output = Result<JobId, PushError<Envelope<J>>>> + Send {
        let shared = &*self.shared;
        Push {
            shared,
            envelope: Some(envelope),
            waiter: Waiter::new(&shared.room),
        }
    }

    #[inline]
    fn push_now(&self, envelope: Envelope<J>) -> Result<(), Envelope<J>> {
        try_push(&self.shared, envelope).map_err(TryPushError::into_inner)
    }

    fn push_batch<'a>(
        &'a self,
        batch: &'a mut Batch<J>,
    ) -> impl Future<Output = Result<(), PushError<()>>> + Send + 'a {
        let shared = &*self.shared;
        PushBatch {
            shared,
            batch,
            waiter: Waiter::new(&shared.room),
        }
    }

    fn consumer(&self) -> Result<DequeConsumer<J>, QueueError> {
        Ok(DequeConsumer::new(Arc::clone(&self.shared)))
    }

    fn depth(&self) -> usize {
        self.shared.ledger.count(&self.shared.registry)
    }

    fn capacity(&self) -> Option<usize> {
        self.shared.ledger.capacity()
    }

    fn close(&self) {
        if self.shared.ledger.close() {
            self.shared.sleepers.notify_all();
            self.shared.room.notify_all();
        }
    }

    fn is_closed(&self) -> bool {
        self.shared.ledger.is_closed()
    }
}

/// The future of [`DequeQueue::push`], written by hand (an `async` block copied the
/// envelope in and out of its state more than this does): each poll tries to push,
/// and while the queue is full waits for room as [`wait_for_room`] does, registered
/// with `waiter`. Dropping it drops the registration too, passing on a wake-up it may
/// have received (see `Waiter`).
struct Push<'a, J> {
    shared: &'a Shared<J>,
    /// `None` once the push completed.
    envelope: Option<Envelope<J>>,
    waiter: Waiter<'a>,
}

// No field is pinned (the envelope is moved in and out by value): `Push` may move
// between polls whatever the job type.
impl<J> Unpin for Push<'_, J> {}

impl<J> Future for Push<'_, J> {
    type Output = Result<JobId, PushError<Envelope<J>>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        loop {
            // Polled again after it completed: nothing left to do.
            let Some(envelope) = this.envelope.take() else {
                return Poll::Pending;
            };
            let id = envelope.id;
            match try_push(this.shared, envelope) {
                Ok(()) => {
                    this.waiter.leave();
                    return Poll::Ready(Ok(id));
                }
                Err(TryPushError::Full(back)) => this.envelope = Some(back),
                Err(refused) => {
                    this.waiter.leave();
                    return Poll::Ready(Err(PushError::Closed(refused.into_inner())));
                }
            }
            ready!(poll_room(this.shared, &mut this.waiter, cx));
        }
    }
}

/// Reserves a place, lands the job (in the ring of a bounded queue, else in the
/// injector), and wakes a sleeping consumer.
fn try_push<J>(shared: &Shared<J>, envelope: Envelope<J>) -> Result<(), TryPushError<Envelope<J>>> {
    match shared.ledger.reserve(false, &shared.registry) {
        Ok(()) => {}
        Err(Refused::Full) => return Err(TryPushError::Full(envelope)),
        Err(Refused::Closed) => return Err(TryPushError::Closed(envelope)),
    }
    shared.land(envelope);
    shared.sleepers.notify_one();
    Ok(())
}

/// The future of [`DequeQueue::push_batch`]: each poll reserves as many places as
/// the bound leaves free (one compare-and-swap for all of them), lands that many
/// envelopes from the front of the batch, and wakes as many sleeping consumers as it
/// landed jobs (one fence); while jobs are left and the queue is full, it waits for
/// room as [`Push`] does. Envelopes leave the batch only in the poll that accepts
/// them, so dropping it loses none.
struct PushBatch<'a, J> {
    shared: &'a Shared<J>,
    batch: &'a mut Batch<J>,
    waiter: Waiter<'a>,
}

impl<J> Future for PushBatch<'_, J> {
    type Output = Result<(), PushError<()>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        loop {
            if this.batch.is_empty() {
                this.waiter.leave();
                return Poll::Ready(Ok(()));
            }
            match try_push_batch(this.shared, this.batch) {
                // Room for all of it: done at the top of the loop.
                Ok(()) if this.batch.is_empty() => continue,
                // Room for part: wait for more.
                Ok(()) | Err(Refused::Full) => {}
                Err(Refused::Closed) => {
                    this.waiter.leave();
                    return Poll::Ready(Err(PushError::Closed(())));
                }
            }
            ready!(poll_room(this.shared, &mut this.waiter, cx));
        }
    }
}

/// Reserves places for as much of `batch` as there is room for, lands that many
/// envelopes and wakes up to as many sleeping consumers (see [`PushBatch`]).
fn try_push_batch<J>(shared: &Shared<J>, batch: &mut Batch<J>) -> Result<(), Refused> {
    // At most the batch's length is granted, so every place reserved is landed.
    let granted = shared.ledger.reserve_many(batch.len(), &shared.registry)?;
    for envelope in std::iter::from_fn(|| batch.take_front()).take(granted) {
        shared.land(envelope);
    }
    batch.accept(granted);
    shared.sleepers.notify_many(granted);
    Ok(())
}

impl<J: Send + 'static> Replies for DequeQueue<J> {}

impl<J: Clone + Send + 'static> Retryable for DequeQueue<J> {
    fn copy_for_retry(job: &J) -> Option<J> {
        Some(job.clone())
    }
}

impl<J: Send + 'static> TryPush for DequeQueue<J> {
    fn try_push(&self, envelope: Envelope<J>) -> Result<(), TryPushError<Envelope<J>>> {
        try_push(&self.shared, envelope)
    }

    async fn ready(&self) {
        let mut waiter = Waiter::new(&self.shared.room);
        wait_for_room(&self.shared, &mut waiter).await;
        waiter.finish();
    }
}

impl<J> fmt::Debug for DequeQueue<J> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DequeQueue")
            .field("ledger", &self.shared.ledger)
            .field("ring", &self.shared.ring.as_ref().map(Ring::len))
            .field("consumers", &self.shared.registry)
            .field("sleeping", &self.shared.sleepers.len())
            .finish()
    }
}
