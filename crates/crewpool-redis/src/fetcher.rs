//! The fetcher: one task per process that leases batches of jobs for the workers
//! waiting in this process, and blocks in Redis while the queue is empty.
//!
//! # States
//!
//! ```text
//!            ┌──── demand (a worker waits, or prefetch is short) ───┐
//!            ▼                                                      │
//!   Idle ──▶ Fetch ──jobs──▶ hand them to the local buffer ─────────┘
//!    ▲         │
//!    │         ├──nothing──▶ Block: until a push (BLMOVE returns), the next lease
//!    │         │             deadline or delayed job (local timer), a local retry
//!    ├─────────┼──────────── (rescan), or max_block; then Fetch again if still wanted
//!    │         ├──paused───▶ Block on `resumed` instead (a resume pushes its marker
//!    ├─────────┼──────────── there), with the same timers: housekeeping goes on
//!    │         └──rate limit─▶ Sleep as long as the fetch said the window stays full
//!    └───────────────────────
//!
//!   any state ──close / drop──▶ Closing: release the buffered jobs, then drop the sender
//! ```
//!
//! # Races
//!
//! - *Worker arrives vs. fetcher goes idle*: a worker counts itself in `waiting` and
//!   then calls `notify_one`, which leaves a permit if the fetcher is not waiting yet;
//!   the fetcher reads `waiting` before awaiting `notified`, so either it sees the
//!   count or it finds the permit. No lost wake-up.
//! - *Push vs. block*: `BLMOVE` returns at once if the list is non-empty, so a push
//!   that lands between the empty fetch and the block is not missed.
//! - *Resume vs. block*: a pause empties `resumed` and a resume pushes a marker there
//!   that stays until the next pause, so a resume that lands between the fetch that
//!   saw the pause and the block on `resumed` is not missed either. A block on
//!   `pending` already in flight when a fetch saw the pause is kept (see below) and
//!   the resume wakes it too (it pushes the wake marker to an empty `pending`).
//! - *The block outlives its select*: a `BLMOVE` in flight is kept (boxed) across
//!   iterations, never dropped and reissued, because a dropped blocking call would
//!   still hold the blocking connection server-side. Timers shorter than the block run
//!   locally beside it.
//! - *Close vs. a worker taking a job*: the fetcher drains the buffer with `try_recv`;
//!   each job goes to exactly one of a worker or the release.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crewpool_core::{Envelope, JobId};
use serde::de::DeserializeOwned;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use crate::backoff::Backoff;
use crate::counters::Counters;
use crate::error::Chain;
use crate::lease::Lease;
use crate::link::{BuryStat, Fetched, Link};
use crate::{Result, wire};

/// A leased job waiting in the local buffer for a worker.
pub(crate) struct Leased<J> {
    pub(crate) envelope: Envelope<J>,
    pub(crate) lease: Arc<Lease>,
    /// The job's place in its lease (field `<lease>:<index>`).
    pub(crate) index: u32,
    /// Its priority level.
    pub(crate) level: u8,
    /// The uniqueness key it holds.
    pub(crate) unique: Option<Arc<str>>,
    /// Its start deadline (ms since the Unix epoch, Redis clock).
    pub(crate) start_by: Option<u64>,
    /// The reply channel of a producer that waits for its result.
    pub(crate) reply: Option<Arc<str>>,
    /// The producer's headers (its trace context).
    pub(crate) headers: Option<Box<crate::Headers>>,
}

/// The dead-letter reason of a job not started by its deadline.
pub(crate) const EXPIRED: &str = "expired";

/// How many workers of this process wait for a job.
#[derive(Debug, Default)]
pub(crate) struct Demand {
    waiting: AtomicUsize,
    notify: Notify,
}

impl Demand {
    /// Counts a waiting worker until the guard drops.
    pub(crate) fn wait(&self) -> Waiting<'_> {
        // SeqCst: ordered before the fetcher's load of `waiting` or its wake-up (see
        // "Races" above); cheap next to a Redis round trip.
        self.waiting.fetch_add(1, Ordering::SeqCst);
        self.notify.notify_one();
        Waiting(self)
    }

    fn waiting(&self) -> usize {
        self.waiting.load(Ordering::SeqCst)
    }
}

/// A worker counted in [`Demand`].
pub(crate) struct Waiting<'a>(&'a Demand);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::SeqCst);
    }
}

type Block = Pin<Box<dyn Future<Output = Result<()>> + Send>>;

/// The fetcher's inputs.
pub(crate) struct Fetcher<J> {
    pub(crate) link: Arc<Link>,
    pub(crate) buffer: flume::Sender<Leased<J>>,
    /// The fetcher's own receiver, to take back what no worker took when closing.
    pub(crate) unclaimed: flume::Receiver<Leased<J>>,
    pub(crate) demand: Arc<Demand>,
    pub(crate) closed: watch::Receiver<bool>,
}

impl<J: DeserializeOwned + Send + 'static> Fetcher<J> {
    pub(crate) async fn run(mut self) {
        let mut blocking: Option<crate::conn::Conn> = None;
        let mut in_flight: Option<Block> = None;
        let mut backoff = Backoff::new();
        let config = &self.link.config;
        let batch = config.batch_size;
        let prefetch = config.prefetch;
        'run: loop {
            // Idle: wait until someone wants a job.
            let want = loop {
                if self.is_closed() {
                    break 'run;
                }
                // Fetch when a worker waits with nothing buffered for it, or when the
                // prefetch fell to half: then fill up in one batch (hysteresis, so a
                // busy pool does not trickle one small fetch per finished job).
                let (waiting, buffered) = (self.demand.waiting(), self.buffer.len());
                let starving = waiting > buffered;
                let low = prefetch > 0 && buffered <= prefetch / 2;
                if starving || low {
                    let want = (waiting + prefetch).saturating_sub(buffered).min(batch);
                    if want > 0 {
                        break want;
                    }
                }
                tokio::select! {
                    () = self.demand.notify.notified() => {}
                    _ = self.closed.changed() => {}
                }
            };

            // Fetch. Never cancelled: a reply dropped on the floor would leave jobs
            // leased to nobody until their lease expires.
            let Fetched {
                lease,
                records,
                next_due,
                now_ms,
                paused,
                rate_wait,
                ..
            } = match self.link.fetch(want).await {
                Ok(fetched) => {
                    backoff.reset();
                    fetched
                }
                Err(error) => {
                    if self.pause_after(&error, &mut backoff).await {
                        break 'run;
                    }
                    continue;
                }
            };
            if let Some(lease) = lease {
                self.dispatch(lease, records, now_ms).await;
                continue;
            }
            if let Some(wait) = rate_wait {
                // Every job the window allows was taken: sleep until its oldest start
                // leaves it, as Redis computed. Nothing to block on: jobs may be
                // pending, and a block would return at once.
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    _ = self.closed.changed() => {}
                }
                continue;
            }

            // Block until a push, a due time, a local retry, or max_block.
            if blocking.is_none() {
                match self.link.blocking_connection().await {
                    Ok(conn) => blocking = Some(conn),
                    Err(error) => {
                        if self.pause_after(&error, &mut backoff).await {
                            break 'run;
                        }
                        continue;
                    }
                }
            }
            let Some(conn) = &blocking else { continue };
            if in_flight.is_none() {
                let link = Arc::clone(&self.link);
                let mut conn = conn.clone();
                let max_block = link.config.max_block;
                // Paused, `pending` may hold jobs and a block there would return at
                // once: wait for the resume instead.
                let block: Block = if paused {
                    Box::pin(async move { link.wait_for_resume(&mut conn, max_block).await })
                } else {
                    Box::pin(async move { link.wait_for_jobs(&mut conn, max_block).await })
                };
                in_flight = Some(block);
            }
            let woken = async {
                match in_flight.as_mut() {
                    Some(block) => Some(block.await),
                    None => None,
                }
            };
            let due = next_due.map(|delay| Instant::now() + delay);
            let timer = async {
                match due {
                    Some(due) => tokio::time::sleep_until(due).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                Some(woke) = woken => {
                    in_flight = None;
                    if let Err(error) = woke {
                        // Reconnect the blocking connection on the next round.
                        blocking = None;
                        if self.pause_after(&error, &mut backoff).await {
                            break 'run;
                        }
                    }
                }
                () = timer => {}
                () = self.link.rescan.notified() => {}
                _ = self.closed.changed() => {}
            }
        }
        self.close().await;
    }

    fn is_closed(&self) -> bool {
        // A dropped sender (the queue and its consumers are gone) closes too.
        *self.closed.borrow() || self.closed.has_changed().is_err()
    }

    /// Logs, counts and backs off after a failed call; returns whether the queue
    /// closed meanwhile.
    async fn pause_after(&mut self, error: &crate::Error, backoff: &mut Backoff) -> bool {
        Counters::add(&self.link.counters.redis_errors, 1);
        if backoff.is_fresh() {
            tracing::warn!(queue = %self.link.config.queue, error = %Chain(&error), "fetching failed; retrying with backoff");
        } else {
            tracing::debug!(queue = %self.link.config.queue, error = %Chain(&error), "fetching failed again");
        }
        let delay = backoff.next_delay();
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            _ = self.closed.changed() => {}
        }
        self.is_closed()
    }

    /// Decodes fetched jobs into the buffer; dead-letters the ones that do not decode,
    /// and the ones past their start deadline at `now_ms` (Redis's clock at the fetch),
    /// first: a worker handed a job of this batch finds the batch's refused ones already
    /// counted and dead-lettered.
    async fn dispatch(&mut self, lease: Arc<Lease>, records: Vec<Vec<u8>>, now_ms: u64) {
        let mut decoded = Vec::with_capacity(records.len());
        let mut undecodable = Vec::new();
        let mut expired = Vec::new();
        for (index, record) in (1..).zip(&records) {
            // Checked by the fetch script already; checked again before decoding.
            let job =
                wire::Record::parse(record, self.link.config.max_payload).and_then(|record| {
                    wire::decode_with_extras::<J>(record.envelope)
                        .map(|(job, extras)| (record, job, extras))
                });
            match job {
                Ok((_, _, extras)) if extras.start_by.is_some_and(|by| now_ms > by) => {
                    lease.let_go();
                    expired.push((lease.id, index, EXPIRED.to_owned()));
                }
                Ok((record, job, extras)) => {
                    decoded.push((index, record.level, record.id, record.attempt, job, extras))
                }
                Err(reason) => {
                    tracing::warn!(queue = %self.link.config.queue, lease = lease.id, index, %reason, "dead-lettering a job that does not decode");
                    lease.let_go();
                    undecodable.push((lease.id, index, reason));
                }
            }
        }
        if !undecodable.is_empty() {
            Counters::add(&self.link.counters.undecodable, undecodable.len());
            if let Err(error) = self.link.bury(&undecodable, BuryStat::Failed).await {
                Counters::add(&self.link.counters.redis_errors, 1);
                tracing::warn!(queue = %self.link.config.queue, error = %Chain(&error), "could not dead-letter undecodable jobs; their leases will bring them back");
            }
        }
        if !expired.is_empty() {
            tracing::debug!(queue = %self.link.config.queue, jobs = expired.len(), "dead-lettering jobs not started by their deadline");
            if let Err(error) = self.link.bury(&expired, BuryStat::MissedDeadline).await {
                Counters::add(&self.link.counters.redis_errors, 1);
                tracing::warn!(queue = %self.link.config.queue, error = %Chain(&error), "could not dead-letter expired jobs; their leases will bring them back");
            }
        }
        for (index, level, id, attempt, job, extras) in decoded {
            let envelope = Envelope::new(job).with_id(JobId(id)).with_attempt(attempt);
            // The fetcher holds a receiver itself, so the channel never disconnects
            // while this sender exists.
            let _ = self.buffer.send(Leased {
                envelope,
                lease: Arc::clone(&lease),
                index,
                level,
                unique: extras.unique.map(Arc::from),
                start_by: extras.start_by,
                reply: extras.reply.map(Arc::from),
                headers: extras.headers.map(Box::new),
            });
        }
    }

    /// Takes back what no worker took and releases it to the queue; then ends the
    /// buffer, so a worker that sees the end (and a pool whose shutdown waits for its
    /// workers) finds the released jobs back in Redis and counted.
    async fn close(self) {
        let mut leftover = Vec::new();
        while let Ok(leased) = self.unclaimed.try_recv() {
            // Handed to the release below: no longer extended.
            leased.lease.let_go();
            leftover.push((leased.lease.id, leased.index));
        }
        if !leftover.is_empty() {
            self.release(&leftover).await;
        }
        // Workers waiting in `next` see the end once both ends held here are gone.
        drop(self.buffer);
        drop(self.unclaimed);
    }

    /// Releases jobs fetched ahead, trying three times; on failure their leases bring
    /// them back.
    async fn release(&self, leftover: &[(u64, u32)]) {
        let mut backoff = Backoff::new();
        for attempt in 1..=3 {
            match self.link.release(leftover).await {
                Ok(_) => {
                    tracing::debug!(queue = %self.link.config.queue, jobs = leftover.len(), "released prefetched jobs");
                    return;
                }
                Err(error) if attempt < 3 => {
                    tracing::debug!(error = %Chain(&error), "release failed; retrying");
                    tokio::time::sleep(backoff.next_delay()).await;
                }
                Err(error) => {
                    tracing::warn!(queue = %self.link.config.queue, error = %Chain(&error), jobs = leftover.len(), "could not release prefetched jobs; their leases will bring them back");
                }
            }
        }
    }
}
