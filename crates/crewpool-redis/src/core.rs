//! What deliveries need after their consumer is gone: the link to Redis, the group
//! commit of acknowledgements, and the heartbeat that keeps held leases alive.
//!
//! # Tasks and their lifetimes
//!
//! ```text
//!   RedisQueue ─┐                 ┌─▶ fetcher task   (until the queue closes or is dropped)
//!   consumers ──┴─▶ Arc<Front> ───┤
//!                                 └─▶ Arc<Core> ──┬─▶ acker task     (until every Core is gone
//!   deliveries ──────────────────────▶ Arc<Core> ─┘                   and its queue is flushed)
//!                                                 └─▶ heartbeat task (until every Core is gone)
//! ```
//!
//! Tasks hold an `Arc<Link>` (the connection), never the handles above them, so
//! dropping the last handle stops them: the acker when the last sender goes (after
//! flushing what was queued), the heartbeat when the watch sender in `Core` goes.
//! A delivery keeps its `Core` alive, so its lease is extended for as long as it
//! exists, even after the queue and its consumers were dropped.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot, watch};

use crate::error::Chain;
use crate::link::{Counters, Link};
use crate::{AckMode, Error, Result};

/// The most acknowledgements one flush carries.
const ACK_BATCH: usize = 4000;
/// The most leases one heartbeat call extends.
const EXTEND_BATCH: usize = 1000;

/// A request to the acker task.
pub(crate) enum AckRequest {
    /// Acknowledge one delivery.
    Ack(PendingAck),
    /// A delivery was dropped unsettled while other deliveries of its lease are still
    /// held (and so extended): give its job a lease of its own (see `abandon.lua`).
    Abandon { lease: u64, index: u32 },
    /// Answer once every request queued before this one was flushed.
    Flush(oneshot::Sender<()>),
}

/// The part of a queue deliveries keep alive.
pub(crate) struct Core {
    pub(crate) link: Arc<Link>,
    acks: mpsc::UnboundedSender<AckRequest>,
    /// Dropped with the last `Core`: stops the heartbeat task.
    _heartbeat: watch::Sender<()>,
}

impl Core {
    /// Starts the acker and heartbeat tasks on `runtime`.
    pub(crate) fn start(link: Arc<Link>, runtime: &tokio::runtime::Handle) -> Arc<Self> {
        let (acks, queue) = mpsc::unbounded_channel();
        let (heartbeat, stop) = watch::channel(());
        runtime.spawn(run_acker(Arc::clone(&link), queue));
        runtime.spawn(run_heartbeat(Arc::clone(&link), stop));
        Arc::new(Core {
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

/// An acknowledgement handed to the acker.
pub(crate) struct QueuedAck {
    sent: bool,
    outcome: Option<oneshot::Receiver<Result<()>>>,
}

impl QueuedAck {
    /// Waits for the flush in [`AckMode::Confirmed`]; at once in [`AckMode::Queued`].
    pub(crate) async fn outcome(self) -> Result<()> {
        if !self.sent {
            return Err(Error::Closed);
        }
        match self.outcome {
            None => Ok(()),
            // The acker answers every request it takes; no answer means it stopped.
            Some(outcome) => outcome.await.map_err(|_| Error::Closed)?,
        }
    }
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core")
            .field("link", &self.link)
            .finish_non_exhaustive()
    }
}

/// Exponential backoff for the background tasks' retries: 10 ms doubling to 2 s.
#[derive(Debug)]
pub(crate) struct Backoff {
    next: Duration,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(10);
    const MAX: Duration = Duration::from_secs(2);

    pub(crate) fn new() -> Self {
        Backoff { next: Self::FIRST }
    }

    pub(crate) fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(Self::MAX);
        delay
    }

    pub(crate) fn reset(&mut self) {
        self.next = Self::FIRST;
    }

    pub(crate) fn is_fresh(&self) -> bool {
        self.next == Self::FIRST
    }
}

/// Group commit: takes every acknowledgement waiting, settles them in one script call,
/// answers, repeats. Under load, acknowledgements pile up while a flush is in flight and
/// the next flush carries them all.
async fn run_acker(link: Arc<Link>, mut queue: mpsc::UnboundedReceiver<AckRequest>) {
    let mut acks = Vec::new();
    let mut abandoned = Vec::new();
    let mut flushes = Vec::new();
    while let Some(first) = queue.recv().await {
        let mut request = Some(first);
        while let Some(next) = request.take() {
            match next {
                AckRequest::Ack(ack) => acks.push(ack),
                AckRequest::Abandon { lease, index } => abandoned.push((lease, index)),
                AckRequest::Flush(done) => flushes.push(done),
            }
            if acks.len() < ACK_BATCH {
                request = queue.try_recv().ok();
            }
        }
        if !acks.is_empty() {
            flush(&link, &mut acks).await;
            // The workers this flush answered were just woken: let them run (and
            // queue their next acknowledgements) before gathering the next flush, so
            // it carries them instead of leaving them for the one after.
            tokio::task::yield_now().await;
        }
        if !abandoned.is_empty() {
            abandon(&link, &mut abandoned).await;
        }
        for done in flushes.drain(..) {
            let _ = done.send(());
        }
    }
}

/// An acknowledgement waiting for the next flush; `reply` (in [`AckMode::Confirmed`])
/// hears the outcome.
pub(crate) struct PendingAck {
    id: u64,
    lease: u64,
    index: u32,
    /// The uniqueness key the job holds, if any.
    unique: Option<Arc<str>>,
    reply: Option<oneshot::Sender<Result<()>>>,
}

/// Groups acknowledgements by lease, in order of first appearance; returns the groups
/// and, for each acknowledgement, its group.
fn group_by_lease(acks: &[PendingAck]) -> (Vec<(u64, Vec<u32>)>, Vec<usize>) {
    let mut groups: Vec<(u64, Vec<u32>)> = Vec::new();
    let mut positions: HashMap<u64, usize> = HashMap::new();
    let mut group_of = Vec::with_capacity(acks.len());
    for ack in acks {
        let group = *positions.entry(ack.lease).or_insert_with(|| {
            groups.push((ack.lease, Vec::new()));
            groups.len() - 1
        });
        groups[group].1.push(ack.index);
        group_of.push(group);
    }
    (groups, group_of)
}

async fn flush(link: &Link, acks: &mut Vec<PendingAck>) {
    let (groups, group_of) = group_by_lease(acks);
    let uniques: Vec<(u64, u32, u64, &str)> = acks
        .iter()
        .filter_map(|ack| Some((ack.lease, ack.index, ack.id, ack.unique.as_deref()?)))
        .collect();
    let started = Instant::now();
    let mut backoff = Backoff::new();
    let mut repeated = false;
    let outcome = loop {
        match link.ack(&groups, &uniques).await {
            Ok(codes) => break Ok(codes),
            Err(error) => {
                Counters::add(&link.counters.redis_errors, 1);
                // Past a lease length the leases are gone anyway: stop holding the
                // workers and let the jobs run again (at-least-once).
                if started.elapsed() >= link.config.lease {
                    break Err(error);
                }
                if backoff.is_fresh() {
                    tracing::warn!(queue = %link.config.queue, error = %Chain(&error), jobs = acks.len(), "could not flush acknowledgements; retrying with backoff");
                }
                tokio::time::sleep(backoff.next_delay()).await;
                repeated = true;
            }
        }
    };
    match outcome {
        Ok(codes) => {
            // A gone lease after a repeated call may be our own earlier call that
            // landed unanswered (it settled the lease's last jobs); on a first call it
            // means the lease expired and its jobs were taken back.
            let settled = |group: usize| codes[group] == 1 || repeated;
            let acked = group_of.iter().filter(|&&group| settled(group)).count();
            // Counted before anyone is answered: a caller woken by its answer reads
            // counters that include its own acknowledgement.
            Counters::add(&link.counters.acked, acked);
            Counters::add(&link.counters.stale, acks.len() - acked);
            for (ack, group) in acks.drain(..).zip(group_of) {
                let result = if settled(group) {
                    Ok(())
                } else {
                    Err(Error::LeaseLost(crewpool_core::JobId(ack.id)))
                };
                match ack.reply {
                    Some(reply) => {
                        let _ = reply.send(result);
                    }
                    None => {
                        if let Err(error) = result {
                            tracing::warn!(queue = %link.config.queue, error = %Chain(&error), "acknowledgement refused");
                        }
                    }
                }
            }
        }
        Err(error) => {
            tracing::error!(queue = %link.config.queue, error = %Chain(&error), jobs = acks.len(), "gave up flushing acknowledgements; the jobs will run again when their leases expire");
            for ack in acks.drain(..) {
                if let Some(reply) = ack.reply {
                    let copy = error
                        .duplicate()
                        .unwrap_or_else(|| Error::Protocol(error.to_string()));
                    let _ = reply.send(Err(copy));
                }
            }
        }
    }
}

/// Moves the jobs of deliveries dropped unsettled to leases of their own; on failure
/// they stay in their old lease and come back with it.
async fn abandon(link: &Link, abandoned: &mut Vec<(u64, u32)>) {
    match link.abandon(abandoned).await {
        Ok(moved) => {
            tracing::debug!(queue = %link.config.queue, moved, "deliveries dropped unsettled will come back when their own lease expires");
        }
        Err(error) => {
            Counters::add(&link.counters.redis_errors, 1);
            tracing::warn!(queue = %link.config.queue, error = %Chain(&error), jobs = abandoned.len(), "could not give dropped deliveries their own lease; they come back when their fetch's lease expires");
        }
    }
    abandoned.clear();
}

/// Every heartbeat interval, extends the lease of every job this process holds.
async fn run_heartbeat(link: Arc<Link>, mut stop: watch::Receiver<()>) {
    let mut ticker = tokio::time::interval(link.config.heartbeat_interval());
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            // Only an error is possible: the sender is never used to send.
            _ = stop.changed() => return,
        }
        if let Err(error) = extend_leases(&link).await {
            Counters::add(&link.counters.redis_errors, 1);
            tracing::warn!(queue = %link.config.queue, error = %Chain(&error), "heartbeat failed; retrying at the next tick");
        }
    }
}

/// One heartbeat round; returns how many held deliveries were found lost.
pub(crate) async fn extend_leases(link: &Link) -> Result<usize> {
    let held = link.held_lease_ids();
    if held.is_empty() {
        return Ok(0);
    }
    let mut lost_count = 0;
    for ids in held.chunks(EXTEND_BATCH) {
        let lost = link.extend(ids).await?;
        if lost.is_empty() {
            continue;
        }
        // A lease emptied by settlements that raced this heartbeat is gone too, but
        // then none of its deliveries is held any more: only held ones count.
        let lost = link.drop_lost(&lost);
        if lost > 0 {
            tracing::warn!(queue = %link.config.queue, lost, "leases lost: their jobs were taken back; settling them will fail");
            lost_count += lost;
        }
    }
    Counters::add(&link.counters.heartbeats, 1);
    Counters::add(&link.counters.leases_lost, lost_count);
    Ok(lost_count)
}
