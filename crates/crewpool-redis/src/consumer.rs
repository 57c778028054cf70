//! One worker's view of a Redis queue.

use std::fmt;
use std::sync::Arc;

use crewpool_core::{Consumer, Envelope, Received};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::RedisDelivery;
use crate::delivery::Place;
use crate::error::Chain;
use crate::fetcher::{Demand, EXPIRED, Leased};
use crate::lease::Lease;
use crate::link::BuryStat;
use crate::queue::Front;
use crate::results::{Stash, stashing_reply};

/// Warns once per process that a producer waits for results this process cannot
/// store.
fn warn_no_results() {
    static WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if !WARNED.swap(true, std::sync::atomic::Ordering::Relaxed) {
        tracing::warn!(
            "a job's producer waits for its result, but this worker's queue has no result type (RedisQueue::with_results): no result is stored"
        );
    }
}

/// One worker's end of a [`RedisQueue`](crate::RedisQueue).
///
/// The consumers of one process share a local buffer that the process's fetcher fills
/// in batches: a consumer waiting in [`next`](Consumer::next) counts as demand, and the
/// fetcher leases that many jobs (plus the configured prefetch) in one script call.
/// Dropping a consumer loses nothing: the buffer stays with the queue for the other
/// consumers (or a later one), and what is left in it when the queue closes is
/// released back to Redis.
pub struct RedisConsumer<J> {
    front: Arc<Front<J>>,
    jobs: flume::Receiver<Leased<J>>,
    demand: Arc<Demand>,
    done: bool,
    /// When this consumer last handed out a job (its worker has been busy since).
    took_at: Option<std::time::Instant>,
}

impl<J> RedisConsumer<J> {
    pub(crate) fn new(
        front: Arc<Front<J>>,
        jobs: flume::Receiver<Leased<J>>,
        demand: Arc<Demand>,
    ) -> Self {
        demand.join();
        RedisConsumer {
            front,
            jobs,
            demand,
            done: false,
            took_at: None,
        }
    }

    /// Its worker came back for a job: counts how long it was busy with the last one
    /// (for the prefetch, see `fetcher::Pace`).
    fn came_back(&mut self) {
        if let Some(took_at) = self.took_at.take() {
            self.demand.finished(took_at.elapsed());
        }
    }

    /// The job as a delivery, or `Err` with its delivery when it is past its start
    /// deadline by Redis's clock (it waited in this process's buffer too long): it must
    /// be dead-lettered, not run.
    fn received(&self, leased: Leased<J>) -> Result<Received<J, RedisDelivery>, RedisDelivery> {
        let Leased {
            mut envelope,
            lease,
            index,
            level,
            unique,
            start_by,
            reply,
            headers,
        } = leased;
        // A producer waits for this job's outcome: the runtime sends it to this reply,
        // which keeps an encoded copy for the settlement to store.
        let result = match (reply, self.front.results.get()) {
            (Some(channel), Some(waiters)) => {
                let stash = Stash::default();
                envelope = envelope.with_reply(stashing_reply(waiters.codec(), Arc::clone(&stash)));
                Some((channel, stash))
            }
            (Some(_), None) => {
                warn_no_results();
                None
            }
            (None, _) => None,
        };
        let delivery = self
            .delivery(&envelope, lease, index, level, unique)
            .with_result(result)
            .with_parent(headers.map(|headers| {
                let link = &self.front.settler.link;
                crate::trace::producer_span(
                    &link.config.queue,
                    envelope.id.0,
                    &headers,
                    link.config.propagator.as_ref(),
                )
            }));
        match start_by {
            Some(by) if self.front.settler.link.redis_now_ms() > by => Err(delivery),
            _ => {
                #[cfg(feature = "testing")]
                crate::testing::ledger::delivered(crate::testing::ledger::Delivered {
                    id: envelope.id.0,
                    attempt: envelope.attempt,
                    token: delivery.token(),
                    index,
                });
                Ok(Received { envelope, delivery })
            }
        }
    }

    /// Whether the queue was closed in this process: from then on nothing more is
    /// handed out (the fetcher releases the buffer).
    fn is_closed(&self) -> bool {
        self.front.is_closed()
    }

    /// The delivery of a job at `index` of `lease`, settled through this process.
    fn delivery(
        &self,
        envelope: &Envelope<J>,
        lease: Arc<Lease>,
        index: u32,
        level: u8,
        unique: Option<Arc<str>>,
    ) -> RedisDelivery {
        RedisDelivery::new(
            Arc::clone(&self.front.settler),
            Place {
                lease,
                index,
                level,
                unique,
            },
            envelope.id.0,
            envelope.attempt,
        )
    }

    /// Puts back a job taken from the buffer after the close, unstarted (attempt
    /// unchanged): only its place is needed, not what a delivery to a worker carries
    /// (a reply, the producer's span). On failure its lease brings it back.
    async fn hand_back(&self, leased: Leased<J>) {
        let Leased {
            envelope,
            lease,
            index,
            level,
            unique,
            ..
        } = leased;
        let delivery = self.delivery(&envelope, lease, index, level, unique);
        let id = envelope.id.0;
        if let Err(error) = crewpool_core::Delivery::release(delivery).await {
            tracing::warn!(job = id, error = %Chain(&error), "could not put back a job taken after the close; its lease will bring it back");
        }
    }

    /// Dead-letters a job found past its start deadline.
    async fn expire(mut delivery: RedisDelivery) {
        if let Err(error) = delivery.bury_as(EXPIRED, BuryStat::MissedDeadline).await {
            tracing::warn!(job = delivery.id().0, error = %Chain(&error), "could not dead-letter a job past its deadline; its lease will bring it back");
        }
    }
}

impl<J> Consumer for RedisConsumer<J>
where
    J: Serialize + DeserializeOwned + Send + 'static,
{
    type Job = J;
    type Delivery = RedisDelivery;

    /// Waits for a job leased to this process; `None` once the queue was closed in this
    /// process (or dropped). From the close on, nothing more is handed out: the jobs
    /// fetched ahead go back to Redis unstarted, and `None` comes once they are back
    /// (a pool's shutdown starts no new job). Before returning `None` it
    /// waits until the acknowledgements queued so far are flushed, so a pool whose
    /// workers all returned has nothing left unsent.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the wait is on the local buffer (flume's receive is cancel safe)
    /// and the worker's demand is withdrawn when the future is dropped. A fetch the
    /// demand started completes in the background and its jobs wait in the buffer.
    async fn next(&mut self) -> Option<Received<J, RedisDelivery>> {
        self.came_back();
        loop {
            if self.done {
                return None;
            }
            let closed = self.is_closed();
            let taken = match self.jobs.try_recv() {
                Ok(leased) => Ok(leased),
                // Closed: no demand (nothing more is fetched); the fetcher releases
                // the buffer and then ends it.
                Err(_) if closed => self.jobs.recv_async().await,
                Err(_) => {
                    let _waiting = self.demand.wait();
                    self.jobs.recv_async().await
                }
            };
            match taken {
                // Taken after the close (before the fetcher took it back): it goes
                // back to Redis unstarted, like the rest of the buffer.
                Ok(leased) if self.is_closed() => self.hand_back(leased).await,
                Ok(leased) => match self.received(leased) {
                    Ok(received) => {
                        self.took_at = Some(std::time::Instant::now());
                        return Some(received);
                    }
                    // Past its deadline: dead-lettered, and the next job is taken.
                    Err(expired) => Self::expire(expired).await,
                },
                Err(_) => {
                    self.front.settler.flush().await;
                    self.done = true;
                    return None;
                }
            }
        }
    }

    /// Takes a job already fetched into this process, without waiting.
    fn try_next(&mut self) -> Option<Received<J, RedisDelivery>> {
        self.came_back();
        loop {
            // Closed: the buffer goes back to Redis (see `next`).
            if self.is_closed() {
                return None;
            }
            let leased = self.jobs.try_recv().ok()?;
            match self.received(leased) {
                Ok(received) => {
                    self.took_at = Some(std::time::Instant::now());
                    return Some(received);
                }
                Err(expired) => {
                    self.front.runtime().spawn(Self::expire(expired));
                }
            }
        }
    }
}

impl<J> Drop for RedisConsumer<J> {
    fn drop(&mut self) {
        self.demand.leave();
    }
}

impl<J> fmt::Debug for RedisConsumer<J> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConsumer")
            .field("buffered", &self.jobs.len())
            .field("done", &self.done)
            .finish()
    }
}
