//! One worker's view of a queue.

use std::future::Future;
use std::sync::Arc;

use crate::{Delivery, Envelope, TryPushError};

/// A job received from a queue: the envelope, and the [`Delivery`] that settles its fate.
#[derive(Debug)]
pub struct Received<J, D> {
    /// The job and its metadata, exactly as pushed (see [`Envelope`]).
    pub envelope: Envelope<J>,
    /// How to acknowledge, retry, dead-letter or release it.
    pub delivery: D,
}

/// One worker's view of a [`Queue`](crate::Queue): where it takes its next job from.
///
/// Per-worker state lives here: a local deque and the stealers of its peers, or a Redis
/// connection and the leases of the jobs it holds.
///
/// # Contract
///
/// - [`next`](Consumer::next) waits while there is nothing to take and returns `None`
///   only when the queue is closed and nothing is left for this consumer. After `None`
///   it keeps returning `None`.
/// - `next` is **cancel safe**: dropping its future before it completes loses no job;
///   the job stays in the queue for the next call or another consumer.
/// - [`try_next`](Consumer::try_next) never waits: it returns a job that can be taken
///   right now, or `None`. Durable backends may answer only from what this consumer
///   already fetched.
/// - Dropping a consumer loses nothing: jobs it holds locally (a local deque, a
///   prefetched batch) go back where other consumers, or a later
///   [`Queue::consumer`](crate::Queue::consumer), find them.
pub trait Consumer: Send + 'static {
    /// The job type carried.
    type Job: Send + 'static;
    /// How this backend settles a job's fate.
    type Delivery: Delivery;

    /// Waits for the next job; `None` once the queue is closed and drained.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: see the trait contract.
    fn next(&mut self) -> impl Future<Output = Option<Received<Self::Job, Self::Delivery>>> + Send;

    /// Takes a job that is available right now, without waiting.
    fn try_next(&mut self) -> Option<Received<Self::Job, Self::Delivery>>;

    /// Where jobs running on this consumer's worker put the sub-jobs they spawn
    /// (fork-join), if this backend supports spawning. Backends with per-worker queues
    /// return a spawner onto this consumer's own queue, where idle peers steal from;
    /// the default is `None` (spawning is refused as unsupported).
    fn spawner(&self) -> Option<Arc<dyn Spawn<Self::Job>>> {
        None
    }
}

/// Adds sub-jobs from a running job without waiting; see [`Consumer::spawner`].
pub trait Spawn<J>: Send + Sync + 'static {
    /// Adds `envelope` if there is room right now.
    ///
    /// # Errors
    ///
    /// [`TryPushError::Full`] when the backend has no room, [`TryPushError::Closed`]
    /// when it no longer accepts jobs from running ones; the envelope comes back.
    fn spawn(&self, envelope: Envelope<J>) -> Result<(), TryPushError<Envelope<J>>>;
}
