//! Delayed retries of in-memory jobs, held by the pool until they are due.
//!
//! An in-memory queue hands a job over entirely, so a retry cannot be left to the
//! queue: the pool keeps a copy and puts it here with the time it is due. Idle workers
//! wait on the lane beside their consumer and take due jobs, so no worker sleeps
//! through a delay, and a retry does not depend on the queue still accepting pushes
//! (it may be closed for a graceful shutdown, which waits for the lane to empty).
//!
//! # States and races
//!
//! `pending` counts jobs scheduled and not yet taken. It is raised *before* the job is
//! inserted, by the worker whose job failed, while that worker is still running; a
//! worker leaves only when its consumer is drained *and* `pending` is zero. So a worker
//! that sees zero and leaves cannot strand a retry: any retry scheduled after that is
//! scheduled by a live worker, which sees it before it leaves.

use std::cmp::Ordering as CmpOrdering;
use std::collections::BinaryHeap;

use crewpool_core::Envelope;
use tokio::time::Instant;

use crate::future::first_of;
use crate::signal::Event;
use crewpool_core::sync::{AtomicUsize, Mutex, Ordering, lock};

pub(crate) struct RetryLane<J> {
    heap: Mutex<BinaryHeap<Due<J>>>,
    pending: AtomicUsize,
    /// Notified when a job is scheduled (waiters re-check the earliest due time) and
    /// when `pending` drops to zero (drained workers may leave).
    changed: Event,
}

struct Due<J> {
    at: Instant,
    seq: usize,
    envelope: Envelope<J>,
}

impl<J> PartialEq for Due<J> {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}

impl<J> Eq for Due<J> {}

impl<J> PartialOrd for Due<J> {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}

impl<J> Ord for Due<J> {
    /// Reversed: the earliest due time is the heap's greatest element.
    fn cmp(&self, other: &Self) -> CmpOrdering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

impl<J> RetryLane<J> {
    pub(crate) fn new() -> Self {
        RetryLane {
            heap: Mutex::new(BinaryHeap::new()),
            pending: AtomicUsize::new(0),
            changed: Event::new(),
        }
    }

    /// Jobs scheduled and not yet taken.
    pub(crate) fn pending(&self) -> usize {
        self.pending.load(Ordering::SeqCst)
    }

    /// Schedules `envelope` to run at `at`.
    pub(crate) fn schedule(&self, envelope: Envelope<J>, at: Instant) {
        self.pending.fetch_add(1, Ordering::SeqCst);
        {
            let mut heap = lock(&self.heap);
            let seq = heap.len();
            heap.push(Due { at, seq, envelope });
        }
        self.changed.notify_all();
    }

    /// Takes the earliest job if it is due now, without waiting.
    pub(crate) fn try_next(&self) -> Option<Envelope<J>> {
        if self.pending() == 0 {
            return None;
        }
        self.take_due().ok()
    }

    /// Takes the earliest job if it is due now; else says when the earliest is due
    /// (`None`: nothing is pending).
    fn take_due(&self) -> Result<Envelope<J>, Option<Instant>> {
        let mut heap = lock(&self.heap);
        match heap.peek() {
            Some(due) if due.at <= Instant::now() => {}
            earliest => return Err(earliest.map(|due| due.at)),
        }
        let Some(due) = heap.pop() else {
            return Err(None); // not reached: peeked under this lock
        };
        if self.pending.fetch_sub(1, Ordering::SeqCst) == 1 {
            drop(heap);
            // Drained workers waiting for the lane to empty may leave.
            self.changed.notify_all();
        }
        Ok(due.envelope)
    }

    /// Waits for the earliest job to be due and takes it. With `until_idle`, returns
    /// `None` instead of waiting once nothing is pending (a drained worker uses this
    /// to learn it may leave).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a job leaves the heap only in the poll that returns it.
    pub(crate) async fn next(&self, until_idle: bool) -> Option<Envelope<J>> {
        loop {
            let changed = self.changed.listen();
            let earliest = match self.take_due() {
                Ok(envelope) => return Some(envelope),
                Err(earliest) => earliest,
            };
            if until_idle && self.pending() == 0 {
                return None;
            }
            match earliest {
                Some(at) => {
                    first_of(tokio::time::sleep_until(at), changed).await;
                }
                None => changed.await,
            }
        }
    }

    /// Takes every scheduled job (the pool is stopping: they go back to the caller).
    pub(crate) fn drain(&self) -> Vec<Envelope<J>> {
        let drained: Vec<_> = std::mem::take(&mut *lock(&self.heap))
            .into_iter()
            .map(|due| due.envelope)
            .collect();
        self.pending.fetch_sub(drained.len(), Ordering::SeqCst);
        self.changed.notify_all();
        drained
    }
}

impl<J> std::fmt::Debug for RetryLane<J> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RetryLane")
            .field("pending", &self.pending())
            .finish()
    }
}
