//! What the runtime needs to know about a queue's type: the delivery its consumers
//! hand out, and whether the queue keeps jobs itself (durable) or hands them over
//! (in memory). Where that difference decides a job's fate, [`crate::fate`] decides.

use crewpool_core::{Consumer, Delivery, Queue};

/// The `Delivery` type of a queue's consumers.
pub(crate) type DeliveryOf<Q> = <<Q as Queue>::Consumer as Consumer>::Delivery;

/// Whether a queue keeps its own copy of jobs until they are settled (so it, not the
/// pool, holds a job's retries and gets unstarted jobs back).
pub(crate) fn is_durable<Q: Queue>() -> bool {
    <DeliveryOf<Q> as Delivery>::DURABLE
}
