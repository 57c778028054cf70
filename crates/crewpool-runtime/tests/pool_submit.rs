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

/// `submitted` counts the jobs the queue accepted: a submit that gave up waiting for
/// room (its future dropped) is not one of them, in the statistics or the shutdown
/// report.
#[tokio::test(start_paused = true)]
async fn a_submit_dropped_while_waiting_for_room_is_not_counted() {
    let (pool, mut gate) = gated(1);
    let running = pool.submit(0).await.unwrap();
    assert_eq!(gate.started().await, 0);
    let queued = pool.submit(1).await.unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(50), pool.submit(2))
            .await
            .is_err(),
        "the queue is full: the third submit waits, and gives up"
    );
    assert_eq!(pool.stats().submitted, 2, "{}", pool.stats());
    gate.open(2);
    assert_eq!((running.await.unwrap(), queued.await.unwrap()), (0, 1));
    let report = pool.shutdown().await;
    assert!(report.is_complete(), "{report:?}");
    assert_eq!(
        (report.stats.submitted, report.stats.completed),
        (2, 2),
        "{report}"
    );
}

/// An abort accounts for exactly the accepted jobs, not a submit that was waiting.
#[tokio::test(start_paused = true)]
async fn abort_accounts_only_for_accepted_jobs() {
    let (pool, mut gate) = gated(1);
    pool.spawn(0).await.unwrap();
    assert_eq!(gate.started().await, 0);
    pool.spawn(1).await.unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(50), pool.spawn(2))
            .await
            .is_err()
    );
    let report = pool.abort().await;
    assert_eq!(report.returned, vec![1]);
    assert_eq!(report.interrupted.len(), 1);
    assert_eq!(report.stats.submitted, 2, "{report}");
    assert_eq!(
        report.stats.submitted,
        report.stats.finished() + report.returned.len() as u64 + report.stats.interrupted,
    );
}

/// A job that holds its own pool, through a slot filled after build.
struct Fanout {
    pool: std::sync::Arc<std::sync::OnceLock<crewpool_runtime::Pool<FlumeQueue<u64>, Fanout>>>,
}

impl crewpool_core::Worker<u64> for Fanout {
    type Output = Vec<Result<u64, String>>;
    type Error = Infallible;

    /// Job 0 submits jobs 1..=3 into its own pool and reports how each submit went;
    /// the others just finish.
    async fn run(
        &self,
        n: u64,
        _cx: crewpool_core::JobContext<u64>,
    ) -> Result<Self::Output, Infallible> {
        let mut outcomes = Vec::new();
        if n == 0 {
            let pool = self.pool.get().expect("the slot is filled after build");
            for k in 1..=3 {
                outcomes.push(match pool.spawn(k).await {
                    Ok(_) => Ok(k),
                    Err(error) => {
                        assert!(error.is_full(), "{error}");
                        Err(error.to_string())
                    }
                });
            }
        }
        Ok(outcomes)
    }
}

/// The only worker runs a job that submits into its own pool, whose queue is full
/// after the first submit: waiting for room would wait for this very worker, for good.
/// The submit fails at once with `Full` instead, handing the job back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_submitting_into_its_own_full_pool_fails_fast_instead_of_hanging() {
    let slot = std::sync::Arc::new(std::sync::OnceLock::new());
    let pool = PoolBuilder::new()
        .workers(1)
        .queue(FlumeQueue::bounded(1))
        .build(Fanout {
            pool: std::sync::Arc::clone(&slot),
        })
        .unwrap();
    assert!(slot.set(pool.clone()).is_ok());
    let outcomes = tokio::time::timeout(Duration::from_secs(60), pool.submit(0).await.unwrap())
        .await
        .expect("the job submitting into its own full pool hung")
        .unwrap();
    assert_eq!(outcomes.len(), 3);
    assert_eq!(outcomes[0], Ok(1), "there was room for the first");
    assert!(
        outcomes[1..].iter().all(|outcome| outcome
            .as_ref()
            .is_err_and(|message| message.contains("does not wait for room"))),
        "{outcomes:?}"
    );
    // The worker holds a clone of its own pool: shut it down explicitly.
    let report = pool.shutdown().await;
    assert_eq!(
        (report.stats.submitted, report.stats.completed),
        (2, 2),
        "{report}"
    );
}

/// Outside any job of the pool, the same submit waits for room as usual.
#[tokio::test]
async fn a_submit_from_another_pools_job_still_waits_for_room() {
    let (target, mut gate) = gated(1);
    target.spawn(0).await.unwrap();
    assert_eq!(gate.started().await, 0);
    target.spawn(1).await.unwrap();
    let target_in_job = target.clone();
    let other = PoolBuilder::new()
        .workers(1)
        .queue(FlumeQueue::bounded(1))
        .build(move |n: u64| {
            let target = target_in_job.clone();
            async move { target.spawn(n).await.map_err(|error| error.to_string()) }
        })
        .unwrap();
    let forwarded = other.submit(2).await.unwrap();
    // Job 2 of `target` is accepted once `target` makes room.
    gate.open(3);
    assert!(forwarded.await.is_ok(), "a submit into another pool waits");
    other.shutdown().await;
    let report = target.shutdown().await;
    assert_eq!(report.stats.completed, 3, "{report}");
}

/// A pool is a cheap handle: clones are the same pool, and the queue closes only when
/// the last one goes.
#[tokio::test]
async fn clones_are_the_same_pool_and_the_last_drop_closes_it() {
    let pool = PoolBuilder::new()
        .workers(2)
        .queue(FlumeQueue::bounded(8))
        .build(double)
        .unwrap();
    let clone = pool.clone();
    assert_eq!(clone.submit(21).await.unwrap().await.unwrap(), 42);
    drop(clone);
    assert!(pool.is_open(), "another clone is alive");
    let any = pool.clone().into_any();
    drop(pool);
    assert!(any.is_open(), "the AnyPool made from it is alive");
    assert_eq!(any.stats().submitted, 1);
    let report = any.shutdown().await;
    assert!(!any.is_open());
    assert_eq!(report.stats.completed, 1);
}

/// Dropping the last handle (here an `AnyPool`, a clone of one) closes the queue:
/// the workers run what was accepted, then leave (dropping the worker, whose sender
/// ends the channel).
#[tokio::test]
async fn dropping_the_last_any_pool_closes_the_queue() {
    let (done_tx, mut done) = tokio::sync::mpsc::unbounded_channel();
    let any: crewpool_runtime::AnyPool<u64, (), Infallible> = PoolBuilder::new()
        .workers(2)
        .queue(FlumeQueue::bounded(8))
        .build(move |n: u64| {
            let done = done_tx.clone();
            async move {
                let _ = done.send(n);
                Ok(())
            }
        })
        .unwrap()
        .into_any();
    for n in 0..10 {
        any.spawn(n).await.unwrap();
    }
    let last = any.clone();
    drop(any);
    assert!(last.is_open(), "a clone is alive");
    drop(last);
    let mut seen = Vec::new();
    let all = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(n) = done.recv().await {
            seen.push(n);
        }
    });
    all.await
        .expect("the workers never left: the queue was not closed");
    seen.sort_unstable();
    assert_eq!(seen, (0..10).collect::<Vec<_>>());
}

/// An `AnyPool` in application state names neither the queue nor the worker.
#[tokio::test]
async fn an_any_pool_offers_what_every_pool_offers() {
    struct App {
        pool: crewpool_runtime::AnyPool<u64, u64, Infallible>,
    }
    let app = App {
        pool: PoolBuilder::new()
            .name("app")
            .workers(1)
            .queue(FlumeQueue::bounded(4))
            .results()
            .build(double)
            .unwrap()
            .into(),
    };
    assert_eq!(app.pool.name(), "app");
    assert_eq!(app.pool.workers(), 1);
    app.pool.resize(2).unwrap();
    assert_eq!(app.pool.workers(), 2);
    let mut results = app.pool.take_results().unwrap();
    let id = app.pool.spawn(4).await.unwrap();
    let result = results.recv().await.unwrap();
    assert_eq!((result.id, result.outcome.unwrap()), (id, 8));
    assert!(!app.pool.cancellation_token().is_cancelled());
    let report = app.pool.shutdown_timeout(Duration::from_secs(60)).await;
    assert!(report.is_complete());
    assert!(app.pool.spawn(1).await.unwrap_err().is_closed());
    assert!(app.pool.abort().await.is_complete());
}
