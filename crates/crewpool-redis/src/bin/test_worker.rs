//! A worker process for the fault tests (feature `testing`): a crewpool pool on a Redis
//! queue of `u64` jobs, run as a real process so a test can SIGKILL it mid-job.
//!
//! Configured by environment variables:
//!
//! - `CREWPOOL_TEST_URL` (required), `CREWPOOL_TEST_QUEUE` (default `faults`);
//! - `CREWPOOL_TEST_WORKERS` (default 2), `CREWPOOL_TEST_LEASE_MS` (default 1000);
//! - `CREWPOOL_TEST_MODE`: `normal` (default) completes every job; `hang-first` never
//!   finishes a job's first attempt (a job that is mid-run when the process dies);
//!   `fail-odd` fails every attempt of an odd job with `odd <job>`.
//! - `CREWPOOL_TEST_RESULT_TTL_MS`: how long stored results are kept (default 1 hour).
//! - `CREWPOOL_TEST_ATTEMPTS`: the queue's retry policy, attempts in all (10 ms apart;
//!   default: the queue's default policy).
//! - `CREWPOOL_TEST_WEIGHTS`: priority weights `level:weight,...` (default: strict).
//! - `CREWPOOL_TEST_JOB_MS`: how long each job takes (default 0);
//!   `CREWPOOL_TEST_RESPONSE_MS`: the response timeout (default the crate's).
//! - `CREWPOOL_TEST_RECORD_URL`: a `redis://` server to record runs in (default: the
//!   queue's URL, which must then be a single server's); the Cluster and Sentinel
//!   tests record on a server of their own, which their faults never touch.
//! - `CREWPOOL_TEST_MAX_BLOCK_MS`: the longest blocking wait (default 10,000).
//! - `CREWPOOL_TEST_DURABILITY`: `replicated` waits for one replica (200 ms at most)
//!   on enqueues and acknowledgements (`Durability::replicated(1, 200 ms).with_acks()`);
//!   default: written.
//!
//! A job's result is `(2 * job, this process's id)`, stored for a producer that waits
//! for it (the queue declares results of `(u64, u32)` and errors of `String`).
//!
//! Protocol on standard output, one line each: `ready` once the pool runs;
//! `delivered <id> <attempt> <token> <index>` for every delivery a consumer hands out,
//! with its fencing token and its place in the token's lease (`testing::ledger`);
//! `started <id> <attempt>` when a job starts, after recording Redis's clock then as
//! the job's first start (`HSETNX <queue>:test:started <id> <ms>`) and the pair of its
//! id and job (`HINCRBY <queue>:test:pairs <id>:<job> 1`: one id naming two jobs shows
//! up as two fields with that id); `done <id>
//! <attempt>` after it completed and recorded itself with `HINCRBY <queue>:test:runs
//! <job> 1` and `HINCRBY <queue>:test:ids <id> 1`. SIGTERM or Ctrl-C shuts the pool
//! down gracefully and prints `stopped stale=<n> leases_lost=<m>` (settlements refused
//! by fencing, deliveries whose lease a heartbeat found lost). The process fires the queue's periodic
//! schedules, as every worker process does by default.

use std::time::Duration;

use crewpool_core::{JobContext, with_context};
use crewpool_redis::{Durability, Priorities, RedisConfig, RedisQueue};
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
    let mode = env("CREWPOOL_TEST_MODE", "normal");
    let hang_first = mode == "hang-first";
    let fail_odd = mode == "fail-odd";
    let job_time = Duration::from_millis(env("CREWPOOL_TEST_JOB_MS", "0").parse()?);

    let max_block = Duration::from_millis(env("CREWPOOL_TEST_MAX_BLOCK_MS", "10000").parse()?);
    let mut config = RedisConfig::new(url.as_str(), queue_name.as_str())
        .lease(lease)
        .max_block(max_block);
    if let Ok(ms) = std::env::var("CREWPOOL_TEST_RESPONSE_MS") {
        config = config.response_timeout(Duration::from_millis(ms.parse()?));
    }
    if let Ok(ttl) = std::env::var("CREWPOOL_TEST_RESULT_TTL_MS") {
        config = config.result_ttl(Duration::from_millis(ttl.parse()?));
    }
    if let Ok(attempts) = std::env::var("CREWPOOL_TEST_ATTEMPTS") {
        config = config.retry(
            crewpool_redis::RetryPolicy::exponential(attempts.parse()?)
                .base_delay(Duration::from_millis(10))
                .max_delay(Duration::from_millis(10)),
        );
    }
    match std::env::var("CREWPOOL_TEST_DURABILITY").as_deref() {
        Ok("replicated") => {
            config = config
                .durability(Durability::replicated(1, Duration::from_millis(200)).with_acks());
        }
        Ok("written") | Err(_) => {}
        Ok(other) => return Err(format!("CREWPOOL_TEST_DURABILITY: {other:?}").into()),
    }
    if let Ok(weights) = std::env::var("CREWPOOL_TEST_WEIGHTS") {
        let weights = weights
            .split(',')
            .map(|pair| {
                let (level, weight) = pair.split_once(':').ok_or("weights are level:weight")?;
                Ok::<_, Box<dyn std::error::Error>>((level.parse()?, weight.parse()?))
            })
            .collect::<Result<Vec<(u8, u32)>, _>>()?;
        config = config.priorities(Priorities::weighted(weights));
    }
    crewpool_redis::testing::ledger::on_delivery(|delivered| {
        println!(
            "delivered {} {} {} {}",
            delivered.id, delivered.attempt, delivered.token, delivered.index
        );
    });
    let queue = RedisQueue::<u64>::connect(config)
        .await?
        .with_results::<(u64, u32), String>();
    let record_url = std::env::var("CREWPOOL_TEST_RECORD_URL").unwrap_or_else(|_| url.clone());
    let recorder = redis::Client::open(record_url.as_str())?
        .get_connection_manager()
        .await?;
    let runs_key = format!("{queue_name}:test:runs");
    let ids_key = format!("{queue_name}:test:ids");
    let started_key = format!("{queue_name}:test:started");
    let pairs_key = format!("{queue_name}:test:pairs");

    let pool = PoolBuilder::new()
        .name("test-worker")
        .workers(workers)
        .queue(queue)
        .build(with_context(move |job: u64, cx: JobContext<u64>| {
            let mut recorder = recorder.clone();
            let runs_key = runs_key.clone();
            let ids_key = ids_key.clone();
            let started_key = started_key.clone();
            let pairs_key = pairs_key.clone();
            async move {
                let (seconds, micros): (u64, u64) = redis::cmd("TIME")
                    .query_async(&mut recorder)
                    .await
                    .map_err(|e| e.to_string())?;
                redis::cmd("HSETNX")
                    .arg(&started_key)
                    .arg(cx.id().0)
                    .arg(seconds * 1000 + micros / 1000)
                    .query_async::<i64>(&mut recorder)
                    .await
                    .map_err(|e| e.to_string())?;
                redis::cmd("HINCRBY")
                    .arg(&pairs_key)
                    .arg(format!("{}:{job}", cx.id().0))
                    .arg(1)
                    .query_async::<i64>(&mut recorder)
                    .await
                    .map_err(|e| e.to_string())?;
                println!("started {} {}", cx.id().0, cx.attempt());
                if hang_first && cx.attempt() == 1 {
                    std::future::pending::<()>().await;
                }
                if !job_time.is_zero() {
                    tokio::time::sleep(job_time).await;
                }
                redis::cmd("HINCRBY")
                    .arg(&runs_key)
                    .arg(job)
                    .arg(1)
                    .query_async::<i64>(&mut recorder)
                    .await
                    .map_err(|e| e.to_string())?;
                redis::cmd("HINCRBY")
                    .arg(&ids_key)
                    .arg(cx.id().0)
                    .arg(1)
                    .query_async::<i64>(&mut recorder)
                    .await
                    .map_err(|e| e.to_string())?;
                if fail_odd && job % 2 == 1 {
                    println!("failed {} {}", cx.id().0, cx.attempt());
                    return Err(format!("odd {job}"));
                }
                println!("done {} {}", cx.id().0, cx.attempt());
                Ok::<_, String>((2 * job, std::process::id()))
            }
        }))?;
    println!("ready");

    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = terminate.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    pool.shutdown().await;
    let counters = pool.queue().counters();
    println!(
        "stopped stale={} leases_lost={}",
        counters.stale, counters.leases_lost
    );
    Ok(())
}
