//! The producer side of a backend, and the factory of its consumers.

use std::future::Future;

use crate::{Consumer, Envelope, JobId, PushError, QueueError, TryPushError};

/// A queue of jobs: producers push [`Envelope`]s in, each worker takes them out through
/// its own [`Consumer`].
///
/// # Contract
///
/// Every backend keeps these promises; the conformance suite
/// (`crewpool_core::testkit`, feature `testkit`) checks them.
///
/// - **Accepted means kept.** Once [`push`](Queue::push) returns `Ok`, the envelope is
///   delivered by some consumer's [`Consumer::next`] or [`Consumer::try_next`] (durable
///   backends: at least once; in-memory backends: exactly once), even if the queue is
///   closed right after. A push that returns `Err` hands the envelope back and the
///   queue keeps nothing of it.
/// - **Bounded means backpressure.** When the queue holds [`capacity`](Queue::capacity)
///   envelopes, `push` waits until a consumer takes one (and is woken when that
///   happens), and [`TryPush::try_push`] returns [`TryPushError::Full`] with the
///   envelope.
/// - **Close stops intake, not delivery.** After [`close`](Queue::close), pushes fail
///   with `Closed` and give the envelope back; envelopes already accepted are still
///   delivered, and each consumer's `next` returns `None` once nothing is left for it.
///   Closing wakes every consumer waiting in `next`. A push that was already waiting for
///   room when the queue closed either completes (the envelope is accepted and will be
///   delivered) or fails with `Closed`; it never waits forever.
/// - **Depth** is the number of envelopes accepted and not yet taken by a consumer; it
///   may lag concurrent operations.
///
/// # Examples
///
/// What a worker loop over any queue looks like:
///
/// ```
/// use crewpool_core::{Consumer, Delivery, Queue};
///
/// async fn drain<Q: Queue<Job = u64>>(queue: &Q) -> u64 {
///     let mut consumer = queue.consumer().expect("a consumer");
///     let mut sum = 0;
///     while let Some(received) = consumer.next().await {
///         sum += received.envelope.job;
///         received.delivery.ack().await.expect("ack");
///     }
///     sum
/// }
/// ```
pub trait Queue: Send + Sync + 'static {
    /// The job type carried.
    type Job: Send + 'static;
    /// The per-worker view of this queue.
    type Consumer: Consumer<Job = Self::Job>;

    /// Pushes an envelope, waiting for room while a bounded queue is full, and returns
    /// the id the job is known by in this queue: the envelope's own in memory, the one
    /// a durable backend assigned (which its consumers then deliver the job under).
    ///
    /// # Errors
    ///
    /// [`PushError::Closed`] once the queue is closed; [`PushError::Backend`] when a
    /// durable backend cannot store it. Either way the envelope comes back.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future before it completes drops the envelope without pushing it.
    fn push(
        &self,
        envelope: Envelope<Self::Job>,
    ) -> impl Future<Output = Result<JobId, PushError<Envelope<Self::Job>>>> + Send;

    /// Creates a consumer for one worker. Each worker must have its own.
    ///
    /// # Errors
    ///
    /// A durable backend fails when it cannot open the consumer's connection.
    fn consumer(&self) -> Result<Self::Consumer, QueueError>;

    /// The number of envelopes waiting to be taken (see the contract about lag).
    fn depth(&self) -> usize;

    /// The most envelopes the queue holds before `push` waits; `None` when unbounded.
    fn capacity(&self) -> Option<usize>;

    /// Stops accepting pushes; already accepted envelopes are still delivered.
    /// Idempotent.
    fn close(&self);

    /// Whether [`close`](Queue::close) has been called.
    fn is_closed(&self) -> bool;
}

/// The capability to push without waiting, for queues that can answer at once
/// (the in-memory ones).
pub trait TryPush: Queue {
    /// Pushes an envelope if there is room right now.
    ///
    /// # Errors
    ///
    /// [`TryPushError::Full`] when a bounded queue is at capacity,
    /// [`TryPushError::Closed`] once it is closed; the envelope comes back.
    fn try_push(
        &self,
        envelope: Envelope<Self::Job>,
    ) -> Result<(), TryPushError<Envelope<Self::Job>>>;

    /// Completes when the queue has room or is closed; pending while it is full.
    ///
    /// Room is a hint: another producer may take it first, so callers loop on
    /// [`try_push`](TryPush::try_push). This is how a push with a timeout gets its job
    /// back: the job never enters a future that might be dropped.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it holds no job.
    fn ready(&self) -> impl Future<Output = ()> + Send;
}
