//! A crewpool queue on Redis: at-least-once, leased and fenced, shared by worker
//! processes on many machines.
//!
//! Producers [`enqueue`](RedisQueue::enqueue) serde jobs into a Redis list; every
//! process that connects to the same queue runs a crewpool pool whose workers take
//! jobs from it. A job is never deleted before it finishes: a fetch moves a batch of
//! jobs atomically into an in-flight hash under a **lease** that the process's
//! heartbeat extends; a worker that dies stops extending it, and the jobs go back to
//! the queue when the lease runs out. Every delivery carries a **fencing token**,
//! checked by Redis on every settlement and extension, so a stalled ("zombie") worker
//! that wakes up after its lease expired cannot complete a job someone else took.
//!
//! # Roles
//!
//! - [`RedisConfig`]: URL, queue name, key prefix, lease, heartbeat, batch, prefetch,
//!   payload limit, [`RetryPolicy`], dead-letter bounds, [`AckMode`], connect timeout
//!   and retries.
//! - [`RedisQueue`]: the producer ([`enqueue`](RedisQueue::enqueue),
//!   [`enqueue_bulk`](RedisQueue::enqueue_bulk)), the inspector
//!   ([`stats`](RedisQueue::stats), [`dead_letters`](RedisQueue::dead_letters),
//!   [`requeue_dead`](RedisQueue::requeue_dead)), and a [`Queue`] for a crewpool pool.
//! - [`RedisConsumer`]: one worker's view; the consumers of a process share one
//!   fetcher that leases jobs in batches for the workers that wait.
//! - [`RedisDelivery`]: the lease on one job; `ack`, `retry`, `dead_letter`, `release`
//!   (and [`fail`](RedisDelivery::fail), which applies the retry policy).
//! - [`Admin`] and [`QueueAdmin`]: the operator's view of every queue under a prefix,
//!   jobs read as JSON: the queue registry, counts and totals
//!   ([`QueueOverview`]), the jobs of each [`JobState`] page by page, requeue, delete
//!   and purge. The `crewpool` command line, dashboard and Prometheus exporter are
//!   built on it.
//!
//! # Example
//!
//! ```
//! use crewpool_core::{Consumer, Delivery, Queue};
//! use crewpool_redis::{RedisConfig, RedisQueue};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize)]
//! struct Resize { image: String, width: u32 }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let server = crewpool_redis::testing::RedisServer::start();
//! # let url = server.url();
//! // Producer and workers agree on the URL and the queue name.
//! let config = RedisConfig::new(url.as_str(), "thumbnails");
//! let queue = RedisQueue::<Resize>::connect(config).await?;
//! queue.enqueue(&Resize { image: "cat.png".into(), width: 200 }).await?;
//!
//! // A worker (a crewpool pool does this loop for each of its workers).
//! let mut consumer = queue.consumer()?;
//! let received = consumer.next().await.expect("a job");
//! assert_eq!(received.envelope.job.image, "cat.png");
//! assert_eq!(received.envelope.attempt, 1);
//! received.delivery.ack().await?; // deleted from Redis only now
//! # Ok(()) }
//! ```
//!
//! With a pool (`crewpool_runtime::PoolBuilder`), pass the queue to `.queue(...)`:
//! the pool acknowledges a job that returns `Ok`, retries one that fails or panics
//! (with the pool's retry policy if it has one, else the queue's [`RetryPolicy`]) and
//! dead-letters it once out of attempts, and releases unstarted ones when it stops.
//!
//! # Guarantees
//!
//! - **At-least-once.** A job accepted by Redis is run until a worker acknowledges
//!   it. It may run more than once: when a worker dies after finishing the job but
//!   before its acknowledgement reached Redis, when a worker stalls longer than the
//!   lease (its job is given to another; the stalled one's acknowledgement is then
//!   refused), or when a call's reply is lost to a broken connection. Make jobs
//!   idempotent, or deduplicate on [`JobId`](crewpool_core::JobId).
//! - **Nothing lost that Redis kept.** The queue is only as durable as Redis: with no
//!   persistence, a Redis restart loses every job; with `appendonly yes` and
//!   `appendfsync everysec` (the default) up to about a second of writes
//!   (enqueues, acknowledgements) can be lost; `appendfsync always` loses nothing
//!   Redis acknowledged. RDB snapshots lose everything since the last snapshot. A
//!   replica promoted by failover may lack the last writes (replication is
//!   asynchronous). A lost acknowledgement only reruns a job; a lost enqueue loses it.
//! - **`maxmemory-policy noeviction` is required.** Any other policy lets Redis
//!   delete queue keys when memory runs out. [`RedisQueue::connect`] checks and logs a
//!   warning otherwise ([`ServerInfo::is_noeviction`]).
//! - **Leases.** The jobs of one fetch are leased together for
//!   [`RedisConfig::lease`] (default 5 s) by Redis's clock; the process extends every
//!   lease that still has unsettled deliveries every
//!   [`heartbeat`](RedisConfig::heartbeat) (default a fifth of the lease) in one call.
//!   A process that dies has its jobs back in the queue one lease after its last
//!   heartbeat; an idle worker elsewhere wakes at that deadline and takes them. An
//!   expired lease counts as a failed attempt, so a job that kills its worker every
//!   time is dead-lettered once out of attempts. A delivery dropped unsettled gets a
//!   lease of its own that nobody extends, so it comes back one lease later even while
//!   the rest of its fetch is still running.
//! - **Fencing.** Each delivery's token (its lease) is checked by Redis on `ack`,
//!   `retry`, `dead_letter`, `release` and on heartbeats; a stale token changes
//!   nothing and the call fails with [`Error::LeaseLost`]. A delivery stops being
//!   extended once its settlement is handed to Redis.
//! - **Retries and dead letters.** `retry` and [`RedisDelivery::fail`] schedule the
//!   next attempt through a delayed set (exponential backoff from the
//!   [`RetryPolicy`]); after the last attempt the job goes to the dead-letter list
//!   with its last error ([`dead_letters`](RedisQueue::dead_letters),
//!   [`requeue_dead`](RedisQueue::requeue_dead)), bounded by count
//!   ([`dead_letter_limit`](RedisConfig::dead_letter_limit), 10,000) and by Redis
//!   memory ([`dead_letter_bytes`](RedisConfig::dead_letter_bytes), 64 MiB), the oldest
//!   dropped first. A record that breaks the wire format or an envelope that does not
//!   decode is dead-lettered with the reason, and the worker goes on.
//! - **Order.** FIFO from one producer: jobs are fetched oldest first. Retries go to
//!   the back when due; jobs of dead workers and released jobs go to the front.
//! - **Connection loss** (a Redis restart, a dropped connection) is survived: the
//!   connections reconnect with exponential backoff (50 ms to 2 s), and every
//!   background task backs off between failed calls (10 ms doubling to 2 s), so an
//!   outage costs a handful of calls, not a tight loop. Scripts are called by SHA and
//!   reloaded when Redis answers `NOSCRIPT`. A process that may start before Redis
//!   does sets [`RedisConfig::connect_retry_for`], and
//!   [`connect`](RedisQueue::connect) waits for Redis that long.
//!
//! # The hot path
//!
//! - **Blocking, not polling.** When the queue is empty, the process's fetcher blocks
//!   in Redis on `BLMOVE pending pending LEFT LEFT <timeout>`, which returns as soon
//!   as a job is pushed and moves nothing (it pops the newest record and pushes it
//!   back in place), so a wait that is abandoned, or a process that dies waiting, strands
//!   no job. Lease deadlines and delayed jobs wake it by a local timer set from the
//!   earliest deadline Redis reports.
//! - **What an idle process sends**: two commands per
//!   [`max_block`](RedisConfig::max_block) (default 10 s, so 0.2 commands/s; 10 in a
//!   measured minute): when the wait times out, a fetch and a new wait. The fetch does
//!   the housekeeping that no push announces (a retry another process scheduled that
//!   became due, a lease of a process that died since the last fetch), and the renewal
//!   bounds how long a silently broken connection goes unnoticed. Nothing else: the
//!   heartbeat sends nothing while no job is leased, the acknowledgements nothing
//!   while none is waiting.
//! - **Batches.** One fetch script call leases as many jobs as workers wait (plus
//!   [`prefetch`](RedisConfig::prefetch), up to [`batch_size`](RedisConfig::batch_size))
//!   and does the housekeeping (expired leases, due retries) in the same call.
//!   Acknowledgements are grouped: every ack waiting when a flush starts goes in one
//!   call (group commit, up to 4,000); [`AckMode::Queued`] lets `ack` return before
//!   the flush. [`enqueue_bulk`](RedisQueue::enqueue_bulk) sends 1,000 jobs per
//!   `LPUSH`, 8 per round trip. The heartbeat is one call per process per interval,
//!   naming each lease once, not each job.
//! - **Little work per job in Redis.** A job is one list element from enqueue to
//!   fetch, and one hash field while leased: a fetch costs Redis a list pop and a hash
//!   write per job, an acknowledgement a hash delete; the lease bookkeeping (its
//!   deadline, its count) is per batch. Measured by
//!   `cargo bench -p crewpool-redis --bench throughput` (see the README).
//!
//! # Closing
//!
//! Closing a Redis queue ([`Queue::close`], which a pool's `shutdown` does) means
//! **this process stops enqueueing and fetching**: [`enqueue`](RedisQueue::enqueue),
//! [`enqueue_bulk`](RedisQueue::enqueue_bulk) and `push` fail with [`Error::Closed`],
//! jobs still in Redis stay there for other workers (or a later run), jobs fetched
//! ahead and not started are released to the front of the queue, and
//! [`Consumer::next`](crewpool_core::Consumer::next) returns `None` once this
//! process's local work is done (the prefetched jobs released, its queued
//! acknowledgements flushed). This differs from the in-memory queues, where close-and-drain
//! runs every accepted job. [`Queue::depth`] is the pending count Redis reported on
//! this process's last push or fetch (plus the jobs fetched into this process and not
//! yet taken); [`RedisQueue::len`] asks Redis.
//!
//! # Wire format
//!
//! All keys of queue `<queue>` under prefix `<prefix>` (default `crewpool`) are
//! `<prefix>:{<queue>}:<name>`; the braces are a Redis Cluster hash tag, so every key
//! of a queue is in one slot and the scripts work on Cluster.
//!
//! A job travels as a **record** `<id>|<attempt>|<envelope>`: its id (a unique
//! decimal integer from 1 to 2^53 − 1, exact in every language's numbers), the number
//! of its next delivery (decimal, from 1 to 2^32 − 1; 1 for a new job), and its
//! envelope (at most the worker's [`max_payload`](RedisConfig::max_payload) bytes).
//! A worker checks every record it takes against these rules and dead-letters one
//! that breaks them with the reason, without decoding it.
//!
//! | key | type | content |
//! |---|---|---|
//! | `seq` | string | the last job id given (`INCR`) |
//! | `pending` | list | records waiting; producers `LPUSH`, workers take from the right |
//! | `leased` | hash | `<lease>:<n>` → the record of the n-th job of a fetch, while a worker owns it |
//! | `active` | sorted set | lease → deadline (ms since the epoch, Redis clock) |
//! | `leases` | hash | `<lease>` → how many of its jobs are still leased; `<lease>:n` → how many it took; `<lease>:t` → when it was taken (ms) |
//! | `fence` | string | the last lease number given |
//! | `delayed` | sorted set | record → due time (ms): retries waiting for their backoff |
//! | `dead` | list | dead letters, newest first, within the dead-letter bounds: `{"record":…,"reason":…,"attempt":…,"at":ms}` (no `attempt` when the record has no valid one) |
//! | `stats` | hash | totals since the queue began: `succeeded` (jobs acknowledged, by `ack.lua`), `failed` (failed attempts, by `retry.lua` and `bury.lua`), `expired` (jobs whose lease ran out, by `fetch.lua`) |
//!
//! One key per prefix spans queues, and so has no hash tag: **`<prefix>:queues`**, a
//! sorted set queue name → when a process last connected to it (ms, that process's
//! clock). [`RedisQueue::connect`] adds its queue; [`Admin::queues`] lists them, so
//! tools find every queue without `SCAN`ning the keyspace. It is written with plain
//! commands only, never inside a queue's scripts.
//!
//! Each fetch takes a new lease number from `fence`; the field `<lease>:<n>` is the
//! delivery's fencing token: a settlement deletes it only if it is still there, and a
//! lease that expires is taken back whole (its fields deleted, its jobs pushed back),
//! so a late settlement finds nothing to change.
//!
//! The **envelope** (version 1) is a JSON object `{"v":1,"at":<ms>,"job":<the job>}`;
//! `job` is the serde JSON form of the job type, and the optional `at` is when the
//! producer enqueued it (ms since the Unix epoch, the producer's clock; inspectors
//! compute the age of the oldest pending job from it). Readers ignore fields they do
//! not know, so later versions may add some; an envelope with another `v`, a `job`
//! that does not decode, or a malformed record is dead-lettered with the reason.
//!
//! **Enqueueing from another language**, either with one script call (atomic; returns
//! the first id and the queue length) — the script is [`ENQUEUE_LUA`], shipped as
//! `lua/enqueue.lua` — taking any number of envelopes:
//!
//! ```text
//! EVAL <enqueue.lua> 2 crewpool:{emails}:seq crewpool:{emails}:pending '{"v":1,"job":{"to":"a@example.com"}}'
//! ```
//!
//! or with plain commands: take an id, then push the record (a crash between the two
//! only wastes an id):
//!
//! ```text
//! INCR crewpool:{emails}:seq                      → 42
//! LPUSH crewpool:{emails}:pending '42|1|{"v":1,"job":{"to":"a@example.com"}}'
//! ```
//!
//! Every other transition (fetch, ack, extend, retry, dead-letter, release, abandon,
//! requeue, an operator's delete) is one of the scripts in `lua/`, each declaring the
//! keys it touches.
//!
//! # Security
//!
//! URLs are `redis://[user[:password]@]host[:port][/db]`; the ACL user and password
//! are sent on connect. `rediss://` (TLS, through rustls with the ring provider,
//! needing no system library) needs the `tls` feature; a private CA is trusted with
//! [`RedisConfig::tls_root_cert`](RedisConfig). The password never appears in `Debug`,
//! `Display`, errors or logs ([`RedisUrl`]).
//!
//! # Errors
//!
//! [`Error`]'s `Display` says what this crate was doing and where (`could not connect
//! to Redis at redis://crew:***@10.0.0.5:6379`, `Redis at …: fetching jobs failed`);
//! the cause is its [`source`](std::error::Error::source) (a [`ClientError`]: `no
//! reply within 5.0s`, `Connection refused`), so an application that prints the chain
//! shows each part once. [`Error::is_connection`] tells what retrying may fix from
//! what it will not ([`Error::is_auth`]: refused credentials).
//!
//! # Testing
//!
//! The `testing` feature adds [`testing::RedisServer`] (a private `redis-server` on a
//! free loopback port that tests can kill and restart) and the
//! `crewpool-redis-test-worker` binary the fault tests SIGKILL.
//!
//! [`Queue`]: crewpool_core::Queue
//! [`Queue::close`]: crewpool_core::Queue::close
//! [`Queue::depth`]: crewpool_core::Queue::depth

#![warn(clippy::unwrap_used, clippy::expect_used)]

mod admin;
mod config;
mod consumer;
mod core;
mod delivery;
mod error;
mod fetcher;
mod keys;
mod link;
mod options;
mod periodic;
mod queue;
mod registry;
mod scripts;
mod url;
mod wire;

#[cfg(feature = "testing")]
pub mod testing;

pub use admin::{
    Admin, DeathView, FiredTick, JobPage, JobState, JobView, LeaseView, MAX_PAGE, QueueAdmin,
    QueueOverview, ScheduleView, UniqueKeyView,
};
pub use config::{AckMode, RedisConfig, RetryPolicy};
pub use consumer::RedisConsumer;
pub use delivery::RedisDelivery;
pub use error::{ClientError, Error, Result};
pub use link::{ClientCounters, ServerInfo};
pub use options::{Enqueued, JobOptions, MAX_PRIORITY, Priorities};
pub use periodic::{MissedTicks, Schedule};
pub use queue::{DeadLetter, QueueStats, RedisQueue, ScheduleEntry};
pub use registry::RegisteredQueue;
pub use scripts::{ENQUEUE_LUA, PUSH_LUA};
pub use url::RedisUrl;
pub use wire::ENVELOPE_VERSION;

/// The README (the crate's registry page): its examples compile and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
