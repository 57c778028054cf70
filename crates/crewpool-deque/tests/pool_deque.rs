//! The deque backend under a real `Pool`: submit, backpressure, shutdown, abort.

use std::convert::Infallible;
use std::pin::pin;
use std::sync::Arc;

use crewpool_core::testkit::{CountingWaker, poll_once};
use crewpool_deque::DequeQueue;
use crewpool_runtime::{PoolBuilder, TrySubmitError};
use tokio::sync::{Semaphore, mpsc};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_submitted_job_runs_once_and_shutdown_drains() {
    let pool = PoolBuilder::new()
        .workers(4)
        .queue(DequeQueue::bounded(16))
        .build(|n: u64| async move { Ok::<_, Infallible>(n * 2) })
        .unwrap();
    let mut handles = Vec::new();
    for n in 0..2000 {
        handles.push(pool.submit(n).await.unwrap());
    }
    let mut sum = 0;
    for handle in handles {
        sum += handle.await.unwrap();
    }
    assert_eq!(sum, (0..2000).map(|n| n * 2).sum());
    let report = pool.shutdown().await;
    assert!(report.is_complete(), "{report:?}");
    assert_eq!(report.stats.completed, 2000);
}

#[test]
fn dedicated_threads_run_jobs_and_shut_down() {
    let pool = PoolBuilder::new()
        .workers(2)
        .dedicated_threads()
        .queue(DequeQueue::unbounded())
        .build(|n: u64| async move { Ok::<_, Infallible>(n + 1) })
        .unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        for n in 0..1000 {
            pool.spawn(n).await.unwrap();
        }
        let report = pool.shutdown().await;
        assert!(report.is_complete(), "{report:?}");
        assert_eq!(report.stats.completed, 1000);
    });
}

/// One worker blocked on job 0; the bounded queue of 2 fills; submit waits and
/// `try_submit` says Full until the worker takes the next job.
#[tokio::test]
async fn a_full_queue_holds_back_submits_until_a_worker_takes_a_job() {
    let gate = Arc::new(Semaphore::new(0));
    let (started_tx, mut started) = mpsc::unbounded_channel();
    let worker_gate = Arc::clone(&gate);
    let pool = PoolBuilder::new()
        .workers(1)
        .queue(DequeQueue::bounded(2))
        .build(move |n: u64| {
            let (gate, started) = (Arc::clone(&worker_gate), started_tx.clone());
            async move {
                let _ = started.send(n);
                gate.acquire().await.unwrap().forget();
                Ok::<_, Infallible>(n)
            }
        })
        .unwrap();

    let first = pool.submit(0).await.unwrap();
    assert_eq!(
        started.recv().await,
        Some(0),
        "the worker is busy with job 0"
    );
    let queued = [pool.submit(1).await.unwrap(), pool.submit(2).await.unwrap()];
    assert_eq!(pool.stats().queued, 2);
    assert!(matches!(pool.try_submit(9), Err(TrySubmitError::Full(9))));

    let (counter, waker) = CountingWaker::new();
    let mut blocked = pin!(pool.submit(3));
    assert!(
        poll_once(blocked.as_mut(), &waker).is_pending(),
        "full: submit waits"
    );
    assert_eq!(counter.wakes(), 0);

    gate.add_permits(1);
    assert_eq!(first.await.unwrap(), 0);
    assert_eq!(started.recv().await, Some(1));
    assert!(counter.wakes() >= 1, "taking job 1 woke the waiting submit");
    let last = blocked.await.unwrap();

    gate.add_permits(3);
    for (n, handle) in (1..).zip(queued) {
        assert_eq!(handle.await.unwrap(), n);
    }
    assert_eq!(last.await.unwrap(), 3);
    assert!(pool.shutdown().await.is_complete());
}

/// Abort with jobs queued: the running job is interrupted and every queued job comes
/// back in the report, including those in the worker's local deque (a dropped
/// consumer hands them back).
#[tokio::test]
async fn abort_hands_back_every_queued_job() {
    let (started_tx, mut started) = mpsc::unbounded_channel();
    let pool = PoolBuilder::new()
        .workers(1)
        .queue(DequeQueue::unbounded())
        .build(move |n: u64| {
            let started = started_tx.clone();
            async move {
                let _ = started.send(n);
                std::future::pending::<()>().await;
                Ok::<_, Infallible>(n)
            }
        })
        .unwrap();
    for n in 0..10 {
        pool.spawn(n).await.unwrap();
    }
    let first = started.recv().await.unwrap();
    let report = pool.abort().await;
    assert_eq!(report.interrupted.len(), 1, "{report:?}");
    let mut returned = report.returned.clone();
    returned.push(first);
    returned.sort_unstable();
    assert_eq!(returned, (0..10).collect::<Vec<_>>(), "nothing lost");
}

/// `submitted` counts the jobs the queue accepted, not a submit that gave up waiting
/// for room; the shutdown report agrees.
#[tokio::test]
async fn a_submit_dropped_while_waiting_for_room_is_not_counted() {
    let gate = Arc::new(Semaphore::new(0));
    let (started_tx, mut started) = mpsc::unbounded_channel();
    let permits = Arc::clone(&gate);
    let pool = PoolBuilder::new()
        .workers(1)
        .queue(DequeQueue::bounded(1))
        .build(move |n: u64| {
            let (permits, started) = (Arc::clone(&permits), started_tx.clone());
            async move {
                let _ = started.send(n);
                permits.acquire().await.unwrap().forget();
                Ok::<_, Infallible>(n)
            }
        })
        .unwrap();
    let running = pool.submit(0).await.unwrap();
    assert_eq!(started.recv().await, Some(0));
    let queued = pool.submit(1).await.unwrap();
    assert!(
        tokio::time::timeout(std::time::Duration::from_millis(50), pool.submit(2))
            .await
            .is_err(),
        "the queue is full: the third submit waits, and gives up"
    );
    assert_eq!(pool.stats().submitted, 2);
    gate.add_permits(2);
    assert_eq!((running.await.unwrap(), queued.await.unwrap()), (0, 1));
    let report = pool.shutdown().await;
    assert_eq!(
        (report.stats.submitted, report.stats.completed),
        (2, 2),
        "{report}"
    );
}

/// Producers saturating a full pool on dedicated threads leave the caller's runtime
/// free: a ticking task on the same single-threaded runtime keeps getting turns while
/// they submit. A submit into a full queue returns `Pending` (after a short spin) and
/// every submit takes tokio's cooperative budget, so the ticker gets a turn at least
/// every 128 submits. Measured in turns per submit, not in time: before, the producers
/// spun and yielded the OS thread inside `poll` and the ticker typically got no turn
/// at all until they were done.
#[test]
fn producers_on_a_full_pool_leave_their_runtime_free() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    const SUBMITS: u64 = 50_000;
    const PRODUCERS: u64 = 2;
    let pool = PoolBuilder::new()
        .workers(2)
        .dedicated_threads()
        .queue(DequeQueue::bounded(10))
        .build(|n: u64| async move {
            std::hint::black_box((0..50).fold(n, |a, b| a ^ (a << 13) ^ b));
            Ok::<_, Infallible>(())
        })
        .unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let turns = Arc::new(AtomicU64::new(0));
    let during = runtime.block_on(async {
        let done = Arc::new(AtomicBool::new(false));
        let ticker = tokio::spawn({
            let (turns, done) = (Arc::clone(&turns), Arc::clone(&done));
            async move {
                while !done.load(Ordering::Relaxed) {
                    turns.fetch_add(1, Ordering::Relaxed);
                    tokio::task::yield_now().await;
                }
            }
        });
        tokio::task::yield_now().await;
        let before = turns.load(Ordering::Relaxed);
        let producers: Vec<_> = (0..PRODUCERS)
            .map(|p| {
                let pool = pool.clone();
                tokio::spawn(async move {
                    for n in 0..SUBMITS / PRODUCERS {
                        pool.spawn(p * SUBMITS + n).await.unwrap();
                    }
                })
            })
            .collect();
        for producer in producers {
            producer.await.unwrap();
        }
        let during = turns.load(Ordering::Relaxed) - before;
        done.store(true, Ordering::Relaxed);
        ticker.await.unwrap();
        let report = pool.shutdown().await;
        assert_eq!(report.stats.completed, SUBMITS);
        during
    });
    println!("the ticker got {during} turns during {SUBMITS} submits");
    assert!(
        during >= SUBMITS / 256,
        "the ticker got {during} turns during {SUBMITS} submits: the producers held the runtime's thread"
    );
}

#[test]
#[should_panic(expected = "a bounded queue needs a capacity of at least 1")]
fn a_bound_of_zero_is_refused() {
    let _ = DequeQueue::<u64>::bounded(0);
}
