//! Fork-join: sub-jobs a running job spawns go to its worker, and idle workers steal
//! them.

use std::collections::BTreeMap;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use crewpool_core::{JobContext, with_context};
use crewpool_deque::DequeQueue;
use crewpool_runtime::PoolBuilder;

const SUB_JOBS: u64 = 64;
/// Only a hang guard: the wait below ends as soon as a second worker takes a sub-job.
const HANG_GUARD: Duration = Duration::from_secs(30);

/// Which worker thread ran how many sub-jobs, and the condition sub-jobs wait on.
#[derive(Default)]
struct Spread {
    by_thread: Mutex<BTreeMap<String, u64>>,
    changed: Condvar,
}

/// Job 0 spawns sub-jobs 1..=64 onto its own worker's queue and returns. Every
/// sub-job blocks its worker until sub-jobs have started on two different workers, so
/// if the worker that spawned them were the only one to run them, the first would wait
/// for ever (here: fail after the hang guard). The others are idle and parked when the
/// sub-jobs appear, so this also shows that a spawn wakes a sleeping peer, which steals.
#[tokio::test]
async fn sub_jobs_of_one_job_are_stolen_by_other_workers() {
    let spread = Arc::new(Spread::default());
    let seen = Arc::clone(&spread);
    let pool = PoolBuilder::new()
        .workers(4)
        .dedicated_threads()
        .results()
        .queue(DequeQueue::unbounded())
        .build(with_context(move |job: u64, cx: JobContext<u64>| {
            let spread = Arc::clone(&seen);
            async move {
                if job == 0 {
                    for sub in 1..=SUB_JOBS {
                        cx.spawn(sub).map_err(|e| format!("spawn {sub}: {e}"))?;
                    }
                    return Ok(0);
                }
                let me = std::thread::current()
                    .name()
                    .unwrap_or("unnamed")
                    .to_owned();
                let mut by_thread = spread.by_thread.lock().unwrap();
                *by_thread.entry(me).or_default() += 1;
                spread.changed.notify_all();
                let (by_thread, timeout) = spread
                    .changed
                    .wait_timeout_while(by_thread, HANG_GUARD, |t| t.len() < 2)
                    .unwrap();
                if timeout.timed_out() {
                    return Err(format!("sub-jobs ran only on {:?}", by_thread.keys()));
                }
                Ok(job)
            }
        }))
        .unwrap();
    let mut results = pool.take_results().unwrap();
    pool.spawn(0).await.unwrap();
    let mut finished = Vec::new();
    for _ in 0..=SUB_JOBS {
        let result = results.recv().await.expect("a result per job");
        finished.push(result.outcome.expect("no job failed"));
    }
    finished.sort_unstable();
    assert_eq!(finished, (0..=SUB_JOBS).collect::<Vec<_>>());

    let by_thread = spread.by_thread.lock().unwrap().clone();
    assert!(by_thread.len() >= 2, "spread: {by_thread:?}");
    assert_eq!(by_thread.values().sum::<u64>(), SUB_JOBS);
    println!("sub-jobs per worker: {by_thread:?}");

    let report = pool.shutdown().await;
    assert!(report.is_complete(), "{report:?}");
    assert_eq!(
        report.stats.submitted,
        SUB_JOBS + 1,
        "spawns count as submits"
    );
}
