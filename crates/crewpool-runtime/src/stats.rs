//! Pool statistics: per-worker counters, summed on demand.
//!
//! Each worker writes only its own counters, on their own cache line, so the hot path
//! costs a plain load and store per job instead of a contended read-modify-write. All
//! orderings are `Relaxed`: a snapshot is a statistic, not a synchronisation point,
//! and may lag by the jobs in flight.

use std::fmt;

use crewpool_core::JobId;

use crate::loom::{Arc, AtomicU64, Mutex, Ordering, lock};

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

/// Keeps a value on its own cache line (128 bytes covers adjacent-line prefetch).
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct Padded<T>(pub(crate) T);

impl<T> std::ops::Deref for Padded<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
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

/// All workers' counters (including those of workers that have left, whose jobs
/// still count) plus the producers' one.
#[derive(Debug)]
pub(crate) struct Counters {
    workers: Mutex<Vec<Arc<Padded<WorkerCounters>>>>,
    submitted: Padded<AtomicU64>,
}

impl Counters {
    pub(crate) fn new() -> Self {
        Counters {
            workers: Mutex::new(Vec::new()),
            submitted: Padded::default(),
        }
    }

    /// Counters for a new worker.
    pub(crate) fn add_worker(&self) -> Arc<Padded<WorkerCounters>> {
        let counters = Arc::new(Padded::default());
        lock(&self.workers).push(Arc::clone(&counters));
        counters
    }

    /// Counts a job the queue may take in the poll about to happen. Counted *before*
    /// that poll, so a job can never be seen finished before it is seen submitted; a
    /// poll that does not end with the job accepted (pending, or refused) takes it back
    /// with [`unsubmitted`](Counters::unsubmitted) before it returns.
    pub(crate) fn submitted(&self) {
        self.submitted.fetch_add(1, Ordering::Relaxed);
    }

    /// Takes back a [`submitted`](Counters::submitted) whose poll did not end with the
    /// job accepted.
    pub(crate) fn unsubmitted(&self) {
        self.submitted.fetch_sub(1, Ordering::Relaxed);
    }

    /// Gives up on every job that a worker which has not left is polling, if every
    /// such worker is polling one and there are `live` of them: they are blocked inside
    /// the job's own code (see [`activity`]). Returns the jobs newly abandoned, and
    /// whether every live worker is now in an abandoned job. A worker whose poll ended
    /// meanwhile keeps its job (the compare-and-swap fails): it sees the stop and leaves.
    pub(crate) fn abandon_stuck(&self, live: usize) -> (Vec<JobId>, bool) {
        let workers = lock(&self.workers);
        let mut stuck = Vec::new();
        for worker in workers.iter() {
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
        let mut stats = Stats {
            workers: live,
            queued,
            submitted: self.submitted.load(Ordering::Relaxed),
            undeliverable,
            ..Stats::default()
        };
        for worker in lock(&self.workers).iter() {
            let running = activity::job(worker.activity.load(Ordering::Relaxed)).is_some();
            stats.running += usize::from(running);
            stats.completed += worker.completed.load(Ordering::Relaxed);
            stats.failed += worker.failed.load(Ordering::Relaxed);
            stats.panicked += worker.panicked.load(Ordering::Relaxed);
            stats.interrupted += worker.interrupted.load(Ordering::Relaxed);
            stats.timed_out += worker.timed_out.load(Ordering::Relaxed);
            stats.retried += worker.retried.load(Ordering::Relaxed);
            stats.cancelled += worker.cancelled.load(Ordering::Relaxed);
        }
        stats.idle = live.saturating_sub(stats.running);
        stats
    }
}
