//! The state a pool's handle and its workers share.

use std::fmt;

use crewpool_core::{
    Consumer, ContextSupport, Delivery, Envelope, JobId, PushError, Queue, Received, Spawn,
    SpawnError, TryPush, TryPushError, Worker,
};

use crate::lifecycle::Lifecycle;
use crate::loom::{Arc, AtomicU64, Mutex, Ordering, lock};
use crate::report::ShutdownReport;
use crate::stats::{Counters, Stats};

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

    /// Pushes a submitted envelope, if the pool is still open.
    pub(crate) async fn push(&self, envelope: Envelope<Q::Job>) -> Result<(), PushError<Q::Job>> {
        if !self.lifecycle.is_open() {
            return Err(PushError::Closed(envelope.job));
        }
        self.counters.submitted();
        self.queue.push(envelope).await.map_err(|error| {
            self.counters.unsubmitted();
            error.map(|envelope| envelope.job)
        })
    }

    pub(crate) fn stats(&self) -> Stats {
        self.counters
            .snapshot(self.lifecycle.live.count(), self.queue.depth())
    }

    /// Once every worker has left: collects what is still queued (if the pool
    /// stopped) and reports. The first caller gets the returned and interrupted jobs.
    pub(crate) async fn finish(&self) -> ShutdownReport<Q::Job> {
        if self.lifecycle.is_stopping() && !is_durable::<Q>() {
            self.collect_queued().await;
        }
        let returned = std::mem::take(&mut *lock(&self.returned))
            .into_iter()
            .map(|envelope| envelope.job)
            .collect();
        ShutdownReport {
            returned,
            interrupted: std::mem::take(&mut *lock(&self.interrupted)),
            stats: self.stats(),
        }
    }

    /// Moves every job left in the (closed) queue into the returned list. `next`, not
    /// `try_next`: a push that was already waiting for room when the queue closed may
    /// still land, and `next` returns `None` only once nothing more can arrive.
    async fn collect_queued(&self) {
        let mut consumer = match self.queue.consumer() {
            Ok(consumer) => consumer,
            Err(error) => {
                tracing::error!(pool = %self.name, %error, "could not collect queued jobs at shutdown");
                return;
            }
        };
        while let Some(received) = consumer.next().await {
            self.hand_back(received).await;
        }
    }
}

impl<Q: TryPush, W> Shared<Q, W> {
    /// Pushes a submitted envelope if there is room right now and the pool is open.
    pub(crate) fn try_push(
        &self,
        envelope: Envelope<Q::Job>,
    ) -> Result<(), TryPushError<Envelope<Q::Job>>> {
        if !self.lifecycle.is_open() {
            return Err(TryPushError::Closed(envelope));
        }
        self.counters.submitted();
        self.queue.try_push(envelope).inspect_err(|_| {
            self.counters.unsubmitted();
        })
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
        self.shared.counters.submitted();
        match spawner.spawn(Envelope::new(job).with_id(id)) {
            Ok(()) => Ok(id),
            Err(error) => {
                self.shared.counters.unsubmitted();
                Err(SpawnError::from(error.map(|envelope| envelope.job)))
            }
        }
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}
