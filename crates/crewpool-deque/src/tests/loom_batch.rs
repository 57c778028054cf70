//! Model (d): a batch push (`Queue::push_batch`) reserving several places at once,
//! racing consumers, parked workers and close.
//!
//! Guards against: a batch that lands jobs without waking the consumers parked for
//! them (loom reports a deadlock), a batch waiting for room that no take or close
//! wakes (a deadlock), a reservation of several places that lets the count pass the
//! bound (a push that finds the ring full panics under loom: see `Shared::land`), and
//! jobs lost, duplicated, or accepted and also handed back when close comes in the
//! middle of a batch.

use crewpool_core::{Batch, Consumer, PushError, Queue};
use loom::future::block_on;
use loom::thread;

use super::loom_steal::{check, envelope, spawn_close, spawn_drain};
use crate::DequeQueue;
use crewpool_core::sync::Arc;

fn batch(jobs: &[u32]) -> Batch<u32> {
    jobs.iter().copied().map(envelope).collect()
}

/// A batch of 3 through a bound of 2 while a consumer drains (and parks when it finds
/// nothing): the batch takes the room there is, waits for the rest, and every job is
/// delivered exactly once; the count never passes the bound.
#[test]
fn loom_batch_larger_than_the_bound_waits_for_room_and_wakes_the_consumer() {
    loom::model(|| {
        let queue = Arc::new(DequeQueue::bounded(2));
        let taker = spawn_drain(&queue);
        let mut jobs = batch(&[1, 2, 3]);
        block_on(queue.push_batch(&mut jobs)).expect("the queue stays open, so room comes");
        assert_eq!((jobs.accepted(), jobs.len()), (3, 0));
        queue.close();
        check(&[1, 2, 3], vec![taker]);
    });
}

/// Two consumers parked on an empty bounded queue, one batch of 2: both must be woken
/// (each takes one job from the ring per search).
#[test]
fn loom_batch_wakes_the_parked_consumers_it_has_jobs_for() {
    loom::model(|| {
        let queue = Arc::new(DequeQueue::bounded(2));
        let sleepers: Vec<_> = (0..2)
            .map(|_| {
                let mut consumer = queue.consumer().expect("consumer");
                thread::spawn(move || {
                    let job = block_on(consumer.next()).map(|r| r.envelope.job);
                    (job, consumer)
                })
            })
            .collect();
        let mut jobs = batch(&[1, 2]);
        block_on(queue.push_batch(&mut jobs)).expect("room for both");
        let mut taken: Vec<u32> = sleepers
            .into_iter()
            .map(|sleeper| {
                let (job, _consumer) = sleeper.join().expect("consumer thread");
                job.expect("each parked consumer gets a job")
            })
            .collect();
        taken.sort_unstable();
        assert_eq!(taken, [1, 2]);
    });
}

/// A batch of 3 through a bound of 1, a consumer draining and a third thread closing:
/// the batch completes or fails with `Closed`; the jobs it accepted (the first ones)
/// are delivered exactly once, the rest are still in the batch, in order.
#[test]
fn loom_batch_close_in_the_middle_of_a_batch() {
    loom::model(|| {
        let queue = Arc::new(DequeQueue::bounded(1));
        let taker = spawn_drain(&queue);
        let closer = spawn_close(&queue);
        let mut jobs = batch(&[1, 2, 3]);
        match block_on(queue.push_batch(&mut jobs)) {
            Ok(()) => assert_eq!(jobs.accepted(), 3),
            Err(PushError::Closed(())) => {}
            Err(other) => panic!("unexpected push error {other}"),
        }
        let accepted = jobs.accepted();
        let rest: Vec<u32> = jobs.into_rest().map(|envelope| envelope.job).collect();
        let all = [1, 2, 3];
        assert_eq!(
            rest,
            all[accepted..],
            "the rest, in order, is what was not accepted"
        );
        closer.join().expect("closer thread");
        check(&all[..accepted], vec![taker]);
    });
}
