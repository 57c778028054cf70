//! The backend conformance suite on deque queues, bounded and unbounded.

use crewpool_core::testkit;
use crewpool_deque::DequeQueue;

#[tokio::test]
async fn delivers_what_was_pushed() {
    testkit::delivers_what_was_pushed(DequeQueue::bounded(4)).await;
    testkit::delivers_what_was_pushed(DequeQueue::unbounded()).await;
}

#[test]
fn backpressure_by_hand() {
    testkit::backpressure_by_hand(DequeQueue::bounded(1));
    testkit::backpressure_by_hand(DequeQueue::bounded(3));
}

#[tokio::test]
async fn push_now_takes_what_fits() {
    testkit::push_now_takes_what_fits(DequeQueue::bounded(3)).await;
    testkit::push_now_takes_what_fits(DequeQueue::unbounded()).await;
}

#[test]
fn try_push_gives_job_back() {
    testkit::try_push_gives_job_back(DequeQueue::bounded(3));
    testkit::try_push_gives_job_back(DequeQueue::unbounded());
}

#[tokio::test]
async fn close_and_drain() {
    testkit::close_and_drain(DequeQueue::bounded(16)).await;
    testkit::close_and_drain(DequeQueue::unbounded()).await;
}

#[test]
fn wakes_waiting_consumers_by_hand() {
    testkit::wakes_waiting_consumers_by_hand(DequeQueue::bounded(2));
    testkit::wakes_waiting_consumers_by_hand(DequeQueue::unbounded());
}

#[tokio::test]
async fn next_is_cancel_safe() {
    testkit::next_is_cancel_safe(DequeQueue::bounded(2)).await;
    testkit::next_is_cancel_safe(DequeQueue::unbounded()).await;
}

#[tokio::test]
async fn dropping_a_consumer_loses_nothing() {
    testkit::dropping_a_consumer_loses_nothing(DequeQueue::bounded(8)).await;
    testkit::dropping_a_consumer_loses_nothing(DequeQueue::unbounded()).await;
}

#[tokio::test]
async fn nothing_lost_or_duplicated() {
    testkit::nothing_lost_or_duplicated(DequeQueue::bounded(4), 3, 4, 500).await;
    testkit::nothing_lost_or_duplicated(DequeQueue::unbounded(), 3, 4, 500).await;
}

#[test]
fn nothing_lost_or_duplicated_threaded() {
    testkit::nothing_lost_or_duplicated_threaded(DequeQueue::bounded(8), 2, 3, 20_000);
    testkit::nothing_lost_or_duplicated_threaded(DequeQueue::unbounded(), 2, 3, 20_000);
}

#[tokio::test]
async fn settle() {
    testkit::settle(DequeQueue::bounded(4)).await;
}

#[tokio::test]
async fn spawned_jobs_are_delivered() {
    testkit::spawned_jobs_are_delivered(DequeQueue::bounded(16)).await;
    testkit::spawned_jobs_are_delivered(DequeQueue::unbounded()).await;
}

#[test]
fn a_dropped_waiting_push_pushes_nothing_by_hand() {
    testkit::a_dropped_waiting_push_pushes_nothing_by_hand(DequeQueue::bounded(1));
    testkit::a_dropped_waiting_push_pushes_nothing_by_hand(DequeQueue::bounded(3));
}

#[test]
fn push_batch_by_hand() {
    testkit::push_batch_by_hand(DequeQueue::bounded(1));
    testkit::push_batch_by_hand(DequeQueue::bounded(3));
}
