//! What the `Pool::spawn_all` tests of the backends share (the runtime's, on the flume
//! backend's one push per job, and the deque backend's, on its batched push): a pool
//! whose only worker is held busy, a shutdown in the middle of a batch, the check of a
//! shutdown's report. Included next to `support/gate.rs` (as `mod gate`).

use std::convert::Infallible;
use std::pin::pin;

use crewpool_core::testkit::{CountingWaker, poll_once};
use crewpool_core::{Queue, Worker};
use crewpool_runtime::{Pool, PoolBuilder, ShutdownReport};

use crate::gate::Gate;

/// A pool of one gated worker on `queue`, busy with job 0 until the gate lets it
/// through.
pub(crate) async fn held<Q: Queue<Job = u64>>(
    queue: Q,
) -> (
    Pool<Q, impl Worker<u64, Output = u64, Error = Infallible>>,
    Gate,
) {
    let mut gate = Gate::new();
    let pool = PoolBuilder::new()
        .workers(1)
        .queue(queue)
        .build(gate.worker())
        .unwrap();
    pool.spawn(0).await.unwrap();
    assert_eq!(
        gate.started().await,
        0,
        "the only worker is busy with job 0"
    );
    (pool, gate)
}

/// Checks that a shutdown completed, `jobs` jobs accepted and all of them run.
pub(crate) fn assert_ran_all(report: &ShutdownReport<u64>, jobs: u64) {
    assert!(report.is_complete(), "{report:?}");
    assert_eq!(
        (report.stats.submitted, report.stats.completed),
        (jobs, jobs),
        "{report:?}"
    );
}

/// A shutdown while a batch waits for room in `queue` (2 places; the only worker held
/// on job 0): the batch ends with the 2 jobs accepted before it counted, and the rest,
/// including the one whose push was waiting, handed back in order; once closed, a
/// batch is refused whole; the accepted jobs run.
pub(crate) async fn shutdown_mid_batch<Q: Queue<Job = u64>>(queue: Q) {
    let (pool, gate) = held(queue).await;
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
    let late = pool.spawn_all([6, 7]).await.unwrap_err();
    assert_eq!(
        (late.accepted(), late.rest()),
        (0, &[6, 7][..]),
        "once closed, a batch is refused whole"
    );

    gate.open(3);
    assert_ran_all(&shutdown.await.unwrap(), 3);
}
