//! Model 6: an [`Event`] listener made, registered and dropped while a notification
//! is under way.
//!
//! Guards against: a listener created just after `notify_all` moved the epoch on, but
//! registered before `notify_all` emptied the slots, keeping a slot number that the
//! emptying made stale; dropping it then freed (or registering again overwrote) the
//! slot of a later listener, whose wake-up was lost (a retiring worker parked for
//! ever), or indexed past the emptied slots. A listener registered after the
//! notification must be woken by the next one.

use std::pin::pin;

use crewpool_core::testkit::{CountingWaker, poll_once};
use loom::thread;

use crate::signal::Event;
use crewpool_core::sync::Arc;

#[test]
fn loom_event_a_listener_dropped_during_a_notification_frees_only_its_own_slot() {
    loom::model(|| {
        let event = Arc::new(Event::new());
        let notifier = {
            let event = Arc::clone(&event);
            thread::spawn(move || event.notify_all())
        };
        // Registers (perhaps between the notification's two steps), then is dropped
        // after the notification ended and a later listener registered. (Joining the
        // notifier first keeps the model within two preemptions.)
        let (_, early_waker) = CountingWaker::new();
        let mut early = Box::pin(event.listen());
        let _ = poll_once(early.as_mut(), &early_waker);
        notifier.join().expect("notifier");

        let (later_wakes, later_waker) = CountingWaker::new();
        let mut later = pin!(event.listen());
        let later_pending = poll_once(later.as_mut(), &later_waker).is_pending();
        drop(early);

        // Woken by the notification above if it was made before it, else by this one.
        event.notify_all();
        assert!(
            !later_pending || later_wakes.wakes() >= 1,
            "a registered listener was not woken"
        );
    });
}
