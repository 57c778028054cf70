//! Plain (not async) workers: run without a future per job, with the same outcomes,
//! counts, retries and sub-jobs as async ones.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crewpool_core::{JobContext, plain};
use crewpool_flume::FlumeQueue;
use crewpool_runtime::{JobError, PoolBuilder, RetryPolicy};

#[tokio::test]
async fn plain_jobs_deliver_outputs_failures_and_panics_on_dedicated_threads() {
    // The default hook prints every caught panic; this one is expected.
    std::panic::set_hook(Box::new(|_| {}));
    let pool = PoolBuilder::new()
        .workers(2)
        .dedicated_threads()
        .queue(FlumeQueue::bounded(4))
        .build(plain(|n: u64, cx: JobContext<u64>| match n {
            3 => Err(format!("job {} refused", cx.id())),
            5 => panic!("job 5 exploded"),
            n => Ok(n * 10),
        }))
        .unwrap();
    let mut handles = Vec::new();
    for n in 0..8 {
        handles.push(pool.submit(n).await.unwrap());
    }
    for (n, handle) in (0..8).zip(handles) {
        match (n, handle.await) {
            (3, Err(JobError::Failed(message))) => assert!(message.ends_with("refused")),
            (5, Err(JobError::Panicked(message))) => assert_eq!(message, "job 5 exploded"),
            (n, Ok(got)) => assert_eq!(got, n * 10),
            (n, other) => panic!("job {n}: unexpected {other:?}"),
        }
    }
    let report = pool.shutdown().await;
    let stats = report.stats;
    assert_eq!(
        (stats.completed, stats.failed, stats.panicked),
        (6, 1, 1),
        "{stats}"
    );
    let _ = std::panic::take_hook();
}

#[tokio::test]
async fn a_failed_plain_job_is_retried_and_sees_its_attempt() {
    let tries = Arc::new(AtomicU32::new(0));
    let seen = Arc::clone(&tries);
    let pool = PoolBuilder::new()
        .workers(1)
        .queue(FlumeQueue::unbounded())
        .retry(RetryPolicy::exponential(3).base_delay(Duration::from_millis(1)))
        .build(plain(move |n: u64, cx: JobContext<u64>| {
            seen.fetch_add(1, Ordering::SeqCst);
            if cx.attempt() < 3 {
                Err(format!("attempt {} failed", cx.attempt()))
            } else {
                Ok(n)
            }
        }))
        .unwrap();
    assert_eq!(pool.submit(7).await.unwrap().await.unwrap(), 7);
    assert_eq!(tries.load(Ordering::SeqCst), 3);
    let report = pool.shutdown().await;
    assert_eq!((report.stats.completed, report.stats.retried), (1, 2));
}

#[tokio::test]
async fn a_plain_job_spawns_sub_jobs_through_its_context() {
    // One permit per job run; the test takes all 15 before shutting down (this
    // backend refuses sub-jobs once closed).
    let ran = Arc::new(tokio::sync::Semaphore::new(0));
    let count = Arc::clone(&ran);
    let pool = PoolBuilder::new()
        .workers(2)
        .dedicated_threads()
        .queue(FlumeQueue::unbounded())
        .build(plain(move |depth: u32, cx: JobContext<u32>| {
            count.add_permits(1);
            if depth > 0 {
                for _ in 0..2 {
                    cx.spawn(depth - 1).map_err(|e| e.to_string())?;
                }
            }
            Ok::<_, String>(())
        }))
        .unwrap();
    pool.spawn(3).await.unwrap();
    let all = tokio::time::timeout(Duration::from_secs(60), ran.acquire_many(15)).await;
    assert!(all.is_ok(), "a tree of depth 3 is 15 jobs");
    let report = pool.shutdown().await;
    assert_eq!((report.stats.completed, report.stats.failed), (15, 0));
}

#[tokio::test]
async fn plain_jobs_spawned_without_a_handle_are_counted_by_outcome() {
    // The default hook prints every caught panic; this one is expected.
    std::panic::set_hook(Box::new(|_| {}));
    let pool = PoolBuilder::new()
        .workers(2)
        .dedicated_threads()
        .queue(FlumeQueue::bounded(2))
        .build(plain(|n: u64, _cx: JobContext<u64>| match n % 3 {
            0 => Ok(()),
            1 => Err("refused"),
            _ => panic!("job {n} exploded"),
        }))
        .unwrap();
    for n in 0..9 {
        pool.spawn(n).await.unwrap();
    }
    let report = pool.shutdown().await;
    let stats = report.stats;
    assert_eq!(
        (stats.completed, stats.failed, stats.panicked),
        (3, 3, 3),
        "{stats}"
    );
    let _ = std::panic::take_hook();
}
