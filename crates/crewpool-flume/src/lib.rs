//! A crewpool queue on a [flume](https://docs.rs/flume) channel.
//!
//! The simple, predictable backend: one multi-producer, multi-consumer channel, FIFO,
//! bounded (backpressure: producers wait for room) or unbounded. Every worker's
//! [`Consumer`] is a clone of the channel's receiver, so an idle worker takes the next
//! job as soon as one is pushed; there is no stealing and no local state to lose.
//!
//! # Example
//!
//! ```
//! use crewpool_core::{Consumer, Envelope, Queue, TryPush};
//! use crewpool_flume::FlumeQueue;
//!
//! # tokio_test_block_on(async {
//! let queue = FlumeQueue::bounded(2);
//! queue.push(Envelope::new("a")).await.unwrap();
//! queue.try_push(Envelope::new("b")).unwrap();
//! assert!(queue.try_push(Envelope::new("c")).unwrap_err().is_full());
//!
//! queue.close();
//! let mut consumer = queue.consumer().unwrap();
//! assert_eq!(consumer.next().await.unwrap().envelope.job, "a");
//! assert_eq!(consumer.next().await.unwrap().envelope.job, "b");
//! assert!(consumer.next().await.is_none());
//! # });
//! # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
//! #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
//! # }
//! ```
//!
//! # Waiting for room
//!
//! A push into a full queue waits for a consumer to take a job, then tries again; it
//! never parks its job inside the channel, so a push accepts its job only in the poll
//! that returns `Ok` (the `Queue` contract: a push dropped while it waits pushed
//! nothing, and a pool counts exactly what was accepted). A waiting push counts itself
//! before it looks for room, and a take wakes waiting pushes only when that count is
//! not zero: a take nobody waits on costs one load.
//!
//! # Closing
//!
//! flume has no explicit close; a channel disconnects when its last sender goes. The
//! queue keeps the one sender that pushes use, and [`close`](Queue::close) drops it:
//! pushes fail with `Closed` from then on, including one that was waiting for room,
//! and consumers see the end once the channel is disconnected *and* empty: nothing
//! accepted is lost.

#![warn(clippy::unwrap_used, clippy::expect_used)]

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crewpool_core::sync::{Mutex, MutexGuard, lock};

use crewpool_core::{
    Consumer, Envelope, Handover, JobId, PushError, Queue, QueueError, Received, Replies,
    Retryable, Spawn, TryPush, TryPushError,
};
use event_listener::Event;
use flume::{Receiver, Sender, WeakSender};

/// A queue on a flume channel. See the [crate docs](crate).
pub struct FlumeQueue<J> {
    /// The sender pushes go through; `None` once closed.
    sender: Mutex<Option<Sender<Envelope<J>>>>,
    receiver: Receiver<Envelope<J>>,
    /// Mirrors `sender.is_none()` for a lock-free `is_closed`.
    closed: AtomicBool,
    /// Notified when a consumer takes a job or the queue closes, for
    /// [`TryPush::ready`]; flume itself only wakes its own waiting senders.
    room: Arc<Room>,
}

/// Producers waiting for room, and how they are woken: see "Waiting for room" in the
/// crate docs.
#[derive(Default)]
struct Room {
    event: Event,
    /// Producers inside [`TryPush::ready`]: a take notifies only when this is not 0.
    waiting: AtomicUsize,
}

impl Room {
    /// After a take: wakes the producers waiting for room, if any. No fence: flume's
    /// channel lock, which the take held, orders it with a producer's look for room
    /// (see [`Waiting`]).
    fn freed(&self) {
        // Relaxed: see `Waiting`.
        if self.waiting.load(Ordering::Relaxed) != 0 {
            self.event.notify(usize::MAX);
        }
    }
}

/// A producer counted in [`Room::waiting`] while it looks for room and waits for it.
///
/// It is counted before it registers its listener and looks for room (`has_room`,
/// under flume's channel lock), and a take looks at the count after taking its job
/// under that same lock: either the take comes first in the lock's order and the
/// producer sees its room, or the producer's look comes first, so its count (and its
/// listener) happen before the take's look, which then sees the count and notifies.
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn new(waiting: &'a AtomicUsize) -> Self {
        waiting.fetch_add(1, Ordering::SeqCst);
        Waiting(waiting)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl<J: Send + 'static> FlumeQueue<J> {
    /// A queue holding at most `capacity` jobs; pushes wait for room beyond that.
    ///
    /// # Panics
    ///
    /// If `capacity` is 0, as every crewpool queue does: what a bound of zero means
    /// differs between libraries (a rendezvous in Go's channels and in flume itself,
    /// no bound at all in pond, a panic in tokio's channels), so crewpool refuses to
    /// guess. Use `bounded(1)` for the closest to a hand-off (a submit waits while one
    /// job is queued), or [`unbounded`](FlumeQueue::unbounded).
    #[track_caller]
    pub fn bounded(capacity: usize) -> Self {
        assert!(
            capacity > 0,
            "a bounded queue needs a capacity of at least 1 (crewpool gives a bound of 0 no \
             meaning): use bounded(1) or unbounded()"
        );
        Self::from_channel(flume::bounded(capacity))
    }

    /// A queue with no bound: pushes never wait (memory is the limit).
    pub fn unbounded() -> Self {
        Self::from_channel(flume::unbounded())
    }

    fn from_channel((sender, receiver): (Sender<Envelope<J>>, Receiver<Envelope<J>>)) -> Self {
        FlumeQueue {
            sender: Mutex::new(Some(sender)),
            receiver,
            closed: AtomicBool::new(false),
            room: Arc::new(Room::default()),
        }
    }

    fn has_room(&self) -> bool {
        self.is_closed() || !self.receiver.is_full()
    }

    fn sender(&self) -> MutexGuard<'_, Option<Sender<Envelope<J>>>> {
        // A panic while holding this lock cannot leave the Option half-written.
        lock(&self.sender)
    }
}

impl<J: Send + 'static> Queue for FlumeQueue<J> {
    type Job = J;
    type Consumer = FlumeConsumer<J>;
    const REPLIES: bool = true;

    async fn push(&self, envelope: Envelope<J>) -> Result<JobId, PushError<Envelope<J>>> {
        let id = envelope.id;
        let mut envelope = envelope;
        // Tries, and waits for room between tries (see "Waiting for room" in the crate
        // docs): flume's own `send_async` would park the job in the channel, where a
        // consumer may take it while the push is pending (or after it was dropped).
        loop {
            match self.try_push(envelope) {
                Ok(()) => return Ok(id),
                Err(TryPushError::Full(back)) => envelope = back,
                Err(refused) => return Err(PushError::Closed(refused.into_inner())),
            }
            self.ready().await;
        }
    }

    #[inline]
    fn push_now(&self, envelope: Envelope<J>) -> Result<(), Envelope<J>> {
        self.try_push(envelope).map_err(TryPushError::into_inner)
    }

    fn consumer(&self) -> Result<FlumeConsumer<J>, QueueError> {
        Ok(FlumeConsumer {
            receiver: self.receiver.clone(),
            room: Arc::clone(&self.room),
            spawn: self.sender().as_ref().map(|sender| {
                Arc::new(FlumeSpawner {
                    sender: sender.downgrade(),
                }) as Arc<dyn Spawn<J>>
            }),
        })
    }

    fn depth(&self) -> usize {
        self.receiver.len()
    }

    fn capacity(&self) -> Option<usize> {
        self.receiver.capacity()
    }

    fn close(&self) {
        let sender = self.sender().take();
        self.closed.store(true, Ordering::Release);
        drop(sender);
        self.room.event.notify(usize::MAX);
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }
}

impl<J: Send + 'static> Replies for FlumeQueue<J> {}

impl<J: Clone + Send + 'static> Retryable for FlumeQueue<J> {
    fn copy_for_retry(job: &J) -> Option<J> {
        Some(job.clone())
    }
}

impl<J: Send + 'static> TryPush for FlumeQueue<J> {
    fn try_push(&self, envelope: Envelope<J>) -> Result<(), TryPushError<Envelope<J>>> {
        match self.sender().as_ref() {
            None => Err(TryPushError::Closed(envelope)),
            Some(sender) => sender.try_send(envelope).map_err(|error| match error {
                flume::TrySendError::Full(envelope) => TryPushError::Full(envelope),
                flume::TrySendError::Disconnected(envelope) => TryPushError::Closed(envelope),
            }),
        }
    }

    async fn ready(&self) {
        if self.has_room() {
            return;
        }
        let _waiting = Waiting::new(&self.room.waiting);
        loop {
            // Listening, then looking (see `Waiting`): a take after the look notifies
            // this listener.
            let listener = self.room.event.listen();
            if self.has_room() {
                return;
            }
            listener.await;
        }
    }
}

impl<J> fmt::Debug for FlumeQueue<J> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FlumeQueue")
            .field("depth", &self.receiver.len())
            .field("capacity", &self.receiver.capacity())
            .field("closed", &self.closed.load(Ordering::Relaxed))
            .finish()
    }
}

/// One worker's end of a [`FlumeQueue`]: a clone of the channel's receiver.
pub struct FlumeConsumer<J> {
    receiver: Receiver<Envelope<J>>,
    room: Arc<Room>,
    spawn: Option<Arc<dyn Spawn<J>>>,
}

impl<J: Send + 'static> Consumer for FlumeConsumer<J> {
    type Job = J;
    type Delivery = Handover;

    fn next(&mut self) -> impl Future<Output = Option<Received<J, Handover>>> + Send {
        // flume's receive future is cancel safe: its waker registration carries no
        // message, and dropping it passes a pending wake-up on to another receiver.
        let receive = self.receiver.recv_async();
        let room = &self.room;
        async move { receive.await.ok().map(|envelope| received(room, envelope)) }
    }

    fn try_next(&mut self) -> Option<Received<J, Handover>> {
        let envelope = self.receiver.try_recv().ok()?;
        Some(received(&self.room, envelope))
    }

    fn spawner(&self) -> Option<Arc<dyn Spawn<J>>> {
        self.spawn.clone()
    }
}

fn received<J>(room: &Room, envelope: Envelope<J>) -> Received<J, Handover> {
    // One load when nobody waits in `ready()` (event-listener's own notify takes its
    // list's lock whether or not anyone listens).
    room.freed();
    Received {
        envelope,
        delivery: Handover,
    }
}

/// Spawns sub-jobs onto the shared channel. It holds a weak sender so it never keeps a
/// closed queue open: once the queue is closed and no push is in flight, spawning
/// fails with `Closed`.
struct FlumeSpawner<J> {
    sender: WeakSender<Envelope<J>>,
}

impl<J: Send + 'static> Spawn<J> for FlumeSpawner<J> {
    fn spawn(&self, envelope: Envelope<J>) -> Result<(), TryPushError<Envelope<J>>> {
        let Some(sender) = self.sender.upgrade() else {
            return Err(TryPushError::Closed(envelope));
        };
        sender.try_send(envelope).map_err(|error| match error {
            flume::TrySendError::Full(envelope) => TryPushError::Full(envelope),
            flume::TrySendError::Disconnected(envelope) => TryPushError::Closed(envelope),
        })
    }
}

impl<J> fmt::Debug for FlumeConsumer<J> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FlumeConsumer")
            .field("depth", &self.receiver.len())
            .finish()
    }
}

/// The README (the crate's registry page): its examples compile and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
