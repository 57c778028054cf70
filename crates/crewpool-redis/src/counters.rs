//! What this process's queue handle did: counters every part bumps, and the snapshot
//! [`RedisQueue::counters`](crate::RedisQueue::counters) returns.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters of what this process did; see [`ClientCounters`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) fetched: AtomicU64,
    pub(crate) fetch_calls: AtomicU64,
    pub(crate) acked: AtomicU64,
    pub(crate) ack_flushes: AtomicU64,
    pub(crate) stale: AtomicU64,
    pub(crate) retried: AtomicU64,
    pub(crate) dead_lettered: AtomicU64,
    pub(crate) released: AtomicU64,
    pub(crate) recovered: AtomicU64,
    pub(crate) undecodable: AtomicU64,
    pub(crate) redis_errors: AtomicU64,
    pub(crate) heartbeats: AtomicU64,
    pub(crate) leases_lost: AtomicU64,
    pub(crate) missed_deadline: AtomicU64,
    pub(crate) ticks_fired: AtomicU64,
}

/// A snapshot of what this process's queue handle did since it connected.
///
/// Every counter only grows. Relaxed loads: each counter is exact on its own, but a
/// snapshot is not taken atomically across counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientCounters {
    /// Jobs fetched (leased to this process).
    pub fetched: u64,
    /// Fetch script calls (each takes a batch).
    pub fetch_calls: u64,
    /// Jobs acknowledged.
    pub acked: u64,
    /// Ack flushes (each settles a batch).
    pub ack_flushes: u64,
    /// Settlements refused because the lease was lost (fencing at work).
    pub stale: u64,
    /// Jobs scheduled for another attempt.
    pub retried: u64,
    /// Jobs moved to the dead-letter list by this process.
    pub dead_lettered: u64,
    /// Jobs put back unstarted.
    pub released: u64,
    /// Jobs of dead or stalled workers put back by this process's fetches.
    pub recovered: u64,
    /// Job records this process refused, each dead-lettered with the reason: records
    /// that break the wire format (malformed, an id or attempt out of range, an
    /// envelope over [`RedisConfig::max_payload`](crate::RedisConfig::max_payload)) and
    /// envelopes that do not decode as the job type.
    pub undecodable: u64,
    /// Failed Redis calls in the background tasks (each followed by a backoff).
    pub redis_errors: u64,
    /// Heartbeat rounds that extended leases.
    pub heartbeats: u64,
    /// Deliveries whose lease a heartbeat found lost (taken back after it expired).
    pub leases_lost: u64,
    /// Jobs this process dead-lettered with the reason `expired`: not started by their
    /// deadline ([`JobOptions::start_by`](crate::JobOptions::start_by)).
    pub missed_deadline: u64,
    /// Ticks of periodic schedules this process fired (each tick is fired by one
    /// process).
    pub ticks_fired: u64,
}

impl Counters {
    pub(crate) fn add(counter: &AtomicU64, n: usize) {
        // Relaxed: a statistic, ordered with nothing else.
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> ClientCounters {
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        ClientCounters {
            fetched: get(&self.fetched),
            fetch_calls: get(&self.fetch_calls),
            acked: get(&self.acked),
            ack_flushes: get(&self.ack_flushes),
            stale: get(&self.stale),
            retried: get(&self.retried),
            dead_lettered: get(&self.dead_lettered),
            released: get(&self.released),
            recovered: get(&self.recovered),
            undecodable: get(&self.undecodable),
            redis_errors: get(&self.redis_errors),
            heartbeats: get(&self.heartbeats),
            leases_lost: get(&self.leases_lost),
            missed_deadline: get(&self.missed_deadline),
            ticks_fired: get(&self.ticks_fired),
        }
    }
}
