//! Retries with exponential backoff through the delayed set, the bounded dead-letter
//! list, and requeueing dead letters.

mod support;

use std::time::{Duration, Instant};

use crewpool_core::{Consumer, Delivery, Queue};
use crewpool_redis::testing::RedisServer;
use crewpool_redis::{RedisQueue, RetryPolicy};
use support::confirmed;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_back_off_exponentially_then_dead_letter_with_the_last_error() {
    let server = RedisServer::start();
    let policy = RetryPolicy::exponential(3)
        .base_delay(Duration::from_millis(150))
        .max_delay(Duration::from_secs(5));
    let queue =
        RedisQueue::<String>::connect(confirmed(server.url(), "retry").retry(policy.clone()))
            .await
            .unwrap();
    let id = queue.enqueue(&"flaky".to_owned()).await.unwrap();
    let mut consumer = queue.consumer().unwrap();

    let mut failed_at = None;
    for attempt in 1..=3_u32 {
        let received = consumer.next().await.unwrap();
        assert_eq!(
            (received.envelope.id, received.envelope.attempt),
            (id, attempt)
        );
        if let Some((when, backoff)) = failed_at {
            // A retry never runs before its backoff (scheduled by Redis's clock).
            let waited = Instant::now().duration_since(when);
            assert!(
                waited >= backoff,
                "attempt {attempt} after {waited:?} < {backoff:?}"
            );
            println!("attempt {attempt} ran {waited:?} after the failure (backoff {backoff:?})");
        }
        if attempt < 3 {
            let stats = queue.stats().await.unwrap();
            assert_eq!(stats.active, 1);
        }
        received
            .delivery
            .fail(&format!("boom {attempt}"))
            .await
            .unwrap();
        // Jitter draws the delay from the upper half of the nominal backoff.
        failed_at = Some((
            Instant::now(),
            policy.clone().jitter(false).delay_after(attempt) / 2,
        ));
        if attempt < 3 {
            assert_eq!(
                queue.stats().await.unwrap().delayed,
                1,
                "waits in the delayed set"
            );
        }
    }
    let stats = queue.stats().await.unwrap();
    assert_eq!(
        (stats.pending, stats.active, stats.delayed, stats.dead),
        (0, 0, 0, 1)
    );
    let dead = queue.dead_letters(10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].id, id);
    assert_eq!(dead[0].attempt, 3);
    assert_eq!(dead[0].reason, "boom 3");
    assert_eq!(dead[0].job.as_deref(), Ok("flaky"));
    assert!(dead[0].at_ms > 1_600_000_000_000);

    // Requeued, it starts over as attempt 1.
    assert_eq!(queue.requeue_dead(&[id]).await.unwrap(), 1);
    let again = consumer.next().await.unwrap();
    assert_eq!((again.envelope.id, again.envelope.attempt), (id, 1));
    again.delivery.ack().await.unwrap();
    assert_eq!(queue.stats().await.unwrap(), Default::default());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_retry_uses_the_given_delay() {
    let server = RedisServer::start();
    let queue = RedisQueue::<u64>::connect(confirmed(server.url(), "retry"))
        .await
        .unwrap();
    queue.enqueue(&1).await.unwrap();
    let mut consumer = queue.consumer().unwrap();
    let received = consumer.next().await.unwrap();
    let delay = Duration::from_millis(300);
    let retried = Instant::now();
    received.delivery.retry(delay, "later").await.unwrap();
    let again = consumer.next().await.unwrap();
    let waited = retried.elapsed();
    assert_eq!(again.envelope.attempt, 2);
    assert!(waited >= delay, "ran after {waited:?}");
    println!("retry with delay {delay:?} ran after {waited:?}");
    again.delivery.ack().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dead_letter_list_is_bounded_and_requeue_all_works() {
    let server = RedisServer::start();
    let queue = RedisQueue::<u64>::connect(confirmed(server.url(), "dead").dead_letter_limit(3))
        .await
        .unwrap();
    let ids = queue.enqueue_bulk(0..5_u64).await.unwrap();
    let mut consumer = queue.consumer().unwrap();
    for (n, id) in ids.iter().enumerate() {
        let received = consumer.next().await.unwrap();
        assert_eq!(received.envelope.id, *id);
        received
            .delivery
            .dead_letter(&format!("reason {n}"))
            .await
            .unwrap();
    }
    let dead = queue.dead_letters(100).await.unwrap();
    let kept: Vec<_> = dead.iter().map(|d| (d.id, d.reason.as_str())).collect();
    assert_eq!(
        kept,
        [
            (ids[4], "reason 4"),
            (ids[3], "reason 3"),
            (ids[2], "reason 2")
        ],
        "newest first, oldest trimmed"
    );
    // The trimmed ones are gone from Redis, not just hidden: nothing leaks.
    assert_eq!(server.cli(&["LLEN", "crewpool:{dead}:dead"]).trim(), "3");

    assert_eq!(queue.requeue_all_dead().await.unwrap(), 3);
    let mut back = Vec::new();
    for _ in 0..3 {
        let received = consumer.next().await.unwrap();
        back.push(received.envelope.job);
        received.delivery.ack().await.unwrap();
    }
    assert_eq!(back, [2, 3, 4], "oldest dead letter first");
    assert_eq!(queue.stats().await.unwrap(), Default::default());
}

/// The dead-letter list is bounded by the Redis memory it takes as well as by count:
/// the oldest entries go first, the newest is always kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dead_letter_list_is_bounded_by_bytes() {
    const BOUND: usize = 64 * 1024;
    let server = RedisServer::start();
    let config = confirmed(server.url(), "deadbytes")
        .max_payload(1 << 20)
        .dead_letter_bytes(BOUND);
    let queue = RedisQueue::<String>::connect(config).await.unwrap();
    let memory = || -> usize {
        server
            .cli(&[
                "MEMORY",
                "USAGE",
                "crewpool:{deadbytes}:dead",
                "SAMPLES",
                "0",
            ])
            .trim()
            .parse()
            .unwrap()
    };
    let mut consumer = queue.consumer().unwrap();
    // 100 dead letters of about 4 KiB: 400 KiB unbounded.
    let ids = queue
        .enqueue_bulk((0..100).map(|n| format!("{n:03}{}", "x".repeat(4000))))
        .await
        .unwrap();
    for _ in &ids {
        let received = consumer.next().await.unwrap();
        received
            .delivery
            .dead_letter("too big to care")
            .await
            .unwrap();
    }
    let kept = queue.stats().await.unwrap().dead;
    assert!(
        memory() <= BOUND,
        "{} bytes in {kept} dead letters",
        memory()
    );
    assert!((10..100).contains(&kept), "{kept} dead letters kept");
    let newest = queue.dead_letters(1).await.unwrap();
    assert_eq!(newest[0].id, ids[99], "the newest is kept");
    println!(
        "{kept} of 100 dead letters kept in {} bytes (bound {BOUND})",
        memory()
    );

    // One dead letter larger than the whole bound is kept alone.
    let huge = queue.enqueue(&"y".repeat(200 * 1024)).await.unwrap();
    let received = consumer.next().await.unwrap();
    received.delivery.dead_letter("huge").await.unwrap();
    let dead = queue.dead_letters(10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].id, huge);
}

/// An ACL user without the `MEMORY` command still dead-letters jobs: only the count
/// bound applies then.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_without_the_memory_command_keep_the_count_bound() {
    let server = RedisServer::builder()
        .arg("--user")
        .arg("limited")
        .arg("on")
        .arg(">limited-pass")
        .arg("~*")
        .arg("&*")
        .arg("+@all")
        .arg("-memory")
        .start();
    let config = confirmed(server.url_for("limited", "limited-pass"), "nomemory")
        .dead_letter_limit(2)
        .dead_letter_bytes(1);
    let queue = RedisQueue::<u64>::connect(config).await.unwrap();
    let ids = queue.enqueue_bulk(0..3_u64).await.unwrap();
    let mut consumer = queue.consumer().unwrap();
    for _ in &ids {
        let received = consumer.next().await.unwrap();
        received.delivery.dead_letter("no memory").await.unwrap();
    }
    let dead = queue.dead_letters(10).await.unwrap();
    let kept: Vec<_> = dead.iter().map(|d| d.id).collect();
    assert_eq!(kept, [ids[2], ids[1]]);
}
