//! Every shutdown mode, and dropping a pool without one.

use std::convert::Infallible;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use crewpool_core::testkit::{CountingWaker, poll_once};
use crewpool_core::{JobId, Worker};
use crewpool_flume::FlumeQueue;
use crewpool_runtime::{JobError, Pool, PoolBuilder};
use tokio::sync::mpsc;

#[path = "support/gate.rs"]
mod gate;

use gate::Gate;

fn gated(
    workers: usize,
    capacity: usize,
) -> (
    Pool<FlumeQueue<u64>, impl Worker<u64, Output = u64, Error = Infallible>>,
    Gate,
) {
    let gate = Gate::new();
    let pool = PoolBuilder::new()
        .workers(workers)
        .queue(FlumeQueue::bounded(capacity))
        .build(gate.worker())
        .unwrap();
    (pool, gate)
}

#[tokio::test]
async fn graceful_shutdown_waits_for_every_accepted_job() {
    let (pool, mut gate) = gated(2, 16);
    let mut handles = Vec::new();
    for n in 0..10 {
        handles.push(pool.submit(n).await.unwrap());
    }
    gate.started().await;
    gate.started().await;

    let (_, waker) = CountingWaker::new();
    let mut shutdown = pin!(pool.shutdown());
    assert!(
        poll_once(shutdown.as_mut(), &waker).is_pending(),
        "shutdown waits while jobs are running"
    );
    assert!(!pool.is_open());
    assert!(
        pool.submit(99).await.is_err(),
        "nothing is accepted while draining"
    );
    gate.open(10);
    let report = shutdown.await;
    assert!(report.is_complete(), "{report:?}");
    assert_eq!(report.stats.completed, 10);
    for (n, handle) in (0..10).zip(handles) {
        assert_eq!(handle.await.unwrap(), n);
    }
}

#[tokio::test(start_paused = true)]
async fn a_deadline_hands_back_queued_jobs_and_reports_running_ones() {
    let (pool, mut gate) = gated(2, 16);
    let mut handles = Vec::new();
    for n in 0..7 {
        handles.push(pool.submit(n).await.unwrap());
    }
    let mut running = vec![gate.started().await, gate.started().await];
    running.sort_unstable();
    assert_eq!(running, vec![0, 1], "FIFO: the first two jobs run");
    // Job 2 may finish before the deadline once a permit is there: one job ends
    // normally during the grace period, proving drain continues until the deadline.
    gate.open(1);

    let report = pool.shutdown_timeout(Duration::from_secs(5)).await;
    assert!(!report.is_complete());
    let mut returned = report.returned.clone();
    returned.sort_unstable();
    let finished = report.stats.completed;
    assert_eq!(finished, 1, "{report:?}");
    assert_eq!(report.interrupted.len(), 2, "{report:?}");
    assert_eq!(report.stats.interrupted, 2);
    assert_eq!(
        returned.len() as u64 + finished + 2,
        7,
        "every accepted job is accounted for exactly once: {report:?}"
    );

    let mut outcomes = (0, 0, 0);
    for handle in handles {
        let id = handle.id();
        match handle.await {
            Ok(_) => outcomes.0 += 1,
            Err(JobError::Interrupted) => {
                assert!(report.interrupted.contains(&id));
                outcomes.1 += 1;
            }
            Err(JobError::NotRun) => outcomes.2 += 1,
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(outcomes, (1, 2, returned.len()));
}

#[tokio::test(start_paused = true)]
async fn a_deadline_that_is_not_hit_is_a_graceful_shutdown() {
    let (pool, gate) = gated(2, 16);
    for n in 0..6 {
        pool.spawn(n).await.unwrap();
    }
    gate.open(6);
    let report = pool.shutdown_timeout(Duration::from_secs(3600)).await;
    assert!(report.is_complete(), "{report:?}");
    assert_eq!(report.stats.completed, 6);
}

#[tokio::test]
async fn abort_interrupts_running_jobs_and_hands_back_queued_ones() {
    let (pool, mut gate) = gated(2, 16);
    for n in 0..9 {
        pool.spawn(n).await.unwrap();
    }
    gate.started().await;
    gate.started().await;
    let report = pool.abort().await;
    let mut returned = report.returned.clone();
    returned.sort_unstable();
    assert_eq!(returned, (2..9).collect::<Vec<_>>());
    let mut interrupted = report.interrupted.clone();
    interrupted.sort_unstable();
    assert_eq!(interrupted, vec![JobId(1), JobId(2)]);
    assert_eq!(report.stats.completed, 0);
    assert_eq!(report.stats.workers, 0);
    // Calling it again is harmless: the first report had everything.
    let again = pool.abort().await;
    assert!(again.returned.is_empty() && again.interrupted.is_empty());
}

#[tokio::test]
async fn a_push_waiting_for_room_at_abort_is_not_lost() {
    let (pool, mut gate) = gated(1, 1);
    let pool = Arc::new(pool);
    pool.spawn(0).await.unwrap();
    gate.started().await;
    pool.spawn(1).await.unwrap();
    // The queue is full: this submit waits for room.
    let waiting = tokio::spawn({
        let pool = Arc::clone(&pool);
        async move { pool.submit(2).await.map(|handle| handle.id()) }
    });
    tokio::task::yield_now().await;
    let report = pool.abort().await;
    let accepted = waiting.await.unwrap().is_ok();
    let mut returned = report.returned.clone();
    returned.sort_unstable();
    let expected: Vec<u64> = if accepted { vec![1, 2] } else { vec![1] };
    assert_eq!(
        returned, expected,
        "an accepted submit is handed back, never lost"
    );
}

#[tokio::test]
async fn dropping_a_pool_does_not_block_and_its_jobs_still_run() {
    let (done_tx, mut done) = mpsc::unbounded_channel();
    let pool = PoolBuilder::new()
        .workers(2)
        .queue(FlumeQueue::bounded(64))
        .build(move |n: u64| {
            let done = done_tx.clone();
            async move {
                tokio::task::yield_now().await;
                let _ = done.send(n);
                Ok::<_, Infallible>(())
            }
        })
        .unwrap();
    for n in 0..50 {
        pool.spawn(n).await.unwrap();
    }
    drop(pool);
    let mut seen = Vec::new();
    while let Some(n) = done.recv().await {
        seen.push(n);
    }
    seen.sort_unstable();
    assert_eq!(
        seen,
        (0..50).collect::<Vec<_>>(),
        "the channel closed once workers exited"
    );
}
