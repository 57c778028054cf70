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

/// Guards against: a worker missing a resize-down posted while it goes from one turn of
/// its loop to waiting for work. The worker keeps one listener across turns; it must
/// have been made before the claim that found no token (renewing it after the claim
/// loses a post that falls in between: the worker then waits for ever, which loom
/// reports as a deadlock). Nothing else wakes the worker here: no shutdown.
#[test]
fn an_idle_worker_leaves_when_asked_to_between_turns() {
    loom::model(|| {
        let (ran, work) = recording_worker();
        // Two places, one worker started: the resize to one asks it to leave.
        let shared = model_pool(work, 2);
        block_on(shared.submit(envelope(1))).expect("open queue");
        let worker = spawn_worker(&shared);
        crate::shared::Shared::resize(&shared, 1).expect("open pool");
        worker.join().expect("the worker left");
        assert_eq!(
            shared.lifecycle.live.count(),
            1,
            "only the worker asked left"
        );
        // It ran its job, or left before taking it: the job is still queued.
        let ran = lock(&ran).len();
        assert_eq!(
            ran + crewpool_core::Queue::depth(&shared.queue),
            1,
            "the job was not lost"
        );
    });
}
