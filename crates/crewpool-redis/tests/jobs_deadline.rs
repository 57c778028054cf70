//! Job deadlines: a job not started by its deadline is dead-lettered with the reason
//! "expired" instead of running, whether it expired in Redis, while scheduled, or in a
//! worker process's buffer; one started in time runs.

mod support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crewpool_core::{Consumer, Delivery, Queue};
use crewpool_redis::testing::RedisServer;
use crewpool_redis::{Admin, JobOptions, JobState, RedisQueue};
use support::{HANG_GUARD, confirmed, redis_now, until};

async fn next<C: Consumer>(consumer: &mut C) -> crewpool_core::Received<C::Job, C::Delivery> {
    tokio::time::timeout(HANG_GUARD, consumer.next())
        .await
        .expect("a job within the hang guard")
        .expect("the queue is open")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_past_its_deadline_is_dead_lettered_not_run() {
    let server = RedisServer::start();
    let queue = RedisQueue::<u64>::connect(confirmed(server.url(), "late"))
        .await
        .unwrap();
    let past = SystemTime::now() - Duration::from_secs(1);
    let expired = queue
        .enqueue_with(&1, &JobOptions::new().start_by(past))
        .await
        .unwrap()
        .id();
    let in_time = queue
        .enqueue_with(
            &2,
            &JobOptions::new().start_within(Duration::from_secs(3600)),
        )
        .await
        .unwrap()
        .id();
    let mut consumer = queue.consumer().unwrap();
    let received = next(&mut consumer).await;
    assert_eq!(received.envelope.id, in_time, "the expired job never runs");
    received.delivery.ack().await.unwrap();

    let stats = queue.stats().await.unwrap();
    assert_eq!((stats.pending, stats.active, stats.dead), (0, 0, 1));
    let dead = queue.dead_letters(10).await.unwrap();
    assert_eq!((dead[0].id, dead[0].reason.as_str()), (expired, "expired"));
    let admin = Admin::connect(server.url(), "crewpool").await.unwrap();
    let overview = admin.queue("late").unwrap().overview().await.unwrap();
    assert_eq!((overview.missed_deadline, overview.failed), (1, 0));
    assert_eq!(queue.counters().missed_deadline, 1);
}

/// A scheduled job's window counts from its due time: due in 200 ms, to start within
/// 100 ms of that; no worker runs until well after, so it expires.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_job_must_start_within_its_window() {
    let server = RedisServer::start();
    let queue = RedisQueue::<u64>::connect(confirmed(server.url(), "window"))
        .await
        .unwrap();
    let options = JobOptions::new()
        .delay(Duration::from_millis(200))
        .start_within(Duration::from_millis(100));
    let before = redis_now(&server);
    let id = queue.enqueue_with(&1, &options).await.unwrap().id();
    let admin = Admin::connect(server.url(), "crewpool").await.unwrap();
    let scheduled = admin
        .queue("window")
        .unwrap()
        .jobs(JobState::Scheduled, 0, 1)
        .await
        .unwrap();
    let start_by = scheduled.jobs[0].start_by_ms.unwrap();
    let due = scheduled.jobs[0].due_at_ms.unwrap();
    assert_eq!(start_by, due + 100);
    assert!(due >= before + 200);
    until("the window to pass", || redis_now(&server) > start_by).await;

    let mut consumer = queue.consumer().unwrap();
    queue.enqueue(&2).await.unwrap();
    let received = next(&mut consumer).await;
    assert_eq!(received.envelope.job, 2);
    received.delivery.ack().await.unwrap();
    let dead = queue.dead_letters(10).await.unwrap();
    assert_eq!((dead[0].id, dead[0].reason.as_str()), (id, "expired"));
}

/// A job fetched in time but left waiting in a worker process's buffer past its
/// deadline is dead-lettered when a worker would take it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_expires_in_the_buffer_does_not_run() {
    let server = RedisServer::start();
    let queue = RedisQueue::<u64>::connect(confirmed(server.url(), "buffer").prefetch(10))
        .await
        .unwrap();
    let deadline_ms = redis_now(&server) + 400;
    queue.enqueue(&1).await.unwrap();
    let short = queue
        .enqueue_with(
            &2,
            &JobOptions::new().start_by(UNIX_EPOCH + Duration::from_millis(deadline_ms)),
        )
        .await
        .unwrap()
        .id();
    let mut consumer = queue.consumer().unwrap();
    let first = next(&mut consumer).await;
    assert_eq!(first.envelope.job, 1);
    // Both were fetched in one batch: the second waits in this process's buffer.
    assert_eq!(queue.stats().await.unwrap().active, 2);
    until("the deadline to pass", || redis_now(&server) > deadline_ms).await;
    queue.enqueue(&3).await.unwrap();
    let next_job = next(&mut consumer).await;
    assert_eq!(
        next_job.envelope.job, 3,
        "the expired job is not handed out"
    );
    first.delivery.ack().await.unwrap();
    next_job.delivery.ack().await.unwrap();
    let dead = queue.dead_letters(10).await.unwrap();
    assert_eq!((dead[0].id, dead[0].reason.as_str()), (short, "expired"));
    assert_eq!(queue.stats().await.unwrap().active, 0);
}
