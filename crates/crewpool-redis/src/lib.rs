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
//!   [`enqueue_bulk`](RedisQueue::enqueue_bulk), and with [`JobOptions`]
//!   [`enqueue_with`](RedisQueue::enqueue_with): scheduled, prioritised, unique and
//!   expiring jobs; [`set_schedule`](RedisQueue::set_schedule) for periodic ones), the
//!   inspector
//!   ([`stats`](RedisQueue::stats), [`dead_letters`](RedisQueue::dead_letters),
//!   [`requeue_dead`](RedisQueue::requeue_dead)), the controls shared by every process
//!   ([`pause`](RedisQueue::pause), [`resume`](RedisQueue::resume),
//!   [`set_rate_limit`](RedisQueue::set_rate_limit) with a [`RateLimit`]), and a
//!   [`Queue`] for a crewpool pool.
//! - [`JobOptions`], [`Schedule`], [`Priorities`]: what a job asks for (a due time, a
//!   priority level, a uniqueness key, a start deadline), when a periodic job runs, and
//!   in which order a worker takes the levels.
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
//! the pool acknowledges a job that returns `Ok`, retries one that fails or panics and
//! dead-letters it once out of attempts, and releases unstarted ones when it stops.
//! One [`RetryPolicy`] decides every retry: the queue's ([`RedisConfig::retry`]), or
//! the pool's own if it was built with one, which then replaces the queue's in this
//! process (for jobs whose worker died too). A job runs in whichever process takes it;
//! `spawn` returns its id, and once the queue knows the result type
//! ([`with_results`](RedisQueue::with_results)), `submit` returns a handle that
//! resolves with its outcome wherever it ran (see [Results](#results)). The running
//! pool's results stream sees every outcome either way.
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
//!   [`Durability::replicated`] makes enqueues (and optionally acknowledgements) wait
//!   with `WAIT` until that many replicas have them, or fail with
//!   [`Error::NotReplicated`]: then no acknowledged enqueue is lost in a failover.
//! - **Redis Cluster and Sentinel.** `redis+cluster://h1:p1,h2:p2,...` uses the redis
//!   crate's cluster client: every script touches the keys of one queue, which share
//!   the hash tag `{queue}` and so one slot; different queues spread over the masters;
//!   `MOVED` and `ASK` (a slot migration) are followed.
//!   `redis+sentinel://s1:p1,s2:p2/<master>[/db]` connects to the master the Sentinels
//!   name and asks them again after a call fails the way a failover makes it fail.
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
//!   extended once its settlement is handed to Redis. Tokens are unique across a
//!   failover: they never fall below Redis's clock in microseconds, so a promoted
//!   replica that lacks the last increments of the counter still issues new ones (as
//!   long as the two servers' clocks differ by less than the failover takes).
//! - **Job ids are unique, across failovers too.** Every job added gets an id no other
//!   job of its queue had: results (`result:<id>`), uniqueness keys, inspection and
//!   deletion by id reach that job only. Ids increase, and the jobs of one script
//!   call (a bulk enqueue's up to 8,000 per round trip) get consecutive ids; they
//!   never fall below Redis's clock in microseconds, so a promoted replica that lacks
//!   the last increments of the id counter still gives new ones. This holds as long
//!   as the two servers' clocks differ by less than the failover takes (seconds), and
//!   the counter is not ahead of the clock: ids given faster than one per microsecond
//!   (bulk enqueues can: over a million jobs a second) put it ahead by the excess,
//!   which the clock makes up at the same pace once they stop; a failover within
//!   that time may give ids again. Ids are about 1.8 × 10^15 today and stay below 2^53
//!   (exact in every language's numbers) until the year 2255.
//! - **Retries and dead letters.** `retry` and [`RedisDelivery::fail`] schedule the
//!   next attempt through a delayed set (exponential backoff from the
//!   [`RetryPolicy`]); after the last attempt the job goes to the dead-letter list
//!   with its last error ([`dead_letters`](RedisQueue::dead_letters),
//!   [`requeue_dead`](RedisQueue::requeue_dead)), bounded by count
//!   ([`dead_letter_limit`](RedisConfig::dead_letter_limit), 10,000) and by Redis
//!   memory ([`dead_letter_bytes`](RedisConfig::dead_letter_bytes), 64 MiB), the oldest
//!   dropped first. A record that breaks the wire format or an envelope that does not
//!   decode is dead-lettered with the reason, and the worker goes on.
//! - **Order.** FIFO from one producer within a priority level: jobs are fetched oldest
//!   first. Retries go to the back when due; scheduled jobs when due, jobs of dead
//!   workers and released jobs go to the front. Levels are taken in the order of
//!   [`RedisConfig::priorities`].
//! - **Connection loss** (a Redis restart, a dropped connection) is survived: the
//!   connections reconnect with exponential backoff (50 ms to 2 s), a connection
//!   whose call timed out (a peer gone silent, half-open TCP) is replaced, and every
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
//!   no job. Lease deadlines, retries and scheduled jobs wake it by a local timer set
//!   from the earliest deadline Redis reports; jobs of other priority levels and jobs
//!   scheduled earlier than that wake it through the wake marker.
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
//!   call (group commit, up to 4,000); with the default [`AckMode::Queued`] `ack`
//!   returns before the flush ([`AckMode::Confirmed`] waits for it). [`enqueue_bulk`](RedisQueue::enqueue_bulk) sends 1,000 jobs per
//!   `LPUSH`, 8 per round trip. The heartbeat is one call per process per interval,
//!   naming each lease once, not each job.
//! - **Little work per job in Redis.** A job is one list element from enqueue to
//!   fetch, and one hash field while leased: a fetch costs Redis a list pop and a hash
//!   write per job, an acknowledgement a hash delete; the lease bookkeeping (its
//!   deadline, its count) is per batch. Measured by
//!   `cargo bench -p crewpool-redis --bench throughput` (see the README).
//!
//! # Scheduled jobs
//!
//! [`enqueue_at`](RedisQueue::enqueue_at) and [`enqueue_in`](RedisQueue::enqueue_in)
//! (and [`enqueue_bulk_at`](RedisQueue::enqueue_bulk_at),
//! [`enqueue_bulk_in`](RedisQueue::enqueue_bulk_in), or [`JobOptions::at`] and
//! [`JobOptions::delay`]) add a job that waits in the queue's `scheduled` set until it
//! is due. Times are Redis's: a delay is added to Redis's clock by the enqueue script,
//! and an absolute time is the instant you chose, stored as given; no producer's clock
//! is involved. Due jobs are moved to the **front** of their level's list inside Redis,
//! by the housekeeping of every fetch (up to 1,000 per fetch), not by polling from each
//! process: an idle worker's fetcher sleeps until the earliest due time Redis reported
//! (its wait still renewed every [`max_block`](RedisConfig::max_block)), and a job
//! scheduled before everything already scheduled wakes every idle fetcher at once, so
//! it re-arms its timer. A scheduled job is in Redis like any other: it survives
//! restarts of the producer, the workers and (with persistence) Redis, and counts in
//! [`QueueStats::scheduled`] and the [`Admin`]'s `scheduled` state. Jobs due at the same
//! millisecond start in no particular order.
//!
//! ```
//! use std::time::{Duration, SystemTime};
//! use crewpool_core::{Consumer, Delivery, Queue};
//! use crewpool_redis::{RedisConfig, RedisQueue};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let server = crewpool_redis::testing::RedisServer::start();
//! # let url = server.url();
//! let queue = RedisQueue::<String>::connect(RedisConfig::new(url.as_str(), "mail")).await?;
//! queue.enqueue_in(&"in 200 ms".to_owned(), Duration::from_millis(200)).await?;
//! let tomorrow = SystemTime::now() + Duration::from_secs(86_400);
//! queue.enqueue_bulk_at(["a".to_owned(), "b".to_owned()], tomorrow).await?;
//! assert_eq!(queue.stats().await?.scheduled, 3);
//!
//! let mut consumer = queue.consumer()?;
//! let received = consumer.next().await.expect("a job"); // 200 ms later
//! assert_eq!(received.envelope.job, "in 200 ms");
//! received.delivery.ack().await?;
//! # Ok(()) }
//! ```
//!
//! # Periodic jobs
//!
//! [`set_schedule`](RedisQueue::set_schedule) keeps a [`Schedule`] in Redis, a cron
//! expression (UTC, parsed by the `croner` crate) or a fixed interval, with the job to
//! enqueue at each tick. Every worker process fires the queue's schedules (unless
//! [`RedisConfig::run_schedules`] is off): it computes the next tick, sleeps until then
//! by Redis's clock, and calls a script that enqueues the tick's job only if that tick
//! is later than the last one fired, atomically, so **each tick makes exactly one job**
//! however many processes run, with no leader to elect or lose. A change or removal
//! reaches running workers at once (it wakes them, and every fetch reports the
//! schedules' version); a change applies from then on, and no tick before a schedule
//! was set ever fires.
//!
//! **Missed ticks** (every worker or Redis was down at a tick's time):
//! [`MissedTicks::FireLatest`] (the default) fires the most recent missed tick once, as
//! soon as a worker runs, and drops the older ones; [`MissedTicks::SkipAfter`] drops a
//! tick not fired within its grace. Either way no tick fires twice and a long outage
//! does not release a burst of jobs. [`schedules`](RedisQueue::schedules) and
//! [`QueueAdmin::schedules`] list them with their last and next ticks,
//! [`QueueAdmin::fired_ticks`] the last 1,000 ticks fired and the job each made;
//! [`remove_schedule`](RedisQueue::remove_schedule) removes one. A tick's job carries
//! `"schedule"` and `"tick"` in its envelope.
//!
//! ```
//! use std::time::Duration;
//! use crewpool_redis::{MissedTicks, RedisConfig, RedisQueue, Schedule};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let server = crewpool_redis::testing::RedisServer::start();
//! # let url = server.url();
//! let queue = RedisQueue::<String>::connect(RedisConfig::new(url.as_str(), "reports")).await?;
//! let nightly = Schedule::cron("30 2 * * *")?.missed(MissedTicks::SkipAfter(Duration::from_secs(600)));
//! queue.set_schedule("nightly-report", &nightly, &"report".to_owned()).await?;
//! queue.set_schedule("heartbeat", &Schedule::every(Duration::from_secs(30)), &"ping".to_owned()).await?;
//! let names: Vec<String> = queue.schedules().await?.into_iter().map(|s| s.name).collect();
//! assert_eq!(names, ["heartbeat", "nightly-report"]);
//! queue.remove_schedule("heartbeat").await?;
//! // Worker processes (anything with a consumer of this queue) fire the ticks.
//! # Ok(()) }
//! ```
//!
//! # Priorities
//!
//! A queue has **priority levels** 0 to 9 ([`JobOptions::priority`]); plain jobs are
//! at level 0. Each level is a list of the queue (level 0's is the `pending` list that
//! producers without options push to), and every worker takes jobs of every level in
//! one of two orders chosen per process with [`RedisConfig::priorities`]:
//! [`Priorities::strict`] (the default: the highest non-empty level first) or
//! [`Priorities::weighted`] (in proportion to weights, by stride scheduling with its
//! state in Redis, shared by every process; **no level starves**: see [`Priorities`]
//! for the bound). Either way one fetch is one script call, whatever the batch.
//!
//! Why levels in one queue rather than several queues with weights (asynq's and
//! Sidekiq's model): a script can only touch keys of one Redis Cluster slot, and a
//! queue's keys share one; choosing among several queues would take a round trip per
//! queue, or give up Cluster. Levels keep the fetch at one call, let the weighted order
//! see every level's length at once, and keep jobs of one kind in one queue. For
//! separate pools of workers, use separate queues.
//!
//! ```
//! use crewpool_core::{Consumer, Delivery, Queue};
//! use crewpool_redis::{JobOptions, Priorities, RedisConfig, RedisQueue};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let server = crewpool_redis::testing::RedisServer::start();
//! # let url = server.url();
//! let config = RedisConfig::new(url.as_str(), "mail")
//!     .priorities(Priorities::weighted([(9, 10), (0, 1)]));
//! let queue = RedisQueue::<String>::connect(config).await?;
//! queue.enqueue(&"newsletter".to_owned()).await?; // level 0
//! queue.enqueue_with(&"password reset".to_owned(), &JobOptions::new().priority(9)).await?;
//!
//! let mut consumer = queue.consumer()?;
//! let received = consumer.next().await.expect("a job");
//! assert_eq!(received.envelope.job, "password reset");
//! received.delivery.ack().await?;
//! # Ok(()) }
//! ```
//!
//! # Unique jobs
//!
//! [`JobOptions::unique`] gives a job a uniqueness key and a TTL: while a job enqueued
//! with that key is pending, scheduled, waiting for a retry or running, enqueueing
//! another with the same key adds nothing and returns the first job's id
//! ([`Enqueued::Duplicate`]), decided atomically by the enqueue script. The key is
//! released when its job is acknowledged, dead-lettered (by a worker, by its retry
//! policy, by an expired lease out of attempts, or as expired) or deleted by an
//! operator, and at its TTL at the latest (a safety net against a key held forever,
//! BullMQ's stray-key failure): past the TTL, a job still waiting no longer holds it.
//! A retry or a worker that died keeps the key held: the job is still the same job.
//! Keys are listed by [`QueueAdmin::unique_keys`].
//!
//! ```
//! use std::time::Duration;
//! use crewpool_redis::{Enqueued, JobOptions, RedisConfig, RedisQueue};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let server = crewpool_redis::testing::RedisServer::start();
//! # let url = server.url();
//! let queue = RedisQueue::<u64>::connect(RedisConfig::new(url.as_str(), "sync")).await?;
//! let once = JobOptions::new().unique("sync:account-7", Duration::from_secs(600));
//! let first = queue.enqueue_with(&7, &once).await?;
//! let second = queue.enqueue_with(&7, &once).await?;
//! assert!(first.is_added());
//! assert_eq!(second, Enqueued::Duplicate(first.id()));
//! # Ok(()) }
//! ```
//!
//! # Deadlines
//!
//! [`JobOptions::start_by`] (an instant) or [`JobOptions::start_within`] (a window
//! after the job is due, on Redis's clock) give a job a start deadline: a job no worker
//! has started by then is dead-lettered with the reason `expired` instead of running,
//! counted in [`QueueOverview::missed_deadline`] (not as a failure). Checked by Redis's
//! clock when a fetch takes the job (the fetch reports it), and again when a job fetched
//! ahead is handed to a worker. The deadline is about starting: a job that started in
//! time runs to the end.
//!
//! ```
//! use std::time::{Duration, SystemTime};
//! use crewpool_core::{Consumer, Delivery, Queue};
//! use crewpool_redis::{JobOptions, RedisConfig, RedisQueue};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let server = crewpool_redis::testing::RedisServer::start();
//! # let url = server.url();
//! let queue = RedisQueue::<String>::connect(RedisConfig::new(url.as_str(), "otp")).await?;
//! let too_late = JobOptions::new().start_by(SystemTime::now() - Duration::from_secs(1));
//! queue.enqueue_with(&"code 1234".to_owned(), &too_late).await?;
//! queue.enqueue_with(&"code 5678".to_owned(), &JobOptions::new().start_within(Duration::from_secs(30))).await?;
//!
//! let mut consumer = queue.consumer()?;
//! let received = consumer.next().await.expect("a job");
//! assert_eq!(received.envelope.job, "code 5678");
//! received.delivery.ack().await?;
//! assert_eq!(queue.dead_letters(1).await?[0].reason, "expired");
//! # Ok(()) }
//! ```
//!
//! # Results
//!
//! [`with_results::<T, E>()`](RedisQueue::with_results) declares the type of the
//! queue's job results (a pool's `Worker::Output` and `Worker::Error`, both serde
//! types); declare it in the producer **and** in every worker process. Then a pool's
//! `submit` (and `submit_timeout`) on the queue returns a `JobHandle` that resolves
//! with the job's output, or its final error once its retries are spent (`Failed`,
//! `Panicked`, `TimedOut`), when any worker process, anywhere, finishes it:
//!
//! - the job's envelope carries the producer's **reply channel**, one per queue handle;
//! - the worker that finishes the job stores the outcome as JSON under
//!   `result:<id>` with [`result_ttl`](RedisConfig::result_ttl) (default 1 hour)
//!   **before** it acknowledges or dead-letters the job (one script,
//!   `lua/reply.lua`), and pushes it to `replies:<channel>` (same TTL). A store that
//!   fails (Redis restarting, say) is tried again with backoff for up to a lease's
//!   length; failing that, the job is not settled and runs again, so no job is
//!   settled without its result;
//! - the producer's listener, blocked in `BLPOP` on its channel (started with its first
//!   `submit`), wakes at once and resolves the handle: no polling.
//!
//! A producer that wants every result of what it submitted, without keeping a handle
//! per job, enqueues with [`JobOptions::result`] and reads
//! [`results::<T, E>()`](RedisQueue::results), a [`ResultStream`] of `(id, outcome)`
//! in the order they come.
//!
//! A handle is awaited with a timeout with `tokio::time::timeout(duration, handle)`;
//! awaiting it again later still gets the result. A producer that stops waiting (its
//! handle dropped) or dies leaves nothing behind beyond the TTL: the result and the
//! channel expire in Redis, and the producer forgets a handle's waiter once its result
//! came or its own `result_ttl` passed. A retry or an interruption stores nothing (the
//! next attempt answers). Jobs dead-lettered outside a pool's run (an expired lease out
//! of attempts, a record that does not decode, a missed start deadline) store no
//! result: their handles wait until their timeout. Without `with_results`, `submit` is
//! refused with [`Error::Config`] and the job comes back (through an `AnyPool` too).
//!
//! ```
//! use crewpool_redis::{RedisConfig, RedisQueue};
//! use crewpool_runtime::PoolBuilder;
//!
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let server = crewpool_redis::testing::RedisServer::start();
//! # let url = server.url();
//! // The producer (and, the same way, every worker process).
//! let queue = RedisQueue::<u32>::connect(RedisConfig::new(url.as_str(), "squares"))
//!     .await?
//!     .with_results::<u64, String>();
//! let pool = PoolBuilder::new()
//!     .workers(4)
//!     .queue(queue)
//!     .build(|n: u32| async move { Ok::<_, String>(u64::from(n) * u64::from(n)) })?;
//! let handle = pool.submit(12).await?;
//! let square = tokio::time::timeout(std::time::Duration::from_secs(30), handle).await??;
//! assert_eq!(square, 144);
//! pool.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! # Tracing
//!
//! A job can carry **headers** from its producer to its worker, a W3C `traceparent`
//! at least, so the producer's span is the parent of the worker's `job` span: set them
//! per job with [`JobOptions::header`], or for every job a queue handle enqueues
//! (`enqueue*`, a pool's `spawn` and `submit`) with a [`Propagator`]
//! ([`RedisConfig::propagator`]), whose `inject` writes the current trace context.
//! In the worker, a job with headers runs its `job` span as the child of a `producer`
//! span (fields `queue`, `id`, `traceparent`) that stands for the producer's; the
//! propagator's `extract` links that span to the remote context (with OpenTelemetry:
//! `tracing-opentelemetry`'s `set_parent`), so traces show the job under the request
//! that enqueued it. Jobs without headers cost nothing extra and run as before.
//!
//! ```
//! use crewpool_redis::{JobOptions, RedisConfig, RedisQueue};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let server = crewpool_redis::testing::RedisServer::start();
//! # let url = server.url();
//! let queue = RedisQueue::<String>::connect(RedisConfig::new(url.as_str(), "mail")).await?;
//! // The trace context of the request being served (from your OpenTelemetry context).
//! let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
//! let options = JobOptions::new().header("traceparent", traceparent);
//! queue.enqueue_with(&"welcome".to_owned(), &options).await?;
//! # Ok(()) }
//! ```
//!
//! # Pause and resume
//!
//! [`pause`](RedisQueue::pause) stops every worker process of a queue from taking jobs,
//! at once and without polling; [`resume`](RedisQueue::resume) starts them all again at
//! once (also [`QueueAdmin::pause`], `crewpool pause QUEUE`, and the dashboard). The
//! flag is in Redis, checked by the fetch script: paused workers finish the jobs they
//! hold (their leases are extended and their acknowledgements taken, and jobs a
//! process fetched ahead still run), producers go on enqueueing, and the housekeeping
//! goes on (jobs of dead workers go back to the queue, due retries and scheduled jobs
//! become pending). An idle worker's fetcher blocks in Redis on the `resumed` list,
//! which the pause emptied and the resume fills, so it wakes the moment the queue is
//! resumed; its wait is renewed every [`max_block`](RedisConfig::max_block) as usual.
//! [`QueueStats::paused`] and [`QueueOverview::paused`] tell.
//!
//! ```
//! use crewpool_core::{Consumer, Delivery, Queue};
//! use crewpool_redis::{RedisConfig, RedisQueue};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let server = crewpool_redis::testing::RedisServer::start();
//! # let url = server.url();
//! let queue = RedisQueue::<String>::connect(RedisConfig::new(url.as_str(), "exports")).await?;
//! assert!(queue.pause().await?); // every process, from its next fetch on
//! queue.enqueue(&"export 1".to_owned()).await?;
//! assert!(queue.stats().await?.paused);
//!
//! let mut consumer = queue.consumer()?;
//! let waiting = tokio::time::timeout(std::time::Duration::from_millis(200), consumer.next());
//! assert!(waiting.await.is_err()); // nothing taken while paused
//! queue.resume().await?;
//! let received = consumer.next().await.expect("a job"); // at once
//! received.delivery.ack().await?;
//! # Ok(()) }
//! ```
//!
//! # Rate limits
//!
//! [`set_rate_limit`](RedisQueue::set_rate_limit) gives a queue a [`RateLimit`]: at
//! most N job starts per period, **however many processes consume it**. The limit is
//! kept in Redis and enforced by the fetch script with a sliding window (Redis's
//! clock): every fetch logs how many jobs it leased and when, and takes at most what
//! the last period left. A fetch the window holds back returns how long until its
//! oldest start leaves it, and the worker sleeps exactly that long rather than asking
//! again. Jobs count when they are leased (for a process that fetches ahead, a little
//! before they start). Remove it with `set_rate_limit(None)`; [`QueueStats::rate_limit`]
//! and [`QueueOverview::rate_limit`] show it.
//!
//! ```
//! use std::time::Duration;
//! use crewpool_redis::{RateLimit, RedisConfig, RedisQueue};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let server = crewpool_redis::testing::RedisServer::start();
//! # let url = server.url();
//! let queue = RedisQueue::<String>::connect(RedisConfig::new(url.as_str(), "sms")).await?;
//! // The provider takes 30 messages a second from all our workers together.
//! let limit = RateLimit::new(30, Duration::from_secs(1))?;
//! queue.set_rate_limit(Some(limit)).await?;
//! assert_eq!(queue.stats().await?.rate_limit, Some(limit));
//! # Ok(()) }
//! ```
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
//! | `seq` | string | the last job id given (see `lua/ids.lua`: never below Redis's clock in µs) |
//! | `pending` | list | level 0's records waiting; producers `LPUSH`, workers take from the right; may hold the wake marker `~wake` at its right end (never a job) |
//! | `pending:<p>` | list | the records waiting at priority level `p` (1 to 9), the same way |
//! | `levels` | set | the levels other than 0 ever used (so fetches look only at those) |
//! | `priority` | hash | the weighted order's state: `v` and one pass per level |
//! | `leased` | hash | `<lease>:<n>` → the record of the n-th job of a fetch, while a worker owns it |
//! | `active` | sorted set | lease → deadline (ms since the epoch, Redis clock) |
//! | `leases` | hash | `<lease>` → how many of its jobs are still leased; `<lease>:n` → how many it took; `<lease>:t` → when it was taken (ms) |
//! | `fence` | string | the last lease number given (see `lua/fence.lua`: never below Redis's clock in µs) |
//! | `scheduled` | sorted set | record → due time (ms): jobs enqueued for later |
//! | `delayed` | sorted set | record → due time (ms): retries waiting for their backoff |
//! | `unique` | hash | uniqueness key → the id of the job holding it |
//! | `unique:ttl` | sorted set | uniqueness key → when it lapses (ms) |
//! | `dead` | list | dead letters, newest first, within the dead-letter bounds: `{"record":…,"reason":…,"attempt":…,"level":p,"at":ms}` (no `attempt` when the record has no valid one, no `level` for level 0) |
//! | `stats` | hash | totals since the queue began: `succeeded` (jobs acknowledged, by `ack.lua`), `failed` (failed attempts, by `retry.lua` and `bury.lua`), `expired` (jobs whose lease ran out, by `fetch.lua`), `missed_deadline` (jobs dead-lettered as `expired`, by `bury.lua`) |
//! | `schedules` | hash | periodic schedule name → `{"version":n,"since":ms,"every_ms":…` or `"cron":…,"level":p,"missed":"latest"\|"skip","grace_ms":…,"start_within_ms":…,"job":<the job>}` |
//! | `schedules:ticks` | hash | schedule name → the last tick fired or passed (ms) |
//! | `schedules:version` | string | incremented by every change of a schedule |
//! | `schedules:fired` | list | the last 1,000 ticks fired, newest first: `{"schedule":…,"tick":ms,"id":…,"at":ms}` |
//! | `control` | hash | `paused` → when the queue was paused (ms), while it is; `rate_jobs`, `rate_ms` → the rate limit, while set |
//! | `resumed` | list | the wake marker `~wake` after a resume, which paused fetchers block on (`BLMOVE resumed resumed LEFT LEFT`); emptied by a pause |
//! | `result:<id>` | string | job `id`'s final outcome, kept for `result_ttl`: `{"ok":<output>}`, `{"failed":<error>}`, `{"panicked":"<message>"}`, `"timed_out"` or `"cancelled"` |
//! | `replies:<channel>` | list | a producer's reply channel: `<id>\|<outcome>` entries, expiring after `result_ttl` |
//! | `rate` | sorted set | the rate limit's window: `<lease>:<jobs leased>` → when leased (ms); entries older than the period dropped, the key expires after it |
//!
//! In `leased`, `scheduled` and `delayed` (everywhere but its level's list), a record
//! of level 1 to 9 carries its level as a prefix: `<level>:<id>|<attempt>|<envelope>`.
//!
//! One key per prefix spans queues, and so has no hash tag: **`<prefix>:queues`**, a
//! sorted set queue name → when a process last connected to it (ms, that process's
//! clock). [`RedisQueue::connect`] adds its queue; [`Admin::queues`] lists them, so
//! tools find every queue without `SCAN`ning the keyspace. It is written with plain
//! commands only, never inside a queue's scripts.
//!
//! Each fetch takes a new lease number from `fence`: one more than the last, and never
//! below Redis's clock in microseconds, so a replica promoted by a failover, which may
//! lack the last increments, still issues numbers no delivery had. The field `<lease>:<n>` is the
//! delivery's fencing token: a settlement deletes it only if it is still there, and a
//! lease that expires is taken back whole (its fields deleted, its jobs pushed back),
//! so a late settlement finds nothing to change.
//!
//! The **envelope** (version 1) is a JSON object `{"v":1,"at":<ms>,"job":<the job>}`;
//! `job` is the serde JSON form of the job type, and the optional `at` is when the
//! producer enqueued it (ms since the Unix epoch, the producer's clock; inspectors
//! compute the age of the oldest pending job from it). Optional fields the scripts
//! write: `"start_by":<ms>` (the start deadline), `"unique":"<key>"` (the uniqueness
//! key it holds), `"schedule":"<name>"` and `"tick":<ms>` (the periodic tick that made
//! it), `"reply":"<channel>"` (the producer waits for the result on `replies:<channel>`),
//! `"headers":{"traceparent":"00-…-…-01",…}` (an object of strings from the producer:
//! its trace context and whatever else it sends along; see [Tracing](#tracing)).
//! **Versioning rule**: a field that readers of version 1 may ignore without
//! running the job wrongly is added within version 1 (readers ignore fields they do not
//! know); anything else takes a new `v`. An envelope with another `v`, a `job` that does
//! not decode, or a malformed record is dead-lettered with the reason. (A worker of an
//! earlier release ignores `start_by` and `unique`, so it runs a job past its deadline
//! and never releases its key before the TTL: run one release across a queue's
//! workers before using these options.)
//!
//! Job ids are taken by the scripts with `lua/ids.lua`'s helpers, which every script
//! that adds jobs runs first: one more than `seq`, and never below Redis's clock in
//! microseconds (see [Guarantees](#guarantees)).
//!
//! **Enqueueing from another language**, either with one script call (atomic; returns
//! the first id and the queue length) — the script is [`ENQUEUE_LUA`], shipped as
//! `lua/ids.lua` followed by `lua/enqueue.lua` (send the two files' text as one
//! script) — taking any number of envelopes:
//!
//! ```text
//! EVAL <ids.lua + enqueue.lua> 2 crewpool:{emails}:seq crewpool:{emails}:pending '{"v":1,"job":{"to":"a@example.com"}}'
//! → 1796279676208143, 1   (the first id, the pending count)
//! ```
//!
//! or take ids with [`RESERVE_LUA`] (`lua/ids.lua` followed by `lua/reserve.lua`;
//! the count, here 1, then the first of that many ids), then push the records with
//! plain commands (a crash between the two only wastes ids):
//!
//! ```text
//! EVAL <ids.lua + reserve.lua> 1 crewpool:{emails}:seq 1   → 1796279676208190
//! LPUSH crewpool:{emails}:pending '1796279676208190|1|{"v":1,"job":{"to":"a@example.com"}}'
//! ```
//!
//! (A plain `INCR` of `seq` also gives a new id, but not across a failover that lost
//! the counter's last increments.)
//!
//! **With options** (a priority level, a due time, a start deadline, a uniqueness key)
//! use [`PUSH_LUA`], shipped as `lua/ids.lua` followed by `lua/push.lua`, with seven
//! keys: `seq`, `pending`, the
//! level's list (`pending` or `pending:<p>`), `scheduled`, `levels`, `unique`,
//! `unique:ttl`; then the level (0 to 9), the due time (`""` now, `at:<ms since the
//! epoch>`, `in:<ms>` on Redis's clock), the start deadline (`""`, `by:<ms since the
//! epoch>`, `within:<ms after due>`), the uniqueness TTL in ms (`""`: not unique), and
//! the jobs: each envelope, preceded by its uniqueness key when the TTL is set. It
//! returns one number per job: its id, or minus the id of the job that holds its key.
//! It writes `start_by` and `unique` into the envelopes itself, and pushes the wake
//! marker when idle workers must look (a job of another level than 0, or due before
//! everything scheduled so far):
//!
//! ```text
//! EVAL <ids.lua + push.lua> 7 crewpool:{emails}:seq crewpool:{emails}:pending crewpool:{emails}:pending
//!      crewpool:{emails}:scheduled crewpool:{emails}:levels crewpool:{emails}:unique
//!      crewpool:{emails}:unique:ttl 0 in:60000 "" 3600000 welcome:a '{"v":1,"job":{"to":"a@example.com"}}'
//! → 1796279676208211   (a second call with the same key within the hour → -1796279676208211)
//! ```
//!
//! Periodic schedules are written with `lua/schedule.lua` (`set` or `remove`, which
//! stamp the version and the start) and fired by the workers with `lua/fire.lua`; a
//! tool can list them by reading the `schedules` hash.
//!
//! A tool pauses or resumes a queue, or sets its rate limit, with `lua/control.lua`
//! after `lua/levels.lua`'s helpers (keys `control`, `resumed`, `pending`, `rate`; `pause`, `resume`, or `limit <jobs>
//! <ms>`, `limit 0 1` to remove it); setting the `control` fields by hand would not
//! wake paused workers.
//!
//! Every other transition (fetch, ack, extend, retry, dead-letter, release, abandon,
//! requeue, an operator's delete) is one of the scripts in `lua/`, each declaring the
//! keys it touches. Jobs of another level than 0, due scheduled jobs and removed
//! schedules are announced to idle workers by the **wake marker** `~wake` (see
//! `lua/levels.lua`): pushed to the right end of `pending` while it is empty, it makes
//! every fetcher blocked there return; fetches drop it and never deliver it. (Workers
//! of an earlier release would dead-letter it as a malformed record: upgrade workers
//! before producers use levels or schedules.)
//!
//! # Security
//!
//! URLs are `redis://[user[:password]@]host[:port][/db]` (or the Cluster and
//! Sentinel forms above); the ACL user and password are sent on connect. `rediss://` (TLS, through rustls with the ring provider,
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
//! free loopback port that tests can kill and restart), [`testing::RedisCluster`]
//! (masters and replicas joined into a Redis Cluster, slot migration, node kills),
//! [`testing::RedisSentinels`] (a master, a replica and three Sentinels, failover),
//! [`testing::net`] (network namespaces, veth links, a delaying, holding or stalling
//! TCP proxy) and the `crewpool-redis-test-worker` binary the fault tests SIGKILL.
//!
//! [`Queue`]: crewpool_core::Queue
//! [`Queue::close`]: crewpool_core::Queue::close
//! [`Queue::depth`]: crewpool_core::Queue::depth

#![warn(clippy::unwrap_used, clippy::expect_used)]

mod acker;
mod admin;
mod backoff;
mod config;
mod conn;
mod consumer;
mod control;
mod counters;
mod delivery;
mod error;
mod fetcher;
mod keys;
mod lease;
mod link;
mod options;
mod periodic;
mod queue;
mod registry;
mod results;
mod scripts;
mod settler;
mod trace;
mod url;
mod wire;

#[cfg(feature = "testing")]
pub mod testing;

pub use admin::{
    Admin, DeathView, FiredTick, JobPage, JobState, JobView, LeaseView, MAX_PAGE, QueueAdmin,
    QueueOverview, ScheduleView, UniqueKeyView,
};
pub use config::{AckMode, Durability, RedisConfig};
pub use consumer::RedisConsumer;
pub use control::RateLimit;
pub use counters::ClientCounters;
/// The retry policy, shared with every crewpool crate (`crewpool_core::RetryPolicy`).
pub use crewpool_core::RetryPolicy;
pub use delivery::RedisDelivery;
pub use error::{ClientError, Error, Result};
pub use link::ServerInfo;
pub use options::{Enqueued, JobOptions, MAX_PRIORITY, Priorities};
pub use periodic::{MissedTicks, Schedule};
pub use queue::{DeadLetter, QueueStats, RedisQueue, ScheduleEntry};
pub use registry::RegisteredQueue;
pub use results::ResultStream;
pub use scripts::{ENQUEUE_LUA, PUSH_LUA, RESERVE_LUA};
pub use trace::Propagator;
pub use url::RedisUrl;
pub use wire::{ENVELOPE_VERSION, Headers};

/// The README (the crate's registry page): its examples compile and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
