//! The durable delivery: a lease on one job, guarded by a fencing token.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crewpool_core::{Delivery, Failure, FailureKind, JobId, QueueError};

use crate::backoff::Backoff;
use crate::lease::Lease;
use crate::link::BuryStat;
use crate::results::Stash;
use crate::settler::Settler;
use crate::{Error, Result};

/// One delivery of a job from a [`RedisQueue`](crate::RedisQueue): the lease this
/// process holds on it and the fencing token that proves it.
///
/// Every way of settling checks the token first: once the lease has expired and the
/// job went back to the queue (or to another worker, under a new token), settling
/// through this delivery fails with [`Error::LeaseLost`] and changes nothing. Until
/// the delivery is settled (its settlement handed to Redis) its lease is extended by
/// the process's heartbeat.
///
/// Dropping it unsettled stops the heartbeat for it: the job comes back when the lease
/// runs out, counted as a failed attempt.
///
/// # Examples
///
/// Settling by hand, with the queue's own retry policy:
///
/// ```no_run
/// use crewpool_core::{Consumer, Delivery, Queue};
/// use crewpool_redis::{RedisConfig, RedisQueue};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let queue = RedisQueue::<String>::connect(RedisConfig::new("redis://127.0.0.1:6379", "mail")).await?;
/// let mut consumer = queue.consumer()?;
/// while let Some(received) = consumer.next().await {
///     match send_mail(&received.envelope.job).await {
///         Ok(()) => received.delivery.ack().await?,
///         // Backoff from the policy; dead-letter once out of attempts.
///         Err(error) => received.delivery.fail(&error).await?,
///     }
/// }
/// # Ok(()) }
/// # async fn send_mail(_: &str) -> Result<(), String> { Ok(()) }
/// ```
pub struct RedisDelivery {
    settler: Arc<Settler>,
    lease: Arc<Lease>,
    /// The job's place in its lease: the field `<lease>:<index>` of `leased`.
    index: u32,
    id: u64,
    attempt: u32,
    /// The job's priority level (where a retry due at once goes back to).
    level: u8,
    /// The uniqueness key the job holds, released with its acknowledgement.
    unique: Option<Arc<str>>,
    /// Handed to a settlement: no longer held, so no longer heartbeated.
    handed: bool,
    /// The reply channel of the producer waiting for the job's outcome, and the
    /// outcome once the runtime sent it (stored before the settlement).
    result: Option<(Arc<str>, Stash)>,
    /// The span standing for the producer, when the job carried its trace context.
    parent: Option<tracing::Span>,
}

/// Where a delivery's job is and what it holds.
#[derive(Debug)]
pub(crate) struct Place {
    pub(crate) lease: Arc<Lease>,
    /// The job's place in its lease (field `<lease>:<index>`).
    pub(crate) index: u32,
    pub(crate) level: u8,
    pub(crate) unique: Option<Arc<str>>,
}

impl RedisDelivery {
    pub(crate) fn new(settler: Arc<Settler>, place: Place, id: u64, attempt: u32) -> Self {
        RedisDelivery {
            settler,
            lease: place.lease,
            index: place.index,
            id,
            attempt,
            level: place.level,
            unique: place.unique,
            handed: false,
            result: None,
            parent: None,
        }
    }

    /// The span standing for the job's producer (see [`Delivery::parent_span`]).
    pub(crate) fn with_parent(mut self, parent: Option<tracing::Span>) -> Self {
        self.parent = parent;
        self
    }

    /// The producer's reply channel and where the outcome will be stashed.
    pub(crate) fn with_result(mut self, result: Option<(Arc<str>, Stash)>) -> Self {
        self.result = result;
        self
    }

    /// Stores the job's final outcome for the producer waiting for it, if there is
    /// one: before the settlement, so a job is never settled without its result (a
    /// worker that dies in between runs the job again, at-least-once). A failed store
    /// is tried again with backoff while the heartbeat holds the lease, for up to a
    /// lease's length; then the error is returned and the settlement is not made: the
    /// delivery, dropped unsettled, hands the job back to run again.
    async fn store_result(&mut self) -> Result<()> {
        let Some((channel, stash)) = self.result.take() else {
            return Ok(());
        };
        let Some(outcome) = stash.get() else {
            return Ok(());
        };
        let link = &self.settler.link;
        let give_up = tokio::time::Instant::now() + link.config.lease_length();
        let mut backoff = Backoff::new();
        loop {
            match link.reply(self.id, &channel, outcome).await {
                Ok(()) => return Ok(()),
                Err(error) => {
                    let delay = backoff.next_delay();
                    if tokio::time::Instant::now() + delay > give_up {
                        tracing::warn!(job = self.id, error = %crate::error::Chain(&error), "could not store a job's result for its producer; the job is not settled and will run again");
                        return Err(error);
                    }
                    tracing::debug!(job = self.id, error = %crate::error::Chain(&error), "could not store a job's result; trying again");
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    /// Stops the heartbeat for this delivery: its settlement is about to be sent.
    /// Whatever the outcome, the job's fate is Redis's now (after a failed call its
    /// lease brings it back).
    fn hand_off(&mut self) {
        if !self.handed {
            self.handed = true;
            self.lease.let_go();
        }
    }

    /// The job's id.
    pub fn id(&self) -> JobId {
        JobId(self.id)
    }

    /// This delivery's attempt number, from 1.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The job's priority level (0 to 9).
    pub fn priority(&self) -> u8 {
        self.level
    }

    /// This delivery's fencing token: the lease (the fetch) it came with, unique per
    /// delivery of the job. Redis checks it on every settlement and lease extension:
    /// the job is the lease's field `<token>:<n>` exactly while this delivery owns it.
    pub fn token(&self) -> u64 {
        self.lease.id
    }

    /// The job failed: schedule its next attempt after the backoff of the queue's
    /// [`RetryPolicy`](crate::RetryPolicy), or dead-letter it with `reason` when the
    /// policy says no more (out of attempts, or its predicate, which sees `reason` as
    /// the failure's text, declines).
    ///
    /// # Errors
    ///
    /// [`Error::LeaseLost`] when this delivery no longer owns the job; a Redis error
    /// when the call failed (the job then comes back when its lease expires).
    pub async fn fail(mut self, reason: &str) -> Result<()> {
        let policy = self.settler.link.retry_policy();
        let again = policy.should_retry(&Failure::new(FailureKind::Failed, self.attempt, &reason));
        if again {
            self.retry_after(policy.delay_after(self.attempt), reason)
                .await
        } else {
            self.bury(reason).await
        }
    }

    async fn retry_after(&mut self, delay: Duration, reason: &str) -> Result<()> {
        self.hand_off();
        match self
            .settler
            .link
            .retry(self.lease.id, self.index, self.level, delay, reason)
            .await?
        {
            0 => Err(Error::LeaseLost(self.id())),
            _ => Ok(()),
        }
    }

    async fn bury(&mut self, reason: &str) -> Result<()> {
        self.bury_as(reason, BuryStat::Failed).await
    }

    /// Dead-letters the job, counted in `stat`.
    pub(crate) async fn bury_as(&mut self, reason: &str, stat: BuryStat) -> Result<()> {
        self.store_result().await?;
        self.hand_off();
        let codes = self
            .settler
            .link
            .bury(&[(self.lease.id, self.index, reason.to_owned())], stat)
            .await?;
        self.one_settled(&codes)
    }

    async fn put_back(&mut self) -> Result<()> {
        self.hand_off();
        let codes = self
            .settler
            .link
            .release(&[(self.lease.id, self.index)])
            .await?;
        self.one_settled(&codes)
    }

    /// The outcome of a one-job settlement from its script's code: 1 is done, anything
    /// else means the lease was lost.
    fn one_settled(&self, codes: &[i64]) -> Result<()> {
        match codes.first() {
            Some(1) => Ok(()),
            _ => Err(Error::LeaseLost(self.id())),
        }
    }
}

impl Delivery for RedisDelivery {
    const DURABLE: bool = true;

    /// The `producer` span of a job that carried headers: the worker's `job` span is
    /// its child (see "Tracing" in the crate docs).
    fn parent_span(&self) -> Option<&tracing::Span> {
        self.parent.as_ref()
    }

    /// Deletes the job if this delivery's token still guards it. The acknowledgement
    /// goes out with others in one flush (group commit); with
    /// [`AckMode::Confirmed`](crate::AckMode::Confirmed) this waits for the flush,
    /// with [`AckMode::Queued`](crate::AckMode::Queued) only until it is queued.
    fn ack(mut self) -> impl Future<Output = Result<(), QueueError>> + Send {
        // Queued before the future is first polled, so dropping the future does not
        // take the acknowledgement back; a job whose producer waits for its result
        // stores it first, and is acknowledged only once it is stored (dropping that
        // future before the ack is queued drops the delivery unsettled: the job comes
        // back with its lease).
        let queued = self.result.is_none().then(|| {
            let queued =
                self.settler
                    .queue_ack(self.id, self.lease.id, self.index, self.unique.clone());
            self.hand_off();
            queued
        });
        async move {
            let queued = match queued {
                Some(queued) => queued,
                None => {
                    // Not stored: not acknowledged (dropped here, the delivery hands
                    // the job back).
                    self.store_result().await?;
                    let queued = self.settler.queue_ack(
                        self.id,
                        self.lease.id,
                        self.index,
                        self.unique.clone(),
                    );
                    self.hand_off();
                    queued
                }
            };
            Ok(queued.outcome().await?)
        }
    }

    /// Schedules the next attempt after `delay` (through the delayed set). The caller
    /// decided: no attempt limit applies here.
    async fn retry(mut self, delay: Duration, reason: &str) -> Result<(), QueueError> {
        Ok(self.retry_after(delay, reason).await?)
    }

    /// Applies the queue's own [`RetryPolicy`](crate::RetryPolicy): see
    /// [`RedisDelivery::fail`].
    async fn fail(self, reason: &str) -> Result<(), QueueError> {
        Ok(RedisDelivery::fail(self, reason).await?)
    }

    /// Moves the job to the bounded dead-letter list with `reason`.
    async fn dead_letter(mut self, reason: &str) -> Result<(), QueueError> {
        Ok(self.bury(reason).await?)
    }

    /// Puts the job back at the front of the queue, attempt count unchanged.
    async fn release(mut self) -> Result<(), QueueError> {
        Ok(self.put_back().await?)
    }
}

impl Drop for RedisDelivery {
    fn drop(&mut self) {
        // A delivery whose settling future was dropped mid-call was handed off: its
        // job is settled, or comes back with its lease.
        if self.handed {
            return;
        }
        self.handed = true;
        tracing::debug!(
            job = self.id,
            "delivery dropped unsettled; its lease will bring it back"
        );
        // While other deliveries of the lease are held, the heartbeat keeps the lease
        // alive: move this job to a lease of its own that nobody extends.
        if self.lease.let_go() > 0 {
            self.settler.abandon(self.lease.id, self.index);
        }
    }
}

impl fmt::Debug for RedisDelivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisDelivery")
            .field("id", &self.id)
            .field("attempt", &self.attempt)
            .field("token", &self.lease.id)
            .finish()
    }
}
