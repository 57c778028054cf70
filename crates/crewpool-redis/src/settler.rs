//! What deliveries need after their consumer is gone: the link to Redis, the acker
//! that batches their acknowledgements, and the heartbeat that keeps held leases alive.
//!
//! # Tasks and their lifetimes
//!
//! ```text
//!   RedisQueue ─┐                 ┌─▶ fetcher task   (until the queue closes or is dropped)
//!   consumers ──┴─▶ Arc<Front> ───┤
//!                                 └─▶ Arc<Settler> ──┬─▶ acker task  (until every Settler is gone
//!   deliveries ──────────────────────▶ Arc<Settler> ─┘                and its queue is flushed)
//!                                                    └─▶ heartbeat task (until every Settler is gone)
//! ```
//!
//! Tasks hold an `Arc<Link>` (the connection), never the handles above them, so
//! dropping the last handle stops them: the acker when the last sender goes (after
//! flushing what was queued), the heartbeat when the watch sender in `Settler` goes.
//! A delivery keeps its `Settler` alive, so its lease is extended for as long as it
//! exists, even after the queue and its consumers were dropped.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, watch};

use crate::AckMode;
use crate::acker::{AckRequest, PendingAck, QueuedAck, run_acker};
use crate::lease::run_heartbeat;
use crate::link::Link;

/// The part of a queue deliveries keep alive.
pub(crate) struct Settler {
    pub(crate) link: Arc<Link>,
    acks: mpsc::UnboundedSender<AckRequest>,
    /// Dropped with the last `Settler`: stops the heartbeat task.
    _heartbeat: watch::Sender<()>,
}

impl Settler {
    /// Starts the acker and heartbeat tasks on `runtime`.
    pub(crate) fn start(link: Arc<Link>, runtime: &tokio::runtime::Handle) -> Arc<Self> {
        let (acks, queue) = mpsc::unbounded_channel();
        let (heartbeat, stop) = watch::channel(());
        runtime.spawn(run_acker(Arc::clone(&link), queue));
        runtime.spawn(run_heartbeat(Arc::clone(&link), stop));
        Arc::new(Settler {
            link,
            acks,
            _heartbeat: heartbeat,
        })
    }

    /// Queues an acknowledgement for the next flush; `unique` is the uniqueness key the
    /// job holds, released with it.
    pub(crate) fn queue_ack(
        &self,
        id: u64,
        lease: u64,
        index: u32,
        unique: Option<Arc<str>>,
    ) -> QueuedAck {
        let (reply, outcome) = match self.link.config.ack_mode {
            AckMode::Queued => (None, None),
            AckMode::Confirmed => {
                let (reply, outcome) = oneshot::channel();
                (Some(reply), Some(outcome))
            }
        };
        let sent = self.acks.send(AckRequest::Ack(PendingAck {
            id,
            lease,
            index,
            unique,
            reply,
        }));
        QueuedAck {
            sent: sent.is_ok(),
            outcome,
        }
    }

    /// Queues the abandonment of a delivery dropped unsettled (see
    /// [`AckRequest::Abandon`]). Without an acker (the process is stopping) the job
    /// comes back with its lease, which then nobody extends.
    pub(crate) fn abandon(&self, lease: u64, index: u32) {
        let _ = self.acks.send(AckRequest::Abandon { lease, index });
    }

    /// Waits until every acknowledgement queued so far has been flushed (or given up).
    pub(crate) async fn flush(&self) {
        let (done, flushed) = oneshot::channel();
        if self.acks.send(AckRequest::Flush(done)).is_ok() {
            // An error means the acker is gone: nothing is left to wait for.
            let _ = flushed.await;
        }
    }
}

impl std::fmt::Debug for Settler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settler")
            .field("link", &self.link)
            .finish_non_exhaustive()
    }
}
