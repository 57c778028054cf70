//! The distributed demo, in one command: several worker processes share a Redis queue,
//! jobs are enqueued, one worker is killed with SIGKILL mid-run, and the run ends with a
//! tally: enqueued, completed, ran twice, lost (0).
//!
//! ```text
//! cargo run --release --features redis --example redis_distributed                  # Redis at REDIS_URL
//! cargo run --release --features redis --example redis_distributed -- --own-server  # a private redis-server
//! ```
//!
//! The killed worker's jobs are not lost: they are leased, and when the lease runs out
//! (1 s here) an idle worker in another process takes them back. A job the killed
//! worker had finished but not yet acknowledged runs again ("ran twice"): delivery is
//! at-least-once, so jobs should be idempotent.
//!
//! The demo's workers keep the audit ledger the tally reads (see `redis_worker`);
//! `tally <queue>` checks any run of `redis_producer --audit` and `redis_worker --audit`
//! the same way. The library's warnings go to standard error (`RUST_LOG` chooses more
//! or less).

#[path = "redis_common/mod.rs"]
mod common;
#[path = "logging/mod.rs"]
mod logging;

use std::process::{Child, Command};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use crewpool::redis::{RedisConfig, RedisQueue};

const USAGE: &str = "\
usage: redis_distributed [--jobs N] [--processes P] [--workers W] [--own-server] [--keep]
       redis_distributed tally <queue> [--wait SECONDS]

The demo (first form):
  --jobs N        jobs to enqueue (default 10000)
  --processes P   worker processes to start (default 3)
  --workers W     workers per process (default 8)
  --own-server    start a private redis-server on a free port instead of using REDIS_URL
  --keep          keep the demo queue's keys in Redis afterwards (default: deleted)

tally <queue>: what a run of redis_producer --audit and redis_worker --audit did on
  <queue>, from the audit ledger they keep: jobs enqueued, completed, run more than
  once, lost, and what is still in the queue; with --mix, also scheduled jobs started
  early, uniqueness keys that made two jobs, and the periodic ticks (fired twice, or
  whose job never ran); with --wait, first waits (up to SECONDS)
  until nothing is pending, leased or delayed any more. Exits with 1 when jobs are
  lost or still in flight, or when no audited run is found.

Redis: REDIS_URL (default redis://127.0.0.1:6379).
Logs: RUST_LOG (default: warnings).";

/// The lease of the demo's workers: a killed worker's jobs come back this long after
/// its last heartbeat.
const LEASE: Duration = Duration::from_secs(1);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    logging::init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|arg| arg == "-h" || arg == "--help") {
        println!("{USAGE}");
        return Ok(());
    }
    match args.first().map(String::as_str) {
        Some("tally") => tally(&args[1..]).await,
        // The demo starts itself again as its worker processes.
        Some("worker") => {
            let queue = args.get(1).context("worker <queue> <workers>")?.clone();
            let workers = args.get(2).context("worker <queue> <workers>")?.parse()?;
            common::run_worker_process(common::WorkerSettings {
                url: common::redis_url(),
                queue,
                workers,
                prefetch: workers,
                lease: LEASE,
                // The tally at the end reads it.
                audit: true,
                connect_wait: Duration::from_secs(60),
                priorities: crewpool::redis::Priorities::strict(),
            })
            .await
        }
        _ => demo(&args).await,
    }
}

async fn tally(args: &[String]) -> anyhow::Result<()> {
    let queue = args.first().context("tally <queue> [--wait SECONDS]")?;
    let wait = Duration::from_secs_f64(common::flag(args, "--wait")?.unwrap_or(0.0));
    let url = common::redis_url();
    common::wait_quiet(&url, queue, wait).await?;
    let tally = common::Tally::read(&url, queue).await?;
    println!("{tally}");
    if tally.enqueued == 0 {
        eprintln!(
            "no audited jobs on {queue:?}: the tally needs redis_producer and redis_worker run with --audit"
        );
        std::process::exit(1);
    }
    if tally.lost > 0 || !tally.settled() || tally.broken() {
        std::process::exit(1);
    }
    Ok(())
}

/// Worker processes, killed when dropped (if the demo fails halfway).
struct Workers(Vec<Child>);

impl Drop for Workers {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

async fn demo(args: &[String]) -> anyhow::Result<()> {
    let jobs: u64 = common::flag(args, "--jobs")?.unwrap_or(10_000);
    let processes: usize = common::flag(args, "--processes")?.unwrap_or(3).max(2);
    let workers: usize = common::flag(args, "--workers")?.unwrap_or(8).max(1);
    let own_server = args.iter().any(|arg| arg == "--own-server");
    let keep = args.iter().any(|arg| arg == "--keep");

    let server = own_server.then(|| {
        crewpool_redis::testing::RedisServer::builder()
            .aof(true)
            .start()
    });
    let url = match &server {
        Some(server) => server.url(),
        None => common::redis_url(),
    };
    let stamp = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis();
    let queue_name = format!("crewpool-demo-{stamp}");
    let queue =
        RedisQueue::<common::Task>::connect(RedisConfig::new(url.as_str(), queue_name.as_str()))
            .await
            .context("no Redis for the demo (set REDIS_URL, or pass --own-server)")?;
    let ledger = common::Ledger::connect(&url, &queue_name).await?;
    println!(
        "demo: {processes} worker processes x {workers} workers, {jobs} jobs, queue {queue_name:?} at {}",
        queue.config().url()
    );

    let exe = std::env::current_exe()?;
    let mut children = Workers(Vec::new());
    for _ in 0..processes {
        children.0.push(
            Command::new(&exe)
                .args(["worker", &queue_name, &workers.to_string()])
                .env("REDIS_URL", &url)
                .spawn()
                .context("starting a worker process")?,
        );
    }

    // Enqueue in ten waves over about three seconds; once about a third of the jobs
    // are done, SIGKILL one worker process, mid-run.
    let started = Instant::now();
    let wave = jobs.div_ceil(10).max(1);
    let mut sent = 0;
    let mut killed = None;
    let deadline = Instant::now() + Duration::from_secs(120);
    while killed.is_none() || sent < jobs {
        if sent < jobs {
            let n = wave.min(jobs - sent);
            let first = ledger.reserve(n).await?;
            let tasks: Vec<common::Task> = (first..first + n)
                .map(|seq| common::Task::new(seq, 1000 + seq % 3000))
                .collect();
            queue.enqueue_bulk(&tasks).await?;
            ledger.record_enqueued(first, n).await?;
            sent += n;
            if sent == jobs {
                println!("demo: enqueued {jobs} jobs in {:.1?}", started.elapsed());
            }
        }
        let done = ledger.completed().await?;
        if killed.is_none() && done >= jobs / 3 {
            let victim = &mut children.0[0];
            victim.kill()?;
            victim.wait()?;
            killed = Some(Instant::now());
            println!(
                "demo: SIGKILLed worker {} after {done} of {jobs} jobs were done; its leased jobs \
                 come back when their lease ({LEASE:?}) runs out",
                victim.id()
            );
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the workers made no progress for two minutes"
        );
        // Pacing the waves (and the checks once all are sent).
        let pause = if sent < jobs { 300 } else { 50 };
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }
    let killed = killed.unwrap_or_else(Instant::now);

    // Wait until every job ran (a hang guard, not a timing assumption).
    common::wait_quiet(&url, &queue_name, Duration::from_secs(120)).await?;
    let tally = common::Tally::read(&url, &queue_name).await?;
    println!("demo: all done {:.1?} after the kill", killed.elapsed());

    // Stop the others gracefully (SIGTERM), as an orchestrator would.
    for child in &mut children.0[1..] {
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        child.wait()?;
    }
    children.0.clear();

    println!("\n{tally}");
    println!("enqueued   {:>7}", tally.enqueued);
    println!("completed  {:>7}", tally.completed);
    println!(
        "ran twice  {:>7}   (the killed worker had finished them, but their acknowledgement had not reached Redis)",
        tally.twice
    );
    println!("lost       {:>7}", tally.lost);
    if !keep {
        queue.purge().await?;
        ledger.purge().await?;
    }
    if tally.lost > 0 || !tally.settled() {
        anyhow::bail!("jobs were lost or left in flight: {tally}");
    }
    Ok(())
}
