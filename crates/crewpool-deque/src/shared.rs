//! The state a [`DequeQueue`](crate::DequeQueue)'s handle, its consumers and their
//! spawners share: the ledger, the global injector, the registry of consumers, and
//! the two wait lists.

use crewpool_core::Envelope;
use crossbeam_utils::CachePadded;

use crate::deques::{Injector, Ring};
use crate::ledger::Ledger;
use crate::registry::Registry;
use crate::waiters::WaitList;

/// What the queue handle and its consumers share.
pub(crate) struct Shared<J> {
    pub(crate) ledger: Ledger,
    /// A bounded queue's pushed jobs: a ring of `capacity` places, which the ledger's
    /// bound keeps from ever being full when a push has reserved its place (the
    /// injector takes a job that finds it full all the same). `None` when unbounded.
    pub(crate) ring: Option<Ring<Envelope<J>>>,
    /// An unbounded queue's pushed jobs, and the local jobs of dropped consumers.
    pub(crate) injector: Injector<Envelope<J>>,
    // Padded: producers read `sleepers` per push, takes read `room` per job and
    // searches read the registry's version, while each is written by the other side
    // now and then (a consumer parking, a producer waiting for room, a producer
    // summing the counts under the registry lock).
    pub(crate) registry: CachePadded<Registry<Envelope<J>>>,
    /// Consumers parked in `next`.
    pub(crate) sleepers: CachePadded<WaitList>,
    /// Producers waiting for room in `push` or `ready`.
    pub(crate) room: CachePadded<WaitList>,
}

impl<J> Shared<J> {
    /// Wakes a producer waiting for room after a take, which fenced after counting
    /// itself (`Slot::count_taken`). Unbounded queues have no such producers.
    pub(crate) fn room_freed(&self) {
        if self.ledger.capacity().is_some() {
            self.room.notify_one_fenced();
        }
    }

    /// Lands a job a push reserved a place for: in the ring if the queue has one,
    /// else (or if the ring is full, which the bound rules out) in the injector.
    #[inline]
    pub(crate) fn land(&self, envelope: Envelope<J>) {
        let envelope = match &self.ring {
            Some(ring) => match ring.push(envelope) {
                Ok(()) => return,
                // The ring has `capacity` places and a job leaves it before its take is
                // counted, so a full ring means the ledger let the count past the bound:
                // the loom models fail on it (in production the injector takes it).
                #[cfg(crewpool_loom)]
                Err(_) => panic!("a reserved push found the ring full: the bound was exceeded"),
                #[cfg(not(crewpool_loom))]
                Err(envelope) => envelope,
            },
            None => envelope,
        };
        self.injector.push(envelope);
    }

    /// Whether no job waits in the ring or the injector (a hint: may change at once).
    pub(crate) fn front_is_empty(&self) -> bool {
        self.ring.as_ref().is_none_or(Ring::is_empty) && self.injector.is_empty()
    }

    pub(crate) fn has_room(&self) -> bool {
        self.ledger.has_room(&self.registry)
    }
}
