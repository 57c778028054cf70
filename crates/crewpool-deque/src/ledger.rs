//! The ledger: how many jobs are accepted and not yet taken, and whether the queue is
//! closed, in one atomic word.
//!
//! # States
//!
//! The word is `count << 1 | CLOSED`. `count` covers every accepted job not yet handed
//! out by a consumer: those in the global injector, in consumers' local deques and
//! inboxes, in a stolen batch on its way between two deques, and those whose push has
//! reserved its place but not yet landed in a deque. `CLOSED` is set once and never
//! cleared.
//!
//! ```text
//!   open, count n ──reserve──▶ open, n+1        (push, spawn: refused when full)
//!   open, count n ──close────▶ closed, n
//!   closed, n ─────reserve───▶ closed, n+1      (only a spawn from a live consumer)
//!   any, n > 0 ────take──────▶ same flag, n-1
//! ```
//!
//! # Races
//!
//! - *Push vs. close*: both are read-modify-writes of this word, so one comes first. A
//!   push that reserved before the close is accepted and its job will be delivered; one
//!   after it is refused and gets its envelope back. There is no window where a push
//!   passed a closed check but is not yet counted.
//! - *A consumer deciding it is done vs. a landing push*: a consumer returns `None` only
//!   when it reads `closed` and `count == 0`. A push's reservation precedes its landing,
//!   so while a job is landing the count is not zero and consumers wait (the landing
//!   then wakes one).
//! - *Reserve vs. capacity*: the check and the increment are one compare-and-swap, so
//!   concurrent producers never overshoot the capacity.
//!
//! All operations on the word are `SeqCst`: they take part in the wake-up protocols of
//! [`crate::waiters`] (a take is the state change that frees room; close and the last
//! take of a closed queue let sleeping consumers finish).

use crate::loom::{AtomicUsize, Ordering};

const CLOSED: usize = 1;
const ONE: usize = 2;

/// Why a reservation was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    Full,
    Closed,
}

/// A snapshot of the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Entry(usize);

impl Entry {
    pub(crate) fn count(self) -> usize {
        self.0 >> 1
    }

    pub(crate) fn is_closed(self) -> bool {
        self.0 & CLOSED != 0
    }
}

/// See the [module docs](self).
#[derive(Debug)]
pub(crate) struct Ledger {
    word: AtomicUsize,
    capacity: Option<usize>,
}

impl Ledger {
    pub(crate) fn new(capacity: Option<usize>) -> Self {
        Ledger {
            word: AtomicUsize::new(0),
            capacity,
        }
    }

    pub(crate) fn capacity(&self) -> Option<usize> {
        self.capacity
    }

    /// Reserves a place for one job. `even_if_closed` is for sub-jobs spawned by a job
    /// still running on a live consumer (see the spawner).
    pub(crate) fn reserve(&self, even_if_closed: bool) -> Result<(), Refused> {
        let mut word = self.word.load(Ordering::SeqCst);
        loop {
            let entry = Entry(word);
            if entry.is_closed() && !even_if_closed {
                return Err(Refused::Closed);
            }
            if self.capacity.is_some_and(|cap| entry.count() >= cap) {
                return Err(Refused::Full);
            }
            match self.word.compare_exchange_weak(
                word,
                word + ONE,
                Ordering::SeqCst,
                Ordering::SeqCst,
            ) {
                Ok(_) => return Ok(()),
                Err(actual) => word = actual,
            }
        }
    }

    /// Records `n` jobs handed out; returns the entry before.
    pub(crate) fn take(&self, n: usize) -> Entry {
        Entry(self.word.fetch_sub(n * ONE, Ordering::SeqCst))
    }

    /// Sets the closed flag; returns whether this call set it.
    pub(crate) fn close(&self) -> bool {
        self.word.fetch_or(CLOSED, Ordering::SeqCst) & CLOSED == 0
    }

    pub(crate) fn load(&self) -> Entry {
        Entry(self.word.load(Ordering::SeqCst))
    }

    /// Whether a push could reserve a place now (or is refused for being closed,
    /// which also ends a wait for room).
    pub(crate) fn has_room(&self) -> bool {
        let entry = self.load();
        entry.is_closed() || self.capacity.is_none_or(|cap| entry.count() < cap)
    }
}
