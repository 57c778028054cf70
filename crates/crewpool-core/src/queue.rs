//! The producer side of a backend, and the factory of its consumers.

use std::future::Future;

use crate::{Batch, Consumer, Envelope, JobId, PushError, QueueError, RetryPolicy, TryPushError};

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
/// - **Accepted in a poll.** An in-memory queue accepts an envelope only inside the
///   poll of `push`'s future that returns `Ok`, never while the future waits between
///   polls: a push dropped while pending pushed nothing, and a caller can count exactly
///   what was accepted. (A durable queue's push sends the envelope away: it may be
///   stored before the call returns.)
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

    /// Whether a job's result can come back to its submitter: `true` exactly for
    /// queues that implement [`Replies`] (the default is `false`). A pool whose queue
    /// type is erased cannot name that trait, so it asks this instead.
    const REPLIES: bool = false;

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

    /// Pushes an envelope at once if this queue can take it without waiting, and
    /// gives it back if not (a bounded queue that is full, a closed queue, or a queue
    /// that always needs [`push`](Queue::push)); the caller then pushes it with
    /// `push`, which waits for room or says why it refuses.
    ///
    /// A pool tries this before `push` for each job it submits to an in-memory queue:
    /// a queue with room then accepts the job with a plain call, no future built or
    /// polled. Only queues that keep jobs under the envelope's own id (the in-memory
    /// ones) override it; the default gives every envelope back.
    ///
    /// # Errors
    ///
    /// The envelope, untouched, when the queue cannot take it right now.
    fn push_now(&self, envelope: Envelope<Self::Job>) -> Result<(), Envelope<Self::Job>> {
        Err(envelope)
    }

    /// Pushes the envelopes of `batch`, front first, waiting for room while a bounded
    /// queue is full; completes once all were accepted. Each accepted envelope leaves
    /// the batch and is counted in [`Batch::accepted`]; what was not accepted stays in
    /// the batch, in order.
    ///
    /// The default pushes them one by one with [`push`](Queue::push). A queue that can
    /// accept many at a lower cost per job overrides it: the deque backend reserves
    /// places for as many as there is room for with one atomic operation, and wakes
    /// its sleeping consumers once per batch.
    ///
    /// The "Accepted in a poll" promise holds per envelope: an in-memory queue accepts
    /// envelopes (and counts them in the batch) only inside a poll of this future, so a
    /// caller that reads [`Batch::accepted`] around each poll counts exactly what was
    /// accepted. Like `push`, the ids the jobs are known by are the envelopes' own in
    /// memory; a durable backend's assigned ids are not returned here.
    ///
    /// # Errors
    ///
    /// [`PushError::Closed`] once the queue is closed (envelopes accepted before stay
    /// accepted); [`PushError::Backend`] when a durable backend cannot store one. The
    /// envelopes not accepted are still in `batch`.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future before it completes keeps every envelope not yet accepted
    /// in `batch`, except, with the one-by-one default, the one whose `push` was under
    /// way, which is dropped as `push`'s cancel safety says. The deque backend's
    /// override takes nothing out of the batch that it does not accept in the same
    /// poll, so dropping it loses nothing.
    fn push_batch<'a>(
        &'a self,
        batch: &'a mut Batch<Self::Job>,
    ) -> impl Future<Output = Result<(), PushError<()>>> + Send + 'a {
        async move {
            while let Some(envelope) = batch.take_front() {
                match self.push(envelope).await {
                    Ok(_) => batch.accept(1),
                    Err(refused) => {
                        let mut back = None;
                        let error = refused.map(|envelope| back = Some(envelope));
                        if let Some(envelope) = back {
                            batch.put_back(envelope);
                        }
                        return Err(error);
                    }
                }
            }
            Ok(())
        }
    }

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

    /// The retry policy this queue applies by itself, if it has one.
    ///
    /// A durable queue keeps each job until it is settled, so it sees failures no
    /// pool sees (a worker process that died holding a job) and retries them itself;
    /// it returns the policy it applies there. A pool on such a queue that has no
    /// policy of its own applies this same one to the failures it sees, so one policy,
    /// with one attempt limit, decides every retry of a job (see [`Retryable`] for a
    /// pool that brings its own). In-memory queues retry nothing by themselves: `None`,
    /// the default.
    fn retry_policy(&self) -> Option<RetryPolicy> {
        None
    }

    /// How many jobs this queue set aside without delivering them to any consumer,
    /// since it was created: a durable queue's record that no longer decodes as the
    /// job type, say, which it dead-letters with the reason. Such jobs never reach a
    /// worker, so a pool counts them from here (its `Stats::undeliverable`). The
    /// default, for queues that deliver everything they accept, is 0.
    fn undeliverable(&self) -> u64 {
        0
    }
}

/// The capability to run failed jobs again, which a pool with a retry policy needs.
///
/// In-memory queues hand a job over whole: to run it again, the pool keeps a copy of
/// it ([`copy_for_retry`](Retryable::copy_for_retry), so their implementation needs
/// `Clone` on the job type) and runs the copy after the backoff. Durable queues keep
/// the job until it is settled and retry it themselves ([`Delivery::retry`]), so no
/// copy is kept and the job type needs no `Clone`; since they also retry jobs whose
/// worker died, which no pool sees, they take the pool's policy
/// ([`use_retry_policy`](Retryable::use_retry_policy)) and apply it there too.
///
/// [`Delivery::retry`]: crate::Delivery::retry
#[diagnostic::on_unimplemented(
    message = "a pool cannot retry jobs of `{Self}`",
    label = "this queue cannot run a failed job again",
    note = "an in-memory queue keeps a copy of each job to retry it: the job type must implement `Clone`"
)]
pub trait Retryable: Queue {
    /// A copy of `job` for another attempt, taken before the job runs; `None` when the
    /// queue keeps the job itself (durable queues).
    fn copy_for_retry(job: &Self::Job) -> Option<Self::Job>;

    /// Makes `policy` the one this queue applies by itself from now on, in place of
    /// its configured one ([`Queue::retry_policy`]): a pool built with a policy of its
    /// own hands it over, so one policy decides every retry of its jobs. The default,
    /// for queues that retry nothing by themselves, ignores it.
    fn use_retry_policy(&self, policy: &RetryPolicy) {
        let _ = policy;
    }
}

/// A queue whose jobs' results can reach their submitter.
///
/// The in-memory queues carry each envelope's [`Reply`](crate::Reply) to the worker
/// that runs it: a job runs in the submitter's process. A durable queue shared by many
/// processes keeps the reply in the submitter's process and gives the job's runner a
/// reply of its own, which only stores a copy of the final outcome for the submitter
/// ([`Reply::send`](crate::Reply::send) returns the outcome, so the running pool's
/// results stream still gets it). A pool hands out a handle that awaits a job's result
/// only on queues with this capability, so a handle that could never resolve cannot be
/// asked for. A queue that implements it sets [`Queue::REPLIES`] to `true`.
#[diagnostic::on_unimplemented(
    message = "results of jobs on `{Self}` cannot come back to the submitter",
    label = "this queue's jobs run in whichever process takes them",
    note = "use `spawn` to enqueue without a handle; the pool that runs the job reports its outcome in its results stream"
)]
pub trait Replies: Queue {}

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
