//! The backend conformance suite: generic checks of the [`Queue`] contract that every
//! backend runs from its own tests.
//!
//! Each check takes a fresh queue of `u64` jobs and panics, with a message naming the
//! broken promise, when the backend breaks it. Checks named `*_by_hand` drive futures
//! by polling them with a counting waker, to prove wake-ups happen without sleeping;
//! they need futures that make progress without a reactor (the in-memory backends).
//! The others are plain async functions and run on whatever executor the caller uses.
//!
//! ```toml
//! [dev-dependencies]
//! crewpool-core = { version = "0.1", features = ["testkit"] }
//! ```
//!
//! ```text
//! #[tokio::test]
//! async fn close_and_drain() {
//!     crewpool_core::testkit::close_and_drain(MyQueue::bounded(8)).await;
//! }
//! ```

// The suite's job is to panic with a message when a backend breaks a promise.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::pin::pin;
use std::sync::Mutex;
use std::task::Poll;
use std::time::Duration;

use crate::{Batch, Consumer, Delivery, Envelope, JobId, PushError, Queue, TryPush, TryPushError};

mod poll;

pub use poll::{BoxFuture, CountingWaker, block_on, join_all, poll_once, yield_now};

fn envelope(job: u64) -> Envelope<u64> {
    Envelope::new(job).with_id(JobId(job))
}

/// Pushes job `job` (its id `JobId(job)`); returns the id the queue gave it.
async fn push<Q: Queue<Job = u64>>(queue: &Q, job: u64) -> JobId {
    match queue.push(envelope(job)).await {
        Ok(id) => id,
        Err(error) => panic!("push of job {job} to an open queue failed: {error}"),
    }
}

fn consumer<Q: Queue<Job = u64>>(queue: &Q) -> Q::Consumer {
    match queue.consumer() {
        Ok(consumer) => consumer,
        Err(error) => panic!("creating a consumer failed: {error}"),
    }
}

/// Takes `count` jobs with `next`, acknowledging each; returns them sorted.
async fn take<C: Consumer<Job = u64>>(consumer: &mut C, count: usize) -> Vec<u64> {
    let mut jobs = Vec::with_capacity(count);
    for _ in 0..count {
        let Some(received) = consumer.next().await else {
            panic!(
                "next() returned None after {} of {count} accepted jobs",
                jobs.len()
            );
        };
        jobs.push(received.envelope.job);
        ack(received.delivery).await;
    }
    jobs.sort_unstable();
    jobs
}

async fn ack<D: Delivery>(delivery: D) {
    if let Err(error) = delivery.ack().await {
        panic!("ack failed: {error}");
    }
}

/// What is pushed comes out: the same job under the id `push` returned, and on
/// in-memory backends that id is the envelope's own and the attempt and the reply
/// travel with the job. A push future dropped before it was polled pushes nothing.
/// Depth counts what waits.
pub async fn delivers_what_was_pushed<Q: Queue<Job = u64>>(queue: Q) {
    drop(queue.push(envelope(40)));
    let mut first = envelope(41);
    first.attempt = 3;
    first.reply = Some(crate::Reply::new(|_| {}));
    let first_id = match queue.push(first).await {
        Ok(id) => id,
        Err(error) => panic!("push failed: {error}"),
    };
    let second_id = push(&queue, 42).await;
    assert_ne!(first_id, second_id, "two jobs, two ids");
    assert_eq!(
        queue.depth(),
        2,
        "depth after two pushes (and one push future dropped unpolled)"
    );

    let mut consumer = consumer(&queue);
    let mut seen = BTreeMap::new();
    for _ in 0..2 {
        let received = consumer.next().await.expect("a job was pushed");
        let env = received.envelope;
        if !<<Q::Consumer as Consumer>::Delivery as Delivery>::DURABLE {
            assert_eq!(env.id, JobId(env.job), "the id travels with the job");
            assert_eq!(
                env.reply.is_some(),
                env.job == 41,
                "the reply travels with its job"
            );
        }
        let returned = if env.job == 41 { first_id } else { second_id };
        assert_eq!(env.id, returned, "delivered under the id push returned");
        seen.insert(env.job, env.attempt);
        ack(received.delivery).await;
    }
    if !<<Q::Consumer as Consumer>::Delivery as Delivery>::DURABLE {
        assert_eq!(seen.get(&41), Some(&3), "the attempt travels with the job");
    }
    assert_eq!(seen.keys().copied().collect::<Vec<_>>(), vec![41, 42]);
    assert_eq!(queue.depth(), 0, "depth once everything was taken");
}

/// A bounded queue makes `push` wait when full and wakes it when a consumer takes a
/// job; `try_push` hands the job back. Needs a bounded queue (capacity ≥ 1) whose
/// futures need no reactor.
pub fn backpressure_by_hand<Q: TryPush<Job = u64>>(queue: Q) {
    let capacity = queue
        .capacity()
        .expect("backpressure_by_hand needs a bounded queue");
    assert!(capacity >= 1, "capacity must be at least 1");
    let cap = capacity as u64;
    let (_, quiet) = CountingWaker::new();
    for job in 0..cap {
        let mut fut = pin!(queue.push(envelope(job)));
        match poll_once(fut.as_mut(), &quiet) {
            Poll::Ready(Ok(_)) => {}
            Poll::Ready(Err(error)) => panic!("push {job} below capacity failed: {error}"),
            Poll::Pending => panic!("push {job} waited although the queue had room"),
        }
    }
    assert_eq!(queue.depth(), capacity, "depth of a full queue");

    match queue.try_push(envelope(cap)) {
        Err(TryPushError::Full(env)) => assert_eq!(env.job, cap, "try_push gives the job back"),
        Err(TryPushError::Closed(_)) => panic!("try_push on a full open queue said Closed"),
        Ok(()) => panic!("try_push on a full queue accepted the job"),
    }

    let (counter, waker) = CountingWaker::new();
    let mut waiting = pin!(queue.push(envelope(cap)));
    assert!(
        poll_once(waiting.as_mut(), &waker).is_pending(),
        "push on a full queue must wait"
    );
    assert_eq!(counter.wakes(), 0, "nothing freed room yet");
    let (ready_counter, ready_waker) = CountingWaker::new();
    let mut ready = pin!(queue.ready());
    assert!(
        poll_once(ready.as_mut(), &ready_waker).is_pending(),
        "ready() on a full queue must wait"
    );

    let mut consumer = consumer(&queue);
    let first = consumer.try_next().expect("a full queue has a job to take");
    assert!(
        counter.wakes() >= 1,
        "taking a job from a full queue must wake the waiting push"
    );
    match poll_once(waiting.as_mut(), &waker) {
        Poll::Ready(Ok(_)) => {}
        Poll::Ready(Err(error)) => panic!("the waiting push failed: {error}"),
        Poll::Pending => panic!("the waiting push did not complete once there was room"),
    }
    let mut jobs = vec![first.envelope.job];
    let second = consumer.try_next().expect("the queue is full again");
    jobs.push(second.envelope.job);
    assert!(
        ready_counter.wakes() >= 1,
        "taking a job from a full queue must wake a waiting ready()"
    );
    assert!(
        poll_once(ready.as_mut(), &ready_waker).is_ready(),
        "ready() once there is room"
    );
    while let Some(received) = consumer.try_next() {
        jobs.push(received.envelope.job);
    }
    jobs.sort_unstable();
    assert_eq!(
        jobs,
        (0..=cap).collect::<Vec<_>>(),
        "every accepted job comes out once"
    );

    for job in 0..cap {
        if let Err(error) = queue.try_push(envelope(job)) {
            panic!("try_push {job} below capacity failed: {error}");
        }
    }
    let (closed_counter, closed_waker) = CountingWaker::new();
    let mut ready = pin!(queue.ready());
    assert!(poll_once(ready.as_mut(), &closed_waker).is_pending());
    queue.close();
    assert!(
        closed_counter.wakes() >= 1,
        "close must wake a waiting ready()"
    );
    assert!(
        poll_once(ready.as_mut(), &closed_waker).is_ready(),
        "ready() on a closed queue"
    );
}

/// [`Queue::push_batch`] of a batch two larger than a bounded queue: it accepts what
/// fits and waits (pending) for room for the rest, is woken by each take, and completes
/// once all are accepted; every job comes out once. On a closed queue it fails with
/// `Closed` and keeps the whole batch. Needs a bounded queue whose futures need no
/// reactor.
pub fn push_batch_by_hand<Q: TryPush<Job = u64>>(queue: Q) {
    let capacity = queue
        .capacity()
        .expect("push_batch_by_hand needs a bounded queue");
    let cap = capacity as u64;
    let mut batch: Batch<u64> = (0..cap + 2).map(envelope).collect();
    let (counter, waker) = CountingWaker::new();
    let mut consumer = consumer(&queue);
    let mut taken = Vec::new();
    {
        let mut pushing = pin!(queue.push_batch(&mut batch));
        assert!(
            poll_once(pushing.as_mut(), &waker).is_pending(),
            "a batch larger than the room waits"
        );
        assert_eq!(queue.depth(), capacity, "what fits is accepted at once");
        for more in [true, false] {
            let before = counter.wakes();
            let received = consumer.try_next().expect("a full queue has a job to take");
            taken.push(received.envelope.job);
            assert!(
                counter.wakes() > before,
                "taking a job from a full queue wakes the waiting batch"
            );
            let polled = poll_once(pushing.as_mut(), &waker);
            match (more, polled) {
                (true, Poll::Pending) | (false, Poll::Ready(Ok(()))) => {}
                (_, polled) => panic!("the batch after a take: {polled:?}"),
            }
        }
    }
    assert_eq!((batch.accepted(), batch.len()), (capacity + 2, 0));
    while let Some(received) = consumer.try_next() {
        taken.push(received.envelope.job);
    }
    taken.sort_unstable();
    assert_eq!(taken, (0..cap + 2).collect::<Vec<_>>(), "every job once");

    queue.close();
    let mut late: Batch<u64> = (0..2).map(envelope).collect();
    {
        let mut pushing = pin!(queue.push_batch(&mut late));
        match poll_once(pushing.as_mut(), &waker) {
            Poll::Ready(Err(PushError::Closed(()))) => {}
            other => panic!("a batch on a closed queue: {other:?}"),
        }
    }
    assert_eq!(
        (late.accepted(), late.len()),
        (0, 2),
        "the batch is kept whole"
    );
}

/// A push accepts its job only in the poll that returns `Ok` (the contract's
/// "Accepted in a poll"): a push that waited for room and is dropped, after a consumer
/// made room but before the push was polled again, pushed nothing. Needs a bounded
/// queue whose futures need no reactor.
pub fn a_dropped_waiting_push_pushes_nothing_by_hand<Q: TryPush<Job = u64>>(queue: Q) {
    let capacity = queue
        .capacity()
        .expect("a_dropped_waiting_push_pushes_nothing_by_hand needs a bounded queue");
    let cap = capacity as u64;
    for job in 0..cap {
        if let Err(error) = queue.try_push(envelope(job)) {
            panic!("try_push {job} below capacity failed: {error}");
        }
    }
    let (_, waker) = CountingWaker::new();
    let mut waiting = Box::pin(queue.push(envelope(cap)));
    assert!(
        poll_once(waiting.as_mut(), &waker).is_pending(),
        "push on a full queue must wait"
    );
    let mut consumer = consumer(&queue);
    let mut jobs = vec![
        consumer
            .try_next()
            .expect("a full queue has a job to take")
            .envelope
            .job,
    ];
    // Room came back; the push is dropped without being polled again.
    drop(waiting);
    while let Some(received) = consumer.try_next() {
        jobs.push(received.envelope.job);
    }
    jobs.sort_unstable();
    assert_eq!(
        jobs,
        (0..cap).collect::<Vec<_>>(),
        "a push dropped while it waited for room must not have pushed its job"
    );
}

/// When a consumer offers a [`Spawn`](crate::Spawn)er, what it spawns is delivered
/// like any pushed job (exactly once, in-memory). Backends without one pass trivially.
pub async fn spawned_jobs_are_delivered<Q: Queue<Job = u64>>(queue: Q) {
    let mut consumer = consumer(&queue);
    let Some(spawner) = consumer.spawner() else {
        return;
    };
    for job in 0..10 {
        if let Err(error) = spawner.spawn(envelope(job)) {
            panic!("spawn {job} failed: {error}");
        }
    }
    let jobs = take(&mut consumer, 10).await;
    assert_eq!(
        jobs,
        (0..10).collect::<Vec<_>>(),
        "spawned jobs are delivered"
    );
    queue.close();
    assert!(consumer.next().await.is_none());
}

/// `try_push` hands the job back when the queue is closed (and when it is full, for
/// bounded queues).
pub fn try_push_gives_job_back<Q: TryPush<Job = u64>>(queue: Q) {
    if let Some(capacity) = queue.capacity() {
        for job in 0..capacity as u64 {
            if let Err(error) = queue.try_push(envelope(job)) {
                panic!("try_push {job} below capacity failed: {error}");
            }
        }
        match queue.try_push(envelope(999)) {
            Err(TryPushError::Full(env)) => assert_eq!(env.job, 999),
            other => panic!("try_push on a full queue: expected Full, got {other:?}"),
        }
    } else {
        for job in 0..1000 {
            if let Err(error) = queue.try_push(envelope(job)) {
                panic!("try_push {job} on an unbounded queue failed: {error}");
            }
        }
    }
    queue.close();
    match queue.try_push(envelope(7)) {
        Err(TryPushError::Closed(env)) => assert_eq!(env.job, 7, "the job comes back"),
        other => panic!("try_push on a closed queue: expected Closed, got {other:?}"),
    }
}

/// For a queue that overrides [`Queue::push_now`]: it accepts jobs while there is
/// room, gives back the job it cannot take (full, then closed) untouched, and what it
/// accepted is delivered, in order, like pushed jobs.
pub async fn push_now_takes_what_fits<Q: Queue<Job = u64>>(queue: Q) {
    let jobs = queue.capacity().map_or(100, |capacity| capacity as u64);
    for job in 0..jobs {
        if queue.push_now(envelope(job)).is_err() {
            panic!("push_now {job} with room gave the job back");
        }
    }
    assert_eq!(queue.depth(), jobs as usize, "every accepted job is queued");
    if queue.capacity().is_some() {
        match queue.push_now(envelope(999)) {
            Err(back) => assert_eq!(back.job, 999, "a full queue gives the job back"),
            Ok(()) => panic!("push_now on a full queue accepted the job"),
        }
    }
    queue.close();
    match queue.push_now(envelope(7)) {
        Err(back) => assert_eq!(back.job, 7, "a closed queue gives the job back"),
        Ok(()) => panic!("push_now on a closed queue accepted the job"),
    }
    let mut consumer = queue.consumer().expect("consumer");
    let mut delivered = Vec::new();
    while let Some(received) = consumer.next().await {
        delivered.push(received.envelope.job);
    }
    assert_eq!(
        delivered,
        (0..jobs).collect::<Vec<_>>(),
        "accepted jobs are delivered in order"
    );
}

/// After `close`, pushes fail and give the job back, everything accepted before is
/// still delivered, and then `next` returns `None`, repeatedly.
pub async fn close_and_drain<Q: Queue<Job = u64>>(queue: Q) {
    let count = queue.capacity().unwrap_or(64).min(64) as u64;
    for job in 0..count {
        push(&queue, job).await;
    }
    assert!(!queue.is_closed());
    queue.close();
    queue.close();
    assert!(queue.is_closed(), "is_closed after close");
    match queue.push(envelope(1000)).await {
        Err(PushError::Closed(env)) => assert_eq!(env.job, 1000, "the job comes back"),
        Err(other) => panic!("push after close: expected Closed, got {other}"),
        Ok(_) => panic!("push after close was accepted"),
    }
    let mut consumer = consumer(&queue);
    let durable = <<Q::Consumer as Consumer>::Delivery as Delivery>::DURABLE;
    if !durable {
        let jobs = take(&mut consumer, count as usize).await;
        assert_eq!(
            jobs,
            (0..count).collect::<Vec<_>>(),
            "close keeps accepted jobs"
        );
    }
    assert!(consumer.next().await.is_none(), "next after drain");
    assert!(consumer.next().await.is_none(), "next keeps returning None");
    assert!(consumer.try_next().is_none(), "try_next after drain");
}

/// A consumer waiting in `next` on an empty queue is woken by a push, and by `close`.
/// Needs futures that make progress without a reactor.
pub fn wakes_waiting_consumers_by_hand<Q: Queue<Job = u64>>(queue: Q) {
    let mut consumer = consumer(&queue);
    {
        let (counter, waker) = CountingWaker::new();
        let mut next = pin!(consumer.next());
        assert!(
            poll_once(next.as_mut(), &waker).is_pending(),
            "next on an empty open queue must wait"
        );
        let (_, quiet) = CountingWaker::new();
        let mut pushed = pin!(queue.push(envelope(5)));
        assert!(
            matches!(poll_once(pushed.as_mut(), &quiet), Poll::Ready(Ok(_))),
            "push to an empty queue"
        );
        assert!(counter.wakes() >= 1, "a push must wake a waiting consumer");
        match poll_once(next.as_mut(), &waker) {
            Poll::Ready(Some(received)) => assert_eq!(received.envelope.job, 5),
            Poll::Ready(None) => panic!("next returned None on an open queue"),
            Poll::Pending => panic!("next did not see the pushed job"),
        }
    }
    let (counter, waker) = CountingWaker::new();
    let mut next = pin!(consumer.next());
    assert!(poll_once(next.as_mut(), &waker).is_pending());
    queue.close();
    assert!(counter.wakes() >= 1, "close must wake a waiting consumer");
    assert!(
        matches!(poll_once(next.as_mut(), &waker), Poll::Ready(None)),
        "next on a closed, empty queue returns None"
    );
}

/// Dropping a pending `next` loses nothing: the job pushed afterwards is taken by the
/// next call.
pub async fn next_is_cancel_safe<Q: Queue<Job = u64>>(queue: Q) {
    let mut consumer = consumer(&queue);
    let (_, waker) = CountingWaker::new();
    for _ in 0..3 {
        let mut next = pin!(consumer.next());
        let _ = poll_once(next.as_mut(), &waker);
    }
    push(&queue, 9).await;
    {
        // Poll a `next` that may have been handed the job, then drop it.
        let mut next = pin!(consumer.next());
        if let Poll::Ready(Some(received)) = poll_once(next.as_mut(), &waker) {
            assert_eq!(received.envelope.job, 9);
            ack(received.delivery).await;
            return;
        }
    }
    let jobs = take(&mut consumer, 1).await;
    assert_eq!(jobs, vec![9], "a job survives a dropped next()");
}

/// Dropping a consumer that has taken nothing loses nothing, and a consumer made after
/// it sees every job.
pub async fn dropping_a_consumer_loses_nothing<Q: Queue<Job = u64>>(queue: Q) {
    let count = queue.capacity().unwrap_or(32).min(32) as u64;
    for job in 0..count {
        push(&queue, job).await;
    }
    let mut first = consumer(&queue);
    let taken = take(&mut first, 1).await;
    drop(first);
    let mut second = consumer(&queue);
    let mut rest = take(&mut second, count as usize - 1).await;
    rest.extend(taken);
    rest.sort_unstable();
    assert_eq!(rest, (0..count).collect::<Vec<_>>());
}

/// Several producers and consumers run concurrently in this task: every accepted job is
/// delivered, and (in-memory) exactly once. In-memory queues are closed as soon as the
/// producers finish, so this also checks draining after close.
pub async fn nothing_lost_or_duplicated<Q: Queue<Job = u64>>(
    queue: Q,
    producers: usize,
    consumers: usize,
    jobs_per_producer: u64,
) {
    let durable = <<Q::Consumer as Consumer>::Delivery as Delivery>::DURABLE;
    let total = producers as u64 * jobs_per_producer;
    let seen = Mutex::new(Vec::with_capacity(total as usize));
    let produced = std::sync::atomic::AtomicUsize::new(0);
    let queue = &queue;
    let mut tasks: Vec<BoxFuture<'_>> = Vec::new();
    for p in 0..producers as u64 {
        let produced = &produced;
        tasks.push(Box::pin(async move {
            for i in 0..jobs_per_producer {
                push(queue, p * jobs_per_producer + i).await;
                if i % 7 == 0 {
                    yield_now().await;
                }
            }
            produced.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }));
    }
    for _ in 0..consumers {
        let seen = &seen;
        let mut consumer = consumer(queue);
        tasks.push(Box::pin(async move {
            while let Some(received) = consumer.next().await {
                seen.lock().expect("lock").push(received.envelope.job);
                ack(received.delivery).await;
                yield_now().await;
            }
        }));
    }
    {
        let (seen, produced) = (&seen, &produced);
        tasks.push(Box::pin(async move {
            loop {
                let done = produced.load(std::sync::atomic::Ordering::SeqCst) == producers;
                let all_seen = seen.lock().expect("lock").len() as u64 >= total;
                if done && (!durable || all_seen) {
                    break;
                }
                yield_now().await;
            }
            queue.close();
        }));
    }
    join_all(tasks).await;
    check_exactly_once(seen.into_inner().expect("lock"), total, durable);
}

/// Like [`nothing_lost_or_duplicated`] but on real threads, one per producer and
/// consumer, each driving its futures with [`block_on`]. For in-memory backends.
pub fn nothing_lost_or_duplicated_threaded<Q: Queue<Job = u64>>(
    queue: Q,
    producers: usize,
    consumers: usize,
    jobs_per_producer: u64,
) {
    let total = producers as u64 * jobs_per_producer;
    let queue = &queue;
    let seen = std::thread::scope(|scope| {
        let takers: Vec<_> = (0..consumers)
            .map(|_| {
                let mut consumer = consumer(queue);
                scope.spawn(move || {
                    block_on(async {
                        let mut seen = Vec::new();
                        while let Some(received) = consumer.next().await {
                            seen.push(received.envelope.job);
                            ack(received.delivery).await;
                        }
                        seen
                    })
                })
            })
            .collect();
        let pushers: Vec<_> = (0..producers as u64)
            .map(|p| {
                scope.spawn(move || {
                    block_on(async {
                        for i in 0..jobs_per_producer {
                            push(queue, p * jobs_per_producer + i).await;
                        }
                    });
                })
            })
            .collect();
        for pusher in pushers {
            pusher.join().expect("producer thread panicked");
        }
        queue.close();
        takers
            .into_iter()
            .flat_map(|taker| taker.join().expect("consumer thread panicked"))
            .collect::<Vec<_>>()
    });
    check_exactly_once(seen, total, false);
}

fn check_exactly_once(mut seen: Vec<u64>, total: u64, durable: bool) {
    seen.sort_unstable();
    let received = seen.len();
    seen.dedup();
    let duplicates = received - seen.len();
    let missing: Vec<u64> = {
        let mut expected = 0..total;
        let mut missing = Vec::new();
        let mut got = seen.iter().copied().peekable();
        for job in expected.by_ref() {
            match got.peek() {
                Some(&g) if g == job => {
                    got.next();
                }
                _ => missing.push(job),
            }
        }
        missing
    };
    assert!(
        missing.is_empty(),
        "{} of {total} accepted jobs were never delivered, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    if !durable {
        assert_eq!(duplicates, 0, "in-memory delivery must be exactly once");
    }
}

/// The fate methods behave as [`Delivery`] documents: in-memory deliveries are
/// no-ops that succeed; durable ones re-deliver on `retry` (next attempt) and on
/// `release` (same attempt), and forget on `ack` and `dead_letter`.
pub async fn settle<Q: Queue<Job = u64>>(queue: Q) {
    let durable = <<Q::Consumer as Consumer>::Delivery as Delivery>::DURABLE;
    let mut consumer = consumer(&queue);
    push(&queue, 1).await;
    let received = consumer.next().await.expect("pushed");
    let first_attempt = received.envelope.attempt;
    received
        .delivery
        .retry(Duration::ZERO, "conformance: retry")
        .await
        .expect("retry");
    if durable {
        let again = consumer.next().await.expect("a retried job comes back");
        assert_eq!(again.envelope.job, 1);
        assert_eq!(
            again.envelope.attempt,
            first_attempt + 1,
            "retry counts an attempt"
        );
        again.delivery.release().await.expect("release");
        let released = consumer.next().await.expect("a released job comes back");
        assert_eq!(
            released.envelope.attempt,
            first_attempt + 1,
            "release counts no attempt"
        );
        released
            .delivery
            .dead_letter("conformance: dead")
            .await
            .expect("dead_letter");
    }
    push(&queue, 2).await;
    let received = consumer.next().await.expect("pushed");
    assert_eq!(
        received.envelope.job, 2,
        "ack/dead-letter leave nothing behind"
    );
    ack(received.delivery).await;
    queue.close();
    assert!(
        consumer.next().await.is_none(),
        "nothing left after settling"
    );
}
