//! `Pool::spawn_all` on a queue that keeps `Queue::push_batch`'s default (one push
//! per job): the flume backend. Waits are proven by polling by hand, without sleeping.

use std::pin::pin;

use crewpool_core::testkit::{CountingWaker, poll_once};
use crewpool_flume::FlumeQueue;
use crewpool_runtime::PoolBuilder;

#[path = "support/gate.rs"]
mod gate;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_larger_than_the_queue_runs_every_job() {
    let pool = PoolBuilder::new()
        .workers(2)
        .queue(FlumeQueue::bounded(4))
        .build(|n: u64| async move { Ok::<_, std::convert::Infallible>(n) })
        .unwrap();
    assert_eq!(pool.spawn_all(0..5_000).await.unwrap(), 5_000);
    let erased = pool.clone().into_any();
    assert_eq!(erased.spawn_all(5_000..10_000).await.unwrap(), 5_000);
    let report = pool.shutdown().await;
    assert!(report.is_complete(), "{report:?}");
    assert_eq!(
        (report.stats.submitted, report.stats.completed),
        (10_000, 10_000)
    );
}

/// A shutdown while a batch waits for room: the jobs pushed before it stay accepted,
/// and the rest, including the one whose push was waiting, come back in order.
#[tokio::test]
async fn a_shutdown_mid_batch_hands_back_the_rest() {
    let mut gate = gate::Gate::new();
    let pool = PoolBuilder::new()
        .workers(1)
        .queue(FlumeQueue::bounded(2))
        .build(gate.worker())
        .unwrap();
    pool.spawn(0).await.unwrap();
    assert_eq!(gate.started().await, 0);

    let (counter, waker) = CountingWaker::new();
    let mut batch = pin!(pool.spawn_all([1, 2, 3, 4, 5]));
    assert!(poll_once(batch.as_mut(), &waker).is_pending(), "2 of 5 fit");
    assert_eq!(pool.stats().queued, 2);

    let shutdown = tokio::spawn({
        let pool = pool.clone();
        async move { pool.shutdown().await }
    });
    while pool.is_open() {
        tokio::task::yield_now().await;
    }
    assert!(counter.wakes() >= 1, "closing woke the waiting batch");
    let refused = batch.await.unwrap_err();
    assert!(refused.is_closed(), "{refused:?}");
    assert_eq!(refused.accepted(), 2);
    assert_eq!(refused.into_inner(), [3, 4, 5]);

    gate.open(3);
    let report = shutdown.await.unwrap();
    assert!(report.is_complete(), "{report:?}");
    assert_eq!((report.stats.submitted, report.stats.completed), (3, 3));
}
