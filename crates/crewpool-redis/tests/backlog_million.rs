//! A large backlog drains correctly: bulk-enqueue, then a pool drains it, and every id
//! completes. The always-on size keeps CI fast; the 1,000,000-job run is `#[ignore]`d
//! (run it with `cargo test --release -p crewpool-redis --test backlog_million -- --ignored`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crewpool_redis::testing::RedisServer;
use crewpool_redis::{AckMode, RedisConfig, RedisQueue};
use crewpool_runtime::PoolBuilder;
use tokio::sync::Notify;

async fn drain_backlog(jobs: u64, ack_mode: AckMode) {
    let server = RedisServer::start();
    let config = RedisConfig::new(server.url(), "backlog")
        .batch_size(500)
        .prefetch(1000)
        .ack_mode(ack_mode);
    let queue = RedisQueue::<u64>::connect(config.clone()).await.unwrap();

    let started = Instant::now();
    let ids = queue.enqueue_bulk(0..jobs).await.unwrap();
    let enqueue = started.elapsed();
    assert_eq!(ids.len() as u64, jobs);
    assert_eq!(queue.len().await.unwrap(), jobs);
    // Redis numbered the jobs in order.
    assert!(ids.windows(2).all(|pair| pair[0] < pair[1]));

    let runs: Arc<Vec<AtomicU8>> = Arc::new((0..jobs).map(|_| AtomicU8::new(0)).collect());
    let done = Arc::new((AtomicU64::new(0), Notify::new()));
    let (worker_runs, worker_done) = (Arc::clone(&runs), Arc::clone(&done));
    let pool = PoolBuilder::new()
        .workers(64)
        .queue(queue)
        .build(move |n: u64| {
            let (runs, done) = (Arc::clone(&worker_runs), Arc::clone(&worker_done));
            async move {
                let index = usize::try_from(n).map_err(|e| e.to_string())?;
                if runs[index].fetch_add(1, Ordering::Relaxed) == 0
                    && done.0.fetch_add(1, Ordering::SeqCst) + 1 == jobs
                {
                    done.1.notify_one();
                }
                Ok::<_, String>(())
            }
        })
        .unwrap();
    let draining = Instant::now();
    tokio::time::timeout(Duration::from_secs(1800), done.1.notified())
        .await
        .unwrap_or_else(|_| panic!("hang guard: {:?}", pool.stats()));
    let drain = draining.elapsed();
    pool.shutdown().await;
    let counters = pool.queue().counters();

    if std::env::var_os("CREWPOOL_REDIS_COMMANDSTATS").is_some() {
        println!("{}", server.cli(&["INFO", "commandstats"]));
        println!("{}", server.cli(&["INFO", "cpu"]));
    }
    let twice = runs
        .iter()
        .filter(|r| r.load(Ordering::Relaxed) > 1)
        .count();
    // Every job ran at least once: the wait above ends only when all had.
    assert_eq!(twice, 0, "no lease expired, so nothing ran twice");
    let stats = RedisQueue::<u64>::connect(config)
        .await
        .unwrap()
        .stats()
        .await
        .unwrap();
    assert_eq!(stats, Default::default(), "nothing left in Redis");
    println!(
        "{jobs} jobs ({ack_mode:?} acks): enqueued in {enqueue:?} ({:.0}/s), drained in {drain:?} ({:.0}/s); {} fetch calls, {} ack flushes",
        jobs as f64 / enqueue.as_secs_f64(),
        jobs as f64 / drain.as_secs_f64(),
        counters.fetch_calls,
        counters.ack_flushes,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_of_100_000_jobs_drains() {
    drain_backlog(100_000, AckMode::Confirmed).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a minute or more in debug builds; run in release: see the file's docs"]
async fn a_backlog_of_1_000_000_jobs_drains() {
    drain_backlog(1_000_000, AckMode::Confirmed).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a minute or more in debug builds; run in release: see the file's docs"]
async fn a_backlog_of_1_000_000_jobs_drains_with_queued_acks() {
    drain_backlog(1_000_000, AckMode::Queued).await;
}
