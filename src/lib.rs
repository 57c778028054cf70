//! crewpool: a worker pool with pluggable queues.
//!
//! A fixed crew of workers takes jobs from a queue, with bounded buffering
//! (backpressure), per-job results, panic isolation, queue-depth statistics and a
//! graceful shutdown that loses nothing. The queue is pluggable; pick a backend by
//! feature:
//!
//! | feature | module | queue |
//! |---|---|---|
//! | `deque` (default) | [`deque`] | work stealing: a global injector, a local deque per worker, fork-join sub-jobs; the fastest in-process backend, for CPU-bound jobs |
//! | `flume` (default) | [`flume`] | a bounded or unbounded flume channel |
//! | `redis` | `redis` | a Redis queue shared by worker processes on many machines: at-least-once, leased and fenced (`redis-tls` adds `rediss://`) |
//!
//! This crate only re-exports: at the top, what a user of a pool needs (the
//! [`PoolBuilder`], the [`Pool`] and [`AnyPool`], handles, errors, policies, the
//! [`Worker`] trait and the [`JobContext`]); one module per backend; and, in
//! [`backend`], the traits and types for writing a queue backend of your own.
//!
//! # Example
//!
//! ```
//! # #[cfg(feature = "flume")]
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use crewpool::PoolBuilder;
//! use crewpool::flume::FlumeQueue;
//!
//! let pool = PoolBuilder::new()
//!     .workers(10)
//!     .queue(FlumeQueue::bounded(100))
//!     .build(|n: u64| async move { Ok::<_, std::convert::Infallible>(n * n) })?;
//!
//! let mut handles = Vec::new();
//! for n in 0..1000 {
//!     handles.push(pool.submit(n).await?); // waits while the queue is full
//! }
//! let mut sum = 0;
//! for handle in handles {
//!     sum += handle.await?;
//! }
//! let report = pool.shutdown().await; // graceful: every accepted job has run
//! assert!(report.is_complete());
//! assert_eq!(sum, (0..1000).map(|n| n * n).sum::<u64>());
//! # Ok(()) }
//! # #[cfg(not(feature = "flume"))]
//! # fn main() {}
//! ```
//!
//! # Many jobs at once
//!
//! A producer with many jobs in hand spawns them together with
//! [`Pool::spawn_all`]: they run as if spawned one by one, and the producer's share of
//! the work per job (taking room in the queue, numbering, counting, waking workers) is
//! paid once per batch on the deque backend. A batch larger than the free room waits
//! for room as it goes; if the pool shuts down meanwhile, the jobs not accepted come
//! back in the [`SpawnAllError`].
//!
//! ```
//! # #[cfg(feature = "deque")]
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use crewpool::PoolBuilder;
//! use crewpool::deque::DequeQueue;
//!
//! let pool = PoolBuilder::new()
//!     .workers(2)
//!     .dedicated_threads()
//!     .queue(DequeQueue::bounded(1024))
//!     .build(crewpool::plain(|n: u64, _cx| Ok::<_, std::convert::Infallible>(n * n)))?;
//!
//! let jobs: Vec<u64> = (0..10_000).collect();
//! for batch in jobs.chunks(256) {
//!     pool.spawn_all(batch.iter().copied()).await?; // waits for room as it goes
//! }
//! let report = pool.shutdown().await;
//! assert_eq!(report.stats.completed, 10_000);
//! # Ok(()) }
//! # #[cfg(not(feature = "deque"))]
//! # fn main() {}
//! ```
//!
//! See the [`PoolBuilder`] for where workers run (tokio tasks, or dedicated threads for
//! CPU-bound jobs) and [`Pool`] for submitting and shutting down.

#![warn(clippy::unwrap_used, clippy::expect_used)]

pub use crewpool_core::{
    Failure, FailureKind, JobContext, JobId, Plain, QueueError, RetryPolicy, SpawnError,
    WithContext, Worker, plain, with_context,
};
pub use crewpool_runtime::{
    AnyPool, BuildError, CancellationToken, ContextExt, JobError, JobHandle, JobResult, Outcome,
    Pool, PoolBuilder, ResizeError, Results, RetrySetting, ShutdownReport, SpawnAllError, Stats,
    SubmitError, SubmitTimeoutError, TrySubmitError,
};

/// For writing a queue backend: the traits a queue implements and the types that
/// travel through it (`crewpool-core`). Run the conformance suite of
/// `crewpool_core::testkit` (feature `testkit`) against it.
pub mod backend {
    pub use crewpool_core::{
        Attachment, Batch, BoxError, Consumer, ContextSupport, Delivery, Envelope, Handover,
        PushError, Queue, Received, Replies, Reply, Retryable, Spawn, TryPush, TryPushError,
    };
}

/// The work-stealing backend (`crewpool-deque`).
#[cfg(feature = "deque")]
pub mod deque {
    pub use crewpool_deque::{DequeConsumer, DequeQueue};
}

/// The flume channel backend (`crewpool-flume`).
#[cfg(feature = "flume")]
pub mod flume {
    pub use crewpool_flume::{FlumeConsumer, FlumeQueue};
}

/// The Redis backend (`crewpool-redis`): one queue shared by worker processes on many
/// machines, at-least-once, with leases, fencing tokens, retries and dead letters.
#[cfg(feature = "redis")]
pub mod redis {
    pub use crewpool_redis::{
        AckMode, Admin, ClientCounters, ClientError, DeadLetter, ENQUEUE_LUA, ENVELOPE_VERSION,
        Enqueued, Error, JobOptions, JobState, MAX_PRIORITY, MissedTicks, PUSH_LUA, Priorities,
        QueueAdmin, QueueStats, RedisConfig, RedisConsumer, RedisDelivery, RedisQueue, RedisUrl,
        Schedule, ScheduleEntry, ServerInfo,
    };
}
