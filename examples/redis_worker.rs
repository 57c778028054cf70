//! A worker process: a crewpool pool of W workers on a Redis queue, with progress every
//! second and a graceful shutdown on Ctrl-C or SIGTERM (running jobs finish, jobs
//! fetched ahead go back to Redis for the other workers), then a summary.
//!
//! ```text
//! REDIS_URL=redis://127.0.0.1:6379 cargo run --release --features redis --example redis_worker -- thumbnails 16
//! ```
//!
//! Start as many as you like, on as many machines as reach the Redis, in any order
//! (a worker waits for a Redis that is not up yet); each job is run by one of them (at
//! least once: see the `crewpool-redis` docs). `redis_producer` fills the queue; with
//! `--audit` on both, `redis_distributed tally <queue>` checks that every job ran. The
//! library's warnings go to standard error (`RUST_LOG` chooses more or less).

#[path = "redis_common/mod.rs"]
mod common;
#[path = "logging/mod.rs"]
mod logging;

use std::time::Duration;

const USAGE: &str = "\
usage: redis_worker <queue> [workers] [--prefetch P] [--lease-ms L] [--audit] [--connect-wait S]
                    [--weighted]

  <queue>           the queue to work on (producers use the same name)
  [workers]         how many jobs this process runs at once (default 16)
  --prefetch P      jobs fetched ahead of idle workers (default 0)
  --lease-ms L      how long a job stays leased without a heartbeat (default 5000);
                    a killed worker's jobs are picked up again about this long after
  --audit           record every job's run in the queue's audit ledger in Redis
                    (<queue>:ledger:runs), for `redis_distributed tally`. Off by
                    default: the ledger keeps about 65 bytes per job until deleted
  --connect-wait S  wait up to S seconds for Redis to come up at start (default 60;
                    0: fail at once)
  --weighted        take the priority levels by weight (9: 5, 5: 3, 1: 2, others 1)
                    instead of the highest level first

Redis: REDIS_URL (default redis://127.0.0.1:6379), e.g.
redis://user:password@10.0.0.5:6379/0 for a Redis on another machine.
Logs: RUST_LOG (default: warnings), e.g. RUST_LOG=info or RUST_LOG=warn,crewpool_redis=debug.";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    logging::init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty() || args.iter().any(|arg| arg == "-h" || arg == "--help") {
        println!("{USAGE}");
        return Ok(());
    }
    let queue = args[0].clone();
    let workers = match args.get(1).filter(|arg| !arg.starts_with("--")) {
        Some(workers) => workers.parse()?,
        None => 16,
    };
    let connect_wait: f64 = common::flag(&args, "--connect-wait")?.unwrap_or(60.0);
    common::run_worker_process(common::WorkerSettings {
        url: common::redis_url(),
        queue,
        workers,
        prefetch: common::flag(&args, "--prefetch")?.unwrap_or(0),
        lease: Duration::from_millis(common::flag(&args, "--lease-ms")?.unwrap_or(5000)),
        audit: args.iter().any(|arg| arg == "--audit"),
        connect_wait: Duration::try_from_secs_f64(connect_wait)?,
        priorities: if args.iter().any(|arg| arg == "--weighted") {
            crewpool::redis::Priorities::weighted([(9, 5), (5, 3), (1, 2)])
        } else {
            crewpool::redis::Priorities::strict()
        },
    })
    .await
}
