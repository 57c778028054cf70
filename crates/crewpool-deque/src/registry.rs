//! The registry of consumers: what each one shares with its peers (a [`Slot`]), and
//! the list of slots thieves search.
//!
//! Consumers join at any time ([`Queue::consumer`](crewpool_core::Queue::consumer))
//! and leave when dropped. The list is replaced, never edited in place, and carries a
//! version number, so a consumer keeps its own snapshot and refreshes it with one load
//! when the version moved, instead of locking on every search.

use std::fmt;

use crossbeam_utils::CachePadded;

use crate::deques::{Injector, Steal, Stealer};
use crewpool_core::sync::{Arc, AtomicBool, AtomicUsize, Mutex, Ordering, fence, lock, spin};

/// The phase of a consumer, as its spawner sees it.
///
/// ```text
///   Live ──next returned None──▶ Finished ──dropped──▶ Gone
///     └──────────────dropped──────────────────────────▲
/// ```
///
/// Only `Live` consumers accept sub-jobs once the queue is closed (they will still
/// drain them); the transitions happen under [`Slot::gate`], which a spawn after close
/// also holds, so a consumer never finishes while such a spawn is landing in its inbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Live,
    Finished,
    Gone,
}

/// What one consumer shares: the stealing end of its local deque, and its inbox,
/// where jobs running on it spawn sub-jobs.
pub(crate) struct Slot<T> {
    pub(crate) stealer: Stealer<T>,
    /// Sub-jobs spawned by jobs running on this consumer. An `Injector` because
    /// spawners are shared with the running job (`Send + Sync`), which the local
    /// deque is not; the owner drains it into its local deque before anything else.
    pub(crate) inbox: Injector<T>,
    /// Set (once, `SeqCst`) when the owner is dropped: a spawner that sees it sends
    /// sub-jobs to the global injector instead. See the spawner for the race.
    pub(crate) gone: AtomicBool,
    pub(crate) gate: Mutex<Phase>,
    /// Jobs the owner handed out, written only by the owner (see the ledger). On a
    /// line of its own: the owner writes it per job, thieves read the fields above.
    pub(crate) taken: CachePadded<AtomicUsize>,
}

impl<T> Slot<T> {
    pub(crate) fn new(stealer: Stealer<T>) -> Self {
        Slot {
            stealer,
            inbox: Injector::new(),
            gone: AtomicBool::new(false),
            gate: Mutex::new(Phase::Live),
            taken: CachePadded::new(AtomicUsize::new(0)),
        }
    }

    /// Counts one more job handed out by the owner, then fences (`SeqCst`): the take is
    /// the state change of two wake-up protocols, so the caller goes on to check, with
    /// plain loads, for a closed queue's sleepers and for producers waiting for room
    /// (see the ledger's "Races" and [`crate::waiters`]).
    pub(crate) fn count_taken(&self) {
        // Only the owner writes, so load and store need no read-modify-write; relaxed,
        // because the fence orders the store for those protocols, and readers need
        // nothing else from it.
        let taken = self.taken.load(Ordering::Relaxed);
        self.taken.store(taken + 1, Ordering::Relaxed);
        fence(Ordering::SeqCst);
    }

    /// Moves everything in the inbox to `injector`; returns whether it moved anything.
    pub(crate) fn drain_inbox_into(&self, injector: &Injector<T>) -> bool {
        let mut moved = false;
        loop {
            match self.inbox.steal() {
                Steal::Success(item) => {
                    injector.push(item);
                    moved = true;
                }
                Steal::Empty => return moved,
                // Another drainer (the spawner's or the owner's) is at it; go on until
                // the inbox is seen empty, so nothing stays behind.
                Steal::Retry => spin(),
            }
        }
    }
}

impl<T> fmt::Debug for Slot<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Slot")
            .field("local", &self.stealer.len())
            .field("inbox", &self.inbox.len())
            .field("gone", &self.gone.load(Ordering::Relaxed))
            .finish()
    }
}

pub(crate) type Slots<T> = Arc<Vec<Arc<Slot<T>>>>;

/// The slots of every live consumer.
pub(crate) struct Registry<T> {
    /// Bumped (`Release`, under the lock) after each replacement of the slots; a
    /// consumer that loads it (`Acquire`) and sees a new value takes the lock for the
    /// new list. Seeing an old value only means searching an older list for a while:
    /// a newcomer's jobs reach others through the wake-ups of the protocol, which a
    /// consumer answers with a fresh search (see `Peers::refresh`).
    version: AtomicUsize,
    members: Mutex<Members<T>>,
}

struct Members<T> {
    slots: Slots<T>,
    /// The `taken` counts of dropped consumers.
    retired_taken: usize,
}

impl<T> Registry<T> {
    pub(crate) fn new() -> Self {
        Registry {
            version: AtomicUsize::new(0),
            members: Mutex::new(Members {
                slots: Arc::new(Vec::new()),
                retired_taken: 0,
            }),
        }
    }

    /// Adds a consumer's slot; returns the registry's new version (distinct per
    /// consumer, which seeds its victim choice).
    pub(crate) fn add(&self, slot: Arc<Slot<T>>) -> usize {
        let mut members = lock(&self.members);
        // In place when no consumer holds a snapshot (they take them lazily and let go
        // while parked), so making N consumers is not O(N²).
        match Arc::get_mut(&mut members.slots) {
            Some(slots) => slots.push(slot),
            None => {
                let mut next: Vec<_> = members.slots.iter().cloned().collect();
                next.push(slot);
                members.slots = Arc::new(next);
            }
        }
        self.version.fetch_add(1, Ordering::Release) + 1
    }

    /// Removes a dropped consumer's slot, keeping its count of jobs handed out.
    pub(crate) fn remove(&self, slot: &Arc<Slot<T>>) {
        let mut members = lock(&self.members);
        let next: Vec<_> = members
            .slots
            .iter()
            .filter(|s| !Arc::ptr_eq(s, slot))
            .cloned()
            .collect();
        members.slots = Arc::new(next);
        members.retired_taken += slot.taken.load(Ordering::SeqCst);
        self.version.fetch_add(1, Ordering::Release);
    }

    /// How many jobs consumers handed out, dropped ones included. Each count is read
    /// once; under the lock, so a consumer being dropped is counted either in its slot
    /// or in the retired total, never in both. `SeqCst` loads: callers read these after
    /// a fence of their own (a registration) or before `head`, see the ledger.
    pub(crate) fn taken(&self) -> usize {
        let members = lock(&self.members);
        members.retired_taken
            + members
                .slots
                .iter()
                .map(|slot| slot.taken.load(Ordering::SeqCst))
                .sum::<usize>()
    }

    /// The current list and its version.
    fn snapshot(&self) -> (usize, Slots<T>) {
        let members = lock(&self.members);
        // Relaxed: read under the lock that every writer holds.
        (
            self.version.load(Ordering::Relaxed),
            Arc::clone(&members.slots),
        )
    }
}

impl<T> fmt::Debug for Registry<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("consumers", &lock(&self.members).slots.len())
            .finish()
    }
}

/// A consumer's snapshot of the registry: its version and slots, if it holds one.
pub(crate) struct Peers<T> {
    snapshot: Option<(usize, Slots<T>)>,
}

impl<T> Peers<T> {
    /// An empty snapshot, taken from the registry when first needed. Consumers are
    /// created one after another (a pool of N makes N): taking a snapshot each at
    /// creation would keep N lists of up to N entries alive, O(N²) memory.
    pub(crate) fn new() -> Self {
        Peers { snapshot: None }
    }

    /// Lets go of the snapshot (a parking consumer does, for the same reason as
    /// [`new`](Peers::new)); the next search takes a fresh one.
    pub(crate) fn release(&mut self) {
        self.snapshot = None;
    }

    /// The slots, refreshed first if the registry changed.
    pub(crate) fn refresh(&mut self, registry: &Registry<T>) -> &[Arc<Slot<T>>] {
        // Acquire: pairs with the Release bump, though `snapshot` locks anyway.
        let current = registry.version.load(Ordering::Acquire);
        if self
            .snapshot
            .as_ref()
            .is_none_or(|(version, _)| *version != current)
        {
            self.snapshot = Some(registry.snapshot());
        }
        match &self.snapshot {
            Some((_, slots)) => slots,
            None => &[],
        }
    }
}

impl<T> fmt::Debug for Peers<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Peers")
            .field(
                "version",
                &self.snapshot.as_ref().map(|(version, _)| *version),
            )
            .field(
                "peers",
                &self.snapshot.as_ref().map_or(0, |(_, slots)| slots.len()),
            )
            .finish()
    }
}
