//! The deliveries this process's consumers hand out, for audits: a test's worker
//! process registers a sink and reports every delivery with its fencing token, so the
//! test can check that no token was handed out twice (across processes, restarts and
//! failovers).
//!
//! ```
//! use crewpool_redis::testing::ledger;
//!
//! ledger::on_delivery(|delivered| {
//!     println!(
//!         "delivered {} {} {} {}",
//!         delivered.id, delivered.attempt, delivered.token, delivered.index
//!     )
//! });
//! ```

use std::sync::OnceLock;

/// One delivery as a consumer handed it out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Delivered {
    /// The job's id.
    pub id: u64,
    /// The delivery's attempt number, from 1.
    pub attempt: u32,
    /// The delivery's fencing token (its lease number).
    pub token: u64,
    /// The job's place in its lease (the field `<token>:<index>`): a token and an
    /// index name exactly one delivery, as long as tokens are never reissued.
    pub index: u32,
}

type Sink = Box<dyn Fn(Delivered) + Send + Sync>;

static SINK: OnceLock<Sink> = OnceLock::new();

/// Calls `sink` with every delivery the consumers of this process hand out from now
/// on (before the worker sees it). One sink per process: returns `false`, and keeps
/// the first, when one was registered already.
pub fn on_delivery(sink: impl Fn(Delivered) + Send + Sync + 'static) -> bool {
    SINK.set(Box::new(sink)).is_ok()
}

/// Reports a delivery to the sink, if one is registered.
pub(crate) fn delivered(delivered: Delivered) {
    if let Some(sink) = SINK.get() {
        sink(delivered);
    }
}
