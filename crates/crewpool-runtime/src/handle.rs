//! How a job's result reaches whoever waits for it: a per-job [`JobHandle`], or the
//! pool-wide [`Results`] stream.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

pub use crewpool_core::{JobError, JobResult, Outcome};
use crewpool_core::{JobId, Reply, Worker};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

/// A handle to one submitted job: await it for the job's result, or cancel it.
///
/// Dropping the handle does not cancel the job; its result is then discarded.
#[must_use = "a job handle does nothing unless awaited; use `spawn` for fire-and-forget jobs"]
pub struct JobHandle<T, E> {
    id: JobId,
    state: HandleState<T, E>,
    cancel: CancellationToken,
}

enum HandleState<T, E> {
    Waiting(oneshot::Receiver<Outcome<T, E>>),
    Done,
}

impl<T: Send + 'static, E: Send + 'static> JobHandle<T, E> {
    /// A handle and the [`Reply`] that completes it. The reply carries the job's
    /// cancellation token as its attachment, for the worker that takes the job.
    pub(crate) fn new(id: JobId) -> (Reply, Self) {
        let (sender, receiver) = oneshot::channel::<Outcome<T, E>>();
        let cancel = CancellationToken::new();
        let reply = Reply::new(move |value: &mut dyn Any| {
            if let Some(outcome) = value
                .downcast_mut::<Option<Outcome<T, E>>>()
                .and_then(Option::take)
            {
                // The handle may have been dropped: then nobody wants the result.
                let _ = sender.send(outcome);
            }
        })
        .with_attachment(std::sync::Arc::new(cancel.clone()));
        let handle = JobHandle {
            id,
            state: HandleState::Waiting(receiver),
            cancel,
        };
        (reply, handle)
    }
}

impl<T, E> JobHandle<T, E> {
    /// The job's id: the one its queue gave it (for a durable queue, the id under
    /// which it is stored, inspected and deleted).
    pub fn id(&self) -> JobId {
        self.id
    }

    /// The handle with the id the queue gave the job.
    pub(crate) fn with_id(mut self, id: JobId) -> Self {
        self.id = id;
        self
    }

    /// Asks the job to stop: a queued job is skipped when a worker reaches it, a
    /// running one has its future dropped at its next await. The handle then resolves
    /// to [`JobError::Cancelled`], unless the job finished first. Jobs can also watch
    /// for it cooperatively ([`ContextExt`](crate::ContextExt)).
    pub fn cancel(&self) {
        self.cancel.cancel();
    }
}

impl<T, E> Future for JobHandle<T, E> {
    type Output = Outcome<T, E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Outcome<T, E>> {
        let outcome = match &mut self.state {
            HandleState::Waiting(receiver) => match Pin::new(receiver).poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(outcome)) => outcome,
                // The reply was dropped unsent: the job was handed back or lost with
                // its runtime.
                Poll::Ready(Err(_)) => Err(JobError::NotRun),
            },
            HandleState::Done => panic!("JobHandle polled after it completed"),
        };
        self.state = HandleState::Done;
        Poll::Ready(outcome)
    }
}

impl<T, E> fmt::Debug for JobHandle<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobHandle").field("id", &self.id).finish()
    }
}

/// Where the results of jobs nobody holds a handle for go: the sending end of the
/// [`Results`] stream.
pub(crate) type ResultSink<W, J> =
    flume::Sender<JobResult<<W as Worker<J>>::Output, <W as Worker<J>>::Error>>;

/// The pool-wide stream of results.
///
/// It receives the outcome of every job that has no [`JobHandle`] waiting for it (jobs
/// started with [`Pool::spawn`](crate::Pool::spawn), sub-jobs, and jobs from other
/// producers of a durable queue). It is unbounded, so workers never wait on it, and
/// it ends once every worker has stopped. Enable it with
/// [`PoolBuilder::results`](crate::PoolBuilder::results).
pub struct Results<T: 'static, E: 'static> {
    stream: flume::r#async::RecvStream<'static, JobResult<T, E>>,
}

impl<T: 'static, E: 'static> Results<T, E> {
    pub(crate) fn new(receiver: flume::Receiver<JobResult<T, E>>) -> Self {
        Results {
            stream: receiver.into_stream(),
        }
    }

    /// Waits for the next result; `None` once every worker has stopped and all
    /// results were read.
    pub async fn recv(&mut self) -> Option<JobResult<T, E>> {
        use futures_core::Stream;
        std::future::poll_fn(|cx| Pin::new(&mut self.stream).poll_next(cx)).await
    }

    /// The number of results waiting to be read.
    pub fn len(&self) -> usize {
        self.stream.len()
    }

    /// Whether no result is waiting.
    pub fn is_empty(&self) -> bool {
        self.stream.is_empty()
    }
}

impl<T: 'static, E: 'static> futures_core::Stream for Results<T, E> {
    type Item = JobResult<T, E>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.stream).poll_next(cx)
    }
}

impl<T: 'static, E: 'static> fmt::Debug for Results<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Results")
            .field("waiting", &self.stream.len())
            .finish()
    }
}
