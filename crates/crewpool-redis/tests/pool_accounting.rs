//! A pool on a Redis queue counts what happened to its jobs with the same meaning as
//! on any queue: `failed` counts last attempts, whichever policy decides; one retry
//! policy, one attempt limit; jobs the queue could not deliver are counted; results
//! that cannot come back are refused at once; a backend's refusal is one typed call
//! away.

mod support;

use std::convert::Infallible;
use std::time::Duration;

use crewpool_core::{Queue, RetryPolicy};
use crewpool_redis::testing::RedisServer;
use crewpool_redis::{QueueStats, RedisConfig, RedisQueue};
use crewpool_runtime::PoolBuilder;
use support::HANG_GUARD;

/// Polls the queue's state in Redis until `done` holds (bounded by the hang guard).
async fn wait_for<J>(queue: &RedisQueue<J>, what: &str, done: impl Fn(&QueueStats) -> bool)
where
    J: serde::Serialize + serde::de::DeserializeOwned + Send + 'static,
{
    let deadline = tokio::time::Instant::now() + HANG_GUARD;
    loop {
        let stats = queue.stats().await.unwrap();
        if done(&stats) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} did not happen within {HANG_GUARD:?}: {stats:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Quick retries, without jitter, `attempts` in all.
fn quick(attempts: u32) -> RetryPolicy {
    RetryPolicy::exponential(attempts)
        .base_delay(Duration::from_millis(10))
        .jitter(false)
}

fn always_failing(n: u64) -> std::future::Ready<Result<(), String>> {
    std::future::ready(Err(format!("job {n} failed")))
}

/// With no policy of its own, the pool applies the queue's (two attempts): every job
/// is retried once and dead-lettered after its second failure, and `failed` counts
/// each job once, for its last attempt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_counts_last_attempts_when_the_queues_policy_decides() {
    const JOBS: u64 = 40;
    let server = RedisServer::start();
    let config = RedisConfig::new(server.url(), "failed").retry(quick(2));
    let queue = RedisQueue::<u64>::connect(config.clone()).await.unwrap();
    queue.enqueue_bulk(0..JOBS).await.unwrap();
    let pool = PoolBuilder::new()
        .workers(4)
        .queue(queue)
        .build(always_failing)
        .unwrap();
    let inspector = RedisQueue::<u64>::connect(config).await.unwrap();
    wait_for(&inspector, "every job dead-lettered", |stats| {
        stats.dead == JOBS
    })
    .await;
    let stats = pool.shutdown().await.stats;
    assert_eq!(
        (stats.failed, stats.retried, stats.completed),
        (JOBS, JOBS, 0),
        "{stats}"
    );
    let dead = inspector.dead_letters(100).await.unwrap();
    assert!(dead.iter().all(|letter| letter.attempt == 2), "{dead:?}");
}

/// A job type that is not `Clone`: Redis keeps the job, the pool keeps no copy.
#[derive(serde::Serialize, serde::Deserialize)]
struct Unique(u64);

/// A pool built with a policy of its own (three attempts) on a queue configured with
/// another (two): the pool's is the only limit. Every job gets three attempts (the
/// queue's limit no longer cuts in), and the queue applies the pool's policy to jobs
/// whose worker died as well. The job type needs no `Clone`, and `retry` may come
/// before `queue`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pools_own_policy_is_the_only_limit() {
    const JOBS: u64 = 5;
    let server = RedisServer::start();
    let config = RedisConfig::new(server.url(), "limit").retry(quick(2));
    let queue = RedisQueue::<Unique>::connect(config.clone()).await.unwrap();
    queue.enqueue_bulk((0..JOBS).map(Unique)).await.unwrap();
    let pool = PoolBuilder::new()
        .retry(quick(3))
        .workers(2)
        .queue(queue)
        .build(|Unique(n): Unique| always_failing(n))
        .unwrap();
    assert_eq!(
        pool.queue().retry_policy().map(|policy| policy.attempts()),
        Some(3),
        "the queue applies the pool's policy (to expired leases too)"
    );
    let inspector = RedisQueue::<Unique>::connect(config).await.unwrap();
    wait_for(&inspector, "every job dead-lettered", |stats| {
        stats.dead == JOBS
    })
    .await;
    let dead = inspector.dead_letters(100).await.unwrap();
    let attempts: Vec<u32> = dead.iter().map(|letter| letter.attempt).collect();
    assert_eq!(attempts, vec![3; JOBS as usize]);
    let stats = pool.shutdown().await.stats;
    assert_eq!((stats.failed, stats.retried), (JOBS, 2 * JOBS), "{stats}");
}

/// A record whose job no longer decodes as the job type is dead-lettered by the queue
/// without reaching a worker; the pool counts it as undeliverable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_does_not_decode_is_counted_by_the_pool() {
    let server = RedisServer::start();
    let config = RedisConfig::new(server.url(), "undecodable");
    let queue = RedisQueue::<u64>::connect(config.clone()).await.unwrap();
    let pool = PoolBuilder::new()
        .workers(2)
        .queue(queue)
        .build(|n: u64| async move { Ok::<_, Infallible>(n) })
        .unwrap();
    let id = server.cli(&["INCR", "crewpool:{undecodable}:seq"]);
    let record = format!("{}|1|{{\"v\":1,\"job\":\"not a number\"}}", id.trim());
    server.cli(&["LPUSH", "crewpool:{undecodable}:pending", &record]);
    pool.spawn(7).await.unwrap();
    let inspector = RedisQueue::<u64>::connect(config).await.unwrap();
    wait_for(&inspector, "the record dead-lettered", |stats| {
        stats.dead == 1 && stats.pending == 0 && stats.active == 0
    })
    .await;
    let stats = pool.shutdown().await.stats;
    assert_eq!(
        (stats.undeliverable, stats.completed, stats.failed),
        (1, 1, 0),
        "{stats}"
    );
    assert!(stats.to_string().contains("undeliverable=1"), "{stats}");
}

/// Behind an `AnyPool` (its queue type erased), a Redis queue's `submit` behaves as the
/// typed pool's: refused with the queue's configuration error, job back, while the
/// queue has no result type; a handle that resolves once it has one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erased_pool_submits_as_the_typed_one_does() {
    let server = RedisServer::start();
    let queue = RedisQueue::<u64>::connect(RedisConfig::new(server.url(), "handles"))
        .await
        .unwrap();
    let pool = PoolBuilder::new()
        .workers(1)
        .queue(queue)
        .build(|n: u64| async move { Ok::<_, Infallible>(n) })
        .unwrap()
        .into_any();
    match pool.submit(5).await {
        Err(error) => {
            assert!(
                matches!(
                    error.backend_error::<crewpool_redis::Error>(),
                    Some(crewpool_redis::Error::Config(_))
                ),
                "{error:?}"
            );
            assert_eq!(error.into_inner(), 5, "the job comes back");
        }
        Ok(_) => panic!("a handle without a result type"),
    }
    assert_eq!(pool.stats().submitted, 0, "nothing was enqueued");
    pool.spawn(6).await.unwrap();
    assert_eq!(pool.shutdown().await.stats.submitted, 1);

    let queue = RedisQueue::<u64>::connect(RedisConfig::new(server.url(), "handles"))
        .await
        .unwrap()
        .with_results::<u64, String>();
    let pool = PoolBuilder::new()
        .workers(1)
        .queue(queue)
        .build(|n: u64| async move { Ok::<_, String>(n * 3) })
        .unwrap()
        .into_any();
    let handle = pool.submit(7).await.unwrap();
    let got = tokio::time::timeout(HANG_GUARD, handle)
        .await
        .expect("hang guard")
        .unwrap();
    assert_eq!(got, 21);
    pool.shutdown().await;
}

/// A job over the payload limit comes back from `spawn` with the Redis error one
/// typed call away, and its message says how to raise the limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payload_too_large_is_one_typed_call_away() {
    let server = RedisServer::start();
    let queue =
        RedisQueue::<String>::connect(RedisConfig::new(server.url(), "big").max_payload(100))
            .await
            .unwrap();
    let pool = PoolBuilder::new()
        .workers(1)
        .queue(queue)
        .build(|job: String| async move { Ok::<_, Infallible>(job.len()) })
        .unwrap();
    let big = "x".repeat(1000);
    let error = pool.spawn(big.clone()).await.unwrap_err();
    match error.backend_error::<crewpool_redis::Error>() {
        Some(too_large @ crewpool_redis::Error::PayloadTooLarge { max: 100, .. }) => {
            assert!(
                too_large.to_string().contains("RedisConfig::max_payload"),
                "{too_large}"
            );
        }
        other => panic!("expected PayloadTooLarge, got {other:?}"),
    }
    assert!(!error.is_closed() && !error.is_full());
    assert_eq!(error.into_inner(), big, "the job comes back");
    pool.shutdown().await;
}
