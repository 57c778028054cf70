//! Model 5: resizing down racing a graceful shutdown.
//!
//! Guards against: two workers leaving for one departure asked (a retire token claimed
//! twice), which strands queued jobs when the last worker leaves early; a departing
//! worker that drops the job it holds; and a departure that keeps shutdown waiting.
//! Every accepted job must run exactly once, exactly one worker must leave for the
//! resize (or none, if the shutdown drained the pool first), and shutdown must return.

use loom::future::block_on;
use loom::thread;

use super::model_queue::envelope;
use super::{model_pool, recording_worker, spawn_worker, worker_loop};
use crewpool_core::sync::{Arc, lock};

#[test]
fn resizing_down_while_shutting_down_loses_nothing() {
    loom::model(|| {
        let (ran, work) = recording_worker();
        let shared = model_pool(work, 2);
        for job in [1, 2] {
            block_on(shared.submit(envelope(job))).expect("open queue");
        }
        let first = spawn_worker(&shared);
        let shutdown = {
            let shared = Arc::clone(&shared);
            thread::spawn(move || block_on(shared.shutdown()))
        };
        // This thread asks for one worker fewer (refused if the shutdown closed the
        // pool first), then is the second worker.
        let _ = crate::shared::Shared::resize(&shared, 1);
        block_on(worker_loop(&shared));

        let report = shutdown.join().expect("shutdown");
        first.join().expect("first worker");
        let mut ran = lock(&ran).clone();
        ran.sort_unstable();
        assert_eq!(ran, vec![1, 2], "every accepted job runs exactly once");
        assert!(report.is_complete(), "{report:?}");
        assert_eq!(report.stats.completed, 2);
        assert_eq!(report.stats.workers, 0, "every worker left");
    });
}
