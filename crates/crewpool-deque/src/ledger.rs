//! The ledger: how many jobs were accepted, how many were handed out, and whether the
//! queue is closed; the count of waiting jobs (depth, and the bound of a bounded
//! queue) is the difference.
//!
//! # Why two sides
//!
//! One shared counter, incremented by every push and decremented by every take, costs
//! a read-modify-write per job on a cache line that producers and consumers fight
//! over. Instead the two sides write apart:
//!
//! - producers reserve on `head`, `pushed << 1 | CLOSED`, which only they modify;
//! - each consumer counts what it handed out in its own slot's `taken`, which only it
//!   writes (a store, not a read-modify-write); a dropped consumer's count moves into
//!   the registry's `retired` total, under the registry lock that
//!   [`Registry::taken`] also holds, so nothing is counted twice or lost.
//!
//! `count = pushed - taken`. A producer needs `taken` only to check the bound, so it
//! keeps a lower bound of it in `seen_taken` and sums the consumers' counters only
//! when the queue looks full by that bound.
//!
//! # States
//!
//! ```text
//!   open, pushed n ──reserve──▶ open, n+1       (push, spawn: refused when full)
//!   open, pushed n ──close────▶ closed, n
//!   closed, n ─────reserve───▶ closed, n+1     (only a spawn from a live consumer)
//!   taken t ───────take──────▶ t+1             (a consumer hands a job out)
//! ```
//!
//! # Races
//!
//! - *Push vs. close*: both are read-modify-writes of `head`, so one comes first. A
//!   push that reserved before the close is accepted and its job will be delivered; one
//!   after it is refused and gets its envelope back.
//! - *A consumer deciding it is done vs. a landing push*: [`Ledger::drained`] reads
//!   `taken` first and `head` second. `taken` only grows and never passes `pushed`, so
//!   if the two are equal then every job reserved by the time `head` was read had been
//!   handed out by then: nothing is still landing. A push's reservation precedes its
//!   landing, so a landing job keeps `pushed` ahead of `taken`.
//! - *Reserve vs. capacity*: `seen_taken` and a fresh sum are lower bounds of `taken`
//!   at the time of the compare-and-swap on `head`, so `pushed - bound` is an upper
//!   bound of the count; admitting only below the capacity never overshoots it, with
//!   any number of producers.
//! - *The last take of a closed queue vs. a consumer going to sleep*: close stores
//!   `closed_hint` and then wakes every sleeper (its `notify_all` begins with a `SeqCst`
//!   fence); a take stores its count, fences (`SeqCst`) and then loads `closed_hint`.
//!   If the take misses the hint, its fence came before close's, so every consumer
//!   woken by close, or parking later (it registers and fences before re-checking),
//!   sees the count. If it sees the hint, it wakes the sleepers itself.

use std::fmt;

use crossbeam_utils::CachePadded;

use crate::registry::Registry;
use crewpool_core::sync::{AtomicBool, AtomicUsize, Ordering};

const CLOSED: usize = 1;
const ONE: usize = 2;

/// Why a reservation was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    Full,
    Closed,
}

/// See the [module docs](self).
pub(crate) struct Ledger {
    /// `pushed << 1 | CLOSED`, modified only by producers and close. On a line of its
    /// own, with what only producers read: consumers never touch it per job.
    head: CachePadded<AtomicUsize>,
    /// Mirrors `CLOSED` on a line consumers can read on every take without fighting
    /// producers for it.
    closed_hint: CachePadded<AtomicBool>,
    /// A lower bound of the total taken, raised (`fetch_max`) by producers that had
    /// to sum it. Relaxed: any stale value is still a lower bound.
    /// (With `capacity`, off the padded lines: producers write it only when the queue
    /// looks full, and takes read `capacity`.)
    seen_taken: AtomicUsize,
    capacity: Option<usize>,
}

impl Ledger {
    pub(crate) fn new(capacity: Option<usize>) -> Self {
        Ledger {
            head: CachePadded::new(AtomicUsize::new(0)),
            closed_hint: CachePadded::new(AtomicBool::new(false)),
            seen_taken: AtomicUsize::new(0),
            capacity,
        }
    }

    pub(crate) fn capacity(&self) -> Option<usize> {
        self.capacity
    }

    /// Reserves a place for one job. `even_if_closed` is for sub-jobs spawned by a job
    /// still running on a live consumer (see the spawner).
    pub(crate) fn reserve<T>(
        &self,
        even_if_closed: bool,
        registry: &Registry<T>,
    ) -> Result<(), Refused> {
        self.reserve_up_to(1, even_if_closed, registry).map(drop)
    }

    /// Reserves places for up to `wanted` jobs (at least 1) of a producer's batch:
    /// as many as the bound leaves room for, with one compare-and-swap; returns how
    /// many.
    pub(crate) fn reserve_many<T>(
        &self,
        wanted: usize,
        registry: &Registry<T>,
    ) -> Result<usize, Refused> {
        debug_assert!(wanted > 0);
        self.reserve_up_to(wanted, false, registry)
    }

    /// Reserves places for up to `wanted` jobs (at least 1) with one compare-and-swap;
    /// returns how many (all of them unless the bound leaves less room). The free
    /// places are counted against a lower bound of `taken`, so the count never passes
    /// the capacity, whoever else reserves; the consumers' counts are summed only when
    /// that bound leaves less room than wanted.
    ///
    /// Always inlined: with [`reserve`](Ledger::reserve)'s constant 1 the room check
    /// folds to "is the queue full", and the grant to one place.
    #[inline(always)]
    fn reserve_up_to<T>(
        &self,
        wanted: usize,
        even_if_closed: bool,
        registry: &Registry<T>,
    ) -> Result<usize, Refused> {
        let mut word = self.head.load(Ordering::SeqCst);
        loop {
            if word & CLOSED != 0 && !even_if_closed {
                return Err(Refused::Closed);
            }
            let mut granted = wanted;
            if let Some(capacity) = self.capacity {
                let pushed = word >> 1;
                // Relaxed: a stale bound is a smaller one, which is still safe.
                let seen = self.seen_taken.load(Ordering::Relaxed);
                if capacity.saturating_sub(pushed.saturating_sub(seen)) < wanted {
                    let taken = registry.taken();
                    self.seen_taken.fetch_max(taken, Ordering::Relaxed);
                    let free = capacity.saturating_sub(pushed.saturating_sub(taken));
                    if free == 0 {
                        return Err(Refused::Full);
                    }
                    granted = wanted.min(free);
                }
            }
            match self.head.compare_exchange_weak(
                word,
                word + granted * ONE,
                Ordering::SeqCst,
                Ordering::SeqCst,
            ) {
                Ok(_) => return Ok(granted),
                Err(actual) => word = actual,
            }
        }
    }

    /// Sets the closed flag; returns whether this call set it.
    pub(crate) fn close(&self) -> bool {
        let first = self.head.fetch_or(CLOSED, Ordering::SeqCst) & CLOSED == 0;
        self.closed_hint.store(true, Ordering::SeqCst);
        first
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.head.load(Ordering::SeqCst) & CLOSED != 0
    }

    /// The cheap check a take makes after its fence (see "Races").
    #[inline]
    pub(crate) fn closed_hint(&self) -> bool {
        // Relaxed: a take reads it after a `SeqCst` fence; close stores it before the
        // fence of its `notify_all`. See "Races".
        self.closed_hint.load(Ordering::Relaxed)
    }

    /// Accepted jobs not yet handed out (may lag concurrent operations).
    pub(crate) fn count<T>(&self, registry: &Registry<T>) -> usize {
        let taken = registry.taken();
        (self.head.load(Ordering::SeqCst) >> 1).saturating_sub(taken)
    }

    /// Whether the queue is closed and every accepted job was handed out.
    pub(crate) fn drained<T>(&self, registry: &Registry<T>) -> bool {
        // `taken` first, `head` second: see "Races".
        let taken = registry.taken();
        let word = self.head.load(Ordering::SeqCst);
        word & CLOSED != 0 && word >> 1 == taken
    }

    /// Whether a push could reserve a place now (or is refused for being closed,
    /// which also ends a wait for room).
    pub(crate) fn has_room<T>(&self, registry: &Registry<T>) -> bool {
        let Some(capacity) = self.capacity else {
            return true;
        };
        let taken = registry.taken();
        // Kept, so the push that follows a yes need not sum the counts again.
        self.seen_taken.fetch_max(taken, Ordering::Relaxed);
        let word = self.head.load(Ordering::SeqCst);
        word & CLOSED != 0 || (word >> 1).saturating_sub(taken) < capacity
    }
}

impl fmt::Debug for Ledger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let word = self.head.load(Ordering::Relaxed);
        f.debug_struct("Ledger")
            .field("pushed", &(word >> 1))
            .field("closed", &(word & CLOSED != 0))
            .field("capacity", &self.capacity)
            .finish()
    }
}
