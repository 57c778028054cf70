//! Scheduled jobs: due times on Redis's clock, promotion inside Redis, idle workers
//! woken for an earlier job, survival across a Redis restart, several worker processes.

mod support;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crewpool_core::{Consumer, Delivery, Queue};
use crewpool_redis::testing::RedisServer;
use crewpool_redis::{JobOptions, JobState, RedisQueue};
use support::{HANG_GUARD, WorkerProcess, confirmed, redis_now, until};

fn blocked(server: &RedisServer) -> u64 {
    let info = server.cli(&["INFO", "clients"]);
    info.lines()
        .find_map(|line| line.strip_prefix("blocked_clients:"))
        .and_then(|value| value.trim().parse().ok())
        .unwrap()
}

/// Receives the next job within the hang guard.
async fn next<C: Consumer>(consumer: &mut C) -> crewpool_core::Received<C::Job, C::Delivery> {
    tokio::time::timeout(HANG_GUARD, consumer.next())
        .await
        .expect("a job within the hang guard")
        .expect("the queue is open")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_runs_at_its_time_not_before() {
    let server = RedisServer::start();
    let queue = RedisQueue::<u64>::connect(confirmed(server.url(), "later"))
        .await
        .unwrap();
    let before = redis_now(&server);
    let id = queue
        .enqueue_in(&7, Duration::from_millis(400))
        .await
        .unwrap();
    let stats = queue.stats().await.unwrap();
    assert_eq!((stats.pending, stats.scheduled), (0, 1), "{stats:?}");

    let mut consumer = queue.consumer().unwrap();
    let received = next(&mut consumer).await;
    let started = redis_now(&server);
    assert_eq!((received.envelope.id, received.envelope.job), (id, 7));
    // Due 400 ms after Redis received it, which was after `before`.
    assert!(
        started >= before + 400,
        "started at {started}, scheduled at {before}"
    );
    received.delivery.ack().await.unwrap();
    assert_eq!(queue.stats().await.unwrap(), Default::default());

    // An absolute time in the past is due at once; one in the future waits.
    let past = SystemTime::now() - Duration::from_secs(60);
    queue.enqueue_at(&1, past).await.unwrap();
    assert_eq!(queue.stats().await.unwrap().pending, 1);
    let due = UNIX_EPOCH + Duration::from_millis(redis_now(&server) + 300);
    queue.enqueue_at(&2, due).await.unwrap();
    let first = next(&mut consumer).await;
    assert_eq!(first.envelope.job, 1);
    first.delivery.ack().await.unwrap();
    let second = next(&mut consumer).await;
    assert_eq!(second.envelope.job, 2);
    assert!(redis_now(&server) >= redis_ms(due));
    second.delivery.ack().await.unwrap();
}

fn redis_ms(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

/// An idle worker blocked in Redis (its timer set for a job an hour away, its wait
/// renewed only every two minutes) wakes at once when an earlier job is scheduled, and
/// runs it at its time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_worker_wakes_for_an_earlier_job() {
    let server = RedisServer::start();
    let config = confirmed(server.url(), "wake").max_block(Duration::from_secs(120));
    let queue = RedisQueue::<u64>::connect(config).await.unwrap();
    queue
        .enqueue_in(&1, Duration::from_secs(3600))
        .await
        .unwrap();
    let mut consumer = queue.consumer().unwrap();
    let waiting = tokio::spawn(async move {
        let received = consumer.next().await.unwrap();
        let job = received.envelope.job;
        received.delivery.ack().await.unwrap();
        job
    });
    until("the fetcher blocking in Redis", || blocked(&server) == 1).await;

    let producer = RedisQueue::<u64>::connect(confirmed(server.url(), "wake"))
        .await
        .unwrap();
    let scheduled = Instant::now();
    producer
        .enqueue_in(&2, Duration::from_millis(300))
        .await
        .unwrap();
    // Without the wake-up the worker would sleep for its hour-long timer or its
    // two-minute wait; the hang guard (a minute) is far below both.
    let job = tokio::time::timeout(HANG_GUARD, waiting)
        .await
        .expect("the idle worker was not woken for the earlier job")
        .unwrap();
    assert_eq!(job, 2);
    println!(
        "scheduled 300 ms ahead, ran after {:?}",
        scheduled.elapsed()
    );
    assert_eq!(
        producer.stats().await.unwrap().scheduled,
        1,
        "the hour-long one"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_scheduled_jobs_are_counted_and_all_run() {
    let server = RedisServer::start();
    let queue = RedisQueue::<u64>::connect(confirmed(server.url(), "bulk"))
        .await
        .unwrap();
    let ids = queue
        .enqueue_bulk_in(0..2500_u64, Duration::from_millis(300))
        .await
        .unwrap();
    assert_eq!(ids.len(), 2500);
    let at = SystemTime::now() + Duration::from_millis(200);
    queue.enqueue_bulk_at(2500..2600_u64, at).await.unwrap();
    assert_eq!(queue.stats().await.unwrap().scheduled, 2600);

    let admin = crewpool_redis::Admin::connect(server.url(), "crewpool")
        .await
        .unwrap();
    let page = admin
        .queue("bulk")
        .unwrap()
        .jobs(JobState::Scheduled, 0, 5)
        .await
        .unwrap();
    assert_eq!(page.total, 2600);
    assert!(page.jobs.iter().all(|job| job.due_at_ms.is_some()));

    let mut consumer = queue.consumer().unwrap();
    let mut seen = vec![false; 2600];
    for _ in 0..2600 {
        let received = next(&mut consumer).await;
        seen[received.envelope.job as usize] = true;
        received.delivery.ack().await.unwrap();
    }
    assert!(seen.iter().all(|&s| s));
    assert_eq!(queue.stats().await.unwrap(), Default::default());
}

/// Due scheduled jobs go to the front of the queue: on a busy queue they run before
/// the backlog that was already waiting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_due_job_goes_before_the_backlog() {
    let server = RedisServer::start();
    let queue = RedisQueue::<u64>::connect(confirmed(server.url(), "front"))
        .await
        .unwrap();
    queue
        .enqueue_in(&999, Duration::from_millis(1))
        .await
        .unwrap();
    let scheduled = redis_now(&server);
    until("the job to be due", || redis_now(&server) > scheduled + 1).await;
    queue.enqueue_bulk(0..100_u64).await.unwrap();
    let mut consumer = queue.consumer().unwrap();
    let first = next(&mut consumer).await;
    assert_eq!(first.envelope.job, 999);
    first.delivery.ack().await.unwrap();
}

/// Scheduled jobs are in Redis, not in a process: they survive a Redis restart (AOF)
/// and a producer that is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_jobs_survive_a_redis_restart() {
    let mut server = RedisServer::builder().aof(true).start();
    {
        let producer = RedisQueue::<u64>::connect(confirmed(server.url(), "durable"))
            .await
            .unwrap();
        producer
            .enqueue_bulk_in(0..10_u64, Duration::from_millis(500))
            .await
            .unwrap();
    }
    server.kill();
    server.restart();
    let queue = RedisQueue::<u64>::connect(
        confirmed(server.url(), "durable").connect_retry_for(Duration::from_secs(30)),
    )
    .await
    .unwrap();
    assert_eq!(queue.stats().await.unwrap().scheduled, 10);
    let mut consumer = queue.consumer().unwrap();
    for _ in 0..10 {
        next(&mut consumer).await.delivery.ack().await.unwrap();
    }
}

/// Several worker processes share scheduled jobs: each runs once, none before its due
/// time by Redis's clock (each process records Redis's clock when it starts a job).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_processes_run_scheduled_jobs_once_and_never_early() {
    let server = RedisServer::start();
    let url = server.url();
    let workers: Vec<WorkerProcess> = (0..3)
        .map(|_| WorkerProcess::spawn(&url, "many", 4, 1000, "normal"))
        .collect();
    for worker in &workers {
        worker.wait_for("ready", |line| line == "ready");
    }
    let producer = RedisQueue::<u64>::connect(confirmed(url.as_str(), "many"))
        .await
        .unwrap();
    // Each job's value is its due time, so the test can compare.
    let now = redis_now(&server);
    let mut due = Vec::new();
    for i in 0..60_u64 {
        let at = now + 200 + (i * 37) % 1500;
        let id = producer
            .enqueue_with(
                &at,
                &JobOptions::new().at(UNIX_EPOCH + Duration::from_millis(at)),
            )
            .await
            .unwrap()
            .id();
        due.push((id.0, at));
    }
    until("every job to run", || {
        server.cli(&["HLEN", "many:test:ids"]).trim() == "60"
    })
    .await;
    for (id, at) in due {
        let runs = server.cli(&["HGET", "many:test:ids", &id.to_string()]);
        assert_eq!(runs.trim(), "1", "job {id} ran {runs} times");
        let started: u64 = server
            .cli(&["HGET", "many:test:started", &id.to_string()])
            .trim()
            .parse()
            .unwrap();
        assert!(started >= at, "job {id} started at {started}, due at {at}");
    }
    drop(workers);
}
