//! Trace context from producer to worker: headers in the envelope, and the span that
//! stands for the producer in the worker.

use std::fmt;
use std::sync::Arc;

use crate::Headers;

/// Carries a producer's trace context to the worker that runs its job, through the
/// job's [`Headers`].
///
/// crewpool depends on no tracing backend: with OpenTelemetry, `inject` writes the
/// current context with your propagator (`traceparent`, `tracestate`), and `extract`
/// sets it as the remote parent of the span that stands for the producer (with
/// `tracing-opentelemetry`, `span.set_parent(context)`), so the producer's span is the
/// parent of the worker's `job` span in your traces. Without a propagator, headers
/// given with [`JobOptions::header`](crate::JobOptions::header) still travel, and the
/// worker's `job` span is still a child of a `producer` span that records the
/// `traceparent` header.
///
/// # Examples
///
/// ```
/// use crewpool_redis::{Headers, Propagator, RedisConfig};
///
/// /// Stamps every job with the W3C trace context of the request being served.
/// struct RequestTrace;
///
/// impl Propagator for RequestTrace {
///     fn inject(&self, headers: &mut Headers) {
///         // With OpenTelemetry: the global propagator's inject into `headers`.
///         headers.insert("traceparent".into(), "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into());
///     }
/// }
///
/// let config = RedisConfig::new("redis://127.0.0.1:6379", "mail").propagator(RequestTrace);
/// # let _ = config;
/// ```
pub trait Propagator: Send + Sync + 'static {
    /// Adds the current trace context to the headers of a job being enqueued (called
    /// once per enqueue call, in the producer's task, so its current span is the
    /// producer's).
    fn inject(&self, headers: &mut Headers);

    /// Called in the worker with a job's headers and the span that stands for its
    /// producer (the parent of the job's `job` span), before the job runs: links that
    /// span to the remote context. The default does nothing (the span records the
    /// `traceparent` header as a field).
    fn extract(&self, headers: &Headers, span: &tracing::Span) {
        let _ = (headers, span);
    }
}

/// A configured propagator, printable in a configuration's `Debug`.
#[derive(Clone)]
pub(crate) struct PropagatorSlot(pub(crate) Arc<dyn Propagator>);

impl fmt::Debug for PropagatorSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Propagator")
    }
}

/// The span that stands for a job's producer in the worker: `producer`, with the
/// queue, the job's id and the `traceparent` header; a root span, so the worker's own
/// spans do not adopt it. `propagator` links it to the remote context.
pub(crate) fn producer_span(
    queue: &str,
    id: u64,
    headers: &Headers,
    propagator: Option<&PropagatorSlot>,
) -> tracing::Span {
    let traceparent = headers.get("traceparent").map(String::as_str);
    let span = tracing::info_span!(
        parent: None,
        "producer",
        queue = %queue,
        id,
        traceparent = traceparent.unwrap_or(""),
    );
    if let Some(propagator) = propagator {
        propagator.0.extract(headers, &span);
    }
    span
}
