//! Per-job timeout: the job's future is dropped at its deadline and the job fails as
//! timed out, counted in stats; the worker goes on.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crewpool_flume::FlumeQueue;
use crewpool_runtime::{JobError, PoolBuilder};

/// Sets its flag when dropped: proves the job's future was dropped.
struct Dropped(Arc<AtomicBool>);

impl Drop for Dropped {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[tokio::test(start_paused = true)]
async fn a_job_past_its_timeout_is_dropped_and_fails_as_timed_out() {
    let dropped = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&dropped);
    let pool = PoolBuilder::new()
        .workers(1)
        .queue(FlumeQueue::unbounded())
        .timeout(Duration::from_secs(5))
        .build(move |seconds: u64| {
            let guard = Dropped(Arc::clone(&flag));
            async move {
                tokio::time::sleep(Duration::from_secs(seconds)).await;
                std::mem::forget(guard);
                Ok::<_, Infallible>(seconds)
            }
        })
        .unwrap();
    let slow = pool.submit(60).await.unwrap();
    let quick = pool.submit(1).await.unwrap();
    assert!(matches!(slow.await, Err(JobError::TimedOut)));
    assert!(
        dropped.load(Ordering::SeqCst),
        "the timed-out future was dropped"
    );
    assert_eq!(quick.await.unwrap(), 1, "the worker went on");
    let stats = pool.shutdown().await.stats;
    assert_eq!((stats.timed_out, stats.completed, stats.failed), (1, 1, 0));
}
