//! Group commit of acknowledgements: deliveries queue their acknowledgements to one
//! acker task per process, which settles everything waiting in one `ack.lua` call,
//! answers, and repeats. Under load, acknowledgements pile up while a flush is in
//! flight and the next flush carries them all.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{mpsc, oneshot};

use crate::backoff::Backoff;
use crate::counters::Counters;
use crate::error::Chain;
use crate::lease::abandon_batch;
use crate::link::{Link, codes, write_field};
use crate::{Error, Result};

/// The most acknowledgements one flush carries.
const ACK_BATCH: usize = 4000;

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

/// An acknowledgement handed to the acker.
pub(crate) struct QueuedAck {
    pub(crate) sent: bool,
    pub(crate) outcome: Option<oneshot::Receiver<Result<()>>>,
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

/// Group commit: takes every acknowledgement waiting, settles them in one script call,
/// answers, repeats. Under load, acknowledgements pile up while a flush is in flight and
/// the next flush carries them all.
pub(crate) async fn run_acker(link: Arc<Link>, mut queue: mpsc::UnboundedReceiver<AckRequest>) {
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
            abandon_batch(&link, &mut abandoned).await;
        }
        for done in flushes.drain(..) {
            let _ = done.send(());
        }
    }
}

/// An acknowledgement waiting for the next flush; `reply` (in [`AckMode::Confirmed`])
/// hears the outcome.
pub(crate) struct PendingAck {
    pub(crate) id: u64,
    pub(crate) lease: u64,
    pub(crate) index: u32,
    /// The uniqueness key the job holds, if any.
    pub(crate) unique: Option<Arc<str>>,
    pub(crate) reply: Option<oneshot::Sender<Result<()>>>,
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

impl Link {
    /// Acknowledges jobs, grouped by lease: `(lease, indexes)`, releasing the
    /// uniqueness keys `(lease, index, id, key)` of the jobs that hold one. One code per
    /// group (see `ack.lua`): 1 the lease was live and its jobs are deleted, 0 it is gone.
    pub(crate) async fn ack(
        &self,
        groups: &[(u64, Vec<u32>)],
        uniques: &[(u64, u32, u64, &str)],
    ) -> Result<Vec<i64>> {
        let keys = &self.keys;
        let script = &self.scripts.ack;
        let mut call = Self::script_call(
            script,
            &[
                &keys.leased,
                &keys.active,
                &keys.leases,
                &keys.stats,
                &keys.unique,
                &keys.unique_ttl,
            ],
        );
        call.arg(uniques.len());
        for &(lease, index, id, key) in uniques {
            write_field(&mut call, lease, index);
            call.arg(id).arg(key);
        }
        for (lease, indexes) in groups {
            call.arg(*lease).arg(indexes.len());
            for &index in indexes {
                write_field(&mut call, *lease, index);
            }
        }
        let reply = self
            .invoke_durable("acknowledging jobs", script, &call, true)
            .await?;
        Counters::add(&self.counters.ack_flushes, 1);
        codes(reply, groups.len(), "ack")
    }
}
