//! Model (a): parking racing pushes, spawns and close.
//!
//! Guards against lost wake-ups: a consumer that parks while a job it could take is
//! queued and nobody will wake it (a missing re-check after registering, a push or a
//! spawn that does not wake a sleeper, a stolen batch whose rest is not announced),
//! and a close that leaves a sleeper parked. Loom reports such a model as a deadlock.

use crewpool_core::{Consumer, Queue};
use loom::future::block_on;
use loom::sync::Condvar;
use loom::thread;

use super::loom_steal::envelope;
use crate::DequeQueue;
use crewpool_core::sync::{Arc, Mutex, lock};

/// A consumer parked in `next` gets a job pushed concurrently (into the injector of an
/// unbounded queue), then `None` once the queue is closed.
#[test]
fn loom_park_a_push_wakes_a_parked_consumer_and_close_ends_it() {
    loom::model(|| a_push_wakes_a_parked_consumer(DequeQueue::unbounded()));
}

/// The same through a bounded queue's ring: the search after registering must look in
/// the ring too (a re-check that skips it parks the consumer for ever: loom reports a
/// deadlock).
#[test]
fn loom_park_a_push_into_the_ring_wakes_a_parked_consumer() {
    loom::model(|| a_push_wakes_a_parked_consumer(DequeQueue::bounded(2)));
}

fn a_push_wakes_a_parked_consumer(queue: DequeQueue<u32>) {
    {
        let queue = Arc::new(queue);
        let mut consumer = queue.consumer().expect("consumer");
        let taker = thread::spawn(move || {
            let first = block_on(consumer.next()).map(|r| r.envelope.job);
            let second = block_on(consumer.next()).map(|r| r.envelope.job);
            (first, second)
        });
        block_on(queue.push(envelope(1))).expect("push to an open queue");
        queue.close();
        let (first, second) = taker.join().expect("consumer thread");
        assert_eq!(first, Some(1), "the pushed job is delivered");
        assert_eq!(second, None, "then the closed, drained queue ends");
    }
}

/// Two consumers parked on an empty queue are both woken by close.
#[test]
fn loom_park_close_wakes_every_sleeper() {
    loom::model(|| {
        let queue = Arc::new(DequeQueue::<u32>::unbounded());
        let sleepers: Vec<_> = (0..2)
            .map(|_| {
                let mut consumer = queue.consumer().expect("consumer");
                thread::spawn(move || block_on(consumer.next()).is_none())
            })
            .collect();
        queue.close();
        for sleeper in sleepers {
            assert!(
                sleeper.join().expect("consumer thread"),
                "next returns None"
            );
        }
    });
}

/// Fork-join: whichever consumer takes the queued job spawns a sub-job and blocks
/// until the *other* consumer has taken it, so the other, parked on an empty queue,
/// must be woken by the spawn and steal from its peer's inbox. The taker of the sub-job
/// then closes the queue, and both consumers finish.
#[test]
fn loom_park_a_spawned_sub_job_wakes_a_parked_peer() {
    loom::model(|| {
        let queue = Arc::new(DequeQueue::unbounded());
        block_on(queue.push(envelope(1))).expect("push to an open queue");
        // Who took the sub-job, and the condition the spawning job waits on.
        let taken = Arc::new((Mutex::new(None::<usize>), Condvar::new()));
        let workers: Vec<_> = (0..2)
            .map(|me| {
                let mut consumer = queue.consumer().expect("consumer");
                let taken = Arc::clone(&taken);
                let queue = Arc::clone(&queue);
                thread::spawn(move || {
                    let spawner = consumer.spawner().expect("a deque consumer can spawn");
                    let mut ran = Vec::new();
                    while let Some(received) = block_on(consumer.next()) {
                        let job = received.envelope.job;
                        ran.push(job);
                        let (by, cv) = &*taken;
                        if job == 1 {
                            spawner.spawn(envelope(2)).expect("spawn on an open queue");
                            let mut by = lock(by);
                            while by.is_none() {
                                by = cv.wait(by).expect("condvar");
                            }
                            assert_ne!(*by, Some(me), "a blocked worker cannot take it");
                        } else {
                            *lock(by) = Some(me);
                            cv.notify_all();
                            queue.close();
                        }
                    }
                    ran
                })
            })
            .collect();
        let mut all = Vec::new();
        for worker in workers {
            all.extend(worker.join().expect("worker thread"));
        }
        all.sort_unstable();
        assert_eq!(all, [1, 2], "each job ran once");
    });
}
