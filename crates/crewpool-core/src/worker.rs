//! What users write: the function from a job to a result.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use crate::{Attachment, JobId, SpawnError};

/// The code that runs jobs: an async function from a job to `Result<Output, Error>`.
///
/// # Contract
///
/// - [`run`](Worker::run) is called once per delivery of a job, possibly on many workers
///   at once (hence `&self` and `Sync`).
/// - `Ok` means the job is done. `Err` means it failed; the error's `Display` text is
///   what gets recorded (a dead-letter reason, a log line).
/// - A panic inside `run`, or inside the future it returns, fails that job only: the
///   runtime reports it as panicked and the worker goes on.
/// - The future may be dropped before it completes (an aborted pool, a deadline, a
///   timeout); it must not leave shared state half-updated when that happens.
/// - CPU-bound or blocking code inside `run` occupies the thread polling it. Run such
///   pools on dedicated threads (the runtime's builder has an option for it) so the rest
///   of an async application is not starved.
///
/// Async closures and functions taking the job implement `Worker`; wrap a function
/// that also wants the [`JobContext`] in [`with_context`], and a plain (not async)
/// function in [`plain`], which runtimes call without a future per job.
///
/// # Examples
///
/// ```
/// use crewpool_core::{JobContext, Worker, with_context};
///
/// // A closure: job in, `Result` out.
/// let double = |n: u64| async move { Ok::<_, std::convert::Infallible>(n * 2) };
///
/// // A type with state.
/// struct Resize { max_width: u32 }
///
/// impl Worker<(u32, u32)> for Resize {
///     type Output = (u32, u32);
///     type Error = String;
///
///     async fn run(&self, (w, h): (u32, u32), _cx: JobContext<(u32, u32)>) -> Result<(u32, u32), String> {
///         if w == 0 { return Err("empty image".into()); }
///         let scale = f64::from(self.max_width.min(w)) / f64::from(w);
///         Ok((self.max_width.min(w), (f64::from(h) * scale) as u32))
///     }
/// }
///
/// // A closure that reads its context.
/// let attempts = with_context(|n: u64, cx: JobContext<u64>| async move {
///     Ok::<_, String>((n, cx.attempt()))
/// });
/// # fn is_worker<J, W: Worker<J>>(_: &W) {}
/// # is_worker(&double); is_worker(&Resize { max_width: 10 }); is_worker(&attempts);
/// ```
pub trait Worker<J>: Send + Sync + 'static {
    /// What a successful job produces.
    type Output: Send + 'static;
    /// What a failed job produces.
    type Error: fmt::Display + fmt::Debug + Send + 'static;

    /// Whether [`run_plain`](Worker::run_plain) runs jobs: `true` for a [`plain`]
    /// function, which a runtime calls directly, without making a future per job.
    const PLAIN: bool = false;

    /// Runs one job.
    fn run(
        &self,
        job: J,
        cx: JobContext<J>,
    ) -> impl Future<Output = Result<Self::Output, Self::Error>> + Send;

    /// Runs one job to its end on the calling thread, if this worker is a [`plain`]
    /// function ([`PLAIN`](Worker::PLAIN)); any other worker gives the job and its
    /// context back (the default), and the runtime polls [`run`](Worker::run)'s
    /// future instead. Runtimes call it only when `PLAIN` is `true`.
    ///
    /// # Errors
    ///
    /// The job and its context, back, from a worker that is not plain.
    #[allow(clippy::type_complexity)]
    fn run_plain(
        &self,
        job: J,
        cx: JobContext<J>,
    ) -> Result<Result<Self::Output, Self::Error>, (J, JobContext<J>)> {
        Err((job, cx))
    }
}

impl<J, F, Fut, T, E> Worker<J> for F
where
    F: Fn(J) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<T, E>> + Send,
    T: Send + 'static,
    E: fmt::Display + fmt::Debug + Send + 'static,
{
    type Output = T;
    type Error = E;

    fn run(&self, job: J, _cx: JobContext<J>) -> impl Future<Output = Result<T, E>> + Send {
        self(job)
    }
}

/// Makes a [`Worker`] of a plain (not async) function that takes the job and its
/// [`JobContext`] and returns its result.
///
/// For CPU-bound jobs on dedicated threads: the runtime calls the function directly,
/// with no future made and polled per job (see [`Worker::PLAIN`]), which makes short
/// jobs cheaper. The call holds its thread until it returns, like any CPU-bound job
/// (see the [`Worker`] contract), so a pool of plain jobs belongs on dedicated
/// threads. What holds for async workers holds here: a panic fails that job only,
/// `Err` is a failure the retry policy sees, sub-jobs go through
/// [`JobContext::spawn`]. A per-job timeout cannot stop a plain call that has started
/// (it ends when it returns), as with an async job that never awaits.
///
/// # Examples
///
/// ```
/// use crewpool_core::{JobContext, Worker, plain};
///
/// let checksum = plain(|data: Vec<u8>, _cx: JobContext<Vec<u8>>| {
///     Ok::<_, std::convert::Infallible>(data.iter().map(|&b| u64::from(b)).sum::<u64>())
/// });
///
/// // Runtimes call it directly: no future per job.
/// fn is_plain<J, W: Worker<J>>(_: &W) -> bool {
///     W::PLAIN
/// }
/// assert!(is_plain::<Vec<u8>, _>(&checksum));
/// let sum = checksum.run_plain(vec![1, 2, 3], JobContext::detached(Default::default(), 1));
/// assert_eq!(sum.ok().and_then(Result::ok), Some(6));
/// ```
pub fn plain<F>(f: F) -> Plain<F> {
    Plain(f)
}

/// A [`Worker`] made by [`plain`].
#[derive(Clone, Copy)]
pub struct Plain<F>(F);

impl<F> fmt::Debug for Plain<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Plain(..)")
    }
}

impl<J, F, T, E> Worker<J> for Plain<F>
where
    F: Fn(J, JobContext<J>) -> Result<T, E> + Send + Sync + 'static,
    T: Send + 'static,
    E: fmt::Display + fmt::Debug + Send + 'static,
{
    type Output = T;
    type Error = E;

    const PLAIN: bool = true;

    fn run(&self, job: J, cx: JobContext<J>) -> impl Future<Output = Result<T, E>> + Send {
        std::future::ready((self.0)(job, cx))
    }

    fn run_plain(&self, job: J, cx: JobContext<J>) -> Result<Result<T, E>, (J, JobContext<J>)> {
        Ok((self.0)(job, cx))
    }
}

/// Makes a [`Worker`] of a function that takes the job and its [`JobContext`].
pub fn with_context<F>(f: F) -> WithContext<F> {
    WithContext(f)
}

/// A [`Worker`] made by [`with_context`].
#[derive(Clone, Copy)]
pub struct WithContext<F>(F);

impl<F> fmt::Debug for WithContext<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WithContext(..)")
    }
}

impl<J, F, Fut, T, E> Worker<J> for WithContext<F>
where
    F: Fn(J, JobContext<J>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<T, E>> + Send,
    T: Send + 'static,
    E: fmt::Display + fmt::Debug + Send + 'static,
{
    type Output = T;
    type Error = E;

    fn run(&self, job: J, cx: JobContext<J>) -> impl Future<Output = Result<T, E>> + Send {
        (self.0)(job, cx)
    }
}

/// What a running job knows about itself, and what it can ask of its pool.
///
/// Cheap to clone; a job may move it into tasks it starts.
pub struct JobContext<J> {
    id: JobId,
    attempt: u32,
    support: Option<Arc<dyn ContextSupport<J>>>,
    extension: Option<Attachment>,
}

impl<J: 'static> JobContext<J> {
    /// A context for a job run outside a pool (tests, direct calls): it cannot spawn.
    pub fn detached(id: JobId, attempt: u32) -> Self {
        JobContext {
            id,
            attempt,
            support: None,
            extension: None,
        }
    }

    /// A context backed by a runtime's [`ContextSupport`].
    pub fn new(id: JobId, attempt: u32, support: Arc<dyn ContextSupport<J>>) -> Self {
        JobContext {
            id,
            attempt,
            support: Some(support),
            extension: None,
        }
    }

    /// Attaches per-job runtime data (a cancellation token, say); the runtime's own
    /// extension traits read it back with [`extension`](JobContext::extension).
    #[must_use]
    pub fn with_extension(mut self, extension: Attachment) -> Self {
        self.extension = Some(extension);
        self
    }

    /// The per-job runtime data if the runtime attached some to this job, else the
    /// runtime's data shared by all jobs ([`ContextSupport::extension`]).
    pub fn extension(&self) -> Option<&Attachment> {
        self.extension.as_ref().or_else(|| {
            self.support
                .as_ref()
                .and_then(|support| support.extension())
        })
    }

    /// The job's id.
    pub fn id(&self) -> JobId {
        self.id
    }

    /// Which attempt this is, from 1.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Adds a sub-job to the pool running this job, without waiting. Backends with
    /// per-worker queues put it on this worker's own queue, where idle workers can
    /// steal it (fork-join).
    ///
    /// This is the way for a job to add work to its own pool: it never waits for
    /// room. (A job that waited for room in its own pool's full queue would wait for
    /// the pool's workers, one of which is itself: once every worker did that, the
    /// pool would stop for good.) Its outcome goes to the pool's results stream.
    ///
    /// Sub-jobs are jobs like any other: counted, run by any worker, and waited for
    /// by a graceful shutdown.
    ///
    /// # Errors
    ///
    /// [`SpawnError::Full`] when a bounded shared queue has no room (spawning never
    /// waits), [`SpawnError::Closed`] when the pool stopped accepting jobs,
    /// [`SpawnError::Unsupported`] for a [`detached`](JobContext::detached) context.
    /// The job comes back in each case.
    pub fn spawn(&self, job: J) -> Result<JobId, SpawnError<J>> {
        match &self.support {
            Some(support) => support.spawn(job),
            None => Err(SpawnError::Unsupported(job)),
        }
    }

    /// The runtime's support object, for runtime-specific extensions.
    pub fn support(&self) -> Option<&Arc<dyn ContextSupport<J>>> {
        self.support.as_ref()
    }
}

impl<J> Clone for JobContext<J> {
    fn clone(&self) -> Self {
        JobContext {
            id: self.id,
            attempt: self.attempt,
            support: self.support.clone(),
            extension: self.extension.clone(),
        }
    }
}

impl<J> fmt::Debug for JobContext<J> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobContext")
            .field("id", &self.id)
            .field("attempt", &self.attempt)
            .field("detached", &self.support.is_none())
            .finish()
    }
}

/// What a runtime gives running jobs through their [`JobContext`].
pub trait ContextSupport<J>: Send + Sync + 'static {
    /// Adds a sub-job without waiting; see [`JobContext::spawn`].
    ///
    /// # Errors
    ///
    /// See [`JobContext::spawn`].
    fn spawn(&self, job: J) -> Result<JobId, SpawnError<J>>;

    /// Runtime data shared by every job this support serves, returned by
    /// [`JobContext::extension`] for jobs without data of their own. Keeping it here
    /// spares the runtime an allocation or a shared reference count per job.
    fn extension(&self) -> Option<&Attachment> {
        None
    }
}
