//! Configuring and starting a pool.

use std::fmt;
use std::num::NonZeroUsize;

use crewpool_core::{Queue, Worker};

use crate::error::BuildError;
use crate::handle::Results;
use crate::loom::Arc;
use crate::pool::Pool;
use crate::shared::Shared;
use crate::worker;

/// Where a pool's workers run.
#[derive(Debug, Clone, Default)]
enum Executor {
    /// Tasks on the tokio runtime current at `build`.
    #[default]
    Current,
    /// Tasks on the given tokio runtime.
    Handle(tokio::runtime::Handle),
    /// One OS thread per worker, each with its own single-threaded tokio runtime.
    Threads,
}

/// Configures a [`Pool`]: how many workers, which queue, where they run.
///
/// # Examples
///
/// ```
/// use crewpool_flume::FlumeQueue;
/// use crewpool_runtime::PoolBuilder;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let pool = PoolBuilder::new()
///     .name("thumbnails")
///     .workers(4)
///     .queue(FlumeQueue::bounded(64))
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
pub struct PoolBuilder<Q = ()> {
    queue: Q,
    name: String,
    workers: Option<usize>,
    executor: Executor,
    results: bool,
}

impl PoolBuilder<()> {
    /// A builder with defaults: named `crewpool`, one worker per available CPU,
    /// workers as tasks on the current tokio runtime, no results stream.
    pub fn new() -> Self {
        PoolBuilder {
            queue: (),
            name: "crewpool".to_owned(),
            workers: None,
            executor: Executor::Current,
            results: false,
        }
    }
}

impl Default for PoolBuilder<()> {
    fn default() -> Self {
        Self::new()
    }
}

impl<Q> PoolBuilder<Q> {
    /// Names the pool (thread names, logs, metrics).
    #[must_use]
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Sets the number of workers. Zero makes [`build`](PoolBuilder::build) fail
    /// with [`BuildError::ZeroWorkers`].
    #[must_use]
    pub fn workers(mut self, workers: usize) -> Self {
        self.workers = Some(workers);
        self
    }

    /// Sets the queue the workers take jobs from.
    #[must_use]
    pub fn queue<Q2: Queue>(self, queue: Q2) -> PoolBuilder<Q2> {
        PoolBuilder {
            queue,
            name: self.name,
            workers: self.workers,
            executor: self.executor,
            results: self.results,
        }
    }

    /// Runs the workers as tasks on `handle`'s runtime instead of the current one.
    #[must_use]
    pub fn runtime(mut self, handle: tokio::runtime::Handle) -> Self {
        self.executor = Executor::Handle(handle);
        self
    }

    /// Runs each worker on an OS thread of its own, for CPU-bound or blocking jobs; see
    /// "CPU-bound and blocking jobs" above. No tokio runtime is needed to build such a
    /// pool.
    #[must_use]
    pub fn dedicated_threads(mut self) -> Self {
        self.executor = Executor::Threads;
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
}

impl<Q: Queue> PoolBuilder<Q> {
    /// Starts the workers, each running `worker` on the jobs it takes from the queue.
    ///
    /// # Errors
    ///
    /// [`BuildError::ZeroWorkers`] for a worker count of 0; [`BuildError::NoRuntime`]
    /// when workers are tokio tasks and there is no runtime; [`BuildError::Queue`] when
    /// the queue cannot create a consumer; [`BuildError::Thread`] when a worker thread
    /// cannot start.
    pub fn build<W: Worker<Q::Job>>(self, worker: W) -> Result<Pool<Q, W>, BuildError> {
        let workers = match self.workers {
            Some(0) => return Err(BuildError::ZeroWorkers),
            Some(workers) => workers,
            None => std::thread::available_parallelism().map_or(1, NonZeroUsize::get),
        };
        let runtime = match &self.executor {
            Executor::Current => {
                Some(tokio::runtime::Handle::try_current().map_err(|_| BuildError::NoRuntime)?)
            }
            Executor::Handle(handle) => Some(handle.clone()),
            Executor::Threads => None,
        };
        let consumers = (0..workers)
            .map(|_| self.queue.consumer())
            .collect::<Result<Vec<_>, _>>()
            .map_err(BuildError::Queue)?;
        let (sink, results) = if self.results {
            let (sender, receiver) = flume::unbounded();
            (Some(sender), Some(Results::new(receiver)))
        } else {
            (None, None)
        };
        let shared = Arc::new(Shared::new(self.name, self.queue, worker, workers));
        for (index, consumer) in consumers.into_iter().enumerate() {
            let work = worker::run(Arc::clone(&shared), consumer, index, sink.clone());
            match &runtime {
                Some(handle) => {
                    handle.spawn(work);
                }
                None => {
                    if let Err(error) = spawn_thread(&shared.name, index, work) {
                        // The workers already started see the stop and exit.
                        shared.begin_stop();
                        return Err(BuildError::Thread(error));
                    }
                }
            }
        }
        Ok(Pool::new(shared, results))
    }
}

/// Starts one worker on a thread of its own, with a single-threaded tokio runtime so
/// jobs can use timers, I/O and `tokio::spawn`.
fn spawn_thread(
    name: &str,
    index: usize,
    work: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name(format!("{name}-{index}"))
        .spawn(move || runtime.block_on(work))?;
    Ok(())
}

impl<Q> fmt::Debug for PoolBuilder<Q> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolBuilder")
            .field("name", &self.name)
            .field("workers", &self.workers)
            .field("executor", &self.executor)
            .field("results", &self.results)
            .finish_non_exhaustive()
    }
}
