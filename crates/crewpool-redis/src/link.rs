//! The connection to Redis and one method per script: what every part of a queue
//! (producer, fetcher, acker, heartbeat, deliveries) uses to talk to Redis.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, Value};

use crate::keys::Keys;
use crate::scripts::Scripts;
use crate::wire::{array, bytes, int, uint};
use crate::{Error, RedisConfig, Result};

/// How many expired leases and due delayed jobs one fetch handles at most.
const CHORES_PER_FETCH: usize = 1000;

/// A leased job as the fetch script returns it, before decoding.
#[derive(Debug)]
pub(crate) struct RawJob {
    pub(crate) id: u64,
    pub(crate) token: u64,
    pub(crate) attempt: u32,
    pub(crate) data: Vec<u8>,
}

/// What one fetch did.
#[derive(Debug, Default)]
pub(crate) struct Fetched {
    pub(crate) jobs: Vec<RawJob>,
    /// How long until the next lease deadline or delayed job, when nothing was taken.
    pub(crate) next_due: Option<Duration>,
    /// Expired leases put back in the queue by this call.
    pub(crate) recovered: u64,
    /// Expired leases dead-lettered by this call (out of attempts).
    pub(crate) buried: u64,
}

/// Counters of what this process did; see [`ClientCounters`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) fetched: AtomicU64,
    pub(crate) fetch_calls: AtomicU64,
    pub(crate) acked: AtomicU64,
    pub(crate) ack_flushes: AtomicU64,
    pub(crate) stale: AtomicU64,
    pub(crate) retried: AtomicU64,
    pub(crate) dead_lettered: AtomicU64,
    pub(crate) released: AtomicU64,
    pub(crate) recovered: AtomicU64,
    pub(crate) undecodable: AtomicU64,
    pub(crate) redis_errors: AtomicU64,
    pub(crate) heartbeats: AtomicU64,
    pub(crate) leases_lost: AtomicU64,
}

/// A snapshot of what this process's queue handle did since it connected.
///
/// Every counter only grows. Relaxed loads: each counter is exact on its own, but a
/// snapshot is not taken atomically across counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientCounters {
    /// Jobs fetched (leased to this process).
    pub fetched: u64,
    /// Fetch script calls (each takes a batch).
    pub fetch_calls: u64,
    /// Jobs acknowledged.
    pub acked: u64,
    /// Ack flushes (each settles a batch).
    pub ack_flushes: u64,
    /// Settlements refused because the lease was lost (fencing at work).
    pub stale: u64,
    /// Jobs scheduled for another attempt.
    pub retried: u64,
    /// Jobs moved to the dead-letter list by this process.
    pub dead_lettered: u64,
    /// Jobs put back unstarted.
    pub released: u64,
    /// Jobs of dead or stalled workers put back by this process's fetches.
    pub recovered: u64,
    /// Envelopes that did not decode (dead-lettered with the reason).
    pub undecodable: u64,
    /// Failed Redis calls in the background tasks (each followed by a backoff).
    pub redis_errors: u64,
    /// Heartbeat rounds that extended leases.
    pub heartbeats: u64,
    /// Leases a heartbeat found lost.
    pub leases_lost: u64,
}

impl Counters {
    pub(crate) fn add(counter: &AtomicU64, n: usize) {
        // Relaxed: a statistic, ordered with nothing else.
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> ClientCounters {
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        ClientCounters {
            fetched: get(&self.fetched),
            fetch_calls: get(&self.fetch_calls),
            acked: get(&self.acked),
            ack_flushes: get(&self.ack_flushes),
            stale: get(&self.stale),
            retried: get(&self.retried),
            dead_lettered: get(&self.dead_lettered),
            released: get(&self.released),
            recovered: get(&self.recovered),
            undecodable: get(&self.undecodable),
            redis_errors: get(&self.redis_errors),
            heartbeats: get(&self.heartbeats),
            leases_lost: get(&self.leases_lost),
        }
    }
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

/// The connection, keys and scripts of one queue, plus what this process holds.
pub(crate) struct Link {
    pub(crate) config: RedisConfig,
    pub(crate) keys: Keys,
    scripts: Scripts,
    client: Client,
    conn: ConnectionManager,
    pub(crate) counters: Counters,
    /// Deliveries this process holds (fetched and not settled): id → fencing token.
    /// The heartbeat extends exactly these leases.
    held: Mutex<HashMap<u64, u64>>,
    /// The pending count Redis reported last (after a push or a fetch).
    observed_pending: AtomicUsize,
    /// Wakes this process's idle fetcher to fetch again: a job it retried is due
    /// before the fetcher's timer.
    pub(crate) rescan: tokio::sync::Notify,
}

impl Link {
    pub(crate) async fn connect(config: RedisConfig) -> Result<Self> {
        config.validate()?;
        let client = client(&config)?;
        let conn = manager(&client, &config, config.response_timeout).await?;
        Ok(Link {
            keys: Keys::new(&config.prefix, &config.queue),
            scripts: Scripts::new(),
            client,
            conn,
            counters: Counters::default(),
            held: Mutex::new(HashMap::new()),
            observed_pending: AtomicUsize::new(0),
            rescan: tokio::sync::Notify::new(),
            config,
        })
    }

    /// A second connection, for the blocking wait (which would stall every command
    /// multiplexed behind it).
    pub(crate) async fn blocking_connection(&self) -> Result<ConnectionManager> {
        let timeout = self.config.max_block + self.config.response_timeout;
        manager(&self.client, &self.config, timeout).await
    }

    pub(crate) fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }

    pub(crate) fn error(&self, error: &redis::RedisError) -> Error {
        Error::redis(error, &self.config.url)
    }

    pub(crate) fn observed_pending(&self) -> usize {
        // Relaxed: a hint that may lag (see `Queue::depth`).
        self.observed_pending.load(Ordering::Relaxed)
    }

    fn observe_pending(&self, pending: u64) {
        let pending = usize::try_from(pending).unwrap_or(usize::MAX);
        self.observed_pending.store(pending, Ordering::Relaxed);
    }

    fn held(&self) -> MutexGuard<'_, HashMap<u64, u64>> {
        // Every critical section is a single map operation: a panic cannot leave it
        // half-done.
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Stops heartbeating `id`, if the held delivery is still the one with `token`.
    pub(crate) fn forget(&self, id: u64, token: u64) {
        let mut held = self.held();
        if held.get(&id) == Some(&token) {
            held.remove(&id);
        }
    }

    /// Stops heartbeating the deliveries in `lost` that are still held under the token
    /// `items` lists for them; returns how many were (the others were settled
    /// meanwhile, racing the heartbeat).
    pub(crate) fn drop_lost(&self, items: &[(u64, u64)], lost: &[u64]) -> usize {
        let tokens: HashMap<u64, u64> = items.iter().copied().collect();
        let mut held = self.held();
        let mut dropped = 0;
        for id in lost {
            if let Some(token) = tokens.get(id)
                && held.get(id) == Some(token)
            {
                held.remove(id);
                dropped += 1;
            }
        }
        dropped
    }

    pub(crate) fn held_count(&self) -> usize {
        self.held().len()
    }

    pub(crate) fn held_snapshot(&self) -> Vec<(u64, u64)> {
        self.held()
            .iter()
            .map(|(&id, &token)| (id, token))
            .collect()
    }

    /// Enqueues encoded envelopes in one script call; returns the first id.
    pub(crate) async fn enqueue(&self, envelopes: &[Vec<u8>]) -> Result<u64> {
        let mut invocation = self.scripts.enqueue.prepare_invoke();
        invocation
            .key(&self.keys.seq)
            .key(&self.keys.jobs)
            .key(&self.keys.pending);
        for envelope in envelopes {
            invocation.arg(envelope.as_slice());
        }
        let reply: Value = invocation
            .invoke_async(&mut self.conn())
            .await
            .map_err(|e| self.error(&e))?;
        let reply = array(reply)?;
        let [first, pending] = reply.as_slice() else {
            return Err(Error::Protocol(format!(
                "enqueue returned {} values",
                reply.len()
            )));
        };
        self.observe_pending(uint(pending)?);
        uint(first)
    }

    /// Enqueues chunks of envelopes with plain commands, exactly as the crate docs
    /// tell other languages to: one `INCRBY` reserves every id, then each chunk's
    /// `HSET` + `LPUSH` go in a `MULTI`/`EXEC`, all chunks in one pipeline (Redis runs
    /// them in order). No script: Lua's per-argument overhead would dominate.
    /// Returns the first id; the ids follow in order.
    pub(crate) async fn enqueue_chunks(&self, chunks: &[Vec<Vec<u8>>]) -> Result<u64> {
        let total: usize = chunks.iter().map(Vec::len).sum();
        let mut conn = self.conn();
        let last: u64 = redis::cmd("INCRBY")
            .arg(&self.keys.seq)
            .arg(total)
            .query_async(&mut conn)
            .await
            .map_err(|e| self.error(&e))?;
        let first = last + 1 - total as u64;
        let mut pipe = redis::pipe();
        // One MULTI/EXEC around everything: the jobs appear together or not at all.
        pipe.atomic();
        let mut next = first;
        for chunk in chunks {
            let ids: Vec<u64> = (next..next + chunk.len() as u64).collect();
            next += chunk.len() as u64;
            let hset = pipe.cmd("HSET").arg(&self.keys.jobs);
            for (id, envelope) in ids.iter().zip(chunk) {
                hset.arg(*id).arg(envelope.as_slice());
            }
            pipe.cmd("LPUSH").arg(&self.keys.pending).arg(&ids);
        }
        let replies: Vec<Value> = pipe
            .query_async(&mut conn)
            .await
            .map_err(|e| self.error(&e))?;
        if let Some(pending) = replies.last() {
            self.observe_pending(uint(pending)?);
        }
        Ok(first)
    }

    /// Leases up to `count` jobs (0: housekeeping only) and records them as held.
    pub(crate) async fn fetch(&self, count: usize) -> Result<Fetched> {
        let config = &self.config;
        let reply: Value = self
            .scripts
            .fetch
            .key(&self.keys.pending)
            .key(&self.keys.jobs)
            .key(&self.keys.active)
            .key(&self.keys.lease)
            .key(&self.keys.attempts)
            .key(&self.keys.delayed)
            .key(&self.keys.fence)
            .key(&self.keys.dead)
            .key(&self.keys.dead_info)
            .arg(count)
            .arg(millis(config.lease))
            .arg(config.retry.attempts())
            .arg(config.dead_letter_limit)
            .arg(CHORES_PER_FETCH)
            .invoke_async(&mut self.conn())
            .await
            .map_err(|e| self.error(&e))?;
        Counters::add(&self.counters.fetch_calls, 1);
        let mut reply = array(reply)?.into_iter();
        let mut header = [0_i64; 5];
        for slot in &mut header {
            *slot = int(&reply.next().ok_or_else(|| short("fetch"))?)?;
        }
        let [pending, next_due, recovered, buried, missing] = header;
        self.observe_pending(u64::try_from(pending).unwrap_or(0));
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
        if missing > 0 {
            tracing::warn!(queue = %config.queue, missing, "skipped pending ids that have no envelope in the jobs hash");
        }
        let mut jobs = Vec::with_capacity(reply.len() / 4);
        while let Some(id) = reply.next() {
            let (Some(token), Some(attempt), Some(data)) =
                (reply.next(), reply.next(), reply.next())
            else {
                return Err(short("fetch"));
            };
            jobs.push(RawJob {
                id: uint(&id)?,
                token: uint(&token)?,
                attempt: u32::try_from(uint(&attempt)?).unwrap_or(u32::MAX),
                data: bytes(data)?,
            });
        }
        if !jobs.is_empty() {
            let mut held = self.held();
            for job in &jobs {
                held.insert(job.id, job.token);
            }
        }
        Counters::add(&self.counters.fetched, jobs.len());
        let next_due = (jobs.is_empty() && next_due >= 0)
            .then(|| Duration::from_millis(u64::try_from(next_due).unwrap_or(0)));
        Ok(Fetched {
            jobs,
            next_due,
            recovered: u64::try_from(recovered).unwrap_or(0),
            buried: u64::try_from(buried).unwrap_or(0),
        })
    }

    /// Waits (on the blocking connection) until `pending` is non-empty, or `timeout`
    /// passes. Moves nothing: `BLMOVE pending pending LEFT LEFT` pops the newest id and
    /// pushes it straight back where it was, so a wait that is dropped, or a process
    /// that dies while waiting, strands no job.
    pub(crate) async fn wait_for_jobs(
        &self,
        blocking: &mut ConnectionManager,
        timeout: Duration,
    ) -> Result<()> {
        let seconds = timeout.as_secs_f64().max(0.01);
        let _: Value = redis::cmd("BLMOVE")
            .arg(&self.keys.pending)
            .arg(&self.keys.pending)
            .arg("LEFT")
            .arg("LEFT")
            .arg(format!("{seconds:.3}"))
            .query_async(blocking)
            .await
            .map_err(|e| self.error(&e))?;
        Ok(())
    }

    /// Acknowledges `(id, token)` pairs; one code per pair (see `ack.lua`).
    pub(crate) async fn ack(&self, items: &[(u64, u64)]) -> Result<Vec<i64>> {
        let mut invocation = self.scripts.ack.prepare_invoke();
        invocation
            .key(&self.keys.active)
            .key(&self.keys.lease)
            .key(&self.keys.jobs)
            .key(&self.keys.attempts);
        for &(id, token) in items {
            invocation.arg(id).arg(token);
        }
        let reply: Value = invocation
            .invoke_async(&mut self.conn())
            .await
            .map_err(|e| self.error(&e))?;
        Counters::add(&self.counters.ack_flushes, 1);
        codes(reply, items.len(), "ack")
    }

    /// Extends the leases of `(id, token)` pairs; returns the ids whose lease was lost.
    pub(crate) async fn extend(&self, items: &[(u64, u64)]) -> Result<Vec<u64>> {
        let mut invocation = self.scripts.extend.prepare_invoke();
        invocation
            .key(&self.keys.active)
            .key(&self.keys.lease)
            .key(&self.keys.jobs)
            .arg(millis(self.config.lease));
        for &(id, token) in items {
            invocation.arg(id).arg(token);
        }
        let reply: Value = invocation
            .invoke_async(&mut self.conn())
            .await
            .map_err(|e| self.error(&e))?;
        array(reply)?.iter().map(uint).collect()
    }

    /// Puts `(id, token)` pairs back at the front of the queue; one code per pair.
    pub(crate) async fn release(&self, items: &[(u64, u64)]) -> Result<Vec<i64>> {
        let mut invocation = self.scripts.release.prepare_invoke();
        invocation
            .key(&self.keys.active)
            .key(&self.keys.lease)
            .key(&self.keys.pending);
        for &(id, token) in items {
            invocation.arg(id).arg(token);
        }
        let reply = invocation.invoke_async(&mut self.conn()).await;
        // Settled whatever the outcome: after an error the job's state is unknown, and
        // heartbeating it on would keep it leased to nobody; its lease now brings it back.
        self.settled(items.iter().copied());
        let codes = codes(reply.map_err(|e| self.error(&e))?, items.len(), "release")?;
        let released = codes.iter().filter(|&&code| code == 1).count();
        Counters::add(&self.counters.released, released);
        Counters::add(&self.counters.stale, items.len() - released);
        Ok(codes)
    }

    /// Schedules another attempt after `delay` (or dead-letters a job out of
    /// attempts): 1 scheduled, 2 dead-lettered, 0 lease lost.
    pub(crate) async fn retry(
        &self,
        id: u64,
        token: u64,
        delay: Duration,
        reason: &str,
    ) -> Result<i64> {
        let reply: redis::RedisResult<Value> = self
            .scripts
            .retry
            .key(&self.keys.active)
            .key(&self.keys.lease)
            .key(&self.keys.attempts)
            .key(&self.keys.delayed)
            .key(&self.keys.pending)
            .key(&self.keys.jobs)
            .key(&self.keys.dead)
            .key(&self.keys.dead_info)
            .arg(id)
            .arg(token)
            .arg(millis(delay))
            .arg(reason)
            .arg(self.config.retry.attempts())
            .arg(self.config.dead_letter_limit)
            .invoke_async(&mut self.conn())
            .await;
        // Settled whatever the outcome: see `release`.
        self.settled([(id, token)]);
        let code = int(&reply.map_err(|e| self.error(&e))?)?;
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

    /// Dead-letters `(id, token, reason)` triples; one code per triple.
    pub(crate) async fn bury(&self, items: &[(u64, u64, String)]) -> Result<Vec<i64>> {
        let mut invocation = self.scripts.bury.prepare_invoke();
        invocation
            .key(&self.keys.active)
            .key(&self.keys.lease)
            .key(&self.keys.attempts)
            .key(&self.keys.jobs)
            .key(&self.keys.dead)
            .key(&self.keys.dead_info)
            .arg(self.config.dead_letter_limit);
        for (id, token, reason) in items {
            invocation.arg(*id).arg(*token).arg(reason.as_str());
        }
        let reply = invocation.invoke_async(&mut self.conn()).await;
        // Settled whatever the outcome: see `release`.
        self.settled(items.iter().map(|(id, token, _)| (*id, *token)));
        let codes = codes(reply.map_err(|e| self.error(&e))?, items.len(), "bury")?;
        let buried = codes.iter().filter(|&&code| code == 1).count();
        Counters::add(&self.counters.dead_lettered, buried);
        Counters::add(&self.counters.stale, items.len() - buried);
        Ok(codes)
    }

    /// Moves dead letters back to the queue: all of them (`ids` = `None`) or the given
    /// ones. Returns how many went back.
    pub(crate) async fn requeue(&self, ids: Option<&[u64]>) -> Result<u64> {
        let mut invocation = self.scripts.requeue.prepare_invoke();
        invocation
            .key(&self.keys.dead)
            .key(&self.keys.dead_info)
            .key(&self.keys.attempts)
            .key(&self.keys.jobs)
            .key(&self.keys.pending);
        match ids {
            None => {
                invocation.arg("all");
            }
            Some(ids) => {
                invocation.arg("ids");
                for id in ids {
                    invocation.arg(*id);
                }
            }
        }
        let reply: Value = invocation
            .invoke_async(&mut self.conn())
            .await
            .map_err(|e| self.error(&e))?;
        uint(&reply)
    }

    /// Reads the server's version and eviction policy.
    pub(crate) async fn server_info(&self) -> Result<ServerInfo> {
        let info: String = redis::cmd("INFO")
            .query_async(&mut self.conn())
            .await
            .map_err(|e| self.error(&e))?;
        let field = |name: &str| {
            info.lines()
                .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
                .map(|value| value.trim().to_owned())
        };
        let version = field("redis_version").unwrap_or_default();
        let maxmemory_policy = field("maxmemory_policy").unwrap_or_default();
        Ok(ServerInfo {
            version,
            maxmemory_policy,
        })
    }

    /// Stops heartbeating settled deliveries.
    pub(crate) fn settled(&self, items: impl IntoIterator<Item = (u64, u64)>) {
        let mut held = self.held();
        for (id, token) in items {
            if held.get(&id) == Some(&token) {
                held.remove(&id);
            }
        }
    }
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("url", &self.config.url)
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

fn short(script: &str) -> Error {
    Error::Protocol(format!("{script} returned a truncated reply"))
}

fn codes(reply: Value, expected: usize, script: &str) -> Result<Vec<i64>> {
    let codes = array(reply)?.iter().map(int).collect::<Result<Vec<_>>>()?;
    if codes.len() != expected {
        return Err(Error::Protocol(format!(
            "{script} returned {} codes for {expected} jobs",
            codes.len()
        )));
    }
    Ok(codes)
}

pub(crate) fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

fn client(config: &RedisConfig) -> Result<Client> {
    let url = &config.url;
    #[cfg(feature = "tls")]
    if let Some(pem) = &config.tls_root_cert {
        return Client::build_with_tls(
            url.expose(),
            redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(pem.clone()),
            },
        )
        .map_err(|e| Error::Config(url.scrub(e.to_string())));
    }
    Client::open(url.expose()).map_err(|e| Error::Config(url.scrub(e.to_string())))
}

async fn manager(
    client: &Client,
    config: &RedisConfig,
    response_timeout: Duration,
) -> Result<ConnectionManager> {
    // Reconnects back off exponentially from 50 ms to 2 s; each attempt gives up after
    // 2 s. A command issued while Redis is away fails, and its caller backs off too.
    let manager_config = ConnectionManagerConfig::new()
        .set_min_delay(Duration::from_millis(50))
        .set_max_delay(Duration::from_secs(2))
        .set_number_of_retries(4)
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(response_timeout));
    ConnectionManager::new_with_config(client.clone(), manager_config)
        .await
        .map_err(|e| Error::redis(&e, &config.url))
}
