//! One worker's loop: take a job, run it with its panic caught, report, settle, repeat.
//!
//! The loop uses no tokio type, so the loom models run it as it is. It leaves when its
//! consumer says the queue is closed and drained, or when the pool stops (see
//! [`lifecycle`](crate::lifecycle) for the states and races).

use crewpool_core::{
    Consumer, ContextSupport, Delivery, Envelope, JobContext, Queue, Received, Reply, Worker,
};

use crate::future::{Either, catch_panic, first_of, yield_now};
use crate::handle::{JobError, JobResult, Outcome};
use crate::loom::Arc;
use crate::shared::{DeliveryOf, Shared, Support, is_durable};
use crate::signal::Latch;
use crate::stats::{Finish, WorkerCounters};

/// Where the results of jobs nobody holds a handle for go.
pub(crate) type ResultSink<W, J> =
    flume::Sender<JobResult<<W as Worker<J>>::Output, <W as Worker<J>>::Error>>;

/// How many jobs a worker runs back to back before yielding to other tasks on its
/// thread, so a queue that is never empty cannot monopolise an executor thread.
const JOBS_PER_YIELD: u32 = 32;

/// Counts the worker out of `live` however the loop ends, even by a panic in a backend.
struct Exit<'a>(&'a Latch);

impl Drop for Exit<'_> {
    fn drop(&mut self) {
        self.0.count_down();
    }
}

/// Runs worker `index` until the queue is drained or the pool stops.
pub(crate) async fn run<Q, W>(
    shared: Arc<Shared<Q, W>>,
    mut consumer: Q::Consumer,
    index: usize,
    results: Option<ResultSink<W, Q::Job>>,
) where
    Q: Queue,
    W: Worker<Q::Job>,
{
    let _exit = Exit(&shared.lifecycle.live);
    let support: std::sync::Arc<dyn ContextSupport<Q::Job>> =
        std::sync::Arc::new(Support::new(Arc::clone(&shared), &consumer));
    let counters = shared.counters.worker(index);
    let mut streak = 0;
    loop {
        let received = match first_of(consumer.next(), shared.lifecycle.stop.wait()).await {
            Either::Left(Some(received)) => received,
            Either::Left(None) | Either::Right(()) => break,
        };
        if shared.lifecycle.is_stopping() {
            shared.hand_back(received).await;
            break;
        }
        run_one(&shared, counters, &support, received, results.as_ref()).await;
        streak += 1;
        if streak == JOBS_PER_YIELD {
            streak = 0;
            yield_now().await;
        }
    }
    if shared.lifecycle.is_stopping() {
        // Whatever this consumer can hand over without waiting (a local deque, a
        // prefetched batch) goes back now; the rest stays in the queue for shutdown.
        while let Some(received) = consumer.try_next() {
            shared.hand_back(received).await;
        }
    }
}

/// How a finished job is settled with its queue.
enum Settle {
    Ack,
    DeadLetter(String),
    Release,
}

async fn run_one<Q, W>(
    shared: &Shared<Q, W>,
    counters: &WorkerCounters,
    support: &std::sync::Arc<dyn ContextSupport<Q::Job>>,
    received: Received<Q::Job, DeliveryOf<Q>>,
    results: Option<&ResultSink<W, Q::Job>>,
) where
    Q: Queue,
    W: Worker<Q::Job>,
{
    let Received { envelope, delivery } = received;
    let Envelope {
        job,
        id,
        attempt,
        reply,
    } = envelope;
    counters.set_running(true);
    let cx = JobContext::new(id, attempt, std::sync::Arc::clone(support));
    let run = catch_panic(|| shared.worker.run(job, cx));
    // The job is polled before the stop signal: see "Races" in `lifecycle`.
    let ran = first_of(run, shared.lifecycle.stop.wait()).await;
    counters.set_running(false);

    let durable = is_durable::<Q>();
    let (finish, outcome, settle): (_, Outcome<W::Output, W::Error>, _) = match ran {
        Either::Left(Ok(Ok(output))) => (Finish::Completed, Ok(output), Settle::Ack),
        Either::Left(Ok(Err(error))) => {
            let reason = if durable {
                error.to_string()
            } else {
                String::new()
            };
            (
                Finish::Failed,
                Err(JobError::Failed(error)),
                Settle::DeadLetter(reason),
            )
        }
        Either::Left(Err(message)) => {
            tracing::warn!(pool = %shared.name, job = %id, %message, "job panicked");
            let reason = format!("panicked: {message}");
            (
                Finish::Panicked,
                Err(JobError::Panicked(message)),
                Settle::DeadLetter(reason),
            )
        }
        Either::Right(()) => {
            shared.record_interrupted(id);
            (
                Finish::Interrupted,
                Err(JobError::Interrupted),
                Settle::Release,
            )
        }
    };
    counters.record(finish);
    deliver(reply, results, id, outcome);

    let settled = match settle {
        Settle::Ack => delivery.ack().await,
        Settle::DeadLetter(reason) => delivery.dead_letter(&reason).await,
        Settle::Release => delivery.release().await,
    };
    if let Err(error) = settled {
        tracing::warn!(pool = %shared.name, job = %id, %error, "could not settle a job with its queue");
    }
}

/// Sends an outcome to the job's handle if it has one, else to the results stream if
/// the pool has one, else drops it (it was counted).
fn deliver<T: Send + 'static, E: Send + 'static>(
    reply: Option<Reply>,
    results: Option<&flume::Sender<JobResult<T, E>>>,
    id: crewpool_core::JobId,
    outcome: Outcome<T, E>,
) {
    match (reply, results) {
        (Some(reply), _) => reply.send(outcome),
        (None, Some(results)) => {
            // Unbounded: never waits. Fails only if the stream was dropped.
            let _ = results.send(JobResult { id, outcome });
        }
        (None, None) => {}
    }
}
