//! Periodic jobs: schedules kept in Redis, each tick fired once, by whichever worker
//! process gets there first.
//!
//! # The runner
//!
//! Every worker process (one whose queue has a consumer, unless
//! [`RedisConfig::run_schedules`](crate::RedisConfig::run_schedules) is off) runs one
//! task that keeps the queue's schedules and fires their ticks:
//!
//! ```text
//!   Load (HGETALL schedules, ticks) ──▶ Plan: each schedule's next tick after its last
//!     ▲                                      │  (or the latest missed one, see MissedTicks)
//!     │                                      ▼
//!     └── the version changed ◀──── Sleep until the earliest tick (Redis's clock, from
//!         (a fetch reported it,           the offset the fetches measure), then fire.lua:
//!          or fire.lua said so)           fired / already fired / passed: plan the next;
//!                                          too early: sleep what Redis says is left
//! ```
//!
//! No leader: every runner fires every tick, and `fire.lua` enqueues only the first
//! call (it compares the tick with the last one fired, atomically). A changed schedule
//! reaches idle processes at once: the change wakes their fetchers, and the fetch reply
//! carries the schedules' version.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tokio::sync::watch;

use crate::backoff::Backoff;
use crate::counters::Counters;
use crate::error::Chain;
use crate::link::{Fire, Link, Tick};
use crate::options::MAX_PRIORITY;
use crate::{Error, Result};

/// When a periodic job runs: every fixed interval, or on a cron expression (UTC), plus
/// its priority level, start deadline and what to do about ticks missed while no worker
/// ran. Set on a queue with [`RedisQueue::set_schedule`](crate::RedisQueue::set_schedule).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use crewpool_redis::{MissedTicks, Schedule};
///
/// // At 02:30 UTC every day; skipped if no worker could fire it within ten minutes.
/// let nightly = Schedule::cron("30 2 * * *")?.missed(MissedTicks::SkipAfter(Duration::from_secs(600)));
/// // Every 30 seconds (counted from when the schedule is set), urgent.
/// let poll = Schedule::every(Duration::from_secs(30)).priority(9);
/// # let _ = (nightly, poll);
/// # Ok::<(), crewpool_redis::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct Schedule {
    pub(crate) when: When,
    pub(crate) level: u8,
    pub(crate) missed: MissedTicks,
    pub(crate) start_within: Option<Duration>,
}

/// The ticks of a schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum When {
    /// Every interval (whole milliseconds, at least 1), counted from when the schedule
    /// was set.
    Every(u64),
    /// A cron expression, in UTC.
    Cron(Box<croner::Cron>),
}

/// What happens to ticks that passed while no worker process could fire them (every
/// worker was down, or Redis was).
///
/// Either way a tick fires at most once, and older missed ticks never fire: a schedule
/// that comes back after a day of downtime does not run a day of jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MissedTicks {
    /// The most recent missed tick fires once, as soon as a worker can (late); the
    /// older ones are dropped. The default: a periodic job runs at least once after an
    /// outage, as soon as possible.
    #[default]
    FireLatest,
    /// A tick not fired within this long of its time is dropped; the schedule goes on
    /// with its next tick. For jobs that are pointless late.
    SkipAfter(Duration),
}

impl Schedule {
    /// Ticks every `interval` (rounded to whole milliseconds, at least 1), counted from
    /// when the schedule is set (Redis's clock): set at 10:00:07 with 1 minute, it
    /// ticks at 10:01:07, 10:02:07, ...
    pub fn every(interval: Duration) -> Self {
        Schedule {
            when: When::Every(crate::link::millis(interval).max(1)),
            level: 0,
            missed: MissedTicks::default(),
            start_within: None,
        }
    }

    /// Ticks on a cron expression, evaluated in UTC: five fields (minute, hour, day of
    /// month, month, day of week), or six with seconds first, with the usual `*`, `,`,
    /// `-`, `/`, names (`MON`, `JAN`), `L`, `W`, `#` and nicknames (`@hourly`). Parsed
    /// by the `croner` crate.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for an expression that does not parse.
    pub fn cron(expression: &str) -> Result<Self> {
        let cron = croner::Cron::from_str(expression)
            .map_err(|e| Error::Config(format!("invalid cron expression {expression:?}: {e}")))?;
        Ok(Schedule {
            when: When::Cron(Box::new(cron)),
            level: 0,
            missed: MissedTicks::default(),
            start_within: None,
        })
    }

    /// The priority level of its jobs (0 to 9; see
    /// [`JobOptions::priority`](crate::JobOptions::priority)).
    pub fn priority(mut self, level: u8) -> Self {
        self.level = level;
        self
    }

    /// What happens to ticks missed while no worker ran (default
    /// [`MissedTicks::FireLatest`]).
    pub fn missed(mut self, missed: MissedTicks) -> Self {
        self.missed = missed;
        self
    }

    /// Each job must start within `window` of its tick, or it is dead-lettered with the
    /// reason `expired` (see [`JobOptions::start_within`](crate::JobOptions::start_within)).
    pub fn start_within(mut self, window: Duration) -> Self {
        self.start_within = Some(window);
        self
    }

    /// The interval, for a schedule made with [`every`](Schedule::every).
    pub fn interval(&self) -> Option<Duration> {
        match &self.when {
            When::Every(ms) => Some(Duration::from_millis(*ms)),
            When::Cron(_) => None,
        }
    }

    /// The cron expression, for a schedule made with [`cron`](Schedule::cron).
    pub fn cron_expression(&self) -> Option<&str> {
        match &self.when {
            When::Every(_) => None,
            When::Cron(cron) => Some(cron.as_str()),
        }
    }

    /// The priority level of its jobs.
    pub fn level(&self) -> u8 {
        self.level
    }

    /// What happens to missed ticks.
    pub fn missed_ticks(&self) -> MissedTicks {
        self.missed
    }

    /// The start window of its jobs, if any.
    pub fn start_window(&self) -> Option<Duration> {
        self.start_within
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if self.level > MAX_PRIORITY {
            return Err(Error::Config(format!(
                "priority levels are 0 to {MAX_PRIORITY}, not {}",
                self.level
            )));
        }
        Ok(())
    }

    /// The first tick after `after_ms` (ms since the epoch) of a schedule set at
    /// `since_ms`; `None` when there is none (a cron expression that never matches
    /// again).
    pub(crate) fn next_after(&self, since_ms: u64, after_ms: u64) -> Option<u64> {
        match &self.when {
            When::Every(interval) => {
                let past = after_ms.saturating_sub(since_ms) / interval;
                since_ms.checked_add((past + 1).checked_mul(*interval)?)
            }
            When::Cron(cron) => {
                let after = from_ms(after_ms.max(since_ms))?;
                let next = cron.find_next_occurrence(&after, false).ok()?;
                u64::try_from(next.timestamp_millis()).ok()
            }
        }
    }

    /// The last tick at or before `at_ms` and after `since_ms`, if any.
    pub(crate) fn latest_until(&self, since_ms: u64, at_ms: u64) -> Option<u64> {
        match &self.when {
            When::Every(interval) => {
                let passed = at_ms.checked_sub(since_ms)? / interval;
                (passed >= 1).then(|| since_ms + passed * interval)
            }
            When::Cron(cron) => {
                let at = from_ms(at_ms)?;
                let latest = cron.find_previous_occurrence(&at, true).ok()?;
                let latest = u64::try_from(latest.timestamp_millis()).ok()?;
                (latest > since_ms).then_some(latest)
            }
        }
    }

    /// The tick to fire next, after the last one fired or passed (`last_ms`), as of
    /// `now_ms`: the next tick if it is still to come, else (ticks were missed) the
    /// latest tick that has come. `None`: no tick ever again.
    pub(crate) fn plan(&self, since_ms: u64, last_ms: u64, now_ms: u64) -> Option<u64> {
        let next = self.next_after(since_ms, last_ms)?;
        if next > now_ms {
            return Some(next);
        }
        // Missed ticks: only the most recent one is a candidate (see `MissedTicks`).
        Some(
            self.latest_until(since_ms, now_ms)
                .unwrap_or(next)
                .max(next),
        )
    }

    /// How late a tick may fire (`None`: however late).
    fn max_late_ms(&self) -> Option<u64> {
        match self.missed {
            MissedTicks::FireLatest => None,
            MissedTicks::SkipAfter(grace) => Some(crate::link::millis(grace)),
        }
    }

    /// The schedule as stored (without `version` and `since`, which the script adds).
    pub(crate) fn to_json<J: Serialize>(&self, job: &J) -> Result<Vec<u8>> {
        let (every_ms, cron) = match &self.when {
            When::Every(ms) => (Some(*ms), None),
            When::Cron(cron) => (None, Some(cron.as_str())),
        };
        let (missed, grace_ms) = match self.missed {
            MissedTicks::FireLatest => ("latest", None),
            MissedTicks::SkipAfter(grace) => ("skip", Some(crate::link::millis(grace))),
        };
        serde_json::to_vec(&SpecOut {
            every_ms,
            cron,
            level: self.level,
            missed,
            grace_ms,
            start_within_ms: self.start_within.map(crate::link::millis),
            job,
        })
        .map_err(Error::Encode)
    }
}

fn from_ms(ms: u64) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::from_timestamp_millis(i64::try_from(ms).ok()?)
}

/// A schedule as written to Redis, without `version` and `since`.
#[derive(Serialize)]
struct SpecOut<'a, J> {
    #[serde(skip_serializing_if = "Option::is_none")]
    every_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cron: Option<&'a str>,
    level: u8,
    missed: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    grace_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    start_within_ms: Option<u64>,
    job: &'a J,
}

/// A schedule as read from Redis.
#[derive(Deserialize)]
struct SpecIn {
    version: u64,
    since: u64,
    #[serde(default)]
    every_ms: Option<u64>,
    #[serde(default)]
    cron: Option<String>,
    #[serde(default)]
    level: u8,
    #[serde(default)]
    missed: Option<String>,
    #[serde(default)]
    grace_ms: Option<u64>,
    #[serde(default)]
    start_within_ms: Option<u64>,
    job: Box<RawValue>,
}

/// A schedule read from Redis: its settings, version, start and job (as JSON text).
#[derive(Debug, Clone)]
pub(crate) struct Stored {
    pub(crate) schedule: Schedule,
    pub(crate) version: u64,
    pub(crate) since_ms: u64,
    pub(crate) job: Box<RawValue>,
}

impl Stored {
    /// Reads a stored schedule, or says why it cannot be read.
    pub(crate) fn parse(json: &[u8]) -> std::result::Result<Self, String> {
        let spec: SpecIn =
            serde_json::from_slice(json).map_err(|e| format!("unreadable schedule: {e}"))?;
        let mut schedule = match (spec.every_ms, spec.cron) {
            (Some(ms), None) => Schedule::every(Duration::from_millis(ms)),
            (None, Some(cron)) => Schedule::cron(&cron).map_err(|e| e.to_string())?,
            _ => return Err("a schedule needs one of every_ms and cron".to_owned()),
        };
        schedule.level = spec.level.min(MAX_PRIORITY);
        schedule.missed = match spec.missed.as_deref() {
            Some("skip") => {
                MissedTicks::SkipAfter(Duration::from_millis(spec.grace_ms.unwrap_or(0)))
            }
            _ => MissedTicks::FireLatest,
        };
        schedule.start_within = spec.start_within_ms.map(Duration::from_millis);
        Ok(Stored {
            schedule,
            version: spec.version,
            since_ms: spec.since,
            job: spec.job,
        })
    }

    /// The envelope of the job of tick `tick_ms` of schedule `name`.
    fn envelope(&self, name: &str, tick_ms: u64) -> Result<Vec<u8>> {
        #[derive(Serialize)]
        struct Envelope<'a> {
            v: u32,
            at: u64,
            schedule: &'a str,
            tick: u64,
            #[serde(skip_serializing_if = "Option::is_none")]
            start_by: Option<u64>,
            job: &'a RawValue,
        }
        serde_json::to_vec(&Envelope {
            v: crate::ENVELOPE_VERSION,
            at: tick_ms,
            schedule: name,
            tick: tick_ms,
            start_by: self
                .schedule
                .start_within
                .map(|window| tick_ms.saturating_add(crate::link::millis(window))),
            job: &self.job,
        })
        .map_err(Error::Encode)
    }
}

/// Every schedule of a queue and the last tick of each, read in one round trip.
pub(crate) async fn load(
    link: &Link,
) -> Result<Vec<(String, std::result::Result<Stored, String>, u64)>> {
    let call = link.call("reading the schedules");
    let (specs, ticks): (HashMap<String, Vec<u8>>, HashMap<String, u64>) = redis::pipe()
        .atomic()
        .cmd("HGETALL")
        .arg(&link.keys.schedules)
        .cmd("HGETALL")
        .arg(&link.keys.ticks)
        .query_async(&mut link.conn())
        .await
        .map_err(|e| call.fail(&e))?;
    let mut all: Vec<_> = specs
        .into_iter()
        .map(|(name, json)| {
            let last = ticks.get(&name).copied().unwrap_or(0);
            (name, Stored::parse(&json), last)
        })
        .collect();
    all.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(all)
}

/// One schedule as the runner keeps it.
struct Planned {
    name: String,
    stored: Stored,
    /// The last tick fired or passed.
    last_ms: u64,
}

/// Reads the schedules' version when no fetch did for twice `max_block` (this process's
/// workers are all busy with long jobs): a fetch carries it otherwise, for free.
async fn check_version(link: &Link) -> Result<()> {
    if link.since_last_fetch() < 2 * link.config.max_block {
        return Ok(());
    }
    let call = link.call("reading the schedules' version");
    let version: Option<u64> = redis::cmd("GET")
        .arg(&link.keys.schedver)
        .query_async(&mut link.conn())
        .await
        .map_err(|e| call.fail(&e))?;
    link.observe_schedules(version.unwrap_or(0));
    Ok(())
}

/// Runs the queue's schedules until `closed` (see the module docs).
pub(crate) async fn run(link: Arc<Link>, mut closed: watch::Receiver<bool>) {
    let mut backoff = Backoff::new();
    'load: loop {
        if *closed.borrow() || closed.has_changed().is_err() {
            return;
        }
        let mut planned: Vec<Planned> = match load(&link).await {
            Ok(all) => {
                backoff.reset();
                all.into_iter()
                    .filter_map(|(name, stored, last_ms)| match stored {
                        Ok(stored) => Some(Planned { name, stored, last_ms }),
                        Err(reason) => {
                            tracing::warn!(queue = %link.config.queue, schedule = %name, %reason, "ignoring a schedule that does not read");
                            None
                        }
                    })
                    .collect()
            }
            Err(error) => {
                Counters::add(&link.counters.redis_errors, 1);
                tracing::warn!(queue = %link.config.queue, error = %Chain(&error), "could not read the schedules; retrying with backoff");
                tokio::select! {
                    () = tokio::time::sleep(backoff.next_delay()) => {}
                    _ = closed.changed() => {}
                }
                continue 'load;
            }
        };
        loop {
            // The earliest tick to fire.
            let now = link.redis_now_ms();
            let next = planned
                .iter()
                .enumerate()
                .filter_map(|(i, p)| {
                    let tick = p.stored.schedule.plan(p.stored.since_ms, p.last_ms, now)?;
                    Some((tick, i))
                })
                .min();
            // Woken by the tick, or by a change; at most every `max_block` to look for
            // changes no fetch reported.
            let max_block = link.config.max_block;
            let wait = match next {
                Some((tick, _)) => Duration::from_millis(tick.saturating_sub(now)).min(max_block),
                None => max_block,
            };
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = link.schedules_changed.notified() => continue 'load,
                _ = closed.changed() => return,
            }
            if let Err(error) = check_version(&link).await {
                Counters::add(&link.counters.redis_errors, 1);
                tracing::debug!(queue = %link.config.queue, error = %Chain(&error), "could not read the schedules' version");
            }
            let Some((tick, i)) = next else { continue };
            // The clock estimate may have moved: fire only what is due.
            if tick > link.redis_now_ms() {
                continue;
            }
            let entry = &mut planned[i];
            let envelope = match entry.stored.envelope(&entry.name, tick) {
                Ok(envelope) => envelope,
                Err(error) => {
                    tracing::warn!(queue = %link.config.queue, schedule = %entry.name, error = %Chain(&error), "could not encode a schedule's job");
                    entry.last_ms = tick;
                    continue;
                }
            };
            let fired = link
                .fire(&Tick {
                    name: &entry.name,
                    at_ms: tick,
                    version: entry.stored.version,
                    max_late_ms: entry.stored.schedule.max_late_ms(),
                    level: entry.stored.schedule.level,
                    envelope: &envelope,
                })
                .await;
            match fired {
                Ok(Fire::Fired(id)) => {
                    backoff.reset();
                    tracing::debug!(queue = %link.config.queue, schedule = %entry.name, tick, id, "fired a periodic job");
                    entry.last_ms = tick;
                }
                Ok(Fire::Already) => {
                    backoff.reset();
                    entry.last_ms = tick;
                }
                Ok(Fire::Passed) => {
                    backoff.reset();
                    tracing::info!(queue = %link.config.queue, schedule = %entry.name, tick, "skipped a tick missed by more than its grace");
                    entry.last_ms = tick;
                }
                Ok(Fire::Changed) => continue 'load,
                Ok(Fire::Early(left)) => {
                    // This machine's clock runs ahead of Redis's: wait what Redis says.
                    tokio::select! {
                        () = tokio::time::sleep(left) => {}
                        _ = closed.changed() => return,
                    }
                }
                Err(error) => {
                    Counters::add(&link.counters.redis_errors, 1);
                    tracing::warn!(queue = %link.config.queue, schedule = %entry.name, error = %Chain(&error), "could not fire a tick; retrying with backoff");
                    tokio::select! {
                        () = tokio::time::sleep(backoff.next_delay()) => {}
                        _ = closed.changed() => return,
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: u64 = 60_000;

    #[test]
    fn intervals_count_from_the_start() {
        let every = Schedule::every(Duration::from_secs(60));
        let since = 1_000;
        assert_eq!(every.next_after(since, since), Some(since + MIN));
        assert_eq!(every.next_after(since, since + MIN - 1), Some(since + MIN));
        assert_eq!(every.next_after(since, since + MIN), Some(since + 2 * MIN));
        assert_eq!(every.latest_until(since, since + MIN - 1), None);
        assert_eq!(
            every.latest_until(since, since + 5 * MIN + 7),
            Some(since + 5 * MIN)
        );
        // On time: the next tick. Late by four ticks: only the latest one.
        assert_eq!(
            every.plan(since, since + MIN, since + MIN + 5),
            Some(since + 2 * MIN)
        );
        assert_eq!(
            every.plan(since, since + MIN, since + 6 * MIN + 5),
            Some(since + 6 * MIN)
        );
    }

    #[test]
    fn cron_ticks_in_utc() {
        // 2023-11-14T22:13:20Z.
        let at = 1_700_000_000_000;
        let hourly = Schedule::cron("0 * * * *").unwrap();
        let next = hourly.next_after(0, at).unwrap();
        assert_eq!(next, 1_700_002_800_000, "23:00:00Z");
        assert_eq!(
            hourly.latest_until(0, at),
            Some(1_699_999_200_000),
            "22:00:00Z"
        );
        assert_eq!(
            hourly.latest_until(1_699_999_200_000, at),
            None,
            "not after the start"
        );
        let seconds = Schedule::cron("*/5 * * * * *").unwrap();
        assert_eq!(seconds.next_after(0, at), Some(at + 5_000));
        assert!(Schedule::cron("not cron").is_err());
    }

    #[test]
    fn schedules_round_trip_through_their_json() {
        let schedule = Schedule::cron("30 2 * * *")
            .unwrap()
            .priority(3)
            .missed(MissedTicks::SkipAfter(Duration::from_secs(600)))
            .start_within(Duration::from_secs(60));
        let json = schedule
            .to_json(&serde_json::json!({"report": "daily"}))
            .unwrap();
        let stored = format!(
            r#"{{"version":4,"since":17,{}"#,
            &String::from_utf8(json).unwrap()[1..]
        );
        let read = Stored::parse(stored.as_bytes()).unwrap();
        assert_eq!(read.schedule, schedule);
        assert_eq!((read.version, read.since_ms), (4, 17));
        assert_eq!(read.job.get(), r#"{"report":"daily"}"#);
        let envelope = read.envelope("nightly", 1_000).unwrap();
        assert_eq!(
            String::from_utf8(envelope).unwrap(),
            r#"{"v":1,"at":1000,"schedule":"nightly","tick":1000,"start_by":61000,"job":{"report":"daily"}}"#
        );
    }
}
