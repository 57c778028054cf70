//! How a queue connects and behaves: URL, names, leases, batches, limits, retries.

use std::time::Duration;

use crewpool_core::RetryPolicy;

use crate::{Error, Priorities, RedisUrl};

/// The configuration of a [`RedisQueue`](crate::RedisQueue): where Redis is, which
/// queue, and the lease, batch, size and retry settings.
///
/// Producers and workers of one queue must agree on the URL's database, the
/// [`prefix`](RedisConfig::prefix) and the queue name; the other settings are per
/// process.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use crewpool_redis::{RedisConfig, RetryPolicy};
///
/// let config = RedisConfig::new("redis://worker:s3cret@10.0.0.5:6379/0", "emails")
///     .prefix("myapp")
///     .lease(Duration::from_secs(10))
///     .batch_size(200)
///     .retry(RetryPolicy::exponential(8).base_delay(Duration::from_secs(1)).max_delay(Duration::from_secs(600)));
/// assert!(!format!("{config:?}").contains("s3cret"));
/// ```
#[derive(Debug, Clone)]
pub struct RedisConfig {
    pub(crate) url: RedisUrl,
    pub(crate) queue: String,
    pub(crate) prefix: String,
    pub(crate) lease: Duration,
    pub(crate) heartbeat: Option<Duration>,
    pub(crate) batch_size: usize,
    /// `None`: adapts to the pace (see `fetcher::Pace`).
    pub(crate) prefetch: Option<usize>,
    pub(crate) max_payload: usize,
    pub(crate) retry: RetryPolicy,
    pub(crate) dead_letter_limit: usize,
    pub(crate) dead_letter_bytes: usize,
    pub(crate) ack_mode: AckMode,
    pub(crate) durability: Durability,
    pub(crate) response_timeout: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) connect_retry: Duration,
    pub(crate) max_block: Duration,
    pub(crate) priorities: Priorities,
    pub(crate) run_schedules: bool,
    pub(crate) result_ttl: Duration,
    pub(crate) propagator: Option<crate::trace::PropagatorSlot>,
    #[cfg(feature = "tls")]
    pub(crate) tls_root_cert: Option<Vec<u8>>,
}

/// When [`Delivery::ack`](crewpool_core::Delivery::ack) returns.
///
/// Acknowledgements are always grouped: every ack waiting when a flush starts goes to
/// Redis in one script call (group commit), so a busy pool pays one round trip per
/// batch, not per job. The mode decides whether `ack` waits for that flush.
///
/// The default is [`Queued`](AckMode::Queued): a worker takes its next job while its
/// last acknowledgement is on its way, so a round trip to Redis is not paid once per
/// job per worker (over a network with 2 ms round trips, `Confirmed` keeps a worker
/// waiting about that long after every job). Nothing is lost either way: a pool's
/// shutdown and a consumer's end wait for every queued acknowledgement to be flushed,
/// and a job whose acknowledgement never reached Redis runs again once its lease
/// expires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AckMode {
    /// `ack` returns once Redis recorded it, and fails with
    /// [`Error::LeaseLost`](crate::Error::LeaseLost) when the lease was lost. For
    /// callers that act on the outcome of each acknowledgement, or few long jobs.
    Confirmed,
    /// `ack` returns once the acknowledgement is queued for the next flush (the
    /// default). A process that dies before the flush leaves those jobs leased, so they
    /// run again after their lease expires (at-least-once), and a lost lease is only
    /// logged and counted ([`ClientCounters::stale`](crate::ClientCounters::stale)).
    /// With [`Durability::Replicated`]`{ acks: true, .. }` the flush still waits for
    /// the replicas; `ack` does not.
    #[default]
    Queued,
}

/// How far a write must have gone before the call that made it returns.
///
/// Redis replicates asynchronously: a master that dies before its replicas received a
/// write takes the write with it, and the replica promoted in its place never had it.
/// [`Durability::replicated`] closes that window for enqueues (and, optionally,
/// acknowledgements) with Redis's `WAIT`: the call returns only once that many replicas
/// confirmed the write, at the cost of a replication round trip per call (batched
/// calls share it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Durability {
    /// A write is done once the master ran it (what Redis's persistence settings make
    /// of it on that server). A failover may lose the last writes.
    #[default]
    Written,
    /// A write is done once `replicas` replicas confirmed it (`WAIT`), within
    /// `timeout`; otherwise the call fails with [`Error::NotReplicated`]: the write was
    /// made on the master, but may be lost in a failover.
    Replicated {
        /// How many replicas must confirm.
        replicas: u32,
        /// How long to wait for them.
        timeout: Duration,
        /// Whether acknowledgements wait too (else only enqueues do; a lost
        /// acknowledgement only reruns a job).
        acks: bool,
    },
}

impl Durability {
    /// Enqueues return once `replicas` replicas have the job (at most `timeout`).
    pub fn replicated(replicas: u32, timeout: Duration) -> Self {
        Durability::Replicated {
            replicas,
            timeout,
            acks: false,
        }
    }

    /// Acknowledgements wait for the replicas too (no rerun after a failover of the
    /// jobs whose acknowledgement returned).
    #[must_use]
    pub fn with_acks(self) -> Self {
        match self {
            Durability::Replicated {
                replicas, timeout, ..
            } => Durability::Replicated {
                replicas,
                timeout,
                acks: true,
            },
            written => written,
        }
    }

    /// `(replicas, timeout)` when enqueues (`ack` false) or acknowledgements (`ack`
    /// true) wait for replicas.
    pub(crate) fn wait_for(self, ack: bool) -> Option<(u32, Duration)> {
        match self {
            Durability::Replicated {
                replicas,
                timeout,
                acks,
            } if !ack || acks => Some((replicas, timeout)),
            _ => None,
        }
    }
}

/// The retry policy of a queue that has none set: 25 attempts, 1 s doubling to at most
/// an hour, jittered.
pub(crate) fn default_retry() -> RetryPolicy {
    RetryPolicy::exponential(25)
        .base_delay(Duration::from_secs(1))
        .max_delay(Duration::from_secs(3600))
}

impl RedisConfig {
    /// A configuration for queue `queue` on the Redis at `url`, with defaults: prefix
    /// `crewpool`, 5 s leases extended every second, batches of up to 1,000 jobs, a
    /// prefetch that adapts to the pace (see [`prefetch`](RedisConfig::prefetch)), 512
    /// KiB payloads, a retry policy of 25 attempts (1 s doubling to at most an hour,
    /// jittered), dead letters up to 10,000 and 64 MiB,
    /// [`AckMode::Queued`], a 2 s connect timeout and one connection attempt, a 5 s
    /// response timeout.
    ///
    /// `url` is `redis://[user[:password]@]host[:port][/db]`, or `rediss://` for TLS
    /// (feature `tls`); `redis+cluster://[user[:password]@]host:port,host:port,...` for
    /// a Redis Cluster (the seed nodes; the slot map is read from them); or
    /// `redis+sentinel://[user[:password]@]host:port,host:port,.../<master name>[/db]`
    /// for the master a set of Sentinels watch (the user and password are the data
    /// nodes'; a failover is followed).
    pub fn new(url: impl Into<RedisUrl>, queue: impl Into<String>) -> Self {
        RedisConfig {
            url: url.into(),
            queue: queue.into(),
            prefix: "crewpool".to_owned(),
            lease: Duration::from_secs(5),
            heartbeat: None,
            batch_size: 1000,
            prefetch: None,
            max_payload: 512 * 1024,
            retry: default_retry(),
            dead_letter_limit: 10_000,
            dead_letter_bytes: 64 << 20,
            ack_mode: AckMode::Queued,
            durability: Durability::Written,
            response_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(2),
            connect_retry: Duration::ZERO,
            max_block: Duration::from_secs(10),
            priorities: Priorities::strict(),
            run_schedules: true,
            result_ttl: Duration::from_secs(3600),
            propagator: None,
            #[cfg(feature = "tls")]
            tls_root_cert: None,
        }
    }

    /// The first part of every key (default `crewpool`): keys are
    /// `<prefix>:{<queue>}:<name>`.
    #[must_use]
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// How long a delivered job stays leased without a heartbeat (default 5 s). A worker
    /// that dies has its jobs back in the queue about this long after its last
    /// heartbeat.
    #[must_use]
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// How often this process extends the leases of the jobs it holds (default: a fifth
    /// of the lease). Must be shorter than the lease.
    #[must_use]
    pub fn heartbeat(mut self, interval: Duration) -> Self {
        self.heartbeat = Some(interval);
        self
    }

    /// The most jobs one fetch takes, under one lease (default and most 1,000). A
    /// fetch takes no more than the workers waiting plus the
    /// [`prefetch`](RedisConfig::prefetch), so a smaller cap only spreads a burst
    /// over more round trips. Acknowledgements are grouped on their own, up to 4,000
    /// per flush.
    #[must_use]
    pub fn batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size;
        self
    }

    /// How many jobs this process fetches ahead of its idle workers. Prefetched jobs
    /// are leased to this process, so other processes cannot take them.
    ///
    /// By default it adapts to the pace: as many jobs as the workers would finish in
    /// two fetch round trips (`2 × workers × fetch time / time a worker holds a job`,
    /// both measured and smoothed), at most two batches. Short jobs over a slow
    /// network then always have their next batch on its way (up to two fetches are in
    /// flight at once); long jobs get next to none, as with a prefetch of 0. Set it to
    /// fix the number: 0 fetches only for workers that wait.
    #[must_use]
    pub fn prefetch(mut self, prefetch: usize) -> Self {
        self.prefetch = Some(prefetch);
        self
    }

    /// The largest encoded envelope, in bytes (default 512 KiB).
    /// [`enqueue`](crate::RedisQueue::enqueue) refuses a larger job
    /// ([`Error::PayloadTooLarge`]); a worker dead-letters a larger record that another
    /// producer pushed, with the reason, without decoding it.
    #[must_use]
    pub fn max_payload(mut self, bytes: usize) -> Self {
        self.max_payload = bytes;
        self
    }

    /// The retry policy this queue applies: to jobs whose lease expired (their worker
    /// died or stalled), to [`RedisDelivery::fail`](crate::RedisDelivery::fail), and,
    /// through [`Queue::retry_policy`](crewpool_core::Queue::retry_policy), to the
    /// failures a pool on this queue sees when the pool has no policy of its own. A
    /// pool built with one replaces it (in this process). See [`RetryPolicy`]: one
    /// type, one meaning, everywhere in crewpool. Its predicate sees only the failure's
    /// text here, except in a pool, which gives it the typed error.
    #[must_use]
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// How many dead letters are kept (default 10,000); the oldest are deleted beyond
    /// that.
    #[must_use]
    pub fn dead_letter_limit(mut self, limit: usize) -> Self {
        self.dead_letter_limit = limit;
        self
    }

    /// How much Redis memory the dead-letter list may take (default 64 MiB), as Redis's
    /// `MEMORY USAGE` counts it; the oldest dead letters are deleted beyond that, the
    /// newest is always kept (so the list may exceed the bound by that one entry, at
    /// most one record of any size that reached the queue). Checked whenever this
    /// process dead-letters a job; needs the `MEMORY` command (ACL category `@read`),
    /// without which only [`dead_letter_limit`](RedisConfig::dead_letter_limit) holds.
    #[must_use]
    pub fn dead_letter_bytes(mut self, bytes: usize) -> Self {
        self.dead_letter_bytes = bytes;
        self
    }

    /// When `ack` returns (default [`AckMode::Queued`]; see [`AckMode`]).
    #[must_use]
    pub fn ack_mode(mut self, mode: AckMode) -> Self {
        self.ack_mode = mode;
        self
    }

    /// How far an enqueue (and optionally an acknowledgement) must have gone before it
    /// returns (default [`Durability::Written`]; see [`Durability::replicated`]).
    #[must_use]
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// How long a command may take before it fails as a timeout (default 5 s).
    #[must_use]
    pub fn response_timeout(mut self, timeout: Duration) -> Self {
        self.response_timeout = timeout;
        self
    }

    /// How long opening one connection (TCP connect, TLS and the Redis handshake) may
    /// take before it fails as a timeout (default 2 s). Applies to
    /// [`RedisQueue::connect`](crate::RedisQueue::connect) and to every reconnection.
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Makes [`RedisQueue::connect`](crate::RedisQueue::connect) keep trying for up to
    /// `wait` while Redis cannot be reached (refused, unreachable, no answer in time),
    /// backing off from 100 ms to 5 s between attempts and logging the first failure
    /// as a warning; default zero: one attempt. Set it for a worker that may start
    /// before Redis does (under an orchestrator, start order is not guaranteed).
    ///
    /// Errors that retrying cannot fix end the wait at once: refused credentials or
    /// permissions, an invalid URL, a server that is too old.
    #[must_use]
    pub fn connect_retry_for(mut self, wait: Duration) -> Self {
        self.connect_retry = wait;
        self
    }

    /// How long a job's result is kept for its producer (default 1 hour), in the
    /// process that stores it (the worker's setting applies): the outcome under the
    /// job's id and the producer's reply channel expire after it, so a producer that
    /// stopped waiting or died leaves nothing behind beyond it. A producer forgets a
    /// handle whose result did not come within its own `result_ttl` (the handle then
    /// resolves as not run). See "Results" in the crate docs.
    #[must_use]
    pub fn result_ttl(mut self, ttl: Duration) -> Self {
        self.result_ttl = ttl;
        self
    }

    /// Carries the producer's trace context to the workers: `propagator` adds it to
    /// every job this queue handle enqueues, and links the span that stands for the
    /// producer in the worker (see [`Propagator`](crate::Propagator) and "Tracing" in
    /// the crate docs).
    #[must_use]
    pub fn propagator(mut self, propagator: impl crate::Propagator) -> Self {
        self.propagator = Some(crate::trace::PropagatorSlot(std::sync::Arc::new(
            propagator,
        )));
        self
    }

    /// The longest one blocking wait for jobs lasts before it is renewed (default 10
    /// s). Waits end earlier on their own when a job is pushed, or at the next lease
    /// deadline or delayed job this process knows of. A renewal is a fetch and a new
    /// wait (two commands: all an idle process sends), and bounds how late an idle
    /// process notices a retry that another process scheduled, and how long a
    /// silently broken connection can go unnoticed.
    #[must_use]
    pub fn max_block(mut self, max_block: Duration) -> Self {
        self.max_block = max_block;
        self
    }

    /// In which order this process takes the jobs of the priority levels (default:
    /// [`Priorities::strict`], the highest non-empty level first). Every worker takes
    /// jobs of every level; processes should agree on the order (weighted ones share
    /// their state in Redis).
    #[must_use]
    pub fn priorities(mut self, priorities: Priorities) -> Self {
        self.priorities = priorities;
        self
    }

    /// Whether this process fires the queue's periodic schedules when it runs workers
    /// (default `true`). Every worker process that does takes part: each tick is fired
    /// once, by whichever gets there first. See "Periodic jobs" in the crate docs.
    #[must_use]
    pub fn run_schedules(mut self, run: bool) -> Self {
        self.run_schedules = run;
        self
    }

    /// Trusts the PEM-encoded CA certificate `pem` for `rediss://` connections, in
    /// addition to the system's roots.
    #[cfg(feature = "tls")]
    #[must_use]
    pub fn tls_root_cert(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.tls_root_cert = Some(pem.into());
        self
    }

    /// The URL (its password hidden when printed).
    pub fn url(&self) -> &RedisUrl {
        &self.url
    }

    /// The queue name.
    pub fn queue_name(&self) -> &str {
        &self.queue
    }

    /// The lease length.
    pub fn lease_length(&self) -> Duration {
        self.lease
    }

    /// The heartbeat interval in effect.
    pub fn heartbeat_interval(&self) -> Duration {
        self.heartbeat.unwrap_or(self.lease / 5)
    }

    /// The retry policy configured (a pool's own may replace it in the queue).
    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.retry
    }

    pub(crate) fn validate(&self) -> Result<(), Error> {
        crate::conn::Target::parse(&self.url)?;
        #[cfg(not(feature = "tls"))]
        if self.url.is_tls() {
            return Err(Error::Config(
                "rediss:// needs the `tls` feature of crewpool-redis".to_owned(),
            ));
        }
        if let Durability::Replicated {
            replicas, timeout, ..
        } = self.durability
            && (replicas == 0 || timeout >= self.response_timeout)
        {
            return Err(Error::Config(format!(
                "replicated durability needs at least one replica and a timeout under the response timeout ({} replicas within {timeout:?}, response timeout {:?})",
                replicas, self.response_timeout
            )));
        }
        if self.queue.is_empty() || self.queue.contains(['{', '}']) {
            return Err(Error::Config(format!(
                "the queue name must be non-empty and contain no braces (got {:?})",
                self.queue
            )));
        }
        if self.result_ttl < Duration::from_millis(1) {
            return Err(Error::Config(
                "the result TTL must be at least 1 ms".to_owned(),
            ));
        }
        if self.lease < Duration::from_millis(100) {
            return Err(Error::Config(
                "the lease must be at least 100 ms".to_owned(),
            ));
        }
        let heartbeat = self.heartbeat_interval();
        if heartbeat.is_zero() || heartbeat >= self.lease {
            return Err(Error::Config(format!(
                "the heartbeat ({heartbeat:?}) must be positive and shorter than the lease ({:?})",
                self.lease
            )));
        }
        if !(1..=1000).contains(&self.batch_size) {
            return Err(Error::Config("the batch size must be 1..=1000".to_owned()));
        }
        if self.dead_letter_limit == 0 || self.dead_letter_bytes == 0 {
            return Err(Error::Config(
                "the dead-letter limits must be at least 1".to_owned(),
            ));
        }
        if self.connect_timeout < Duration::from_millis(10) {
            return Err(Error::Config(
                "the connect timeout must be at least 10 ms".to_owned(),
            ));
        }
        if self.max_block < Duration::from_millis(100) {
            return Err(Error::Config(
                "max_block must be at least 100 ms".to_owned(),
            ));
        }
        self.priorities.validate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_settings() {
        let ok = RedisConfig::new("redis://127.0.0.1:1", "q");
        assert!(ok.validate().is_ok());
        for bad in [
            RedisConfig::new("http://x", "q"),
            RedisConfig::new("redis://x", "a{b}"),
            RedisConfig::new("redis://x", ""),
            ok.clone().heartbeat(Duration::from_secs(5)),
            ok.clone().batch_size(0),
            ok.clone().batch_size(1001),
            ok.clone().dead_letter_limit(0),
            ok.clone().dead_letter_bytes(0),
            ok.clone().connect_timeout(Duration::ZERO),
        ] {
            assert!(bad.validate().is_err(), "{bad:?} should be rejected");
        }
    }
}
