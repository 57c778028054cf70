//! Model 3: a shutdown deadline racing a job that finishes at the deadline.
//!
//! Guards against: a worker that takes a job just as the pool stops and neither runs
//! it nor hands it back, an interrupted job that is not reported, a job reported both
//! done and interrupted, and queued jobs left behind when the pool stops. Each
//! accepted job must end in exactly one of: finished, interrupted, returned.

use loom::future::block_on;
use loom::thread;

use super::model_queue::envelope;
use super::{model_pool, spawn_worker};
use crate::future::yield_now;
use crate::loom::{Arc, Mutex, lock};
use crewpool_core::{JobId, Queue};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Event {
    Started(u32),
    Finished(u32),
}

#[test]
fn a_deadline_accounts_for_every_job_exactly_once() {
    loom::model(|| {
        let events = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&events);
        let work = move |job: u32| {
            let log = Arc::clone(&log);
            async move {
                lock(&log).push(Event::Started(job));
                // The job is running across this suspension point when the deadline hits.
                yield_now().await;
                lock(&log).push(Event::Finished(job));
                Ok::<_, std::convert::Infallible>(job)
            }
        };
        let shared = model_pool(work, 1);
        for job in [1, 2] {
            block_on(shared.push(envelope(job))).expect("open queue");
        }
        let worker = spawn_worker(&shared);
        let deadline = {
            let shared = Arc::clone(&shared);
            thread::spawn(move || shared.begin_stop())
        };

        // shutdown_timeout: drain, and the deadline (above) stops at any moment.
        shared.begin_drain();
        block_on(shared.lifecycle.live.wait());
        deadline.join().expect("deadline");
        let report = block_on(shared.finish());
        worker.join().expect("worker");

        let events = lock(&events).clone();
        let mut finished = 0;
        for job in [1, 2] {
            let started = events.contains(&Event::Started(job));
            let done = events.contains(&Event::Finished(job));
            let interrupted = report.interrupted.contains(&JobId(u64::from(job)));
            let returned = report.returned.contains(&job);
            let fates = usize::from(done) + usize::from(interrupted) + usize::from(returned);
            assert_eq!(
                fates, 1,
                "job {job}: done={done} interrupted={interrupted} returned={returned}"
            );
            assert_eq!(started && !done, interrupted, "job {job}: stopped mid-run");
            finished += u64::from(done);
        }
        assert_eq!(report.stats.completed, finished);
        assert_eq!(report.stats.interrupted, report.interrupted.len() as u64);
        assert_eq!(shared.queue.depth(), 0, "nothing left in the queue");
    });
}
