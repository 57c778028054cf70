//! The fetcher: one task per process that leases batches of jobs for the workers
//! waiting in this process, and blocks in Redis while the queue is empty.
//!
//! # States
//!
//! ```text
//!            ┌──── demand (a worker waits, or prefetch is short) ───┐
//!            ▼                                                      │
//!   Idle ──▶ Fetch ──jobs──▶ hand them to the local buffer ─────────┘
//!    (up to FETCHES_IN_FLIGHT fetches pipelined: demand that is not covered by
//!     what is buffered and what the fetches in flight asked for starts another)
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
//! - *Close vs. fetches in flight*: fetches in flight are never dropped unanswered;
//!   closing awaits each and releases what it leased, with the buffer's leftovers.
//! - *Pipelined fetches vs. order*: the fetcher polls its fetches itself, oldest first,
//!   so their calls reach Redis in the order they were made and the older fetch takes
//!   the older jobs; a fetch Redis answers `NOSCRIPT` is not sent again (it would run
//!   behind the younger ones): it took nothing, and a new fetch follows.
//! - *Pipelined fetches vs. an empty queue*: a fetch that takes nothing stops new
//!   fetches until the block below; the ones still in flight are awaited first (their
//!   jobs, if any, are handed out and fetching goes on).

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

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
    /// The consumers of this process (a pool's workers).
    consumers: AtomicUsize,
    /// Jobs the consumers finished with (came back for another), and the time they
    /// held them in all (ns): the time a worker is busy per job.
    finished: AtomicU64,
    busy_ns: AtomicU64,
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

    /// Counts a consumer of this process until [`leave`](Self::leave).
    pub(crate) fn join(&self) {
        // Relaxed, here and below: these only size the prefetch.
        self.consumers.fetch_add(1, Ordering::Relaxed);
    }

    /// A consumer counted by [`join`](Self::join) is gone.
    pub(crate) fn leave(&self) {
        self.consumers.fetch_sub(1, Ordering::Relaxed);
    }

    /// A consumer came back for a job `busy` after it took the last one.
    pub(crate) fn finished(&self, busy: std::time::Duration) {
        let ns = u64::try_from(busy.as_nanos()).unwrap_or(u64::MAX);
        self.busy_ns.fetch_add(ns, Ordering::Relaxed);
        self.finished.fetch_add(1, Ordering::Relaxed);
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

/// The most fetches in flight at once. One would leave the workers without a next
/// batch for a round trip after each; two keep the next batch on its way while the
/// current one runs, and pipeline on the shared connection.
const FETCHES_IN_FLIGHT: usize = 2;

/// A fetch's answer and how long it took; `None` when it did nothing (Redis lacked
/// the script, now loaded).
type FetchAnswer = Result<Option<(Fetched, std::time::Duration)>>;

/// A fetch in flight, polled by the fetcher.
type FetchReply = Pin<Box<dyn Future<Output = FetchAnswer> + Send>>;

/// Polls every fetch in flight, oldest first (so a new one's call goes out after the
/// older ones'), keeping the answers that come; ready with the oldest's answer.
fn poll_oldest(
    fetches: &mut VecDeque<InFlight>,
    cx: &mut std::task::Context<'_>,
) -> std::task::Poll<FetchAnswer> {
    for fetch in fetches.iter_mut() {
        if fetch.answer.is_none()
            && let std::task::Poll::Ready(answer) = fetch.reply.as_mut().poll(cx)
        {
            fetch.answer = Some(answer);
        }
    }
    match fetches.front_mut().and_then(|oldest| oldest.answer.take()) {
        Some(answer) => std::task::Poll::Ready(answer),
        None => std::task::Poll::Pending,
    }
}

/// A fetch in flight: how many jobs it asked for, and its answer.
struct InFlight {
    want: usize,
    /// The call.
    reply: FetchReply,
    /// Its answer, once it came (kept until the older fetches' answers are taken).
    answer: Option<FetchAnswer>,
}

/// The pace of this process, for the prefetch when none is configured: how long a
/// fetch takes (its round trip and Redis's work) and how long a worker is busy with a
/// job (from taking it to coming back for the next, its settlement included), both
/// smoothed.
///
/// The prefetch is then what the workers would take in two fetch round trips if they
/// never waited: `2 × workers × fetch time / busy time`, at most `FETCHES_IN_FLIGHT`
/// batches. Short jobs over a slow network keep the next batches on their way while
/// the buffered ones run; slow jobs (one per worker takes many round trips) get next
/// to none, so no job waits here behind a busy worker while another process idles.
/// The busy time is the workers' own, not the rate they happen to get jobs at: a
/// starved pool does not talk itself into a small prefetch.
#[derive(Debug)]
struct Pace {
    /// Fetch time, seconds.
    fetch: f64,
    /// Busy time per job, seconds; `None` until measured.
    busy: Option<f64>,
    /// What `Demand` had counted at the last measurement.
    finished: u64,
    busy_ns: u64,
}

impl Pace {
    /// The weight of a new measurement.
    const ALPHA: f64 = 0.25;
    /// The fewest finished jobs a busy time is measured over.
    const SAMPLE: u64 = 32;

    fn new() -> Self {
        Pace {
            fetch: 0.0,
            busy: None,
            finished: 0,
            busy_ns: 0,
        }
    }

    /// A fetch was answered after `fetch`; reads the busy time the consumers counted.
    fn observe(&mut self, fetch: std::time::Duration, demand: &Demand) {
        self.fetch += Self::ALPHA * (fetch.as_secs_f64() - self.fetch);
        let finished = demand.finished.load(Ordering::Relaxed);
        let jobs = finished.saturating_sub(self.finished);
        if jobs >= Self::SAMPLE {
            let busy_ns = demand.busy_ns.load(Ordering::Relaxed);
            let busy = busy_ns.saturating_sub(self.busy_ns) as f64 / 1e9 / jobs as f64;
            self.busy = Some(match self.busy {
                Some(old) => old + Self::ALPHA * (busy - old),
                None => busy,
            });
            self.finished = finished;
            self.busy_ns = busy_ns;
        }
    }

    /// The prefetch for this pace with `workers` consumers; none before a busy time
    /// was measured (the first fetches take what waiting workers ask for).
    fn prefetch(&self, workers: usize, batch: usize) -> usize {
        let most = batch * FETCHES_IN_FLIGHT;
        let Some(busy) = self.busy else { return 0 };
        let jobs = (2.0 * workers as f64 * self.fetch / busy.max(1e-9)).floor();
        if jobs >= most as f64 {
            most
        } else {
            jobs as usize
        }
    }
}

/// What a fetch that took nothing said about waiting.
struct Idle {
    next_due: Option<std::time::Duration>,
    paused: bool,
    rate_wait: Option<std::time::Duration>,
}

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
    /// How many jobs to fetch now, if any, with `requested` jobs already asked for by
    /// the fetches in flight: when a worker waits with nothing buffered or on its way
    /// for it, or when what is buffered and on its way falls short of the waiting
    /// workers plus the prefetch by a quarter of the prefetch or more (hysteresis, so
    /// a busy pool does not trickle one small fetch per finished job); then the whole
    /// shortfall, up to a batch. With fetches pipelined this keeps the supply near the
    /// prefetch, not between half of it and all of it.
    fn want(&self, requested: usize, pace: &Pace) -> Option<usize> {
        let prefetch = self.link.config.prefetch.unwrap_or_else(|| {
            let workers = self.demand.consumers.load(Ordering::Relaxed);
            pace.prefetch(workers, self.link.config.batch_size)
        });
        let (waiting, buffered) = (self.demand.waiting(), self.buffer.len());
        let supply = buffered + requested;
        let short = (waiting + prefetch).saturating_sub(supply);
        let starving = waiting > supply;
        let low = prefetch > 0 && short >= (prefetch / 4).max(1);
        if !(starving || low) {
            return None;
        }
        let want = short.min(self.link.config.batch_size);
        (want > 0).then_some(want)
    }

    pub(crate) async fn run(mut self) {
        let mut blocking: Option<crate::conn::Conn> = None;
        let mut in_flight: Option<Block> = None;
        let mut fetches: VecDeque<InFlight> = VecDeque::new();
        // What the last fetch that took nothing said (set: block before fetching again).
        let mut idle: Option<Idle> = None;
        let mut backoff = Backoff::new();
        let mut pace = Pace::new();
        loop {
            if self.is_closed() {
                break;
            }
            // Fetch ahead: up to FETCHES_IN_FLIGHT fetches pipelined on the shared
            // connection, so the next batch is on its way while this one runs. Not
            // after a fetch that took nothing: then block (below) first.
            if idle.is_none() {
                while fetches.len() < FETCHES_IN_FLIGHT {
                    let requested = fetches.iter().map(|fetch| fetch.want).sum();
                    let Some(want) = self.want(requested, &pace) else {
                        break;
                    };
                    // Polled by this task, oldest first, so the calls go out in the
                    // order they were made (spawned tasks could send them in any
                    // order, and Redis would hand the older jobs to the younger
                    // fetch); never dropped before answered: a reply dropped on the
                    // floor would leave jobs leased to nobody until their lease
                    // expires. `close` awaits what is still in flight.
                    let link = Arc::clone(&self.link);
                    let reply: FetchReply = Box::pin(async move {
                        let asked = Instant::now();
                        // Not sent again after NOSCRIPT (see `Link::fetch_once`).
                        link.fetch_once(want)
                            .await
                            .map(|fetched| fetched.map(|fetched| (fetched, asked.elapsed())))
                    });
                    fetches.push_back(InFlight {
                        want,
                        reply,
                        answer: None,
                    });
                }
            }
            let more = fetches.len() < FETCHES_IN_FLIGHT && idle.is_none();
            if !fetches.is_empty() {
                // The oldest fetch's answer, or more demand (another fetch may go).
                let answered = tokio::select! {
                    answer = std::future::poll_fn(|cx| poll_oldest(&mut fetches, cx)) => Some(answer),
                    () = self.demand.notify.notified(), if more => None,
                    _ = self.closed.changed() => None,
                };
                let Some(answer) = answered else { continue };
                fetches.pop_front();
                match answer {
                    // Nothing ran: fetch again (after the ones in flight, which
                    // did nothing either, or took the oldest jobs).
                    Ok(None) => {}
                    Ok(Some((fetched, latency))) => {
                        backoff.reset();
                        pace.observe(latency, &self.demand);
                        idle = self.took(fetched).await;
                    }
                    Err(error) => {
                        if self.pause_after(&error, &mut backoff).await {
                            break;
                        }
                    }
                }
                continue;
            }
            let Some(took_nothing) = idle.take() else {
                // Idle: wait until someone wants a job.
                tokio::select! {
                    () = self.demand.notify.notified() => {}
                    _ = self.closed.changed() => {}
                }
                continue;
            };
            let Idle {
                next_due,
                paused,
                rate_wait,
            } = took_nothing;
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
                            break;
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
                            break;
                        }
                    }
                }
                () = timer => {}
                () = self.link.rescan.notified() => {}
                _ = self.closed.changed() => {}
            }
        }
        self.close(fetches).await;
    }

    /// Hands a fetch's jobs to the buffer; when it took none, returns what it said
    /// about waiting.
    async fn took(&mut self, fetched: Fetched) -> Option<Idle> {
        let Fetched {
            lease,
            records,
            next_due,
            now_ms,
            paused,
            rate_wait,
            ..
        } = fetched;
        if let Some(lease) = lease {
            self.dispatch(lease, records, now_ms).await;
            return None;
        }
        Some(Idle {
            next_due,
            paused,
            rate_wait,
        })
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

    /// Takes back what no worker took, and what the fetches still in flight bring,
    /// and releases it to the queue; then ends the buffer, so a worker that sees the
    /// end (and a pool whose shutdown waits for its workers) finds the released jobs
    /// back in Redis and counted.
    async fn close(self, fetches: VecDeque<InFlight>) {
        let mut leftover = Vec::new();
        for fetch in fetches {
            let answer = match fetch.answer {
                Some(answer) => answer,
                None => fetch.reply.await,
            };
            if let Ok(Some((
                Fetched {
                    lease: Some(lease),
                    records,
                    ..
                },
                _,
            ))) = answer
            {
                for index in (1..).take(records.len()) {
                    lease.let_go();
                    leftover.push((lease.id, index));
                }
            }
        }
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn paced(fetch: Duration, busy: Duration, jobs: u64) -> Pace {
        let demand = Demand::default();
        for _ in 0..jobs {
            demand.finished(busy);
        }
        let mut pace = Pace::new();
        pace.observe(fetch, &demand);
        pace
    }

    #[test]
    fn the_default_prefetch_covers_two_fetch_round_trips_at_the_workers_pace() {
        // Nothing measured yet: fetch only for workers that wait.
        assert_eq!(Pace::new().prefetch(512, 1000), 0);
        // Too few jobs finished to measure a busy time.
        let few = paced(Duration::from_millis(3), Duration::from_millis(6), 8);
        assert_eq!(few.prefetch(512, 1000), 0);
        // 512 workers, 7 ms per job, 3 ms per fetch (after one observation the fetch
        // time is smoothed from 0: a quarter of it): 2 × 512 × 0.75 / 7 = 109.7.
        let ms = paced(Duration::from_millis(3), Duration::from_millis(7), 100);
        assert_eq!(ms.prefetch(512, 1000), 109);
        // Jobs of a second: none, as with a prefetch of 0.
        let slow = paced(Duration::from_millis(3), Duration::from_secs(1), 100);
        assert_eq!(slow.prefetch(8, 1000), 0);
        // No-op jobs: two batches at most.
        let fast = paced(Duration::from_millis(3), Duration::from_micros(1), 100);
        assert_eq!(fast.prefetch(512, 1000), 2000);
    }
}
