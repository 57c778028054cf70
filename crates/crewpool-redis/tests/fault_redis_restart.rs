//! Redis killed (SIGKILL) and restarted mid-run: the pool reconnects with backoff and
//! every job Redis kept (AOF, fsync always) completes, at least once.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crewpool_redis::testing::RedisServer;
use crewpool_redis::{RedisConfig, RedisQueue};
use crewpool_runtime::PoolBuilder;
use support::HANG_GUARD;
use tokio::sync::Notify;

const JOBS: usize = 20_000;
const KILL_AFTER: u64 = 4_000;

struct Tally {
    runs: Vec<AtomicU8>,
    completions: AtomicU64,
    distinct: AtomicU64,
    halfway: Notify,
    all: Notify,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pool_survives_a_redis_restart_and_loses_nothing_redis_kept() {
    let mut server = RedisServer::builder().aof(true).start();
    let config = RedisConfig::new(server.url(), "restart")
        .lease(Duration::from_secs(1))
        .batch_size(100)
        .prefetch(100);
    let queue = RedisQueue::<u64>::connect(config.clone()).await.unwrap();
    queue.enqueue_bulk(0..JOBS as u64).await.unwrap();

    let tally = Arc::new(Tally {
        runs: (0..JOBS).map(|_| AtomicU8::new(0)).collect(),
        completions: AtomicU64::new(0),
        distinct: AtomicU64::new(0),
        halfway: Notify::new(),
        all: Notify::new(),
    });
    let jobs_tally = Arc::clone(&tally);
    let pool = PoolBuilder::new()
        .workers(8)
        .queue(queue)
        .build(move |n: u64| {
            let tally = Arc::clone(&jobs_tally);
            async move {
                let index = usize::try_from(n).map_err(|e| e.to_string())?;
                if tally.runs[index].fetch_add(1, Ordering::SeqCst) == 0
                    && tally.distinct.fetch_add(1, Ordering::SeqCst) + 1 == JOBS as u64
                {
                    tally.all.notify_one();
                }
                if tally.completions.fetch_add(1, Ordering::SeqCst) + 1 == KILL_AFTER {
                    tally.halfway.notify_one();
                }
                Ok::<_, String>(())
            }
        })
        .unwrap();

    tokio::time::timeout(HANG_GUARD, tally.halfway.notified())
        .await
        .expect("hang guard: the first jobs never completed");
    server.kill();
    let down = Instant::now();
    server.restart();
    println!("redis was down for {:?}", down.elapsed());

    tokio::time::timeout(HANG_GUARD * 2, tally.all.notified())
        .await
        .unwrap_or_else(|_| {
            panic!(
                "hang guard: {} of {JOBS} jobs completed; {:?}",
                tally.distinct.load(Ordering::SeqCst),
                pool.queue().counters()
            )
        });
    let counters = pool.queue().counters();
    pool.shutdown().await;

    let twice = tally
        .runs
        .iter()
        .filter(|runs| runs.load(Ordering::SeqCst) > 1)
        .count();
    // Every job ran at least once: the wait above ends only when all had.
    println!("all {JOBS} jobs completed; {twice} ran more than once; {counters:?}");
    // Reconnecting backs off (10 ms doubling to 2 s per task): a handful of failed
    // calls per background task, not a tight loop of thousands.
    assert!(counters.redis_errors >= 1, "the outage was noticed");
    assert!(
        counters.redis_errors < 100,
        "{} failed calls",
        counters.redis_errors
    );

    // What is left in Redis is only jobs that will run again (at-least-once): none
    // lost, none stuck without a lease.
    let inspector = RedisQueue::<u64>::connect(config).await.unwrap();
    let stats = inspector.stats().await.unwrap();
    assert_eq!(stats.dead, 0);
    assert_eq!(stats.delayed, 0);
    println!("left after shutdown: {stats:?}");
}
