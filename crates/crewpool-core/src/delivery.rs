//! How a received job's fate is settled.

use std::future::{Future, ready};
use std::time::Duration;

use crate::QueueError;

/// The fate of one received job: exactly one of [`ack`](Delivery::ack),
/// [`retry`](Delivery::retry), [`dead_letter`](Delivery::dead_letter) or
/// [`release`](Delivery::release) is called, once.
///
/// Durable backends ([`DURABLE`](Delivery::DURABLE) is `true`) keep the job on their side
/// until it is settled, so each of these changes what the backend stores: `ack` deletes
/// it, `retry` schedules it again after a delay, `dead_letter` moves it aside with the
/// reason, `release` puts it back unstarted. A job whose delivery is dropped unsettled
/// comes back when its lease runs out.
///
/// In-memory backends (`DURABLE` is `false`) hand the job over entirely: the caller holds
/// the only copy, so every method is a no-op that succeeds, and retrying means pushing
/// the job again (the runtime does that).
pub trait Delivery: Send + 'static {
    /// Whether the backend keeps its own copy of the job until it is settled.
    const DURABLE: bool;

    /// The span the job's `job` span is a child of: for a job that carries its
    /// producer's trace context across processes, a span standing for the producer's
    /// (the default, `None`, leaves the `job` span under whatever span is current).
    fn parent_span(&self) -> Option<&tracing::Span> {
        None
    }

    /// The job is done; forget it.
    ///
    /// # Errors
    ///
    /// A durable backend fails when it cannot record the acknowledgement (the job may
    /// then run again: at-least-once), or when this consumer no longer owns the job
    /// (its lease ran out and another worker took it).
    fn ack(self) -> impl Future<Output = Result<(), QueueError>> + Send;

    /// The job failed and should run again after `delay`, as its next attempt. The
    /// caller decided (with its [`RetryPolicy`](crate::RetryPolicy)): the backend
    /// applies no attempt limit of its own here.
    ///
    /// # Errors
    ///
    /// As for [`ack`](Delivery::ack).
    fn retry(
        self,
        delay: Duration,
        reason: &str,
    ) -> impl Future<Output = Result<(), QueueError>> + Send;

    /// The job failed and the caller leaves the decision to the backend: it applies
    /// its own retry policy ([`Queue::retry_policy`](crate::Queue::retry_policy): a
    /// durable queue schedules a retry with its backoff, or dead-letters the job once
    /// its attempts are used up). The default dead-letters. A pool decides itself and
    /// calls [`retry`](Delivery::retry) or [`dead_letter`](Delivery::dead_letter);
    /// this is for consumer loops written by hand.
    ///
    /// # Errors
    ///
    /// As for [`ack`](Delivery::ack).
    fn fail(self, reason: &str) -> impl Future<Output = Result<(), QueueError>> + Send
    where
        Self: Sized,
    {
        self.dead_letter(reason)
    }

    /// The job failed for good; keep it aside with `reason` for inspection.
    ///
    /// # Errors
    ///
    /// As for [`ack`](Delivery::ack).
    fn dead_letter(self, reason: &str) -> impl Future<Output = Result<(), QueueError>> + Send;

    /// The job was not run (the worker is stopping); make it available again without
    /// counting an attempt.
    ///
    /// # Errors
    ///
    /// As for [`ack`](Delivery::ack).
    fn release(self) -> impl Future<Output = Result<(), QueueError>> + Send;
}

/// The delivery of in-memory backends: the job was handed over whole, so there is
/// nothing to settle.
#[derive(Debug, Clone, Copy, Default)]
pub struct Handover;

impl Delivery for Handover {
    const DURABLE: bool = false;

    fn ack(self) -> impl Future<Output = Result<(), QueueError>> + Send {
        ready(Ok(()))
    }

    fn retry(
        self,
        _delay: Duration,
        _reason: &str,
    ) -> impl Future<Output = Result<(), QueueError>> + Send {
        ready(Ok(()))
    }

    fn dead_letter(self, _reason: &str) -> impl Future<Output = Result<(), QueueError>> + Send {
        ready(Ok(()))
    }

    fn release(self) -> impl Future<Output = Result<(), QueueError>> + Send {
        ready(Ok(()))
    }
}
