//! Model 3: a stop (a shutdown deadline, or an abort) racing a job that is mid-run.
//!
//! Guards against: a worker that takes a job just as the pool stops and neither runs
//! it nor hands it back, an interrupted job that is not reported, a job reported in
//! two places (done and interrupted, or done and still running), a stop that waits
//! for nothing or loses a worker's exit, a job given up on while its worker is inside
//! it (the stop does not wait for a job blocked in its own code) whose outcome is then
//! reported again by the worker, and queued jobs left behind when the pool stops.
//! Each accepted job must end in exactly one of: finished, interrupted, returned,
//! still running (given up on).

use loom::future::block_on;

use super::model_queue::envelope;
use super::{model_pool, spawn_worker};
use crate::future::yield_now;
use crewpool_core::sync::{Arc, Mutex, lock};
use crewpool_core::{JobId, Queue};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Event {
    Started(u32),
    Finished(u32),
}

#[test]
fn a_stop_accounts_for_every_job_exactly_once() {
    loom::model(|| {
        let events = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&events);
        let work = move |job: u32| {
            let log = Arc::clone(&log);
            async move {
                lock(&log).push(Event::Started(job));
                // The job is running across this suspension point when the stop hits;
                // the lock operations make each poll a span loom can stop inside of,
                // as a blocking job would be.
                yield_now().await;
                lock(&log).push(Event::Finished(job));
                Ok::<_, std::convert::Infallible>(job)
            }
        };
        let shared = model_pool(work, 1);
        for job in [1, 2] {
            block_on(shared.submit(envelope(job))).expect("open queue");
        }
        let worker = spawn_worker(&shared);

        // shutdown_timeout whose deadline passed at once (or abort).
        shared.begin_drain();
        let report = block_on(shared.stop());
        worker.join().expect("worker");

        let events = lock(&events).clone();
        let mut finished = 0;
        for job in [1, 2] {
            let id = JobId(u64::from(job));
            let started = events.contains(&Event::Started(job));
            let done = events.contains(&Event::Finished(job));
            let interrupted = report.interrupted.contains(&id);
            let returned = report.returned.contains(&job);
            let still_running = report.still_running.contains(&id);
            let places =
                usize::from(interrupted) + usize::from(returned) + usize::from(still_running);
            assert!(
                places <= 1,
                "job {job}: interrupted={interrupted} returned={returned} still_running={still_running}"
            );
            if places == 0 {
                assert!(
                    done,
                    "job {job}: in no list of the report, yet it did not finish"
                );
                finished += 1;
            }
            assert!(
                !interrupted || (started && !done),
                "job {job}: interrupted but not mid-run"
            );
            assert!(
                !returned || !started,
                "job {job}: returned after it started"
            );
            assert!(
                !still_running || started,
                "job {job}: still running but never started"
            );
        }
        assert_eq!(report.stats.completed, finished, "{report:?}");
        assert_eq!(report.stats.interrupted, report.interrupted.len() as u64);
        assert_eq!(shared.queue.depth(), 0, "nothing left in the queue");
        // Once the worker is gone, a job given up on was counted as interrupted, and
        // only once.
        let after = shared.stats();
        assert_eq!(
            after.completed, finished,
            "a job given up on is never counted done"
        );
        assert_eq!(
            after.interrupted,
            (report.interrupted.len() + report.still_running.len()) as u64
        );
    });
}
