//! crewpool-redis: no-op jobs through one local `redis-server` that the run starts
//! for itself on a free loopback port (`crewpool_redis::testing`).

use std::convert::Infallible;
use std::sync::Arc;

use crewpool::redis::{AckMode, RedisConfig, RedisQueue};
use crewpool::{JobContext, PoolBuilder, Worker};
use crewpool_redis::testing::RedisServer;

use super::completion::Start;
use super::crewpool_systems::teardown;
use super::workload::{REDIS_BATCH, REDIS_JOBS, REDIS_PREFETCH, REDIS_WORKERS};
use super::{Completion, Measurement, Workload, err, tokio_runtime};

/// Does nothing but count; the pool acknowledges it in Redis.
struct Noop {
    done: Arc<Completion>,
}

impl Worker<u64> for Noop {
    type Output = ();
    type Error = Infallible;

    async fn run(&self, _job: u64, _cx: JobContext<u64>) -> Result<(), Infallible> {
        self.done.finish_one();
        Ok(())
    }
}

/// Starts a private `redis-server`, or says how to get one.
fn server() -> Result<RedisServer, String> {
    let found = std::process::Command::new("redis-server")
        .arg("--version")
        .output()
        .is_ok_and(|output| output.status.success());
    if !found {
        return Err("redis-server is not on the PATH: install it with \
                    `apt-get install redis-server` (the bench starts its own on a free \
                    loopback port)"
            .to_owned());
    }
    Ok(RedisServer::start())
}

/// Runs a Redis workload.
pub(crate) fn run(workload: Workload) -> Result<Measurement, String> {
    let server = server()?;
    let runtime = tokio_runtime()?;
    let config = RedisConfig::new(server.url(), "bench")
        .batch_size(REDIS_BATCH)
        .prefetch(REDIS_PREFETCH)
        .ack_mode(AckMode::Confirmed);
    let queue = runtime
        .block_on(RedisQueue::<u64>::connect(config))
        .map_err(err)?;
    match workload {
        Workload::RedisEnqueue => {
            let start = Start::now();
            let ids = runtime
                .block_on(queue.enqueue_bulk(0..REDIS_JOBS))
                .map_err(err)?;
            let (elapsed, allocations) = start.finish();
            let stored = runtime.block_on(queue.len()).map_err(err)?;
            if ids.len() as u64 != REDIS_JOBS || stored != REDIS_JOBS {
                return Err(format!(
                    "enqueued {REDIS_JOBS} jobs, got {} ids and {stored} in Redis",
                    ids.len()
                ));
            }
            Ok(Measurement {
                jobs: REDIS_JOBS,
                elapsed,
                allocations,
                held_kb: None,
            })
        }
        Workload::RedisNoop => {
            // The backlog is enqueued first, untimed: this measures processing.
            runtime
                .block_on(queue.enqueue_bulk(0..REDIS_JOBS))
                .map_err(err)?;
            let done = Arc::new(Completion::new(REDIS_JOBS));
            let start = Start::now();
            let pool = PoolBuilder::new()
                .workers(REDIS_WORKERS)
                .runtime(runtime.handle().clone())
                .queue(queue)
                .build(Noop {
                    done: Arc::clone(&done),
                })
                .map_err(err)?;
            done.wait(start)?;
            // The clock stops when shutdown returns: every acknowledgement is then
            // recorded in Redis, not just every job run.
            teardown(&runtime, &pool, REDIS_JOBS)?;
            let (elapsed, allocations) = start.finish();
            let left = runtime.block_on(pool.queue().stats()).map_err(err)?;
            if left != Default::default() {
                return Err(format!("jobs left in Redis after the run: {left:?}"));
            }
            Ok(Measurement {
                jobs: REDIS_JOBS,
                elapsed,
                allocations,
                held_kb: None,
            })
        }
        _ => Err(format!("{workload} is not a Redis workload")),
    }
}
