//! The durable delivery: a lease on one job, guarded by a fencing token.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crewpool_core::{Delivery, JobId, QueueError};

use crate::core::Core;
use crate::{Error, Result};

/// One delivery of a job from a [`RedisQueue`](crate::RedisQueue): the lease this
/// process holds on it and the fencing token that proves it.
///
/// Every way of settling checks the token first: once the lease has expired and the
/// job went back to the queue (or to another worker, under a new token), settling
/// through this delivery fails with [`Error::LeaseLost`] and changes nothing. While the
/// delivery exists its lease is extended by the process's heartbeat.
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
    core: Arc<Core>,
    id: u64,
    token: u64,
    attempt: u32,
    settled: bool,
}

impl RedisDelivery {
    pub(crate) fn new(core: Arc<Core>, id: u64, token: u64, attempt: u32) -> Self {
        RedisDelivery {
            core,
            id,
            token,
            attempt,
            settled: false,
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

    /// This delivery's fencing token: unique per delivery of the job, and checked by
    /// Redis on every settlement and lease extension.
    pub fn token(&self) -> u64 {
        self.token
    }

    /// The job failed: schedule its next attempt after the backoff of the queue's
    /// [`RetryPolicy`](crate::RetryPolicy), or dead-letter it with `reason` when it is
    /// out of attempts.
    ///
    /// # Errors
    ///
    /// [`Error::LeaseLost`] when this delivery no longer owns the job; a Redis error
    /// when the call failed (the job then comes back when its lease expires).
    pub async fn fail(mut self, reason: &str) -> Result<()> {
        let delay = self.core.link.config.retry.delay(self.attempt);
        let result = self.retry_after(delay, reason).await;
        self.finish(result)
    }

    /// Marks the delivery settled (for the log in `drop`) and passes `result` on.
    fn finish<T>(&mut self, result: T) -> T {
        self.settled = true;
        result
    }

    async fn retry_after(&self, delay: Duration, reason: &str) -> Result<()> {
        match self
            .core
            .link
            .retry(self.id, self.token, delay, reason)
            .await?
        {
            0 => Err(Error::LeaseLost(self.id())),
            _ => Ok(()),
        }
    }

    async fn bury(&self, reason: &str) -> Result<()> {
        let codes = self
            .core
            .link
            .bury(&[(self.id, self.token, reason.to_owned())])
            .await?;
        match codes.first() {
            Some(1) => Ok(()),
            _ => Err(Error::LeaseLost(self.id())),
        }
    }

    async fn put_back(&self) -> Result<()> {
        let codes = self.core.link.release(&[(self.id, self.token)]).await?;
        match codes.first() {
            Some(1) => Ok(()),
            _ => Err(Error::LeaseLost(self.id())),
        }
    }
}

impl Delivery for RedisDelivery {
    const DURABLE: bool = true;

    /// Deletes the job if this delivery's token still guards it. The acknowledgement
    /// goes out with others in one flush (group commit); with
    /// [`AckMode::Confirmed`](crate::AckMode::Confirmed) this waits for the flush,
    /// with [`AckMode::Queued`](crate::AckMode::Queued) only until it is queued.
    fn ack(mut self) -> impl Future<Output = Result<(), QueueError>> + Send {
        // Queued before the future is first polled, so dropping the future does not
        // take the acknowledgement back.
        let queued = self.core.queue_ack(self.id, self.token);
        self.settled = true;
        async move {
            let _holding = self;
            Ok(queued.outcome().await?)
        }
    }

    /// Schedules the next attempt after `delay` (through the delayed set), or
    /// dead-letters the job with `reason` when the queue's retry policy says it is out
    /// of attempts.
    fn retry(
        mut self,
        delay: Duration,
        reason: &str,
    ) -> impl Future<Output = Result<(), QueueError>> + Send {
        let reason = reason.to_owned();
        async move {
            let result = self.retry_after(delay, &reason).await;
            Ok(self.finish(result)?)
        }
    }

    /// Applies the queue's own [`RetryPolicy`](crate::RetryPolicy): see
    /// [`RedisDelivery::fail`]. The runtime calls this when its pool has no retry policy
    /// of its own.
    fn fail(self, reason: &str) -> impl Future<Output = Result<(), QueueError>> + Send {
        let reason = reason.to_owned();
        async move { Ok(RedisDelivery::fail(self, &reason).await?) }
    }

    /// Moves the job to the bounded dead-letter list with `reason`.
    fn dead_letter(mut self, reason: &str) -> impl Future<Output = Result<(), QueueError>> + Send {
        let reason = reason.to_owned();
        async move {
            let result = self.bury(&reason).await;
            Ok(self.finish(result)?)
        }
    }

    /// Puts the job back at the front of the queue, attempt count unchanged.
    async fn release(mut self) -> Result<(), QueueError> {
        let result = self.put_back().await;
        Ok(self.finish(result)?)
    }
}

impl Drop for RedisDelivery {
    fn drop(&mut self) {
        // Whatever happened, this process stops extending the lease (a no-op when the
        // settlement already did, as the token is checked). A delivery dropped
        // unsettled, or whose settling future was dropped mid-call, leaves the job to
        // its lease.
        self.core.link.forget(self.id, self.token);
        if !self.settled {
            tracing::debug!(
                job = self.id,
                "delivery dropped unsettled; its lease will bring it back"
            );
        }
    }
}

impl fmt::Debug for RedisDelivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisDelivery")
            .field("id", &self.id)
            .field("attempt", &self.attempt)
            .field("token", &self.token)
            .finish()
    }
}
