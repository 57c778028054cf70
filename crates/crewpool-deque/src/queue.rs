//! The producer side: [`DequeQueue`] and the state every consumer shares.

use std::fmt;
use std::future::{Future, poll_fn};
use std::task::Poll;

use crewpool_core::{
    Envelope, JobId, PushError, Queue, QueueError, Replies, Retryable, TryPush, TryPushError,
};
use crossbeam_utils::CachePadded;

use crate::consumer::DequeConsumer;
use crate::deques::Injector;
use crate::ledger::{Ledger, Refused};
use crate::registry::Registry;
use crate::waiters::{WaitList, Waiter};
use crewpool_core::sync::Arc;

/// What the queue handle and its consumers share.
pub(crate) struct Shared<J> {
    pub(crate) ledger: Ledger,
    /// Jobs pushed by producers, and the local jobs of dropped consumers.
    pub(crate) injector: Injector<Envelope<J>>,
    // Padded: producers read `sleepers` per push, takes read `room` per job and
    // searches read the registry's version, while each is written by the other side
    // now and then (a consumer parking, a producer waiting for room, a producer
    // summing the counts under the registry lock).
    pub(crate) registry: CachePadded<Registry<Envelope<J>>>,
    /// Consumers parked in `next`.
    pub(crate) sleepers: CachePadded<WaitList>,
    /// Producers waiting for room in `push` or `ready`.
    pub(crate) room: CachePadded<WaitList>,
}

impl<J> Shared<J> {
    /// Wakes a producer waiting for room after a take, which fenced after counting
    /// itself (`Slot::count_taken`). Unbounded queues have no such producers.
    pub(crate) fn room_freed(&self) {
        if self.ledger.capacity().is_some() {
            self.room.notify_one_fenced();
        }
    }

    fn has_room(&self) -> bool {
        self.ledger.has_room(&self.registry)
    }
}

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

    fn push(
        &self,
        envelope: Envelope<J>,
    ) -> impl Future<Output = Result<JobId, PushError<Envelope<J>>>> + Send {
        let shared = &*self.shared;
        async move {
            let id = envelope.id;
            let mut envelope = envelope;
            // Dropping this future drops the registration too, passing on a wake-up it
            // may have received (see `Waiter`).
            let mut waiter = Waiter::new(&shared.room);
            loop {
                match try_push(shared, envelope) {
                    Ok(()) => break,
                    Err(TryPushError::Full(back)) => envelope = back,
                    Err(refused) => {
                        waiter.finish();
                        return Err(PushError::Closed(refused.into_inner()));
                    }
                }
                wait_for_room(shared, &mut waiter).await;
            }
            waiter.finish();
            Ok(id)
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

/// Reserves a place, lands the job in the injector, and wakes a sleeping consumer.
fn try_push<J>(shared: &Shared<J>, envelope: Envelope<J>) -> Result<(), TryPushError<Envelope<J>>> {
    match shared.ledger.reserve(false, &shared.registry) {
        Ok(()) => {}
        Err(Refused::Full) => return Err(TryPushError::Full(envelope)),
        Err(Refused::Closed) => return Err(TryPushError::Closed(envelope)),
    }
    shared.injector.push(envelope);
    shared.sleepers.notify_one();
    Ok(())
}

/// Completes when the queue has room or is closed, registered with `waiter` meanwhile.
///
/// A poll that finds no room returns `Pending` with the waker registered, after at
/// most a few cheap checks ([`linger_for_room`]): it never holds the caller's thread
/// beyond that, so a producer on an async runtime lets the runtime's other tasks run
/// while the queue is full.
async fn wait_for_room<J>(shared: &Shared<J>, waiter: &mut Waiter<'_>) {
    poll_fn(|cx| {
        if shared.has_room() || linger_for_room(shared) {
            return Poll::Ready(());
        }
        waiter.register(cx.waker());
        // Checked again after registering: a take in between would otherwise be missed.
        if shared.has_room() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
}

/// The short, bounded spin before a producer parks for room: a few checks with
/// exponential backoff in between, spinning only (1 to 64 CPU pause hints, about a
/// hundred in all: a microsecond or two), never yielding the thread. When consumers are
/// taking jobs on other cores, room often comes back within that time, and a producer
/// that finds it here saves parking and a wake-up. Anything longer would hold the
/// thread, which on an async runtime belongs to other tasks too. Not under loom (see
/// `DequeConsumer::linger`).
fn linger_for_room<J>(shared: &Shared<J>) -> bool {
    #[cfg(not(crewpool_loom))]
    {
        let backoff = crossbeam_utils::Backoff::new();
        for _ in 0..LINGER_STEPS {
            backoff.spin();
            if shared.has_room() {
                return true;
            }
        }
    }
    #[cfg(crewpool_loom)]
    let _ = shared;
    false
}

/// How many checks the producer's and the consumer's lingers make: with
/// `Backoff::spin`'s doubling, 1 + 2 + ... + 64 pause hints in all (it stops doubling
/// at 64).
pub(crate) const LINGER_STEPS: usize = 7;

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
            .field("consumers", &self.shared.registry)
            .field("sleeping", &self.shared.sleepers.len())
            .finish()
    }
}
