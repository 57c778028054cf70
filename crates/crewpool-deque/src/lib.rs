//! A crewpool queue that steals work, on [crossbeam-deque]: the fastest in-process
//! backend, and the default for CPU-bound jobs.
//!
//! # Roles
//!
//! - **The front door.** A bounded [`DequeQueue`] lands pushed jobs in a ring of
//!   `capacity` places (crossbeam-queue's `ArrayQueue`), allocated once: a push and a
//!   take cost a compare-and-swap each and no allocation. An unbounded one has a global
//!   `Injector` instead, which consumers take from in batches (up to half of it at a
//!   time), so they touch it once per batch; it also takes the local jobs of dropped
//!   consumers.
//! - **Local deques.** Each [`DequeConsumer`] (one per worker) owns a local FIFO
//!   `Worker` deque. `next` takes from it first, without locks, allocation or contended
//!   atomics beyond the deque's own.
//! - **Stealing.** A consumer whose local deque is empty takes from its inbox (below),
//!   then the ring and the injector, then steals half of a peer's local deque or
//!   inbox, starting at a pseudo-random peer so thieves spread out (rayon-core's
//!   registry is the model).
//! - **Fork-join.** A running job spawns sub-jobs through its
//!   [`JobContext`](crewpool_core::JobContext); they land in its worker's *inbox*, the
//!   shareable front door of the local deque, which the owner drains first and idle
//!   peers steal from. (The crossbeam `Worker` itself cannot be shared with the job's
//!   future; the inbox can.)
//! - **Parking.** A consumer that finds nothing after one search registers its waker
//!   and parks (`next` returns `Pending`): no spinning, no timed polling. Landing a job
//!   where a sleeper could find it wakes one; closing wakes all. See the `park`
//!   module for the protocol, which the loom models check.
//! - **Capacity.** A bounded queue counts every accepted job not yet handed to a
//!   worker, wherever it waits; at the bound, `push` waits (after a spin of a
//!   microsecond or two it returns `Pending`, never holding its thread) and `try_push`
//!   refuses. A bound of 0 is refused, as by every crewpool queue (see
//!   [`DequeQueue::bounded`]).
//!
//! The delivery is [`Handover`](crewpool_core::Handover): in-memory jobs are exactly
//! once and have nothing to settle.
//!
//! # Example
//!
//! The `find_task` loop of crossbeam-deque's docs, done for you, behind the
//! [`Queue`](crewpool_core::Queue) and [`Consumer`](crewpool_core::Consumer) traits:
//!
//! ```
//! use crewpool_core::{Consumer, Envelope, Queue, TryPush};
//! use crewpool_deque::DequeQueue;
//!
//! # crewpool_core::testkit::block_on(async {
//! let queue = DequeQueue::bounded(4);
//! let mut alice = queue.consumer().unwrap();
//! let mut bob = queue.consumer().unwrap();
//! for job in 0..4 {
//!     queue.push(Envelope::new(job)).await.unwrap();
//! }
//! assert!(queue.try_push(Envelope::new(4)).unwrap_err().is_full());
//!
//! // Alice takes the oldest job from the queue's ring (a bounded queue's front door)...
//! let first = alice.next().await.unwrap().envelope.job;
//! // ...and Bob the next one.
//! let second = bob.next().await.unwrap().envelope.job;
//! assert_ne!(first, second);
//!
//! // A job running on Alice's worker spawns a sub-job onto her inbox.
//! let spawner = alice.spawner().unwrap();
//! queue.close();
//! spawner.spawn(Envelope::new(10)).unwrap(); // still accepted: Alice is draining
//!
//! let mut rest = Vec::new();
//! while let Some(received) = alice.try_next().or_else(|| bob.try_next()) {
//!     rest.push(received.envelope.job);
//! }
//! rest.sort();
//! let mut all = vec![first, second];
//! all.extend(rest);
//! all.sort();
//! assert_eq!(all, [0, 1, 2, 3, 10]);
//! assert!(alice.next().await.is_none());
//! assert!(bob.next().await.is_none());
//! # });
//! ```
//!
//! With a [`Pool`](https://docs.rs/crewpool-runtime), pass the queue to
//! `PoolBuilder::queue`; the pool makes one consumer per worker.
//!
//! # Closing
//!
//! After [`close`](crewpool_core::Queue::close), pushes are refused and every accepted
//! job is still delivered. A consumer's `next` returns `None` once the queue is closed
//! and the count of accepted, untaken jobs is zero, so never while a push that won the
//! race with close is still landing. Sub-jobs spawned after close by a job running on
//! a consumer that has not finished are accepted (the consumer drains them); a
//! consumer that has returned `None`, or was dropped, refuses them.
//!
//! # Testing under loom
//!
//! crossbeam-deque is not loom-instrumented. Under `--cfg crewpool_loom` the deques
//! are replaced by a stand-in on loom mutexes with the same interface (see the
//! `deques` module), and all the backend's own synchronisation goes through the
//! `crewpool_core::sync` module, so the models explore the real parking, closing and accounting code.
//!
//! [crossbeam-deque]: https://docs.rs/crossbeam-deque

#![warn(clippy::unwrap_used, clippy::expect_used)]

mod consumer;
mod deques;
mod ledger;
mod park;
mod queue;
mod registry;
mod shared;
mod spawner;
#[cfg(all(test, crewpool_loom))]
mod tests;
mod waiters;

pub use consumer::DequeConsumer;
pub use queue::DequeQueue;

/// The README (the crate's registry page): its examples compile and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
