//! A job's fate: the one place that decides, from how an attempt ended, what is
//! counted, what the job's handle (or the results stream) gets, what its queue is told,
//! and whether it runs again; and where an unstarted job goes back when a pool stops.
//!
//! # The outcome table
//!
//! | the attempt ([`Ran`])                     | counted ([`Finish`]) | the handle gets  | a durable queue is told |
//! |-------------------------------------------|----------------------|------------------|-------------------------|
//! | `Ok`                                      | completed            | `Ok(output)`     | ack                     |
//! | `Cancelled` (through its handle)          | cancelled            | `Cancelled`      | ack                     |
//! | `Interrupted` (a stopping pool)           | interrupted, listed  | `Interrupted`    | release                 |
//! | `Abandoned` (reported still running)      | interrupted          | `Interrupted`    | release                 |
//! | `Failed`, `Panicked`, `TimedOut`, retried | retried              | (the next try's) | retry after the delay   |
//! | `Failed`, `Panicked`, `TimedOut`, final   | failed, panicked, timed out | `Failed`, `Panicked`, `TimedOut` | dead-letter, with the reason |
//!
//! A failure is retried when the pool has a retry policy that says so *and* the retry
//! can happen: a durable queue keeps the job itself (and runs the next attempt in any
//! process); an in-memory queue hands the job over entirely, so the pool must have
//! kept a copy before the attempt, and schedules it on its [retry lane](crate::lane).
//!
//! In memory nothing is owed to the queue (in-memory deliveries have nothing to settle:
//! their methods are documented no-ops), so closing a job's books is synchronous; only
//! a durable queue's settlement is awaited, after them.

use std::fmt;
use std::time::{Duration, Instant};

use crewpool_core::{Delivery, Envelope, JobId, Queue, Received, Reply, Worker};

use crate::backend::{DeliveryOf, is_durable};

use crate::handle::{JobError, JobResult, Outcome, ResultSink};
use crate::policy::{Failure, FailureKind};
use crate::shared::Shared;
use crate::stats::{Finish, WorkerCounters};
use crewpool_core::sync::lock;

/// How one attempt ended.
pub(crate) enum Ran<T, E> {
    Ok(T),
    Failed(E),
    Panicked(String),
    /// Stopped by the pool's per-job timeout, after this long.
    TimedOut(Duration),
    Cancelled,
    Interrupted,
    /// A stopping shutdown gave up on the job while its worker was inside it, and
    /// reported it as still running (see `stats::activity`).
    Abandoned,
}

impl<T, E: fmt::Display + Send + 'static> Ran<T, E> {
    /// The attempt as a retry predicate sees it, if it failed.
    fn failure(&self, attempt: u32) -> Option<Failure<'_>> {
        let kind = match self {
            Ran::Failed(error) => {
                return Some(Failure::new(FailureKind::Failed, attempt, self).with_error(error));
            }
            Ran::Panicked(_) => FailureKind::Panicked,
            Ran::TimedOut(_) => FailureKind::TimedOut,
            _ => return None,
        };
        Some(Failure::new(kind, attempt, self))
    }
}

impl<T, E: fmt::Display> fmt::Display for Ran<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ran::Ok(_) => f.write_str("completed"),
            Ran::Failed(error) => error.fmt(f),
            Ran::Panicked(message) => write!(f, "panicked: {message}"),
            Ran::TimedOut(after) => write!(f, "timed out after {after:?}"),
            Ran::Cancelled => f.write_str("cancelled"),
            Ran::Interrupted | Ran::Abandoned => f.write_str("interrupted"),
        }
    }
}

/// What a durable queue is still owed for a job once its books are closed.
pub(crate) struct Owed<D> {
    id: JobId,
    delivery: D,
    settle: Settle,
}

/// What a durable queue is told about a job.
enum Settle {
    Ack,
    DeadLetter(String),
    Release,
    Retry(Duration, String),
}

impl<D: Delivery> Owed<D> {
    /// Tells the queue. A failure is logged: the queue's lease brings the job back.
    pub(crate) async fn settle(self, pool: &str) {
        let Owed {
            id,
            delivery,
            settle,
        } = self;
        let settled = match settle {
            Settle::Ack => delivery.ack().await,
            Settle::DeadLetter(reason) => delivery.dead_letter(&reason).await,
            Settle::Release => delivery.release().await,
            Settle::Retry(delay, reason) => delivery.retry(delay, &reason).await,
        };
        if let Err(error) = settled {
            tracing::warn!(pool = %pool, job = %id, %error, "could not settle a job with its queue");
        }
    }
}

/// Everything needed to close a job's books once its fate is known.
///
/// Armed until the outcome is delivered (or the job is handed on to a retry): dropped
/// armed, which happens only when the worker's task is dropped mid-job (its tokio
/// runtime went away), it counts the job as interrupted and tells its handle so.
pub(crate) struct Ending<'a, Q: Queue, W: Worker<Q::Job>> {
    pub(crate) shared: &'a Shared<Q, W>,
    pub(crate) counters: &'a WorkerCounters,
    pub(crate) id: JobId,
    pub(crate) attempt: u32,
    pub(crate) reply: Option<Reply>,
    pub(crate) delivery: Option<DeliveryOf<Q>>,
    pub(crate) results: Option<&'a ResultSink<W, Q::Job>>,
    /// When the attempt started, with metrics on.
    pub(crate) started: Option<Instant>,
    /// A copy of the job for its next attempt, kept in memory when one may happen.
    pub(crate) backup: Option<Q::Job>,
    pub(crate) armed: bool,
}

/// Whether a success of a job is only counted, its output dropped and nothing owed
/// (the first row of the table): nobody awaits it (no handle, no results stream), no
/// metrics record it, and its queue is in memory. The worker's shortcuts for the
/// common case check this one condition.
#[inline]
pub(crate) fn success_is_only_counted<Q: Queue, W: Worker<Q::Job>>(
    shared: &Shared<Q, W>,
    has_reply: bool,
    results: Option<&ResultSink<W, Q::Job>>,
) -> bool {
    !has_reply && results.is_none() && shared.metrics.is_none() && !is_durable::<Q>()
}

impl<Q: Queue, W: Worker<Q::Job>> Ending<'_, Q, W> {
    /// Decides the job's fate from how its attempt ended (the table in the module
    /// docs), counts it, delivers its outcome or schedules its retry, and returns what
    /// a durable queue is still owed.
    pub(crate) fn decide(mut self, ran: Ran<W::Output, W::Error>) -> Option<Owed<DeliveryOf<Q>>> {
        let shared = self.shared;
        // The common case, kept short: a success in memory that nobody awaits (no
        // handle, no results stream) and no metrics to record. The same row of the
        // table as below: counted completed, the output dropped, nothing owed.
        if let Ran::Ok(_) = ran
            && success_is_only_counted(shared, self.reply.is_some(), self.results)
        {
            self.armed = false;
            self.counters.record(Finish::Completed);
            return None;
        }
        let (finish, outcome) = match ran {
            Ran::Ok(output) => (Finish::Completed, Ok(output)),
            Ran::Cancelled => (Finish::Cancelled, Err(JobError::Cancelled)),
            Ran::Interrupted => {
                shared.record_interrupted(self.id);
                (Finish::Interrupted, Err(JobError::Interrupted))
            }
            // Reported as still running by the shutdown that gave up on it: its outcome
            // is discarded, and it is counted as interrupted now it is over.
            Ran::Abandoned => (Finish::Interrupted, Err(JobError::Interrupted)),
            failed => return self.failed(failed),
        };
        let settle = if finish == Finish::Interrupted {
            Settle::Release
        } else {
            Settle::Ack
        };
        self.close(finish, outcome, settle)
    }

    /// A failed attempt: retried if the policy says so and the retry can happen, else
    /// final.
    #[cold]
    fn failed(mut self, ran: Ran<W::Output, W::Error>) -> Option<Owed<DeliveryOf<Q>>> {
        let shared = self.shared;
        let (id, attempt) = (self.id, self.attempt);
        if let Ran::Panicked(message) = &ran {
            tracing::warn!(pool = %shared.name, job = %id, %message, "job panicked");
        }
        let durable = is_durable::<Q>();
        let retry = shared.policies.retry.as_ref().filter(|policy| {
            (durable || self.backup.is_some())
                && ran
                    .failure(attempt)
                    .is_some_and(|failure| policy.should_retry(&failure))
        });
        if let Some(policy) = retry {
            let delay = policy.delay_after(attempt);
            self.counters.record(Finish::Retried);
            if let Some(metrics) = &shared.metrics {
                metrics.retried.increment(1);
            }
            tracing::debug!(pool = %shared.name, job = %id, attempt, ?delay, reason = %ran, "retrying");
            self.armed = false;
            let reply = self.reply.take();
            return match (&shared.lane, self.backup.take()) {
                (Some(lane), Some(job)) => {
                    let mut again = Envelope::new(job).with_id(id).with_attempt(attempt + 1);
                    again.reply = reply;
                    if shared.metrics.is_some() {
                        again = again.with_enqueued_at(Instant::now() + delay);
                    }
                    lane.schedule(again, tokio::time::Instant::now() + delay);
                    None
                }
                // A durable queue: it runs the next attempt (in any process).
                _ => self.delivery.take().map(|delivery| Owed {
                    id,
                    delivery,
                    settle: Settle::Retry(delay, ran.to_string()),
                }),
            };
        }
        // Only durable queues keep the reason; in memory the outcome carries it.
        let reason = if durable {
            ran.to_string()
        } else {
            String::new()
        };
        let (finish, error) = match ran {
            Ran::Failed(error) => (Finish::Failed, JobError::Failed(error)),
            Ran::Panicked(message) => (Finish::Panicked, JobError::Panicked(message)),
            _ => (Finish::TimedOut, JobError::TimedOut),
        };
        self.close(finish, Err(error), Settle::DeadLetter(reason))
    }

    /// Counts the outcome and delivers it; returns what the queue is owed if it keeps
    /// the job.
    fn close(
        &mut self,
        finish: Finish,
        outcome: Outcome<W::Output, W::Error>,
        settle: Settle,
    ) -> Option<Owed<DeliveryOf<Q>>> {
        self.armed = false;
        self.counters.record(finish);
        if let Some(metrics) = &self.shared.metrics {
            metrics.finished(finish, self.started);
        }
        deliver(self.reply.take(), self.results, self.id, outcome);
        let delivery = self.delivery.take().filter(|_| is_durable::<Q>())?;
        Some(Owed {
            id: self.id,
            delivery,
            settle,
        })
    }
}

impl<Q: Queue, W: Worker<Q::Job>> Drop for Ending<'_, Q, W> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        // The worker's task was dropped while the job ran: its runtime went away.
        self.counters.idle();
        self.counters.record(Finish::Interrupted);
        self.shared.record_interrupted(self.id);
        deliver(
            self.reply.take(),
            self.results,
            self.id,
            Err(JobError::Interrupted),
        );
        // A durable queue's delivery, dropped unsettled, comes back with its lease.
    }
}

/// Sends an outcome to the job's reply if it has one, and to the results stream if the
/// pool has one and the reply did not take it (a durable queue's reply only stores a
/// copy for the producer, in whichever process it is), else drops it (it was counted).
#[inline]
fn deliver<T: Send + 'static, E: Send + 'static>(
    reply: Option<Reply>,
    results: Option<&flume::Sender<JobResult<T, E>>>,
    id: JobId,
    outcome: Outcome<T, E>,
) {
    let left = match reply {
        Some(reply) => reply.send(outcome),
        None => Some(outcome),
    };
    if let (Some(outcome), Some(results)) = (left, results) {
        // Unbounded: never waits. Fails only if the stream was dropped.
        let _ = results.send(JobResult { id, outcome });
    }
}

impl<Q: Queue, W: Worker<Q::Job>> Shared<Q, W> {
    /// Gives back a job a stopping worker received but did not start: a durable queue
    /// gets it back (released), an in-memory one's goes to the shutdown report.
    pub(crate) async fn hand_back(&self, received: Received<Q::Job, DeliveryOf<Q>>) {
        if is_durable::<Q>() {
            if let Err(error) = received.delivery.release().await {
                tracing::warn!(pool = %self.name, %error, "could not release an unstarted job; its lease will bring it back");
            }
        } else {
            self.hand_back_envelope(received.envelope);
        }
    }

    /// Gives back an in-memory job that was not started (for the shutdown report).
    pub(crate) fn hand_back_envelope(&self, envelope: Envelope<Q::Job>) {
        lock(&self.returned).push(envelope);
    }

    /// Lists a job interrupted while stopping (for the shutdown report).
    pub(crate) fn record_interrupted(&self, id: JobId) {
        lock(&self.interrupted).push(id);
    }
}
