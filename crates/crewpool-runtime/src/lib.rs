//! The crewpool worker runtime: a [`Pool`] runs N workers over any
//! [`Queue`](crewpool_core::Queue) and [`Worker`](crewpool_core::Worker).
//!
//! A pool owns what every backend needs and none should write twice:
//!
//! - **submitting** — [`Pool::submit`] waits while a bounded queue is full
//!   (backpressure), [`Pool::try_submit`] hands the job back at once,
//!   [`Pool::submit_timeout`] waits a bounded time and hands it back;
//!   [`Pool::spawn`] is fire-and-forget;
//! - **results** — a [`JobHandle`] per job, or the pool-wide [`Results`] stream;
//! - **panic isolation** — a panicking job becomes [`JobError::Panicked`] with its
//!   message; its worker goes on;
//! - **statistics** — [`Pool::stats`]: queued, running, idle, submitted, completed,
//!   failed, panicked;
//! - **shutdown** — graceful ([`Pool::shutdown`]), graceful with a deadline
//!   ([`Pool::shutdown_timeout`]), or immediate ([`Pool::abort`]), each returning a
//!   [`ShutdownReport`] in which every accepted job is accounted for.
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
//! # Where workers run
//!
//! Workers are tasks on a tokio runtime by default, or OS threads of their own with
//! [`PoolBuilder::dedicated_threads`] for CPU-bound and blocking jobs, so they cannot
//! starve the rest of an async application. See [`PoolBuilder`].

#![warn(clippy::unwrap_used, clippy::expect_used)]

mod builder;
mod context;
mod error;
mod future;
mod handle;
mod lane;
mod lifecycle;
mod loom;
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

pub use builder::PoolBuilder;
pub use context::ContextExt;
pub use error::{BuildError, ResizeError, SubmitError, SubmitTimeoutError, TrySubmitError};
pub use handle::{JobError, JobHandle, JobResult, Outcome, Results};
pub use policy::{Failure, FailureKind, RetryPolicy};
pub use pool::Pool;
pub use report::ShutdownReport;
pub use stats::Stats;
pub use tokio_util::sync::CancellationToken;
