//! The workloads: what every system is asked to do, and how big.

use std::fmt;
use std::time::Duration;

use super::System;

/// Workers (threads or worker tasks) in the CPU-bound workloads.
pub(crate) const WORKERS: usize = 2;
/// Capacity of every bounded queue and channel.
pub(crate) const CAPACITY: usize = 1024;
/// How many jobs `crewpool-deque-batch`'s producers hand to `Pool::spawn_all` at a
/// time: a quarter of the queue's bound.
pub(crate) const BATCH: u64 = 256;
/// Jobs in `tiny` and `multi-producer`.
pub(crate) const TINY_JOBS: u64 = 1_000_000;
/// xorshift rounds per CPU job.
pub(crate) const ROUNDS: u32 = 50;
/// Jobs for `thread-per-job`, which starts an OS thread for each: "a small N".
pub(crate) const THREAD_PER_JOB_JOBS: u64 = 10_000;
/// Jobs in `io`.
pub(crate) const IO_JOBS: u64 = 10_000;
/// How long each `io` job sleeps.
pub(crate) const IO_SLEEP: Duration = Duration::from_millis(1);
/// Jobs in flight at once in `io` (workers, threads, or semaphore permits).
pub(crate) const IO_CONCURRENCY: usize = 100;
/// Depth of the `fork-join` tree: each job of depth d > 0 spawns two of depth d - 1.
pub(crate) const FORK_DEPTH: u64 = 17;
/// Producer threads in `multi-producer`.
pub(crate) const PRODUCERS: u64 = 4;
/// Jobs queued (and held unstarted) in `queued-1m`.
pub(crate) const QUEUED_JOBS: u64 = 1_000_000;
/// Workers in `idle-10k`.
pub(crate) const IDLE_WORKERS: usize = 10_000;
/// Resizes in `resize-10k`: each grows the pool by one worker and shrinks it back.
pub(crate) const RESIZES: u64 = 10_000;
/// Resizes before `resize-10k` reads the resident set it measures growth from, so
/// the allocator's first-use growth is not counted as growth per resize.
pub(crate) const RESIZE_WARMUP: u64 = 100;
/// Jobs in `redis-noop` and `redis-enqueue`.
pub(crate) const REDIS_JOBS: u64 = 200_000;
/// Workers (tokio tasks on 2 threads) of the one worker process in `redis-noop`: the
/// settings of crewpool-redis's own throughput bench, tuned for short jobs.
pub(crate) const REDIS_WORKERS: usize = 512;
/// Most jobs one fetch leases (`RedisConfig::batch_size`).
pub(crate) const REDIS_BATCH: usize = 1000;
/// Jobs fetched ahead of waiting workers (`RedisConfig::prefetch`).
pub(crate) const REDIS_PREFETCH: usize = 2000;

/// How a workload wants its queue or channel.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Shape {
    /// Holding at most this many jobs; submitting waits beyond that.
    Bounded(usize),
    /// No bound.
    Unbounded,
}

/// A workload every system runs the same way.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Workload {
    /// 1,000,000 jobs of 50 xorshift rounds from one producer, 2 workers.
    Tiny,
    /// 10,000 jobs that each sleep 1 ms (async where the system can), 100 at a time.
    Io,
    /// A binary tree of jobs: each spawns its two children, 2 workers.
    ForkJoin,
    /// `tiny` from 4 producer threads at once.
    MultiProducer,
    /// Memory: 1,000,000 tiny jobs queued while both workers are held busy.
    Queued,
    /// Memory: a pool of 10,000 workers that all start, meet, and go idle.
    IdleWorkers,
    /// Memory: a pool resized up and down 10,000 times.
    Resize,
    /// Redis: no-op jobs through the full at-least-once machinery.
    RedisNoop,
    /// Redis: enqueueing in batches.
    RedisEnqueue,
}

impl Workload {
    /// How many producer threads submit `tiny`-sized jobs: 4 for `multi-producer`, else 1.
    pub(crate) fn producers(self) -> u64 {
        if self == Workload::MultiProducer {
            PRODUCERS
        } else {
            1
        }
    }

    /// Every workload, in report order.
    pub(crate) const ALL: [Workload; 9] = [
        Workload::Tiny,
        Workload::Io,
        Workload::ForkJoin,
        Workload::MultiProducer,
        Workload::Queued,
        Workload::IdleWorkers,
        Workload::Resize,
        Workload::RedisNoop,
        Workload::RedisEnqueue,
    ];

    /// The name used in reports, on the command line and as criterion group.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Workload::Tiny => "tiny",
            Workload::Io => "io",
            Workload::ForkJoin => "fork-join",
            Workload::MultiProducer => "multi-producer",
            Workload::Queued => "queued-1m",
            Workload::IdleWorkers => "idle-10k",
            Workload::Resize => "resize-10k",
            Workload::RedisNoop => "redis-noop",
            Workload::RedisEnqueue => "redis-enqueue",
        }
    }

    /// Parses a [`name`](Workload::name).
    ///
    /// # Errors
    ///
    /// An unknown name, with the list of known ones.
    pub(crate) fn parse(name: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|workload| workload.name() == name)
            .ok_or_else(|| {
                let known: Vec<&str> = Self::ALL.iter().map(|w| w.name()).collect();
                format!("unknown workload `{name}`; known: {}", known.join(", "))
            })
    }

    /// One line on what the workload does, for reports.
    pub(crate) fn describe(self) -> String {
        match self {
            Workload::Tiny => format!(
                "{TINY_JOBS} jobs of {ROUNDS} xorshift rounds, one producer, {WORKERS} workers, \
                 queues bounded at {CAPACITY} where the system has a bound \
                 (thread-per-job: {THREAD_PER_JOB_JOBS} jobs); crewpool's jobs are plain \
                 functions (`crewpool::plain`) on dedicated threads"
            ),
            Workload::Io => format!(
                "{IO_JOBS} jobs that each sleep {} ms, {IO_CONCURRENCY} at a time \
                 (async sleep for crewpool and tokio, a blocking sleep on {IO_CONCURRENCY} \
                 threads for the thread pools, {IO_JOBS} threads for thread-per-job). \
                 tokio's timer has millisecond ticks and rounds a 1 ms sleep up to the next \
                 tick, so the async rows sleep longer per job than the blocking ones",
                IO_SLEEP.as_millis()
            ),
            Workload::ForkJoin => format!(
                "a binary tree of depth {FORK_DEPTH} ({} jobs of {ROUNDS} xorshift rounds): \
                 each job spawns its two children from inside the pool, {WORKERS} workers, \
                 unbounded queues (a bounded one deadlocks a pool that feeds itself); \
                 crewpool's jobs are plain functions (`crewpool::plain`)",
                fork_join_jobs(FORK_DEPTH)
            ),
            Workload::MultiProducer => format!(
                "{TINY_JOBS} jobs of {ROUNDS} xorshift rounds from {PRODUCERS} producer threads, \
                 {WORKERS} workers, bounded at {CAPACITY} (thread-per-job: {THREAD_PER_JOB_JOBS} jobs); \
                 crewpool's jobs are plain functions (`crewpool::plain`) on dedicated threads"
            ),
            Workload::Queued => format!(
                "memory: {QUEUED_JOBS} tiny jobs queued (unbounded) and not yet started while \
                 both workers are held busy, then run"
            ),
            Workload::IdleWorkers => format!(
                "memory: {IDLE_WORKERS} workers (tokio tasks on 2 threads for crewpool, OS \
                 threads for the thread pools) each take one job that waits until all have \
                 one, then idle; the time is startup plus that meeting. rayon is left out: \
                 10,000 rayon threads spinning for work took over ten minutes of CPU to meet"
            ),
            Workload::Resize => format!(
                "memory: a pool of {WORKERS} workers (tokio tasks) grown by one worker and \
                 shrunk back {RESIZES} times, one job in between, each shrink waited for \
                 until the worker has left; \"held\" is how much the resident set grew over \
                 the resizes after the first {RESIZE_WARMUP} (flat: no growth per resize). \
                 Only crewpool pools resize"
            ),
            Workload::RedisNoop => format!(
                "{REDIS_JOBS} no-op jobs enqueued in bulk beforehand, then processed by one \
                 worker process ({REDIS_WORKERS} workers on {WORKERS} threads, fetch batches of \
                 {REDIS_BATCH}, prefetch {REDIS_PREFETCH}) against one local redis-server on \
                 the same 2 cores, with the full at-least-once machinery: leases, fencing \
                 tokens, confirmed acknowledgements. The clock runs from starting the pool \
                 to its shutdown returning, when every acknowledgement is recorded in Redis"
            ),
            Workload::RedisEnqueue => format!(
                "{REDIS_JOBS} no-op jobs enqueued with `enqueue_bulk` (1,000 per call, 8 calls \
                 per round trip) into one local redis-server"
            ),
        }
    }

    /// The criterion parameter: the workload's size.
    pub(crate) fn param(self) -> String {
        match self {
            Workload::Tiny | Workload::MultiProducer => format!("{TINY_JOBS}x{ROUNDS}"),
            Workload::Io => format!("{IO_JOBS}x{}ms/{IO_CONCURRENCY}", IO_SLEEP.as_millis()),
            Workload::ForkJoin => format!("depth{FORK_DEPTH}"),
            Workload::Queued => format!("{QUEUED_JOBS}"),
            Workload::IdleWorkers => format!("{IDLE_WORKERS}"),
            Workload::Resize => format!("{RESIZES}"),
            Workload::RedisNoop | Workload::RedisEnqueue => "noop".to_owned(),
        }
    }

    /// How many jobs `system` runs in this workload.
    pub(crate) fn jobs(self, system: System) -> u64 {
        match self {
            Workload::Tiny | Workload::MultiProducer if system == System::ThreadPerJob => {
                THREAD_PER_JOB_JOBS
            }
            Workload::Tiny | Workload::MultiProducer => TINY_JOBS,
            Workload::Io => IO_JOBS,
            Workload::ForkJoin => fork_join_jobs(FORK_DEPTH),
            Workload::Queued => QUEUED_JOBS,
            Workload::IdleWorkers => IDLE_WORKERS as u64,
            Workload::Resize => RESIZES,
            Workload::RedisNoop | Workload::RedisEnqueue => REDIS_JOBS,
        }
    }

    /// Whether the workload measures memory rather than throughput.
    pub(crate) fn is_memory(self) -> bool {
        matches!(
            self,
            Workload::Queued | Workload::IdleWorkers | Workload::Resize
        )
    }

    /// The systems that run this workload.
    pub(crate) fn systems(self) -> &'static [System] {
        use System::*;
        match self {
            Workload::Tiny | Workload::MultiProducer => &[
                CrewpoolDeque,
                CrewpoolDequeBatch,
                CrewpoolFlume,
                RayonSpawn,
                TokioSpawn,
                StdMpscPool,
                CrossbeamPool,
                FlumePool,
                ThreadPerJob,
            ],
            Workload::Io => &[
                CrewpoolDeque,
                CrewpoolFlume,
                RayonSpawn,
                TokioSpawn,
                StdMpscPool,
                CrossbeamPool,
                FlumePool,
                ThreadPerJob,
            ],
            Workload::ForkJoin | Workload::Queued => &[
                CrewpoolDeque,
                CrewpoolFlume,
                RayonSpawn,
                TokioSpawn,
                StdMpscPool,
                CrossbeamPool,
                FlumePool,
            ],
            // Not rayon: its idle threads spin looking for work before they sleep, and
            // 10,000 of them on 2 cores took over ten minutes of CPU to meet.
            Workload::IdleWorkers => &[
                CrewpoolDeque,
                CrewpoolFlume,
                StdMpscPool,
                CrossbeamPool,
                FlumePool,
            ],
            Workload::Resize => &[CrewpoolDeque, CrewpoolFlume],
            Workload::RedisNoop | Workload::RedisEnqueue => &[CrewpoolRedis],
        }
    }
}

impl fmt::Display for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Jobs in a fork-join tree of `depth`: 2^(depth+1) - 1.
pub(crate) fn fork_join_jobs(depth: u64) -> u64 {
    (1 << (depth + 1)) - 1
}

/// The CPU job: `ROUNDS` rounds of xorshift64 from `seed`.
#[inline]
pub(crate) fn spin(seed: u64) -> u64 {
    let mut x = seed | 1;
    for _ in 0..ROUNDS {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
    }
    x
}

/// Splits jobs `0..jobs` among `producers` and runs `produce(index, share)` for each,
/// on the calling thread when there is one producer, else on that many threads at once.
///
/// # Errors
///
/// The first producer's error.
pub(crate) fn produce<F>(producers: u64, jobs: u64, produce: F) -> Result<(), String>
where
    F: Fn(usize, std::ops::Range<u64>) -> Result<(), String> + Sync,
{
    if producers <= 1 {
        return produce(0, 0..jobs);
    }
    let share = jobs / producers;
    std::thread::scope(|scope| {
        let threads: Vec<_> = (0..producers)
            .map(|p| {
                let end = if p + 1 == producers {
                    jobs
                } else {
                    (p + 1) * share
                };
                let range = p * share..end;
                let produce = &produce;
                scope.spawn(move || produce(p as usize, range))
            })
            .collect();
        threads.into_iter().try_for_each(|thread| {
            thread
                .join()
                .map_err(|_| "a producer panicked".to_owned())?
        })
    })
}
