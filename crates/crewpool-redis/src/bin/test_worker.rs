//! A worker process for the fault tests (feature `testing`): a crewpool pool on a Redis
//! queue of `u64` jobs, run as a real process so a test can SIGKILL it mid-job.
//!
//! Configured by environment variables:
//!
//! - `CREWPOOL_TEST_URL` (required), `CREWPOOL_TEST_QUEUE` (default `faults`);
//! - `CREWPOOL_TEST_WORKERS` (default 2), `CREWPOOL_TEST_LEASE_MS` (default 1000);
//! - `CREWPOOL_TEST_MODE`: `normal` (default) completes every job; `hang-first` never
//!   finishes a job's first attempt (a job that is mid-run when the process dies).
//!
//! Protocol on standard output, one line each: `ready` once the pool runs;
//! `started <id> <attempt>` when a job starts; `done <id> <attempt>` after it
//! completed and recorded itself with `HINCRBY <queue>:test:runs <job> 1`. SIGTERM or
//! Ctrl-C shuts the pool down gracefully and prints `stopped`.

use std::time::Duration;

use crewpool_core::{JobContext, with_context};
use crewpool_redis::{RedisConfig, RedisQueue};
use crewpool_runtime::PoolBuilder;

fn env(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("CREWPOOL_TEST_URL").map_err(|_| "CREWPOOL_TEST_URL is not set")?;
    let queue_name = env("CREWPOOL_TEST_QUEUE", "faults");
    let workers: usize = env("CREWPOOL_TEST_WORKERS", "2").parse()?;
    let lease = Duration::from_millis(env("CREWPOOL_TEST_LEASE_MS", "1000").parse()?);
    let hang_first = env("CREWPOOL_TEST_MODE", "normal") == "hang-first";

    let config = RedisConfig::new(url.as_str(), queue_name.as_str()).lease(lease);
    let queue = RedisQueue::<u64>::connect(config).await?;
    let recorder = redis::Client::open(url.as_str())?
        .get_connection_manager()
        .await?;
    let runs_key = format!("{queue_name}:test:runs");

    let pool = PoolBuilder::new()
        .name("test-worker")
        .workers(workers)
        .queue(queue)
        .build(with_context(move |job: u64, cx: JobContext<u64>| {
            let mut recorder = recorder.clone();
            let runs_key = runs_key.clone();
            async move {
                println!("started {} {}", cx.id().0, cx.attempt());
                if hang_first && cx.attempt() == 1 {
                    std::future::pending::<()>().await;
                }
                redis::cmd("HINCRBY")
                    .arg(&runs_key)
                    .arg(job)
                    .arg(1)
                    .query_async::<i64>(&mut recorder)
                    .await
                    .map_err(|e| e.to_string())?;
                println!("done {} {}", cx.id().0, cx.attempt());
                Ok::<_, String>(())
            }
        }))?;
    println!("ready");

    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = terminate.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    pool.shutdown().await;
    println!("stopped");
    Ok(())
}
