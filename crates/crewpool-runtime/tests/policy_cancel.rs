//! Cancellation: a handle cancels its queued or running job; the pool-wide token
//! reaches running jobs through their context.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crewpool_core::{JobContext, with_context};
use crewpool_flume::FlumeQueue;
use crewpool_runtime::{ContextExt, JobError, PoolBuilder};
use tokio::sync::{Semaphore, mpsc};

/// Sets its flag when dropped: proves the job's future was dropped.
struct Dropped(Arc<AtomicBool>);

impl Drop for Dropped {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[tokio::test]
async fn cancelling_a_queued_job_skips_it() {
    let gate = Arc::new(Semaphore::new(0));
    let runs = Arc::new(AtomicUsize::new(0));
    let (started_tx, mut started) = mpsc::unbounded_channel();
    let (worker_gate, worker_runs) = (Arc::clone(&gate), Arc::clone(&runs));
    let pool = PoolBuilder::new()
        .workers(1)
        .queue(FlumeQueue::unbounded())
        .build(move |n: u64| {
            let (gate, runs, started) = (
                Arc::clone(&worker_gate),
                Arc::clone(&worker_runs),
                started_tx.clone(),
            );
            async move {
                runs.fetch_add(1, Ordering::SeqCst);
                let _ = started.send(n);
                gate.acquire().await.unwrap().forget();
                Ok::<_, Infallible>(n)
            }
        })
        .unwrap();
    let first = pool.submit(1).await.unwrap();
    assert_eq!(started.recv().await, Some(1), "the only worker is busy");
    let queued = pool.submit(2).await.unwrap();
    queued.cancel();
    gate.add_permits(1);
    assert_eq!(first.await.unwrap(), 1);
    assert!(matches!(queued.await, Err(JobError::Cancelled)));
    let stats = pool.shutdown().await.stats;
    assert_eq!(
        runs.load(Ordering::SeqCst),
        1,
        "the cancelled job never ran"
    );
    assert_eq!((stats.completed, stats.cancelled), (1, 1));
}

#[tokio::test]
async fn cancelling_a_running_job_drops_its_future() {
    let dropped = Arc::new(AtomicBool::new(false));
    let (started_tx, mut started) = mpsc::unbounded_channel();
    let flag = Arc::clone(&dropped);
    let pool = PoolBuilder::new()
        .workers(1)
        .queue(FlumeQueue::unbounded())
        .build(move |n: u64| {
            let guard = Dropped(Arc::clone(&flag));
            let started = started_tx.clone();
            async move {
                let _ = started.send(n);
                std::future::pending::<()>().await;
                drop(guard);
                Ok::<_, Infallible>(n)
            }
        })
        .unwrap();
    let running = pool.submit(7).await.unwrap();
    assert_eq!(started.recv().await, Some(7));
    running.cancel();
    assert!(matches!(running.await, Err(JobError::Cancelled)));
    assert!(
        dropped.load(Ordering::SeqCst),
        "the job's future was dropped"
    );
    let after = pool.submit(8).await.unwrap();
    after.cancel();
    assert!(matches!(after.await, Err(JobError::Cancelled)));
    let report = pool.shutdown().await;
    assert_eq!(report.stats.cancelled, 2);
}

#[tokio::test]
async fn the_pool_token_reaches_running_jobs_through_their_context() {
    let (started_tx, mut started) = mpsc::unbounded_channel();
    let pool = PoolBuilder::new()
        .workers(2)
        .queue(FlumeQueue::unbounded())
        .build(with_context(move |n: u64, cx: JobContext<u64>| {
            let started = started_tx.clone();
            async move {
                let _ = started.send(n);
                assert!(!cx.is_cancelled());
                cx.cancelled().await;
                assert!(cx.is_cancelled() && cx.cancellation_token().is_cancelled());
                Err::<u64, _>(format!("job {n} stopped cooperatively"))
            }
        }))
        .unwrap();
    let a = pool.submit(1).await.unwrap();
    let b = pool.submit(2).await.unwrap();
    started.recv().await.unwrap();
    started.recv().await.unwrap();
    pool.cancellation_token().cancel();
    for handle in [a, b] {
        match handle.await {
            Err(JobError::Failed(message)) => assert!(message.ends_with("stopped cooperatively")),
            other => panic!("expected a cooperative stop, got {other:?}"),
        }
    }
    assert!(pool.is_open(), "the token does not stop the pool");
    pool.shutdown().await;
}

#[tokio::test]
async fn a_handle_cancel_is_visible_to_the_job_before_its_future_is_dropped() {
    let (started_tx, mut started) = mpsc::unbounded_channel();
    let (seen_tx, mut seen) = mpsc::unbounded_channel();
    let pool = PoolBuilder::new()
        .workers(1)
        .queue(FlumeQueue::unbounded())
        .build(with_context(move |n: u64, cx: JobContext<u64>| {
            let (started, seen) = (started_tx.clone(), seen_tx.clone());
            async move {
                let _ = started.send(n);
                // A job that checks without awaiting sees the cancel too.
                loop {
                    if cx.is_cancelled() {
                        let _ = seen.send(n);
                        return Ok::<_, Infallible>(n);
                    }
                    tokio::task::yield_now().await;
                }
            }
        }))
        .unwrap();
    let handle = pool.submit(3).await.unwrap();
    started.recv().await.unwrap();
    handle.cancel();
    let outcome = handle.await;
    // Either the job noticed first (Ok) or its future was dropped (Cancelled).
    match outcome {
        Ok(3) => assert_eq!(seen.recv().await, Some(3)),
        Err(JobError::Cancelled) => {}
        other => panic!("unexpected {other:?}"),
    }
    pool.shutdown().await;
}
