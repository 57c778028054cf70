//! Leases, heartbeats and fencing tokens, against a private redis-server.

mod support;

use std::time::{Duration, Instant};

use crewpool_core::{Consumer, Delivery, Queue, QueueError};
use crewpool_redis::testing::RedisServer;
use crewpool_redis::{Error, RedisQueue};
use support::{HANG_GUARD, confirmed};

async fn connect(server: &RedisServer, lease: Duration, heartbeat: Duration) -> RedisQueue<u64> {
    // Confirmed acknowledgements: these tests look at each settlement's outcome.
    let config = confirmed(server.url(), "leases")
        .lease(lease)
        .heartbeat(heartbeat);
    RedisQueue::connect(config).await.expect("connect")
}

fn lease_lost(error: &QueueError) -> bool {
    matches!(error, QueueError::Backend(source)
        if matches!(source.downcast_ref::<Error>(), Some(Error::LeaseLost(_))))
}

/// Makes a delivery's lease (its fetch's, whose number is the delivery's token)
/// expire now, as if its holder had stalled for the whole lease.
fn expire(server: &RedisServer, token: u64) {
    server.cli(&[
        "ZADD",
        "crewpool:{leases}:active",
        "XX",
        "0",
        &token.to_string(),
    ]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zombie_cannot_settle_or_extend_a_job_someone_else_took() {
    let server = RedisServer::start();
    // Heartbeats far apart: the zombie's own heartbeat must not run during the test.
    let zombie = connect(&server, Duration::from_secs(60), Duration::from_secs(50)).await;
    let rescuer = connect(&server, Duration::from_secs(60), Duration::from_secs(50)).await;
    let id = zombie.enqueue(&5).await.unwrap();

    let mut zombie_consumer = zombie.consumer().unwrap();
    let stale = zombie_consumer.next().await.unwrap();
    assert_eq!((stale.envelope.id, stale.envelope.attempt), (id, 1));
    expire(&server, stale.delivery.token());

    let mut rescuer_consumer = rescuer.consumer().unwrap();
    let fresh = rescuer_consumer.next().await.unwrap();
    assert_eq!((fresh.envelope.id, fresh.envelope.attempt), (id, 2));
    assert_ne!(stale.delivery.token(), fresh.delivery.token());

    // The zombie's heartbeat finds the lease lost and does not extend the new one.
    let lease = fresh.delivery.token().to_string();
    let before = server.cli(&["ZSCORE", "crewpool:{leases}:active", &lease]);
    assert_eq!(zombie.extend_leases().await.unwrap(), 1, "one lease lost");
    let after = server.cli(&["ZSCORE", "crewpool:{leases}:active", &lease]);
    assert_eq!(
        before, after,
        "a zombie's heartbeat must not move the new lease"
    );

    // Its ack is refused, and the job is still the rescuer's.
    let refused = stale.delivery.ack().await.unwrap_err();
    assert!(lease_lost(&refused), "expected LeaseLost, got {refused}");
    assert_eq!(rescuer.stats().await.unwrap().active, 1);
    assert_eq!(zombie.counters().stale, 1);

    fresh.delivery.ack().await.unwrap();
    let stats = rescuer.stats().await.unwrap();
    assert_eq!((stats.pending, stats.active, stats.dead), (0, 0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zombie_cannot_retry_dead_letter_or_release() {
    let server = RedisServer::start();
    let queue = connect(&server, Duration::from_secs(60), Duration::from_secs(50)).await;
    for job in 0..3 {
        queue.enqueue(&job).await.unwrap();
    }
    let mut consumer = queue.consumer().unwrap();
    let mut stale = Vec::new();
    for _ in 0..3 {
        stale.push(consumer.next().await.unwrap());
    }
    for received in &stale {
        expire(&server, received.delivery.token());
    }
    let stale: Vec<_> = stale
        .into_iter()
        .map(|received| received.delivery)
        .collect();
    // Taking the jobs back (another fetch) hands them out under new tokens.
    let mut fresh = Vec::new();
    for _ in 0..3 {
        fresh.push(consumer.next().await.unwrap());
    }
    let mut stale = stale.into_iter();
    let retry = stale.next().unwrap().retry(Duration::ZERO, "zombie").await;
    let dead = stale.next().unwrap().dead_letter("zombie").await;
    let release = stale.next().unwrap().release().await;
    for outcome in [retry, dead, release] {
        let error = outcome.unwrap_err();
        assert!(lease_lost(&error), "expected LeaseLost, got {error}");
    }
    let stats = queue.stats().await.unwrap();
    assert_eq!(
        (stats.pending, stats.active, stats.delayed, stats.dead),
        (0, 3, 0, 0),
        "the zombie changed nothing"
    );
    for received in fresh {
        assert_eq!(received.envelope.attempt, 2);
        received.delivery.ack().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_keep_a_long_job_leased() {
    let server = RedisServer::start();
    let lease = Duration::from_millis(300);
    let holder = connect(&server, lease, Duration::from_millis(60)).await;
    let other = connect(&server, lease, Duration::from_millis(60)).await;
    holder.enqueue(&1).await.unwrap();
    let mut consumer = holder.consumer().unwrap();
    let received = consumer.next().await.unwrap();

    // The other process is idle and would take the job back the moment its lease
    // expired; the job "runs" for four lease lengths.
    let mut other_consumer = other.consumer().unwrap();
    let raced = tokio::time::timeout(lease * 4, other_consumer.next()).await;
    assert!(
        raced.is_err(),
        "the job was taken from a live holder: {raced:?}"
    );

    // It was the heartbeat: four lease lengths after the fetch, the lease's deadline
    // in Redis is still ahead of Redis's clock.
    let deadline: u64 = server
        .cli(&[
            "ZSCORE",
            "crewpool:{leases}:active",
            &received.delivery.token().to_string(),
        ])
        .trim()
        .parse()
        .expect("the lease is still in Redis");
    let time = server.cli(&["TIME"]);
    let mut time = time.lines().map(|part| part.trim().parse::<u64>().unwrap());
    let now_ms = time.next().unwrap() * 1000 + time.next().unwrap() / 1000;
    assert!(deadline > now_ms, "deadline {deadline} passed at {now_ms}");
    received.delivery.ack().await.unwrap();
    assert_eq!(other.counters().recovered, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_delivery_comes_back_after_its_lease_as_the_next_attempt() {
    let server = RedisServer::start();
    let lease = Duration::from_millis(400);
    let queue = connect(&server, lease, Duration::from_millis(80)).await;
    let id = queue.enqueue(&9).await.unwrap();
    let mut consumer = queue.consumer().unwrap();
    let received = consumer.next().await.unwrap();
    let dropped = Instant::now();
    drop(received);

    let again = tokio::time::timeout(HANG_GUARD, consumer.next())
        .await
        .expect("hang guard")
        .unwrap();
    let waited = dropped.elapsed();
    assert_eq!((again.envelope.id, again.envelope.attempt), (id, 2));
    assert!(
        waited >= lease - Duration::from_millis(100),
        "back after {waited:?}"
    );
    println!("dropped delivery back after {waited:?} (lease {lease:?})");
    again.delivery.ack().await.unwrap();
    assert_eq!(queue.counters().recovered, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_delivery_comes_back_while_the_rest_of_its_fetch_is_held() {
    let server = RedisServer::start();
    let lease = Duration::from_millis(400);
    // A prefetch of two: both jobs usually come in one fetch, under one lease; now and
    // then the fetcher takes them in two calls (two leases), and the case under test
    // does not arise: then try again on a fresh queue (a few times at most).
    let mut tries = 0;
    let (queue, mut consumer, ids, dropped_one, held) = loop {
        tries += 1;
        let config = confirmed(server.url(), format!("leases{tries}"))
            .lease(lease)
            .heartbeat(Duration::from_millis(80))
            .prefetch(2);
        let queue = RedisQueue::<u64>::connect(config).await.unwrap();
        let ids = queue.enqueue_bulk([1_u64, 2]).await.unwrap();
        let mut consumer = queue.consumer().unwrap();
        let first = consumer.next().await.unwrap();
        let second = consumer.next().await.unwrap();
        if first.delivery.token() == second.delivery.token() {
            break (queue, consumer, ids, first, second);
        }
        assert!(tries < 5, "never were both jobs fetched under one lease");
        first.delivery.ack().await.unwrap();
        second.delivery.ack().await.unwrap();
    };

    // The held delivery keeps the fetch's lease alive; the dropped one must still
    // come back, one lease later, as its next attempt.
    let dropped = Instant::now();
    drop(dropped_one);
    let again = tokio::time::timeout(lease * 10, consumer.next())
        .await
        .expect("the dropped job never came back")
        .unwrap();
    let waited = dropped.elapsed();
    assert_eq!((again.envelope.id, again.envelope.attempt), (ids[0], 2));
    assert!(
        waited >= lease - Duration::from_millis(100),
        "back after {waited:?}"
    );
    // The other job was never taken from its live holder.
    held.delivery.ack().await.unwrap();
    again.delivery.ack().await.unwrap();
    assert_eq!(queue.counters().recovered, 1);
    assert_eq!(queue.counters().leases_lost, 0);
    assert_eq!(queue.stats().await.unwrap(), Default::default());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_keeps_killing_its_worker_is_dead_lettered() {
    let server = RedisServer::start();
    let config = confirmed(server.url(), "leases")
        .lease(Duration::from_secs(60))
        .retry(crewpool_redis::RetryPolicy::exponential(2));
    let queue = RedisQueue::<u64>::connect(config).await.unwrap();
    let id = queue.enqueue(&3).await.unwrap();
    let mut consumer = queue.consumer().unwrap();
    for attempt in 1..=2 {
        let received = consumer.next().await.unwrap();
        assert_eq!(received.envelope.attempt, attempt);
        // The worker "dies": its lease expires unsettled.
        expire(&server, received.delivery.token());
        drop(received);
    }
    assert_eq!(queue.recover_expired().await.unwrap(), (0, 1));
    let dead = queue.dead_letters(10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!((dead[0].id, dead[0].attempt), (id, 2));
    assert!(
        dead[0].reason.contains("lease expired"),
        "{}",
        dead[0].reason
    );
    assert_eq!(dead[0].job.as_ref().ok(), Some(&3));
}

/// A caller that hears its acknowledgement's outcome reads counters that include it.
///
/// The acker settles a whole flush in one script call and then answers each caller; if
/// it answered before counting, a caller woken by its answer could read counters that
/// do not include its own ack yet. To make that window wide and reliable, the runtime's
/// only worker thread (where the acker runs) is held until every ack is queued, so one
/// flush carries them all, and this test (on the runtime's own `block_on` thread) is
/// woken by the first answer while the acker still answers the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn an_ack_is_counted_before_its_caller_hears_of_it() {
    const ROUNDS: u64 = 3;
    const PER_ROUND: u64 = 1000;
    let server = RedisServer::start();
    let config = confirmed(server.url(), "counted")
        .lease(Duration::from_secs(60))
        .prefetch(1000);
    let queue = RedisQueue::<u64>::connect(config).await.unwrap();
    queue.enqueue_bulk(0..ROUNDS * PER_ROUND).await.unwrap();
    let mut consumer = queue.consumer().unwrap();
    for round in 0..ROUNDS {
        let mut deliveries = Vec::new();
        for _ in 0..PER_ROUND {
            match tokio::time::timeout(HANG_GUARD, consumer.next()).await {
                Ok(Some(received)) => deliveries.push(received.delivery),
                other => panic!("no job: {other:?}"),
            }
        }
        let before = queue.counters().acked;
        // Hold the worker thread so the acker cannot start a flush before every ack
        // of this round is queued.
        let (hold, held) = std::sync::mpsc::channel::<()>();
        let (parked_tx, parked) = std::sync::mpsc::channel::<()>();
        let blocker = tokio::spawn(async move {
            parked_tx.send(()).unwrap();
            // Blocking on purpose: this is what keeps the acker off the thread.
            let _ = held.recv();
        });
        parked.recv().unwrap();
        let mut acks: Vec<_> = deliveries.into_iter().map(|d| d.ack()).collect();
        let count = acks.len() as u64;
        let first = acks.remove(0);
        drop(hold);
        tokio::time::timeout(HANG_GUARD, first)
            .await
            .expect("hang guard")
            .unwrap();
        let seen = queue.counters().acked - before;
        assert!(
            seen >= 1,
            "round {round}: an ack was answered, but counters show {seen} of the {count} acks of its flush"
        );
        for ack in acks {
            ack.await.unwrap();
        }
        blocker.await.unwrap();
        assert_eq!(queue.counters().acked - before, count);
    }
}

/// A replica promoted by a failover may lack the last increments of the lease counter
/// (replication is asynchronous). Simulated by setting the counter back: the next
/// lease must still get a token no delivery had, or a stale holder of the first
/// could settle the second's job.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_counter_set_back_by_a_failover_issues_no_token_twice() {
    let server = RedisServer::start();
    let config = confirmed(server.url(), "fence")
        .batch_size(1)
        .lease(Duration::from_secs(60))
        .heartbeat(Duration::from_secs(50));
    let queue = RedisQueue::<u64>::connect(config).await.unwrap();
    queue.enqueue(&1).await.unwrap();
    queue.enqueue(&2).await.unwrap();
    let mut consumer = queue.consumer().unwrap();
    let first = consumer.next().await.unwrap();
    let token = first.delivery.token();
    let fence = server.cli(&["GET", "crewpool:{fence}:fence"]);
    assert_eq!(fence.trim(), token.to_string());
    // The promoted replica saw every increment but the last.
    server.cli(&["SET", "crewpool:{fence}:fence", &(token - 1).to_string()]);
    let second = consumer.next().await.unwrap();
    assert_ne!(second.delivery.token(), token, "a token issued twice");
    assert!(second.delivery.token() > token);
    first.delivery.ack().await.unwrap();
    second.delivery.ack().await.unwrap();
    assert_eq!(queue.stats().await.unwrap(), Default::default());
}
