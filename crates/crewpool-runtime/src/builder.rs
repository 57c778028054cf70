//! Configuring and starting a pool.

use std::fmt;
use std::num::NonZeroUsize;
use std::time::Duration;

use crewpool_core::{Queue, Retryable, Worker};
use tokio_util::sync::CancellationToken;

use crate::error::BuildError;
use crate::handle::Results;
use crate::policy::{Policies, RateLimit, RateLimiter, RetryPolicy};
use crate::pool::Pool;
use crate::shared::{Executor, Setup, Shared};
use crewpool_core::sync::Arc;

/// Where a pool's workers run, as chosen on the builder.
#[derive(Debug, Clone, Default)]
enum Placement {
    /// Tasks on the tokio runtime current at `build`.
    #[default]
    Current,
    /// Tasks on the given tokio runtime.
    Handle(tokio::runtime::Handle),
    /// One OS thread per worker.
    Threads,
}

/// Configures a [`Pool`]: how many workers, which queue, where they run, and the
/// policies applied to every job.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use crewpool_flume::FlumeQueue;
/// use crewpool_runtime::{PoolBuilder, RetryPolicy};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let pool = PoolBuilder::new()
///     .name("thumbnails")
///     .workers(4)
///     .queue(FlumeQueue::bounded(64))
///     .timeout(Duration::from_secs(30))
///     .retry(RetryPolicy::exponential(3))
///     .rate_limit(100, Duration::from_secs(1))
///     .build(|n: u64| async move { Ok::<_, std::convert::Infallible>(n * n) })?;
///
/// let handle = pool.submit(7).await?;
/// assert_eq!(handle.await?, 49);
/// pool.shutdown().await;
/// # Ok(()) }
/// ```
///
/// # CPU-bound and blocking jobs
///
/// By default workers are tasks on the caller's tokio runtime: right for jobs that
/// await (I/O, timers). A job that computes for long, or blocks, holds its runtime
/// thread, and other tasks on that runtime wait. For such pools call
/// [`dedicated_threads`](PoolBuilder::dedicated_threads): each worker then gets an OS
/// thread of its own (with a single-threaded tokio runtime, so jobs may still await),
/// and the caller's runtime is never starved. For a pool that is mostly async with an
/// occasional heavy job, run that job's heavy part with
/// `tokio::task::spawn_blocking` inside the worker instead.
///
/// Timeouts, retry delays and the rate limit use tokio's timer: a runtime given with
/// [`runtime`](PoolBuilder::runtime) must have it enabled (`enable_time`).
///
/// # Type parameters
///
/// `Q` is the queue, `()` until [`queue`](PoolBuilder::queue) sets one; `P` is the
/// retry setting, `()` until [`retry`](PoolBuilder::retry) sets a [`RetryPolicy`].
/// Every method can be called in any order.
pub struct PoolBuilder<Q = (), P = ()> {
    queue: Q,
    retry: P,
    name: String,
    workers: Option<usize>,
    placement: Placement,
    results: bool,
    timeout: Option<Duration>,
    rate: Option<(usize, Duration)>,
    metrics: bool,
    token: Option<CancellationToken>,
}

impl PoolBuilder<(), ()> {
    /// A builder with defaults: named `crewpool`, one worker per available CPU,
    /// workers as tasks on the current tokio runtime, no results stream, no policies.
    pub fn new() -> Self {
        PoolBuilder {
            queue: (),
            retry: (),
            name: "crewpool".to_owned(),
            workers: None,
            placement: Placement::Current,
            results: false,
            timeout: None,
            rate: None,
            metrics: false,
            token: None,
        }
    }
}

impl Default for PoolBuilder<(), ()> {
    fn default() -> Self {
        Self::new()
    }
}

impl<Q, P> PoolBuilder<Q, P> {
    /// Names the pool (thread names, logs, metric labels).
    #[must_use]
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Sets the number of workers. Zero makes [`build`](PoolBuilder::build) fail
    /// with [`BuildError::ZeroWorkers`]. [`Pool::resize`] changes it later.
    #[must_use]
    pub fn workers(mut self, workers: usize) -> Self {
        self.workers = Some(workers);
        self
    }

    /// Sets the queue the workers take jobs from. Everything set before is kept.
    #[must_use]
    pub fn queue<Q2: Queue>(self, queue: Q2) -> PoolBuilder<Q2, P> {
        PoolBuilder {
            queue,
            retry: self.retry,
            name: self.name,
            workers: self.workers,
            placement: self.placement,
            results: self.results,
            timeout: self.timeout,
            rate: self.rate,
            metrics: self.metrics,
            token: self.token,
        }
    }

    /// Retries failed attempts (errors, panics, timeouts) under `policy`: the one
    /// policy that decides every retry of this pool's jobs.
    ///
    /// On an in-memory queue the pool keeps a copy of each job to run it again (so
    /// [`build`](PoolBuilder::build) needs `Clone` on the job type) and runs it after
    /// the backoff without blocking a worker. A durable queue keeps the job itself (no
    /// `Clone` needed): the pool asks it to schedule the next attempt, and hands it the
    /// policy ([`Retryable::use_retry_policy`]), which it then also applies to jobs
    /// whose worker died, in place of its configured one. Without this call, a pool on
    /// a durable queue applies the queue's own policy
    /// ([`Queue::retry_policy`](crewpool_core::Queue::retry_policy)); on an in-memory
    /// queue, a failure is final.
    #[must_use]
    pub fn retry(self, policy: RetryPolicy) -> PoolBuilder<Q, RetryPolicy> {
        PoolBuilder {
            queue: self.queue,
            retry: policy,
            name: self.name,
            workers: self.workers,
            placement: self.placement,
            results: self.results,
            timeout: self.timeout,
            rate: self.rate,
            metrics: self.metrics,
            token: self.token,
        }
    }

    /// Runs the workers as tasks on `handle`'s runtime instead of the current one.
    #[must_use]
    pub fn runtime(mut self, handle: tokio::runtime::Handle) -> Self {
        self.placement = Placement::Handle(handle);
        self
    }

    /// Runs each worker on an OS thread of its own, for CPU-bound or blocking jobs; see
    /// "CPU-bound and blocking jobs" above. No tokio runtime is needed to build such a
    /// pool.
    #[must_use]
    pub fn dedicated_threads(mut self) -> Self {
        self.placement = Placement::Threads;
        self
    }

    /// Keeps a [`Results`] stream of the outcomes of jobs that have no handle; take it
    /// with [`Pool::take_results`]. It is unbounded: read it, or drop it to discard
    /// results.
    #[must_use]
    pub fn results(mut self) -> Self {
        self.results = true;
        self
    }

    /// Stops any attempt that runs longer than `timeout`: its future is dropped and it
    /// fails with [`JobError::TimedOut`](crate::JobError::TimedOut) (or is retried,
    /// with a retry policy).
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Lets at most `starts` jobs start in any window of `period`, pool-wide. Workers
    /// wait for their turn before starting a job. Zero for either makes
    /// [`build`](PoolBuilder::build) fail with [`BuildError::RateLimit`].
    #[must_use]
    pub fn rate_limit(mut self, starts: usize, period: Duration) -> Self {
        self.rate = Some((starts, period));
        self
    }

    /// Records the pool's metrics through the [`metrics`](https://docs.rs/metrics)
    /// facade, labelled with the pool's name; see the crate docs for the list.
    #[must_use]
    pub fn metrics(mut self) -> Self {
        self.metrics = true;
        self
    }

    /// Shares `token` with every job as the pool-wide cancellation token (see
    /// [`ContextExt`](crate::ContextExt)); by default the pool makes its own, which
    /// [`Pool::cancellation_token`] returns.
    #[must_use]
    pub fn cancellation_token(mut self, token: CancellationToken) -> Self {
        self.token = Some(token);
        self
    }
}

/// What [`PoolBuilder::retry`] set, as [`build`](PoolBuilder::build) needs it: `()`
/// (no policy of the pool's own) for any queue, a [`RetryPolicy`] for a queue that is
/// [`Retryable`]. Implemented for those two only.
#[diagnostic::on_unimplemented(
    message = "a pool on `{Q}` cannot retry its jobs",
    note = "an in-memory queue keeps a copy of each job to retry it: the job type must implement `Clone`"
)]
pub trait RetrySetting<Q: Queue>: sealed::Sealed {
    /// The pool's own policy, if any, and how to copy a job for its retry; hands the
    /// policy to a queue that retries jobs itself.
    #[doc(hidden)]
    fn resolve(self, queue: &Q) -> RetryParts<Q::Job>;
}

/// What a [`RetrySetting`] resolves to; opaque.
#[doc(hidden)]
#[derive(Debug)]
pub struct RetryParts<J> {
    policy: Option<RetryPolicy>,
    copy: Option<fn(&J) -> Option<J>>,
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for () {}
    impl Sealed for super::RetryPolicy {}
}

impl<Q: Queue> RetrySetting<Q> for () {
    fn resolve(self, queue: &Q) -> RetryParts<Q::Job> {
        // The queue's own policy, if it retries jobs itself (a durable queue).
        RetryParts {
            policy: queue.retry_policy(),
            copy: None,
        }
    }
}

impl<Q: Retryable> RetrySetting<Q> for RetryPolicy {
    fn resolve(self, queue: &Q) -> RetryParts<Q::Job> {
        queue.use_retry_policy(&self);
        RetryParts {
            policy: Some(self),
            copy: Some(Q::copy_for_retry),
        }
    }
}

impl<Q: Queue, P: RetrySetting<Q>> PoolBuilder<Q, P> {
    /// Starts the workers, each running `worker` on the jobs it takes from the queue.
    ///
    /// # Errors
    ///
    /// [`BuildError::ZeroWorkers`] for a worker count of 0; [`BuildError::NoRuntime`]
    /// when workers are tokio tasks and there is no runtime; [`BuildError::RateLimit`]
    /// for a rate limit of zero; [`BuildError::Queue`] when the queue cannot create a
    /// consumer; [`BuildError::Thread`] when a worker thread cannot start.
    pub fn build<W: Worker<Q::Job>>(self, worker: W) -> Result<Pool<Q, W>, BuildError> {
        let workers = match self.workers {
            Some(0) => return Err(BuildError::ZeroWorkers),
            Some(workers) => workers,
            None => std::thread::available_parallelism().map_or(1, NonZeroUsize::get),
        };
        let executor = match self.placement {
            Placement::Current => Executor::Tokio(
                tokio::runtime::Handle::try_current().map_err(|_| BuildError::NoRuntime)?,
            ),
            Placement::Handle(handle) => Executor::Tokio(handle),
            Placement::Threads => Executor::Threads,
        };
        let rate = match self.rate {
            Some((starts, period)) => Some(RateLimiter::new(
                RateLimit::new(starts, period).ok_or(BuildError::RateLimit)?,
            )),
            None => None,
        };
        let RetryParts {
            policy: retry,
            copy: cloner,
        } = self.retry.resolve(&self.queue);
        let (sink, results) = if self.results {
            let (sender, receiver) = flume::unbounded();
            (Some(sender), Some(Results::new(receiver)))
        } else {
            (None, None)
        };
        let setup = Setup {
            name: self.name,
            executor,
            policies: Policies {
                timeout: self.timeout,
                retry,
                rate,
                metrics: self.metrics,
            },
            cloner,
            token: self.token.unwrap_or_default(),
        };
        let shared = Arc::new(Shared::new(setup, self.queue, worker, workers, sink));
        for _ in 0..workers {
            if let Err(error) = Shared::start_worker(&shared) {
                // The workers already started see the stop and exit.
                shared.begin_stop();
                return Err(error.into());
            }
        }
        Ok(Pool::new(shared, results))
    }
}

impl<Q, P: fmt::Debug> fmt::Debug for PoolBuilder<Q, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolBuilder")
            .field("name", &self.name)
            .field("workers", &self.workers)
            .field("placement", &self.placement)
            .field("results", &self.results)
            .field("timeout", &self.timeout)
            .field("retry", &self.retry)
            .field("rate", &self.rate)
            .field("metrics", &self.metrics)
            .finish_non_exhaustive()
    }
}
