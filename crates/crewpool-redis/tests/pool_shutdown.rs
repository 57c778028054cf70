//! A pool on a Redis queue. Graceful shutdown: fetching stops, running jobs finish and
//! are acknowledged, prefetched ones go back to Redis unstarted; with a deadline,
//! interrupted jobs go back too, without counting an attempt. Ids: `spawn` returns the
//! id Redis assigned.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crewpool_core::testkit::{CountingWaker, poll_once};
use crewpool_core::{Consumer, Delivery, Queue, Worker};
use crewpool_redis::testing::RedisServer;
use crewpool_redis::{RedisConfig, RedisQueue};
use crewpool_runtime::{Pool, PoolBuilder};
use support::HANG_GUARD;
use tokio::sync::{Notify, Semaphore};

const WORKERS: usize = 4;
const JOBS: u64 = 40;

struct Gate {
    started: AtomicUsize,
    all_started: Notify,
    open: Semaphore,
}

/// A pool of `WORKERS` on a queue of `JOBS` (prefetch 10), once every worker is
/// running a job held at the gate; and the queue's configuration, for an inspector.
async fn gated_pool(
    server: &RedisServer,
) -> (
    Pool<RedisQueue<u64>, impl Worker<u64> + use<>>,
    Arc<Gate>,
    RedisConfig,
) {
    let config = RedisConfig::new(server.url(), "shutdown").prefetch(10);
    let queue = RedisQueue::<u64>::connect(config.clone()).await.unwrap();
    queue.enqueue_bulk(0..JOBS).await.unwrap();
    let gate = Arc::new(Gate {
        started: AtomicUsize::new(0),
        all_started: Notify::new(),
        open: Semaphore::new(0),
    });
    let worker_gate = Arc::clone(&gate);
    let pool = PoolBuilder::new()
        .workers(WORKERS)
        .queue(queue)
        .build(move |_n: u64| {
            let gate = Arc::clone(&worker_gate);
            async move {
                if gate.started.fetch_add(1, Ordering::SeqCst) + 1 == WORKERS {
                    gate.all_started.notify_one();
                }
                let _permit = gate.open.acquire().await.map_err(|e| e.to_string())?;
                Ok::<(), String>(())
            }
        })
        .unwrap();
    tokio::time::timeout(HANG_GUARD, gate.all_started.notified())
        .await
        .expect("hang guard");
    (pool, gate, config)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_running_jobs_and_returns_prefetched_ones() {
    let server = RedisServer::start();
    let (pool, gate, config) = gated_pool(&server).await;
    // The first poll of `shutdown` closes the queue; then the running jobs may finish.
    let mut stopping = std::pin::pin!(pool.shutdown());
    let (_, waker) = CountingWaker::new();
    assert!(poll_once(stopping.as_mut(), &waker).is_pending());
    assert!(!pool.is_open());
    gate.open.add_permits(WORKERS);
    let report = tokio::time::timeout(HANG_GUARD, stopping)
        .await
        .expect("hang guard");
    assert_eq!(report.stats.completed, WORKERS as u64);
    assert_eq!(
        gate.started.load(Ordering::SeqCst),
        WORKERS,
        "nothing new started"
    );

    // Shutdown returned after the prefetched jobs went back: counted, and in Redis.
    let counters = pool.queue().counters();
    assert_eq!(
        counters.released,
        counters.fetched - WORKERS as u64,
        "every job fetched and not started was released before shutdown returned"
    );
    let inspector = RedisQueue::<u64>::connect(config).await.unwrap();
    let stats = inspector.stats().await.unwrap();
    assert_eq!(stats.active, 0, "prefetched jobs were released");
    assert_eq!(stats.pending, JOBS - WORKERS as u64);
    // Released jobs are unstarted: their next delivery is still attempt 1.
    let mut consumer = inspector.consumer().unwrap();
    let next = consumer.next().await.unwrap();
    assert_eq!(next.envelope.attempt, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_with_a_deadline_returns_interrupted_jobs_unstarted() {
    let server = RedisServer::start();
    let (pool, _gate, config) = gated_pool(&server).await;
    // The jobs never finish: the deadline interrupts them.
    let report = pool.shutdown_timeout(Duration::from_millis(200)).await;
    assert_eq!(report.interrupted.len(), WORKERS);

    let inspector = RedisQueue::<u64>::connect(config).await.unwrap();
    let stats = inspector.stats().await.unwrap();
    assert_eq!(
        (stats.pending, stats.active),
        (JOBS, 0),
        "everything is back"
    );
    let mut consumer = inspector.consumer().unwrap();
    for _ in 0..JOBS {
        let received = consumer.next().await.unwrap();
        assert_eq!(received.envelope.attempt, 1, "release counts no attempt");
    }
}

/// The id `Pool::spawn` returns on a Redis queue is the one Redis assigned: the id the
/// job's worker sees in its context (not the pool's own counter).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawn_returns_the_id_the_worker_sees() {
    let server = RedisServer::start();
    let queue = RedisQueue::<u64>::connect(RedisConfig::new(server.url(), "ids"))
        .await
        .unwrap();
    // Ids taken by another producer first, so Redis's numbering and the pool's differ.
    queue.enqueue_bulk(100..103).await.unwrap();
    let (seen_tx, seen_rx) = flume::unbounded();
    let pool = PoolBuilder::new()
        .workers(2)
        .queue(queue)
        .build(crewpool_core::with_context(
            move |job: u64, cx: crewpool_core::JobContext<u64>| {
                let seen = seen_tx.clone();
                async move { seen.send((job, cx.id())).map_err(|e| e.to_string()) }
            },
        ))
        .unwrap();
    let mut spawned = Vec::new();
    for job in 0..5_u64 {
        spawned.push((job, pool.spawn(job).await.unwrap()));
    }
    let mut seen = Vec::new();
    while seen.len() < 8 {
        let next = tokio::time::timeout(HANG_GUARD, seen_rx.recv_async())
            .await
            .expect("hang guard")
            .unwrap();
        seen.push(next);
    }
    // The 3 jobs enqueued directly ran too; the pool's 5 are the ones below 100.
    seen.retain(|(job, _)| *job < 100);
    seen.sort_unstable();
    assert_eq!(seen, spawned);
    assert!(
        spawned.iter().all(|(_, id)| id.0 > 3),
        "the ids come from Redis, after the 3 enqueued first: {spawned:?}"
    );
    pool.shutdown().await;
}

/// After a pool's shutdown (which closes its queue) the queue enqueues nothing more:
/// `enqueue`, `enqueue_bulk` and `push` fail with the typed closed error, as the
/// `Queue::close` contract says, and Redis is left untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_queue_enqueues_nothing() {
    let server = RedisServer::start();
    let queue = RedisQueue::<u64>::connect(RedisConfig::new(server.url(), "closed"))
        .await
        .unwrap();
    let pool = PoolBuilder::new()
        .workers(1)
        .queue(queue)
        .build(|_n: u64| async { Ok::<_, String>(()) })
        .unwrap();
    pool.shutdown().await;
    let queue = pool.queue();
    assert!(queue.is_closed());

    let error = queue.enqueue(&1).await.unwrap_err();
    assert!(error.is_closed(), "{error:?}");
    let error = queue.enqueue_bulk([2_u64, 3]).await.unwrap_err();
    assert!(error.is_closed(), "{error:?}");
    match queue.push(crewpool_core::Envelope::new(4)).await {
        Err(crewpool_core::PushError::Closed(envelope)) => assert_eq!(envelope.job, 4),
        other => panic!("expected Closed, got {other:?}"),
    }
    // A future made before the close fails too: the check is made when it runs.
    let other = RedisQueue::<u64>::connect(RedisConfig::new(server.url(), "closed"))
        .await
        .unwrap();
    let pending = other.enqueue(&5);
    other.close();
    assert!(pending.await.unwrap_err().is_closed());

    assert_eq!(
        server
            .cli(&[
                "EXISTS",
                "crewpool:{closed}:pending",
                "crewpool:{closed}:seq"
            ])
            .trim(),
        "0",
        "nothing reached Redis"
    );
}

/// Once its queue is closed, a consumer takes nothing more from the process's buffer
/// of prefetched jobs: they go back to Redis unstarted, so a pool's shutdown starts no
/// new job, however its workers and the fetcher's release interleave. (One thread,
/// so the consumer asks before the fetcher has run since the close.)
#[tokio::test(flavor = "current_thread")]
async fn a_closed_queue_hands_out_nothing_more_from_its_buffer() {
    let server = RedisServer::start();
    let config = RedisConfig::new(server.url(), "closing").prefetch(8);
    let queue = RedisQueue::<u64>::connect(config.clone()).await.unwrap();
    queue.enqueue_bulk(0..10_u64).await.unwrap();
    let mut consumer = queue.consumer().unwrap();
    let first = consumer.next().await.unwrap();
    assert!(
        queue.counters().fetched > 1,
        "the fetch took jobs ahead into the buffer"
    );
    queue.close();
    assert!(
        consumer.try_next().is_none(),
        "a buffered job was handed out after the close"
    );
    first.delivery.ack().await.unwrap();
    assert!(
        tokio::time::timeout(HANG_GUARD, consumer.next())
            .await
            .expect("hang guard")
            .is_none(),
        "next ends once the buffer went back"
    );
    let inspector = RedisQueue::<u64>::connect(config).await.unwrap();
    let stats = inspector.stats().await.unwrap();
    assert_eq!((stats.pending, stats.active), (9, 0), "the rest is back");
}
