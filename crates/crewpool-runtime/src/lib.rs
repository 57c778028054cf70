//! The crewpool worker runtime: a [`Pool`] runs N workers over any
//! [`Queue`](crewpool_core::Queue) and [`Worker`](crewpool_core::Worker).
//!
//! A pool owns what every backend needs and none should write twice:
//!
//! - **submitting** — [`Pool::submit`] waits while a bounded queue is full
//!   (backpressure), [`Pool::try_submit`] hands the job back at once,
//!   [`Pool::submit_timeout`] waits a bounded time and hands it back;
//!   [`Pool::spawn`] is fire-and-forget; a `Pool` is a cheap cloneable handle, and
//!   [`AnyPool`] keeps one without naming its queue and worker types;
//! - **results** — a [`JobHandle`] per job, or the pool-wide [`Results`] stream;
//! - **panic isolation** — a panicking job becomes [`JobError::Panicked`] with its
//!   message; its worker goes on;
//! - **statistics** — [`Pool::stats`]: queued, running, idle, submitted, completed,
//!   failed, panicked, ...;
//! - **shutdown** — graceful ([`Pool::shutdown`]), graceful with a deadline
//!   ([`Pool::shutdown_timeout`]), or immediate ([`Pool::abort`]), each returning a
//!   [`ShutdownReport`] in which every accepted job is accounted for, and neither of
//!   the last two waiting for a job blocked inside its own code;
//! - **policies**, the same on every backend — a per-job timeout
//!   ([`PoolBuilder::timeout`]), retries with exponential backoff and jitter
//!   ([`RetryPolicy`], the same type a durable queue's own policy is), cancellation of one job ([`JobHandle::cancel`]) or a pool-wide
//!   token jobs can watch ([`ContextExt`]), resizing while running ([`Pool::resize`]),
//!   a rate limit on job starts ([`PoolBuilder::rate_limit`]), metrics through the
//!   `metrics` facade ([`PoolBuilder::metrics`], names below) and a tracing span per job
//!   (`job`, with `pool`, `id` and `attempt`).
//!
//! # Example
//!
//! ```
//! use crewpool_flume::FlumeQueue;
//! use crewpool_runtime::{JobError, PoolBuilder};
//!
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let pool = PoolBuilder::new()
//!     .workers(4)
//!     .queue(FlumeQueue::bounded(100))
//!     .build(|path: String| async move {
//!         if path.is_empty() {
//!             return Err("empty path");
//!         }
//!         Ok(path.len())
//!     })?;
//!
//! let ok = pool.submit("/etc/hosts".to_owned()).await?;
//! let bad = pool.submit(String::new()).await?;
//! assert_eq!(ok.await?, 10);
//! assert!(matches!(bad.await, Err(JobError::Failed("empty path"))));
//!
//! let report = pool.shutdown().await;
//! assert!(report.is_complete());
//! assert_eq!((report.stats.completed, report.stats.failed), (1, 1));
//! # Ok(()) }
//! ```
//!
//! # Metrics
//!
//! With [`PoolBuilder::metrics`], labelled `pool = <name>`:
//!
//! | name | kind | meaning |
//! |---|---|---|
//! | `crewpool_jobs_submitted_total` | counter | jobs accepted |
//! | `crewpool_jobs_completed_total` | counter | jobs that returned `Ok` |
//! | `crewpool_jobs_failed_total` | counter | jobs that returned `Err` (last attempt) |
//! | `crewpool_jobs_panicked_total` | counter | jobs that panicked (last attempt) |
//! | `crewpool_jobs_timed_out_total` | counter | jobs stopped by the timeout (last attempt) |
//! | `crewpool_jobs_retried_total` | counter | failed attempts scheduled to run again |
//! | `crewpool_jobs_cancelled_total` | counter | jobs cancelled through their handle |
//! | `crewpool_queue_depth` | gauge | jobs waiting in the queue |
//! | `crewpool_jobs_running` | gauge | jobs running |
//! | `crewpool_workers` | gauge | live workers |
//! | `crewpool_job_wait_seconds` | histogram | from push to the start of each attempt |
//! | `crewpool_job_run_seconds` | histogram | the final attempt, from start to end |
//!
//! `examples/prometheus.rs` exports them as Prometheus text.
//!
//! # Where workers run
//!
//! Workers are tasks on a tokio runtime by default, or OS threads of their own with
//! [`PoolBuilder::dedicated_threads`] for CPU-bound and blocking jobs, so they cannot
//! starve the rest of an async application. See [`PoolBuilder`].

#![warn(clippy::unwrap_used, clippy::expect_used)]

mod attempt;
mod backend;
mod builder;
mod context;
mod current;
mod error;
mod fate;
mod future;
mod handle;
mod lane;
mod lifecycle;
mod metrics;
mod policy;
mod pool;
mod report;
mod shared;
mod signal;
mod stats;
#[cfg(all(test, crewpool_loom))]
mod tests;
mod worker;

#[doc(hidden)]
pub use builder::RetryParts;
pub use builder::{PoolBuilder, RetrySetting};
pub use context::ContextExt;
pub use error::{
    BuildError, ResizeError, SpawnAllError, SubmitError, SubmitTimeoutError, TrySubmitError,
};
pub use handle::{JobError, JobHandle, JobResult, Outcome, Results};
pub use policy::{Failure, FailureKind, RetryPolicy};
pub use pool::{AnyPool, Pool};
pub use report::ShutdownReport;
pub use stats::Stats;
pub use tokio_util::sync::CancellationToken;

/// The README (the crate's registry page): its examples compile and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
