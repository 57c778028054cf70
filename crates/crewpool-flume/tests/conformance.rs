//! The backend conformance suite on flume queues, bounded and unbounded.

use crewpool_core::testkit;
use crewpool_flume::FlumeQueue;

#[tokio::test]
async fn delivers_what_was_pushed() {
    testkit::delivers_what_was_pushed(FlumeQueue::bounded(4)).await;
    testkit::delivers_what_was_pushed(FlumeQueue::unbounded()).await;
}

#[test]
fn backpressure_by_hand() {
    testkit::backpressure_by_hand(FlumeQueue::bounded(1));
    testkit::backpressure_by_hand(FlumeQueue::bounded(3));
}

#[tokio::test]
async fn push_now_takes_what_fits() {
    testkit::push_now_takes_what_fits(FlumeQueue::bounded(3)).await;
    testkit::push_now_takes_what_fits(FlumeQueue::unbounded()).await;
}

#[test]
fn try_push_gives_job_back() {
    testkit::try_push_gives_job_back(FlumeQueue::bounded(3));
    testkit::try_push_gives_job_back(FlumeQueue::unbounded());
}

#[tokio::test]
async fn close_and_drain() {
    testkit::close_and_drain(FlumeQueue::bounded(16)).await;
    testkit::close_and_drain(FlumeQueue::unbounded()).await;
}

#[test]
fn wakes_waiting_consumers_by_hand() {
    testkit::wakes_waiting_consumers_by_hand(FlumeQueue::bounded(2));
    testkit::wakes_waiting_consumers_by_hand(FlumeQueue::unbounded());
}

#[tokio::test]
async fn next_is_cancel_safe() {
    testkit::next_is_cancel_safe(FlumeQueue::bounded(2)).await;
    testkit::next_is_cancel_safe(FlumeQueue::unbounded()).await;
}

#[tokio::test]
async fn dropping_a_consumer_loses_nothing() {
    testkit::dropping_a_consumer_loses_nothing(FlumeQueue::bounded(8)).await;
    testkit::dropping_a_consumer_loses_nothing(FlumeQueue::unbounded()).await;
}

#[tokio::test]
async fn nothing_lost_or_duplicated() {
    testkit::nothing_lost_or_duplicated(FlumeQueue::bounded(4), 3, 4, 500).await;
    testkit::nothing_lost_or_duplicated(FlumeQueue::unbounded(), 3, 4, 500).await;
}

#[test]
fn nothing_lost_or_duplicated_threaded() {
    testkit::nothing_lost_or_duplicated_threaded(FlumeQueue::bounded(8), 2, 3, 20_000);
    testkit::nothing_lost_or_duplicated_threaded(FlumeQueue::unbounded(), 2, 3, 20_000);
}

#[tokio::test]
async fn settle() {
    testkit::settle(FlumeQueue::bounded(4)).await;
}

#[tokio::test]
async fn spawned_jobs_are_delivered() {
    testkit::spawned_jobs_are_delivered(FlumeQueue::bounded(16)).await;
    testkit::spawned_jobs_are_delivered(FlumeQueue::unbounded()).await;
}

#[test]
fn a_dropped_waiting_push_pushes_nothing_by_hand() {
    testkit::a_dropped_waiting_push_pushes_nothing_by_hand(FlumeQueue::bounded(1));
    testkit::a_dropped_waiting_push_pushes_nothing_by_hand(FlumeQueue::bounded(3));
}

#[test]
#[should_panic(expected = "a bounded queue needs a capacity of at least 1")]
fn a_bound_of_zero_is_refused() {
    let _ = FlumeQueue::<u64>::bounded(0);
}

#[test]
fn push_batch_by_hand() {
    testkit::push_batch_by_hand(FlumeQueue::bounded(1));
    testkit::push_batch_by_hand(FlumeQueue::bounded(3));
}
