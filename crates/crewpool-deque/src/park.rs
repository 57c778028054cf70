//! Parking: how a consumer with nothing to take, and a producer with no room, give
//! their thread back and are woken, with no spinning beyond a microsecond or two and
//! no lost wake-up.
//!
//! A `poll` that cannot make progress returns `Pending` with its waker registered, so
//! a worker or a producer on an async runtime leaves the thread to the runtime's other
//! tasks; a parked consumer costs nothing. The wait lists themselves, and the fence
//! protocol that makes "register, then check again" lose no wake-up, are in
//! [`crate::waiters`].
//!
//! # A consumer's `next`
//!
//! ```text
//!   search ──found──▶ Ready(job)                                   (the hot path)
//!     │ contended (a source kept answering "retry") ──▶ wake itself, Pending (a yield)
//!     │ nothing
//!     ▼
//!   linger: a few more searches of its inbox, the ring and the injector, 1 to 64
//!     │ pause hints apart (about a hundred in all) ──found──▶ Ready(job)
//!     │ nothing; closed and drained ──▶ Ready(None), finished for good
//!     ▼
//!   register in `sleepers` (ends with a SeqCst fence)
//!     ▼
//!   search again (the full search) ──found──▶ leave the list, Ready(job)
//!     │ closed and drained ──▶ leave the list, Ready(None)
//!     │ nothing ──▶ let go of the peer snapshot, Pending (parked)
//!     ▼
//!   woken (a notifier removed the entry and woke it) ──▶ polled again: search ...
//! ```
//!
//! **Leaving.** A consumer that finds a job after it registered leaves the list
//! ([`WaitList::cancel`](crate::waiters::WaitList::cancel)). If it learns it had been
//! woken meanwhile, and jobs are still visibly left (in the ring, the injector or its
//! local deque), it passes the wake-up on to another sleeper: the job it took may not
//! be the one it was woken for. A `next` future dropped after being woken passes its
//! wake-up on the same way, so a cancelled wait never swallows one.
//!
//! **Who wakes.** Whoever makes a job visible where a sleeper could find it wakes one:
//! a push or a spawn after landing it, a consumer after moving a stolen batch into its
//! local deque (the rest is stealable), a dropped consumer after moving its jobs to the
//! injector. Close, and the last take of a closed queue, wake all.
//!
//! **Races.**
//!
//! - *A job landing while a consumer goes to sleep*: the notifier lands the job, then
//!   fences and reads the count of sleepers; the consumer registers, fences, and
//!   searches again. One fence comes first: either the search sees the job, or the
//!   notifier sees the sleeper and wakes it (see `waiters`).
//! - *The last take of a closed queue vs. a consumer going to sleep*: see the
//!   ledger's "Races": the take fences after counting and then checks the closed flag;
//!   a consumer registers and fences before it checks whether the queue is drained.
//! - *Two consumers woken for one job*: the one that loses finds nothing, registers
//!   again and parks; a wake-up spent on a job someone else took is passed on (above).
//!
//! # A producer waiting for room
//!
//! ```text
//!   try to reserve ──room──▶ land the job, wake a sleeper, Ready
//!     │ full
//!     ▼
//!   linger: a few checks for room, 1 to 64 pause hints apart ──room──▶ try again
//!     │ still full
//!     ▼
//!   register in `room` (ends with a SeqCst fence), check again ──room──▶ try again
//!     │ still full ──▶ Pending (parked), until a take frees room or close
//! ```
//!
//! A take counts itself (`Slot::count_taken`, which fences) and then wakes one
//! producer waiting for room; close wakes all of them (a closed queue "has room":
//! the push then fails with `Closed`). A push future dropped while registered passes
//! a wake-up it received on ([`Waiter`]).
//!
//! # Lingering
//!
//! Both lingers spin only (crossbeam's `Backoff::spin`, never yielding the thread):
//! a steady producer refills the queue, or a consumer frees room, within about a
//! microsecond, and finding it then saves a sleep and a wake-up, a system call each.
//! Anything longer would hold a thread that, on an async runtime, belongs to other
//! tasks too. Neither lingers under loom: it only adds searches before the same
//! protocol, and spinning would multiply the interleavings to explore.

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::task::{Context, Poll};

use crewpool_core::{Envelope, Handover, Received};

use crate::consumer::{DequeConsumer, Found, Next};
use crate::shared::Shared;
use crate::waiters::Waiter;

/// How many checks the producer's and the consumer's lingers make: with
/// `Backoff::spin`'s doubling, 1 + 2 + ... + 64 pause hints in all (it stops doubling
/// at 64).
#[cfg(not(crewpool_loom))]
const LINGER_STEPS: usize = 7;

/// Completes when the queue has room or is closed, registered with `waiter` meanwhile.
///
/// A poll that finds no room returns `Pending` with the waker registered, after at
/// most a few cheap checks ([`linger_for_room`]): it never holds the caller's thread
/// beyond that, so a producer on an async runtime lets the runtime's other tasks run
/// while the queue is full.
pub(crate) async fn wait_for_room<J>(shared: &Shared<J>, waiter: &mut Waiter<'_>) {
    poll_fn(|cx| poll_room(shared, waiter, cx)).await;
}

/// One poll of [`wait_for_room`], for futures written by hand (`queue::Push`).
pub(crate) fn poll_room<J>(
    shared: &Shared<J>,
    waiter: &mut Waiter<'_>,
    cx: &mut Context<'_>,
) -> Poll<()> {
    if shared.has_room() || linger_for_room(shared) {
        return Poll::Ready(());
    }
    waiter.register(cx.waker());
    // Checked again after registering: a take in between would otherwise be missed.
    if shared.has_room() {
        Poll::Ready(())
    } else {
        Poll::Pending
    }
}

/// The short, bounded spin before a producer parks for room: a few checks with
/// exponential backoff in between, spinning only (1 to 64 CPU pause hints, about a
/// hundred in all: a microsecond or two), never yielding the thread. When consumers are
/// taking jobs on other cores, room often comes back within that time, and a producer
/// that finds it here saves parking and a wake-up. Anything longer would hold the
/// thread, which on an async runtime belongs to other tasks too. Not under loom (see
/// `DequeConsumer::linger`).
fn linger_for_room<J>(shared: &Shared<J>) -> bool {
    #[cfg(not(crewpool_loom))]
    {
        let backoff = crossbeam_utils::Backoff::new();
        for _ in 0..LINGER_STEPS {
            backoff.spin();
            if shared.has_room() {
                return true;
            }
        }
    }
    #[cfg(crewpool_loom)]
    let _ = shared;
    false
}

impl<J: Send + 'static> DequeConsumer<J> {
    /// The short, bounded search before parking: a few more passes with exponential
    /// backoff between them, spinning only (1 to 64 pause hints each, about a hundred
    /// in all: a microsecond or two), never yielding the thread, which on an async
    /// runtime belongs to other tasks too. A producer pushing steadily refills the
    /// queue within that time, and a job found here saves a sleep and a wake-up, which
    /// cost a system call each. It never repeats without bound: then the consumer
    /// registers its waker and its `next` returns `Pending`.
    ///
    /// Not under loom: it only adds searches before the same parking protocol, and
    /// spinning would multiply the interleavings to explore.
    fn linger(&mut self) -> Option<Envelope<J>> {
        #[cfg(not(crewpool_loom))]
        {
            let backoff = crossbeam_utils::Backoff::new();
            for _ in 0..LINGER_STEPS {
                backoff.spin();
                // The inbox, the ring and the injector only: that is where a steady
                // producer's next job lands. Peers were searched just before and are searched
                // again after registering; scanning them on every spin would cost
                // O(consumers) per pass, ruinous with thousands of them.
                if let Found::Job(envelope) = self.search(false, false) {
                    return Some(envelope);
                }
            }
        }
        None
    }

    fn poll_next(
        &mut self,
        key: &mut Option<u64>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Received<J, Handover>>> {
        if self.finished {
            return Poll::Ready(None);
        }
        match self.search(true, true) {
            Found::Job(envelope) => return Poll::Ready(Some(self.leave_with(key, envelope))),
            Found::Contended => {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            Found::Nothing => {}
        }
        if let Some(envelope) = self.linger() {
            return Poll::Ready(Some(self.leave_with(key, envelope)));
        }
        if self.try_finish() {
            self.shared.sleepers.cancel(key);
            return Poll::Ready(None);
        }
        // Park: register, then search again (see "Parking").
        self.shared.sleepers.register(key, cx.waker());
        match self.search(false, true) {
            Found::Job(envelope) => Poll::Ready(Some(self.leave_with(key, envelope))),
            Found::Contended => {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            Found::Nothing => {
                if self.try_finish() {
                    self.shared.sleepers.cancel(key);
                    Poll::Ready(None)
                } else {
                    // Parked: hold no registry snapshot while asleep.
                    self.peers.release();
                    Poll::Pending
                }
            }
        }
    }

    /// Leaves the sleepers list (if registered) with a job; a consumer that had been
    /// woken passes the wake-up along while jobs are visibly left (in the injector or
    /// its own local deque).
    fn leave_with(&self, key: &mut Option<u64>, envelope: Envelope<J>) -> Received<J, Handover> {
        let woken = self.shared.sleepers.cancel(key);
        let received = self.take(envelope);
        if woken && !(self.shared.front_is_empty() && self.local.is_empty()) {
            self.shared.sleepers.notify_one();
        }
        received
    }
}

impl<J: Send + 'static> Future for Next<'_, J> {
    type Output = Option<Received<J, Handover>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        this.consumer.poll_next(&mut this.key, cx)
    }
}

impl<J: Send + 'static> Drop for Next<'_, J> {
    fn drop(&mut self) {
        let sleepers = &self.consumer.shared.sleepers;
        if sleepers.cancel(&mut self.key) {
            // Woken but never acted on: give the wake-up to another sleeper.
            sleepers.notify_one();
        }
    }
}
