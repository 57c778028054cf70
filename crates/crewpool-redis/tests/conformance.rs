//! The backend conformance suite on a Redis queue, against a private redis-server.
//!
//! Not run here, because a Redis queue cannot meet their preconditions:
//! - `backpressure_by_hand`, `try_push_gives_job_back`: they need [`TryPush`] and a
//!   bounded queue. A Redis queue is unbounded (Redis memory is the limit) and cannot
//!   answer a push without a round trip, so it does not implement `TryPush`.
//! - `wakes_waiting_consumers_by_hand`, `nothing_lost_or_duplicated_threaded`: they
//!   drive futures without a reactor (`poll_once`, `block_on`); Redis futures need
//!   tokio's. The same promises (a push wakes a waiting consumer, nothing is lost
//!   under concurrency) are checked with tokio in `queue_blocking.rs` (a blocked
//!   consumer woken by a push, 200 times) and by `nothing_lost_or_duplicated` below.
//! - `spawned_jobs_are_delivered`: Redis consumers offer no spawner (spawning is
//!   synchronous in the core traits and Redis needs a round trip), which
//!   `consumers_offer_no_spawner` below pins down.
//!
//! [`TryPush`]: crewpool_core::TryPush

use crewpool_core::{Consumer, Queue, testkit};
use crewpool_redis::testing::RedisServer;
use crewpool_redis::{RedisConfig, RedisQueue};

async fn queue(server: &RedisServer) -> RedisQueue<u64> {
    RedisQueue::connect(RedisConfig::new(server.url(), "conformance"))
        .await
        .expect("connect")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivers_what_was_pushed() {
    let server = RedisServer::start();
    // One of its jobs carries a reply: a queue with a result type takes it (one
    // without refuses it, see `jobs_results.rs`).
    let queue = queue(&server).await.with_results::<u64, String>();
    testkit::delivers_what_was_pushed(queue).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_and_drain() {
    let server = RedisServer::start();
    testkit::close_and_drain(queue(&server).await).await;
    // Durable: what was accepted before close is still in Redis for other workers.
    let other = queue(&server).await;
    assert_eq!(other.len().await.unwrap(), 64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn next_is_cancel_safe() {
    let server = RedisServer::start();
    testkit::next_is_cancel_safe(queue(&server).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_consumer_loses_nothing() {
    let server = RedisServer::start();
    testkit::dropping_a_consumer_loses_nothing(queue(&server).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_lost_or_duplicated() {
    let server = RedisServer::start();
    testkit::nothing_lost_or_duplicated(queue(&server).await, 3, 4, 500).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settle() {
    let server = RedisServer::start();
    let queue = queue(&server).await;
    testkit::settle(queue).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumers_offer_no_spawner() {
    let server = RedisServer::start();
    let consumer = queue(&server).await.consumer().unwrap();
    assert!(consumer.spawner().is_none());
}
