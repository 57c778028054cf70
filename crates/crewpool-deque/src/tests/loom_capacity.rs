//! Model (c): a bounded queue's producers waiting for room, racing takes and close.
//!
//! Guards against a producer left waiting forever: a take that frees room without
//! waking it, a close that does not wake it, a missing re-check after it registers.
//! Loom reports those as deadlocks. Whatever a waiting push ends with, its job is
//! delivered exactly once if it was accepted, and handed back if not.

use crewpool_core::{Consumer, PushError, Queue};
use loom::future::block_on;
use loom::thread;

use super::loom_steal::{check, drain, envelope, spawn_close, spawn_drain};
use crate::DequeQueue;
use crewpool_core::sync::Arc;

/// Full queue, a consumer takes: the waiting push must be woken and accepted.
#[test]
fn loom_capacity_a_take_wakes_a_waiting_push() {
    loom::model(|| {
        let queue = Arc::new(DequeQueue::bounded(1));
        block_on(queue.push(envelope(1))).expect("push to an empty queue");
        let mut consumer = queue.consumer().expect("consumer");
        let taker = thread::spawn(move || {
            let first = block_on(consumer.next()).map(|r| r.envelope.job);
            (first, consumer)
        });
        block_on(queue.push(envelope(2))).expect("the queue stays open, so room comes");
        queue.close();
        let (first, consumer) = taker.join().expect("consumer thread");
        assert_eq!(first, Some(1));
        assert_eq!(drain(consumer), [2]);
    });
}

/// Full queue, nobody takes, another thread closes: the waiting push must be woken
/// and refused with its job.
#[test]
fn loom_capacity_close_wakes_a_waiting_push() {
    loom::model(|| {
        let queue = Arc::new(DequeQueue::bounded(1));
        block_on(queue.push(envelope(1))).expect("push to an empty queue");
        let closer = spawn_close(&queue);
        match block_on(queue.push(envelope(2))) {
            Err(PushError::Closed(back)) => assert_eq!(back.job, 2, "the job comes back"),
            other => panic!("a full queue that closes refuses the waiting push: {other:?}"),
        }
        closer.join().expect("closer thread");
        assert_eq!(drain(queue.consumer().expect("consumer")), [1]);
    });
}

/// Both at once: the second push waits while a consumer takes and a third thread
/// closes. The push either completes, and its job is delivered, or fails with
/// `Closed`; it never waits forever.
#[test]
fn loom_capacity_waiting_push_vs_take_and_close() {
    loom::model(|| {
        let queue = Arc::new(DequeQueue::bounded(1));
        let taker = spawn_drain(&queue);
        let closer = spawn_close(&queue);
        let mut accepted = Vec::new();
        for job in [1, 2] {
            match block_on(queue.push(envelope(job))) {
                Ok(_) => accepted.push(job),
                Err(PushError::Closed(back)) => assert_eq!(back.job, job, "the job comes back"),
                Err(other) => panic!("unexpected push error {other}"),
            }
        }
        closer.join().expect("closer thread");
        check(&accepted, vec![taker]);
    });
}
