//! The queue handle: producer API, consumer factory, inspection.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use crewpool_core::{
    Envelope, JobId, PushError, Queue, QueueError, Replies, RetryPolicy, Retryable,
};
use redis::Value;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::watch;

use crate::consumer::RedisConsumer;
use crate::control::{self, Control};
use crate::counters::ClientCounters;
use crate::fetcher::{Demand, Fetcher, Leased};
use crate::link::{ENQUEUE_CHUNK, Link, ServerInfo};
use crate::results::{Codec, ResultStream, Typed, Waiters};
use crate::settler::Settler;
use crate::wire;
use crate::{Enqueued, Error, JobOptions, RateLimit, RedisConfig, Result, Schedule};

/// How many `LPUSH`es of [`ENQUEUE_CHUNK`] records a bulk enqueue sends in one
/// transaction (one round trip).
const ENQUEUE_WINDOW: usize = 8;

/// A queue of `J` jobs in Redis, shared by every process that connects to it with the
/// same URL, prefix and name.
///
/// It is the producer ([`enqueue`](RedisQueue::enqueue),
/// [`enqueue_bulk`](RedisQueue::enqueue_bulk), [`Queue::push`]), the factory of this
/// process's [`RedisConsumer`]s, and the inspector ([`stats`](RedisQueue::stats),
/// [`dead_letters`](RedisQueue::dead_letters)). See the [crate docs](crate) for the
/// semantics and the wire format.
pub struct RedisQueue<J> {
    front: Arc<Front<J>>,
}

/// What the queue handle and its consumers share.
pub(crate) struct Front<J> {
    pub(crate) settler: Arc<Settler>,
    runtime: tokio::runtime::Handle,
    server: ServerInfo,
    close_signal: watch::Sender<bool>,
    /// Set with `close_signal`: read by consumers for every job they hand out, so a
    /// plain load rather than the watch's lock.
    closed: AtomicBool,
    buffer: OnceLock<Buffer<J>>,
    /// The result type, once [`RedisQueue::with_results`] set it: the codec, and the
    /// handles of this process waiting for results.
    pub(crate) results: OnceLock<Arc<Waiters>>,
    _job: PhantomData<fn() -> J>,
}

/// The local buffer the fetcher fills and consumers take from.
pub(crate) struct Buffer<J> {
    pub(crate) jobs: flume::Receiver<Leased<J>>,
    pub(crate) demand: Arc<Demand>,
}

impl<J> Front<J> {
    pub(crate) fn link(&self) -> &Link {
        &self.settler.link
    }

    pub(crate) fn runtime(&self) -> &tokio::runtime::Handle {
        &self.runtime
    }

    /// Whether the queue was closed in this process.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Closes the queue in this process: no more enqueues, fetches or hand-outs.
    fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.close_signal.send_replace(true);
    }
}

impl<J> Drop for Front<J> {
    fn drop(&mut self) {
        // The last handle is gone: the fetcher stops and releases what it prefetched.
        self.close();
    }
}

impl<J> RedisQueue<J>
where
    J: Serialize + DeserializeOwned + Send + 'static,
{
    /// Connects to Redis and checks the server: version 6.2 or newer (an error
    /// otherwise), and `maxmemory-policy noeviction` (a warning otherwise, since an
    /// evicting Redis may silently delete queued jobs; see
    /// [`server`](RedisQueue::server)).
    ///
    /// One attempt by default, bounded by [`RedisConfig::connect_timeout`] (2 s) for
    /// the connection and [`RedisConfig::response_timeout`] for the server check; with
    /// [`RedisConfig::connect_retry_for`] it keeps trying while Redis cannot be reached.
    ///
    /// Must be called within a tokio runtime: the background tasks (acknowledgement
    /// flushes, heartbeats, and once a consumer exists the fetcher) run on it.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for an invalid configuration; [`Error::Connect`] (naming the
    /// URL, its password hidden) when Redis cannot be reached, does not answer in time
    /// ([`Error::is_timeout`]) or refuses the credentials ([`Error::is_auth`], never
    /// retried); [`Error::Unsupported`] for a server older than 6.2.
    pub async fn connect(config: RedisConfig) -> Result<Self> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            Error::Config("RedisQueue::connect must run within a tokio runtime".to_owned())
        })?;
        let (link, server) = Link::connect(config).await?;
        let link = Arc::new(link);
        if !server.at_least(6, 2) {
            return Err(Error::Unsupported(format!(
                "Redis {} is older than 6.2 (RPOP with a count and BLMOVE are needed)",
                server.version
            )));
        }
        if !server.is_noeviction() {
            tracing::warn!(
                queue = %link.config.queue,
                maxmemory_policy = %server.maxmemory_policy,
                "Redis may evict keys when memory runs out, which deletes queued jobs silently; \
                 set `maxmemory-policy noeviction` on this server"
            );
        }
        let (close_signal, _) = watch::channel(false);
        crate::registry::record(&link).await?;
        let settler = Settler::start(link, &runtime);
        Ok(RedisQueue {
            front: Arc::new(Front {
                settler,
                runtime,
                server,
                close_signal,
                closed: AtomicBool::new(false),
                buffer: OnceLock::new(),
                results: OnceLock::new(),
                _job: PhantomData,
            }),
        })
    }

    /// Declares the type of this queue's job results, `T` (a pool's `Worker::Output`)
    /// and `E` (its `Worker::Error`), so that a pool on this queue offers `submit`
    /// with a handle that resolves with the job's outcome, wherever it runs. Call it in
    /// the producer **and** in every worker process (a worker stores the outcome of a
    /// job whose producer waits only if it knows the types; a worker process without
    /// it, or of a release before results, stores nothing and the handle waits until
    /// its timeout). See "Results" in the crate docs.
    ///
    /// Once per queue handle: a second call keeps the first types.
    #[must_use]
    pub fn with_results<T, E>(self) -> Self
    where
        T: Serialize + DeserializeOwned + Send + 'static,
        E: Serialize + DeserializeOwned + Send + 'static,
    {
        let codec: Arc<dyn Codec> = Arc::new(Typed::<T, E>::new());
        let _ = self.front.results.set(Arc::new(Waiters::new(codec)));
        self
    }

    /// Results this process waits for and has not received yet (handles, including
    /// ones dropped or timed out, until their result comes or
    /// [`result_ttl`](RedisConfig::result_ttl) passes), plus results that came before
    /// their handle was registered.
    pub fn awaiting_results(&self) -> usize {
        self.front.results.get().map_or(0, |waiters| waiters.len())
    }

    /// Adds one job; returns its id.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] once the queue was closed in this process
    /// ([`Queue::close`], which a pool's shutdown does; checked when the future runs);
    /// [`Error::PayloadTooLarge`] when the encoded envelope is over
    /// [`RedisConfig::max_payload`] (nothing is stored), [`Error::Encode`] when the job
    /// does not serialise, [`Error::Redis`] when the call failed. After a connection
    /// error the job may or may not have been stored; enqueueing it again may make a
    /// duplicate (at-least-once).
    pub fn enqueue(&self, job: &J) -> impl Future<Output = Result<JobId>> + Send + '_ {
        // Encoded before the future starts, so the future holds bytes, not `&J` (and
        // needs no `J: Sync`).
        let headers = self.headers(None);
        self.store(wire::encode_with(
            job,
            self.link().config.max_payload,
            None,
            headers.as_ref(),
        ))
    }

    /// The headers of the jobs enqueued now: what the queue's propagator injects, then
    /// `extra` (a job's own, which win); `None` when there are none.
    fn headers(&self, extra: Option<&crate::Headers>) -> Option<crate::Headers> {
        let propagator = self.link().config.propagator.as_ref();
        if propagator.is_none() && extra.is_none_or(|extra| extra.is_empty()) {
            return None;
        }
        let mut headers = crate::Headers::new();
        if let Some(propagator) = propagator {
            propagator.0.inject(&mut headers);
        }
        if let Some(extra) = extra {
            headers.extend(extra.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        (!headers.is_empty()).then_some(headers)
    }

    /// Stores one encoded envelope (or returns its encoding error) in one script call,
    /// unless the queue is closed.
    async fn store(&self, envelope: Result<Vec<u8>>) -> Result<JobId> {
        if self.is_closed() {
            return Err(Error::Closed);
        }
        Ok(JobId(self.link().enqueue(&envelope?).await?))
    }

    /// Adds many jobs in batches (one script call takes their ids, then `LPUSH`es of
    /// up to 8,000 job records in one `MULTI`/`EXEC` per round trip); returns their
    /// ids, in order.
    ///
    /// Every job is encoded and checked against the size limit before anything is
    /// sent, so an oversized job fails the whole call with nothing stored.
    ///
    /// # Errors
    ///
    /// As for [`enqueue`](RedisQueue::enqueue). When a Redis call fails midway (or the
    /// queue is closed midway), the batches before it are stored and the error is
    /// returned.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future stops sending; batches already sent may be stored.
    pub fn enqueue_bulk<I>(&self, jobs: I) -> impl Future<Output = Result<Vec<JobId>>> + Send + '_
    where
        I: IntoIterator,
        I::Item: std::borrow::Borrow<J>,
    {
        use std::borrow::Borrow;
        let max = self.link().config.max_payload;
        let headers = self.headers(None);
        let envelopes = jobs
            .into_iter()
            .map(|job| wire::encode_with(job.borrow(), max, None, headers.as_ref()))
            .collect::<Result<Vec<_>>>();
        self.enqueue_encoded(envelopes)
    }

    async fn enqueue_encoded(&self, envelopes: Result<Vec<Vec<u8>>>) -> Result<Vec<JobId>> {
        if self.is_closed() {
            return Err(Error::Closed);
        }
        let envelopes = envelopes?;
        let mut ids = Vec::with_capacity(envelopes.len());
        for window in envelopes.chunks(ENQUEUE_CHUNK * ENQUEUE_WINDOW) {
            if self.is_closed() {
                return Err(Error::Closed);
            }
            let first = self.link().enqueue_chunks(window).await?;
            ids.extend((first..first + window.len() as u64).map(JobId));
        }
        Ok(ids)
    }

    /// Adds one job with `options`: a priority level, a due time, a start deadline, a
    /// uniqueness key (see [`JobOptions`]), in one script call. Returns the new job's
    /// id, or, when a job with the same uniqueness key is still pending, scheduled,
    /// waiting for a retry or running, that job's id ([`Enqueued::Duplicate`]).
    ///
    /// # Errors
    ///
    /// As for [`enqueue`](RedisQueue::enqueue), and [`Error::Config`] for options out
    /// of range (a level above [`MAX_PRIORITY`](crate::MAX_PRIORITY), an empty
    /// uniqueness key or a zero TTL).
    pub fn enqueue_with(
        &self,
        job: &J,
        options: &JobOptions,
    ) -> impl Future<Output = Result<Enqueued>> + Send + '_ {
        let headers = self.headers(Some(&options.headers));
        let envelope = self.result_channel(options).and_then(|channel| {
            wire::encode_with(
                job,
                self.link().config.max_payload,
                channel.as_deref(),
                headers.as_ref(),
            )
        });
        let options = options.clone();
        async move {
            let mut outcome = self.push(&options, vec![envelope?]).await?;
            outcome
                .pop()
                .ok_or_else(|| Error::Protocol("push returned no id".to_owned()))
        }
    }

    /// Adds many jobs with the same `options` (without a uniqueness key, which names
    /// one job), in script calls of up to 1,000 jobs; returns their ids, in order.
    ///
    /// # Errors
    ///
    /// As for [`enqueue_bulk`](RedisQueue::enqueue_bulk) and
    /// [`enqueue_with`](RedisQueue::enqueue_with); [`Error::Config`] for options with
    /// a uniqueness key.
    pub fn enqueue_bulk_with<I>(
        &self,
        jobs: I,
        options: &JobOptions,
    ) -> impl Future<Output = Result<Vec<JobId>>> + Send + '_
    where
        I: IntoIterator,
        I::Item: std::borrow::Borrow<J>,
    {
        use std::borrow::Borrow;
        let max = self.link().config.max_payload;
        let headers = self.headers(Some(&options.headers));
        let envelopes = self.result_channel(options).and_then(|channel| {
            jobs.into_iter()
                .map(|job| {
                    wire::encode_with(job.borrow(), max, channel.as_deref(), headers.as_ref())
                })
                .collect::<Result<Vec<_>>>()
        });
        let options = options.clone();
        async move {
            options.validate(true)?;
            let envelopes = envelopes?;
            let mut ids = Vec::with_capacity(envelopes.len());
            for chunk in envelopes.chunks(PUSH_CHUNK) {
                let pushed = self.push(&options, chunk.to_vec()).await?;
                ids.extend(pushed.into_iter().map(Enqueued::id));
            }
            Ok(ids)
        }
    }

    /// Adds one job due at `when` (an instant you chose; one in the past is due at
    /// once); returns its id. It waits in the scheduled set until then, and an idle
    /// worker wakes for it on time.
    ///
    /// # Errors
    ///
    /// As for [`enqueue`](RedisQueue::enqueue).
    pub async fn enqueue_at(&self, job: &J, when: SystemTime) -> Result<JobId> {
        Ok(self
            .enqueue_with(job, &JobOptions::new().at(when))
            .await?
            .id())
    }

    /// Adds one job due `delay` from when Redis receives it (Redis's clock); returns
    /// its id.
    ///
    /// # Errors
    ///
    /// As for [`enqueue`](RedisQueue::enqueue).
    pub async fn enqueue_in(&self, job: &J, delay: Duration) -> Result<JobId> {
        Ok(self
            .enqueue_with(job, &JobOptions::new().delay(delay))
            .await?
            .id())
    }

    /// Adds many jobs due at `when`; returns their ids, in order.
    ///
    /// # Errors
    ///
    /// As for [`enqueue_bulk`](RedisQueue::enqueue_bulk).
    pub async fn enqueue_bulk_at<I>(&self, jobs: I, when: SystemTime) -> Result<Vec<JobId>>
    where
        I: IntoIterator,
        I::Item: std::borrow::Borrow<J>,
    {
        self.enqueue_bulk_with(jobs, &JobOptions::new().at(when))
            .await
    }

    /// Adds many jobs due `delay` from when Redis receives each call's batch (Redis's
    /// clock); returns their ids, in order.
    ///
    /// # Errors
    ///
    /// As for [`enqueue_bulk`](RedisQueue::enqueue_bulk).
    pub async fn enqueue_bulk_in<I>(&self, jobs: I, delay: Duration) -> Result<Vec<JobId>>
    where
        I: IntoIterator,
        I::Item: std::borrow::Borrow<J>,
    {
        self.enqueue_bulk_with(jobs, &JobOptions::new().delay(delay))
            .await
    }

    /// One `push.lua` call, unless the queue is closed.
    async fn push(&self, options: &JobOptions, envelopes: Vec<Vec<u8>>) -> Result<Vec<Enqueued>> {
        if self.is_closed() {
            return Err(Error::Closed);
        }
        options.validate(envelopes.len() > 1)?;
        let pushed = self.link().push(options, &envelopes).await?;
        if options.result
            && let Some(waiters) = self.front.results.get()
        {
            waiters.listen(
                &self.front.settler.link,
                &self.front.runtime,
                self.front.close_signal.subscribe(),
            );
            for enqueued in &pushed {
                if let Enqueued::Added(id) = enqueued {
                    waiters.expect(id.0);
                }
            }
        }
        Ok(pushed)
    }

    /// This handle's reply channel, for jobs enqueued with [`JobOptions::result`].
    fn result_channel(&self, options: &JobOptions) -> Result<Option<String>> {
        if !options.result {
            return Ok(None);
        }
        match self.front.results.get() {
            Some(waiters) => Ok(Some(waiters.channel.clone())),
            None => Err(Error::Config(
                "JobOptions::result needs RedisQueue::with_results::<Output, Error>() on the queue"
                    .to_owned(),
            )),
        }
    }

    /// The results of the jobs this handle enqueued with [`JobOptions::result`], as
    /// workers anywhere finish them: for a producer that wants every result of what it
    /// submitted without keeping a handle per job. `T` and `E` are the types given to
    /// [`with_results`](RedisQueue::with_results). Every stream of this handle takes
    /// from the same results (each result once); results wait, unbounded, until
    /// taken. See "Results" in the crate docs.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] without [`with_results`](RedisQueue::with_results).
    pub fn results<T, E>(&self) -> Result<ResultStream<T, E>>
    where
        T: DeserializeOwned,
        E: DeserializeOwned,
    {
        match self.front.results.get() {
            Some(waiters) => Ok(ResultStream::new(waiters.stream())),
            None => Err(Error::Config(
                "a results stream needs RedisQueue::with_results::<Output, Error>() on the queue"
                    .to_owned(),
            )),
        }
    }

    /// Adds the periodic schedule `name`, or replaces it (a change applies from now
    /// on: no tick before it fires), with `job` as the job of every tick. Returns the
    /// schedule's version (every change gets a new one). Worker processes pick the
    /// change up at once. See "Periodic jobs" in the crate docs.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for an empty name or a level out of range, [`Error::Encode`]
    /// when the job does not serialise, [`Error::Redis`] when the call fails.
    pub async fn set_schedule(&self, name: &str, schedule: &Schedule, job: &J) -> Result<u64> {
        if name.is_empty() {
            return Err(Error::Config("a schedule needs a name".to_owned()));
        }
        schedule.validate()?;
        let spec = schedule.to_json(job)?;
        self.link().set_schedule(name, &spec).await
    }

    /// Removes the periodic schedule `name`; returns whether it existed. Jobs it
    /// already enqueued stay.
    ///
    /// # Errors
    ///
    /// [`Error::Redis`] when the call fails.
    pub async fn remove_schedule(&self, name: &str) -> Result<bool> {
        self.link().remove_schedule(name).await
    }

    /// The queue's periodic schedules, by name.
    ///
    /// # Errors
    ///
    /// [`Error::Redis`] when the call fails.
    pub async fn schedules(&self) -> Result<Vec<ScheduleEntry<J>>> {
        let link = self.link();
        let now = link.redis_now_ms();
        Ok(crate::periodic::load(link)
            .await?
            .into_iter()
            .map(|(name, stored, last)| ScheduleEntry::new(name, stored, last, now))
            .collect())
    }
}

/// How many jobs one `push.lua` call carries at most.
const PUSH_CHUNK: usize = 1000;

/// A periodic schedule of a queue, as [`RedisQueue::schedules`] lists it.
#[derive(Debug)]
#[non_exhaustive]
pub struct ScheduleEntry<J> {
    /// Its name.
    pub name: String,
    /// When it ticks, or why it cannot be read (a schedule another tool wrote).
    pub schedule: std::result::Result<Schedule, String>,
    /// The job of every tick, or why it does not decode.
    pub job: std::result::Result<J, String>,
    /// Its version (every change gets a new one).
    pub version: u64,
    /// The last tick fired or passed (ms since the Unix epoch, Redis clock); set to
    /// when the schedule was set, before its first tick.
    pub last_tick_ms: u64,
    /// The next tick it will fire (ms since the Unix epoch), if any.
    pub next_tick_ms: Option<u64>,
}

impl<J: DeserializeOwned> ScheduleEntry<J> {
    fn new(
        name: String,
        stored: std::result::Result<crate::periodic::Stored, String>,
        last_tick_ms: u64,
        now_ms: u64,
    ) -> Self {
        match stored {
            Ok(stored) => ScheduleEntry {
                name,
                next_tick_ms: stored.schedule.plan(stored.since_ms, last_tick_ms, now_ms),
                job: serde_json::from_str(stored.job.get()).map_err(|e| e.to_string()),
                schedule: Ok(stored.schedule),
                version: stored.version,
                last_tick_ms,
            },
            Err(reason) => ScheduleEntry {
                name,
                schedule: Err(reason.clone()),
                job: Err(reason),
                version: 0,
                last_tick_ms,
                next_tick_ms: None,
            },
        }
    }
}

/// The state of a queue in Redis, at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct QueueStats {
    /// Jobs waiting to be fetched, at every priority level.
    pub pending: u64,
    /// Jobs leased to a worker (running, or prefetched).
    pub active: u64,
    /// Jobs waiting for a retry's backoff.
    pub delayed: u64,
    /// Jobs waiting for their due time ([`RedisQueue::enqueue_at`] and the like).
    pub scheduled: u64,
    /// Dead letters kept.
    pub dead: u64,
    /// Whether the queue is paused ([`RedisQueue::pause`]).
    pub paused: bool,
    /// The queue's rate limit ([`RedisQueue::set_rate_limit`]).
    pub rate_limit: Option<RateLimit>,
}

/// A dead-lettered job: what it was, why it died, and on which attempt.
///
/// Listing never fails on an entry it cannot fully read (written by another tool, or
/// holding a record that breaks the wire format): such an entry is listed with what it
/// has, the rest left at zero and the job's `Err` saying what is missing.
#[derive(Debug)]
#[non_exhaustive]
pub struct DeadLetter<J> {
    /// The job's id (0 when the entry has no record with an id in range).
    pub id: JobId,
    /// The job, or why it cannot be read (the raw entry is kept in Redis).
    pub job: std::result::Result<J, String>,
    /// Why it was dead-lettered: the error of its last attempt, or why its record was
    /// refused.
    pub reason: String,
    /// The attempt that failed last (0 when the entry does not say, e.g. for a record
    /// refused because its attempt was out of range).
    pub attempt: u32,
    /// When it was dead-lettered, in milliseconds since the Unix epoch (Redis clock;
    /// 0 when the entry does not say).
    pub at_ms: u64,
}

/// A dead-letter entry `{"record":…,"reason":…,"attempt":…,"at":…}` as the scripts
/// write it, read as far as it can be: any entry is listed, whatever else wrote it.
pub(crate) struct DeadEntry {
    /// The job record, if the entry has one.
    pub(crate) record: Option<String>,
    pub(crate) reason: String,
    /// 0 when the entry does not say (or says something out of range).
    pub(crate) attempt: u32,
    /// 0 when the entry does not say.
    pub(crate) at: u64,
    /// The job's priority level (0 when the entry does not say).
    pub(crate) level: u8,
}

impl DeadEntry {
    pub(crate) fn read(entry: &[u8]) -> Self {
        // Lossy: a record a producer wrote with bytes that are not UTF-8 is still
        // listed (its job then does not decode).
        let text = String::from_utf8_lossy(entry);
        let fields = match serde_json::from_str::<serde_json::Value>(&text) {
            Ok(serde_json::Value::Object(fields)) => fields,
            _ => {
                return DeadEntry {
                    record: None,
                    reason: format!("unreadable dead-letter entry: {}", shorten(&text)),
                    attempt: 0,
                    at: 0,
                    level: 0,
                };
            }
        };
        let number = |name: &str| fields.get(name).and_then(serde_json::Value::as_u64);
        DeadEntry {
            record: fields
                .get("record")
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned),
            reason: match fields.get("reason").and_then(serde_json::Value::as_str) {
                Some(reason) => reason.to_owned(),
                None => "(no reason recorded)".to_owned(),
            },
            attempt: number("attempt")
                .and_then(|attempt| u32::try_from(attempt).ok())
                .unwrap_or(0),
            at: number("at").unwrap_or(0),
            level: number("level")
                .and_then(|level| u8::try_from(level).ok())
                .filter(|&level| level <= crate::MAX_PRIORITY)
                .unwrap_or(0),
        }
    }
}

impl<J: DeserializeOwned> DeadLetter<J> {
    /// Reads a dead-letter entry as far as it can (see [`DeadEntry`]).
    fn read(entry: &[u8]) -> Self {
        let entry = DeadEntry::read(entry);
        let (id, job) = match &entry.record {
            Some(record) => match wire::Record::salvage(record.as_bytes()) {
                (id, Some(envelope)) => (id, wire::decode(envelope)),
                (id, None) => (id, Err(format!("malformed job record {}", shorten(record)))),
            },
            None => (0, Err("the entry has no job record".to_owned())),
        };
        DeadLetter {
            id: JobId(id),
            job,
            reason: entry.reason,
            attempt: entry.attempt,
            at_ms: entry.at,
        }
    }
}

/// How many replies [`pending_counts`] adds to a pipeline.
pub(crate) const PENDING_REPLIES: usize = crate::wire::LEVELS + 1;

/// Adds what counts the pending jobs to `pipe`: `LLEN` of every level's list, then the
/// front of level 0's (a wake marker there is no job).
pub(crate) fn pending_counts(pipe: &mut redis::Pipeline, keys: &crate::keys::Keys) {
    for list in &keys.levels_pending {
        pipe.cmd("LLEN").arg(list);
    }
    pipe.cmd("LINDEX").arg(&keys.pending).arg(-1);
}

/// The pending jobs counted by the first [`PENDING_REPLIES`] of `replies`.
pub(crate) fn pending_total(replies: &[Value]) -> Result<u64> {
    let Some((front, lengths)) = replies
        .get(..PENDING_REPLIES)
        .and_then(|counts| counts.split_last())
    else {
        return Err(Error::Protocol(
            "a count of pending jobs came back short".to_owned(),
        ));
    };
    let mut total = 0;
    for length in lengths {
        total += wire::uint(length)?;
    }
    if is_marker(front) {
        total = total.saturating_sub(1);
    }
    Ok(total)
}

/// Whether a reply is the wake marker (see `lua/levels.lua`).
pub(crate) fn is_marker(value: &Value) -> bool {
    matches!(value, Value::BulkString(bytes) if bytes == WAKE_MARKER)
}

/// The wake marker `lua/levels.lua` pushes to level 0's list: never a job.
pub(crate) const WAKE_MARKER: &[u8] = b"~wake";

/// Text shortened for a message: at most 100 characters, quoted.
fn shorten(text: &str) -> String {
    match text.char_indices().nth(100) {
        Some((cut, _)) => format!("{:?}...", &text[..cut]),
        None => format!("{text:?}"),
    }
}

impl<J> RedisQueue<J>
where
    J: Serialize + DeserializeOwned + Send + 'static,
{
    fn link(&self) -> &Link {
        self.front.link()
    }

    /// What the server said at connect: its version and eviction policy.
    pub fn server(&self) -> &ServerInfo {
        &self.front.server
    }

    /// The configuration.
    pub fn config(&self) -> &RedisConfig {
        &self.link().config
    }

    /// The number of jobs waiting in Redis now, at every priority level (one
    /// pipelined round trip). [`Queue::depth`] is the synchronous, possibly stale
    /// version.
    ///
    /// # Errors
    ///
    /// [`Error::Redis`] when the call fails.
    pub async fn len(&self) -> Result<u64> {
        let link = self.link();
        let call = link.call("reading the queue's length");
        let mut pipe = redis::pipe();
        pending_counts(&mut pipe, &link.keys);
        let replies: Vec<Value> = pipe
            .query_async(&mut link.conn())
            .await
            .map_err(|e| call.fail(&e))?;
        pending_total(&replies)
    }

    /// Whether no job waits in Redis now.
    ///
    /// # Errors
    ///
    /// As for [`len`](RedisQueue::len).
    pub async fn is_empty(&self) -> Result<bool> {
        Ok(self.len().await? == 0)
    }

    /// Counts pending (every level), active, delayed, scheduled and dead jobs (one
    /// pipelined round trip).
    ///
    /// # Errors
    ///
    /// [`Error::Redis`] when the call fails.
    pub async fn stats(&self) -> Result<QueueStats> {
        let link = self.link();
        let keys = &link.keys;
        let call = link.call("counting the queue's jobs");
        let mut pipe = redis::pipe();
        pipe.atomic();
        pending_counts(&mut pipe, keys);
        pipe.cmd("HLEN")
            .arg(&keys.leased)
            .cmd("ZCARD")
            .arg(&keys.delayed)
            .cmd("ZCARD")
            .arg(&keys.scheduled)
            .cmd("LLEN")
            .arg(&keys.dead);
        control::read_into(&mut pipe, keys);
        let replies: Vec<Value> = pipe
            .query_async(&mut link.conn())
            .await
            .map_err(|e| call.fail(&e))?;
        let pending = pending_total(&replies)?;
        let counts = &replies[PENDING_REPLIES..];
        let [active, delayed, scheduled, dead, control] = counts else {
            return Err(Error::Protocol(format!(
                "stats returned {} replies",
                replies.len()
            )));
        };
        let control = control::parse(control)?;
        Ok(QueueStats {
            pending,
            active: wire::uint(active)?,
            delayed: wire::uint(delayed)?,
            scheduled: wire::uint(scheduled)?,
            dead: wire::uint(dead)?,
            paused: control.paused_since_ms.is_some(),
            rate_limit: control.rate_limit,
        })
    }

    /// Pauses the queue for every process: from now on no worker anywhere takes a job
    /// (jobs already taken run to the end, and so do the ones a process fetched ahead),
    /// while producers go on enqueueing. Workers wait for [`resume`](RedisQueue::resume)
    /// in Redis without polling, and the housekeeping goes on (jobs of dead workers go
    /// back to the queue, scheduled jobs become pending when due). Returns whether the
    /// queue was running. [`QueueStats::paused`] and
    /// [`QueueOverview::paused`](crate::QueueOverview::paused) tell.
    ///
    /// # Errors
    ///
    /// [`Error::Redis`] when the call fails.
    pub async fn pause(&self) -> Result<bool> {
        self.link().control(Control::Pause).await
    }

    /// Resumes a paused queue: every waiting worker, in every process, fetches at once.
    /// Returns whether the queue was paused.
    ///
    /// # Errors
    ///
    /// [`Error::Redis`] when the call fails.
    pub async fn resume(&self) -> Result<bool> {
        self.link().control(Control::Resume).await
    }

    /// Sets (or with `None` removes) the queue's [`RateLimit`]: at most so many job
    /// starts per period, across every process that consumes the queue. It is kept in
    /// Redis, so it holds for every worker from its next fetch on. Returns whether it
    /// changed.
    ///
    /// # Errors
    ///
    /// [`Error::Redis`] when the call fails.
    pub async fn set_rate_limit(&self, limit: Option<RateLimit>) -> Result<bool> {
        self.link().control(Control::Limit(limit)).await
    }

    /// What this process's handle did so far (fetches, acks, recoveries, errors).
    pub fn counters(&self) -> ClientCounters {
        self.link().counters.snapshot()
    }

    /// The newest `limit` dead letters, newest first. An entry that cannot be fully
    /// read is listed with what it has (see [`DeadLetter`]).
    ///
    /// # Errors
    ///
    /// [`Error::Redis`] when the call fails.
    pub async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter<J>>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let link = self.link();
        let call = link.call("listing dead letters");
        let entries: Vec<Vec<u8>> = redis::cmd("LRANGE")
            .arg(&link.keys.dead)
            .arg(0)
            .arg(limit - 1)
            .query_async(&mut link.conn())
            .await
            .map_err(|e| call.fail(&e))?;
        Ok(entries
            .iter()
            .map(|entry| DeadLetter::read(entry))
            .collect())
    }

    /// Moves the given dead letters back to the queue as fresh jobs (attempt 1);
    /// returns how many went back (ids that are not dead letters are skipped).
    ///
    /// # Errors
    ///
    /// [`Error::Redis`] when the call fails.
    pub async fn requeue_dead(&self, ids: &[JobId]) -> Result<u64> {
        let ids: Vec<u64> = ids.iter().map(|id| id.0).collect();
        self.link().requeue(Some(&ids)).await
    }

    /// Moves every dead letter back to the queue, oldest first; returns how many.
    ///
    /// # Errors
    ///
    /// [`Error::Redis`] when the call fails.
    pub async fn requeue_all_dead(&self) -> Result<u64> {
        self.link().requeue(None).await
    }

    /// Extends the leases of every job this process holds now, as the heartbeat does
    /// on its own; returns how many leases were found lost.
    ///
    /// # Errors
    ///
    /// [`Error::Redis`] when the call fails.
    pub async fn extend_leases(&self) -> Result<usize> {
        crate::lease::extend_leases(self.link()).await
    }

    /// Runs the housekeeping every fetch does, without taking a job: jobs whose lease
    /// expired go back to the queue (or to dead-letter when out of attempts), delayed
    /// jobs that are due move to the queue. Returns `(recovered, dead_lettered)`.
    ///
    /// Workers do this on their own; this is for tools and tests.
    ///
    /// # Errors
    ///
    /// [`Error::Redis`] when the call fails.
    pub async fn recover_expired(&self) -> Result<(u64, u64)> {
        let fetched = self.link().fetch(0).await?;
        Ok((fetched.recovered, fetched.buried))
    }

    /// How many jobs this process holds (fetched and not yet settled).
    pub fn held(&self) -> usize {
        self.link().leases.held_deliveries()
    }

    /// Deletes every key of this queue: pending, running, delayed and dead jobs and the
    /// counters. For tests and tear-down; running workers' settlements then fail.
    ///
    /// # Errors
    ///
    /// [`Error::Redis`] when the call fails.
    pub async fn purge(&self) -> Result<()> {
        let link = self.link();
        let call = link.call("purging the queue");
        let _: Value = redis::cmd("DEL")
            .arg(link.keys.all())
            .query_async(&mut link.conn())
            .await
            .map_err(|e| call.fail(&e))?;
        Ok(())
    }

    fn start_fetcher(&self) -> &Buffer<J> {
        self.front.buffer.get_or_init(|| {
            let (sender, receiver) = flume::unbounded();
            let demand = Arc::new(Demand::default());
            if self.is_closed() {
                // Nothing will be fetched: consumers see the end at once.
                drop(sender);
            } else {
                let fetcher = Fetcher {
                    link: Arc::clone(&self.front.settler.link),
                    buffer: sender,
                    unclaimed: receiver.clone(),
                    demand: Arc::clone(&demand),
                    closed: self.front.close_signal.subscribe(),
                };
                self.front.runtime.spawn(fetcher.run());
                if self.link().config.run_schedules {
                    self.front.runtime.spawn(crate::periodic::run(
                        Arc::clone(&self.front.settler.link),
                        self.front.close_signal.subscribe(),
                    ));
                }
            }
            Buffer {
                jobs: receiver,
                demand,
            }
        })
    }
}

impl<J> Queue for RedisQueue<J>
where
    J: Serialize + DeserializeOwned + Send + 'static,
{
    type Job = J;
    type Consumer = RedisConsumer<J>;
    /// A producer's handles get their results once the queue knows its result type
    /// ([`RedisQueue::with_results`]); before that, a submit is refused with
    /// [`Error::Config`].
    const REPLIES: bool = true;

    /// Enqueues the job with an id Redis assigns, and returns that id (the one its
    /// consumers deliver it under); the envelope's `id` and `attempt` are not sent.
    /// With a `reply` (a pool's `submit`), the job carries this handle's reply channel
    /// and the reply waits here for the outcome the worker stores (see
    /// [`with_results`](RedisQueue::with_results)); without `with_results` such a push
    /// is refused with [`Error::Config`].
    fn push(
        &self,
        mut envelope: Envelope<J>,
    ) -> impl Future<Output = std::result::Result<JobId, PushError<Envelope<J>>>> + Send {
        let max = self.link().config.max_payload;
        let reply = envelope.reply.take();
        let waiters = self.front.results.get().cloned();
        let headers = self.headers(None);
        let encoded = match (&reply, &waiters) {
            (None, _) => wire::encode_with(&envelope.job, max, None, headers.as_ref()),
            (Some(_), Some(waiters)) => {
                wire::encode_with(&envelope.job, max, Some(&waiters.channel), headers.as_ref())
            }
            (Some(_), None) => Err(Error::Config(
                "a handle to this job's result needs RedisQueue::with_results::<Output, Error>() \
                 on the queue (in the producer and the workers); use spawn for no handle"
                    .to_owned(),
            )),
        };
        let stored = self.store(encoded);
        async move {
            match stored.await {
                Ok(id) => {
                    if let (Some(reply), Some(waiters)) = (reply, waiters) {
                        waiters.listen(
                            &self.front.settler.link,
                            &self.front.runtime,
                            self.front.close_signal.subscribe(),
                        );
                        waiters.register(id.0, reply);
                    }
                    Ok(id)
                }
                Err(error) => {
                    envelope.reply = reply;
                    Err(match error {
                        Error::Closed => PushError::Closed(envelope),
                        error => PushError::Backend {
                            item: envelope,
                            source: error.into(),
                        },
                    })
                }
            }
        }
    }

    fn consumer(&self) -> std::result::Result<RedisConsumer<J>, QueueError> {
        let buffer = self.start_fetcher();
        Ok(RedisConsumer::new(
            Arc::clone(&self.front),
            buffer.jobs.clone(),
            Arc::clone(&buffer.demand),
        ))
    }

    /// The pending count Redis reported on this process's last push or fetch, plus
    /// the jobs fetched into this process and not yet taken. Exact only while this
    /// process is the queue's only user; [`len`](RedisQueue::len) asks Redis.
    fn depth(&self) -> usize {
        let buffered = self.front.buffer.get().map_or(0, |b| b.jobs.len());
        self.link().observed_pending() + buffered
    }

    /// `None`: Redis queues are unbounded (Redis memory is the limit).
    fn capacity(&self) -> Option<usize> {
        None
    }

    /// Stops this process from enqueueing and fetching: `enqueue`, `enqueue_bulk` and
    /// `push` fail with [`Error::Closed`] from now on, jobs in Redis stay there for
    /// other workers, prefetched ones are released, and consumers return `None` once
    /// their local work is done. See "Closing" in the crate docs.
    fn close(&self) {
        self.front.close();
    }

    fn is_closed(&self) -> bool {
        self.front.is_closed()
    }

    /// The policy in force: [`RedisConfig::retry`], or a pool's own that replaced it.
    fn retry_policy(&self) -> Option<RetryPolicy> {
        Some(self.link().retry_policy())
    }

    /// Records this process's fetcher dead-lettered because they did not decode
    /// ([`ClientCounters::undecodable`]).
    fn undeliverable(&self) -> u64 {
        self.link().counters.snapshot().undecodable
    }
}

/// A job's outcome comes back to the process that submitted it, wherever the job ran,
/// once the queue knows the result type ([`RedisQueue::with_results`]).
impl<J> Replies for RedisQueue<J> where J: Serialize + DeserializeOwned + Send + 'static {}

/// Redis keeps every job until it is settled: a retry is scheduled in Redis, no copy is
/// kept, and the job type needs no `Clone`.
impl<J> Retryable for RedisQueue<J>
where
    J: Serialize + DeserializeOwned + Send + 'static,
{
    fn copy_for_retry(_job: &J) -> Option<J> {
        None
    }

    /// Applies `policy` from now on, in this process, to expired leases and to
    /// [`RedisDelivery::fail`](crate::RedisDelivery::fail), in place of
    /// [`RedisConfig::retry`].
    fn use_retry_policy(&self, policy: &RetryPolicy) {
        self.link().use_retry_policy(policy.clone());
    }
}

impl<J> fmt::Debug for RedisQueue<J> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let link = self.front.link();
        f.debug_struct("RedisQueue")
            .field("url", &link.config.url)
            .field("queue", &link.config.queue)
            .field("closed", &self.front.is_closed())
            .finish_non_exhaustive()
    }
}
