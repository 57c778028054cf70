//! Unique jobs: a second enqueue with the same key returns the first job's id while it
//! is pending, scheduled, waiting for a retry or running; the key is released when the
//! job is acknowledged, dead-lettered (by a worker or by an expired lease) or deleted,
//! or at its TTL; concurrent enqueues from many connections add one job.

mod support;

use std::time::Duration;

use crewpool_core::{Consumer, Delivery, JobId, Queue};
use crewpool_redis::testing::RedisServer;
use crewpool_redis::{Admin, Enqueued, JobOptions, JobState, RedisQueue, RetryPolicy};
use support::{HANG_GUARD, confirmed, redis_now, until};

const HOUR: Duration = Duration::from_secs(3600);

async fn next<C: Consumer>(consumer: &mut C) -> crewpool_core::Received<C::Job, C::Delivery> {
    tokio::time::timeout(HANG_GUARD, consumer.next())
        .await
        .expect("a job within the hang guard")
        .expect("the queue is open")
}

fn unique(key: &str) -> JobOptions {
    JobOptions::new().unique(key, HOUR)
}

async fn queue(server: &RedisServer, name: &str) -> RedisQueue<u64> {
    RedisQueue::connect(
        confirmed(server.url(), name)
            .lease(Duration::from_millis(300))
            .retry(
                RetryPolicy::exponential(2)
                    .base_delay(Duration::from_millis(200))
                    .max_delay(Duration::from_millis(200))
                    .jitter(false),
            ),
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_is_held_while_its_job_is_pending_running_or_retrying() {
    let server = RedisServer::start();
    let queue = queue(&server, "held").await;
    let first = queue.enqueue_with(&1, &unique("k")).await.unwrap();
    let Enqueued::Added(id) = first else {
        panic!("{first:?}")
    };
    // Pending.
    assert_eq!(
        queue.enqueue_with(&2, &unique("k")).await.unwrap(),
        Enqueued::Duplicate(id)
    );
    // Another key is another job.
    assert!(
        queue
            .enqueue_with(&3, &unique("other"))
            .await
            .unwrap()
            .is_added()
    );
    let mut consumer = queue.consumer().unwrap();
    let running = next(&mut consumer).await;
    assert_eq!(running.envelope.id, id);
    // Running.
    assert_eq!(
        queue.enqueue_with(&4, &unique("k")).await.unwrap(),
        Enqueued::Duplicate(id)
    );
    // Waiting for its retry.
    running.delivery.fail("once").await.unwrap();
    assert_eq!(queue.stats().await.unwrap().delayed, 1);
    assert_eq!(
        queue.enqueue_with(&5, &unique("k")).await.unwrap(),
        Enqueued::Duplicate(id)
    );
    // Acknowledged: released.
    loop {
        let received = next(&mut consumer).await;
        let done = received.envelope.id == id;
        received.delivery.ack().await.unwrap();
        if done {
            break;
        }
    }
    let again = queue.enqueue_with(&6, &unique("k")).await.unwrap();
    assert!(again.is_added(), "{again:?}");
    assert_ne!(again.id(), id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_is_held_while_its_job_is_scheduled() {
    let server = RedisServer::start();
    let queue = queue(&server, "scheduled").await;
    let options = unique("report").delay(HOUR);
    let first = queue.enqueue_with(&1, &options).await.unwrap();
    assert!(first.is_added());
    assert_eq!(
        queue.enqueue_with(&2, &options).await.unwrap(),
        Enqueued::Duplicate(first.id())
    );
    // An immediate job with the key is refused too: the key names the job, whenever due.
    assert_eq!(
        queue.enqueue_with(&3, &unique("report")).await.unwrap(),
        Enqueued::Duplicate(first.id())
    );
    let stats = queue.stats().await.unwrap();
    assert_eq!((stats.scheduled, stats.pending), (1, 0));
    // Deleting the scheduled job releases its key.
    let admin = Admin::connect(server.url(), "crewpool").await.unwrap();
    let view = admin.queue("scheduled").unwrap();
    assert_eq!(view.overview().await.unwrap().unique_keys, 1);
    let keys = view.unique_keys(0, 10).await.unwrap();
    assert_eq!((keys[0].key.as_str(), keys[0].id), ("report", first.id()));
    let jobs = view.jobs(JobState::Scheduled, 0, 10).await.unwrap();
    assert_eq!(jobs.jobs[0].unique_key.as_deref(), Some("report"));
    assert_eq!(
        view.delete(JobState::Scheduled, &[first.id()])
            .await
            .unwrap(),
        1
    );
    assert!(queue.enqueue_with(&4, &options).await.unwrap().is_added());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_lettered_job_releases_its_key() {
    let server = RedisServer::start();
    let queue = queue(&server, "dead").await;
    let mut consumer = queue.consumer().unwrap();

    // Dead-lettered by its worker.
    let first = queue.enqueue_with(&1, &unique("a")).await.unwrap();
    let received = next(&mut consumer).await;
    received.delivery.dead_letter("no").await.unwrap();
    let again = queue.enqueue_with(&2, &unique("a")).await.unwrap();
    assert!(again.is_added() && again.id() != first.id());
    next(&mut consumer).await.delivery.ack().await.unwrap();

    // Out of attempts through the retry policy (two attempts).
    queue.enqueue_with(&3, &unique("b")).await.unwrap();
    for _ in 0..2 {
        next(&mut consumer)
            .await
            .delivery
            .fail("boom")
            .await
            .unwrap();
    }
    assert_eq!(queue.stats().await.unwrap().dead, 2);
    assert!(
        queue
            .enqueue_with(&4, &unique("b"))
            .await
            .unwrap()
            .is_added()
    );
    next(&mut consumer).await.delivery.ack().await.unwrap();

    // Out of attempts because its worker vanished twice (leases expired): dead-lettered
    // inside Redis by a fetch, and released there too.
    let held = queue.enqueue_with(&5, &unique("c")).await.unwrap();
    for _ in 0..2 {
        let received = next(&mut consumer).await;
        assert_eq!(received.envelope.id, held.id());
        // Dropped unsettled: its lease runs out.
        drop(received);
    }
    // The housekeeping of a fetch buries it once its lease has run out.
    let deadline = std::time::Instant::now() + HANG_GUARD;
    while queue.recover_expired().await.unwrap().1 == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the lease never expired"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(queue.stats().await.unwrap().dead, 3);
    assert!(
        queue
            .enqueue_with(&6, &unique("c"))
            .await
            .unwrap()
            .is_added()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_lapses_at_its_ttl() {
    let server = RedisServer::start();
    let queue = queue(&server, "ttl").await;
    let options = JobOptions::new().unique("short", Duration::from_millis(200));
    let first = queue.enqueue_with(&1, &options).await.unwrap();
    let set = redis_now(&server);
    assert!(!queue.enqueue_with(&2, &options).await.unwrap().is_added());
    until("the TTL to pass", || redis_now(&server) > set + 200).await;
    let second = queue.enqueue_with(&3, &options).await.unwrap();
    assert!(second.is_added(), "{second:?}");
    assert_ne!(second.id(), first.id());
    // The first job is still there, no longer holding the key; its acknowledgement
    // does not release the second's.
    let mut consumer = queue.consumer().unwrap();
    let received = next(&mut consumer).await;
    assert_eq!(received.envelope.id, first.id());
    received.delivery.ack().await.unwrap();
    assert_eq!(
        queue.enqueue_with(&4, &options).await.unwrap(),
        Enqueued::Duplicate(second.id())
    );
}

/// Many producers on their own connections race to enqueue the same key: one job.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_enqueues_add_one_job() {
    let server = RedisServer::start();
    let mut tasks = Vec::new();
    for n in 0..16_u64 {
        let url = server.url();
        tasks.push(tokio::spawn(async move {
            let queue = RedisQueue::<u64>::connect(confirmed(url, "race"))
                .await
                .unwrap();
            let mut outcomes = Vec::new();
            for i in 0..20 {
                outcomes.push(
                    queue
                        .enqueue_with(&(n * 100 + i), &JobOptions::new().unique("once", HOUR))
                        .await
                        .unwrap(),
                );
            }
            outcomes
        }));
    }
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.extend(task.await.unwrap());
    }
    let added: Vec<JobId> = outcomes
        .iter()
        .filter(|o| o.is_added())
        .map(|o| o.id())
        .collect();
    assert_eq!(added.len(), 1, "{outcomes:?}");
    assert!(outcomes.iter().all(|o| o.id() == added[0]));
    let queue = RedisQueue::<u64>::connect(confirmed(server.url(), "race"))
        .await
        .unwrap();
    assert_eq!(queue.stats().await.unwrap().pending, 1);
}
