//! Closing and dropping: close wakes every parked consumer, a push wakes just one,
//! and a dropped consumer's jobs go back where others find them.

use std::pin::pin;
use std::sync::mpsc;
use std::time::Duration;

use crewpool_core::testkit::{CountingWaker, block_on, poll_once};
use crewpool_core::{Consumer, Envelope, JobId, Queue, TryPush, TryPushError};
use crewpool_deque::DequeQueue;

fn envelope(job: u64) -> Envelope<u64> {
    Envelope::new(job).with_id(JobId(job))
}

/// Takes everything `consumer` can take now.
fn take_all(consumer: &mut impl Consumer<Job = u64>) -> Vec<u64> {
    let mut jobs = Vec::new();
    while let Some(received) = consumer.try_next() {
        jobs.push(received.envelope.job);
    }
    jobs.sort_unstable();
    jobs
}

#[test]
fn a_push_wakes_one_parked_consumer_and_close_wakes_them_all() {
    let queue = DequeQueue::unbounded();
    let mut consumers: Vec<_> = (0..3).map(|_| queue.consumer().unwrap()).collect();
    let wakers: Vec<_> = (0..3).map(|_| CountingWaker::new()).collect();
    let mut nexts: Vec<_> = consumers.iter_mut().map(|c| Box::pin(c.next())).collect();
    for (next, (_, waker)) in nexts.iter_mut().zip(&wakers) {
        assert!(poll_once(next.as_mut(), waker).is_pending(), "empty: parks");
    }

    queue.try_push(envelope(1)).unwrap();
    let woken: usize = wakers.iter().map(|(c, _)| c.wakes()).sum();
    assert_eq!(woken, 1, "one job wakes one sleeper, not the herd");

    queue.close();
    for (counter, _) in &wakers {
        assert!(counter.wakes() >= 1, "close wakes every sleeper");
    }
    let mut got = Vec::new();
    for (next, (_, waker)) in nexts.iter_mut().zip(&wakers) {
        match poll_once(next.as_mut(), waker) {
            std::task::Poll::Ready(Some(received)) => got.push(received.envelope.job),
            std::task::Poll::Ready(None) => {}
            std::task::Poll::Pending => panic!("a woken consumer of a closed queue waits"),
        }
    }
    assert_eq!(got, [1], "the job accepted before close is delivered once");
}

/// The same on threads, each in `next` under a real `block_on` (parked, or about to
/// park, when the close comes: the wake-up itself is pinned down by the test above
/// and by the loom model `loom_park`).
#[test]
fn close_wakes_consumers_parked_on_other_threads() {
    let queue = DequeQueue::<u64>::unbounded();
    let (done_tx, done) = mpsc::channel();
    std::thread::scope(|scope| {
        for _ in 0..4 {
            let mut consumer = queue.consumer().unwrap();
            let done_tx = done_tx.clone();
            scope.spawn(move || {
                let end = block_on(consumer.next()).is_none();
                done_tx.send(end).unwrap();
            });
        }
        queue.close();
        for _ in 0..4 {
            // A hang guard: a sleeper close failed to wake would never answer.
            let ended = done.recv_timeout(Duration::from_secs(30));
            assert_eq!(ended, Ok(true), "next returns None after close");
        }
    });
}

#[test]
fn a_dropped_consumer_hands_back_its_local_jobs_and_inbox() {
    let queue = DequeQueue::unbounded();
    for job in 0..10 {
        queue.try_push(envelope(job)).unwrap();
    }
    let mut first = queue.consumer().unwrap();
    let taken = first.try_next().unwrap().envelope.job;
    let spawner = first.spawner().unwrap();
    for job in 100..103 {
        spawner.spawn(envelope(job)).unwrap();
    }
    assert_eq!(queue.depth(), 12, "9 left + 3 spawned, wherever they wait");
    drop(first);

    // The dropped consumer's spawner still works while the queue is open (its jobs
    // go to the injector now), and refuses once the queue is closed.
    spawner.spawn(envelope(200)).unwrap();
    queue.close();
    assert!(matches!(
        spawner.spawn(envelope(201)),
        Err(TryPushError::Closed(e)) if e.job == 201
    ));

    let mut second = queue.consumer().unwrap();
    let mut all = take_all(&mut second);
    all.push(taken);
    all.sort_unstable();
    let expected: Vec<u64> = (0..10).chain(100..103).chain([200]).collect();
    assert_eq!(all, expected, "nothing lost, nothing twice");
    assert!(block_on(second.next()).is_none());
}

#[test]
fn sub_jobs_spawned_after_close_are_drained_by_their_consumer() {
    let queue = DequeQueue::unbounded();
    queue.try_push(envelope(1)).unwrap();
    let mut worker = queue.consumer().unwrap();
    let mut idle = queue.consumer().unwrap();
    let spawner = worker.spawner().unwrap();
    assert_eq!(worker.try_next().unwrap().envelope.job, 1);

    queue.close();
    // Job 1 is still running on `worker`: its sub-jobs are part of accepted work.
    spawner.spawn(envelope(2)).unwrap();
    assert!(
        queue.try_push(envelope(3)).is_err(),
        "producers are refused"
    );

    let mut got = Vec::new();
    while let Some(received) = block_on(worker.next()) {
        got.push(received.envelope.job);
    }
    got.extend(take_all(&mut idle));
    assert_eq!(got, [2]);
    assert!(block_on(idle.next()).is_none());
    // `worker` has finished: its spawner refuses now.
    assert!(matches!(
        spawner.spawn(envelope(4)),
        Err(TryPushError::Closed(_))
    ));
}

#[test]
fn a_waiting_push_ends_when_the_queue_closes() {
    let queue = DequeQueue::bounded(1);
    queue.try_push(envelope(1)).unwrap();
    let (counter, waker) = CountingWaker::new();
    let mut push = pin!(queue.push(envelope(2)));
    assert!(poll_once(push.as_mut(), &waker).is_pending(), "full: waits");
    queue.close();
    assert!(counter.wakes() >= 1, "close wakes the waiting push");
    match poll_once(push.as_mut(), &waker) {
        std::task::Poll::Ready(Err(error)) => assert_eq!(error.into_inner().job, 2),
        other => panic!("expected the job back, got {other:?}"),
    }
}
