//! What a producer can ask of a job (priority level, due time, start deadline,
//! uniqueness) and in which order a worker takes the levels.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crewpool_core::JobId;

use crate::wire::LEVELS;
use crate::{Error, Result};

/// The highest priority level: levels are 0 (the default) to 9, higher ones run first.
pub const MAX_PRIORITY: u8 = (LEVELS - 1) as u8;

/// Options for [`RedisQueue::enqueue_with`](crate::RedisQueue::enqueue_with) and
/// [`enqueue_bulk_with`](crate::RedisQueue::enqueue_bulk_with): a priority level, a
/// due time, a start deadline and a uniqueness key, in any combination.
///
/// Times given as a [`Duration`] count on Redis's clock, from when the job reaches
/// Redis: no producer's clock is involved. Times given as a [`SystemTime`] are the
/// instant you chose, stored as given (compared with Redis's clock).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use crewpool_redis::{Enqueued, JobOptions, RedisConfig, RedisQueue};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = crewpool_redis::testing::RedisServer::start();
/// # let url = server.url();
/// let queue = RedisQueue::<String>::connect(RedisConfig::new(url.as_str(), "mail")).await?;
/// // A reminder in an hour, urgent when due, sent only once per user an hour, and only
/// // if a worker starts it within five minutes of its time.
/// let options = JobOptions::new()
///     .delay(Duration::from_secs(3600))
///     .priority(5)
///     .unique("reminder:user-42", Duration::from_secs(3600))
///     .start_within(Duration::from_secs(300));
/// let first = queue.enqueue_with(&"remind user 42".to_owned(), &options).await?;
/// let again = queue.enqueue_with(&"remind user 42".to_owned(), &options).await?;
/// assert!(matches!(first, Enqueued::Added(_)));
/// assert_eq!(again, Enqueued::Duplicate(first.id()));
/// assert_eq!(queue.stats().await?.scheduled, 1);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[must_use]
pub struct JobOptions {
    pub(crate) level: u8,
    pub(crate) due: Due,
    pub(crate) deadline: Deadline,
    pub(crate) unique: Option<(String, Duration)>,
    pub(crate) headers: crate::Headers,
    pub(crate) result: bool,
}

/// When a job is due.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum Due {
    #[default]
    Now,
    At(SystemTime),
    In(Duration),
}

/// When a job must have started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum Deadline {
    #[default]
    None,
    By(SystemTime),
    Within(Duration),
}

impl JobOptions {
    /// No options: level 0, due now, no deadline, not unique (what
    /// [`enqueue`](crate::RedisQueue::enqueue) does).
    pub fn new() -> Self {
        JobOptions::default()
    }

    /// The priority level, 0 (the default) to [`MAX_PRIORITY`]: workers take higher
    /// levels first (or in proportion to their weights: see [`Priorities`]).
    pub fn priority(mut self, level: u8) -> Self {
        self.level = level;
        self
    }

    /// Due at `when` (an instant you chose, stored as given); a time in the past is due
    /// at once. The job waits in the queue's scheduled set until then.
    pub fn at(mut self, when: SystemTime) -> Self {
        self.due = Due::At(when);
        self
    }

    /// Due `delay` from when Redis receives it (Redis's clock).
    pub fn delay(mut self, delay: Duration) -> Self {
        self.due = Due::In(delay);
        self
    }

    /// The job must start by `deadline`; if no worker has started it by then, it is
    /// dead-lettered with the reason `expired` instead of running.
    pub fn start_by(mut self, deadline: SystemTime) -> Self {
        self.deadline = Deadline::By(deadline);
        self
    }

    /// The job must start within `window` of when it is due (of when Redis receives
    /// it, for a job due at once); otherwise it is dead-lettered with the reason
    /// `expired` instead of running.
    pub fn start_within(mut self, window: Duration) -> Self {
        self.deadline = Deadline::Within(window);
        self
    }

    /// Makes the job unique under `key` for at most `ttl`: while a job enqueued with
    /// this key is pending, scheduled, waiting for a retry or running, enqueueing
    /// another with the same key adds nothing and returns the first one's id
    /// ([`Enqueued::Duplicate`]). The key is released when its job is acknowledged,
    /// dead-lettered or deleted, or once `ttl` has passed (a safety net: a job still
    /// running then no longer holds the key).
    pub fn unique(mut self, key: impl Into<String>, ttl: Duration) -> Self {
        self.unique = Some((key.into(), ttl));
        self
    }

    /// Adds a header to the job's envelope (e.g. `traceparent`, the W3C trace context of
    /// the producer's span, for the worker's `job` span: see "Tracing" in the crate
    /// docs). Headers travel with the job to its worker; they override what the queue's
    /// [`Propagator`](crate::Propagator) injects under the same name.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.insert(name.into(), value.into());
        self
    }

    /// Sends the job's outcome (its output, or its final error after retries) to this
    /// queue handle's results stream ([`RedisQueue::results`](crate::RedisQueue::results))
    /// when a worker process finishes it. Needs
    /// [`with_results`](crate::RedisQueue::with_results) on the queue.
    pub fn result(mut self) -> Self {
        self.result = true;
        self
    }

    /// Checks the options, for `bulk` or single enqueues.
    pub(crate) fn validate(&self, bulk: bool) -> Result<()> {
        if self.level > MAX_PRIORITY {
            return Err(Error::Config(format!(
                "priority levels are 0 to {MAX_PRIORITY}, not {}",
                self.level
            )));
        }
        if let Some((key, ttl)) = &self.unique {
            if bulk {
                return Err(Error::Config(
                    "a uniqueness key names one job: use enqueue_with for each".to_owned(),
                ));
            }
            if key.is_empty() {
                return Err(Error::Config("the uniqueness key is empty".to_owned()));
            }
            if ttl.as_millis() < 1 {
                return Err(Error::Config(
                    "the uniqueness TTL must be at least 1 ms".to_owned(),
                ));
            }
        }
        Ok(())
    }

    /// `push.lua`'s due-time argument.
    pub(crate) fn due_arg(&self) -> String {
        match self.due {
            Due::Now => String::new(),
            Due::At(when) => format!("at:{}", epoch_ms(when)),
            Due::In(delay) => format!("in:{}", crate::link::millis(delay)),
        }
    }

    /// `push.lua`'s deadline argument.
    pub(crate) fn deadline_arg(&self) -> String {
        match self.deadline {
            Deadline::None => String::new(),
            Deadline::By(when) => format!("by:{}", epoch_ms(when)),
            Deadline::Within(window) => format!("within:{}", crate::link::millis(window)),
        }
    }
}

/// Milliseconds since the Unix epoch (0 for an instant before it).
pub(crate) fn epoch_ms(when: SystemTime) -> u64 {
    when.duration_since(UNIX_EPOCH).map_or(0, |since| {
        u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
    })
}

/// What an enqueue with options did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Enqueued {
    /// The job was added, with this id.
    Added(JobId),
    /// Not added: a job with the same uniqueness key is still pending, scheduled,
    /// waiting for a retry or running, under this id.
    Duplicate(JobId),
}

impl Enqueued {
    /// The id of the job added, or of the one that holds the uniqueness key.
    pub fn id(self) -> JobId {
        match self {
            Enqueued::Added(id) | Enqueued::Duplicate(id) => id,
        }
    }

    /// Whether the job was added.
    pub fn is_added(self) -> bool {
        matches!(self, Enqueued::Added(_))
    }
}

/// In which order a worker process takes the jobs of the priority levels (set with
/// [`RedisConfig::priorities`](crate::RedisConfig::priorities)).
///
/// Every worker takes jobs of every level, in one of two orders:
///
/// - **Strict** (the default): the highest non-empty level first. Simple and the
///   lowest latency for urgent jobs, but a steady flow of high-level jobs starves the
///   lower levels.
/// - **Weighted**: each level gets a weight (1 to 1,000; unlisted levels 1), and jobs
///   are taken in proportion to the weights of the non-empty levels, by stride
///   scheduling over state kept in Redis, so the proportions hold across every worker
///   process. **No level starves**: while a level with weight `w` has jobs, at most
///   `(W - w) / w + (L - 1)` jobs of other levels are taken between two of its own,
///   where `W` is the total weight and `L` the number of non-empty levels (with
///   weights 6, 3, 1: at most 11 other jobs between two of the level with weight 1).
///
/// Either way one fetch is one script call, whatever the batch size.
///
/// # Examples
///
/// ```
/// use crewpool_redis::{Priorities, RedisConfig};
///
/// // Level 2 gets 6 jobs in 10, level 1 three, level 0 (plain jobs) one.
/// let config = RedisConfig::new("redis://127.0.0.1:6379", "mail")
///     .priorities(Priorities::weighted([(2, 6), (1, 3), (0, 1)]));
/// # let _ = config;
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Priorities {
    /// `None`: strict; else the weights of levels 0 to 9.
    pub(crate) weights: Option<[u32; LEVELS]>,
}

impl Priorities {
    /// The highest non-empty level first (the default).
    pub fn strict() -> Self {
        Priorities { weights: None }
    }

    /// In proportion to `weights`, `(level, weight)` pairs (levels 0 to 9, weights 1
    /// to 1,000); levels not listed get weight 1. Invalid levels or weights make
    /// [`RedisQueue::connect`](crate::RedisQueue::connect) fail with
    /// [`Error::Config`].
    pub fn weighted(weights: impl IntoIterator<Item = (u8, u32)>) -> Self {
        let mut table = [1; LEVELS];
        for (level, weight) in weights {
            match table.get_mut(usize::from(level)) {
                Some(slot) => *slot = weight,
                // Kept out of range, so `validate` reports it.
                None => table[0] = 0,
            }
        }
        Priorities {
            weights: Some(table),
        }
    }

    /// Whether this is the weighted order.
    pub fn is_weighted(&self) -> bool {
        self.weights.is_some()
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if let Some(weights) = &self.weights
            && weights.iter().any(|&w| !(1..=1000).contains(&w))
        {
            return Err(Error::Config(format!(
                "priority weights are 1 to 1000 for levels 0 to {MAX_PRIORITY} (got {weights:?})"
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_become_script_arguments() {
        let options = JobOptions::new()
            .at(UNIX_EPOCH + Duration::from_millis(1_700_000_000_123))
            .start_within(Duration::from_secs(2));
        assert_eq!(options.due_arg(), "at:1700000000123");
        assert_eq!(options.deadline_arg(), "within:2000");
        let options = JobOptions::new()
            .delay(Duration::from_millis(1500))
            .start_by(UNIX_EPOCH + Duration::from_millis(5));
        assert_eq!(options.due_arg(), "in:1500");
        assert_eq!(options.deadline_arg(), "by:5");
        assert_eq!(JobOptions::new().due_arg(), "");
        assert!(JobOptions::new().priority(10).validate(false).is_err());
        let unique = JobOptions::new().unique("k", Duration::from_secs(1));
        assert!(unique.validate(false).is_ok());
        assert!(unique.validate(true).is_err());
        assert!(
            JobOptions::new()
                .unique("", Duration::from_secs(1))
                .validate(false)
                .is_err()
        );
    }

    #[test]
    fn weights_default_to_one_and_are_checked() {
        let p = Priorities::weighted([(2, 6), (1, 3)]);
        assert_eq!(p.weights, Some([1, 3, 6, 1, 1, 1, 1, 1, 1, 1]));
        assert!(p.validate().is_ok());
        assert!(Priorities::weighted([(10, 1)]).validate().is_err());
        assert!(Priorities::weighted([(1, 0)]).validate().is_err());
        assert!(Priorities::strict().validate().is_ok());
    }
}
