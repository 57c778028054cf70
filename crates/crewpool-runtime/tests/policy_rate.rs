//! Rate limit: at most N job starts in any window of the period, pool-wide.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crewpool_flume::FlumeQueue;
use crewpool_runtime::{BuildError, PoolBuilder};
use tokio::time::Instant;

#[tokio::test(start_paused = true)]
async fn no_window_sees_more_starts_than_the_limit() {
    let starts = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&starts);
    let pool = PoolBuilder::new()
        .workers(4)
        .queue(FlumeQueue::unbounded())
        .rate_limit(3, Duration::from_secs(1))
        .build(move |n: u64| {
            log.lock().unwrap().push(Instant::now());
            std::future::ready(Ok::<_, Infallible>(n))
        })
        .unwrap();
    let t0 = Instant::now();
    for n in 0..10 {
        pool.spawn(n).await.unwrap();
    }
    let report = pool.shutdown().await;
    assert_eq!(report.stats.completed, 10);
    let mut starts = starts.lock().unwrap().clone();
    starts.sort_unstable();
    for (i, &start) in starts.iter().enumerate() {
        let in_window = starts
            .iter()
            .filter(|&&s| s >= start && s < start + Duration::from_secs(1))
            .count();
        assert!(
            in_window <= 3,
            "start {i}: {in_window} starts within one second"
        );
    }
    let last = (*starts.last().unwrap() - t0).as_secs();
    assert_eq!(last, 3, "10 starts at 3 per second take three full windows");
}

#[tokio::test]
async fn a_rate_limit_of_zero_is_a_clear_error() {
    let error = PoolBuilder::new()
        .workers(1)
        .queue(FlumeQueue::<u64>::unbounded())
        .rate_limit(0, Duration::from_secs(1))
        .build(|n: u64| async move { Ok::<_, Infallible>(n) })
        .unwrap_err();
    assert!(matches!(error, BuildError::RateLimit), "{error}");
}
