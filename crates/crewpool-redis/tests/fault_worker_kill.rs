//! A worker *process* killed with SIGKILL mid-job: another worker process completes the
//! job once the lease expires, and the recovery time is measured.

mod support;

use std::time::{Duration, Instant};

use crewpool_redis::testing::RedisServer;
use crewpool_redis::{RedisConfig, RedisQueue};
use support::{HANG_GUARD, WorkerProcess};

const LEASE_MS: u64 = 1000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_workers_job_is_completed_by_another_process() {
    let server = RedisServer::start();
    let url = server.url();
    let queue = RedisQueue::<u64>::connect(
        RedisConfig::new(url.as_str(), "faults").lease(Duration::from_millis(LEASE_MS)),
    )
    .await
    .unwrap();
    let id = queue.enqueue(&7).await.unwrap();

    // The first process takes the job and hangs in it (attempt 1 never finishes).
    let mut doomed = WorkerProcess::spawn(&url, "faults", 2, LEASE_MS, "hang-first");
    doomed.wait_for("the job's start", |line| {
        line == format!("started {} 1", id.0)
    });

    // A second process is up and idle (blocked in Redis) before the first dies.
    let rescuer = WorkerProcess::spawn(&url, "faults", 2, LEASE_MS, "hang-first");
    rescuer.wait_for("ready", |line| line == "ready");

    let killed = Instant::now();
    doomed.kill();
    rescuer.wait_for("the job's second attempt completing", |line| {
        line == format!("done {} 2", id.0)
    });
    let recovery = killed.elapsed();
    println!(
        "killed-worker recovery: {recovery:?} from SIGKILL to completion elsewhere (lease {LEASE_MS} ms)"
    );

    // The job ran to completion exactly once (the killed attempt never recorded), and
    // nothing is left in Redis once the rescuer's acknowledgement lands (it is sent
    // after the job printed "done": poll Redis for it, within the hang guard).
    assert_eq!(server.cli(&["HGET", "faults:test:runs", "7"]).trim(), "1");
    let deadline = Instant::now() + HANG_GUARD;
    loop {
        let stats = queue.stats().await.unwrap();
        let left = (stats.pending, stats.active, stats.delayed, stats.dead);
        if left == (0, 0, 0, 0) {
            break;
        }
        assert!(left == (0, 1, 0, 0), "left in Redis: {stats:?}");
        assert!(Instant::now() < deadline, "the job was never acknowledged");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // It came back through lease expiry, not earlier: the dead process's lease had to
    // run out (its last heartbeat was at most a fifth of a lease before the kill).
    assert!(
        recovery >= Duration::from_millis(LEASE_MS * 4 / 5 - 50),
        "recovered in {recovery:?}, before the lease could have expired"
    );
}
