//! Pausing, resuming and rate-limiting a queue for every process at once
//! (`lua/control.lua`; `lua/fetch.lua` obeys).

use std::time::Duration;

use crate::conn::Conn;
use redis::{Script, Value};
use serde::Serialize;

use crate::keys::Keys;
use crate::link::{Call, Link, millis};
use crate::wire::{array, uint};
use crate::{Error, RedisUrl, Result};

/// At most [`jobs`](RateLimit::jobs) job starts per [`per`](RateLimit::per) for a
/// queue, however many worker processes consume it.
///
/// Kept in Redis and enforced by the fetch script: in any window of `per` (Redis's
/// clock), the jobs leased by every process together are at most `jobs`. A worker held
/// back by the limit sleeps until the oldest start in the window leaves it; it does not
/// poll. Jobs count when a fetch leases them, which is when they start unless the
/// process fetched them ahead ([`RedisConfig::prefetch`](crate::RedisConfig::prefetch)).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use crewpool_redis::RateLimit;
///
/// let limit = RateLimit::new(100, Duration::from_secs(1))?; // 100 jobs/s in all
/// assert_eq!(limit.jobs(), 100);
/// assert_eq!(limit.per(), Duration::from_secs(1));
/// assert!(RateLimit::new(0, Duration::from_secs(1)).is_err());
/// # Ok::<(), crewpool_redis::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RateLimit {
    jobs: u32,
    per_ms: u64,
}

impl RateLimit {
    /// At most `jobs` starts per `per` (rounded down to whole milliseconds).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when `jobs` is 0 or `per` is under a millisecond.
    pub fn new(jobs: u32, per: Duration) -> Result<Self> {
        let per_ms = millis(per);
        if jobs == 0 || per_ms == 0 {
            return Err(Error::Config(format!(
                "a rate limit needs at least one job per at least 1 ms (got {jobs} per {per:?})"
            )));
        }
        Ok(RateLimit { jobs, per_ms })
    }

    /// The most jobs started in any window of [`per`](RateLimit::per).
    pub fn jobs(&self) -> u32 {
        self.jobs
    }

    /// The window.
    pub fn per(&self) -> Duration {
        Duration::from_millis(self.per_ms)
    }
}

/// A change of a queue's control state.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Control {
    Pause,
    Resume,
    Limit(Option<RateLimit>),
}

/// A queue's control state as read from Redis.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ControlState {
    /// When the queue was paused (ms since the epoch, Redis clock), while it is.
    pub(crate) paused_since_ms: Option<u64>,
    pub(crate) rate_limit: Option<RateLimit>,
}

/// Applies `op` with `control.lua` (`script`); returns whether the state changed.
pub(crate) async fn apply(
    conn: &mut Conn,
    url: &RedisUrl,
    script: &Script,
    keys: &Keys,
    op: Control,
) -> Result<bool> {
    let what = match op {
        Control::Pause => "pausing the queue",
        Control::Resume => "resuming the queue",
        Control::Limit(_) => "setting the queue's rate limit",
    };
    let call = Call::new(url, what);
    let mut invocation = script.prepare_invoke();
    invocation
        .key(&keys.control)
        .key(&keys.resumed)
        .key(&keys.pending)
        .key(&keys.rate);
    match op {
        Control::Pause => invocation.arg("pause"),
        Control::Resume => invocation.arg("resume"),
        Control::Limit(limit) => invocation
            .arg("limit")
            .arg(limit.map_or(0, |limit| limit.jobs))
            .arg(limit.map_or(1, |limit| limit.per_ms)),
    };
    let changed: Value = invocation
        .invoke_async(conn)
        .await
        .map_err(|e| call.fail(&e))?;
    Ok(uint(&changed)? == 1)
}

/// Adds the command that reads the control state to `pipe` (one reply).
pub(crate) fn read_into(pipe: &mut redis::Pipeline, keys: &Keys) {
    pipe.cmd("HMGET")
        .arg(&keys.control)
        .arg(&["paused", "rate_jobs", "rate_ms"][..]);
}

/// Parses the reply of [`read_into`].
pub(crate) fn parse(reply: &Value) -> Result<ControlState> {
    let fields = array(reply.clone())?;
    let [paused, jobs, per_ms] = fields.as_slice() else {
        return Err(Error::Protocol(format!(
            "the control state came back with {} fields",
            fields.len()
        )));
    };
    let field = |value: &Value| match value {
        Value::Nil => Ok(None),
        value => uint(value).map(Some),
    };
    let rate_limit = match (field(jobs)?, field(per_ms)?) {
        (Some(jobs), Some(per_ms)) if jobs > 0 && per_ms > 0 => Some(RateLimit {
            jobs: u32::try_from(jobs).unwrap_or(u32::MAX),
            per_ms,
        }),
        _ => None,
    };
    Ok(ControlState {
        paused_since_ms: field(paused)?,
        rate_limit,
    })
}

impl Link {
    /// Applies `op` to this queue; returns whether the state changed.
    pub(crate) async fn control(&self, op: Control) -> Result<bool> {
        apply(
            &mut self.conn(),
            &self.config.url,
            &self.scripts.control,
            &self.keys,
            op,
        )
        .await
    }

    /// Waits (on the blocking connection) until the queue is resumed, or `timeout`
    /// passes: `BLMOVE resumed resumed LEFT LEFT` returns once a resume pushed its
    /// marker there (a pause empties the list), and moves nothing.
    pub(crate) async fn wait_for_resume(
        &self,
        blocking: &mut Conn,
        timeout: Duration,
    ) -> Result<()> {
        self.wait_on_list(
            blocking,
            &self.keys.resumed,
            timeout,
            "waiting for the queue to be resumed",
        )
        .await
    }
}
