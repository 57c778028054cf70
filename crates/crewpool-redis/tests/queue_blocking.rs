//! Idle workers block in Redis (no polling loop) and pick a new job up within
//! milliseconds; fetches and acknowledgements are batched.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crewpool_core::{Consumer, Delivery, Queue};
use crewpool_redis::testing::RedisServer;
use crewpool_redis::{RedisConfig, RedisQueue};
use crewpool_runtime::PoolBuilder;
use support::HANG_GUARD;

fn info_field(server: &RedisServer, section: &str, field: &str) -> u64 {
    let info = server.cli(&["INFO", section]);
    info.lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("INFO {section} has no {field}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_workers_block_without_polling_and_wake_within_milliseconds() {
    let server = RedisServer::start();
    // A blocking wait longer than the hang guard and no lease or delayed job to wake
    // for: a pickup that needed the block to time out would trip the hang guard.
    let config = RedisConfig::new(server.url(), "idle").max_block(HANG_GUARD * 2);
    let queue = RedisQueue::<u64>::connect(config).await.unwrap();
    let producer = RedisQueue::<u64>::connect(RedisConfig::new(server.url(), "idle"))
        .await
        .unwrap();
    let mut consumer = queue.consumer().unwrap();

    let mut latencies = Vec::new();
    for round in 0..200_u64 {
        let waiting = tokio::spawn(async move {
            let received = consumer.next().await.expect("a job");
            let got = Instant::now();
            received.delivery.ack().await.expect("ack");
            (consumer, received.envelope.job, got)
        });
        if round == 0 {
            // Wait until the fetcher blocks in Redis (Redis offers no notification:
            // its client list is polled).
            let deadline = Instant::now() + HANG_GUARD;
            while info_field(&server, "clients", "blocked_clients") != 1 {
                assert!(
                    Instant::now() < deadline,
                    "no blocked fetcher within {HANG_GUARD:?}"
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            // An observation window, not a synchronisation: while idle, the worker
            // must send (next to) nothing. A polling loop would send a command every
            // few milliseconds.
            let before = info_field(&server, "stats", "total_commands_processed");
            tokio::time::sleep(Duration::from_millis(1000)).await;
            let after = info_field(&server, "stats", "total_commands_processed");
            // Only the INFO call itself.
            assert!(
                after - before <= 2,
                "{} commands while idle",
                after - before
            );
        }
        let pushed = Instant::now();
        producer.enqueue(&round).await.unwrap();
        let (back, job, got) = tokio::time::timeout(HANG_GUARD, waiting)
            .await
            .expect("hang guard")
            .unwrap();
        consumer = back;
        assert_eq!(job, round);
        latencies.push(got.duration_since(pushed));
    }
    latencies.sort();
    println!(
        "idle pickup latency over {} jobs (enqueue call to job in hand): p50 {:?}, p99 {:?}, max {:?}",
        latencies.len(),
        latencies[latencies.len() / 2],
        latencies[latencies.len() * 99 / 100],
        latencies[latencies.len() - 1]
    );
}

/// The calls of each command Redis has processed so far (`INFO commandstats`).
fn command_calls(server: &RedisServer) -> std::collections::HashMap<String, u64> {
    server
        .cli(&["INFO", "commandstats"])
        .lines()
        .filter_map(|line| {
            let (name, stats) = line.strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = stats
                .strip_prefix("calls=")?
                .split(',')
                .next()?
                .parse()
                .ok()?;
            Some((name.to_owned(), calls))
        })
        .collect()
}

/// The commands the fetch script runs inside Redis when it finds nothing to do (Redis
/// counts them in `commandstats` as well as the `EVALSHA` that ran them).
const IDLE_FETCH_INSIDE: [&str; 9] = [
    "get",
    "hmget",
    "lindex",
    "llen",
    "rpop",
    "smembers",
    "time",
    "zrange",
    "zrangebyscore",
];

/// What an idle process sends: a worker waits, nothing is queued, nothing is leased.
/// Counts the commands it sends over `window`, by name (INFO, which this test sends,
/// and the commands scripts run inside Redis excluded).
async fn idle_commands(max_block: Duration, window: Duration) -> Vec<(String, u64)> {
    let server = RedisServer::start();
    let queue =
        RedisQueue::<u64>::connect(RedisConfig::new(server.url(), "idle").max_block(max_block))
            .await
            .unwrap();
    let mut consumer = queue.consumer().unwrap();
    let waiting = tokio::spawn(async move { consumer.next().await.map(|r| r.envelope.job) });
    // Idle once the fetcher blocks in Redis (polled: Redis offers no notification).
    let deadline = Instant::now() + HANG_GUARD;
    while info_field(&server, "clients", "blocked_clients") != 1 {
        assert!(
            Instant::now() < deadline,
            "no blocked fetcher within {HANG_GUARD:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let before = command_calls(&server);
    // An observation window, not a synchronisation.
    tokio::time::sleep(window).await;
    let after = command_calls(&server);
    waiting.abort();
    let mut sent: Vec<(String, u64)> = after
        .into_iter()
        .filter(|(name, _)| name != "info" && !IDLE_FETCH_INSIDE.contains(&name.as_str()))
        .map(|(name, calls)| {
            let earlier = before.get(&name).copied().unwrap_or(0);
            (name, calls - earlier)
        })
        .filter(|&(_, calls)| calls > 0)
        .collect();
    sent.sort();
    sent
}

/// An idle process sends two commands per `max_block`: the blocking wait, renewed when
/// it times out, and the fetch (with its housekeeping) that precedes each renewal.
/// Nothing else: no heartbeat without leases, no acknowledgement flush without acks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_process_sends_two_commands_per_max_block() {
    let max_block = Duration::from_millis(500);
    let window = Duration::from_secs(3);
    let sent = idle_commands(max_block, window).await;
    let renewals = (window.as_millis() / max_block.as_millis()) as u64;
    println!("idle for {window:?} with max_block {max_block:?}: {sent:?}");
    let names: Vec<&str> = sent.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(
        names,
        ["blmove", "evalsha"],
        "only the wait and the fetch: {sent:?}"
    );
    for (name, calls) in &sent {
        assert!(
            (1..=renewals + 1).contains(calls),
            "{calls} {name} in {window:?} with max_block {max_block:?}"
        );
    }
}

/// The figure the crate docs quote: commands per second of an idle process with the
/// default `max_block` (10 s), over a minute.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a minute long; prints the idle command rate at the defaults"]
async fn idle_command_rate_at_the_defaults() {
    let window = Duration::from_secs(60);
    let sent = idle_commands(Duration::from_secs(10), window).await;
    let total: u64 = sent.iter().map(|(_, calls)| calls).sum();
    println!(
        "idle for {window:?} at the defaults: {sent:?}: {:.3} commands/s",
        total as f64 / window.as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetches_and_acks_are_batched() {
    let server = RedisServer::start();
    let queue = RedisQueue::<u64>::connect(
        RedisConfig::new(server.url(), "batched")
            .batch_size(200)
            .prefetch(200),
    )
    .await
    .unwrap();
    let jobs = 10_000_u64;
    queue.enqueue_bulk(0..jobs).await.unwrap();
    let sum = Arc::new(AtomicU64::new(0));
    let total = Arc::clone(&sum);
    let done = Arc::new((AtomicU64::new(0), tokio::sync::Notify::new()));
    let finished = Arc::clone(&done);
    let pool = PoolBuilder::new()
        .workers(16)
        .queue(queue)
        .build(move |n: u64| {
            let total = Arc::clone(&total);
            let finished = Arc::clone(&finished);
            async move {
                total.fetch_add(n, Ordering::Relaxed);
                if finished.0.fetch_add(1, Ordering::SeqCst) + 1 == jobs {
                    finished.1.notify_one();
                }
                Ok::<_, std::convert::Infallible>(())
            }
        })
        .unwrap();
    let started = Instant::now();
    // Wait until Redis holds nothing more (every job acknowledged).
    let watcher = RedisQueue::<u64>::connect(RedisConfig::new(server.url(), "batched"))
        .await
        .unwrap();
    tokio::time::timeout(HANG_GUARD, done.1.notified())
        .await
        .unwrap_or_else(|_| panic!("hang guard: {:?}", pool.stats()));
    // Graceful shutdown returns once the workers' acknowledgements are flushed.
    pool.shutdown().await;
    let elapsed = started.elapsed();
    let counters = pool.queue().counters();
    println!("{jobs} jobs in {elapsed:?}; {counters:?}");
    assert_eq!(sum.load(Ordering::Relaxed), (0..jobs).sum::<u64>());
    assert_eq!(counters.fetched, jobs);
    assert_eq!(counters.acked, jobs);
    assert_eq!(
        counters.leases_lost, 0,
        "heartbeats racing acks are not lost leases"
    );
    assert!(
        counters.fetch_calls * 20 < jobs,
        "{} fetch calls for {jobs} jobs",
        counters.fetch_calls
    );
    assert!(
        counters.ack_flushes * 5 < jobs,
        "{} ack flushes for {jobs} jobs",
        counters.ack_flushes
    );
    assert_eq!(watcher.stats().await.unwrap(), Default::default());
}
