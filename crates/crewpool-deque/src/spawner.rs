//! Sub-jobs spawned by running jobs (fork-join).
//!
//! A running job spawns through its [`JobContext`](crewpool_core::JobContext), which
//! the runtime backs with [`Consumer::spawner`](crewpool_core::Consumer::spawner). The
//! spawner must be `Send + Sync` (the context is shared with the job's future), but a
//! `crossbeam_deque::Worker` is neither shareable nor pushable from another thread. So
//! each consumer has an *inbox*, a small injector that is its local deque's
//! shareable front door: sub-jobs land there, the owner drains it into its local
//! deque before looking anywhere else, and idle peers steal from it as they steal
//! from the local deque. "Sub-jobs go to the worker's local deque" means this pair.
//!
//! # Races
//!
//! - *Spawn vs. close*: before close a spawn reserves like a push. After close it is
//!   accepted only while its consumer is `Live` (has not returned `None` from `next`,
//!   and is not dropped): it is part of work already accepted, and the owner drains it
//!   before its `next` can return `None`. The check and the landing happen under the
//!   slot's gate, which the owner takes to finish, so the two cannot interleave.
//! - *Spawn vs. the owner being dropped*: the owner sets `gone`, fences, and drains its
//!   inbox into the global injector; the spawner lands in the inbox, fences, and checks
//!   `gone`, draining the inbox itself if it is set. By the two fences, at least one of
//!   them sees the other's write, so the job reaches the injector. A spawner that sees
//!   `gone` before landing uses the injector directly.

use std::fmt;

use crewpool_core::{Envelope, Spawn, TryPushError};

use crate::ledger::Refused;
use crate::registry::{Phase, Slot};
use crate::shared::Shared;
use crewpool_core::sync::{Arc, Ordering, fence, lock};

/// Spawns onto one consumer's inbox. See the [module docs](self).
pub(crate) struct DequeSpawner<J> {
    shared: Arc<Shared<J>>,
    slot: Arc<Slot<Envelope<J>>>,
}

impl<J> DequeSpawner<J> {
    pub(crate) fn new(shared: Arc<Shared<J>>, slot: Arc<Slot<Envelope<J>>>) -> Self {
        DequeSpawner { shared, slot }
    }

    /// Lands a reserved job in the inbox, or in the injector once the owner is gone,
    /// and wakes a sleeper. In the inbox, the fence after landing (see "Races") is
    /// also the one the wake-up needs between the job becoming visible and its look at
    /// the sleepers (see [`crate::waiters`]).
    fn land(&self, envelope: Envelope<J>) {
        if self.slot.gone.load(Ordering::SeqCst) {
            self.shared.injector.push(envelope);
            self.shared.sleepers.notify_one();
            return;
        }
        self.slot.inbox.push(envelope);
        fence(Ordering::SeqCst);
        // Relaxed after the fence: see "Races".
        if self.slot.gone.load(Ordering::Relaxed) {
            self.slot.drain_inbox_into(&self.shared.injector);
            self.shared.sleepers.notify_one();
        } else {
            self.shared.sleepers.notify_one_fenced();
        }
    }
}

impl<J: Send + 'static> Spawn<J> for DequeSpawner<J> {
    fn spawn(&self, envelope: Envelope<J>) -> Result<(), TryPushError<Envelope<J>>> {
        match self.shared.ledger.reserve(false, &self.shared.registry) {
            Ok(()) => self.land(envelope),
            Err(Refused::Full) => return Err(TryPushError::Full(envelope)),
            Err(Refused::Closed) => {
                let phase = lock(&self.slot.gate);
                if *phase != Phase::Live {
                    return Err(TryPushError::Closed(envelope));
                }
                if self
                    .shared
                    .ledger
                    .reserve(true, &self.shared.registry)
                    .is_err()
                {
                    return Err(TryPushError::Full(envelope));
                }
                // Under the gate: the owner is live and cannot finish or go meanwhile.
                self.slot.inbox.push(envelope);
                drop(phase);
                self.shared.sleepers.notify_one();
            }
        }
        Ok(())
    }
}

impl<J> fmt::Debug for DequeSpawner<J> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DequeSpawner")
            .field("slot", &self.slot)
            .finish()
    }
}
