//! Pause, resume and the rate limit, for every process at once: paused workers finish
//! what they hold, fetch nothing and do not poll; a resume wakes them at once (long
//! before their blocking wait would end); the rate limit holds for the jobs leased by
//! several connections and several worker processes together, and a worker it holds
//! back sleeps instead of asking again.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use crewpool_core::{Consumer, Delivery, Queue};
use crewpool_redis::testing::RedisServer;
use crewpool_redis::{Admin, RateLimit, RedisQueue};
use support::{HANG_GUARD, WorkerProcess, confirmed, until};

/// Longer than any test here waits for a wake-up: a worker that only noticed a resume
/// when its blocking wait ran out would fail the test.
const LONG_BLOCK: Duration = Duration::from_secs(30);

/// How long the tests watch for something that must not happen (a job taken while
/// paused, a fetch loop).
const WATCH: Duration = Duration::from_millis(500);

async fn connect(url: &str, queue: &str) -> RedisQueue<u64> {
    RedisQueue::<u64>::connect(confirmed(url, queue).max_block(LONG_BLOCK))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_holds_every_fetch_and_resume_wakes_at_once() {
    let server = RedisServer::start();
    let queue = Arc::new(connect(&server.url(), "paused").await);
    let mut consumer = queue.consumer().unwrap();
    let waiter = tokio::spawn(async move {
        let received = consumer.next().await.expect("the queue is open");
        let job = received.envelope.job;
        received.delivery.ack().await.unwrap();
        job
    });
    // The fetcher found nothing and blocks in Redis.
    until("the first fetch", || queue.counters().fetch_calls >= 1).await;

    assert!(queue.pause().await.unwrap());
    assert!(!queue.pause().await.unwrap(), "already paused");
    let stats = queue.stats().await.unwrap();
    assert!(stats.paused);

    // The push wakes the blocked fetcher; its fetch sees the pause and takes nothing.
    let before = queue.counters().fetch_calls;
    queue.enqueue(&7).await.unwrap();
    until("the fetch the push woke", || {
        queue.counters().fetch_calls > before
    })
    .await;
    let stats = queue.stats().await.unwrap();
    assert_eq!((stats.pending, stats.active), (1, 0), "{stats:?}");

    // Paused with a job pending, the fetcher waits without polling.
    let calls = queue.counters().fetch_calls;
    tokio::time::sleep(WATCH).await;
    assert!(
        queue.counters().fetch_calls <= calls + 1,
        "a paused fetcher fetched {} times in {WATCH:?}",
        queue.counters().fetch_calls - calls
    );
    assert!(!waiter.is_finished(), "a job was taken while paused");

    let resumed = Instant::now();
    assert!(queue.resume().await.unwrap());
    assert!(!queue.resume().await.unwrap(), "already running");
    let job = tokio::time::timeout(LONG_BLOCK / 2, waiter)
        .await
        .expect("the resume wakes the worker before its wait runs out")
        .unwrap();
    assert_eq!(job, 7);
    assert!(resumed.elapsed() < LONG_BLOCK / 2);
    assert!(!queue.stats().await.unwrap().paused);
}

/// A fetcher that learnt of the pause while idle blocks on the resume, not on the
/// (non-empty) queue; one that learnt of it with a job pending too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_paused_before_the_worker_starts_waits_for_the_resume() {
    let server = RedisServer::start();
    let queue = connect(&server.url(), "paused-early").await;
    queue.pause().await.unwrap();
    queue.enqueue_bulk([1, 2, 3]).await.unwrap();
    let mut consumer = queue.consumer().unwrap();
    let next = tokio::time::timeout(WATCH, consumer.next()).await;
    assert!(next.is_err(), "a job was taken while paused");
    let calls = queue.counters().fetch_calls;
    assert!(calls <= 2, "{calls} fetches while paused");

    queue.resume().await.unwrap();
    for expected in 1..=3 {
        let received = tokio::time::timeout(LONG_BLOCK / 2, consumer.next())
            .await
            .expect("the resume wakes the worker")
            .expect("the queue is open");
        assert_eq!(received.envelope.job, expected);
        received.delivery.ack().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_workers_finish_what_they_hold() {
    let server = RedisServer::start();
    let queue =
        RedisQueue::<u64>::connect(confirmed(server.url(), "held").batch_size(1).prefetch(0))
            .await
            .unwrap();
    queue.enqueue_bulk([1, 2]).await.unwrap();
    let mut consumer = queue.consumer().unwrap();
    let held = consumer.next().await.unwrap();
    queue.pause().await.unwrap();
    // Its lease stays extended and its acknowledgement is taken.
    queue.extend_leases().await.unwrap();
    held.delivery.ack().await.unwrap();
    let stats = queue.stats().await.unwrap();
    assert_eq!((stats.pending, stats.active), (1, 0), "{stats:?}");
    assert!(
        tokio::time::timeout(WATCH, consumer.next()).await.is_err(),
        "a job was taken while paused"
    );
    queue.resume().await.unwrap();
    let received = tokio::time::timeout(HANG_GUARD, consumer.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(received.envelope.job, 2);
    received.delivery.ack().await.unwrap();
}

/// The operator's view: pause and resume through [`Admin`], the overview says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_pauses_resumes_and_limits() {
    let server = RedisServer::start();
    let queue = connect(&server.url(), "admin-paused").await;
    let admin = Admin::connect(server.url(), "crewpool").await.unwrap();
    let view = admin.queue("admin-paused").unwrap();
    assert!(!view.overview().await.unwrap().paused);
    assert!(view.pause().await.unwrap());
    let overview = view.overview().await.unwrap();
    assert!(overview.paused);
    let since = overview.paused_since_ms.expect("when it was paused");
    assert!(since <= overview.now_ms && since + 60_000 > overview.now_ms);
    assert!(queue.stats().await.unwrap().paused);

    let limit = RateLimit::new(50, Duration::from_secs(2)).unwrap();
    assert!(view.set_rate_limit(Some(limit)).await.unwrap());
    assert!(
        !view.set_rate_limit(Some(limit)).await.unwrap(),
        "unchanged"
    );
    assert_eq!(queue.stats().await.unwrap().rate_limit, Some(limit));
    assert_eq!(view.overview().await.unwrap().rate_limit, Some(limit));

    assert!(view.resume().await.unwrap());
    assert!(view.set_rate_limit(None).await.unwrap());
    let overview = view.overview().await.unwrap();
    assert!(!overview.paused && overview.paused_since_ms.is_none());
    assert_eq!(overview.rate_limit, None);
}

#[test]
fn a_rate_limit_needs_jobs_and_a_period() {
    assert!(RateLimit::new(0, Duration::from_secs(1)).is_err());
    assert!(RateLimit::new(1, Duration::from_micros(999)).is_err());
    let limit = RateLimit::new(3, Duration::from_millis(1500)).unwrap();
    assert_eq!(
        (limit.jobs(), limit.per()),
        (3, Duration::from_millis(1500))
    );
}

/// Three connections (each its own fetcher, as in three processes) take jobs under one
/// limit: the times Redis stamped on their leases show at most `jobs` in any window of
/// `per`, and a fetcher the limit holds back sleeps instead of asking again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rate_limit_holds_across_connections() {
    const JOBS: u32 = 5;
    const PER: Duration = Duration::from_millis(400);
    const TOTAL: u64 = 30;
    let server = RedisServer::start();
    let url = server.url();
    let producer = connect(&url, "limited").await;
    producer
        .set_rate_limit(Some(RateLimit::new(JOBS, PER).unwrap()))
        .await
        .unwrap();
    producer.enqueue_bulk(0..TOTAL).await.unwrap();

    let mut tasks = Vec::new();
    let mut queues = Vec::new();
    let (taken, mut times) = tokio::sync::mpsc::unbounded_channel();
    for _ in 0..3 {
        let queue = Arc::new(
            RedisQueue::<u64>::connect(
                confirmed(url.as_str(), "limited")
                    .max_block(LONG_BLOCK)
                    .prefetch(0),
            )
            .await
            .unwrap(),
        );
        queues.push(Arc::clone(&queue));
        let taken = taken.clone();
        let leases = "crewpool:{limited}:leases";
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let mut recorder = redis::Client::open(url.as_str())
                .unwrap()
                .get_multiplexed_async_connection()
                .await
                .unwrap();
            let mut consumer = queue.consumer().unwrap();
            while let Some(received) = consumer.next().await {
                // When Redis leased it (the lease is held until the ack below).
                let at: u64 = redis::cmd("HGET")
                    .arg(leases)
                    .arg(format!("{}:t", received.delivery.token()))
                    .query_async(&mut recorder)
                    .await
                    .unwrap();
                received.delivery.ack().await.unwrap();
                if taken.send(at).is_err() {
                    break;
                }
            }
        }));
    }
    drop(taken);
    let mut stamps = Vec::new();
    while stamps.len() < TOTAL as usize {
        let at = tokio::time::timeout(HANG_GUARD, times.recv())
            .await
            .expect("every job within the hang guard")
            .expect("the consumers run");
        stamps.push(at);
    }
    stamps.sort_unstable();
    let per = PER.as_millis() as u64;
    for (i, window) in stamps.windows(JOBS as usize + 1).enumerate() {
        assert!(
            window[JOBS as usize] - window[0] >= per,
            "jobs {i}..={} leased within {} ms: {stamps:?}",
            i + JOBS as usize,
            window[JOBS as usize] - window[0]
        );
    }
    // With no prefetch, every job taken is a fetch of its own (TOTAL); besides those,
    // sleeping until the window frees, each of the three fetchers asks a few times per
    // window at most (woken by the window, by a push, by its worker): far from the
    // thousands a fetcher that polled would send.
    let windows = TOTAL / u64::from(JOBS) + 2;
    let calls: u64 = queues.iter().map(|q| q.counters().fetch_calls).sum();
    println!("{calls} fetches for {TOTAL} jobs in {windows} windows");
    assert!(
        calls <= TOTAL + 3 * 4 * windows,
        "{calls} fetches for {TOTAL} jobs in {windows} windows"
    );
    for queue in &queues {
        queue.close();
    }
    for task in tasks {
        task.abort();
    }
}

/// Three worker processes under one limit: the starts they record stay within it
/// (with a margin for the time between a lease and the job's start).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rate_limit_holds_for_three_worker_processes() {
    const JOBS: usize = 10;
    const PER_MS: u64 = 1000;
    const MARGIN_MS: u64 = 250;
    const TOTAL: usize = 40;
    let server = RedisServer::start();
    let url = server.url();
    let producer = connect(&url, "limited-procs").await;
    producer
        .set_rate_limit(Some(
            RateLimit::new(JOBS as u32, Duration::from_millis(PER_MS)).unwrap(),
        ))
        .await
        .unwrap();
    let workers: Vec<WorkerProcess> = (0..3)
        .map(|_| WorkerProcess::spawn(&url, "limited-procs", 4, 1000, "normal"))
        .collect();
    for worker in &workers {
        worker.wait_for("ready", |line| line == "ready");
    }
    producer.enqueue_bulk(0..TOTAL as u64).await.unwrap();
    until("every job to run", || {
        server.cli(&["HLEN", "limited-procs:test:ids"]).trim() == TOTAL.to_string()
    })
    .await;
    let started = server.cli(&["HVALS", "limited-procs:test:started"]);
    let mut starts: Vec<u64> = started
        .split_whitespace()
        .map(|ms| ms.parse().unwrap())
        .collect();
    assert_eq!(starts.len(), TOTAL);
    starts.sort_unstable();
    for window in starts.windows(JOBS + 1) {
        assert!(
            window[JOBS] - window[0] >= PER_MS - MARGIN_MS,
            "{} jobs started within {} ms: {starts:?}",
            JOBS + 1,
            window[JOBS] - window[0]
        );
    }
    drop(workers);
}

/// Three worker processes stop taking jobs together when the queue is paused, and all
/// start again at once on the resume.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_processes_pause_and_resume_together() {
    let server = RedisServer::start();
    let url = server.url();
    let producer = connect(&url, "paused-procs").await;
    let block = LONG_BLOCK.as_millis().to_string();
    let workers: Vec<WorkerProcess> = (0..3)
        .map(|_| {
            WorkerProcess::spawn_with(
                &url,
                "paused-procs",
                2,
                1000,
                "normal",
                &[("CREWPOOL_TEST_MAX_BLOCK_MS", &block)],
            )
        })
        .collect();
    for worker in &workers {
        worker.wait_for("ready", |line| line == "ready");
    }
    producer.enqueue_bulk(0..10).await.unwrap();
    until("the first jobs to run", || {
        server.cli(&["HLEN", "paused-procs:test:ids"]).trim() == "10"
    })
    .await;

    producer.pause().await.unwrap();
    producer.enqueue_bulk(10..40).await.unwrap();
    tokio::time::sleep(WATCH).await;
    assert_eq!(
        server.cli(&["HLEN", "paused-procs:test:ids"]).trim(),
        "10",
        "jobs ran while paused"
    );
    assert_eq!(producer.stats().await.unwrap().pending, 30);

    let resumed = Instant::now();
    producer.resume().await.unwrap();
    until("every job to run", || {
        server.cli(&["HLEN", "paused-procs:test:ids"]).trim() == "40"
    })
    .await;
    assert!(
        resumed.elapsed() < LONG_BLOCK / 2,
        "the workers waited for their blocking wait to run out"
    );
    // Each job once.
    let runs = server.cli(&["HVALS", "paused-procs:test:runs"]);
    assert!(runs.split_whitespace().all(|n| n == "1"), "{runs}");
    drop(workers);
}
