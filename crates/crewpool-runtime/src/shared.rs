//! The state a pool's handle and its workers share.

use std::fmt;

use crewpool_core::{
    Consumer, ContextSupport, Delivery, Envelope, JobId, Queue, Received, Spawn, SpawnError, Worker,
};

use crate::lifecycle::Lifecycle;
use crate::loom::{Arc, AtomicU64, Mutex, Ordering, lock};
use crate::stats::Counters;

/// The `Delivery` type of a queue's consumers.
pub(crate) type DeliveryOf<Q> = <<Q as Queue>::Consumer as Consumer>::Delivery;

/// Whether a queue keeps its own copy of jobs until they are settled.
pub(crate) fn is_durable<Q: Queue>() -> bool {
    <DeliveryOf<Q> as Delivery>::DURABLE
}

pub(crate) struct Shared<Q: Queue, W> {
    pub(crate) name: String,
    pub(crate) queue: Q,
    pub(crate) worker: W,
    pub(crate) lifecycle: Lifecycle,
    pub(crate) counters: Counters,
    next_id: AtomicU64,
    /// Unstarted jobs handed back while stopping, for the shutdown report.
    returned: Mutex<Vec<Envelope<Q::Job>>>,
    /// Jobs interrupted while stopping.
    interrupted: Mutex<Vec<JobId>>,
}

impl<Q: Queue, W> Shared<Q, W> {
    pub(crate) fn new(name: String, queue: Q, worker: W, workers: usize) -> Self {
        Shared {
            name,
            queue,
            worker,
            lifecycle: Lifecycle::new(workers),
            counters: Counters::new(workers),
            next_id: AtomicU64::new(1),
            returned: Mutex::new(Vec::new()),
            interrupted: Mutex::new(Vec::new()),
        }
    }

    pub(crate) fn next_id(&self) -> JobId {
        // Relaxed: ids need to be unique, not ordered with anything else.
        JobId(self.next_id.fetch_add(1, Ordering::Relaxed))
    }

    /// Open → Draining, closing the queue. Idempotent.
    pub(crate) fn begin_drain(&self) {
        if self.lifecycle.begin_drain() {
            self.queue.close();
        }
    }

    /// → Stopping (closing the queue first if still open).
    pub(crate) fn begin_stop(&self) {
        self.begin_drain();
        self.queue.close();
        self.lifecycle.begin_stop();
    }

    /// Gives back a job a stopping worker received but did not start.
    pub(crate) async fn hand_back(&self, received: Received<Q::Job, DeliveryOf<Q>>) {
        if is_durable::<Q>() {
            if let Err(error) = received.delivery.release().await {
                tracing::warn!(pool = %self.name, %error, "could not release an unstarted job; its lease will bring it back");
            }
        } else {
            lock(&self.returned).push(received.envelope);
        }
    }

    pub(crate) fn record_interrupted(&self, id: JobId) {
        lock(&self.interrupted).push(id);
    }

    pub(crate) fn take_returned(&self) -> Vec<Envelope<Q::Job>> {
        std::mem::take(&mut *lock(&self.returned))
    }

    pub(crate) fn take_interrupted(&self) -> Vec<JobId> {
        std::mem::take(&mut *lock(&self.interrupted))
    }
}

impl<Q: Queue, W> fmt::Debug for Shared<Q, W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("name", &self.name)
            .field("lifecycle", &self.lifecycle)
            .finish_non_exhaustive()
    }
}

/// What running jobs reach through their `JobContext`: spawning sub-jobs onto their
/// worker's consumer, counted and numbered like submitted jobs.
pub(crate) struct Support<Q: Queue, W> {
    shared: Arc<Shared<Q, W>>,
    spawner: Option<std::sync::Arc<dyn Spawn<Q::Job>>>,
}

impl<Q: Queue, W> Support<Q, W> {
    pub(crate) fn new(shared: Arc<Shared<Q, W>>, consumer: &Q::Consumer) -> Self {
        Support {
            shared,
            spawner: consumer.spawner(),
        }
    }
}

impl<Q, W> ContextSupport<Q::Job> for Support<Q, W>
where
    Q: Queue,
    W: Worker<Q::Job>,
{
    fn spawn(&self, job: Q::Job) -> Result<JobId, SpawnError<Q::Job>> {
        let Some(spawner) = &self.spawner else {
            return Err(SpawnError::Unsupported(job));
        };
        if self.shared.lifecycle.is_stopping() {
            return Err(SpawnError::Closed(job));
        }
        let id = self.shared.next_id();
        match spawner.spawn(Envelope::new(job).with_id(id)) {
            Ok(()) => {
                self.shared.counters.submitted(1);
                Ok(id)
            }
            Err(error) => Err(SpawnError::from(error.map(|envelope| envelope.job))),
        }
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}
