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

/// A job that blocks its dedicated thread until the test lets it go, announcing when
/// it started; job 0 returns 0, others their number.
fn blocking_pool(
    workers: usize,
) -> (
    Pool<FlumeQueue<u64>, impl Worker<u64, Output = u64, Error = Infallible>>,
    std::sync::mpsc::Sender<()>,
    std::sync::mpsc::Receiver<u64>,
) {
    let (release, released) = std::sync::mpsc::channel::<()>();
    let released = std::sync::Mutex::new(released);
    let (started_tx, started) = std::sync::mpsc::channel::<u64>();
    let started_tx = std::sync::Mutex::new(started_tx);
    let pool = PoolBuilder::new()
        .workers(workers)
        .dedicated_threads()
        .queue(FlumeQueue::bounded(8))
        .build(move |n: u64| {
            let _ = started_tx.lock().unwrap().send(n);
            // Blocks the thread: no await, so the pool cannot stop it.
            let _ = released.lock().unwrap().recv();
            std::future::ready(Ok(n))
        })
        .unwrap();
    (pool, release, started)
}

/// `shutdown_timeout` returns at its deadline although a job blocks its thread (the job
/// is released only after it returned): the job is reported as still running, queued
/// jobs come back, and once its code returns it ends as interrupted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadline_does_not_wait_for_a_job_blocked_on_its_thread() {
    let (pool, release, started) = blocking_pool(1);
    let blocked = pool.submit(1).await.unwrap();
    let queued = pool.submit(2).await.unwrap();
    assert_eq!(
        tokio::task::spawn_blocking(move || started.recv().unwrap())
            .await
            .unwrap(),
        1
    );
    let report = tokio::time::timeout(
        Duration::from_secs(60),
        pool.shutdown_timeout(Duration::from_millis(100)),
    )
    .await
    .expect("shutdown_timeout waited for the blocked job instead of returning at its deadline");
    assert_eq!(report.still_running, vec![blocked.id()], "{report:?}");
    assert!(report.interrupted.is_empty(), "{report:?}");
    assert_eq!(report.returned, vec![2], "{report:?}");
    assert!(!report.is_complete());
    assert_eq!(
        report.stats.running, 1,
        "the blocked job still runs: {report:?}"
    );
    assert_eq!(report.stats.finished(), 0);

    release.send(()).unwrap();
    assert!(matches!(blocked.await, Err(JobError::Interrupted)));
    assert!(matches!(queued.await, Err(JobError::NotRun)));
    // Once its worker left, the job given up on is counted, once, as interrupted.
    let report = pool.shutdown().await;
    assert_eq!(report.stats.interrupted, 1, "{report:?}");
    assert_eq!(report.stats.workers, 0);
    assert!(report.still_running.is_empty() && report.interrupted.is_empty());
}

/// `abort` does not wait for a blocked job either, while the other worker, awaiting
/// inside its job, is interrupted as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_does_not_wait_for_a_job_blocked_on_its_thread() {
    fn block_until_released(released: &std::sync::Mutex<std::sync::mpsc::Receiver<()>>) {
        let _ = released.lock().unwrap().recv();
    }
    let (release, released) = std::sync::mpsc::channel::<()>();
    let released = Arc::new(std::sync::Mutex::new(released));
    let (started_tx, mut started) = mpsc::unbounded_channel::<u64>();
    let pool = PoolBuilder::new()
        .workers(2)
        .dedicated_threads()
        .queue(FlumeQueue::bounded(8))
        .build(move |n: u64| {
            let _ = started_tx.send(n);
            let released = Arc::clone(&released);
            async move {
                if n == 1 {
                    // Blocks the thread inside the job's poll.
                    block_until_released(&released);
                } else {
                    std::future::pending::<()>().await;
                }
                Ok::<_, Infallible>(n)
            }
        })
        .unwrap();
    let blocked = pool.submit(1).await.unwrap();
    let awaiting = pool.submit(2).await.unwrap();
    let mut seen = vec![started.recv().await.unwrap(), started.recv().await.unwrap()];
    seen.sort_unstable();
    assert_eq!(seen, vec![1, 2]);
    let report = tokio::time::timeout(Duration::from_secs(60), pool.abort())
        .await
        .expect("abort waited for the blocked job");
    // Job 1 is blocked in its poll. Job 2 awaits, unless abort came while its first
    // poll had not yet returned: a poll in progress cannot be told from a blocked one,
    // so it is then reported as still running too. Either way it is reported once,
    // and what the report calls interrupted is what the statistics count.
    assert!(report.still_running.contains(&blocked.id()), "{report:?}");
    let reported = |id| {
        report.interrupted.iter().filter(|&&i| i == id).count()
            + report.still_running.iter().filter(|&&i| i == id).count()
    };
    assert_eq!(reported(blocked.id()), 1, "{report:?}");
    assert_eq!(reported(awaiting.id()), 1, "{report:?}");
    assert_eq!(
        report.stats.interrupted,
        report.interrupted.len() as u64,
        "{report:?}"
    );
    release.send(()).unwrap();
    assert!(matches!(blocked.await, Err(JobError::Interrupted)));
    assert!(matches!(awaiting.await, Err(JobError::Interrupted)));
}

/// A job running on a tokio runtime that is dropped (its worker task with it) resolves
/// to `Interrupted`, not `NotRun`, and is counted; a job still queued then never ran.
#[test]
fn jobs_running_when_their_runtime_is_dropped_are_interrupted() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (pool, running, queued) = runtime.block_on(async {
        let pool = PoolBuilder::new()
            .workers(1)
            .queue(FlumeQueue::bounded(4))
            .build(|n: u64| async move {
                std::future::pending::<()>().await;
                Ok::<_, Infallible>(n)
            })
            .unwrap();
        let running = pool.submit(1).await.unwrap();
        let queued = pool.submit(2).await.unwrap();
        while pool.stats().running == 0 {
            tokio::task::yield_now().await;
        }
        (pool, running, queued)
    });
    drop(runtime);
    let other = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    assert!(matches!(
        other.block_on(running),
        Err(JobError::Interrupted)
    ));
    let stats = pool.stats();
    assert_eq!(
        (stats.interrupted, stats.running, stats.workers),
        (1, 0, 0),
        "{stats}"
    );
    drop(pool);
    assert!(matches!(other.block_on(queued), Err(JobError::NotRun)));
}
