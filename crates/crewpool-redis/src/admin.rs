//! The operator's view of the queues under one prefix: counts, totals, the jobs of
//! each state decoded as JSON, and the repairs (requeue, delete, purge).

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use crewpool_core::JobId;
use redis::{Script, Value};
use serde::{Serialize, Serializer};

use crate::conn::{Conn, Endpoint};
use crate::control::Control;
use crate::keys::Keys;
use crate::link::{Call, connect_with_retries};
use crate::queue::DeadEntry;
use crate::registry::{self, RegisteredQueue};
use crate::wire::{self, LEVELS, array, bytes, int, uint};
use crate::{Error, RateLimit, RedisConfig, RedisUrl, Result};

const PEEK_LEASED_LUA: &str = include_str!("../lua/peek_leased.lua");

/// The most jobs one [`QueueAdmin::jobs`] call returns.
pub const MAX_PAGE: usize = 1000;

/// An operator's handle on the queues under one key prefix of one Redis: lists them,
/// counts and shows their jobs without knowing their job types, and repairs them.
///
/// This is what the `crewpool` command line, its dashboard and its Prometheus exporter
/// use. It reads jobs as JSON ([`serde_json::Value`]), so one handle serves every
/// queue; [`RedisQueue`](crate::RedisQueue) is the typed producer and worker side.
/// Every change goes through the same scripts the workers use, so a repair cannot
/// corrupt a queue that workers are serving; it never takes a job a worker holds.
///
/// The handle is cheap to clone (one shared, multiplexed connection that reconnects
/// on its own).
///
/// # Examples
///
/// ```
/// use crewpool_redis::{Admin, JobState, RedisConfig, RedisQueue};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = crewpool_redis::testing::RedisServer::start();
/// # let url = server.url();
/// let producer = RedisQueue::<String>::connect(RedisConfig::new(url.as_str(), "mail")).await?;
/// producer.enqueue(&"hello".to_owned()).await?;
///
/// let admin = Admin::connect(url.as_str(), "crewpool").await?;
/// let names: Vec<String> = admin.queues().await?.into_iter().map(|q| q.name).collect();
/// assert_eq!(names, ["mail"]); // the producer registered it
///
/// let mail = admin.queue("mail")?;
/// assert_eq!(mail.overview().await?.pending, 1);
/// let page = mail.jobs(JobState::Pending, 0, 10).await?;
/// assert_eq!(page.jobs[0].job, Some(serde_json::json!("hello")));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Admin {
    inner: Arc<Inner>,
}

struct Inner {
    url: RedisUrl,
    prefix: String,
    conn: Conn,
    requeue: Script,
    control: Script,
    peek_leased: Script,
    delete: Script,
}

impl Admin {
    /// Connects to the Redis at `url` for the queues under `prefix` (the default of
    /// [`RedisConfig::prefix`] is `crewpool`). Writes nothing.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for a URL that is not `redis://` or `rediss://`,
    /// [`Error::Redis`] when Redis cannot be reached or refuses the credentials (the
    /// message never contains the password).
    pub async fn connect(url: impl Into<RedisUrl>, prefix: impl Into<String>) -> Result<Self> {
        Self::connect_with(&RedisConfig::new(url, "-").prefix(prefix)).await
    }

    /// Connects with the URL, prefix, response timeout (and with the `tls` feature,
    /// the trusted CA) of `config`; its queue name is not used.
    ///
    /// # Errors
    ///
    /// As for [`connect`](Admin::connect).
    pub async fn connect_with(config: &RedisConfig) -> Result<Self> {
        config.validate()?;
        let endpoint = Endpoint::new(config)?;
        connect_with_retries(&endpoint, config).await?;
        let conn = endpoint.connect(config, config.response_timeout).await?;
        Ok(Admin {
            inner: Arc::new(Inner {
                url: config.url.clone(),
                prefix: config.prefix.clone(),
                conn,
                requeue: Script::new(crate::scripts::REQUEUE_LUA),
                control: Script::new(crate::scripts::CONTROL_LUA),
                peek_leased: Script::new(PEEK_LEASED_LUA),
                delete: Script::new(crate::scripts::DELETE_LUA),
            }),
        })
    }

    /// The URL (its password hidden when printed).
    pub fn url(&self) -> &RedisUrl {
        &self.inner.url
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.inner.prefix
    }

    fn conn(&self) -> Conn {
        self.inner.conn.clone()
    }

    /// The queues processes have connected to under this prefix (the registry
    /// `<prefix>:queues`), by name.
    ///
    /// # Errors
    ///
    /// [`Error::Redis`] when the call fails.
    pub async fn queues(&self) -> Result<Vec<RegisteredQueue>> {
        let call = Call::new(self.url(), "listing queues");
        let entries: Vec<(String, f64)> = redis::cmd("ZRANGE")
            .arg(registry::key(&self.inner.prefix))
            .arg(0)
            .arg(-1)
            .arg("WITHSCORES")
            .query_async(&mut self.conn())
            .await
            .map_err(|e| call.fail(&e))?;
        let mut queues: Vec<RegisteredQueue> = entries
            .into_iter()
            // Scores are whole milliseconds, exact in an f64 until the year 287,396.
            .map(|(name, ms)| RegisteredQueue::new(name, ms.max(0.0) as u64))
            .collect();
        queues.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(queues)
    }

    /// A handle on queue `name` (no Redis call).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when the name is empty or contains braces.
    pub fn queue(&self, name: &str) -> Result<QueueAdmin> {
        if name.is_empty() || name.contains(['{', '}']) {
            return Err(Error::Config(format!(
                "the queue name must be non-empty and contain no braces (got {name:?})"
            )));
        }
        Ok(QueueAdmin {
            admin: self.clone(),
            name: name.to_owned(),
            keys: Keys::new(&self.inner.prefix, name),
        })
    }
}

impl fmt::Debug for Admin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Admin")
            .field("url", &self.inner.url)
            .field("prefix", &self.inner.prefix)
            .finish_non_exhaustive()
    }
}

/// Where a job is.
///
/// A job enqueued for later waits in `Scheduled` until its due time; a job waits in
/// `Pending` until a worker leases it (`Leased`); a failed attempt waits in `Delayed`
/// for its backoff and goes back to `Pending`; a job out of attempts (or whose
/// envelope does not decode, or not started by its deadline) is `Dead`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum JobState {
    /// Waiting to be fetched, next in line first: the highest priority level first,
    /// each level oldest first.
    Pending,
    /// Waiting for the due time it was enqueued with
    /// ([`RedisQueue::enqueue_at`](crate::RedisQueue::enqueue_at) and the like),
    /// soonest first.
    Scheduled,
    /// Waiting for a retry's backoff, soonest first.
    Delayed,
    /// Held by a worker under a lease, in lease-deadline order.
    Leased,
    /// Dead-lettered, newest first.
    Dead,
}

impl JobState {
    /// Every state, in a job's usual order.
    pub const ALL: [JobState; 5] = [
        JobState::Pending,
        JobState::Scheduled,
        JobState::Delayed,
        JobState::Leased,
        JobState::Dead,
    ];

    /// The state's name: `pending`, `scheduled`, `delayed`, `leased`, `dead`.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Pending => "pending",
            JobState::Scheduled => "scheduled",
            JobState::Delayed => "delayed",
            JobState::Leased => "leased",
            JobState::Dead => "dead",
        }
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobState {
    type Err = Error;

    fn from_str(name: &str) -> Result<Self> {
        JobState::ALL
            .into_iter()
            .find(|state| state.as_str() == name)
            .ok_or_else(|| {
                Error::Config(format!(
                    "unknown job state {name:?} (expected pending, scheduled, delayed, leased or dead)"
                ))
            })
    }
}

/// A queue's counts and totals at one moment (read atomically).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct QueueOverview {
    /// The queue's name.
    pub name: String,
    /// Whether the queue ever had a job (its id counter exists).
    pub exists: bool,
    /// Jobs waiting to be fetched, at every priority level.
    pub pending: u64,
    /// The pending jobs of each priority level, 0 to 9.
    pub pending_by_level: Vec<u64>,
    /// Jobs waiting for their due time.
    pub scheduled: u64,
    /// Jobs waiting for a retry's backoff.
    pub delayed: u64,
    /// Jobs held by workers.
    pub leased: u64,
    /// Dead letters kept.
    pub dead: u64,
    /// How long ago the next job in line was enqueued, in ms (for a retried or
    /// recovered job: since it was first enqueued); `None` when nothing is pending or
    /// its producer did not stamp it.
    pub oldest_pending_age_ms: Option<u64>,
    /// Attempts that finished, successfully or not (`succeeded + failed`).
    pub processed: u64,
    /// Jobs acknowledged as done.
    pub succeeded: u64,
    /// Attempts that failed (retried or dead-lettered by a worker).
    pub failed: u64,
    /// Jobs whose lease ran out (their worker died, stalled or dropped them).
    pub lease_expired: u64,
    /// Jobs dead-lettered because no worker started them by their deadline.
    pub missed_deadline: u64,
    /// Uniqueness keys held (each by a pending, scheduled, retrying or running job).
    pub unique_keys: u64,
    /// Periodic schedules.
    pub schedules: u64,
    /// Whether the queue is paused ([`QueueAdmin::pause`]).
    pub paused: bool,
    /// When it was paused (ms since the Unix epoch, Redis clock), while it is.
    pub paused_since_ms: Option<u64>,
    /// Its rate limit ([`QueueAdmin::set_rate_limit`]).
    pub rate_limit: Option<RateLimit>,
    /// Redis's clock when this was read, in ms since the Unix epoch.
    pub now_ms: u64,
}

impl QueueOverview {
    /// The count of jobs in `state`.
    pub fn count(&self, state: JobState) -> u64 {
        match state {
            JobState::Pending => self.pending,
            JobState::Scheduled => self.scheduled,
            JobState::Delayed => self.delayed,
            JobState::Leased => self.leased,
            JobState::Dead => self.dead,
        }
    }
}

/// One page of the jobs in one state.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct JobPage {
    /// The state listed.
    pub state: JobState,
    /// How many jobs are in that state in all.
    pub total: u64,
    /// How many were skipped before this page.
    pub offset: usize,
    /// Redis's clock when this was read, in ms since the Unix epoch.
    pub now_ms: u64,
    /// The jobs, in the state's order (see [`JobState`]).
    pub jobs: Vec<JobView>,
}

/// One job as an operator sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct JobView {
    /// The job's id (0 when its record is malformed).
    #[serde(serialize_with = "job_id")]
    pub id: JobId,
    /// Which delivery: the next one for a pending or delayed job, the current one for
    /// a leased job, the one that failed last for a dead letter.
    pub attempt: u32,
    /// The job (the envelope's `job`), when the envelope decodes.
    pub job: Option<serde_json::Value>,
    /// Why the envelope does not decode, when it does not.
    pub error: Option<String>,
    /// When the producer enqueued it (ms since the Unix epoch, its clock), when the
    /// envelope says.
    pub enqueued_at_ms: Option<u64>,
    /// Its priority level, 0 to 9.
    pub priority: u8,
    /// The uniqueness key it holds, if any.
    pub unique_key: Option<String>,
    /// Its start deadline (ms since the Unix epoch, Redis clock), if any.
    pub start_by_ms: Option<u64>,
    /// The periodic schedule that made it, if any.
    pub schedule: Option<String>,
    /// The tick of that schedule it was made for (ms since the Unix epoch).
    pub tick_ms: Option<u64>,
    /// A scheduled or delayed job's due time (ms since the Unix epoch, Redis clock).
    pub due_at_ms: Option<u64>,
    /// A leased job's lease.
    pub lease: Option<LeaseView>,
    /// A dead letter's death.
    pub death: Option<DeathView>,
}

/// The lease a worker holds a job under.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct LeaseView {
    /// The delivery's fencing token, `<lease>:<n>`.
    pub token: String,
    /// When the worker's process fetched the job (ms since the Unix epoch, Redis
    /// clock), when known.
    pub leased_at_ms: Option<u64>,
    /// When the lease runs out unless the process's heartbeat extends it (ms since
    /// the Unix epoch, Redis clock).
    pub deadline_ms: u64,
}

/// Why and when a job was dead-lettered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct DeathView {
    /// The error of the last attempt.
    pub reason: String,
    /// When it was dead-lettered (ms since the Unix epoch, Redis clock).
    pub at_ms: u64,
}

/// A periodic schedule as an operator sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct ScheduleView {
    /// Its name.
    pub name: String,
    /// Its interval in ms, for an interval schedule.
    pub every_ms: Option<u64>,
    /// Its cron expression (UTC), for a cron schedule.
    pub cron: Option<String>,
    /// The priority level of its jobs.
    pub priority: u8,
    /// What happens to missed ticks: `latest` (the most recent fires late) or `skip`.
    pub missed: String,
    /// For `skip`: how late a tick may still fire, in ms.
    pub grace_ms: Option<u64>,
    /// The start window of its jobs, in ms.
    pub start_within_ms: Option<u64>,
    /// Its version (every change gets a new one).
    pub version: u64,
    /// When it was last set (ms since the Unix epoch, Redis clock).
    pub since_ms: u64,
    /// The last tick fired or passed (ms since the Unix epoch).
    pub last_tick_ms: u64,
    /// The next tick to fire (ms since the Unix epoch), if any.
    pub next_tick_ms: Option<u64>,
    /// The job of every tick.
    pub job: Option<serde_json::Value>,
    /// Why the schedule cannot be read, when it cannot.
    pub error: Option<String>,
}

impl ScheduleView {
    fn new(name: String, json: &[u8], last_tick_ms: u64, now_ms: u64) -> Self {
        let mut view = ScheduleView {
            name,
            every_ms: None,
            cron: None,
            priority: 0,
            missed: String::new(),
            grace_ms: None,
            start_within_ms: None,
            version: 0,
            since_ms: 0,
            last_tick_ms,
            next_tick_ms: None,
            job: None,
            error: None,
        };
        match crate::periodic::Stored::parse(json) {
            Ok(stored) => {
                let schedule = &stored.schedule;
                view.every_ms = schedule.interval().map(crate::link::millis);
                view.cron = schedule.cron_expression().map(str::to_owned);
                view.priority = schedule.level();
                (view.missed, view.grace_ms) = match schedule.missed_ticks() {
                    crate::MissedTicks::FireLatest => ("latest".to_owned(), None),
                    crate::MissedTicks::SkipAfter(grace) => {
                        ("skip".to_owned(), Some(crate::link::millis(grace)))
                    }
                };
                view.start_within_ms = schedule.start_window().map(crate::link::millis);
                view.version = stored.version;
                view.since_ms = stored.since_ms;
                view.next_tick_ms = schedule.plan(stored.since_ms, last_tick_ms, now_ms);
                view.job = serde_json::from_str(stored.job.get()).ok();
            }
            Err(reason) => view.error = Some(reason),
        }
        view
    }
}

/// A tick of a periodic schedule that fired.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct FiredTick {
    /// The schedule.
    pub schedule: String,
    /// The tick (ms since the Unix epoch).
    #[serde(rename(deserialize = "tick"))]
    pub tick_ms: u64,
    /// The job it made.
    #[serde(serialize_with = "job_id", deserialize_with = "read_job_id")]
    pub id: JobId,
    /// When it fired (ms since the Unix epoch, Redis clock).
    #[serde(rename(deserialize = "at"))]
    pub at_ms: u64,
}

fn read_job_id<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> std::result::Result<JobId, D::Error> {
    <u64 as serde::Deserialize>::deserialize(deserializer).map(JobId)
}

/// A uniqueness key held by a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct UniqueKeyView {
    /// The key.
    pub key: String,
    /// The job that holds it.
    #[serde(serialize_with = "job_id")]
    pub id: JobId,
    /// When it lapses at the latest (ms since the Unix epoch, Redis clock).
    pub lapses_at_ms: u64,
}

fn job_id<S: Serializer>(id: &JobId, serializer: S) -> std::result::Result<S::Ok, S::Error> {
    serializer.serialize_u64(id.0)
}

impl JobView {
    /// Decodes a job record `<id>|<attempt>|<envelope>`.
    fn from_record(record: &[u8]) -> Self {
        // An operator sees every record, whatever its size; one that breaks the format
        // shows why, with the id it has if any.
        let level = wire::split_level(record).0;
        let (id, attempt, decoded, meta) = match wire::Record::parse(record, usize::MAX) {
            Ok(parsed) => (
                parsed.id,
                parsed.attempt,
                wire::decode::<serde_json::Value>(parsed.envelope),
                wire::meta(parsed.envelope),
            ),
            Err(reason) => (
                wire::Record::salvage(record).0,
                0,
                Err(reason),
                wire::Meta::default(),
            ),
        };
        let (job, error) = match decoded {
            Ok(job) => (Some(job), None),
            Err(error) => (None, Some(error)),
        };
        JobView {
            id: JobId(id),
            attempt,
            job,
            error,
            enqueued_at_ms: meta.at,
            priority: level,
            unique_key: meta.unique,
            start_by_ms: meta.start_by,
            schedule: meta.schedule,
            tick_ms: meta.tick,
            due_at_ms: None,
            lease: None,
            death: None,
        }
    }
}

/// An operator's handle on one queue; see [`Admin`].
#[derive(Clone)]
pub struct QueueAdmin {
    admin: Admin,
    name: String,
    keys: Keys,
}

impl QueueAdmin {
    /// The queue's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn conn(&self) -> Conn {
        self.admin.conn()
    }

    fn url(&self) -> &RedisUrl {
        self.admin.url()
    }

    /// The counts of every state, the age of the oldest pending job and the totals,
    /// read in one `MULTI`/`EXEC` (one consistent moment).
    ///
    /// # Errors
    ///
    /// [`Error::Redis`] when the call fails, [`Error::Protocol`] for a reply this
    /// crate does not expect (a key of the same name written by something else).
    pub async fn overview(&self) -> Result<QueueOverview> {
        let keys = &self.keys;
        let call = Call::new(self.url(), "reading a queue's overview");
        let mut pipe = redis::pipe();
        pipe.atomic();
        crate::queue::pending_counts(&mut pipe, keys);
        // The next job in line of each level (level 0's may be behind a wake marker).
        for list in &keys.levels_pending {
            pipe.cmd("LINDEX").arg(list).arg(-1);
        }
        pipe.cmd("LINDEX").arg(&keys.pending).arg(-2);
        pipe.cmd("ZCARD")
            .arg(&keys.scheduled)
            .cmd("ZCARD")
            .arg(&keys.delayed)
            .cmd("HLEN")
            .arg(&keys.leased)
            .cmd("LLEN")
            .arg(&keys.dead)
            .cmd("HMGET")
            .arg(&keys.stats)
            .arg(&["succeeded", "failed", "expired", "missed_deadline"][..])
            .cmd("EXISTS")
            .arg(&keys.seq)
            .cmd("HLEN")
            .arg(&keys.unique)
            .cmd("HLEN")
            .arg(&keys.schedules);
        crate::control::read_into(&mut pipe, keys);
        pipe.cmd("TIME");
        let replies: Vec<Value> = pipe
            .query_async(&mut self.conn())
            .await
            .map_err(|e| call.fail(&e))?;
        let pending = crate::queue::pending_total(&replies)?;
        let pending_by_level = replies[..LEVELS]
            .iter()
            .map(uint)
            .collect::<Result<Vec<u64>>>()?;
        let marked = crate::queue::is_marker(&replies[LEVELS]);
        let rest = &replies[crate::queue::PENDING_REPLIES..];
        let (heads, rest) = rest.split_at_checked(LEVELS + 1).ok_or_else(|| {
            Error::Protocol(format!("overview returned {} replies", replies.len()))
        })?;
        let [
            scheduled,
            delayed,
            leased,
            dead,
            totals,
            exists,
            unique_keys,
            schedules,
            control,
            time,
        ] = <[Value; 10]>::try_from(rest.to_vec())
            .map_err(|rest| Error::Protocol(format!("overview returned {} replies", rest.len())))?;
        let now_ms = redis_time(time)?;
        let control = crate::control::parse(&control)?;
        let mut pending_by_level = pending_by_level;
        if marked {
            pending_by_level[0] = pending_by_level[0].saturating_sub(1);
        }
        // The oldest of the levels' next jobs: the longest anyone waits.
        let mut oldest_pending_age_ms = None;
        for (level, head) in heads[..LEVELS].iter().enumerate() {
            let head = if level == 0 && marked {
                &heads[LEVELS]
            } else {
                head
            };
            let age = match head {
                Value::Nil => None,
                head => wire::Record::parse(&bytes(head.clone())?, usize::MAX)
                    .ok()
                    .and_then(|record| wire::enqueued_at(record.envelope))
                    .map(|at| now_ms.saturating_sub(at)),
            };
            oldest_pending_age_ms = oldest_pending_age_ms.max(age);
        }
        let totals = array(totals)?
            .iter()
            .map(|value| match value {
                Value::Nil => Ok(0),
                value => uint(value),
            })
            .collect::<Result<Vec<u64>>>()?;
        let [succeeded, failed, lease_expired, missed_deadline] = <[u64; 4]>::try_from(totals)
            .map_err(|_| Error::Protocol("HMGET returned the wrong number of fields".into()))?;
        Ok(QueueOverview {
            name: self.name.clone(),
            exists: uint(&exists)? > 0,
            pending,
            pending_by_level,
            scheduled: uint(&scheduled)?,
            delayed: uint(&delayed)?,
            leased: uint(&leased)?,
            dead: uint(&dead)?,
            oldest_pending_age_ms,
            processed: succeeded + failed,
            succeeded,
            failed,
            lease_expired,
            missed_deadline,
            unique_keys: uint(&unique_keys)?,
            schedules: uint(&schedules)?,
            paused: control.paused_since_ms.is_some(),
            paused_since_ms: control.paused_since_ms,
            rate_limit: control.rate_limit,
            now_ms,
        })
    }

    /// Up to `limit` (at most [`MAX_PAGE`]) jobs in `state`, after skipping `offset`,
    /// in the state's order (see [`JobState`]), decoded as JSON.
    ///
    /// # Errors
    ///
    /// [`Error::Redis`] when the call fails, [`Error::Protocol`] for an entry this
    /// crate did not write.
    pub async fn jobs(&self, state: JobState, offset: usize, limit: usize) -> Result<JobPage> {
        let limit = limit.min(MAX_PAGE);
        let (total, now_ms, jobs) = match state {
            JobState::Pending => self.pending(offset, limit).await?,
            JobState::Scheduled => self.timed(&self.keys.scheduled, offset, limit).await?,
            JobState::Delayed => self.timed(&self.keys.delayed, offset, limit).await?,
            JobState::Leased => self.leased(offset, limit).await?,
            JobState::Dead => self.dead(offset, limit).await?,
        };
        Ok(JobPage {
            state,
            total,
            offset,
            now_ms,
            jobs,
        })
    }

    /// Reads `first` (a `LRANGE`/`ZRANGE` of the page), the state's count and the time
    /// in one `MULTI`/`EXEC`.
    async fn page(&self, count: redis::Cmd, first: redis::Cmd) -> Result<(u64, u64, Value)> {
        let call = Call::new(self.url(), "reading a page of jobs");
        let mut pipe = redis::pipe();
        pipe.atomic()
            .add_command(count)
            .add_command(first)
            .cmd("TIME");
        let replies: Vec<Value> = pipe
            .query_async(&mut self.conn())
            .await
            .map_err(|e| call.fail(&e))?;
        let [total, page, time] = <[Value; 3]>::try_from(replies).map_err(|replies| {
            Error::Protocol(format!("a page read returned {} replies", replies.len()))
        })?;
        Ok((uint(&total)?, redis_time(time)?, page))
    }

    /// The pending jobs in the order a strict worker takes them: level 9's list first,
    /// level 0's last, each from its front. Two round trips (the lengths, then the
    /// page), so a page may be off by the jobs taken in between.
    async fn pending(&self, offset: usize, limit: usize) -> Result<(u64, u64, Vec<JobView>)> {
        let keys = &self.keys;
        let call = Call::new(self.url(), "reading a page of jobs");
        let mut pipe = redis::pipe();
        pipe.atomic();
        crate::queue::pending_counts(&mut pipe, keys);
        pipe.cmd("TIME");
        let replies: Vec<Value> = pipe
            .query_async(&mut self.conn())
            .await
            .map_err(|e| call.fail(&e))?;
        let total = crate::queue::pending_total(&replies)?;
        let marked = crate::queue::is_marker(&replies[LEVELS]);
        let now = redis_time(replies[crate::queue::PENDING_REPLIES].clone())?;
        if limit == 0 {
            return Ok((total, now, Vec::new()));
        }
        // The ranges to read, level 9 first; a list's next job is at index -1.
        let mut skip = offset;
        let mut left = limit;
        let mut pipe = redis::pipe();
        let mut levels = Vec::new();
        for level in (0..LEVELS).rev() {
            if left == 0 {
                break;
            }
            let mut len = usize::try_from(uint(&replies[level])?).unwrap_or(usize::MAX);
            // Level 0's marker (its front element) is no job.
            let front = usize::from(level == 0 && marked);
            len = len.saturating_sub(front);
            if skip >= len {
                skip -= len;
                continue;
            }
            let take = (len - skip).min(left);
            let first = skip + front;
            pipe.cmd("LRANGE")
                .arg(&keys.levels_pending[level])
                .arg(-(to_i64(first) + to_i64(take)))
                .arg(-(to_i64(first) + 1));
            levels.push(level);
            left -= take;
            skip = 0;
        }
        if levels.is_empty() {
            return Ok((total, now, Vec::new()));
        }
        let pages: Vec<Value> = pipe
            .query_async(&mut self.conn())
            .await
            .map_err(|e| call.fail(&e))?;
        let mut jobs = Vec::new();
        for (page, level) in pages.into_iter().zip(levels) {
            for record in array(page)?.into_iter().rev() {
                let record = bytes(record)?;
                if record == crate::queue::WAKE_MARKER {
                    continue;
                }
                let mut view = JobView::from_record(&record);
                view.priority = u8::try_from(level).unwrap_or(0);
                jobs.push(view);
            }
        }
        jobs.truncate(limit);
        Ok((total, now, jobs))
    }

    /// A page of a sorted set of records by due time (scheduled or delayed jobs).
    async fn timed(
        &self,
        key: &str,
        offset: usize,
        limit: usize,
    ) -> Result<(u64, u64, Vec<JobView>)> {
        let mut zcard = redis::cmd("ZCARD");
        zcard.arg(key);
        if limit == 0 {
            let (total, now, _) = self.page(zcard, time_cmd()).await?;
            return Ok((total, now, Vec::new()));
        }
        let mut range = redis::cmd("ZRANGE");
        range
            .arg(key)
            .arg(offset)
            .arg(offset + limit - 1)
            .arg("WITHSCORES");
        let (total, now, page) = self.page(zcard, range).await?;
        let flat = array(page)?;
        let jobs = flat
            .chunks(2)
            .map(|pair| {
                let [record, score] = pair else {
                    return Err(Error::Protocol("ZRANGE WITHSCORES: odd reply".into()));
                };
                let mut view = JobView::from_record(&bytes(record.clone())?);
                view.due_at_ms = Some(score_ms(score)?);
                Ok(view)
            })
            .collect::<Result<_>>()?;
        Ok((total, now, jobs))
    }

    async fn leased(&self, offset: usize, limit: usize) -> Result<(u64, u64, Vec<JobView>)> {
        let keys = &self.keys;
        let call = Call::new(self.url(), "listing leased jobs");
        let reply: Value = self
            .admin
            .inner
            .peek_leased
            .key(&keys.leased)
            .key(&keys.active)
            .key(&keys.leases)
            .arg(offset)
            .arg(limit)
            .invoke_async(&mut self.conn())
            .await
            .map_err(|e| call.fail(&e))?;
        let reply = array(reply)?;
        let (header, rest) = reply
            .split_at_checked(2)
            .ok_or_else(|| Error::Protocol("peek_leased returned a short reply".into()))?;
        let now = uint(&header[0])?;
        let total = uint(&header[1])?;
        let jobs = rest
            .chunks(4)
            .map(|job| {
                let [field, record, deadline, taken] = job else {
                    return Err(Error::Protocol("peek_leased: truncated job".into()));
                };
                let mut view = JobView::from_record(&bytes(record.clone())?);
                view.lease = Some(LeaseView {
                    token: String::from_utf8_lossy(&bytes(field.clone())?).into_owned(),
                    leased_at_ms: u64::try_from(int(taken)?).ok(),
                    deadline_ms: uint(deadline)?,
                });
                Ok(view)
            })
            .collect::<Result<_>>()?;
        Ok((total, now, jobs))
    }

    async fn dead(&self, offset: usize, limit: usize) -> Result<(u64, u64, Vec<JobView>)> {
        if limit == 0 {
            let (total, now, _) = self.page(llen(&self.keys.dead), time_cmd()).await?;
            return Ok((total, now, Vec::new()));
        }
        let mut range = redis::cmd("LRANGE");
        range
            .arg(&self.keys.dead)
            .arg(offset)
            .arg(offset + limit - 1);
        let (total, now, page) = self.page(llen(&self.keys.dead), range).await?;
        let jobs = array(page)?
            .into_iter()
            .map(|entry| {
                // Any entry is listed, with what can be read of it.
                let entry = DeadEntry::read(&bytes(entry)?);
                let mut view = match &entry.record {
                    Some(record) => JobView::from_record(record.as_bytes()),
                    None => JobView::from_record(b""),
                };
                view.attempt = entry.attempt;
                view.priority = entry.level;
                view.death = Some(DeathView {
                    reason: entry.reason,
                    at_ms: entry.at,
                });
                Ok(view)
            })
            .collect::<Result<_>>()?;
        Ok((total, now, jobs))
    }

    /// Moves the given dead letters back to the queue as fresh jobs (attempt 1),
    /// oldest first; returns how many went back (ids that are not dead letters are
    /// skipped).
    ///
    /// # Errors
    ///
    /// [`Error::Redis`] when the call fails.
    pub async fn requeue_dead(&self, ids: &[JobId]) -> Result<u64> {
        self.requeue(Some(ids)).await
    }

    /// Moves every dead letter back to the queue, oldest first; returns how many.
    ///
    /// # Errors
    ///
    /// [`Error::Redis`] when the call fails.
    pub async fn requeue_all_dead(&self) -> Result<u64> {
        self.requeue(None).await
    }

    async fn requeue(&self, ids: Option<&[JobId]>) -> Result<u64> {
        let mut call = self.admin.inner.requeue.prepare_invoke();
        call.key(&self.keys.dead);
        for list in &self.keys.levels_pending {
            call.key(list);
        }
        match ids {
            None => call.arg("all"),
            Some(ids) => call
                .arg("ids")
                .arg(ids.iter().map(|id| id.0).collect::<Vec<_>>()),
        };
        let timing = Call::new(self.url(), "requeueing dead letters");
        let moved: Value = call
            .invoke_async(&mut self.conn())
            .await
            .map_err(|e| timing.fail(&e))?;
        uint(&moved)
    }

    /// Pauses the queue for every process (see [`RedisQueue::pause`]); returns whether
    /// it was running.
    ///
    /// # Errors
    ///
    /// [`Error::Redis`] when the call fails.
    ///
    /// [`RedisQueue::pause`]: crate::RedisQueue::pause
    pub async fn pause(&self) -> Result<bool> {
        self.control(Control::Pause).await
    }

    /// Resumes a paused queue: every waiting worker fetches at once; returns whether it
    /// was paused.
    ///
    /// # Errors
    ///
    /// [`Error::Redis`] when the call fails.
    pub async fn resume(&self) -> Result<bool> {
        self.control(Control::Resume).await
    }

    /// Sets (or with `None` removes) the queue's [`RateLimit`]; returns whether it
    /// changed.
    ///
    /// # Errors
    ///
    /// [`Error::Redis`] when the call fails.
    pub async fn set_rate_limit(&self, limit: Option<RateLimit>) -> Result<bool> {
        self.control(Control::Limit(limit)).await
    }

    async fn control(&self, op: Control) -> Result<bool> {
        let script = &self.admin.inner.control;
        crate::control::apply(&mut self.conn(), self.url(), script, &self.keys, op).await
    }

    /// Deletes the jobs with the given ids from `state` (pending, scheduled, delayed or
    /// dead; a leased job belongs to its worker and is never deleted); returns how many
    /// entries went. A deleted job's uniqueness key is released.
    ///
    /// Reads the state's whole list or set inside Redis (in slices, but in one
    /// script call): on a backlog of millions, deleting pending jobs blocks Redis for
    /// a noticeable time.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for [`JobState::Leased`], [`Error::Redis`] when the call fails.
    pub async fn delete(&self, state: JobState, ids: &[JobId]) -> Result<u64> {
        if state == JobState::Leased {
            return Err(Error::Config(
                "leased jobs belong to their worker and cannot be deleted".to_owned(),
            ));
        }
        if ids.is_empty() {
            return Ok(0);
        }
        let keys = &self.keys;
        let call = Call::new(self.url(), "deleting jobs");
        let mut invocation = self.admin.inner.delete.prepare_invoke();
        invocation
            .key(&keys.delayed)
            .key(&keys.scheduled)
            .key(&keys.dead)
            .key(&keys.unique)
            .key(&keys.unique_ttl);
        for list in &keys.levels_pending {
            invocation.key(list);
        }
        let deleted: Value = invocation
            .arg(state.as_str())
            .arg(ids.iter().map(|id| id.0).collect::<Vec<_>>())
            .invoke_async(&mut self.conn())
            .await
            .map_err(|e| call.fail(&e))?;
        uint(&deleted)
    }

    /// The queue's periodic schedules, by name, with their last and next ticks and
    /// their job as JSON.
    ///
    /// # Errors
    ///
    /// [`Error::Redis`] when the call fails.
    pub async fn schedules(&self) -> Result<Vec<ScheduleView>> {
        let keys = &self.keys;
        let call = Call::new(self.url(), "reading the schedules");
        let (specs, ticks, time): (Vec<(String, Vec<u8>)>, Vec<(String, u64)>, Value) =
            redis::pipe()
                .atomic()
                .cmd("HGETALL")
                .arg(&keys.schedules)
                .cmd("HGETALL")
                .arg(&keys.ticks)
                .cmd("TIME")
                .query_async(&mut self.conn())
                .await
                .map_err(|e| call.fail(&e))?;
        let now = redis_time(time)?;
        let mut views: Vec<ScheduleView> = specs
            .into_iter()
            .map(|(name, json)| {
                let last = ticks
                    .iter()
                    .find(|(tick_of, _)| *tick_of == name)
                    .map_or(0, |(_, tick)| *tick);
                ScheduleView::new(name, &json, last, now)
            })
            .collect();
        views.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(views)
    }

    /// The last `limit` (at most 1,000, all Redis keeps) ticks of periodic schedules
    /// that fired, newest first: which job each made.
    ///
    /// # Errors
    ///
    /// [`Error::Redis`] when the call fails.
    pub async fn fired_ticks(&self, limit: usize) -> Result<Vec<FiredTick>> {
        let limit = limit.min(MAX_PAGE);
        if limit == 0 {
            return Ok(Vec::new());
        }
        let call = Call::new(self.url(), "reading fired ticks");
        let entries: Vec<Vec<u8>> = redis::cmd("LRANGE")
            .arg(&self.keys.fired)
            .arg(0)
            .arg(limit - 1)
            .query_async(&mut self.conn())
            .await
            .map_err(|e| call.fail(&e))?;
        Ok(entries
            .iter()
            .filter_map(|entry| serde_json::from_slice::<FiredTick>(entry).ok())
            .collect())
    }

    /// Up to `limit` (at most [`MAX_PAGE`]) uniqueness keys held, after skipping
    /// `offset`, soonest to lapse first: `(key, job id, lapses at ms)`.
    ///
    /// # Errors
    ///
    /// [`Error::Redis`] when the call fails.
    pub async fn unique_keys(&self, offset: usize, limit: usize) -> Result<Vec<UniqueKeyView>> {
        let limit = limit.min(MAX_PAGE);
        if limit == 0 {
            return Ok(Vec::new());
        }
        let keys = &self.keys;
        let call = Call::new(self.url(), "reading uniqueness keys");
        let entries: Vec<(String, f64)> = redis::cmd("ZRANGE")
            .arg(&keys.unique_ttl)
            .arg(offset)
            .arg(offset + limit - 1)
            .arg("WITHSCORES")
            .query_async(&mut self.conn())
            .await
            .map_err(|e| call.fail(&e))?;
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let names: Vec<&str> = entries.iter().map(|(key, _)| key.as_str()).collect();
        let ids: Vec<Option<u64>> = redis::cmd("HMGET")
            .arg(&keys.unique)
            .arg(&names)
            .query_async(&mut self.conn())
            .await
            .map_err(|e| call.fail(&e))?;
        Ok(entries
            .iter()
            .zip(ids)
            .filter_map(|((key, lapses), id)| {
                Some(UniqueKeyView {
                    key: key.clone(),
                    id: JobId(id?),
                    lapses_at_ms: lapses.max(0.0) as u64,
                })
            })
            .collect())
    }

    /// Deletes the whole queue: every job in every state, its totals, its id counter,
    /// and its registry entry (a process that connects to it again registers it
    /// again). Workers still serving it see their settlements refused.
    ///
    /// # Errors
    ///
    /// [`Error::Redis`] when a call fails.
    pub async fn purge(&self) -> Result<()> {
        let call = Call::new(self.url(), "purging a queue");
        let mut conn = self.conn();
        let _: Value = redis::cmd("DEL")
            .arg(self.keys.all())
            .query_async(&mut conn)
            .await
            .map_err(|e| call.fail(&e))?;
        let _: Value = redis::cmd("ZREM")
            .arg(registry::key(self.admin.prefix()))
            .arg(&self.name)
            .query_async(&mut conn)
            .await
            .map_err(|e| call.fail(&e))?;
        Ok(())
    }
}

impl fmt::Debug for QueueAdmin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueueAdmin")
            .field("admin", &self.admin)
            .field("queue", &self.name)
            .finish()
    }
}

fn llen(key: &str) -> redis::Cmd {
    let mut cmd = redis::cmd("LLEN");
    cmd.arg(key);
    cmd
}

fn time_cmd() -> redis::Cmd {
    redis::cmd("TIME")
}

fn to_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX / 2)
}

/// Reads a `TIME` reply as ms since the Unix epoch.
fn redis_time(time: Value) -> Result<u64> {
    let parts = array(time)?;
    let [seconds, micros] = parts.as_slice() else {
        return Err(Error::Protocol("TIME returned no pair".into()));
    };
    Ok(uint(seconds)? * 1000 + uint(micros)? / 1000)
}

/// Reads a sorted-set score that holds whole milliseconds.
fn score_ms(score: &Value) -> Result<u64> {
    let text = match score {
        Value::Double(score) => return Ok(score.max(0.0) as u64),
        Value::BulkString(text) => String::from_utf8_lossy(text).into_owned(),
        Value::SimpleString(text) => text.clone(),
        other => return Err(Error::Protocol(format!("expected a score, got {other:?}"))),
    };
    text.parse::<f64>()
        .map(|score| score.max(0.0) as u64)
        .map_err(|_| Error::Protocol(format!("expected a score, got {text:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_parse_and_print() {
        for state in JobState::ALL {
            assert_eq!(state.as_str().parse::<JobState>().unwrap(), state);
        }
        assert!("running".parse::<JobState>().is_err());
    }

    #[test]
    fn records_decode_into_views() {
        let view = JobView::from_record(br#"7|3|{"v":1,"at":1000,"job":{"a":1}}"#);
        assert_eq!(view.id, JobId(7));
        assert_eq!(view.attempt, 3);
        assert_eq!(view.job, Some(serde_json::json!({"a": 1})));
        assert_eq!(view.enqueued_at_ms, Some(1000));
        let bad = JobView::from_record(b"garbage");
        assert_eq!(bad.id, JobId(0));
        assert!(bad.error.unwrap().contains("malformed"));
        let undecodable = JobView::from_record(br#"8|1|{"v":9,"job":1}"#);
        assert!(undecodable.error.unwrap().contains("version 9"));
    }
}
