//! Panic isolation: a panicking job fails alone; its worker and the pool go on.

use std::convert::Infallible;
use std::sync::Arc;

use crewpool_flume::FlumeQueue;
use crewpool_runtime::{JobError, PoolBuilder};
use tokio::sync::Semaphore;

fn quiet_panics() {
    // The default hook prints every caught panic; these are expected.
    std::panic::set_hook(Box::new(|_| {}));
}

#[tokio::test]
async fn a_panicking_job_becomes_a_failed_result_and_the_worker_goes_on() {
    quiet_panics();
    let pool = PoolBuilder::new()
        .workers(1)
        .queue(FlumeQueue::unbounded())
        .build(|n: u64| async move {
            match n {
                3 => panic!("job {n} exploded"),
                5 => std::panic::panic_any(42_u8),
                _ => Ok::<_, Infallible>(n),
            }
        })
        .unwrap();
    let mut handles = Vec::new();
    for n in 0..8 {
        handles.push(pool.submit(n).await.unwrap());
    }
    for (n, handle) in (0..8).zip(handles) {
        match (n, handle.await) {
            (3, Err(JobError::Panicked(message))) => assert_eq!(message, "job 3 exploded"),
            (5, Err(JobError::Panicked(message))) => {
                assert_eq!(message, "a panic with a non-string payload");
            }
            (n, Ok(got)) => assert_eq!(got, n),
            (n, other) => panic!("job {n}: unexpected {other:?}"),
        }
    }
    let report = pool.shutdown().await;
    assert_eq!((report.stats.completed, report.stats.panicked), (6, 2));
}

/// A worker whose `run` panics before returning its future.
struct PanicsEagerly;

impl crewpool_core::Worker<u64> for PanicsEagerly {
    type Output = u64;
    type Error = Infallible;

    #[allow(clippy::manual_async_fn)]
    fn run(
        &self,
        job: u64,
        _cx: crewpool_core::JobContext<u64>,
    ) -> impl std::future::Future<Output = Result<u64, Infallible>> + Send {
        assert!(job != 0, "zero is not allowed");
        async move { Ok(job) }
    }
}

#[tokio::test]
async fn a_panic_before_the_future_exists_is_caught_too() {
    quiet_panics();
    let pool = PoolBuilder::new()
        .workers(1)
        .queue(FlumeQueue::unbounded())
        .build(PanicsEagerly)
        .unwrap();
    let zero = pool.submit(0).await.unwrap();
    let one = pool.submit(1).await.unwrap();
    assert!(matches!(zero.await, Err(JobError::Panicked(m)) if m == "zero is not allowed"));
    assert_eq!(one.await.unwrap(), 1);
    pool.shutdown().await;
}

#[tokio::test]
async fn a_job_panicking_during_shutdown_is_counted_and_shutdown_completes() {
    quiet_panics();
    let gate = Arc::new(Semaphore::new(0));
    let worker_gate = Arc::clone(&gate);
    let pool = PoolBuilder::new()
        .workers(2)
        .queue(FlumeQueue::unbounded())
        .build(move |n: u64| {
            let gate = Arc::clone(&worker_gate);
            async move {
                gate.acquire().await.unwrap().forget();
                if n % 2 == 1 {
                    panic!("odd job {n}");
                }
                Ok::<_, Infallible>(n)
            }
        })
        .unwrap();
    for n in 0..10 {
        pool.spawn(n).await.unwrap();
    }
    let release = async {
        tokio::task::yield_now().await;
        gate.add_permits(10);
    };
    let (report, ()) = tokio::join!(pool.shutdown(), release);
    assert!(report.is_complete());
    assert_eq!((report.stats.completed, report.stats.panicked), (5, 5));
}
