//! The traits every crewpool backend and worker implements.
//!
//! A worker pool is a fixed crew of workers taking jobs from a queue. crewpool splits
//! that into four roles, so the queue can be swapped without touching the workers:
//!
//! - a [`Queue`] is what producers push into (waiting for room when it is bounded, or
//!   handing the job back at once with [`TryPush`]), closes, and reports its depth;
//! - a [`Consumer`] is one worker's view of it: [`Consumer::next`] yields the next job,
//!   or `None` once the queue is closed and drained;
//! - a [`Delivery`] settles a received job's fate: ack, retry, dead-letter, or release;
//! - a [`Worker`] is what users write: an async function from a job to a `Result`.
//!
//! Jobs travel in an [`Envelope`] that carries their [`JobId`], their attempt number and,
//! in-process, the [`Reply`] through which the submitter gets the result. The runtime
//! (`crewpool-runtime`) runs N workers over any `Queue` and `Worker`; the backends
//! implement the queue.
//!
//! # How the backends map onto the traits
//!
//! - **flume** (`crewpool-flume`): `Queue` wraps a flume channel's sender, each
//!   `Consumer` a clone of its receiver; the delivery is [`Handover`] (nothing to settle).
//! - **work-stealing deque** (`crewpool-deque`): `Queue` owns a global injector; each
//!   `Consumer` owns a local deque and the stealers of the others, so stealing is
//!   consumer state and needs nothing from the traits; jobs a running job spawns through
//!   its [`JobContext`] go to its own worker's queue; the delivery is [`Handover`].
//! - **Redis** (`crewpool-redis`): `Queue::push` serialises the job into a versioned
//!   envelope and enqueues it; each `Consumer` owns a connection, fetches in batches and
//!   holds a lease and a fencing token per job; its `Delivery` is durable
//!   ([`Delivery::DURABLE`]): `ack` deletes the job only if the token still matches,
//!   `retry` moves it to a delayed set, `dead_letter` to a bounded dead-letter list,
//!   `release` back to the queue. Redis cannot carry a [`Reply`]; results stay local to
//!   the process that ran the job.
//!
//! Capabilities only some queues have are separate traits ([`TryPush`]), never an
//! `Option` on every backend.
//!
//! # Example
//!
//! A worker loop over any queue, which is what the runtime does for each worker, minus
//! panic isolation, statistics and shutdown:
//!
//! ```
//! use crewpool_core::{Consumer, Delivery, JobContext, Queue, Worker};
//!
//! async fn work<Q, W>(queue: &Q, worker: &W) -> Vec<W::Output>
//! where
//!     Q: Queue,
//!     W: Worker<Q::Job>,
//! {
//!     let mut consumer = queue.consumer().expect("a consumer");
//!     let mut outputs = Vec::new();
//!     while let Some(received) = consumer.next().await {
//!         let envelope = received.envelope;
//!         let cx = JobContext::detached(envelope.id, envelope.attempt);
//!         match worker.run(envelope.job, cx).await {
//!             Ok(output) => {
//!                 outputs.push(output);
//!                 received.delivery.ack().await.expect("ack");
//!             }
//!             Err(error) => {
//!                 let reason = error.to_string();
//!                 received.delivery.dead_letter(&reason).await.expect("dead-letter");
//!             }
//!         }
//!     }
//!     outputs
//! }
//! ```
//!
//! # Testing a backend
//!
//! With the `testkit` feature, the `testkit` module holds the conformance suite: generic
//! functions that check a queue keeps the contract written on [`Queue`], [`Consumer`]
//! and [`Delivery`]. Every backend in this workspace runs it.

#![warn(clippy::unwrap_used, clippy::expect_used)]

mod batch;
mod consumer;
mod delivery;
mod envelope;
mod error;
mod outcome;
mod queue;
mod retry;
#[doc(hidden)]
pub mod sync;
mod worker;

#[cfg(feature = "testkit")]
pub mod testkit;

pub use batch::Batch;
pub use consumer::{Consumer, Received, Spawn};
pub use delivery::{Delivery, Handover};
pub use envelope::{Attachment, Envelope, JobId, Reply};
pub use error::{BoxError, PushError, QueueError, SpawnError, TryPushError};
pub use outcome::{JobError, JobResult, Outcome};
pub use queue::{Queue, Replies, Retryable, TryPush};
pub use retry::{Failure, FailureKind, RetryPolicy};
pub use worker::{ContextSupport, JobContext, Plain, WithContext, Worker, plain, with_context};

/// The README (the crate's registry page): its examples compile and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
