//! A connection that stalls mid-command (half-open TCP: the peer went silent, nothing
//! is refused or reset), made by a proxy on loopback: the worker is held up no longer
//! than its time-outs, then goes on over a new connection.

use std::time::{Duration, Instant};

use crewpool_core::{Consumer, Delivery, Queue};
use crewpool_redis::testing::RedisServer;
use crewpool_redis::testing::net::Proxy;
use crewpool_redis::{RedisConfig, RedisQueue};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_connection_holds_the_worker_no_longer_than_its_time_outs() {
    let server = RedisServer::start();
    let proxy = Proxy::start(
        format!("127.0.0.1:{}", server.port()).parse().unwrap(),
        Duration::ZERO,
    );
    let response = Duration::from_millis(500);
    let block = Duration::from_millis(1000);
    let config = RedisConfig::new(format!("redis://{}", proxy.addr()), "stall")
        .response_timeout(response)
        .max_block(block);
    let queue = RedisQueue::<u64>::connect(config).await.unwrap();
    let producer = RedisQueue::<u64>::connect(RedisConfig::new(server.url(), "stall"))
        .await
        .unwrap();
    let mut consumer = queue.consumer().unwrap();
    producer.enqueue(&1).await.unwrap();
    let first = consumer.next().await.unwrap();
    first.delivery.ack().await.unwrap();

    // Every connection the worker has goes silent: the one its fetcher blocks on, and
    // the one its calls share.
    let stalled = proxy.stall_open();
    assert!(stalled >= 2, "{stalled} connections open");
    let started = Instant::now();
    producer.enqueue(&2).await.unwrap();
    // Without replacing a timed-out connection this waits forever: a hang guard.
    let second = tokio::time::timeout(Duration::from_secs(60), consumer.next())
        .await
        .expect("the worker is still held up after 60 s")
        .unwrap();
    assert_eq!(second.envelope.job, 2);
    second.delivery.ack().await.unwrap();
    let held = started.elapsed();
    println!(
        "stalled connections: the worker went on after {held:?} (response time-out {response:?}, max block {block:?}), {} connections made",
        proxy.accepted()
    );
    // Bounded by the time-outs (with backoff and scheduling slack), not by the stall.
    assert!(held < 4 * (response + block), "held up for {held:?}");
}
