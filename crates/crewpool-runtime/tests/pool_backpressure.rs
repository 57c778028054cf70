//! Backpressure: submit waits while the queue is full, until a worker frees room.
//! Proven by polling by hand, without sleeping.

use std::pin::pin;

use crewpool_core::testkit::{CountingWaker, poll_once};
use crewpool_flume::FlumeQueue;
use crewpool_runtime::PoolBuilder;

#[path = "support/gate.rs"]
mod gate;

#[tokio::test]
async fn submit_waits_until_a_worker_frees_room() {
    let mut gate = gate::Gate::new();
    let pool = PoolBuilder::new()
        .workers(1)
        .queue(FlumeQueue::bounded(2))
        .build(gate.worker())
        .unwrap();

    let first = pool.submit(0).await.unwrap();
    assert_eq!(
        gate.started().await,
        0,
        "the only worker is busy with job 0"
    );
    let queued = [pool.submit(1).await.unwrap(), pool.submit(2).await.unwrap()];
    let stats = pool.stats();
    assert_eq!(
        (stats.queued, stats.running, stats.idle),
        (2, 1, 0),
        "{stats}"
    );

    let (counter, waker) = CountingWaker::new();
    let mut blocked = pin!(pool.submit(3));
    assert!(
        poll_once(blocked.as_mut(), &waker).is_pending(),
        "full queue: submit waits"
    );
    assert!(
        poll_once(blocked.as_mut(), &waker).is_pending(),
        "still waiting"
    );
    assert_eq!(counter.wakes(), 0);

    // Free the worker: it finishes job 0 and takes job 1, which makes room.
    gate.open(1);
    assert_eq!(first.await.unwrap(), 0);
    assert_eq!(gate.started().await, 1);
    assert!(counter.wakes() >= 1, "taking job 1 woke the waiting submit");
    let last = blocked.await.unwrap();

    gate.open(3);
    for (n, handle) in (1..).zip(queued) {
        assert_eq!(handle.await.unwrap(), n);
    }
    assert_eq!(last.await.unwrap(), 3);
    pool.shutdown().await;
}
