//! The state a [`DequeQueue`](crate::DequeQueue)'s handle, its consumers and their
//! spawners share: the ledger, the global injector, the registry of consumers, and
//! the two wait lists.

use crewpool_core::Envelope;
use crossbeam_utils::CachePadded;

use crate::deques::Injector;
use crate::ledger::Ledger;
use crate::registry::Registry;
use crate::waiters::WaitList;

/// What the queue handle and its consumers share.
pub(crate) struct Shared<J> {
    pub(crate) ledger: Ledger,
    /// Jobs pushed by producers, and the local jobs of dropped consumers.
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

    pub(crate) fn has_room(&self) -> bool {
        self.ledger.has_room(&self.registry)
    }
}
