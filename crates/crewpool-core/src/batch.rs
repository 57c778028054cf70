//! [`Batch`]: many envelopes pushed at once ([`Queue::push_batch`](crate::Queue::push_batch)).

use std::collections::VecDeque;
use std::fmt;

use crate::Envelope;

/// Envelopes on their way into a queue together, and how many of them it accepted.
///
/// [`Queue::push_batch`](crate::Queue::push_batch) takes envelopes from the front and
/// counts each one the queue accepted; what it did not accept stays here, in order, for
/// the caller: after an error, or when the push was dropped half-way.
///
/// # Examples
///
/// ```
/// use crewpool_core::{Batch, Envelope};
///
/// let mut batch: Batch<u64> = (1..=3).map(Envelope::new).collect();
/// assert_eq!((batch.len(), batch.accepted()), (3, 0));
/// let first = batch.take_front().unwrap();
/// assert_eq!(first.job, 1);
/// batch.accept(1);
/// assert_eq!((batch.len(), batch.accepted()), (2, 1));
/// let rest: Vec<u64> = batch.into_rest().map(|envelope| envelope.job).collect();
/// assert_eq!(rest, [2, 3]);
/// ```
pub struct Batch<J> {
    envelopes: VecDeque<Envelope<J>>,
    accepted: usize,
}

impl<J> Batch<J> {
    /// A batch of `envelopes`, pushed front first.
    pub fn new(envelopes: impl Into<VecDeque<Envelope<J>>>) -> Self {
        Batch {
            envelopes: envelopes.into(),
            accepted: 0,
        }
    }

    /// The envelopes still held: not accepted, and not taken out by a push under way.
    pub fn len(&self) -> usize {
        self.envelopes.len()
    }

    /// Whether no envelope is held.
    pub fn is_empty(&self) -> bool {
        self.envelopes.is_empty()
    }

    /// How many envelopes a queue accepted from this batch so far.
    pub fn accepted(&self) -> usize {
        self.accepted
    }

    /// For queues: takes the front envelope out, to push it. The queue either
    /// accepts it (and counts it with [`accept`](Batch::accept)) or puts it back
    /// ([`put_back`](Batch::put_back)).
    pub fn take_front(&mut self) -> Option<Envelope<J>> {
        self.envelopes.pop_front()
    }

    /// For queues: puts an envelope taken with [`take_front`](Batch::take_front) and
    /// not accepted back at the front.
    pub fn put_back(&mut self, envelope: Envelope<J>) {
        self.envelopes.push_front(envelope);
    }

    /// For queues: counts `n` envelopes taken out and accepted.
    pub fn accept(&mut self, n: usize) {
        self.accepted += n;
    }

    /// The envelopes not accepted, front first.
    pub fn into_rest(self) -> impl ExactSizeIterator<Item = Envelope<J>> {
        self.envelopes.into_iter()
    }
}

impl<J> FromIterator<Envelope<J>> for Batch<J> {
    fn from_iter<I: IntoIterator<Item = Envelope<J>>>(envelopes: I) -> Self {
        Batch::new(envelopes.into_iter().collect::<VecDeque<_>>())
    }
}

impl<J> fmt::Debug for Batch<J> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Batch")
            .field("held", &self.len())
            .field("accepted", &self.accepted)
            .finish()
    }
}
