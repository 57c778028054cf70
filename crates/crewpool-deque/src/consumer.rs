//! The consumer side: [`DequeConsumer`], its search for work, and parking.
//!
//! # Where a consumer looks, in order
//!
//! 1. its local deque (the hot path: jobs available means `next` is ready at once, with
//!    no lock and no allocation);
//! 2. its inbox, where jobs running on it spawned sub-jobs (moved into the local deque
//!    in a batch; two loads first, and no steal attempt when it is empty);
//! 3. a bounded queue's ring, one job at a time;
//! 4. the global injector (a batch: up to half of it, at most 33 jobs);
//! 5. its peers' local deques and inboxes, starting at a pseudo-random peer so that
//!    thieves spread over victims instead of all hitting the first one.
//!
//! One pass over these is a search; a consumer repeats it while some source answered
//! "retry" (it lost a race with another thief), a few times at most, and then a few
//! more times with a short spin in between (a microsecond or two: see `linger`) before
//! it parks. Nothing repeats without bound, nothing yields the thread, and a parked
//! worker costs nothing.
//!
//! Peers that look empty (two plain loads) are skipped without a steal attempt, which
//! would pin crossbeam's epoch. The short linger before parking re-checks only the
//! inbox, the ring and the injector; the full search runs before it and again after
//! registering.
//!
//! # Scaling with the number of consumers
//!
//! A full search visits every peer, so going to sleep and waking up cost O(consumers).
//! That is what work stealing wants for a crew about the size of the machine; with
//! thousands of mostly idle consumers, hand-offs get slower (10,000 workers that each
//! take one blocking job: ~8 s to meet, against milliseconds on a channel). Pools of
//! thousands of I/O-bound workers are better served by the flume backend. Snapshots of
//! the peer list are taken lazily and released while parked, so memory stays O(N).
//!
//! # Parking
//!
//! A consumer that found nothing parks: see [`crate::park`] for the protocol, its
//! states and races.

use std::fmt;
use std::future::Future;
use std::sync::Arc as StdArc;

use crewpool_core::{Consumer, Envelope, Handover, Received, Spawn};

use crate::deques::{Steal, Worker};
use crate::registry::{Peers, Phase, Slot};
use crate::shared::Shared;
use crate::spawner::DequeSpawner;
use crewpool_core::sync::{Arc, Ordering, fence, lock};

/// How many passes a search makes while some source keeps answering "retry".
const SEARCH_ROUNDS: usize = 4;

/// One worker's end of a [`DequeQueue`](crate::DequeQueue): a local deque, an inbox
/// for sub-jobs, and the means to steal from its peers.
///
/// Dropping it moves its local jobs and its inbox to the global injector, where the
/// other consumers (or a consumer made later) find them.
pub struct DequeConsumer<J> {
    pub(crate) shared: Arc<Shared<J>>,
    pub(crate) slot: Arc<Slot<Envelope<J>>>,
    pub(crate) local: Worker<Envelope<J>>,
    pub(crate) peers: Peers<Envelope<J>>,
    spawner: StdArc<DequeSpawner<J>>,
    /// State of the victim choice (xorshift).
    pub(crate) seed: u32,
    /// Set when `next` returned `None`; it keeps doing so.
    pub(crate) finished: bool,
}

/// What a search found.
pub(crate) enum Found<T> {
    Job(T),
    Nothing,
    /// Some source kept losing races: there may be work, so do not park on it.
    Contended,
}

impl<J: Send + 'static> DequeConsumer<J> {
    pub(crate) fn new(shared: Arc<Shared<J>>) -> Self {
        let local = Worker::new_fifo();
        let slot = Arc::new(Slot::new(local.stealer()));
        let version = shared.registry.add(Arc::clone(&slot));
        let peers = Peers::new();
        let spawner = StdArc::new(DequeSpawner::new(Arc::clone(&shared), Arc::clone(&slot)));
        // Distinct, non-zero seeds per consumer: the registry's version differs for
        // each consumer that joins.
        let seed = (version as u32).wrapping_mul(0x9E37_79B9) | 1;
        DequeConsumer {
            shared,
            slot,
            local,
            peers,
            spawner,
            seed,
            finished: false,
        }
    }

    /// Searches every source once (more while contended). `from_local` false skips the
    /// local deque on a re-check, where nobody but this consumer could have filled it;
    /// `with_peers` false looks only at the inbox and the injector.
    pub(crate) fn search(&mut self, from_local: bool, with_peers: bool) -> Found<Envelope<J>> {
        // Two loads first: a FIFO deque's pop is a read-modify-write even when empty,
        // and with a ring in front the local deque is usually empty. Exact here: only
        // this consumer adds to it.
        if from_local
            && !self.local.is_empty()
            && let Some(envelope) = self.local.pop()
        {
            return Found::Job(envelope);
        }
        for _ in 0..SEARCH_ROUNDS {
            let mut contended = false;
            if let Some(envelope) = self.steal_once(&mut contended, with_peers) {
                return self.stole(envelope);
            }
            if !contended {
                return Found::Nothing;
            }
        }
        Found::Contended
    }

    /// One pass over the inbox, the injector and (`with_peers`) the peers.
    fn steal_once(&mut self, contended: &mut bool, with_peers: bool) -> Option<Envelope<J>> {
        let DequeConsumer {
            shared,
            slot,
            local,
            peers,
            seed,
            ..
        } = self;
        let mut attempt = |steal: Steal<Envelope<J>>| match steal {
            Steal::Success(envelope) => Some(envelope),
            Steal::Retry => {
                *contended = true;
                None
            }
            Steal::Empty => None,
        };
        // Two loads before a steal: the inbox is empty unless jobs of this worker's
        // own jobs spawned sub-jobs, and a steal on it costs several times more.
        if !slot.inbox.is_empty()
            && let Some(envelope) = attempt(slot.inbox.steal_batch_and_pop(local))
        {
            return Some(envelope);
        }
        if let Some(ring) = &shared.ring
            && let Some(envelope) = attempt(ring.pop())
        {
            return Some(envelope);
        }
        if let Some(envelope) = attempt(shared.injector.steal_batch_and_pop(local)) {
            return Some(envelope);
        }
        if !with_peers {
            return None;
        }
        let peers = peers.refresh(&shared.registry);
        let n = peers.len();
        if n < 2 {
            return None;
        }
        *seed ^= *seed << 13;
        *seed ^= *seed >> 17;
        *seed ^= *seed << 5;
        let start = *seed as usize % n;
        for i in 0..n {
            let peer = &peers[(start + i) % n];
            // Plain loads first: a steal attempt on an empty deque still pins
            // crossbeam's epoch, and with thousands of consumers most peers are
            // empty. Reading "empty" here is what a steal would have answered.
            if Arc::ptr_eq(peer, slot) || (peer.stealer.is_empty() && peer.inbox.is_empty()) {
                continue;
            }
            if let Some(envelope) = attempt(peer.stealer.steal_batch_and_pop(local)) {
                return Some(envelope);
            }
            if let Some(envelope) = attempt(peer.inbox.steal_batch_and_pop(local)) {
                return Some(envelope);
            }
        }
        None
    }

    /// A steal succeeded. If it brought more jobs into the local deque, those are now
    /// where a sleeping peer could steal them: wake one.
    fn stole(&self, envelope: Envelope<J>) -> Found<Envelope<J>> {
        if !self.local.is_empty() {
            self.shared.sleepers.notify_one();
        }
        Found::Job(envelope)
    }

    /// Hands a found job out: counts it taken, wakes who must know.
    pub(crate) fn take(&self, envelope: Envelope<J>) -> Received<J, Handover> {
        // Counts and fences: the checks below are plain loads.
        self.slot.count_taken();
        if self.shared.ledger.closed_hint() {
            // Maybe the last job of a closed queue: sleepers may be able to finish.
            // (See the ledger's "Races" for why the hint is enough.)
            self.shared.sleepers.notify_all_fenced();
        }
        self.shared.room_freed();
        Received {
            envelope,
            delivery: Handover,
        }
    }

    /// Finishes the consumer if the queue is closed and nothing accepted is left
    /// anywhere. Under the gate, so a spawn after close into this consumer's inbox is
    /// either counted before the check or refused after it.
    pub(crate) fn try_finish(&mut self) -> bool {
        let ledger = &self.shared.ledger;
        if !ledger.closed_hint() || !ledger.drained(&self.shared.registry) {
            return false;
        }
        let mut phase = lock(&self.slot.gate);
        if !ledger.drained(&self.shared.registry) {
            return false;
        }
        *phase = Phase::Finished;
        self.finished = true;
        true
    }
}

impl<J: Send + 'static> Consumer for DequeConsumer<J> {
    type Job = J;
    type Delivery = Handover;

    fn next(&mut self) -> impl Future<Output = Option<Received<J, Handover>>> + Send {
        Next {
            consumer: self,
            key: None,
        }
    }

    fn try_next(&mut self) -> Option<Received<J, Handover>> {
        if self.finished {
            return None;
        }
        match self.search(true, true) {
            Found::Job(envelope) => Some(self.take(envelope)),
            Found::Nothing | Found::Contended => None,
        }
    }

    fn spawner(&self) -> Option<StdArc<dyn Spawn<J>>> {
        Some(StdArc::clone(&self.spawner) as StdArc<dyn Spawn<J>>)
    }
}

/// The future of [`DequeConsumer::next`]: its registration in the sleepers list lives
/// here, so dropping the future removes it (and passes on a wake-up it received). Polled in
/// [`crate::park`].
pub(crate) struct Next<'a, J: Send + 'static> {
    pub(crate) consumer: &'a mut DequeConsumer<J>,
    pub(crate) key: Option<u64>,
}

impl<J> Drop for DequeConsumer<J> {
    fn drop(&mut self) {
        *lock(&self.slot.gate) = Phase::Gone;
        self.slot.gone.store(true, Ordering::SeqCst);
        // Pairs with the spawner's fence between landing in the inbox and checking
        // `gone`: either it sees `gone` and moves its job itself, or the drain below
        // sees the job.
        fence(Ordering::SeqCst);
        let mut moved = false;
        while let Some(envelope) = self.local.pop() {
            self.shared.injector.push(envelope);
            moved = true;
        }
        moved |= self.slot.drain_inbox_into(&self.shared.injector);
        self.shared.registry.remove(&self.slot);
        if moved {
            self.shared.sleepers.notify_all();
        }
    }
}

impl<J> fmt::Debug for DequeConsumer<J> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DequeConsumer")
            .field("local", &self.local.len())
            .field("inbox", &self.slot.inbox.len())
            .field("peers", &self.peers)
            .field("finished", &self.finished)
            .finish()
    }
}
