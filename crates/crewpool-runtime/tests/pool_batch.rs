//! `Pool::spawn_all` on a queue that keeps `Queue::push_batch`'s default (one push
//! per job): the flume backend. Waits are proven by polling by hand, without sleeping.

use crewpool_flume::FlumeQueue;
use crewpool_runtime::PoolBuilder;

#[path = "support/gate.rs"]
mod gate;
#[path = "support/spawn_all.rs"]
mod spawn_all;

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
    spawn_all::assert_ran_all(&pool.shutdown().await, 10_000);
}

/// A shutdown while a batch waits for room: the jobs pushed before it stay accepted,
/// and the rest, including the one whose push was waiting, come back in order.
#[tokio::test]
async fn a_shutdown_mid_batch_hands_back_the_rest() {
    spawn_all::shutdown_mid_batch(FlumeQueue::bounded(2)).await;
}
