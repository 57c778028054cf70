//! Group commit of acknowledgements: deliveries queue their acknowledgements to one
//! acker task per process, which settles everything waiting in one `ack.lua` call and
//! answers, with a few such calls in flight at once. Under load, acknowledgements pile
//! up while flushes are in flight and the next flush carries them all.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;

use crate::backoff::Backoff;
use crate::counters::Counters;
use crate::error::Chain;
use crate::lease::abandon_batch;
use crate::link::{Link, codes, write_field};
use crate::{Error, Result};

/// The most acknowledgements one flush carries.
const ACK_BATCH: usize = 4000;

/// The most flushes in flight at once.
const FLUSHES_IN_FLIGHT: usize = 16;

/// The flush time that earns one more flush in flight. One flush at a time makes an
/// acknowledgement that arrives during a flush wait for its answer before its own
/// flush is even sent: up to two flush times. That is nothing on a fast link, where
/// fewer, larger flushes save Redis's CPU (group commit); over a network, more
/// flushes in flight keep the wait near one round trip. So one flush may be in flight
/// per this much of the (smoothed) flush time: one on loopback, five at 2.5 ms.
const FLUSH_TIME_PER_FLIGHT: Duration = Duration::from_micros(500);

/// How many flushes may be in flight when a flush takes `flush_time`.
fn flushes_allowed(flush_time: Duration) -> usize {
    let flights = flush_time.as_micros() / FLUSH_TIME_PER_FLIGHT.as_micros();
    usize::try_from(flights).map_or(FLUSHES_IN_FLIGHT, |flights| {
        flights.clamp(1, FLUSHES_IN_FLIGHT)
    })
}

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

/// Group commit: takes every acknowledgement waiting and settles them in one script
/// call, with more than one such call in flight at once (pipelined on the shared
/// connection) when flushes take long (see [`FLUSH_TIME_PER_FLIGHT`]). Under load, acknowledgements pile up while flushes are in
/// flight and the next flush carries them all; over a slow network, a flush does not
/// wait for the previous one's answer, so an acknowledgement waits about one round
/// trip, not up to two.
///
/// A [`AckRequest::Flush`] is answered once every flush started before it (and the
/// one carrying what was gathered with it) is answered.
pub(crate) async fn run_acker(link: Arc<Link>, mut queue: mpsc::UnboundedReceiver<AckRequest>) {
    // Each flush task returns how long its script call took.
    let mut flushing: JoinSet<Option<Duration>> = JoinSet::new();
    let mut flushes = Vec::new();
    // The smoothed flush time.
    let mut flush_time = Duration::ZERO;
    loop {
        let allowed = flushes_allowed(flush_time);
        let first = tokio::select! {
            // Reap finished flushes first: a free slot lets the next one go.
            biased;
            Some(took) = flushing.join_next(), if !flushing.is_empty() => {
                if let Ok(Some(took)) = took {
                    // A quarter of each new measurement.
                    flush_time = (flush_time * 3 + took) / 4;
                }
                continue;
            }
            first = queue.recv(), if flushing.len() < allowed => first,
        };
        let Some(first) = first else { break };
        let mut acks = Vec::new();
        let mut abandoned = Vec::new();
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
        if !acks.is_empty() || !abandoned.is_empty() {
            let link = Arc::clone(&link);
            flushing.spawn(async move {
                let took = if acks.is_empty() {
                    None
                } else {
                    let started = Instant::now();
                    flush(&link, &mut acks).await;
                    Some(started.elapsed())
                };
                if !abandoned.is_empty() {
                    abandon_batch(&link, &mut abandoned).await;
                }
                took
            });
        }
        if !flushes.is_empty() {
            // Rare (a consumer ending, a pool stopping): wait for everything in flight.
            while flushing.join_next().await.is_some() {}
            for done in flushes.drain(..) {
                let _ = done.send(());
            }
        }
    }
    while flushing.join_next().await.is_some() {}
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

#[cfg(test)]
mod flight_tests {
    use super::*;

    #[test]
    fn slow_flushes_earn_more_flushes_in_flight() {
        assert_eq!(flushes_allowed(Duration::ZERO), 1);
        assert_eq!(flushes_allowed(Duration::from_micros(300)), 1);
        assert_eq!(flushes_allowed(Duration::from_micros(2600)), 5);
        assert_eq!(flushes_allowed(Duration::from_secs(1)), FLUSHES_IN_FLIGHT);
    }
}
