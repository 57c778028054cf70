//! Retries: attempts and backoff, the predicate, the attempt number in the context,
//! delays that do not block a worker, and shutdown with retries pending.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crewpool_core::{JobContext, with_context};
use crewpool_flume::FlumeQueue;
use crewpool_runtime::{FailureKind, JobError, PoolBuilder, RetryPolicy};
use tokio::time::Instant;

/// A job `(name, failures)` fails its first `failures` attempts, and logs each attempt
/// as `(name, attempt, when)`, also announcing it on `attempts`.
#[derive(Clone, Default)]
struct Log {
    entries: Arc<Mutex<Vec<(&'static str, u32, Instant)>>>,
    attempts: Option<tokio::sync::mpsc::UnboundedSender<u32>>,
}

impl Log {
    fn announcing() -> (Self, tokio::sync::mpsc::UnboundedReceiver<u32>) {
        let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
        let log = Log {
            attempts: Some(sender),
            ..Log::default()
        };
        (log, receiver)
    }

    fn entries(&self) -> Vec<(&'static str, u32, Instant)> {
        self.entries.lock().unwrap().clone()
    }
}

fn flaky(
    log: &Log,
) -> impl crewpool_core::Worker<(&'static str, u32), Output = &'static str, Error = String> + use<>
{
    let log = log.clone();
    with_context(
        move |(name, failures): (&'static str, u32), cx: JobContext<(&'static str, u32)>| {
            let log = log.clone();
            async move {
                log.entries
                    .lock()
                    .unwrap()
                    .push((name, cx.attempt(), Instant::now()));
                if let Some(attempts) = &log.attempts {
                    let _ = attempts.send(cx.attempt());
                }
                if cx.attempt() <= failures {
                    Err(format!("{name} attempt {} failed", cx.attempt()))
                } else {
                    Ok(name)
                }
            }
        },
    )
}

type Job = (&'static str, u32);

/// A pool of `workers` running [`flaky`] jobs under `policy`.
fn pool(
    workers: usize,
    policy: RetryPolicy,
    log: &Log,
) -> crewpool_runtime::Pool<
    FlumeQueue<Job>,
    impl crewpool_core::Worker<Job, Output = &'static str, Error = String> + use<>,
> {
    PoolBuilder::new()
        .workers(workers)
        .queue(FlumeQueue::unbounded())
        .retry(policy)
        .results()
        .build(flaky(log))
        .unwrap()
}

fn policy() -> RetryPolicy {
    RetryPolicy::exponential(4)
        .base_delay(Duration::from_secs(1))
        .jitter(false)
}

#[tokio::test(start_paused = true)]
async fn a_failing_job_is_retried_with_backoff_until_it_succeeds() {
    let log = Log::default();
    let pool = pool(1, policy(), &log);
    let start = Instant::now();
    assert_eq!(pool.submit(("a", 2)).await.unwrap().await.unwrap(), "a");
    let log = log.entries();
    let attempts: Vec<u32> = log.iter().map(|(_, attempt, _)| *attempt).collect();
    assert_eq!(
        attempts,
        vec![1, 2, 3],
        "the context tells the job its attempt"
    );
    let offsets: Vec<u64> = log
        .iter()
        .map(|(_, _, at)| (*at - start).as_secs())
        .collect();
    assert_eq!(offsets, vec![0, 1, 3], "1 s then 2 s of backoff");
    let stats = pool.shutdown().await.stats;
    assert_eq!((stats.retried, stats.completed, stats.failed), (2, 1, 0));
}

#[tokio::test(start_paused = true)]
async fn a_job_out_of_attempts_fails_with_its_last_error() {
    let log = Log::default();
    let pool = pool(1, policy(), &log);
    match pool.submit(("b", 10)).await.unwrap().await {
        Err(JobError::Failed(message)) => assert_eq!(message, "b attempt 4 failed"),
        other => panic!("expected the fourth failure, got {other:?}"),
    }
    let stats = pool.shutdown().await.stats;
    assert_eq!((stats.retried, stats.failed), (3, 1));
}

#[tokio::test(start_paused = true)]
async fn the_predicate_decides_from_the_error() {
    let log = Log::default();
    let pool = pool(
        1,
        policy().retry_if(|failure| {
            failure.kind() == FailureKind::Failed
                && failure
                    .error::<String>()
                    .is_some_and(|message| message.starts_with("retryable"))
        }),
        &log,
    );
    assert!(matches!(
        pool.submit(("fatal", 1)).await.unwrap().await,
        Err(JobError::Failed(_))
    ));
    assert_eq!(
        pool.submit(("retryable", 1)).await.unwrap().await.unwrap(),
        "retryable"
    );
    let stats = pool.shutdown().await.stats;
    assert_eq!((stats.retried, stats.failed, stats.completed), (1, 1, 1));
}

#[tokio::test(start_paused = true)]
async fn a_retry_delay_does_not_block_the_worker() {
    let log = Log::default();
    let pool = pool(1, policy().base_delay(Duration::from_secs(60)), &log);
    let slow = pool.submit(("slow", 1)).await.unwrap();
    let quick = pool.submit(("quick", 0)).await.unwrap();
    assert_eq!(quick.await.unwrap(), "quick");
    assert_eq!(slow.await.unwrap(), "slow");
    let order: Vec<(&str, u32)> = log
        .entries()
        .iter()
        .map(|(name, attempt, _)| (*name, *attempt))
        .collect();
    assert_eq!(
        order,
        vec![("slow", 1), ("quick", 1), ("slow", 2)],
        "the only worker ran another job during the minute of backoff"
    );
    pool.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn graceful_shutdown_waits_for_pending_retries() {
    let (log, mut attempts) = Log::announcing();
    let pool = pool(2, policy(), &log);
    let mut results = pool.take_results().unwrap();
    pool.spawn(("later", 2)).await.unwrap();
    assert_eq!(
        attempts.recv().await,
        Some(1),
        "the first attempt ran (and fails)"
    );
    let report = pool.shutdown().await;
    assert!(report.is_complete(), "{report:?}");
    assert_eq!(report.stats.completed, 1, "the retried job ran to the end");
    assert_eq!(results.recv().await.unwrap().outcome.unwrap(), "later");
}

#[tokio::test(start_paused = true)]
async fn a_deadline_hands_back_jobs_waiting_to_be_retried() {
    let (log, mut attempts) = Log::announcing();
    let pool = pool(1, policy().base_delay(Duration::from_secs(3600)), &log);
    let handle = pool.submit(("stuck", 1)).await.unwrap();
    assert_eq!(attempts.recv().await, Some(1));
    let report = pool.shutdown_timeout(Duration::from_secs(10)).await;
    assert_eq!(report.returned, vec![("stuck", 1)], "{report:?}");
    assert!(matches!(handle.await, Err(JobError::NotRun)));
}

/// `.retry()` may come before `.queue()`, and `.queue()` keeps it.
#[tokio::test(start_paused = true)]
async fn a_policy_set_before_the_queue_is_kept() {
    let log = Log::default();
    let pool = PoolBuilder::new()
        .retry(policy())
        .workers(1)
        .queue(FlumeQueue::unbounded())
        .build(flaky(&log))
        .unwrap();
    assert_eq!(
        pool.submit(("early", 2)).await.unwrap().await.unwrap(),
        "early"
    );
    let stats = pool.shutdown().await.stats;
    assert_eq!((stats.retried, stats.completed), (2, 1));
}
