//! Events the worker loops and shutdown wait on, without tokio: the one-shot
//! [`Signal`] and [`Latch`], and the repeatable [`Event`].
//!
//! # States and races
//!
//! A [`Signal`] is *unfired* or *fired*; it only moves forward. A waiter checks
//! `fired`, then takes the lock, checks again and registers its waker; `fire` sets
//! `fired` and then takes the lock and wakes every registered waker. Either the
//! waiter's second check sees `fired` (and returns at once) or its registration
//! happened, under the lock, before `fire` took it (and `fire` wakes it). A wake-up is
//! never lost. Slots freed by dropped waiters are reused only before firing; after
//! firing nobody registers again.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use crewpool_core::sync::{AtomicBool, AtomicUsize, Mutex, Ordering, lock};

/// A one-shot event: fire once, wake every waiter, stay fired.
#[derive(Debug, Default)]
pub(crate) struct Signal {
    fired: AtomicBool,
    waiters: Mutex<Slots>,
}

/// Registered wakers, in slots reused once their waiter is gone.
#[derive(Debug, Default)]
struct Slots {
    wakers: Vec<Option<Waker>>,
    free: Vec<usize>,
}

impl Slots {
    /// Registers `waker` in `slot`: a free slot (or a new one) when `None`; an
    /// equivalent waker already there is kept.
    fn register(&mut self, slot: &mut Option<usize>, waker: &Waker) {
        match *slot {
            Some(at) => match &mut self.wakers[at] {
                Some(registered) if registered.will_wake(waker) => {}
                entry => *entry = Some(waker.clone()),
            },
            None => {
                let at = match self.free.pop() {
                    Some(at) => {
                        self.wakers[at] = Some(waker.clone());
                        at
                    }
                    None => {
                        self.wakers.push(Some(waker.clone()));
                        self.wakers.len() - 1
                    }
                };
                *slot = Some(at);
            }
        }
    }

    /// Frees `slot`.
    fn remove(&mut self, slot: usize) {
        self.wakers[slot] = None;
        self.free.push(slot);
    }
}

impl Signal {
    pub(crate) fn new() -> Self {
        Signal {
            fired: AtomicBool::new(false),
            waiters: Mutex::new(Slots::default()),
        }
    }

    /// Fires the signal and wakes every waiter. Later calls do nothing.
    pub(crate) fn fire(&self) {
        if self.fired.swap(true, Ordering::SeqCst) {
            return;
        }
        let wakers: Vec<Waker> = {
            let mut slots = lock(&self.waiters);
            slots.wakers.iter_mut().filter_map(Option::take).collect()
        };
        for waker in wakers {
            waker.wake();
        }
    }

    pub(crate) fn is_fired(&self) -> bool {
        self.fired.load(Ordering::SeqCst)
    }

    /// A future that completes once the signal has fired.
    pub(crate) fn wait(&self) -> Wait<'_> {
        Wait {
            signal: self,
            slot: None,
        }
    }
}

/// The future returned by [`Signal::wait`].
#[derive(Debug)]
pub(crate) struct Wait<'a> {
    signal: &'a Signal,
    slot: Option<usize>,
}

impl Future for Wait<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let signal = this.signal;
        if signal.is_fired() {
            return Poll::Ready(());
        }
        let mut slots = lock(&signal.waiters);
        // Checked again under the lock: see "States and races".
        if signal.is_fired() {
            return Poll::Ready(());
        }
        slots.register(&mut this.slot, cx.waker());
        Poll::Pending
    }
}

impl Drop for Wait<'_> {
    fn drop(&mut self) {
        if let Some(slot) = self.slot {
            lock(&self.signal.waiters).remove(slot);
        }
    }
}

/// Counts live workers down to zero, then fires.
#[derive(Debug)]
pub(crate) struct Latch {
    count: AtomicUsize,
    zero: Signal,
}

impl Latch {
    pub(crate) fn new(count: usize) -> Self {
        let latch = Latch {
            count: AtomicUsize::new(count),
            zero: Signal::new(),
        };
        if count == 0 {
            latch.zero.fire();
        }
        latch
    }

    /// One fewer. The call that reaches zero fires the latch.
    pub(crate) fn count_down(&self) {
        // AcqRel: the last worker's exit happens-before whoever sees zero.
        if self.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.zero.fire();
        }
    }

    /// One more, unless the count already reached zero (the latch has fired and stays
    /// fired). Returns whether it counted.
    pub(crate) fn try_count_up(&self) -> bool {
        let mut count = self.count.load(Ordering::Acquire);
        loop {
            if count == 0 {
                return false;
            }
            match self.count.compare_exchange_weak(
                count,
                count + 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return true,
                Err(actual) => count = actual,
            }
        }
    }

    pub(crate) fn count(&self) -> usize {
        self.count.load(Ordering::Acquire)
    }

    /// Completes when the count reaches zero.
    pub(crate) fn wait(&self) -> Wait<'_> {
        self.zero.wait()
    }
}

/// A repeatable notification: [`listen`](Event::listen) returns a future that
/// completes at the next [`notify_all`](Event::notify_all) after it was created.
///
/// # States and races
///
/// `epoch` counts notifications. A listener records the epoch when it is created;
/// it is ready once `epoch` moved on. `notify_all`, under the lock, bumps `epoch`,
/// takes every registered waker and empties the slots; a listener checks the epoch
/// again under the lock before registering, so a notification between its creation
/// and its registration is seen, never lost. The bump and the emptying happen under
/// one lock so that a listener created just after a bump cannot register into slots
/// that are about to be emptied: its slot number would then be stale while its epoch
/// is still current, and dropping it would free a later listener's slot (that
/// listener's wake-up lost; loom model `loom_event`). Callers create the listener
/// *before* checking the condition they wait for, then wait on it only if the
/// condition did not hold.
///
/// A listener dropped before the notification frees its slot (under the lock, if the
/// epoch is still its own: after a notification its slot was emptied, and may belong
/// to a newer listener). So the slots never hold more than the live listeners, however
/// many are made and dropped between notifications.
#[derive(Debug)]
pub(crate) struct Event {
    epoch: AtomicUsize,
    waiters: Mutex<Slots>,
}

impl Event {
    pub(crate) fn new() -> Self {
        Event {
            epoch: AtomicUsize::new(0),
            waiters: Mutex::new(Slots::default()),
        }
    }

    /// Wakes every current listener.
    pub(crate) fn notify_all(&self) {
        let wakers: Vec<Waker> = {
            let mut slots = lock(&self.waiters);
            // Under the lock, with the emptying: a slot number is valid exactly while
            // the epoch its listener recorded is current (see "States and races").
            self.epoch.fetch_add(1, Ordering::SeqCst);
            slots.free.clear();
            slots.wakers.drain(..).flatten().collect()
        };
        for waker in wakers {
            waker.wake();
        }
    }

    /// A future that completes at the next `notify_all`.
    pub(crate) fn listen(&self) -> Listen<'_> {
        Listen {
            event: self,
            epoch: self.epoch.load(Ordering::SeqCst),
            slot: None,
        }
    }

    /// How many listeners are registered (for tests).
    #[cfg(all(test, not(crewpool_loom)))]
    pub(crate) fn listeners(&self) -> usize {
        lock(&self.waiters).wakers.iter().flatten().count()
    }
}

/// The future returned by [`Event::listen`].
#[derive(Debug)]
pub(crate) struct Listen<'a> {
    event: &'a Event,
    epoch: usize,
    /// Its slot in the event's wakers, once registered (valid while the epoch is
    /// `epoch`).
    slot: Option<usize>,
}

impl Listen<'_> {
    /// Whether a notification came after this listener was made.
    #[inline]
    pub(crate) fn notified(&self) -> bool {
        self.event.epoch.load(Ordering::SeqCst) != self.epoch
    }
}

impl Future for Listen<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let event = this.event;
        if event.epoch.load(Ordering::SeqCst) != this.epoch {
            return Poll::Ready(());
        }
        let mut slots = lock(&event.waiters);
        if event.epoch.load(Ordering::SeqCst) != this.epoch {
            return Poll::Ready(());
        }
        slots.register(&mut this.slot, cx.waker());
        Poll::Pending
    }
}

impl Drop for Listen<'_> {
    fn drop(&mut self) {
        let Some(slot) = self.slot else {
            return;
        };
        let mut slots = lock(&self.event.waiters);
        // After a notification the slot was emptied (and may be someone else's now).
        if self.event.epoch.load(Ordering::SeqCst) == self.epoch {
            slots.remove(slot);
        }
    }
}

#[cfg(all(test, not(crewpool_loom)))]
mod tests {
    use super::*;
    use crewpool_core::testkit::{CountingWaker, poll_once};
    use std::pin::pin;

    #[test]
    fn fire_wakes_every_waiter_once_registered() {
        let signal = Signal::new();
        let (first, first_waker) = CountingWaker::new();
        let (second, second_waker) = CountingWaker::new();
        let mut a = pin!(signal.wait());
        let mut b = pin!(signal.wait());
        assert!(poll_once(a.as_mut(), &first_waker).is_pending());
        assert!(poll_once(b.as_mut(), &second_waker).is_pending());
        // A re-poll with the same waker keeps one registration.
        assert!(poll_once(a.as_mut(), &first_waker).is_pending());
        signal.fire();
        signal.fire();
        assert_eq!((first.wakes(), second.wakes()), (1, 1));
        assert!(poll_once(a, &first_waker).is_ready());
        assert!(poll_once(b, &second_waker).is_ready());
    }

    #[test]
    fn dropped_waiters_free_their_slots() {
        let signal = Signal::new();
        let (_, waker) = CountingWaker::new();
        for _ in 0..100 {
            let mut wait = pin!(signal.wait());
            assert!(poll_once(wait.as_mut(), &waker).is_pending());
        }
        assert_eq!(lock(&signal.waiters).wakers.len(), 1);
    }

    #[test]
    fn event_wakes_listeners_created_before_the_notification_only() {
        let event = Event::new();
        let (counter, waker) = CountingWaker::new();
        let mut before = pin!(event.listen());
        assert!(poll_once(before.as_mut(), &waker).is_pending());
        event.notify_all();
        assert_eq!(counter.wakes(), 1);
        assert!(poll_once(before, &waker).is_ready());
        let mut after = pin!(event.listen());
        assert!(poll_once(after.as_mut(), &waker).is_pending());
    }

    #[test]
    fn dropped_listeners_leave_no_waker_behind() {
        let event = Event::new();
        // A fresh waker each time, as from executors whose wakers do not `will_wake`
        // each other.
        for _ in 0..100 {
            let (_, waker) = CountingWaker::new();
            let mut listen = pin!(event.listen());
            assert!(poll_once(listen.as_mut(), &waker).is_pending());
        }
        assert_eq!(event.listeners(), 0);
        let (_, waker) = CountingWaker::new();
        let mut kept = pin!(event.listen());
        assert!(poll_once(kept.as_mut(), &waker).is_pending());
        assert_eq!(event.listeners(), 1);
        event.notify_all();
        assert_eq!(event.listeners(), 0);
        assert!(poll_once(kept, &waker).is_ready());
    }

    #[test]
    fn latch_counts_up_only_before_it_fired() {
        let latch = Latch::new(1);
        assert!(latch.try_count_up());
        latch.count_down();
        latch.count_down();
        assert!(!latch.try_count_up(), "a fired latch stays fired");
        assert_eq!(latch.count(), 0);
    }

    #[test]
    fn latch_fires_at_zero() {
        let latch = Latch::new(2);
        let (counter, waker) = CountingWaker::new();
        let mut wait = pin!(latch.wait());
        assert!(poll_once(wait.as_mut(), &waker).is_pending());
        latch.count_down();
        assert_eq!(counter.wakes(), 0);
        latch.count_down();
        assert_eq!(counter.wakes(), 1);
        assert!(poll_once(wait, &waker).is_ready());
    }
}
