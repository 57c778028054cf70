//! Priority levels: strict and weighted order, the weighted order's no-starvation
//! bound, a job's level kept through retries, releases, expired leases and dead
//! letters, idle workers woken for any level, several worker processes.

mod support;

use std::collections::HashMap;
use std::time::Duration;

use crewpool_core::{Consumer, Delivery, Queue};
use crewpool_redis::testing::RedisServer;
use crewpool_redis::{JobOptions, JobState, Priorities, RedisQueue, RetryPolicy};
use support::{HANG_GUARD, WorkerProcess, confirmed, until};

async fn next<C: Consumer>(consumer: &mut C) -> crewpool_core::Received<C::Job, C::Delivery> {
    tokio::time::timeout(HANG_GUARD, consumer.next())
        .await
        .expect("a job within the hang guard")
        .expect("the queue is open")
}

/// Enqueues `count` jobs at `level`, each job its level.
async fn fill(queue: &RedisQueue<u8>, level: u8, count: usize) {
    queue
        .enqueue_bulk_with(vec![level; count], &JobOptions::new().priority(level))
        .await
        .unwrap();
}

/// The levels of every job, in the order one consumer receives them (batches of
/// `batch`, acknowledged as they come).
async fn drain(queue: &RedisQueue<u8>, total: usize) -> Vec<u8> {
    let mut consumer = queue.consumer().unwrap();
    let mut order = Vec::with_capacity(total);
    for _ in 0..total {
        let received = next(&mut consumer).await;
        assert_eq!(received.delivery.priority(), received.envelope.job);
        order.push(received.envelope.job);
        received.delivery.ack().await.unwrap();
    }
    order
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_order_takes_the_highest_level_first() {
    let server = RedisServer::start();
    let queue = RedisQueue::<u8>::connect(confirmed(server.url(), "strict").batch_size(7))
        .await
        .unwrap();
    fill(&queue, 0, 20).await;
    fill(&queue, 5, 20).await;
    fill(&queue, 9, 20).await;
    assert_eq!(queue.stats().await.unwrap().pending, 60);
    let order = drain(&queue, 60).await;
    let expected: Vec<u8> = [9; 20].into_iter().chain([5; 20]).chain([0; 20]).collect();
    assert_eq!(order, expected);
}

/// Checks the documented bound of the weighted order on a pick sequence: while a level
/// has jobs, at most (W - w) / w + (L - 1) jobs of other levels are taken between two
/// of its own, W being the total weight and L the number of the levels that have jobs
/// meanwhile. All jobs are enqueued before the first is taken here, so levels only
/// ever leave: the levels with jobs at a level's last pick are the ones to count.
fn check_bound(order: &[u8], weights: &HashMap<u8, u32>, counts: &HashMap<u8, usize>) {
    let mut left: HashMap<u8, usize> = counts.clone();
    // Per level: jobs of others taken since its last pick, and the bound then.
    let mut waits: HashMap<u8, (usize, usize)> = HashMap::new();
    let bound_of = |level: u8, left: &HashMap<u8, usize>| {
        // The level itself counts as having jobs (once it has none, it is not checked).
        let active: Vec<u8> = left
            .iter()
            .filter(|&(&l, &n)| n > 0 || l == level)
            .map(|(&l, _)| l)
            .collect();
        let total: u32 = active.iter().map(|l| weights[l]).sum();
        let w = weights[&level];
        ((total - w) / w) as usize + active.len() - 1
    };
    for &level in counts.keys() {
        waits.insert(level, (0, bound_of(level, &left)));
    }
    for (i, &level) in order.iter().enumerate() {
        for (&other, (waited, bound)) in &mut waits {
            if other == level || left[&other] == 0 {
                continue;
            }
            *waited += 1;
            assert!(
                *waited <= *bound,
                "level {other} (weight {}) waited {waited} jobs at position {i}, bound {bound}; \
                 weights {weights:?}, order {order:?}",
                weights[&other]
            );
        }
        *left.get_mut(&level).unwrap() -= 1;
        let bound = bound_of(level, &left);
        waits.insert(level, (0, bound));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weighted_order_follows_the_weights_and_starves_no_level() {
    let server = RedisServer::start();
    let config = confirmed(server.url(), "weighted")
        .batch_size(10)
        .priorities(Priorities::weighted([(2, 6), (1, 3), (0, 1)]));
    let queue = RedisQueue::<u8>::connect(config).await.unwrap();
    for level in 0..3 {
        fill(&queue, level, 100).await;
    }
    let order = drain(&queue, 300).await;
    // The first 100 jobs: 60, 30 and 10 of levels 2, 1 and 0.
    let mut first = [0; 3];
    for &level in &order[..100] {
        first[level as usize] += 1;
    }
    assert_eq!(first, [10, 30, 60], "{order:?}");
    let weights = HashMap::from([(0, 1), (1, 3), (2, 6)]);
    let counts = HashMap::from([(0, 100), (1, 100), (2, 100)]);
    check_bound(&order, &weights, &counts);
}

/// A level that had no jobs for a while saves no credit: when it gets jobs again it
/// shares by weight with the others at once instead of taking its "missed" turns in a
/// row (which would starve the others).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_level_that_was_empty_saves_no_credit() {
    let server = RedisServer::start();
    let config = confirmed(server.url(), "rejoin")
        .batch_size(5)
        .priorities(Priorities::weighted([(0, 1), (5, 1)]));
    let queue = RedisQueue::<u8>::connect(config).await.unwrap();
    fill(&queue, 5, 10).await;
    fill(&queue, 0, 300).await;
    // Level 5 empties early; level 0 goes on alone for a while.
    let before = drain(&queue, 200).await;
    assert_eq!(before.iter().filter(|&&l| l == 5).count(), 10);
    fill(&queue, 5, 50).await;
    let after = drain(&queue, 160).await;
    let weights = HashMap::from([(0, 1), (5, 1)]);
    let counts = HashMap::from([(0, 110), (5, 50)]);
    check_bound(&after, &weights, &counts);
}

/// The bound, for random weights, levels, sizes and batch sizes: the real script in a
/// real Redis, driven by a xorshift generator whose seed is printed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_weighted_bound_holds_for_random_weights() {
    let server = RedisServer::start();
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    println!("seed {seed}");
    let mut state = seed;
    let mut random = move |n: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % n
    };
    for round in 0..8 {
        let levels: Vec<u8> = (0..10).filter(|_| random(2) == 0).collect();
        let levels = if levels.len() < 2 { vec![0, 9] } else { levels };
        let weights: HashMap<u8, u32> = (0..10)
            .map(|level| (level, 1 + random(20) as u32))
            .collect();
        let counts: HashMap<u8, usize> = levels
            .iter()
            .map(|&level| (level, 5 + random(60) as usize))
            .collect();
        let config = confirmed(server.url(), format!("random-{round}"))
            .batch_size(1 + random(30) as usize)
            .priorities(Priorities::weighted(weights.iter().map(|(&l, &w)| (l, w))));
        let queue = RedisQueue::<u8>::connect(config).await.unwrap();
        for (&level, &count) in &counts {
            fill(&queue, level, count).await;
        }
        let total = counts.values().sum();
        let order = drain(&queue, total).await;
        let weights: HashMap<u8, u32> = weights
            .into_iter()
            .filter(|(l, _)| counts.contains_key(l))
            .collect();
        check_bound(&order, &weights, &counts);
    }
}

/// A job keeps its level through a retry, a release, an expired lease and a dead
/// letter with its requeue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_keeps_its_level() {
    let server = RedisServer::start();
    let config = confirmed(server.url(), "keep")
        .lease(Duration::from_millis(300))
        .retry(
            RetryPolicy::exponential(4)
                .base_delay(Duration::from_millis(10))
                .max_delay(Duration::from_millis(10))
                .jitter(false),
        );
    let queue = RedisQueue::<u8>::connect(config).await.unwrap();
    let admin = crewpool_redis::Admin::connect(server.url(), "crewpool")
        .await
        .unwrap();
    let view = admin.queue("keep").unwrap();
    fill(&queue, 4, 1).await;
    let mut consumer = queue.consumer().unwrap();

    // A retry (through the delayed set) comes back at level 4.
    let first = next(&mut consumer).await;
    assert_eq!((first.delivery.priority(), first.envelope.attempt), (4, 1));
    first.delivery.fail("once").await.unwrap();
    let delayed = view.jobs(JobState::Delayed, 0, 10).await.unwrap();
    if let Some(job) = delayed.jobs.first() {
        assert_eq!(job.priority, 4);
    }
    let second = next(&mut consumer).await;
    assert_eq!(
        (second.delivery.priority(), second.envelope.attempt),
        (4, 2)
    );
    // Released: back at the front of level 4, shown there.
    second.delivery.release().await.unwrap();
    let pending = view.jobs(JobState::Pending, 0, 10).await.unwrap();
    assert_eq!(pending.jobs[0].priority, 4);
    assert_eq!(view.overview().await.unwrap().pending_by_level[4], 1);
    // Dropped unsettled: its lease expires and it comes back at level 4.
    let third = next(&mut consumer).await;
    assert_eq!(third.envelope.attempt, 2);
    drop(third);
    let fourth = next(&mut consumer).await;
    assert_eq!(
        (fourth.delivery.priority(), fourth.envelope.attempt),
        (4, 3)
    );
    // Dead-lettered, then requeued: level 4 again.
    fourth.delivery.dead_letter("enough").await.unwrap();
    let dead = view.jobs(JobState::Dead, 0, 10).await.unwrap();
    assert_eq!(dead.jobs[0].priority, 4);
    assert_eq!(queue.requeue_all_dead().await.unwrap(), 1);
    fill(&queue, 0, 1).await;
    let fifth = next(&mut consumer).await;
    assert_eq!((fifth.delivery.priority(), fifth.envelope.attempt), (4, 1));
    fifth.delivery.ack().await.unwrap();
    next(&mut consumer).await.delivery.ack().await.unwrap();
    assert_eq!(queue.stats().await.unwrap(), Default::default());
}

/// An idle worker blocked on the level-0 list wakes at once for a job of another level
/// (its wait renewed only every two minutes, far beyond the hang guard).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_worker_wakes_for_any_level() {
    let server = RedisServer::start();
    let config = confirmed(server.url(), "wake").max_block(Duration::from_secs(120));
    let queue = RedisQueue::<u8>::connect(config).await.unwrap();
    let mut consumer = queue.consumer().unwrap();
    let waiting = tokio::spawn(async move {
        let received = consumer.next().await.unwrap();
        let job = received.envelope.job;
        received.delivery.ack().await.unwrap();
        job
    });
    until("the fetcher blocking in Redis", || {
        server
            .cli(&["INFO", "clients"])
            .contains("blocked_clients:1")
    })
    .await;
    let producer = RedisQueue::<u8>::connect(confirmed(server.url(), "wake"))
        .await
        .unwrap();
    fill(&producer, 7, 1).await;
    let job = tokio::time::timeout(HANG_GUARD, waiting)
        .await
        .expect("the idle worker was not woken for a level-7 job")
        .unwrap();
    assert_eq!(job, 7);
    // The wake marker is no job: nothing is left, and it is not counted.
    assert_eq!(producer.stats().await.unwrap(), Default::default());
}

/// Several worker processes with the weighted order: every job of every level runs
/// once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_processes_run_every_level() {
    let server = RedisServer::start();
    let url = server.url();
    let producer = RedisQueue::<u8>::connect(confirmed(url.as_str(), "levels"))
        .await
        .unwrap();
    for level in [0, 3, 9] {
        fill(&producer, level, 50).await;
    }
    let workers: Vec<WorkerProcess> = (0..3)
        .map(|_| {
            WorkerProcess::spawn_with(
                &url,
                "levels",
                4,
                1000,
                "normal",
                &[("CREWPOOL_TEST_WEIGHTS", "9:5,3:2")],
            )
        })
        .collect();
    until("every job to run", || {
        server.cli(&["HLEN", "levels:test:ids"]).trim() == "150"
    })
    .await;
    let runs = server.cli(&["HGETALL", "levels:test:runs"]);
    let counts: Vec<&str> = runs.lines().skip(1).step_by(2).collect();
    assert_eq!(counts, ["50", "50", "50"], "runs by job value: {runs}");
    drop(workers);
}
