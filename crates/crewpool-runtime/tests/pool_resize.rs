//! Resizing a running pool up and down without losing or interrupting jobs.

use std::convert::Infallible;

use crewpool_flume::FlumeQueue;
use crewpool_runtime::{PoolBuilder, ResizeError};

#[path = "support/gate.rs"]
mod gate;

/// Waits, on this single-threaded runtime, until `done` holds; each yield lets every
/// other ready task run once. Bounded, so a bug fails instead of hanging.
async fn settle(mut done: impl FnMut() -> bool) {
    for _ in 0..10_000 {
        if done() {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("the pool did not reach the expected state");
}

#[tokio::test]
async fn growing_starts_workers_that_take_queued_jobs_at_once() {
    let mut gate = gate::Gate::new();
    let pool = PoolBuilder::new()
        .workers(1)
        .queue(FlumeQueue::unbounded())
        .build(gate.worker())
        .unwrap();
    for n in 0..3 {
        pool.spawn(n).await.unwrap();
    }
    assert_eq!(gate.started().await, 0);
    pool.resize(3).unwrap();
    assert_eq!(pool.workers(), 3);
    let mut more = vec![gate.started().await, gate.started().await];
    more.sort_unstable();
    assert_eq!(
        more,
        vec![1, 2],
        "the new workers took the queued jobs while job 0 ran"
    );
    assert_eq!(pool.stats().running, 3);
    gate.open(3);
    let report = pool.shutdown().await;
    assert_eq!(report.stats.completed, 3);
}

#[tokio::test]
async fn shrinking_lets_running_jobs_finish_and_loses_nothing() {
    let mut gate = gate::Gate::new();
    let pool = PoolBuilder::new()
        .workers(3)
        .queue(FlumeQueue::unbounded())
        .build(gate.worker())
        .unwrap();
    let mut handles = Vec::new();
    for n in 0..10 {
        handles.push(pool.submit(n).await.unwrap());
    }
    for _ in 0..3 {
        gate.started().await;
    }
    pool.resize(1).unwrap();
    assert_eq!(pool.workers(), 1);
    assert_eq!(pool.stats().workers, 3, "running jobs are not interrupted");
    gate.open(3);
    // The two departing workers leave after their job; one worker remains.
    settle(|| pool.stats().workers == 1).await;
    gate.open(7);
    for (n, handle) in (0..).zip(handles) {
        assert_eq!(handle.await.unwrap(), n, "every job completed");
    }
    let report = pool.shutdown().await;
    assert!(report.is_complete());
    assert_eq!((report.stats.completed, report.stats.interrupted), (10, 0));
}

#[tokio::test]
async fn shrinking_then_growing_cancels_pending_departures() {
    let pool = PoolBuilder::new()
        .workers(4)
        .queue(FlumeQueue::<u64>::unbounded())
        .build(|n: u64| async move { Ok::<_, Infallible>(n) })
        .unwrap();
    pool.resize(2).unwrap();
    pool.resize(5).unwrap();
    settle(|| pool.stats().workers == 5).await;
    pool.resize(1).unwrap();
    settle(|| pool.stats().workers == 1).await;
    assert_eq!(pool.submit(9).await.unwrap().await.unwrap(), 9);
    pool.shutdown().await;
}

#[tokio::test]
async fn resize_refuses_zero_and_a_closed_pool() {
    let pool = PoolBuilder::new()
        .workers(2)
        .queue(FlumeQueue::<u64>::unbounded())
        .build(|n: u64| async move { Ok::<_, Infallible>(n) })
        .unwrap();
    assert!(matches!(pool.resize(0), Err(ResizeError::ZeroWorkers)));
    pool.shutdown().await;
    assert!(matches!(pool.resize(3), Err(ResizeError::Closed)));
}
