//! CPU-bound jobs on dedicated threads do not starve the caller's runtime.

use std::sync::mpsc;
use std::time::Duration;

use crewpool_flume::FlumeQueue;
use crewpool_runtime::PoolBuilder;

/// The job blocks its thread until the test's own task, on a single-threaded runtime,
/// answers. Were the job running on that runtime's only thread, the task could never
/// run: the job would give up after a minute and the test would fail (not hang).
#[tokio::test(flavor = "current_thread")]
async fn blocking_jobs_on_dedicated_threads_leave_the_caller_runtime_free() {
    let (to_job, from_test) = mpsc::channel::<u64>();
    let from_test = std::sync::Mutex::new(from_test);
    let pool = PoolBuilder::new()
        .workers(1)
        .dedicated_threads()
        .queue(FlumeQueue::bounded(1))
        .build(move |n: u64| {
            let answer = from_test
                .lock()
                .unwrap()
                .recv_timeout(Duration::from_secs(60))
                .map_err(|_| "starved: the test task never ran");
            std::future::ready(answer.map(|answer| answer + n))
        })
        .unwrap();
    let handle = pool.submit(1).await.unwrap();
    // This task runs while the job blocks, because the job is not on this runtime.
    tokio::task::yield_now().await;
    to_job.send(41).unwrap();
    assert_eq!(handle.await.unwrap(), 42);
    let report = pool.shutdown().await;
    assert!(report.is_complete());
}

#[test]
fn a_dedicated_thread_pool_needs_no_runtime_to_build() {
    let pool = PoolBuilder::new()
        .workers(2)
        .dedicated_threads()
        .queue(FlumeQueue::unbounded())
        .build(|n: u64| async move { Ok::<_, std::convert::Infallible>(n + 1) })
        .unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let handle = pool.submit(1).await.unwrap();
        assert_eq!(handle.await.unwrap(), 2);
        let report = pool.shutdown().await;
        assert_eq!(report.stats.completed, 1);
    });
}

/// A task a job spawns on its dedicated thread's runtime gets turns while the queue
/// never empties: the worker yields every few jobs while such tasks are alive.
#[tokio::test]
async fn tasks_spawned_by_jobs_on_dedicated_threads_run_while_the_queue_is_busy() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    let ran = Arc::new(AtomicBool::new(false));
    let (release, hold) = mpsc::channel::<()>();
    let hold = std::sync::Mutex::new(hold);
    let flag = Arc::clone(&ran);
    let pool = PoolBuilder::new()
        .workers(1)
        .dedicated_threads()
        .queue(FlumeQueue::unbounded())
        .build(move |n: u64| {
            if n == 0 {
                let flag = Arc::clone(&flag);
                tokio::spawn(async move { flag.store(true, Ordering::SeqCst) });
                // Held until every other job is queued: they then run back to back.
                let held = hold.lock().unwrap().recv_timeout(Duration::from_secs(60));
                assert!(held.is_ok(), "the test never released the first job");
            }
            std::future::ready(Ok::<_, std::convert::Infallible>(
                flag.load(Ordering::SeqCst),
            ))
        })
        .unwrap();
    let first = pool.submit(0).await.unwrap();
    let mut handles = Vec::new();
    for n in 1..=1_000 {
        handles.push(pool.submit(n).await.unwrap());
    }
    release.send(()).unwrap();
    assert!(!first.await.unwrap());
    let last = handles.pop().unwrap().await.unwrap();
    assert!(
        last,
        "the spawned task never ran while the queue stayed busy"
    );
    pool.shutdown().await;
}
