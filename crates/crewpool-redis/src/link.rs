//! The connection to Redis: the client, the calls it makes (one method per job script;
//! the lease scripts' methods are in `lease`, the acknowledgement's in `acker`), and
//! what connecting found out about the server. Every part of a queue (producer,
//! fetcher, acker, heartbeat, deliveries) talks to Redis through it.

use std::io::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use redis::{
    AsyncConnectionConfig, Client, Cmd, ErrorKind, RedisWrite, Script, ServerErrorKind, Value,
};

use crewpool_core::RetryPolicy;

use crate::conn::{Conn, Endpoint};
use crate::counters::Counters;
use crate::error::{ClientError, seconds};
use crate::keys::Keys;
use crate::lease::{Lease, Leases};
use crate::scripts::Scripts;
use crate::wire::{array, bytes, int, uint};
use crate::{Error, RedisConfig, RedisUrl, Result};

/// How many due delayed jobs one fetch moves to the queue at most.
const DUE_PER_FETCH: usize = 1000;
/// How many expired leases (each up to a batch of jobs) one fetch takes back at most.
const EXPIRED_LEASES_PER_FETCH: usize = 16;

/// What one fetch did.
#[derive(Debug, Default)]
pub(crate) struct Fetched {
    /// The lease the jobs were taken under, when some were.
    pub(crate) lease: Option<Arc<Lease>>,
    /// The job records taken, in order: the n-th is the lease's field `<lease>:<n>`.
    pub(crate) records: Vec<Vec<u8>>,
    /// How long until the next lease deadline or delayed job, when nothing was taken.
    pub(crate) next_due: Option<Duration>,
    /// Jobs of expired leases put back in the queue by this call.
    pub(crate) recovered: u64,
    /// Jobs of expired leases dead-lettered by this call (out of attempts).
    pub(crate) buried: u64,
    /// Redis's clock when the fetch ran (ms since the Unix epoch).
    pub(crate) now_ms: u64,
    /// The queue is paused: nothing was taken.
    pub(crate) paused: bool,
    /// The rate limit held jobs back: how long until it lets one be taken.
    pub(crate) rate_wait: Option<Duration>,
}

/// What [`RedisQueue::connect`](crate::RedisQueue::connect) found out about the server.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerInfo {
    /// `redis_version` from `INFO`.
    pub version: String,
    /// `maxmemory_policy` from `INFO`: anything but `noeviction` lets Redis delete
    /// queued jobs when memory runs out.
    pub maxmemory_policy: String,
}

impl ServerInfo {
    /// Whether the version is at least `major.minor`.
    pub fn at_least(&self, major: u32, minor: u32) -> bool {
        let mut parts = self
            .version
            .split('.')
            .map(|p| p.parse::<u32>().unwrap_or(0));
        let found = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
        found >= (major, minor)
    }

    /// Whether Redis is set never to evict keys (`maxmemory-policy noeviction`).
    pub fn is_noeviction(&self) -> bool {
        self.maxmemory_policy == "noeviction"
    }
}

/// The most records one bulk-enqueue `LPUSH` carries.
pub(crate) const ENQUEUE_CHUNK: usize = 1000;

/// The connection, keys and scripts of one queue, plus what this process holds.
pub(crate) struct Link {
    pub(crate) config: RedisConfig,
    pub(crate) keys: Keys,
    pub(crate) scripts: Scripts,
    endpoint: Endpoint,
    conn: Conn,
    pub(crate) counters: Counters,
    /// The leases this process fetched and still holds deliveries of.
    pub(crate) leases: Leases,
    /// The pending count Redis reported last (after a push or a fetch).
    observed_pending: AtomicUsize,
    /// Wakes this process's idle fetcher to fetch again: a job it retried is due
    /// before the fetcher's timer.
    pub(crate) rescan: tokio::sync::Notify,
    /// The retry policy in force: the configured one, or the one a pool handed over
    /// (`Retryable::use_retry_policy`).
    retry: Mutex<RetryPolicy>,
    /// Redis's clock minus this machine's, in ms, as the last fetch saw it.
    clock_offset: AtomicI64,
    /// The periodic schedules' version the last fetch reported.
    schedules_version: AtomicU64,
    /// When the last fetch was answered (ms since the Unix epoch, this machine's clock).
    last_fetch_ms: AtomicU64,
    /// Wakes this process's schedule runner: the schedules changed.
    pub(crate) schedules_changed: tokio::sync::Notify,
}

/// Writes the field `<lease>:<index>` of a leased job as one command argument.
pub(crate) fn write_field(out: &mut impl RedisWrite, lease: u64, index: u32) {
    // Writing to a command buffer cannot fail.
    let _ = write!(out.writer_for_next_arg(), "{lease}:{index}");
}

impl Link {
    /// Connects (retrying for [`RedisConfig::connect_retry_for`] while Redis cannot be
    /// reached) and reads what the server is.
    pub(crate) async fn connect(config: RedisConfig) -> Result<(Self, ServerInfo)> {
        config.validate()?;
        let endpoint = Endpoint::new(&config)?;
        let server = connect_with_retries(&endpoint, &config).await?;
        let conn = endpoint.connect(&config, config.response_timeout).await?;
        let link = Link {
            keys: Keys::new(&config.prefix, &config.queue),
            scripts: Scripts::new(),
            endpoint,
            conn,
            counters: Counters::default(),
            leases: Leases::default(),
            observed_pending: AtomicUsize::new(0),
            rescan: tokio::sync::Notify::new(),
            retry: Mutex::new(config.retry.clone()),
            clock_offset: AtomicI64::new(0),
            schedules_version: AtomicU64::new(0),
            last_fetch_ms: AtomicU64::new(0),
            schedules_changed: tokio::sync::Notify::new(),
            config,
        };
        Ok((link, server))
    }

    /// The retry policy in force (a clone: its predicate is shared).
    pub(crate) fn retry_policy(&self) -> RetryPolicy {
        self.retry
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Replaces the retry policy in force.
    pub(crate) fn use_retry_policy(&self, policy: RetryPolicy) {
        *self.retry.lock().unwrap_or_else(PoisonError::into_inner) = policy;
    }

    /// A second connection, for the blocking wait (which would stall every command
    /// multiplexed behind it). Made on its first use.
    pub(crate) async fn blocking_connection(&self) -> Result<Conn> {
        let timeout = self.config.max_block + self.config.response_timeout;
        self.endpoint.connect(&self.config, timeout).await
    }

    pub(crate) fn conn(&self) -> Conn {
        self.conn.clone()
    }

    /// Starts timing a call to Redis, for its error: `what` names it there
    /// ("fetching jobs").
    pub(crate) fn call(&self, what: &'static str) -> Call<'_> {
        Call::new(&self.config.url, what)
    }

    pub(crate) fn observed_pending(&self) -> usize {
        // Relaxed: a hint that may lag (see `Queue::depth`).
        self.observed_pending.load(Ordering::Relaxed)
    }

    /// Redis's clock now, estimated from this machine's and the offset the last fetch
    /// saw (ms since the Unix epoch).
    pub(crate) fn redis_now_ms(&self) -> u64 {
        // Relaxed: an estimate, refreshed by every fetch.
        let offset = self.clock_offset.load(Ordering::Relaxed);
        crate::registry::now_ms().saturating_add_signed(offset)
    }

    /// Records the schedules' version; wakes the schedule runner when it changed.
    pub(crate) fn observe_schedules(&self, version: u64) {
        // Relaxed: the runner reloads from Redis when woken; the value is only compared.
        if self.schedules_version.swap(version, Ordering::Relaxed) != version {
            self.schedules_changed.notify_one();
        }
    }

    /// How long ago the last fetch was answered (this machine's clock).
    pub(crate) fn since_last_fetch(&self) -> Duration {
        let last = self.last_fetch_ms.load(Ordering::Relaxed);
        Duration::from_millis(crate::registry::now_ms().saturating_sub(last))
    }

    fn observe_pending(&self, pending: u64) {
        let pending = usize::try_from(pending).unwrap_or(usize::MAX);
        self.observed_pending.store(pending, Ordering::Relaxed);
    }
    /// An `EVALSHA` of `script` with `keys`; the caller adds the arguments.
    pub(crate) fn script_call(script: &Script, keys: &[&str]) -> Cmd {
        let mut cmd = redis::cmd("EVALSHA");
        cmd.arg(script.get_hash()).arg(keys.len()).arg(keys);
        cmd
    }

    /// Sends a script call; loads the script and repeats the call when Redis answers
    /// `NOSCRIPT` (a restarted or failed-over server has an empty script cache).
    /// `what` names the call in its error.
    pub(crate) async fn invoke(
        &self,
        what: &'static str,
        script: &Script,
        cmd: &Cmd,
    ) -> Result<Value> {
        match self.invoke_once(what, script, cmd).await? {
            Some(reply) => Ok(reply),
            None => {
                let call = self.call(what);
                cmd.query_async(&mut self.conn())
                    .await
                    .map_err(|e| call.fail(&e))
            }
        }
    }

    /// As [`invoke`](Self::invoke), but a call answered `NOSCRIPT` is not sent again:
    /// the script is loaded and `None` returned (the call did nothing).
    pub(crate) async fn invoke_once(
        &self,
        what: &'static str,
        script: &Script,
        cmd: &Cmd,
    ) -> Result<Option<Value>> {
        let call = self.call(what);
        let mut conn = self.conn();
        match cmd.query_async::<Value>(&mut conn).await {
            Ok(reply) => Ok(Some(reply)),
            Err(error) if error.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                let _: String = script
                    .load_async(&mut conn)
                    .await
                    .map_err(|e| call.fail(&e))?;
                Ok(None)
            }
            Err(error) => Err(call.fail(&error)),
        }
    }

    /// As [`invoke`](Self::invoke), followed in the same round trip by a `WAIT` when
    /// the durability asks for replicas for this kind of write (`ack`: an
    /// acknowledgement, else an enqueue); fails with [`Error::NotReplicated`] when
    /// fewer confirmed it in time.
    pub(crate) async fn invoke_durable(
        &self,
        what: &'static str,
        script: &Script,
        cmd: &Cmd,
        ack: bool,
    ) -> Result<Value> {
        let Some((replicas, timeout)) = self.config.durability.wait_for(ack) else {
            return self.invoke(what, script, cmd).await;
        };
        let call = self.call(what);
        let mut conn = self.conn();
        let mut pipe = redis::pipe();
        pipe.add_command(cmd.clone())
            .cmd("WAIT")
            .arg(replicas)
            .arg(millis(timeout));
        let replies: Vec<Value> = match pipe.query_async(&mut conn).await {
            Ok(replies) => replies,
            Err(error) if error.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                let _: String = script
                    .load_async(&mut conn)
                    .await
                    .map_err(|e| call.fail(&e))?;
                pipe.query_async(&mut conn)
                    .await
                    .map_err(|e| call.fail(&e))?
            }
            Err(error) => return Err(call.fail(&error)),
        };
        let [reply, confirmed]: [Value; 2] = replies
            .try_into()
            .map_err(|_| Error::Protocol(format!("{what}: no reply to WAIT")))?;
        replicated(uint(&confirmed)?, replicas, timeout)?;
        Ok(reply)
    }

    /// Enqueues one encoded envelope in one script call; returns its id.
    pub(crate) async fn enqueue(&self, envelope: &[u8]) -> Result<u64> {
        let script = &self.scripts.enqueue;
        let mut call = Self::script_call(script, &[&self.keys.seq, &self.keys.pending]);
        call.arg(envelope);
        let reply = array(
            self.invoke_durable("enqueueing", script, &call, false)
                .await?,
        )?;
        let [first, pending] = reply.as_slice() else {
            return Err(Error::Protocol(format!(
                "enqueue returned {} values",
                reply.len()
            )));
        };
        self.observe_pending(uint(pending)?);
        uint(first)
    }

    /// Enqueues envelopes exactly as the crate docs tell other languages to: one call
    /// of `reserve.lua` takes every id, then the records go in `LPUSH`es of
    /// [`ENQUEUE_CHUNK`], all in one `MULTI`/`EXEC` (Redis runs them in order). No
    /// script for the records: Lua's per-argument overhead would dominate. Returns the
    /// first id; the ids follow in order.
    pub(crate) async fn enqueue_chunks(&self, envelopes: &[Vec<u8>]) -> Result<u64> {
        let total = envelopes.len();
        let script = &self.scripts.reserve;
        let mut reserve = Self::script_call(script, &[&self.keys.seq]);
        reserve.arg(total);
        let first = uint(&self.invoke("enqueueing in bulk", script, &reserve).await?)?;
        let call = self.call("enqueueing in bulk");
        let mut conn = self.conn();
        let mut pipe = redis::pipe();
        // One MULTI/EXEC around everything: the jobs appear together or not at all.
        // With replicated durability, a WAIT follows the EXEC in the same round trip
        // (so on the same connection and, in a Cluster, the same node).
        let wait = self.config.durability.wait_for(false);
        if wait.is_some() {
            pipe.cmd("MULTI");
        } else {
            pipe.atomic();
        }
        let mut next = first;
        for chunk in envelopes.chunks(ENQUEUE_CHUNK) {
            let mut lpush = redis::cmd("LPUSH");
            lpush.arg(&self.keys.pending);
            for envelope in chunk {
                crate::wire::write_record(&mut lpush, next, envelope);
                next += 1;
            }
            pipe.add_command(lpush);
        }
        if let Some((replicas, timeout)) = wait {
            pipe.cmd("EXEC")
                .cmd("WAIT")
                .arg(replicas)
                .arg(millis(timeout));
        }
        let mut replies: Vec<Value> = pipe
            .query_async(&mut conn)
            .await
            .map_err(|e| call.fail(&e))?;
        if let Some((replicas, timeout)) = wait {
            let confirmed = replies.pop().ok_or_else(|| short("bulk enqueue"))?;
            replicated(uint(&confirmed)?, replicas, timeout)?;
            let exec = replies.pop().ok_or_else(|| short("bulk enqueue"))?;
            replies = array(exec)?;
        }
        if let Some(pending) = replies.last() {
            self.observe_pending(uint(pending)?);
        }
        Ok(first)
    }

    /// Leases up to `count` jobs (0: housekeeping only) and records the lease as held.
    pub(crate) async fn fetch(&self, count: usize) -> Result<Fetched> {
        loop {
            if let Some(fetched) = self.fetch_once(count).await? {
                return Ok(fetched);
            }
        }
    }

    /// As [`fetch`](Self::fetch), but when Redis answers `NOSCRIPT` (a restarted or
    /// failed-over server, a flushed script cache) the script is loaded and `None`
    /// returned: the call took nothing and is not sent again. For pipelined fetches: a
    /// fetch sent again would run after the ones sent behind it and take younger jobs
    /// than they did, handing jobs out of order.
    pub(crate) async fn fetch_once(&self, count: usize) -> Result<Option<Fetched>> {
        let config = &self.config;
        let keys = &self.keys;
        let script = &self.scripts.fetch;
        let mut declared: Vec<&str> = vec![
            &keys.leased,
            &keys.active,
            &keys.leases,
            &keys.fence,
            &keys.delayed,
            &keys.scheduled,
            &keys.dead,
            &keys.stats,
            &keys.levels,
            &keys.priority,
            &keys.unique,
            &keys.unique_ttl,
            &keys.schedver,
        ];
        declared.extend(keys.levels_pending.iter().map(String::as_str));
        declared.extend([keys.control.as_str(), &keys.rate]);
        let mut call = Self::script_call(script, &declared);
        call.arg(count)
            .arg(millis(config.lease))
            .arg(self.retry_policy().attempts())
            .arg(config.dead_letter_limit)
            .arg(DUE_PER_FETCH)
            .arg(EXPIRED_LEASES_PER_FETCH)
            .arg(config.dead_letter_bytes)
            .arg(config.max_payload);
        match &config.priorities.weights {
            None => call.arg("strict"),
            Some(weights) => call.arg("weighted").arg(&weights[..]),
        };
        let asked = crate::registry::now_ms();
        let Some(reply) = self.invoke_once("fetching jobs", script, &call).await? else {
            return Ok(None);
        };
        Counters::add(&self.counters.fetch_calls, 1);
        let mut reply = array(reply)?.into_iter();
        let mut header = [0_i64; 10];
        for slot in &mut header {
            *slot = int(&reply.next().ok_or_else(|| short("fetch"))?)?;
        }
        let [
            pending,
            next_due,
            recovered,
            buried,
            refused,
            lease,
            now_ms,
            schedules_version,
            paused,
            rate_wait,
        ] = header;
        self.observe_pending(u64::try_from(pending).unwrap_or(0));
        // The reply's clock is somewhere between the request and now: take the middle.
        let answered = crate::registry::now_ms();
        let local = asked / 2 + answered / 2;
        self.clock_offset
            .store(now_ms.saturating_sub_unsigned(local), Ordering::Relaxed);
        let schedules_version = u64::try_from(schedules_version).unwrap_or(0);
        if self
            .schedules_version
            .swap(schedules_version, Ordering::Relaxed)
            != schedules_version
        {
            self.schedules_changed.notify_one();
        }
        if refused > 0 {
            let refused = usize::try_from(refused).unwrap_or(0);
            Counters::add(&self.counters.undecodable, refused);
            Counters::add(&self.counters.dead_lettered, refused);
            tracing::warn!(queue = %config.queue, refused, "dead-lettered job records that break the wire format (see the queue's dead letters for the reasons)");
        }
        if recovered > 0 || buried > 0 {
            Counters::add(
                &self.counters.recovered,
                usize::try_from(recovered).unwrap_or(0),
            );
            Counters::add(
                &self.counters.dead_lettered,
                usize::try_from(buried).unwrap_or(0),
            );
            tracing::info!(queue = %config.queue, recovered, dead_lettered = buried, "took back jobs whose lease expired");
        }
        let records = reply.map(bytes).collect::<Result<Vec<_>>>()?;
        let lease = match u64::try_from(lease) {
            Ok(id) if id > 0 && !records.is_empty() => Some(self.leases.hold(id, records.len())),
            _ if records.is_empty() => None,
            _ => {
                return Err(Error::Protocol(format!(
                    "fetch returned jobs under lease {lease}"
                )));
            }
        };
        Counters::add(&self.counters.fetched, records.len());
        let next_due = (records.is_empty() && next_due >= 0)
            .then(|| Duration::from_millis(u64::try_from(next_due).unwrap_or(0)));
        Ok(Some(Fetched {
            lease,
            records,
            next_due,
            recovered: u64::try_from(recovered).unwrap_or(0),
            buried: u64::try_from(buried).unwrap_or(0),
            now_ms: u64::try_from(now_ms).unwrap_or(0),
            paused: paused == 1,
            rate_wait: u64::try_from(rate_wait).ok().map(Duration::from_millis),
        }))
    }

    /// Waits (on the blocking connection) until `pending` is non-empty, or `timeout`
    /// passes. Moves nothing: `BLMOVE pending pending LEFT LEFT` pops the newest job
    /// and pushes it straight back where it was, so a wait that is dropped, or a
    /// process that dies while waiting, strands no job.
    pub(crate) async fn wait_for_jobs(&self, blocking: &mut Conn, timeout: Duration) -> Result<()> {
        self.wait_on_list(blocking, &self.keys.pending, timeout, "waiting for jobs")
            .await
    }

    /// Blocks (on the blocking connection) until list `key` is non-empty, or
    /// `timeout` passes, moving nothing: `BLMOVE key key LEFT LEFT`.
    pub(crate) async fn wait_on_list(
        &self,
        blocking: &mut Conn,
        key: &str,
        timeout: Duration,
        what: &'static str,
    ) -> Result<()> {
        let seconds = timeout.as_secs_f64().max(0.01);
        let call = self.call(what);
        let _: Value = redis::cmd("BLMOVE")
            .arg(key)
            .arg(key)
            .arg("LEFT")
            .arg("LEFT")
            .arg(format!("{seconds:.3}"))
            .query_async(blocking)
            .await
            .map_err(|e| call.fail(&e))?;
        Ok(())
    }
    /// Counts settlement codes: 1 (done) into `done`, the rest (lease lost) as stale.
    fn tally(&self, codes: &[i64], done: &AtomicU64) {
        let settled = codes.iter().filter(|&&code| code == 1).count();
        Counters::add(done, settled);
        Counters::add(&self.counters.stale, codes.len() - settled);
    }

    /// Puts `(lease, index)` jobs back at the front of their level's list,
    /// first-fetched served first; one code per job.
    pub(crate) async fn release(&self, items: &[(u64, u32)]) -> Result<Vec<i64>> {
        let keys = &self.keys;
        let script = &self.scripts.release;
        let mut declared: Vec<&str> = vec![&keys.leased, &keys.active, &keys.leases];
        declared.extend(keys.levels_pending.iter().map(String::as_str));
        let mut call = Self::script_call(script, &declared);
        for &(lease, index) in items {
            write_field(&mut call, lease, index);
        }
        let codes = codes(
            self.invoke("releasing jobs", script, &call).await?,
            items.len(),
            "release",
        )?;
        self.tally(&codes, &self.counters.released);
        Ok(codes)
    }

    /// Schedules another attempt after `delay`; the caller decided (no attempt limit
    /// applies here): 1 scheduled, 2 dead-lettered (a malformed record), 0 lease lost.
    /// `level` is the job's priority level (where a retry due at once goes).
    pub(crate) async fn retry(
        &self,
        lease: u64,
        index: u32,
        level: u8,
        delay: Duration,
        reason: &str,
    ) -> Result<i64> {
        let keys = &self.keys;
        let script = &self.scripts.retry;
        let mut call = Self::script_call(
            script,
            &[
                &keys.leased,
                &keys.active,
                &keys.leases,
                &keys.delayed,
                keys.pending_of(level),
                &keys.dead,
                &keys.stats,
                &keys.pending,
                &keys.unique,
                &keys.unique_ttl,
            ],
        );
        write_field(&mut call, lease, index);
        call.arg(millis(delay))
            .arg(reason)
            .arg(self.config.dead_letter_limit)
            .arg(self.config.dead_letter_bytes);
        let code = int(&self.invoke("scheduling a retry", script, &call).await?)?;
        match code {
            1 => {
                Counters::add(&self.counters.retried, 1);
                if !delay.is_zero() {
                    self.rescan.notify_one();
                }
            }
            2 => Counters::add(&self.counters.dead_lettered, 1),
            _ => Counters::add(&self.counters.stale, 1),
        }
        Ok(code)
    }

    /// Dead-letters `(lease, index, reason)` jobs, counted in the queue's total
    /// `stat` (`failed` or `missed_deadline`); one code per job.
    pub(crate) async fn bury(
        &self,
        items: &[(u64, u32, String)],
        stat: BuryStat,
    ) -> Result<Vec<i64>> {
        let keys = &self.keys;
        let script = &self.scripts.bury;
        let mut call = Self::script_call(
            script,
            &[
                &keys.leased,
                &keys.active,
                &keys.leases,
                &keys.dead,
                &keys.stats,
                &keys.unique,
                &keys.unique_ttl,
            ],
        );
        call.arg(self.config.dead_letter_limit)
            .arg(self.config.dead_letter_bytes)
            .arg(stat.field());
        for (lease, index, reason) in items {
            write_field(&mut call, *lease, *index);
            call.arg(reason.as_str());
        }
        let codes = codes(
            self.invoke("dead-lettering jobs", script, &call).await?,
            items.len(),
            "bury",
        )?;
        self.tally(&codes, &self.counters.dead_lettered);
        if stat == BuryStat::MissedDeadline {
            let buried = codes.iter().filter(|&&code| code == 1).count();
            Counters::add(&self.counters.missed_deadline, buried);
        }
        Ok(codes)
    }
    /// Moves dead letters back to the queue: all of them (`ids` = `None`) or the given
    /// ones. Returns how many went back.
    pub(crate) async fn requeue(&self, ids: Option<&[u64]>) -> Result<u64> {
        let script = &self.scripts.requeue;
        let mut declared: Vec<&str> = vec![&self.keys.dead];
        declared.extend(self.keys.levels_pending.iter().map(String::as_str));
        let mut call = Self::script_call(script, &declared);
        match ids {
            None => {
                call.arg("all");
            }
            Some(ids) => {
                call.arg("ids").arg(ids);
            }
        }
        uint(
            &self
                .invoke("requeueing dead letters", script, &call)
                .await?,
        )
    }
}

impl Link {
    /// Enqueues envelopes with `options` in one `push.lua` call; `keys` holds each job's
    /// uniqueness key when the options make jobs unique. Returns what happened to each.
    pub(crate) async fn push(
        &self,
        options: &crate::JobOptions,
        envelopes: &[Vec<u8>],
    ) -> Result<Vec<crate::Enqueued>> {
        let keys = &self.keys;
        let script = &self.scripts.push;
        let mut call = Self::script_call(
            script,
            &[
                &keys.seq,
                &keys.pending,
                keys.pending_of(options.level),
                &keys.scheduled,
                &keys.levels,
                &keys.unique,
                &keys.unique_ttl,
            ],
        );
        call.arg(options.level)
            .arg(options.due_arg())
            .arg(options.deadline_arg());
        match &options.unique {
            Some((key, ttl)) => {
                call.arg(millis(*ttl).max(1));
                for envelope in envelopes {
                    call.arg(key.as_str()).arg(envelope.as_slice());
                }
            }
            None => {
                call.arg("");
                for envelope in envelopes {
                    call.arg(envelope.as_slice());
                }
            }
        }
        let reply = array(
            self.invoke_durable("enqueueing with options", script, &call, false)
                .await?,
        )?;
        if reply.len() != envelopes.len() {
            return Err(Error::Protocol(format!(
                "push returned {} ids for {} jobs",
                reply.len(),
                envelopes.len()
            )));
        }
        reply
            .iter()
            .map(|value| {
                let id = int(value)?;
                Ok(if id < 0 {
                    crate::Enqueued::Duplicate(crewpool_core::JobId(id.unsigned_abs()))
                } else {
                    crate::Enqueued::Added(crewpool_core::JobId(id.unsigned_abs()))
                })
            })
            .collect()
    }

    /// Adds or replaces the periodic schedule `name` (`spec`: its JSON without version);
    /// returns its new version.
    pub(crate) async fn set_schedule(&self, name: &str, spec: &[u8]) -> Result<u64> {
        let keys = &self.keys;
        let script = &self.scripts.schedule;
        let mut call = Self::script_call(
            script,
            &[&keys.schedules, &keys.ticks, &keys.schedver, &keys.pending],
        );
        call.arg("set").arg(name).arg(spec);
        uint(&self.invoke("setting a schedule", script, &call).await?)
    }

    /// Removes the periodic schedule `name`; returns whether it existed.
    pub(crate) async fn remove_schedule(&self, name: &str) -> Result<bool> {
        let keys = &self.keys;
        let script = &self.scripts.schedule;
        let mut call = Self::script_call(
            script,
            &[&keys.schedules, &keys.ticks, &keys.schedver, &keys.pending],
        );
        call.arg("remove").arg(name);
        Ok(uint(&self.invoke("removing a schedule", script, &call).await?)? > 0)
    }

    /// Fires one tick of a periodic schedule (see `fire.lua`).
    pub(crate) async fn fire(&self, tick: &Tick<'_>) -> Result<Fire> {
        let keys = &self.keys;
        let script = &self.scripts.fire;
        let mut call = Self::script_call(
            script,
            &[
                &keys.schedules,
                &keys.ticks,
                &keys.seq,
                keys.pending_of(tick.level),
                &keys.pending,
                &keys.levels,
                &keys.fired,
            ],
        );
        call.arg(tick.name)
            .arg(tick.at_ms)
            .arg(tick.version)
            .arg(
                tick.max_late_ms
                    .map_or_else(String::new, |ms| ms.to_string()),
            )
            .arg(tick.level)
            .arg(tick.envelope);
        let reply = array(self.invoke("firing a schedule", script, &call).await?)?;
        let [code, value] = reply.as_slice() else {
            return Err(short("fire"));
        };
        let value = int(value)?;
        Ok(match int(code)? {
            1 => {
                Counters::add(&self.counters.ticks_fired, 1);
                Fire::Fired(value.unsigned_abs())
            }
            0 => Fire::Already,
            -1 => Fire::Changed,
            -2 => Fire::Early(Duration::from_millis(value.unsigned_abs())),
            -3 => Fire::Passed,
            other => {
                return Err(Error::Protocol(format!("fire returned code {other}")));
            }
        })
    }
}

/// The total a dead-lettering counts in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BuryStat {
    /// A failed attempt, or a job that does not decode.
    Failed,
    /// Not started by its deadline.
    MissedDeadline,
}

impl BuryStat {
    fn field(self) -> &'static str {
        match self {
            BuryStat::Failed => "failed",
            BuryStat::MissedDeadline => "missed_deadline",
        }
    }
}

/// One tick of a periodic schedule, to fire.
#[derive(Debug)]
pub(crate) struct Tick<'a> {
    pub(crate) name: &'a str,
    pub(crate) at_ms: u64,
    pub(crate) version: u64,
    /// `None`: fire however late; else skip the tick past this lateness.
    pub(crate) max_late_ms: Option<u64>,
    pub(crate) level: u8,
    pub(crate) envelope: &'a [u8],
}

/// What firing a tick did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fire {
    /// Enqueued as this job id.
    Fired(u64),
    /// This tick (or a later one) was fired or passed already.
    Already,
    /// The schedule changed or was removed: reload it.
    Changed,
    /// The tick is this far away on Redis's clock.
    Early(Duration),
    /// Too late: passed without a job (recorded, so no one fires it).
    Passed,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("url", &self.config.url)
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

pub(crate) fn short(script: &str) -> Error {
    Error::Protocol(format!("{script} returned a truncated reply"))
}

pub(crate) fn codes(reply: Value, expected: usize, script: &str) -> Result<Vec<i64>> {
    let codes = array(reply)?.iter().map(int).collect::<Result<Vec<_>>>()?;
    if codes.len() != expected {
        return Err(Error::Protocol(format!(
            "{script} returned {} codes for {expected} jobs",
            codes.len()
        )));
    }
    Ok(codes)
}

/// `Ok` when `confirmed` replicas are enough.
fn replicated(confirmed: u64, wanted: u32, timeout: Duration) -> Result<()> {
    if confirmed >= u64::from(wanted) {
        return Ok(());
    }
    Err(Error::NotReplicated {
        confirmed: u32::try_from(confirmed).unwrap_or(u32::MAX),
        wanted,
        waited_ms: millis(timeout),
    })
}

pub(crate) fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// A call to Redis in progress: what it is and when it started, for its error.
#[derive(Debug)]
pub(crate) struct Call<'a> {
    url: &'a RedisUrl,
    what: &'static str,
    started: Instant,
}

impl<'a> Call<'a> {
    /// Starts timing a call to the Redis at `url`, named `what` in its error.
    pub(crate) fn new(url: &'a RedisUrl, what: &'static str) -> Self {
        Call {
            url,
            what,
            started: Instant::now(),
        }
    }

    /// The error for this call's failure.
    pub(crate) fn fail(&self, error: &redis::RedisError) -> Error {
        Error::Redis {
            call: self.what,
            url: self.url.clone(),
            source: ClientError::new(error, self.url, self.started.elapsed()),
        }
    }
}

/// TCP settings of every connection: `TCP_NODELAY`, so a small command (an ack flush, a
/// fetch) is sent at once rather than held back by Nagle's algorithm behind an
/// unacknowledged segment, which costs a delayed-ACK wait on a real network.
pub(crate) fn tcp_settings() -> redis::io::tcp::TcpSettings {
    redis::io::tcp::TcpSettings::default().set_nodelay(true)
}

pub(crate) fn client(config: &RedisConfig) -> Result<Client> {
    let url = &config.url;
    let info = redis::IntoConnectionInfo::into_connection_info(url.expose())
        .map_err(|e| Error::Config(url.scrub(e.to_string())))?
        .set_tcp_settings(tcp_settings());
    #[cfg(feature = "tls")]
    if let Some(pem) = &config.tls_root_cert {
        return Client::build_with_tls(
            info,
            redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(pem.clone()),
            },
        )
        .map_err(|e| Error::Config(url.scrub(e.to_string())));
    }
    Client::open(info).map_err(|e| Error::Config(url.scrub(e.to_string())))
}

/// The first delay between connection attempts; it doubles up to [`CONNECT_BACKOFF_MAX`].
const CONNECT_BACKOFF_FIRST: Duration = Duration::from_millis(100);
/// The longest delay between connection attempts.
const CONNECT_BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Opens a connection and reads the server's `INFO`, trying again while Redis cannot
/// be reached until [`RedisConfig::connect_retry_for`] has passed.
pub(crate) async fn connect_with_retries(
    endpoint: &Endpoint,
    config: &RedisConfig,
) -> Result<ServerInfo> {
    let url = &config.url;
    let started = Instant::now();
    let deadline = started + config.connect_retry;
    let mut delay = CONNECT_BACKOFF_FIRST;
    let mut attempts = 1_u32;
    loop {
        let error = match probe(endpoint, config).await {
            Ok(server) => {
                if attempts > 1 {
                    tracing::info!(%url, attempts, waited = %seconds(started.elapsed()), "connected to Redis");
                }
                return Ok(server);
            }
            Err(error) => error,
        };
        let left = deadline.saturating_duration_since(Instant::now());
        if !error.is_connection() || left.is_zero() {
            return Err(Error::Connect {
                url: url.clone(),
                source: error,
            });
        }
        if attempts == 1 {
            tracing::warn!(%url, %error, retrying_for = %seconds(config.connect_retry), "Redis cannot be reached; retrying with backoff");
        } else {
            tracing::debug!(%url, %error, attempts, "Redis still cannot be reached");
        }
        tokio::time::sleep(delay.min(left)).await;
        delay = (delay * 2).min(CONNECT_BACKOFF_MAX);
        attempts += 1;
    }
}

/// One connection attempt: open a connection (within the connect timeout) and read
/// `INFO` on it (within the response timeout). The connection is closed afterwards;
/// the queue's own connections are opened on their first use.
async fn probe(
    endpoint: &Endpoint,
    config: &RedisConfig,
) -> std::result::Result<ServerInfo, ClientError> {
    let url = &config.url;
    let started = Instant::now();
    let client = endpoint
        .node_client(config)
        .await
        .map_err(|error| ClientError::new(&error, url, started.elapsed()))?;
    let settings = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(config.connect_timeout))
        .set_response_timeout(Some(config.response_timeout));
    let started = Instant::now();
    let mut conn: MultiplexedConnection = client
        .get_multiplexed_async_connection_with_config(&settings)
        .await
        .map_err(|error| {
            if error.is_timeout() {
                ClientError::timeout(format!(
                    "no connection within {} (TCP connect and Redis handshake; `RedisConfig::connect_timeout`)",
                    seconds(started.elapsed())
                ))
            } else {
                ClientError::new(&error, url, started.elapsed())
            }
        })?;
    let started = Instant::now();
    let info: String = redis::cmd("INFO")
        .query_async(&mut conn)
        .await
        .map_err(|error| {
            if error.is_timeout() {
                ClientError::timeout(format!(
                    "connected, but no reply to INFO within {} (`RedisConfig::response_timeout`)",
                    seconds(started.elapsed())
                ))
            } else {
                ClientError::new(&error, url, started.elapsed())
            }
        })?;
    let field = |name: &str| {
        info.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
            .map(|value| value.trim().to_owned())
    };
    Ok(ServerInfo {
        version: field("redis_version").unwrap_or_default(),
        maxmemory_policy: field("maxmemory_policy").unwrap_or_default(),
    })
}
