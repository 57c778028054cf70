//! Submitting: handles, try_submit, submit_timeout, spawn, errors that hand jobs back.

use std::convert::Infallible;
use std::time::Duration;

use crewpool_flume::FlumeQueue;
use crewpool_runtime::{
    BuildError, JobError, PoolBuilder, SubmitError, SubmitTimeoutError, TrySubmitError,
};

fn double(n: u64) -> std::future::Ready<Result<u64, Infallible>> {
    std::future::ready(Ok(n * 2))
}

#[tokio::test]
async fn submit_returns_a_handle_with_the_result() {
    let pool = PoolBuilder::new()
        .workers(3)
        .queue(FlumeQueue::bounded(8))
        .build(double)
        .unwrap();
    let mut handles = Vec::new();
    for n in 0..100 {
        handles.push(pool.submit(n).await.unwrap());
    }
    for (n, handle) in (0..100).zip(handles) {
        assert_eq!(handle.await.unwrap(), n * 2);
    }
    let report = pool.shutdown().await;
    assert!(report.is_complete());
    assert_eq!(report.stats.submitted, 100);
    assert_eq!(report.stats.completed, 100);
    assert_eq!(report.stats.workers, 0, "every worker stopped");
}

#[tokio::test]
async fn zero_workers_is_a_clear_error() {
    let error = PoolBuilder::new()
        .workers(0)
        .queue(FlumeQueue::<u64>::unbounded())
        .build(double)
        .unwrap_err();
    assert!(matches!(error, BuildError::ZeroWorkers));
    assert!(error.to_string().contains("at least one worker"), "{error}");
}

#[test]
fn building_tokio_workers_outside_a_runtime_is_a_clear_error() {
    let error = PoolBuilder::new()
        .workers(1)
        .queue(FlumeQueue::<u64>::unbounded())
        .build(double)
        .unwrap_err();
    assert!(matches!(error, BuildError::NoRuntime));
    assert!(error.to_string().contains("dedicated_threads"), "{error}");
}

#[path = "support/gate.rs"]
mod gate;

/// A pool of one worker whose jobs wait for the test's permits.
fn gated(
    capacity: usize,
) -> (
    crewpool_runtime::Pool<FlumeQueue<u64>, impl crewpool_core::Worker<u64, Output = u64>>,
    gate::Gate,
) {
    let gate = gate::Gate::new();
    let pool = PoolBuilder::new()
        .workers(1)
        .queue(FlumeQueue::bounded(capacity))
        .build(gate.worker())
        .unwrap();
    (pool, gate)
}

#[tokio::test]
async fn try_submit_hands_the_job_back_when_full_and_after_close() {
    let (pool, mut gate) = gated(1);
    let running = pool.try_submit(1).unwrap();
    assert_eq!(gate.started().await, 1, "the worker holds job 1");
    let queued = pool.try_submit(2).unwrap();
    match pool.try_submit(3) {
        Err(TrySubmitError::Full(job)) => assert_eq!(job, 3),
        other => panic!("expected Full(3), got {other:?}"),
    }
    assert!(matches!(pool.try_spawn(4), Err(TrySubmitError::Full(4))));

    gate.open(2);
    assert_eq!(running.await.unwrap(), 1);
    assert_eq!(queued.await.unwrap(), 2);
    let report = pool.shutdown().await;
    assert!(report.is_complete());
    match pool.try_submit(5) {
        Err(TrySubmitError::Closed(job)) => assert_eq!(job, 5),
        other => panic!("expected Closed(5), got {other:?}"),
    }
}

#[tokio::test]
async fn submit_after_shutdown_hands_the_job_back() {
    let pool = PoolBuilder::new()
        .workers(2)
        .queue(FlumeQueue::bounded(4))
        .build(double)
        .unwrap();
    pool.shutdown().await;
    assert!(!pool.is_open());
    match pool.submit(7).await {
        Err(SubmitError::Closed(job)) => assert_eq!(job, 7),
        other => panic!("expected Closed(7), got {other:?}"),
    }
    assert!(matches!(pool.spawn(8).await, Err(SubmitError::Closed(8))));
    assert!(matches!(
        pool.submit_timeout(9, Duration::from_secs(1)).await,
        Err(SubmitTimeoutError::Closed(9))
    ));
}

#[tokio::test(start_paused = true)]
async fn submit_timeout_gives_the_job_back_when_no_room_comes() {
    let (pool, mut gate) = gated(1);
    let _running = pool.submit(1).await.unwrap();
    assert_eq!(gate.started().await, 1);
    let _queued = pool.submit(2).await.unwrap();
    match pool.submit_timeout(3, Duration::from_millis(250)).await {
        Err(SubmitTimeoutError::Timeout(job)) => assert_eq!(job, 3),
        other => panic!("expected Timeout(3), got {other:?}"),
    }
    gate.open(3);
    let report = pool.shutdown().await;
    assert_eq!(report.stats.completed, 2);
}

#[tokio::test]
async fn submit_timeout_succeeds_once_a_worker_frees_room() {
    let (pool, mut gate) = gated(1);
    let _running = pool.submit(1).await.unwrap();
    assert_eq!(gate.started().await, 1);
    let _queued = pool.submit(2).await.unwrap();
    let release = async {
        // Free the worker only once the timed submit had to wait.
        tokio::task::yield_now().await;
        gate.open(3);
    };
    let (submitted, ()) = tokio::join!(pool.submit_timeout(3, Duration::from_secs(60)), release);
    assert_eq!(submitted.unwrap().await.unwrap(), 3);
    pool.shutdown().await;
}

#[tokio::test]
async fn a_failed_job_is_an_error_of_its_own_kind() {
    let pool = PoolBuilder::new()
        .workers(2)
        .queue(FlumeQueue::unbounded())
        .build(|n: u64| async move {
            if n.is_multiple_of(2) {
                Ok(n)
            } else {
                Err(format!("{n} is odd"))
            }
        })
        .unwrap();
    let even = pool.submit(2).await.unwrap();
    let odd = pool.submit(3).await.unwrap();
    assert_eq!(even.await.unwrap(), 2);
    match odd.await {
        Err(JobError::Failed(message)) => assert_eq!(message, "3 is odd"),
        other => panic!("expected Failed, got {other:?}"),
    }
    let stats = pool.shutdown().await.stats;
    assert_eq!((stats.completed, stats.failed), (1, 1));
}

#[tokio::test]
async fn spawned_jobs_report_to_the_results_stream() {
    let pool = PoolBuilder::new()
        .workers(2)
        .queue(FlumeQueue::bounded(4))
        .results()
        .build(|n: u64| async move { if n == 13 { Err("unlucky") } else { Ok(n) } })
        .unwrap();
    let mut results = pool.take_results().expect("results enabled");
    assert!(pool.take_results().is_none(), "the stream is taken once");
    let mut ids = Vec::new();
    for n in 0..20 {
        ids.push(pool.spawn(n).await.unwrap());
    }
    // A job with a handle reports to its handle, not the stream.
    assert_eq!(pool.submit(100).await.unwrap().await.unwrap(), 100);
    pool.shutdown().await;

    let mut seen = Vec::new();
    while let Some(result) = results.recv().await {
        match result.outcome {
            Ok(n) => seen.push((result.id, n)),
            Err(JobError::Failed("unlucky")) => seen.push((result.id, 13)),
            Err(other) => panic!("unexpected outcome {other:?}"),
        }
    }
    seen.sort_unstable();
    assert_eq!(
        seen.len(),
        20,
        "every spawned job reported once; the stream ended"
    );
    assert_eq!(seen.iter().map(|(id, _)| *id).collect::<Vec<_>>(), ids);
}

#[tokio::test]
async fn jobs_can_spawn_sub_jobs_through_their_context() {
    let pool = PoolBuilder::new()
        .workers(2)
        .queue(FlumeQueue::unbounded())
        .results()
        .build(crewpool_core::with_context(
            |depth: u32, cx: crewpool_core::JobContext<u32>| async move {
                if depth > 0 {
                    cx.spawn(depth - 1).map_err(|e| e.to_string())?;
                    cx.spawn(depth - 1).map_err(|e| e.to_string())?;
                }
                Ok::<_, String>(depth)
            },
        ))
        .unwrap();
    let mut results = pool.take_results().unwrap();
    let root = pool.submit(4).await.unwrap();
    assert_eq!(root.await.unwrap(), 4);
    // 2 + 4 + 8 + 16 sub-jobs below the root.
    for _ in 0..30 {
        results.recv().await.unwrap().outcome.unwrap();
    }
    let stats = pool.shutdown().await.stats;
    assert_eq!((stats.submitted, stats.completed), (31, 31));
}

/// On an in-memory queue, the ids `spawn` and `submit` give are the ones the job's
/// worker sees in its context.
#[tokio::test]
async fn returned_ids_are_the_ones_workers_see() {
    let (seen_tx, seen_rx) = flume::unbounded();
    let pool = PoolBuilder::new()
        .workers(2)
        .queue(FlumeQueue::bounded(8))
        .build(crewpool_core::with_context(
            move |job: u64, cx: crewpool_core::JobContext<u64>| {
                let seen = seen_tx.clone();
                async move { seen.send((job, cx.id())) }
            },
        ))
        .unwrap();
    let mut given = Vec::new();
    for job in 0..10_u64 {
        let id = if job % 2 == 0 {
            pool.spawn(job).await.unwrap()
        } else {
            pool.submit(job).await.unwrap().id()
        };
        given.push((job, id));
    }
    pool.shutdown().await;
    let mut seen: Vec<_> = seen_rx.drain().collect();
    seen.sort_unstable();
    assert_eq!(seen, given);
}
