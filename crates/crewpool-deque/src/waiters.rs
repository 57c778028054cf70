//! Wait lists: who to wake when a job or room appears, with no lost wake-ups.
//!
//! Two lists exist per queue: consumers parked in `next` (woken by whatever makes a
//! job visible, and all at once by close or by the last job of a closed queue), and
//! producers waiting for room in `push` or `ready` (woken by takes and by close).
//!
//! # Protocol
//!
//! A waiter registers its waker, which ends with a `SeqCst` fence, and then checks its
//! condition once more before returning `Pending`. A notifier first changes the state
//! (lands a job, frees room, closes), then calls [`WaitList::notify_one`] or
//! [`WaitList::notify_all`], which begin with a `SeqCst` fence followed by a relaxed
//! load of the number of waiters. Of the two fences, one comes first in the single
//! total order of `SeqCst` operations:
//!
//! - the notifier's: then the waiter's re-check, sequenced after its own fence, sees
//!   the new state and it does not sleep;
//! - the waiter's: then the notifier's load, sequenced after its fence, sees the count
//!   that includes the waiter (or a later one, which only a notifier that removed and
//!   woke it can have written), so the notifier wakes somebody.
//!
//! This keeps the notifier's common case to a fence and a load when nobody waits.
//!
//! # States of one registration
//!
//! `None` (not registered) → `Some(key)` with an entry in the list (registered) →
//! either the entry is removed by a notifier, which then wakes it (woken), or by the
//! waiter itself ([`WaitList::cancel`]). A waiter that cancels and learns it had been
//! woken, but will not act on it, passes the wake-up on with `notify_one`, so a wake-up
//! is never swallowed by a future that was dropped.

use std::collections::VecDeque;
use std::fmt;
use std::task::Waker;

use crewpool_core::sync::{AtomicUsize, Mutex, Ordering, fence, lock};

/// A list of wakers, woken one at a time (oldest first) or all at once.
pub(crate) struct WaitList {
    /// The number of entries, written under the lock and read without it by
    /// notifiers (see "Protocol" for why relaxed is enough after the fences).
    waiting: AtomicUsize,
    entries: Mutex<Entries>,
}

#[derive(Default)]
struct Entries {
    next_key: u64,
    list: VecDeque<(u64, Waker)>,
}

impl WaitList {
    pub(crate) fn new() -> Self {
        WaitList {
            waiting: AtomicUsize::new(0),
            entries: Mutex::new(Entries::default()),
        }
    }

    /// Registers `waker` under `key` (a fresh key when `None`, or when its entry was
    /// already removed by a notifier), then fences. The caller must check its
    /// condition again afterwards, before it returns `Pending`.
    pub(crate) fn register(&self, key: &mut Option<u64>, waker: &Waker) {
        {
            let mut entries = lock(&self.entries);
            let existing = key.and_then(|k| entries.list.iter_mut().find(|(e, _)| *e == k));
            match existing {
                Some((_, registered)) => {
                    if !registered.will_wake(waker) {
                        registered.clone_from(waker);
                    }
                }
                None => {
                    let k = entries.next_key;
                    entries.next_key = k.wrapping_add(1);
                    entries.list.push_back((k, waker.clone()));
                    *key = Some(k);
                }
            }
            // Relaxed: ordered for notifiers by the fence below (see "Protocol").
            self.waiting.store(entries.list.len(), Ordering::Relaxed);
        }
        fence(Ordering::SeqCst);
    }

    /// Removes the registration under `key`, if any. Returns `true` when a notifier
    /// had already removed it, that is, when this waiter was woken.
    #[inline]
    pub(crate) fn cancel(&self, key: &mut Option<u64>) -> bool {
        // Inlined: most callers (every `next` that found a job at once, every push
        // that had room) never registered.
        match key.take() {
            None => false,
            Some(k) => self.cancel_entry(k),
        }
    }

    fn cancel_entry(&self, k: u64) -> bool {
        let mut entries = lock(&self.entries);
        match entries.list.iter().position(|(e, _)| *e == k) {
            Some(at) => {
                entries.list.remove(at);
                // Relaxed: a smaller count only makes notifiers skip a lock they would
                // have found nothing useful behind.
                self.waiting.store(entries.list.len(), Ordering::Relaxed);
                false
            }
            None => true,
        }
    }

    /// Wakes the oldest waiter, if any.
    #[inline]
    pub(crate) fn notify_one(&self) {
        fence(Ordering::SeqCst);
        self.notify_one_fenced()
    }

    /// Like [`notify_one`](WaitList::notify_one), for a notifier that issued the
    /// `SeqCst` fence itself, after its state change.
    #[inline]
    pub(crate) fn notify_one_fenced(&self) {
        // Relaxed after the caller's fence: see "Protocol".
        if self.waiting.load(Ordering::Relaxed) == 0 {
            return;
        }
        self.wake_one();
    }

    /// Like [`notify_all`](WaitList::notify_all), for a notifier that issued the
    /// `SeqCst` fence itself, after its state change.
    pub(crate) fn notify_all_fenced(&self) {
        // Relaxed after the caller's fence: see "Protocol".
        if self.waiting.load(Ordering::Relaxed) == 0 {
            return;
        }
        let woken = {
            let mut entries = lock(&self.entries);
            self.waiting.store(0, Ordering::Relaxed);
            std::mem::take(&mut entries.list)
        };
        for (_, waker) in woken {
            waker.wake();
        }
    }

    /// Wakes up to `n` waiters, oldest first, with one fence (and a lock per waiter
    /// woken): a producer that landed `n` jobs at once.
    #[inline]
    pub(crate) fn notify_many(&self, n: usize) {
        fence(Ordering::SeqCst);
        // Relaxed after the fence: see "Protocol".
        if n == 0 || self.waiting.load(Ordering::Relaxed) == 0 {
            return;
        }
        for _ in 0..n {
            if !self.wake_one() {
                return;
            }
        }
    }

    /// Wakes the oldest waiter, outside the lock; `false` when none waited.
    #[cold]
    fn wake_one(&self) -> bool {
        let woken = {
            let mut entries = lock(&self.entries);
            let woken = entries.list.pop_front();
            self.waiting.store(entries.list.len(), Ordering::Relaxed);
            woken
        };
        match woken {
            Some((_, waker)) => {
                waker.wake();
                true
            }
            None => false,
        }
    }

    /// Wakes every waiter.
    pub(crate) fn notify_all(&self) {
        fence(Ordering::SeqCst);
        self.notify_all_fenced();
    }

    /// How many wait now (a hint: it may change at once).
    pub(crate) fn len(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }
}

impl fmt::Debug for WaitList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WaitList")
            .field("waiting", &self.len())
            .finish()
    }
}

/// One registration in a [`WaitList`] held by a future; dropping it before it is
/// [`finish`](Waiter::finish)ed (the future was cancelled) passes on a wake-up it had
/// received, so another waiter gets the chance it would have had.
pub(crate) struct Waiter<'a> {
    list: &'a WaitList,
    key: Option<u64>,
}

impl<'a> Waiter<'a> {
    pub(crate) fn new(list: &'a WaitList) -> Self {
        Waiter { list, key: None }
    }

    /// See [`WaitList::register`]: check the condition again after this.
    pub(crate) fn register(&mut self, waker: &Waker) {
        self.list.register(&mut self.key, waker);
    }

    /// Leaves the list because the waiter got what it waited for.
    pub(crate) fn finish(mut self) {
        self.leave();
    }

    /// [`finish`](Waiter::finish) for a waiter kept in a future's state: leaves the
    /// list (if registered); dropping it later passes nothing on.
    #[inline]
    pub(crate) fn leave(&mut self) {
        self.list.cancel(&mut self.key);
    }
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        if self.list.cancel(&mut self.key) {
            self.list.notify_one();
        }
    }
}

impl fmt::Debug for Waiter<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Waiter").field("key", &self.key).finish()
    }
}
