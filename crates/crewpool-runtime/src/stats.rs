//! Pool statistics: per-worker counters, summed on demand.
//!
//! Each worker writes only its own counters, on their own cache line, so the hot path
//! costs a plain load and store per job instead of a contended read-modify-write. All
//! orderings are `Relaxed`: a snapshot is a statistic, not a synchronisation point,
//! and may lag by the jobs in flight.

use std::fmt;

use crate::loom::{Arc, AtomicBool, AtomicU64, Mutex, Ordering, lock};

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
    /// Jobs accepted, including sub-jobs spawned by running jobs. Counted just before
    /// the queue accepts them, so it is never below `finished()`; a submit racing a
    /// snapshot may be in it before the queue answers.
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

/// One worker's counters. Written only by that worker.
#[derive(Debug, Default)]
pub(crate) struct WorkerCounters {
    running: AtomicBool,
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
    pub(crate) fn set_running(&self, running: bool) {
        self.running.store(running, Ordering::Relaxed);
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

    /// Counts a job about to be offered to the queue. Counted *before* the push, so
    /// a job can never be seen finished before it is seen submitted; a push that is
    /// refused takes it back with [`unsubmitted`](Counters::unsubmitted).
    pub(crate) fn submitted(&self) {
        self.submitted.fetch_add(1, Ordering::Relaxed);
    }

    /// Takes back a [`submitted`](Counters::submitted) whose push was refused.
    pub(crate) fn unsubmitted(&self) {
        self.submitted.fetch_sub(1, Ordering::Relaxed);
    }

    /// Sums the counters; `live` and `queued` come from the caller.
    pub(crate) fn snapshot(&self, live: usize, queued: usize) -> Stats {
        let mut stats = Stats {
            workers: live,
            queued,
            submitted: self.submitted.load(Ordering::Relaxed),
            ..Stats::default()
        };
        for worker in lock(&self.workers).iter() {
            stats.running += usize::from(worker.running.load(Ordering::Relaxed));
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
