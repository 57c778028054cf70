//! One-shot events the worker loops and shutdown wait on, without tokio.
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

use crate::loom::{AtomicBool, AtomicUsize, Mutex, Ordering, lock};

/// A one-shot event: fire once, wake every waiter, stay fired.
#[derive(Debug, Default)]
pub(crate) struct Signal {
    fired: AtomicBool,
    waiters: Mutex<Slots>,
}

#[derive(Debug, Default)]
struct Slots {
    wakers: Vec<Option<Waker>>,
    free: Vec<usize>,
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

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.signal.is_fired() {
            return Poll::Ready(());
        }
        let mut slots = lock(&self.signal.waiters);
        // Checked again under the lock: see "States and races".
        if self.signal.is_fired() {
            return Poll::Ready(());
        }
        match self.slot {
            Some(slot) => match &mut slots.wakers[slot] {
                Some(waker) if waker.will_wake(cx.waker()) => {}
                entry => *entry = Some(cx.waker().clone()),
            },
            None => {
                let waker = Some(cx.waker().clone());
                let slot = match slots.free.pop() {
                    Some(slot) => {
                        slots.wakers[slot] = waker;
                        slot
                    }
                    None => {
                        slots.wakers.push(waker);
                        slots.wakers.len() - 1
                    }
                };
                drop(slots);
                self.slot = Some(slot);
            }
        }
        Poll::Pending
    }
}

impl Drop for Wait<'_> {
    fn drop(&mut self) {
        if let Some(slot) = self.slot {
            let mut slots = lock(&self.signal.waiters);
            slots.wakers[slot] = None;
            slots.free.push(slot);
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

    pub(crate) fn count(&self) -> usize {
        self.count.load(Ordering::Acquire)
    }

    /// Completes when the count reaches zero.
    pub(crate) fn wait(&self) -> Wait<'_> {
        self.zero.wait()
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
