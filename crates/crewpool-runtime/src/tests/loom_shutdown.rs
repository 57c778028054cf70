//! Model 1: submits racing a graceful shutdown.
//!
//! Guards against: a worker that leaves while an accepted job is still queued (for
//! example one that stops at "the pool is draining" instead of at "the queue is
//! drained"), a submit accepted after the queue closed, and a lost wake-up in the
//! shutdown's wait for the workers. Every accepted job must run exactly once, every
//! refused one must come back to the submitter, and shutdown must return.

use loom::future::block_on;
use loom::thread;

use super::model_queue::envelope;
use super::{model_pool, recording_worker, spawn_worker};
use crewpool_core::sync::{Arc, lock};

#[test]
fn submits_racing_graceful_shutdown_lose_nothing_and_run_once() {
    loom::model(|| {
        let (ran, work) = recording_worker();
        let shared = model_pool(work, 1);
        let worker = spawn_worker(&shared);
        let producer = {
            let shared = Arc::clone(&shared);
            thread::spawn(move || {
                [1, 2].map(|job| match block_on(shared.submit(envelope(job))) {
                    Ok(_) => true,
                    Err(refused) => {
                        assert_eq!(refused.into_inner(), job, "a refused job comes back");
                        false
                    }
                })
            })
        };

        let report = block_on(shared.shutdown());

        let accepted = producer.join().expect("producer");
        worker.join().expect("worker");
        let ran = lock(&ran).clone();
        for (job, accepted) in [1, 2].into_iter().zip(accepted) {
            let runs = ran.iter().filter(|&&r| r == job).count();
            assert_eq!(
                runs,
                usize::from(accepted),
                "job {job}: accepted={accepted} but ran {runs} times"
            );
        }
        assert!(
            report.is_complete(),
            "graceful: nothing returned or interrupted"
        );
        assert_eq!(report.stats.completed, ran.len() as u64);
        assert!(
            report.stats.submitted >= report.stats.completed,
            "a job is never seen finished before it is seen submitted"
        );
        assert_eq!(
            shared.stats().submitted,
            ran.len() as u64,
            "once every submit has settled, refused ones are not counted"
        );
    });
}

/// The same with the two jobs spawned as one batch (`Pool::spawn_all`'s path): the
/// jobs the batch got accepted (the first ones) run exactly once, the rest come back
/// in order, shutdown returns, and once the batch has ended `submitted` counts exactly
/// the accepted jobs (a batch is counted whole while it is pushed).
#[test]
fn a_batch_racing_graceful_shutdown_loses_nothing_and_runs_once() {
    loom::model(|| {
        let (ran, work) = recording_worker();
        let shared = model_pool(work, 1);
        let worker = spawn_worker(&shared);
        let producer = {
            let shared = Arc::clone(&shared);
            thread::spawn(move || {
                let batch = shared.batch([1, 2].into_iter());
                match block_on(shared.submit_batch(batch)) {
                    Ok(accepted) => accepted,
                    Err(refused) => {
                        let accepted = refused.accepted();
                        assert_eq!(
                            refused.into_inner(),
                            [1, 2][accepted..],
                            "the rest comes back"
                        );
                        accepted
                    }
                }
            })
        };

        let report = block_on(shared.shutdown());

        let accepted = producer.join().expect("producer");
        worker.join().expect("worker");
        let mut ran = lock(&ran).clone();
        ran.sort_unstable();
        assert_eq!(ran, [1, 2][..accepted], "the accepted jobs ran, once each");
        assert!(
            report.is_complete(),
            "graceful: nothing returned or interrupted"
        );
        assert!(
            report.stats.submitted >= report.stats.completed,
            "a job is never seen finished before it is seen submitted"
        );
        assert_eq!(
            shared.stats().submitted,
            accepted as u64,
            "once the batch has ended, only what was accepted is counted"
        );
    });
}
