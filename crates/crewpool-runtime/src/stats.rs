//! Pool statistics: per-worker counters, summed on demand.
//!
//! Each worker writes only its own counters, on their own cache line, so the hot path
//! costs a plain load and store per job instead of a contended read-modify-write. All
//! orderings are `Relaxed`: a snapshot is a statistic, not a synchronisation point,
//! and may lag by the jobs in flight.

use std::fmt;

use crewpool_core::JobId;

use crossbeam_utils::CachePadded;

use crewpool_core::sync::{Arc, AtomicU64, Mutex, Ordering, lock};

/// A snapshot of a pool's state and lifetime counters.
///
/// Taken with [`Pool::stats`](crate::Pool::stats). Counters are read one by one while
/// workers keep running, so they may disagree by the jobs in flight.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Workers still running their loop.
    pub workers: usize,
    /// Jobs accepted by the queue and not yet taken by a worker (the queue depth).
    pub queued: usize,
    /// Workers running a job right now.
    pub running: usize,
    /// Workers waiting for a job.
    pub idle: usize,
    /// Jobs this pool's queue accepted from this pool: submitted, spawned, and
    /// sub-jobs of running jobs. A submit still waiting for room is not in it, nor is
    /// one that was dropped or refused. On an in-memory queue a job is counted in the
    /// very poll in which the queue takes it, so this is never below `finished()`; a
    /// durable queue's job is counted once the queue confirmed it (its workers may be
    /// in other processes, and this pool's workers run jobs from other producers too).
    /// A batch ([`Pool::spawn_all`](crate::Pool::spawn_all)) on an in-memory queue is
    /// counted whole while it is being pushed (also the part still waiting for room),
    /// and what was not accepted is taken back when it returns or is dropped.
    pub submitted: u64,
    /// Jobs that finished with `Ok`.
    pub completed: u64,
    /// Jobs that finished with `Err`.
    pub failed: u64,
    /// Jobs that panicked.
    pub panicked: u64,
    /// Jobs stopped while running by an abort or a shutdown deadline.
    pub interrupted: u64,
    /// Jobs stopped by the pool's per-job timeout on their last attempt.
    pub timed_out: u64,
    /// Failed attempts that were scheduled to run again.
    pub retried: u64,
    /// Jobs cancelled through their handle (before or while running).
    pub cancelled: u64,
    /// Jobs the queue set aside without delivering them to any worker, so they never
    /// ran: a durable queue's record that no longer decodes as the job type, which it
    /// dead-letters with the reason. Counted by the queue
    /// ([`Queue::undeliverable`](crewpool_core::Queue::undeliverable)); 0 on the
    /// in-memory queues.
    pub undeliverable: u64,
}

impl Stats {
    /// Jobs that reached a final outcome: completed, failed, panicked, timed out or
    /// cancelled (not counting interrupted ones, which never finished).
    pub fn finished(&self) -> u64 {
        self.completed + self.failed + self.panicked + self.timed_out + self.cancelled
    }
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "queued={} running={} idle={} submitted={} completed={} failed={} panicked={}",
            self.queued,
            self.running,
            self.idle,
            self.submitted,
            self.completed,
            self.failed,
            self.panicked
        )?;
        for (name, value) in [
            ("timed_out", self.timed_out),
            ("retried", self.retried),
            ("cancelled", self.cancelled),
            ("interrupted", self.interrupted),
            ("undeliverable", self.undeliverable),
        ] {
            if value > 0 {
                write!(f, " {name}={value}")?;
            }
        }
        Ok(())
    }
}

/// What a worker is doing, in [`WorkerCounters::activity`]: one word per worker.
///
/// ```text
///   IDLE ──takes job n──▶ n·4+1 (polling it) ──poll Pending──▶ n·4 (waiting) ──poll──▶ n·4+1
///     ▲                          │ poll Ready, or the job ends otherwise           │
///     └──────────────────────────┴─────────────────────────────────────────────────┘
///   polling (n·4+1) ──a stopping shutdown gives up on it──▶ n·4+3 (abandoned)
///   any ──leaves its loop──▶ LEFT
/// ```
///
/// The worker writes every state but one with a plain store: only it writes while it
/// is not polling. While it polls, a stopping shutdown may set `ABANDONED` with a
/// compare-and-swap, and the worker ends each poll with a swap, so exactly one of them
/// owns the job's outcome: a shutdown that abandoned the job reports it as still
/// running, and the worker, when its poll returns at last, discards the outcome (the
/// handle gets `Interrupted`) without reporting the job again. A worker polling a job
/// cannot see a stop until the poll returns, and one blocked inside it (a blocking call
/// on a dedicated thread) never does; see `Shared::wait_stopped`.
pub(crate) mod activity {
    pub(crate) const IDLE: u64 = 0;
    pub(crate) const LEFT: u64 = u64::MAX;
    pub(crate) const POLLING: u64 = 1;
    pub(crate) const ABANDONED: u64 = 2;

    pub(crate) fn running(id: u64) -> u64 {
        id << 2
    }

    pub(crate) fn job(activity: u64) -> Option<u64> {
        (activity != IDLE && activity != LEFT).then_some(activity >> 2)
    }
}

/// One worker's counters. Written only by that worker.
#[derive(Debug, Default)]
pub(crate) struct WorkerCounters {
    /// See [`activity`].
    activity: AtomicU64,
    completed: AtomicU64,
    failed: AtomicU64,
    panicked: AtomicU64,
    interrupted: AtomicU64,
    timed_out: AtomicU64,
    retried: AtomicU64,
    cancelled: AtomicU64,
}

/// What became of a job (or, for `Retried`, of one attempt), for counting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Finish {
    Completed,
    Failed,
    Panicked,
    Interrupted,
    TimedOut,
    Retried,
    Cancelled,
}

impl WorkerCounters {
    /// The worker is about to poll job `id` (or to call the worker function that makes
    /// its future). A plain store: nobody else writes while the worker is not polling.
    #[inline]
    pub(crate) fn polling(&self, id: JobId) {
        self.activity.store(
            activity::running(id.0) | activity::POLLING,
            Ordering::Relaxed,
        );
    }

    /// The poll of job `id` returned: the job waits (`done` false) or is over. Returns
    /// `false` when a stopping shutdown abandoned the job during the poll: it reported
    /// the job, and the worker must not. Relaxed: the swap and the shutdown's
    /// compare-and-swap are both read-modify-writes of this one word, so their order in
    /// its modification order alone decides who owns the outcome.
    #[inline]
    pub(crate) fn polled(&self, id: JobId, done: bool) -> bool {
        let next = if done {
            activity::IDLE
        } else {
            activity::running(id.0)
        };
        self.activity.swap(next, Ordering::Relaxed) & activity::ABANDONED == 0
    }

    /// The job ended without a poll to end (cancelled or handed back before it started).
    pub(crate) fn idle(&self) {
        self.activity.store(activity::IDLE, Ordering::Relaxed);
    }

    /// The worker left its loop. `SeqCst`, before the worker counts itself out of
    /// `live`: a shutdown that sees the count still include it reads this again after
    /// the exit notification.
    pub(crate) fn left(&self) {
        self.activity.store(activity::LEFT, Ordering::SeqCst);
    }

    #[inline]
    pub(crate) fn record(&self, finish: Finish) {
        let counter = match finish {
            Finish::Completed => &self.completed,
            Finish::Failed => &self.failed,
            Finish::Panicked => &self.panicked,
            Finish::Interrupted => &self.interrupted,
            Finish::TimedOut => &self.timed_out,
            Finish::Retried => &self.retried,
            Finish::Cancelled => &self.cancelled,
        };
        // Single writer: a load and a store, no read-modify-write needed.
        counter.store(counter.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    }
}

/// What the workers that have left counted, summed when each left.
#[derive(Debug, Default, Clone, Copy)]
struct Retired {
    completed: u64,
    failed: u64,
    panicked: u64,
    interrupted: u64,
    timed_out: u64,
    retried: u64,
    cancelled: u64,
}

impl Retired {
    /// Adds one worker's counts.
    fn add(&mut self, worker: &WorkerCounters) {
        self.completed += worker.completed.load(Ordering::Relaxed);
        self.failed += worker.failed.load(Ordering::Relaxed);
        self.panicked += worker.panicked.load(Ordering::Relaxed);
        self.interrupted += worker.interrupted.load(Ordering::Relaxed);
        self.timed_out += worker.timed_out.load(Ordering::Relaxed);
        self.retried += worker.retried.load(Ordering::Relaxed);
        self.cancelled += worker.cancelled.load(Ordering::Relaxed);
    }
}

/// The live workers' counters, what the workers that have left counted, and the
/// producers' count.
///
/// A worker's counter block is kept while it runs and folded into `retired` when it
/// leaves (under the lock that snapshots hold, so its jobs are counted once, in one
/// place or the other): a pool resized up and down forever keeps as many blocks as it
/// has workers.
#[derive(Debug)]
pub(crate) struct Counters {
    workers: Mutex<Workers>,
    submitted: CachePadded<AtomicU64>,
}

#[derive(Debug, Default)]
struct Workers {
    live: Vec<Arc<CachePadded<WorkerCounters>>>,
    retired: Retired,
}

impl Counters {
    pub(crate) fn new() -> Self {
        Counters {
            workers: Mutex::new(Workers::default()),
            submitted: CachePadded::default(),
        }
    }

    /// Counters for a new worker.
    pub(crate) fn add_worker(&self) -> Arc<CachePadded<WorkerCounters>> {
        let counters = Arc::new(CachePadded::default());
        lock(&self.workers).live.push(Arc::clone(&counters));
        counters
    }

    /// The worker with these counters left its loop: its counts move to the retired
    /// totals and its block is dropped. Its activity is `LEFT` first (`SeqCst`, before
    /// the worker counts itself out of `live`: a shutdown that sees the count still
    /// include it reads the list again after the exit notification, and no longer
    /// finds it).
    pub(crate) fn retire(&self, counters: &Arc<CachePadded<WorkerCounters>>) {
        counters.left();
        let mut workers = lock(&self.workers);
        workers.retired.add(counters);
        workers.live.retain(|worker| !Arc::ptr_eq(worker, counters));
    }

    /// How many workers' counter blocks are kept (for the tests that check resizing
    /// does not grow memory).
    #[cfg(all(test, not(crewpool_loom)))]
    pub(crate) fn worker_blocks(&self) -> usize {
        lock(&self.workers).live.len()
    }

    /// Counts a job the queue may take in the poll about to happen. Counted *before*
    /// that poll, so a job can never be seen finished before it is seen submitted; a
    /// poll that does not end with the job accepted (pending, or refused) takes it back
    /// with [`unsubmitted`](Counters::unsubmitted) before it returns.
    #[inline]
    pub(crate) fn submitted(&self) {
        self.submitted.fetch_add(1, Ordering::Relaxed);
    }

    /// Takes back a [`submitted`](Counters::submitted) whose poll did not end with the
    /// job accepted.
    #[inline]
    pub(crate) fn unsubmitted(&self) {
        self.submitted.fetch_sub(1, Ordering::Relaxed);
    }

    /// [`submitted`](Counters::submitted) for `n` jobs of a batch at once.
    pub(crate) fn submitted_many(&self, n: usize) {
        self.submitted.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// [`unsubmitted`](Counters::unsubmitted) for `n` jobs of a batch at once.
    pub(crate) fn unsubmitted_many(&self, n: usize) {
        self.submitted.fetch_sub(n as u64, Ordering::Relaxed);
    }

    /// Gives up on every job that a worker which has not left is polling, if every
    /// such worker is polling one and there are `live` of them: they are blocked inside
    /// the job's own code (see [`activity`]). Returns the jobs newly abandoned, and
    /// whether every live worker is now in an abandoned job. A worker whose poll ended
    /// meanwhile keeps its job (the compare-and-swap fails): it sees the stop and leaves.
    pub(crate) fn abandon_stuck(&self, live: usize) -> (Vec<JobId>, bool) {
        let workers = lock(&self.workers);
        let mut stuck = Vec::new();
        for worker in &workers.live {
            let now = worker.activity.load(Ordering::SeqCst);
            if now == activity::LEFT {
                continue;
            }
            if now & activity::POLLING == 0 {
                return (Vec::new(), false);
            }
            stuck.push(worker);
        }
        if stuck.len() != live {
            return (Vec::new(), false);
        }
        let mut abandoned = Vec::new();
        let mut all = true;
        for worker in stuck {
            let now = worker.activity.load(Ordering::SeqCst);
            if now & activity::ABANDONED != 0 {
                continue;
            }
            let claimed = now & activity::POLLING != 0
                && now != activity::LEFT
                && worker
                    .activity
                    .compare_exchange(
                        now,
                        now | activity::ABANDONED,
                        Ordering::SeqCst,
                        Ordering::SeqCst,
                    )
                    .is_ok();
            match activity::job(now) {
                Some(id) if claimed => abandoned.push(JobId(id)),
                _ => all = false,
            }
        }
        (abandoned, all)
    }

    /// Sums the counters; `live`, `queued` and `undeliverable` come from the caller.
    pub(crate) fn snapshot(&self, live: usize, queued: usize, undeliverable: u64) -> Stats {
        let workers = lock(&self.workers);
        let mut total = workers.retired;
        let mut running = 0;
        for worker in &workers.live {
            running +=
                usize::from(activity::job(worker.activity.load(Ordering::Relaxed)).is_some());
            total.add(worker);
        }
        drop(workers);
        let mut stats = Stats {
            workers: live,
            queued,
            running,
            submitted: self.submitted.load(Ordering::Relaxed),
            completed: total.completed,
            failed: total.failed,
            panicked: total.panicked,
            interrupted: total.interrupted,
            timed_out: total.timed_out,
            retried: total.retried,
            cancelled: total.cancelled,
            undeliverable,
            idle: 0,
        };
        stats.idle = live.saturating_sub(stats.running);
        stats
    }
}
