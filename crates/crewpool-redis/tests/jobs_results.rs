//! Results back to the producer: a pool's `submit` on a Redis queue returns a handle
//! that resolves with the job's output, or its final error after retries, when a
//! worker process finishes it; the result is stored under the job's id with a TTL; a
//! handle can be awaited with a timeout; a producer that stopped waiting or died
//! leaves nothing behind beyond the TTL.

mod support;

use std::time::Duration;

use crewpool_core::Worker;
use crewpool_redis::testing::RedisServer;
use crewpool_redis::{Admin, JobOptions, RedisConfig, RedisQueue, RetryPolicy};
use crewpool_runtime::{JobError, Pool, PoolBuilder, SubmitError};
use support::{HANG_GUARD, WorkerProcess, until};

/// What the test worker process returns: twice the job, and its process id.
type Output = (u64, u32);

/// The retry policy of every process here: 3 attempts, 10 ms apart.
fn retry() -> RetryPolicy {
    RetryPolicy::exponential(3)
        .base_delay(Duration::from_millis(10))
        .max_delay(Duration::from_millis(10))
}

/// A producer's pool (a pool has at least one worker, so it may run jobs too): its
/// worker does what the test worker process does, slower, so the worker processes
/// run most jobs; the results say which process ran each.
async fn producer(
    url: &str,
    queue: &str,
    config: impl FnOnce(RedisConfig) -> RedisConfig,
) -> Pool<RedisQueue<u64>, impl Worker<u64, Output = Output, Error = String>> {
    let queue = RedisQueue::<u64>::connect(config(RedisConfig::new(url, queue).retry(retry())))
        .await
        .unwrap()
        .with_results::<Output, String>();
    PoolBuilder::new()
        .workers(1)
        .queue(queue)
        .build(|job: u64| async move {
            if job % 2 == 1 {
                return Err(format!("odd {job}"));
            }
            // A job that takes a while.
            tokio::time::sleep(Duration::from_millis(200)).await;
            Ok::<_, String>((2 * job, std::process::id()))
        })
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_resolves_with_the_result_from_a_worker_process() {
    let server = RedisServer::start();
    let url = server.url();
    let workers: Vec<WorkerProcess> = (0..2)
        .map(|_| WorkerProcess::spawn(&url, "results", 4, 1000, "normal"))
        .collect();
    for worker in &workers {
        worker.wait_for("ready", |line| line == "ready");
    }
    let pool = producer(&url, "results", |c| c).await;
    let mut handles = Vec::new();
    for job in (0..80_u64).step_by(2) {
        handles.push((job, pool.submit(job).await.unwrap()));
    }
    let mut remote = 0;
    for (job, handle) in handles {
        let id = handle.id();
        let (doubled, pid) = tokio::time::timeout(HANG_GUARD, handle)
            .await
            .expect("the result within the hang guard")
            .expect("the job succeeded");
        assert_eq!(doubled, 2 * job);
        if pid != std::process::id() {
            remote += 1;
            // Stored under the job's id, with a TTL.
            let key = format!("crewpool:{{results}}:result:{}", id.0);
            let ttl: i64 = server.cli(&["PTTL", &key]).trim().parse().unwrap();
            assert!(ttl > 0 && ttl <= 3_600_000, "{key}: {ttl}");
        }
    }
    assert!(remote > 0, "no job ran in a worker process");
    assert_eq!(pool.queue().awaiting_results(), 0, "every waiter served");
    pool.shutdown().await;
    drop(workers);
}

/// A job that fails every attempt: its handle resolves with the last attempt's error,
/// once the retries are spent, whichever processes ran the attempts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_final_error_after_retries_comes_back() {
    let server = RedisServer::start();
    let url = server.url();
    let worker = WorkerProcess::spawn_with(
        &url,
        "failing",
        4,
        1000,
        "fail-odd",
        &[("CREWPOOL_TEST_ATTEMPTS", "3")],
    );
    worker.wait_for("ready", |line| line == "ready");
    let pool = producer(&url, "failing", |c| c).await;
    let odd = pool.submit(7).await.unwrap();
    let even = pool.submit(8).await.unwrap();
    let outcome = tokio::time::timeout(HANG_GUARD, odd).await.unwrap();
    assert!(
        matches!(&outcome, Err(JobError::Failed(error)) if error == "odd 7"),
        "{outcome:?}"
    );
    // Dead-lettered after its third attempt (the result is stored first, then the
    // dead letter).
    until("the dead letter", || {
        server.cli(&["LLEN", "crewpool:{failing}:dead"]).trim() == "1"
    })
    .await;
    let dead = pool.queue().dead_letters(10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!((dead[0].attempt, dead[0].reason.as_str()), (3, "odd 7"));
    let even = tokio::time::timeout(HANG_GUARD, even).await.unwrap();
    assert_eq!(even.unwrap().0, 16);
    pool.shutdown().await;
}

/// A handle can be awaited with a timeout; the result, stored later, still reaches
/// the handle awaited again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handle_awaited_with_a_timeout() {
    let server = RedisServer::start();
    let url = server.url();
    let admin = Admin::connect(url.as_str(), "crewpool").await.unwrap();
    let control = admin.queue("late").unwrap();
    control.pause().await.unwrap(); // nobody runs it yet
    let pool = producer(&url, "late", |c| c).await;
    let mut handle = pool.submit(20).await.unwrap();
    let waited = tokio::time::timeout(Duration::from_millis(300), &mut handle).await;
    assert!(waited.is_err(), "a result while nobody ran the job");
    control.resume().await.unwrap();
    let (doubled, _) = tokio::time::timeout(HANG_GUARD, handle)
        .await
        .expect("the result once the job ran")
        .unwrap();
    assert_eq!(doubled, 40);
    pool.shutdown().await;
}

/// Without the result type, `submit` is refused with the job back: a handle that
/// could never resolve is never made.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_without_a_result_type_is_refused() {
    let server = RedisServer::start();
    let queue = RedisQueue::<u64>::connect(RedisConfig::new(server.url(), "untyped"))
        .await
        .unwrap();
    let pool = PoolBuilder::new()
        .workers(1)
        .queue(queue)
        .build(|job: u64| async move { Ok::<_, String>(job) })
        .unwrap();
    match pool.submit(5).await {
        Err(error) => {
            let reason = error
                .backend_error::<crewpool_redis::Error>()
                .expect("the queue's error");
            assert!(
                matches!(reason, crewpool_redis::Error::Config(_)),
                "{reason}"
            );
            assert!(reason.to_string().contains("with_results"), "{reason}");
            assert!(matches!(error, SubmitError::Backend { .. }), "{error:?}");
            assert_eq!(error.into_inner(), 5, "the job comes back");
        }
        Ok(_) => panic!("a handle without a result type"),
    }
    pool.shutdown().await;
}

/// A producer that died before its job ran leaves nothing behind beyond the TTL: the
/// worker stores the result and pushes it to the producer's channel, and both keys
/// expire.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_nobody_waits_for_expire() {
    let server = RedisServer::start();
    let url = server.url();
    let admin = Admin::connect(url.as_str(), "crewpool").await.unwrap();
    let control = admin.queue("gone").unwrap();
    control.pause().await.unwrap();
    let pool = producer(&url, "gone", |c| c).await;
    let id = pool.submit(4).await.unwrap().id(); // the handle is dropped at once
    pool.shutdown().await; // the producer is gone
    let worker = WorkerProcess::spawn_with(
        &url,
        "gone",
        2,
        1000,
        "normal",
        &[("CREWPOOL_TEST_RESULT_TTL_MS", "1000")],
    );
    worker.wait_for("ready", |line| line == "ready");
    control.resume().await.unwrap();
    worker.wait_for("the job done", |line| line.starts_with("done "));
    let result = format!("crewpool:{{gone}}:result:{}", id.0);
    let channels = || server.cli(&["--scan", "--pattern", "crewpool:{gone}:replies:*"]);
    until("the result stored", || {
        server.cli(&["EXISTS", &result]).trim() == "1"
    })
    .await;
    assert_eq!(channels().lines().count(), 1, "the producer's channel");
    until("the result and the channel to expire", || {
        server.cli(&["EXISTS", &result]).trim() == "0" && channels().trim().is_empty()
    })
    .await;
}

/// A producer that wants every result of what it enqueued, without a handle per job:
/// jobs enqueued with `JobOptions::result` come back on the handle's results stream,
/// from the worker processes that ran them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_results_stream_serves_every_result() {
    let server = RedisServer::start();
    let url = server.url();
    let worker = WorkerProcess::spawn_with(
        &url,
        "stream",
        4,
        1000,
        "fail-odd",
        &[("CREWPOOL_TEST_ATTEMPTS", "2")],
    );
    worker.wait_for("ready", |line| line == "ready");
    let producer = RedisQueue::<u64>::connect(RedisConfig::new(url.as_str(), "stream"))
        .await
        .unwrap()
        .with_results::<Output, String>();
    let mut results = producer.results::<Output, String>().unwrap();
    let ids = producer
        .enqueue_bulk_with(0..6_u64, &JobOptions::new().result())
        .await
        .unwrap();
    let single = producer
        .enqueue_with(&10, &JobOptions::new().result())
        .await
        .unwrap()
        .id();
    // Not asked for: not in the stream.
    producer.enqueue(&20).await.unwrap();
    let mut got = std::collections::BTreeMap::new();
    while got.len() < 7 {
        let result = tokio::time::timeout(HANG_GUARD, results.next())
            .await
            .expect("every result within the hang guard")
            .expect("the stream is open");
        got.insert(result.id, result.outcome);
    }
    for (job, id) in (0..6_u64).zip(&ids) {
        match &got[id] {
            Ok((doubled, pid)) => {
                assert_eq!((job % 2, *doubled), (0, 2 * job));
                assert_ne!(*pid, std::process::id(), "run by the worker process");
            }
            Err(JobError::Failed(error)) => assert_eq!(*error, format!("odd {job}")),
            other => panic!("job {job}: {other:?}"),
        }
    }
    assert!(matches!(got[&single], Ok((20, _))));
    until("job 20 to run", || {
        server.cli(&["HEXISTS", "stream:test:runs", "20"]).trim() == "1"
    })
    .await;
    assert!(results.is_empty(), "only the results asked for");
    // Without a result type: refused.
    let plain = RedisQueue::<u64>::connect(RedisConfig::new(url.as_str(), "stream"))
        .await
        .unwrap();
    assert!(plain.results::<Output, String>().is_err());
    assert!(matches!(
        plain.enqueue_with(&1, &JobOptions::new().result()).await,
        Err(crewpool_redis::Error::Config(_))
    ));
}

/// A reply popped off the producer's channel whose answer was lost with the
/// connection (a `BLPOP` served as Redis restarts, say) is not lost for the handle:
/// after reconnecting, the listener reads the stored result of every job still
/// awaited. Here the lost pop is made by hand: a stored result with no entry on the
/// channel, then the listener's connection killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_whose_reply_was_lost_with_the_connection_is_read_from_its_store() {
    let server = RedisServer::start();
    let pool = producer(&server.url(), "lost", |c| c).await;
    // One job runs for real, to have a stored result in the codec's own format.
    let first = pool.submit(0).await.unwrap();
    let first_id = first.id();
    let output = tokio::time::timeout(HANG_GUARD, first)
        .await
        .expect("the first result")
        .expect("the first job succeeded");
    let stored = server.cli(&["GET", &format!("crewpool:{{lost}}:result:{}", first_id.0)]);
    let stored = stored.trim_end_matches('\n');
    assert!(!stored.is_empty(), "the first result is stored");

    // The second job is never fetched (the queue is paused); its "result" appears in
    // the store only, as if its reply had been popped and lost.
    pool.queue().pause().await.unwrap();
    let second = pool.submit(2).await.unwrap();
    let second_id = second.id();
    let listener = || {
        server
            .cli(&["CLIENT", "LIST"])
            .lines()
            .find(|line| line.contains("cmd=blpop"))
            .and_then(|line| line.split(' ').find_map(|f| f.strip_prefix("id=")))
            .map(str::to_owned)
    };
    until("the listener blocks on its reply channel", || {
        listener().is_some()
    })
    .await;
    let key = format!("crewpool:{{lost}}:result:{}", second_id.0);
    assert_eq!(server.cli(&["SET", &key, stored]).trim(), "OK");
    let id = listener().expect("the listener's connection");
    assert_eq!(server.cli(&["CLIENT", "KILL", "ID", &id]).trim(), "1");

    // The stored copy (the first job's output, which no worker would compute for this
    // one) resolves the handle.
    let got = tokio::time::timeout(Duration::from_secs(10), second)
        .await
        .expect("the handle resolved from the stored result after the reconnect")
        .expect("a success");
    assert_eq!(got, output);
    pool.shutdown().await;
}

/// A worker acknowledges a job whose producer waits for its result only once the
/// result is stored: a store Redis refuses (here an ACL that denies the worker's user
/// the result keys) holds the acknowledgement back, so the job is never settled
/// without its result; once the store goes through, the producer gets it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_is_not_acknowledged_before_its_result_is_stored() {
    // Every key of the queue but its stored results (`result:<id>`), and the
    // registry of queues.
    let server = RedisServer::builder()
        .args(&["--user", "worker", "on", ">worker-pass", "~crewpool:queues"])
        .args(&[
            "~crewpool:{unstored}:[^r]*",
            "~crewpool:{unstored}:replies:*",
        ])
        .args(&["~crewpool:{unstored}:resumed", "~crewpool:{unstored}:rate"])
        .args(&["&*", "+@all"])
        .start();
    let url = server.url_for("worker", "worker-pass");
    let pool = producer(&url, "unstored", |c| c.lease(Duration::from_secs(2))).await;
    let handle = pool.submit(4).await.unwrap();
    let key = format!("result:{}", handle.id().0);
    until("the worker's store of the result was refused", || {
        server.cli(&["ACL", "LOG"]).contains(&key)
    })
    .await;
    assert_eq!(
        server.cli(&["ACL", "SETUSER", "worker", "allkeys"]).trim(),
        "OK"
    );
    let (doubled, _) = tokio::time::timeout(Duration::from_secs(20), handle)
        .await
        .expect("the result arrives: the job was not acknowledged without it")
        .expect("the job succeeded");
    assert_eq!(doubled, 8);
    pool.shutdown().await;
}
