//! What the Redis examples share: the job type, the worker process, and the audit
//! ledger that lets a run be checked (what was enqueued, what ran, how often).
//!
//! The **ledger** is opt-in (`--audit` on `redis_producer` and `redis_worker`; the
//! `redis_distributed` demo and `cargo xtask chaos` turn it on), because it grows with
//! every job: about 65 bytes of Redis per job run, kept until the ledger is deleted.
//! It lives in Redis next to the queue, under `<queue>:ledger:*`:
//!
//! - `<queue>:ledger:seq` (string): how many job numbers producers have taken; a
//!   producer reserves its jobs' numbers (`seq`) with `INCRBY` before enqueueing them,
//!   so numbers are unique across producers and runs;
//! - `<queue>:ledger:enqueued` (set): `<first>:<count>`, one entry per batch of jobs
//!   `first .. first + count` that `enqueue_bulk` accepted (recorded after it
//!   returned, so numbers reserved by a call whose reply was lost, and never used, do
//!   not count, and a batch recorded twice counts once);
//! - `<queue>:ledger:runs` (hash): `seq` → how many times the job ran to completion.
//!   A worker records the run (`HINCRBY`) as the job's last step, before the job is
//!   acknowledged, so an acknowledged job has always been recorded.
//!
//! The tally reads them: an enqueued `seq` without a run is **lost**, one with more
//! than one ran twice (at-least-once delivery at work, counted separately).
//!
//! With `redis_producer --mix`, some jobs are scheduled, prioritised or unique, and a
//! periodic schedule runs while the producer does; the ledger then also keeps:
//!
//! - `<queue>:ledger:early` (string): scheduled jobs a worker started before their due
//!   time (by Redis's clock: a scheduled job carries the earliest time it may start);
//! - `<queue>:ledger:unique` (string): enqueues of a uniqueness key, while its first
//!   job was certainly still waiting, that did not return that job's id;
//! - `<queue>:ledger:periodic` (hash): job id → runs, for the periodic schedule's jobs,
//!   checked against the ticks the queue recorded as fired (each tick once).

// Each example uses a part of this module.
#![allow(dead_code)]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use crewpool::redis::{Priorities, RedisConfig, RedisQueue};
use crewpool::{JobContext, PoolBuilder, RetryPolicy, with_context};
use redis::AsyncCommands as _;
use serde::{Deserialize, Serialize};

/// The default Redis, when `REDIS_URL` is not set.
pub(crate) const DEFAULT_URL: &str = "redis://127.0.0.1:6379";

/// `REDIS_URL`, or [`DEFAULT_URL`].
pub(crate) fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned())
}

/// A job of the examples: some simulated I/O, then the run is recorded in the ledger.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Task {
    /// The job's number in the ledger (unique per queue).
    pub(crate) seq: u64,
    /// How long the job "works" (a sleep standing for I/O), in microseconds.
    pub(crate) work_us: u64,
    /// For a scheduled job: the earliest it may start (ms since the Unix epoch, Redis's
    /// clock); a worker that starts it earlier counts it in the ledger.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) not_before_ms: Option<u64>,
    /// The job of a periodic schedule (its runs are counted by job id).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) periodic: bool,
}

impl Task {
    /// A plain job.
    pub(crate) fn new(seq: u64, work_us: u64) -> Self {
        Task {
            seq,
            work_us,
            not_before_ms: None,
            periodic: false,
        }
    }
}

/// The ledger keys of a queue.
#[derive(Debug, Clone)]
pub(crate) struct Ledger {
    conn: redis::aio::ConnectionManager,
    seq_key: String,
    enqueued_key: String,
    runs_key: String,
    early_key: String,
    unique_key: String,
    periodic_key: String,
    results_key: String,
}

impl Ledger {
    pub(crate) async fn connect(url: &str, queue: &str) -> anyhow::Result<Self> {
        let conn = redis::Client::open(url)
            .context("parsing the Redis URL")?
            .get_connection_manager()
            .await
            .context("connecting to Redis for the ledger")?;
        Ok(Ledger {
            conn,
            seq_key: format!("{queue}:ledger:seq"),
            enqueued_key: format!("{queue}:ledger:enqueued"),
            runs_key: format!("{queue}:ledger:runs"),
            early_key: format!("{queue}:ledger:early"),
            unique_key: format!("{queue}:ledger:unique"),
            periodic_key: format!("{queue}:ledger:periodic"),
            results_key: format!("{queue}:ledger:results"),
        })
    }

    /// Redis's clock (ms since the Unix epoch).
    pub(crate) async fn redis_now(&self) -> redis::RedisResult<u64> {
        let (seconds, micros): (u64, u64) = redis::cmd("TIME")
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(seconds * 1000 + micros / 1000)
    }

    /// Counts a scheduled job started before its time.
    pub(crate) async fn record_early(&self) -> redis::RedisResult<()> {
        let _: u64 = self.conn.clone().incr(&self.early_key, 1).await?;
        Ok(())
    }

    /// Counts an enqueue of a held uniqueness key that did not return its job's id.
    pub(crate) async fn record_unique_violation(&self) -> redis::RedisResult<()> {
        let _: u64 = self.conn.clone().incr(&self.unique_key, 1).await?;
        Ok(())
    }

    /// Records one completed run of the periodic job `id`.
    pub(crate) async fn record_periodic_run(&self, id: u64) -> redis::RedisResult<()> {
        let _: u64 = self.conn.clone().hincr(&self.periodic_key, id, 1).await?;
        Ok(())
    }

    /// Counts what a producer's awaited results came to: `ok` (the job's own number),
    /// `wrong` (another value or an error), `missing` (no result in time), and the
    /// pauses it made.
    pub(crate) async fn record_results(&self, field: &str, n: u64) -> redis::RedisResult<()> {
        let _: u64 = self.conn.clone().hincr(&self.results_key, field, n).await?;
        Ok(())
    }

    /// The result counters (see [`record_results`](Ledger::record_results)).
    pub(crate) async fn results(&self) -> redis::RedisResult<HashMap<String, u64>> {
        self.conn.clone().hgetall(&self.results_key).await
    }

    /// The counters of the mixed run: (early starts, uniqueness violations, periodic
    /// job id → runs).
    pub(crate) async fn mix(&self) -> redis::RedisResult<(u64, u64, HashMap<u64, u64>)> {
        let mut conn = self.conn.clone();
        let early: Option<u64> = conn.get(&self.early_key).await?;
        let unique: Option<u64> = conn.get(&self.unique_key).await?;
        let periodic: HashMap<u64, u64> = conn.hgetall(&self.periodic_key).await?;
        Ok((early.unwrap_or(0), unique.unwrap_or(0), periodic))
    }

    /// Reserves `n` job numbers; returns the first.
    pub(crate) async fn reserve(&self, n: u64) -> redis::RedisResult<u64> {
        let last: u64 = self.conn.clone().incr(&self.seq_key, n).await?;
        Ok(last - n)
    }

    /// Records that jobs `first .. first + count` were enqueued.
    pub(crate) async fn record_enqueued(&self, first: u64, count: u64) -> redis::RedisResult<()> {
        let _: u64 = self
            .conn
            .clone()
            .sadd(&self.enqueued_key, format!("{first}:{count}"))
            .await?;
        Ok(())
    }

    /// The numbers of the jobs enqueued, as `(first, count)` batches.
    pub(crate) async fn enqueued(&self) -> anyhow::Result<Vec<(u64, u64)>> {
        let batches: Vec<String> = self.conn.clone().smembers(&self.enqueued_key).await?;
        batches
            .iter()
            .map(|batch| {
                let (first, count) = batch
                    .split_once(':')
                    .with_context(|| format!("ledger entry {batch:?}"))?;
                Ok((first.parse()?, count.parse()?))
            })
            .collect()
    }

    /// Records one completed run of job `seq`.
    pub(crate) async fn record_run(&self, seq: u64) -> redis::RedisResult<()> {
        let _: u64 = self.conn.clone().hincr(&self.runs_key, seq, 1).await?;
        Ok(())
    }

    /// How many distinct jobs completed at least once (cheap: `HLEN`).
    pub(crate) async fn completed(&self) -> redis::RedisResult<u64> {
        self.conn.clone().hlen(&self.runs_key).await
    }

    /// Every job's run count, scanned in slices.
    pub(crate) async fn runs(&self) -> redis::RedisResult<Vec<(u64, u64)>> {
        let mut conn = self.conn.clone();
        let mut cursor = 0_u64;
        let mut runs = Vec::new();
        loop {
            let (next, page): (u64, Vec<(u64, u64)>) = redis::cmd("HSCAN")
                .arg(&self.runs_key)
                .arg(cursor)
                .arg("COUNT")
                .arg(10_000)
                .query_async(&mut conn)
                .await?;
            runs.extend(page);
            if next == 0 {
                return Ok(runs);
            }
            cursor = next;
        }
    }

    /// Deletes the ledger.
    pub(crate) async fn purge(&self) -> redis::RedisResult<()> {
        let _: u64 = self
            .conn
            .clone()
            .del(&[
                &self.seq_key,
                &self.enqueued_key,
                &self.runs_key,
                &self.early_key,
                &self.unique_key,
                &self.periodic_key,
                &self.results_key,
            ])
            .await?;
        Ok(())
    }
}

/// The settings of a worker process.
#[derive(Debug, Clone)]
pub(crate) struct WorkerSettings {
    pub(crate) url: String,
    pub(crate) queue: String,
    pub(crate) workers: usize,
    pub(crate) prefetch: usize,
    pub(crate) lease: Duration,
    /// Record every job's run in the ledger.
    pub(crate) audit: bool,
    /// How long to wait for Redis at start.
    pub(crate) connect_wait: Duration,
    /// The priority order (default: strict).
    pub(crate) priorities: Priorities,
}

/// Runs a pool of `settings.workers` workers on the queue until SIGTERM or Ctrl-C,
/// showing progress every second; then shuts down gracefully (running jobs finish,
/// prefetched ones go back to Redis) and prints a summary.
pub(crate) async fn run_worker_process(settings: WorkerSettings) -> anyhow::Result<()> {
    let pid = std::process::id();
    let config = RedisConfig::new(settings.url.as_str(), settings.queue.as_str())
        .lease(settings.lease)
        .prefetch(settings.prefetch)
        // Start order does not matter: wait for a Redis that is not up yet.
        .connect_retry_for(settings.connect_wait)
        .priorities(settings.priorities.clone())
        // A job whose ledger write failed (Redis away) is retried soon.
        .retry(
            RetryPolicy::exponential(25)
                .base_delay(Duration::from_millis(100))
                .max_delay(Duration::from_secs(2)),
        );
    // The error names the URL (its password hidden) and what failed. The result (the
    // job's number) goes back to a producer that waits for it.
    let queue = RedisQueue::<Task>::connect(config)
        .await?
        .with_results::<u64, String>();
    // Shared by the jobs: one reference count per job, not a copy of its key names.
    let ledger = if settings.audit {
        Some(std::sync::Arc::new(
            Ledger::connect(&settings.url, &settings.queue).await?,
        ))
    } else {
        None
    };
    let pool = PoolBuilder::new()
        .name("redis-worker")
        .workers(settings.workers)
        .queue(queue)
        .build(with_context(move |task: Task, cx: JobContext<Task>| {
            perform(ledger.clone(), task, cx.id().0)
        }))?;
    println!(
        "worker {pid}: {} workers on queue {:?} at {} (lease {:?}, audit ledger {}); Ctrl-C or SIGTERM stops gracefully",
        settings.workers,
        settings.queue,
        pool.queue().config().url(),
        settings.lease,
        if settings.audit { "on" } else { "off" },
    );
    serve(pool, pid, Instant::now()).await
}

/// Runs one job: checks a scheduled one did not start early, works, and records the
/// run in the ledger (before the job is acknowledged); its result is its number.
pub(crate) async fn perform(
    ledger: Option<std::sync::Arc<Ledger>>,
    task: Task,
    id: u64,
) -> Result<u64, String> {
    if let (Some(ledger), Some(not_before)) = (&ledger, task.not_before_ms) {
        let now = ledger
            .redis_now()
            .await
            .map_err(|e| format!("reading Redis's clock: {e}"))?;
        if now < not_before {
            eprintln!("job {id} started at {now}, before its time {not_before}");
            ledger
                .record_early()
                .await
                .map_err(|e| format!("recording an early start: {e}"))?;
        }
    }
    if task.work_us > 0 {
        tokio::time::sleep(Duration::from_micros(task.work_us)).await;
    }
    // The job's side effect, written before it is acknowledged.
    match ledger {
        Some(ledger) if task.periodic => ledger
            .record_periodic_run(id)
            .await
            .map_err(|e| format!("recording the run: {e}"))?,
        Some(ledger) => ledger
            .record_run(task.seq)
            .await
            .map_err(|e| format!("recording the run: {e}"))?,
        None => {}
    }
    Ok(task.seq)
}

/// Reports progress every second until Ctrl-C or SIGTERM, then shuts down gracefully.
async fn serve<W>(
    pool: crewpool::Pool<RedisQueue<Task>, W>,
    pid: u32,
    started: Instant,
) -> anyhow::Result<()>
where
    W: crewpool::Worker<Task>,
{
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    ticker.tick().await;
    let mut last = 0;
    loop {
        tokio::select! {
            _ = terminate.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
            _ = ticker.tick() => {
                let stats = pool.stats();
                if stats.completed != last {
                    println!(
                        "worker {pid}: {} done (+{}/s), {} running, {} failed, queue depth {}, took back {}",
                        stats.completed,
                        stats.completed - last,
                        stats.running,
                        stats.failed,
                        stats.queued,
                        pool.queue().counters().recovered,
                    );
                    last = stats.completed;
                }
            }
        }
    }
    println!("worker {pid}: stopping: running jobs finish, prefetched ones go back to Redis");
    let report = pool.shutdown().await;
    let counters = pool.queue().counters();
    println!(
        "worker {pid}: stopped after {:.1?}: {}; fetched {}, acknowledged {}, retried {}, released {}, \
         took back {} jobs of dead workers; dead-lettered {} (of which {} undecodable or malformed), \
         {} acknowledgements refused (lease lost)",
        started.elapsed(),
        report.stats,
        counters.fetched,
        counters.acked,
        counters.retried,
        counters.released,
        counters.recovered,
        counters.dead_lettered,
        counters.undecodable,
        counters.stale,
    );
    Ok(())
}

/// Waits until nothing waits or runs in `queue` (see [`Tally::quiet`]), polling its
/// counts a few times a second (another process does the work: there is no signal to
/// wait for), or until `within` has passed.
pub(crate) async fn wait_quiet(url: &str, queue: &str, within: Duration) -> anyhow::Result<()> {
    let handle = RedisQueue::<Task>::connect(RedisConfig::new(url, queue)).await?;
    let deadline = std::time::Instant::now() + within;
    loop {
        let stats = handle.stats().await?;
        if stats.pending + stats.active + stats.delayed + stats.scheduled == 0
            || std::time::Instant::now() >= deadline
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The state of a run: what the ledger and the queue say.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Tally {
    /// Jobs producers enqueued (distinct numbers).
    pub(crate) enqueued: u64,
    /// Distinct jobs that completed at least once.
    pub(crate) completed: u64,
    /// Jobs that completed more than once.
    pub(crate) twice: u64,
    /// Runs beyond the first, summed over all jobs.
    pub(crate) extra_runs: u64,
    /// Jobs numbered and never completed.
    pub(crate) lost: u64,
    /// Jobs still waiting, leased, waiting for a retry, or dead-lettered.
    pub(crate) pending: u64,
    pub(crate) leased: u64,
    pub(crate) delayed: u64,
    pub(crate) dead: u64,
    /// Jobs still waiting for their due time.
    pub(crate) scheduled: u64,
    /// Scheduled jobs a worker started before their time (must be 0).
    pub(crate) early: u64,
    /// Enqueues of a held uniqueness key that did not return its job's id (must be 0).
    pub(crate) unique_violations: u64,
    /// Ticks of the periodic schedule fired (each made one job).
    pub(crate) ticks: u64,
    /// Ticks fired more than once (must be 0).
    pub(crate) tick_duplicates: u64,
    /// Fired ticks whose job never ran (must be 0).
    pub(crate) ticks_lost: u64,
    /// Ticks skipped between the first and the last fired one (missed while Redis was
    /// down: only the latest missed tick fires).
    pub(crate) ticks_skipped: u64,
    /// Results a producer awaited: the job's number, something else, none in time.
    pub(crate) results_ok: u64,
    pub(crate) results_wrong: u64,
    pub(crate) results_missing: u64,
    /// Pauses and resumes a producer made.
    pub(crate) pauses: u64,
}

impl Tally {
    /// Reads the ledger and the queue.
    pub(crate) async fn read(url: &str, queue: &str) -> anyhow::Result<Tally> {
        let ledger = Ledger::connect(url, queue).await?;
        let handle = RedisQueue::<Task>::connect(RedisConfig::new(url, queue)).await?;
        // The queue first: a job leaves it (is acknowledged) only after its run is in
        // the ledger, so a queue found settled has every run recorded before the
        // ledger is read.
        let stats = handle.stats().await?;
        let batches = ledger.enqueued().await?;
        let runs = ledger.runs().await?;
        // Every enqueued number, once, even if a batch was recorded twice.
        let end = batches
            .iter()
            .map(|&(first, count)| first + count)
            .max()
            .unwrap_or(0);
        let mut enqueued = vec![false; usize::try_from(end)?];
        for (first, count) in batches {
            for seq in first..first + count {
                enqueued[usize::try_from(seq)?] = true;
            }
        }
        let mut tally = Tally {
            enqueued: enqueued.iter().filter(|&&e| e).count() as u64,
            pending: stats.pending,
            leased: stats.active,
            delayed: stats.delayed,
            dead: stats.dead,
            scheduled: stats.scheduled,
            ..Tally::default()
        };
        let (early, unique_violations, periodic) = ledger.mix().await?;
        tally.early = early;
        tally.unique_violations = unique_violations;
        let results = ledger.results().await?;
        let count = |field: &str| results.get(field).copied().unwrap_or(0);
        tally.results_ok = count("ok");
        tally.results_wrong = count("wrong");
        tally.results_missing = count("missing");
        tally.pauses = count("pauses");
        // The periodic schedule's ticks, as the queue recorded them when they fired.
        let admin = crewpool_redis::Admin::connect(url, "crewpool").await?;
        let fired = admin.queue(queue)?.fired_ticks(1000).await?;
        let mut ticks: Vec<u64> = fired
            .iter()
            .filter(|f| f.schedule == PERIODIC)
            .map(|f| f.tick_ms)
            .collect();
        ticks.sort_unstable();
        let fired_total = ticks.len() as u64;
        ticks.dedup();
        tally.ticks = ticks.len() as u64;
        tally.tick_duplicates = fired_total - tally.ticks;
        tally.ticks_skipped = ticks
            .windows(2)
            .map(|pair| ((pair[1] - pair[0]) / PERIODIC_EVERY_MS).saturating_sub(1))
            .sum();
        tally.ticks_lost = fired
            .iter()
            .filter(|f| f.schedule == PERIODIC && !periodic.contains_key(&f.id.0))
            .count() as u64;
        for (seq, count) in runs {
            let was_enqueued = usize::try_from(seq)
                .ok()
                .and_then(|seq| enqueued.get(seq))
                .is_some_and(|&e| e);
            if was_enqueued && count > 0 {
                tally.completed += 1;
                if count > 1 {
                    tally.twice += 1;
                    tally.extra_runs += count - 1;
                }
            }
        }
        tally.lost = tally.enqueued - tally.completed;
        Ok(tally)
    }

    /// Nothing waits or runs in the queue: no job can complete any more (unless a
    /// producer is still at work).
    pub(crate) fn quiet(&self) -> bool {
        self.pending + self.leased + self.delayed + self.scheduled == 0
    }

    /// A promise of the mixed run broken: a scheduled job started early, a unique key
    /// made two jobs, a tick fired twice or its job never ran, an awaited result was
    /// wrong or never came.
    pub(crate) fn broken(&self) -> bool {
        self.early
            + self.unique_violations
            + self.tick_duplicates
            + self.ticks_lost
            + self.results_wrong
            + self.results_missing
            > 0
    }

    /// Quiet, and nothing dead-lettered either.
    pub(crate) fn settled(&self) -> bool {
        self.quiet() && self.dead == 0
    }
}

impl std::fmt::Display for Tally {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "tally: enqueued={} completed={} twice={} extra_runs={} lost={} pending={} leased={} delayed={} dead={} \
             scheduled={} early={} unique_violations={} ticks={} tick_duplicates={} ticks_lost={} ticks_skipped={} \
             results_ok={} results_wrong={} results_missing={} pauses={}",
            self.enqueued,
            self.completed,
            self.twice,
            self.extra_runs,
            self.lost,
            self.pending,
            self.leased,
            self.delayed,
            self.dead,
            self.scheduled,
            self.early,
            self.unique_violations,
            self.ticks,
            self.tick_duplicates,
            self.ticks_lost,
            self.ticks_skipped,
            self.results_ok,
            self.results_wrong,
            self.results_missing,
            self.pauses
        )
    }
}

/// The periodic schedule of a mixed run, and its interval.
pub(crate) const PERIODIC: &str = "chaos-beat";
pub(crate) const PERIODIC_EVERY_MS: u64 = 500;

/// Parses `--name value` style flags after the positional arguments.
pub(crate) fn flag<T: std::str::FromStr>(args: &[String], name: &str) -> anyhow::Result<Option<T>>
where
    T::Err: std::fmt::Display,
{
    match args.iter().position(|arg| arg == name) {
        None => Ok(None),
        Some(at) => {
            let value = args
                .get(at + 1)
                .with_context(|| format!("{name} needs a value"))?;
            value
                .parse()
                .map(Some)
                .map_err(|e| anyhow::anyhow!("{name} {value}: {e}"))
        }
    }
}
