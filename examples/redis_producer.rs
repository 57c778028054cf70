//! A producer process: enqueues N jobs on a Redis queue in bulk and prints the rate.
//!
//! ```text
//! REDIS_URL=redis://127.0.0.1:6379 cargo run --release --features redis --example redis_producer -- thumbnails 100000
//! ```
//!
//! With `--audit`, each job gets a number in the queue's audit ledger (see
//! `redis_worker`), so `redis_distributed tally <queue>` can later check that every one
//! of them ran (if the workers ran with `--audit` too). The library's warnings go to
//! standard error (`RUST_LOG` chooses more or less).

#[path = "redis_common/mod.rs"]
mod common;
#[path = "logging/mod.rs"]
mod logging;

use std::time::{Duration, Instant, UNIX_EPOCH};

use crewpool::redis::{Enqueued, JobOptions, RedisConfig, RedisQueue, Schedule};
use crewpool::{JobContext, JobHandle, PoolBuilder, RetryPolicy, with_context};

const USAGE: &str = "\
usage: redis_producer <queue> <jobs> [--batch B] [--work-us U] [--rate R] [--audit] [--mix]
                      [--await-results] [--pause-ms P]

  <queue>       the queue to fill (workers use the same name)
  <jobs>        how many jobs to enqueue
  --batch B     jobs per enqueue_bulk call (default 10000)
  --work-us U   each job sleeps about U microseconds, between 0 and 2U (default 0)
  --rate R      at most R jobs per second, in batches (default: as fast as possible)
  --audit       number the jobs in the queue's audit ledger in Redis and record each
                batch enqueued, for `redis_distributed tally` (workers need --audit
                too); off by default
  --mix         one batch in four each: plain; at a priority level (1 to 9);
                scheduled (due within 1.5 s, by Redis's clock); unique (each job
                enqueued three times with its key, scheduled 0.8 s ahead: the second
                and third enqueues must return the first's id). And a periodic
                schedule (every 500 ms) while the producer runs. With --audit the
                ledger checks them (see `redis_distributed tally`)
  --await-results  one batch in five is submitted through a pool of this process
                (one worker of its own, which runs jobs like the worker processes)
                and every job's result is awaited: it must be the job's number.
                The ledger counts results right, wrong and missing (none within
                3 minutes); the workers return their job's number
  --pause-ms P  half-way, pause the queue for every worker process for P ms, then
                resume it (recorded in the ledger)

Redis: REDIS_URL (default redis://127.0.0.1:6379).
Logs: RUST_LOG (default: warnings).";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    logging::init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 || args.iter().any(|arg| arg == "-h" || arg == "--help") {
        println!("{USAGE}");
        return Ok(());
    }
    let queue_name = &args[0];
    let jobs: u64 = args[1].parse()?;
    let batch: u64 = common::flag(&args, "--batch")?.unwrap_or(10_000).max(1);
    let work_us: u64 = common::flag(&args, "--work-us")?.unwrap_or(0);
    let rate: Option<f64> = common::flag(&args, "--rate")?;
    let audit = args.iter().any(|arg| arg == "--audit");
    let mix = args.iter().any(|arg| arg == "--mix");
    let await_results = args.iter().any(|arg| arg == "--await-results");
    let pause_ms: Option<u64> = common::flag(&args, "--pause-ms")?;

    let url = common::redis_url();
    let queue =
        RedisQueue::<common::Task>::connect(RedisConfig::new(url.as_str(), queue_name.as_str()))
            .await?;
    let ledger = if audit {
        Some(common::Ledger::connect(&url, queue_name).await?)
    } else {
        None
    };
    println!(
        "enqueueing {jobs} jobs on {queue_name:?} at {} (audit ledger {})",
        queue.config().url(),
        if audit { "on" } else { "off" }
    );

    if mix {
        let beat = Schedule::every(Duration::from_millis(common::PERIODIC_EVERY_MS));
        let task = common::Task {
            periodic: true,
            ..common::Task::new(0, 0)
        };
        with_retries("setting the periodic schedule", || {
            queue.set_schedule(common::PERIODIC, &beat, &task)
        })
        .await?;
    }
    // A pool of this process for the jobs whose results it awaits: its worker runs
    // jobs like the worker processes (recording them in the ledger).
    let submitter = if await_results {
        let config = RedisConfig::new(url.as_str(), queue_name.as_str())
            .lease(Duration::from_secs(1))
            .retry(
                RetryPolicy::exponential(25)
                    .base_delay(Duration::from_millis(100))
                    .max_delay(Duration::from_secs(2)),
            );
        let shared = match &ledger {
            Some(_) => Some(std::sync::Arc::new(
                common::Ledger::connect(&url, queue_name).await?,
            )),
            None => None,
        };
        let handle = RedisQueue::<common::Task>::connect(config)
            .await?
            .with_results::<u64, String>();
        Some(
            PoolBuilder::new()
                .name("redis-producer")
                .workers(1)
                .queue(handle)
                .build(with_context(
                    move |task: common::Task, cx: JobContext<common::Task>| {
                        common::perform(shared.clone(), task, cx.id().0)
                    },
                ))?,
        )
    } else {
        None
    };
    let mut awaiting = Vec::new();
    let mut pausing = None;
    let started = Instant::now();
    let mut batches = 0_u64;
    let mut sent = 0;
    let mut random = Xorshift(0x9E37_79B9_7F4A_7C15 ^ u64::from(std::process::id()));
    while sent < jobs {
        let n = batch.min(jobs - sent);
        if let Some(rate) = rate {
            // Pacing, not synchronisation: this batch is due when the rate allows it.
            let due = started + Duration::from_secs_f64(sent as f64 / rate);
            tokio::time::sleep_until(due.into()).await;
        }
        let first = match &ledger {
            Some(ledger) => with_retries("reserving job numbers", || ledger.reserve(n)).await?,
            None => sent,
        };
        let mut tasks: Vec<common::Task> = (first..first + n)
            .map(|seq| {
                common::Task::new(
                    seq,
                    if work_us == 0 {
                        0
                    } else {
                        random.next() % (2 * work_us + 1)
                    },
                )
            })
            .collect();
        // After a connection error the batch may or may not be stored: sending it again
        // may enqueue some jobs twice (they then run twice; nothing is lost).
        if let (Some(pause_ms), None) = (pause_ms, &pausing)
            && sent >= jobs / 2
        {
            let queue = RedisQueue::<common::Task>::connect(RedisConfig::new(
                url.as_str(),
                queue_name.as_str(),
            ))
            .await?;
            let ledger = match &ledger {
                Some(_) => Some(common::Ledger::connect(&url, queue_name).await?),
                None => None,
            };
            pausing = Some(tokio::spawn(async move {
                with_retries("pausing the queue", || queue.pause()).await?;
                println!("paused the queue for {pause_ms} ms");
                tokio::time::sleep(Duration::from_millis(pause_ms)).await;
                with_retries("resuming the queue", || queue.resume()).await?;
                println!("resumed the queue");
                if let Some(ledger) = &ledger {
                    with_retries("recording the pause", || ledger.record_results("pauses", 1))
                        .await?;
                }
                anyhow::Ok(())
            }));
        }
        if let (Some(pool), 4) = (&submitter, batches % 5) {
            let mut handles = Vec::with_capacity(tasks.len());
            for task in tasks {
                let seq = task.seq;
                handles.push((seq, submit(pool, task).await?));
            }
            awaiting.push(tokio::spawn(await_all(handles)));
            batches += 1;
            if let Some(ledger) = &ledger {
                with_retries("recording the batch in the ledger", || {
                    ledger.record_enqueued(first, n)
                })
                .await?;
            }
            sent += n;
            continue;
        }
        match (mix, batches % 4) {
            (false, _) | (true, 0) => {
                with_retries("enqueueing", || queue.enqueue_bulk(&tasks)).await?;
            }
            (true, 1) => {
                let level = 1 + (batches / 4 % 9) as u8;
                let options = JobOptions::new().priority(level);
                with_retries("enqueueing at a level", || {
                    queue.enqueue_bulk_with(&tasks, &options)
                })
                .await?;
            }
            (true, 2) => {
                let delay = Duration::from_millis(random.next() % 1500);
                let now = with_retries("reading Redis's clock", || async {
                    match &ledger {
                        Some(ledger) => ledger.redis_now().await,
                        None => Ok(0),
                    }
                })
                .await?;
                // Relative (due `delay` after Redis receives it, so not before
                // `now + delay`) or absolute, every other batch.
                let not_before = now + delay.as_millis() as u64;
                let options = if batches % 8 == 2 {
                    JobOptions::new().delay(delay)
                } else {
                    JobOptions::new().at(UNIX_EPOCH + Duration::from_millis(not_before))
                };
                for task in &mut tasks {
                    task.not_before_ms = Some(not_before);
                }
                with_retries("scheduling", || queue.enqueue_bulk_with(&tasks, &options)).await?;
            }
            (true, _) => {
                for task in &tasks {
                    let options = JobOptions::new()
                        .unique(format!("unique-{}", task.seq), Duration::from_secs(60))
                        .delay(Duration::from_millis(800));
                    // A retried call whose first try landed returns that job's id.
                    let id = with_retries("enqueueing a unique job", || {
                        queue.enqueue_with(task, &options)
                    })
                    .await?
                    .id();
                    for _ in 0..2 {
                        let again = with_retries("enqueueing a unique job again", || {
                            queue.enqueue_with(task, &options)
                        })
                        .await?;
                        if again != Enqueued::Duplicate(id) {
                            eprintln!("unique-{}: {again:?}, the first was {id}", task.seq);
                            if let Some(ledger) = &ledger {
                                with_retries("recording a uniqueness violation", || {
                                    ledger.record_unique_violation()
                                })
                                .await?;
                            }
                        }
                    }
                }
            }
        }
        batches += 1;
        if let Some(ledger) = &ledger {
            with_retries("recording the batch in the ledger", || {
                ledger.record_enqueued(first, n)
            })
            .await?;
        }
        sent += n;
    }
    if let Some(pausing) = pausing {
        pausing.await??;
    }
    if !awaiting.is_empty() {
        let (mut ok, mut wrong, mut missing) = (0, 0, 0);
        for batch in awaiting {
            let (o, w, m) = batch.await?;
            (ok, wrong, missing) = (ok + o, wrong + w, missing + m);
        }
        println!("awaited results: {ok} right, {wrong} wrong, {missing} missing");
        if let Some(ledger) = &ledger {
            for (field, n) in [("ok", ok), ("wrong", wrong), ("missing", missing)] {
                with_retries("recording the results", || ledger.record_results(field, n)).await?;
            }
        }
    }
    if let Some(pool) = submitter {
        pool.shutdown().await;
    }
    if mix {
        with_retries("removing the periodic schedule", || {
            queue.remove_schedule(common::PERIODIC)
        })
        .await?;
    }
    let elapsed = started.elapsed();
    println!(
        "enqueued {jobs} jobs in {elapsed:.2?}: {:.0} jobs/s; {} waiting in Redis now",
        jobs as f64 / elapsed.as_secs_f64(),
        queue.len().await?
    );
    Ok(())
}

type Handle = JobHandle<u64, String>;

/// Submits `task` through `pool`, retrying like [`with_retries`] (a refused submit
/// hands the job back; one whose enqueue reached Redis before the error may run twice).
async fn submit<W>(
    pool: &crewpool::Pool<RedisQueue<common::Task>, W>,
    mut task: common::Task,
) -> anyhow::Result<Handle>
where
    W: crewpool::Worker<common::Task, Output = u64, Error = String>,
{
    let mut delay = Duration::from_millis(100);
    for _ in 0..40 {
        match pool.submit(task).await {
            Ok(handle) => return Ok(handle),
            Err(error) => {
                eprintln!("submitting failed ({error}); retrying in {delay:?}");
                task = error.into_inner();
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
        }
    }
    anyhow::bail!("submitting kept failing")
}

/// Awaits every handle (3 minutes at most in all); returns (right, wrong, missing).
async fn await_all(handles: Vec<(u64, Handle)>) -> (u64, u64, u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
    let (mut ok, mut wrong, mut missing) = (0, 0, 0);
    for (seq, handle) in handles {
        match tokio::time::timeout_at(deadline, handle).await {
            Ok(Ok(result)) if result == seq => ok += 1,
            Ok(outcome) => {
                eprintln!("job {seq}: result {outcome:?}");
                wrong += 1;
            }
            Err(_) => missing += 1,
        }
    }
    (ok, wrong, missing)
}

/// Calls `attempt` until it succeeds, backing off from 100 ms to 2 s, for about a
/// minute (a Redis restart or failover takes seconds).
async fn with_retries<T, E, F>(what: &str, mut attempt: impl FnMut() -> F) -> anyhow::Result<T>
where
    F: std::future::Future<Output = Result<T, E>>,
    E: std::error::Error + Send + Sync + 'static,
{
    let mut delay = Duration::from_millis(100);
    for _ in 0..40 {
        match attempt().await {
            Ok(value) => return Ok(value),
            Err(error) => {
                // The whole chain: what failed, and why.
                let error = anyhow::Error::new(error);
                eprintln!("{what} failed ({error:#}); retrying in {delay:?}");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
        }
    }
    anyhow::bail!("{what} kept failing")
}

/// A small xorshift generator for the jobs' work times.
struct Xorshift(u64);

impl Xorshift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}
