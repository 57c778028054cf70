//! Model (b): push, pop, steal and close among one producer and two consumers.
//!
//! Guards against jobs lost or duplicated: a consumer that returns `None` while an
//! accepted push is still landing (closed flag and count checked apart), a batch lost
//! between the injector and a local deque, a steal that duplicates, a push accepted
//! after close, and a producer left waiting for room forever by close.

use crewpool_core::{Consumer, Envelope, JobId, PushError, Queue};
use loom::future::block_on;
use loom::thread;

use crate::DequeQueue;
use crewpool_core::sync::Arc;

pub(super) fn envelope(job: u32) -> Envelope<u32> {
    Envelope::new(job).with_id(JobId(u64::from(job)))
}

/// Drains `consumer` until `None`, returning the jobs it took.
pub(super) fn drain(mut consumer: crate::DequeConsumer<u32>) -> Vec<u32> {
    let mut jobs = Vec::new();
    while let Some(received) = block_on(consumer.next()) {
        jobs.push(received.envelope.job);
    }
    jobs
}

/// A thread draining `queue` with a consumer made before it starts (see [`drain`]).
pub(super) fn spawn_drain(queue: &Arc<DequeQueue<u32>>) -> thread::JoinHandle<Vec<u32>> {
    let consumer = queue.consumer().expect("consumer");
    thread::spawn(move || drain(consumer))
}

/// A thread closing `queue`.
pub(super) fn spawn_close(queue: &Arc<DequeQueue<u32>>) -> thread::JoinHandle<()> {
    let queue = Arc::clone(queue);
    thread::spawn(move || queue.close())
}

/// Checks that the consumers took exactly the accepted jobs, once each.
pub(super) fn check(accepted: &[u32], takers: Vec<thread::JoinHandle<Vec<u32>>>) {
    let mut taken: Vec<u32> = takers
        .into_iter()
        .flat_map(|taker| taker.join().expect("consumer thread"))
        .collect();
    taken.sort_unstable();
    assert_eq!(taken, accepted, "every accepted job exactly once");
}

/// Three jobs, one queued before the consumers start (a consumer's batch of two leaves
/// one in its local deque for the other to steal), two pushed while they run; one
/// consumer closes the queue, racing the pushes. Accepted jobs are delivered exactly
/// once, refused ones come back.
#[test]
fn loom_steal_push_pop_steal_close_lose_and_duplicate_nothing() {
    loom::model(|| {
        let queue = Arc::new(DequeQueue::unbounded());
        block_on(queue.push(envelope(1))).expect("push to an open queue");
        let taker = spawn_drain(&queue);
        let closing_taker = {
            let consumer = queue.consumer().expect("consumer");
            let queue = Arc::clone(&queue);
            thread::spawn(move || {
                queue.close();
                drain(consumer)
            })
        };
        let takers = vec![taker, closing_taker];
        let mut accepted = vec![1];
        for job in [2, 3] {
            match block_on(queue.push(envelope(job))) {
                Ok(_) => accepted.push(job),
                Err(PushError::Closed(back)) => assert_eq!(back.job, job, "the job comes back"),
                Err(other) => panic!("unexpected push error {other}"),
            }
        }
        check(&accepted, takers);
        assert_eq!(queue.depth(), 0);
    });
}
