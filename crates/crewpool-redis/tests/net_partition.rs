//! Redis and worker processes on separate hosts (network namespaces joined by veth
//! links, made by the test; root and `ip` needed): a worker host partitioned from
//! Redis for longer than its lease has its jobs run elsewhere; when the link heals its
//! late settlements are refused by fencing (counted) and it goes on; nothing is lost.

mod support;

use std::time::{Duration, Instant};

use crewpool_redis::ENQUEUE_LUA;
use crewpool_redis::testing::net::{Netns, NetnsRedis};
use support::{HANG_GUARD, WorkerProcess};

/// Jobs (their values) the worker host recorded as run, with run counts.
fn runs(recorder: &NetnsRedis<'_>) -> std::collections::HashMap<u64, u64> {
    let flat = recorder.cli(&["HGETALL", "net:test:runs"]);
    let values: Vec<u64> = flat
        .lines()
        .filter_map(|line| line.trim().parse().ok())
        .collect();
    values.chunks(2).map(|pair| (pair[0], pair[1])).collect()
}

#[test]
fn a_partitioned_worker_host_is_fenced_off_and_nothing_is_lost() {
    const JOBS: u64 = 16;
    const LEASE_MS: u64 = 1000;
    let redis_host = Netns::new("redis");
    let far = Netns::new("far");
    let near = Netns::new("near");
    let far_link = redis_host.link(&far, 11);
    let near_link = redis_host.link(&near, 12);
    let redis = NetnsRedis::start(&redis_host);
    // Each worker host records its runs on a server of its own (reachable in a
    // partition, so a run is recorded when it happens).
    let far_recorder = NetnsRedis::start(&far);
    let near_recorder = NetnsRedis::start(&near);

    // 16 jobs of 2.5 s on 2 + 2 workers; the far host's first jobs outlast the
    // partition, so they finish after it heals, and settle late.
    let envelopes: Vec<String> = (0..JOBS)
        .map(|job| format!(r#"{{"v":1,"job":{job}}}"#))
        .collect();
    let mut args = vec![
        "EVAL",
        ENQUEUE_LUA,
        "2",
        "crewpool:{net}:seq",
        "crewpool:{net}:pending",
    ];
    args.extend(envelopes.iter().map(String::as_str));
    redis.cli(&args);

    let env = [
        ("CREWPOOL_TEST_JOB_MS", "2500"),
        ("CREWPOOL_TEST_RESPONSE_MS", "500"),
        ("CREWPOOL_TEST_RECORD_URL", "redis://127.0.0.1:6379"),
    ];
    let far_url = format!("redis://{}:6379", far_link.here());
    let near_url = format!("redis://{}:6379", near_link.here());
    let mut far_worker = WorkerProcess::spawn_in(&far, &far_url, "net", 2, LEASE_MS, &env);
    far_worker.wait_for("a job started on the far host", |line| {
        line.starts_with("started")
    });
    let mut near_worker = WorkerProcess::spawn_in(&near, &near_url, "net", 2, LEASE_MS, &env);
    near_worker.wait_for("ready", |line| line == "ready");

    // Partition the far host for twice its lease, mid-job.
    far_link.down();
    let partitioned = Instant::now();
    // Its jobs run on the near host meanwhile: some job the far host held (attempt 1)
    // starts again there (attempt 2).
    near_worker.wait_for("a job taken back from the far host", |line| {
        line.starts_with("started") && line.ends_with(" 2")
    });
    let taken_back = partitioned.elapsed();
    while partitioned.elapsed() < Duration::from_millis(2 * LEASE_MS) {
        std::thread::sleep(Duration::from_millis(20));
    }
    far_worker.drain();
    far_link.up();
    let healed = Instant::now();
    // It resumes: the far host starts a new job after the heal.
    far_worker.wait_for("a job started after the heal", |line| {
        line.starts_with("started")
    });
    let resumed = healed.elapsed();

    // Audit: every job ran (on either host), nothing is left in Redis.
    let deadline = Instant::now() + HANG_GUARD;
    loop {
        let mut ran = runs(&far_recorder);
        for (job, n) in runs(&near_recorder) {
            *ran.entry(job).or_default() += n;
        }
        let left: u64 = ["pending", "delayed"]
            .iter()
            .map(|key| {
                redis
                    .cli(&["EXISTS", &format!("crewpool:{{net}}:{key}")])
                    .parse::<u64>()
                    .unwrap()
            })
            .sum::<u64>()
            + redis
                .cli(&["HLEN", "crewpool:{net}:leased"])
                .parse::<u64>()
                .unwrap();
        if ran.len() as u64 == JOBS && left == 0 {
            let reruns: u64 = ran.values().map(|n| n - 1).sum();
            let far_stopped = far_worker.terminate();
            let near_stopped = near_worker.terminate();
            let fenced = |line: &str| -> u64 {
                line.split_whitespace()
                    .filter_map(|part| part.split_once('='))
                    .map(|(_, n)| n.parse::<u64>().unwrap())
                    .sum()
            };
            println!(
                "net partition: {JOBS} jobs, lease {LEASE_MS} ms, far host cut off for {} ms: its job ran elsewhere after {taken_back:?}, it resumed {resumed:?} after the heal; far host {far_stopped}, near host {near_stopped}; lost 0, reruns {reruns}",
                2 * LEASE_MS
            );
            assert!(
                fenced(&far_stopped) > 0,
                "the far host's late settlements were not refused: {far_stopped}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not every job ran: {} of {JOBS}, {left} left",
            ran.len()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
