//! One worker's view of a Redis queue.

use std::fmt;
use std::sync::Arc;

use crewpool_core::{Consumer, Received};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::RedisDelivery;
use crate::fetcher::{Demand, Leased};
use crate::queue::Front;

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
}

impl<J> RedisConsumer<J> {
    pub(crate) fn new(
        front: Arc<Front<J>>,
        jobs: flume::Receiver<Leased<J>>,
        demand: Arc<Demand>,
    ) -> Self {
        RedisConsumer {
            front,
            jobs,
            demand,
            done: false,
        }
    }

    fn received(&self, leased: Leased<J>) -> Received<J, RedisDelivery> {
        let Leased {
            envelope,
            lease,
            index,
        } = leased;
        let delivery = RedisDelivery::new(
            Arc::clone(&self.front.core),
            lease,
            index,
            envelope.id.0,
            envelope.attempt,
        );
        Received { envelope, delivery }
    }
}

impl<J> Consumer for RedisConsumer<J>
where
    J: Serialize + DeserializeOwned + Send + 'static,
{
    type Job = J;
    type Delivery = RedisDelivery;

    /// Waits for a job leased to this process; `None` once the queue was closed in this
    /// process (or dropped) and the local buffer is empty. Before returning `None` it
    /// waits until the acknowledgements queued so far are flushed, so a pool whose
    /// workers all returned has nothing left unsent.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the wait is on the local buffer (flume's receive is cancel safe)
    /// and the worker's demand is withdrawn when the future is dropped. A fetch the
    /// demand started completes in the background and its jobs wait in the buffer.
    async fn next(&mut self) -> Option<Received<J, RedisDelivery>> {
        if self.done {
            return None;
        }
        if let Ok(leased) = self.jobs.try_recv() {
            return Some(self.received(leased));
        }
        let taken = {
            let _waiting = self.demand.wait();
            self.jobs.recv_async().await
        };
        match taken {
            Ok(leased) => Some(self.received(leased)),
            Err(_) => {
                self.front.core.flush().await;
                self.done = true;
                None
            }
        }
    }

    /// Takes a job already fetched into this process, without waiting.
    fn try_next(&mut self) -> Option<Received<J, RedisDelivery>> {
        let leased = self.jobs.try_recv().ok()?;
        Some(self.received(leased))
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
