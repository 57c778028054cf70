//! Leases as this process holds them: the registry of the leases it fetched, the
//! heartbeat that extends them, and the abandonment of deliveries dropped unsettled.
//!
//! A fetch takes its jobs under one lease (see `fetch.lua`); the lease number is the
//! fencing token of its deliveries. This process registers each lease it fetched, the
//! heartbeat extends the ones that still have deliveries here (`extend.lua`) and
//! forgets the ones Redis took back, and a delivery dropped unsettled gets a lease of
//! its own that nobody extends (`abandon.lua`), so it comes back when that expires.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::watch;

use crate::Result;
use crate::counters::Counters;
use crate::error::Chain;
use crate::link::{Link, millis, write_field};
use crate::wire::{array, uint};

/// The most leases one heartbeat call extends.
const EXTEND_BATCH: usize = 1000;

/// One fetch's lease, as this process holds it.
///
/// A fetch leases its jobs together: they are the fields `<lease>:1` ..
/// `<lease>:<n>` of the `leased` hash, and the lease's deadline in `active` covers them
/// all. The heartbeat extends the leases that still have deliveries here.
///
/// `held` counts the lease's deliveries that this process holds and has not handed
/// to a settlement yet: it starts at the number of jobs fetched and only goes down,
/// by one per delivery (when its ack is queued, its retry, dead-letter or release call
/// is made, or it is dropped), so once it reaches zero the lease is never extended
/// again. SeqCst: a heartbeat that finds a lease gone reads `held` after Redis answered,
/// which is after any settlement that emptied the lease was sent, which is after that
/// settlement's decrement; the count it reads then is the deliveries truly lost.
#[derive(Debug)]
pub(crate) struct Lease {
    pub(crate) id: u64,
    held: AtomicUsize,
}

impl Lease {
    /// One delivery of this lease no longer needs it (handed to a settlement, or
    /// dropped); returns how many are still held.
    pub(crate) fn let_go(&self) -> usize {
        let before = self.held.fetch_sub(1, Ordering::SeqCst);
        before.saturating_sub(1)
    }

    pub(crate) fn held(&self) -> usize {
        self.held.load(Ordering::SeqCst)
    }
}

/// The leases this process fetched and still holds deliveries of (pruned by the
/// heartbeat). The heartbeat extends exactly these.
#[derive(Debug, Default)]
pub(crate) struct Leases {
    held: Mutex<Vec<Arc<Lease>>>,
}

impl Leases {
    /// Registers a lease just fetched with `jobs` deliveries.
    pub(crate) fn hold(&self, id: u64, jobs: usize) -> Arc<Lease> {
        let lease = Arc::new(Lease {
            id,
            held: AtomicUsize::new(jobs),
        });
        self.lock().push(Arc::clone(&lease));
        lease
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Arc<Lease>>> {
        // Every critical section is a push, a retain or a scan: a panic cannot leave
        // it half-done.
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The ids of the leases that still have deliveries here (forgetting the others).
    pub(crate) fn held_ids(&self) -> Vec<u64> {
        let mut leases = self.lock();
        leases.retain(|lease| lease.held() > 0);
        leases.iter().map(|lease| lease.id).collect()
    }

    /// Forgets leases a heartbeat found gone; returns how many deliveries of them were
    /// still held here (lost: their jobs went back to the queue).
    pub(crate) fn drop_lost(&self, lost: &[u64]) -> usize {
        let mut leases = self.lock();
        let mut dropped = 0;
        leases.retain(|lease| {
            if lost.contains(&lease.id) {
                dropped += lease.held();
                false
            } else {
                true
            }
        });
        dropped
    }

    /// How many deliveries this process holds (fetched and not handed to a
    /// settlement).
    pub(crate) fn held_deliveries(&self) -> usize {
        self.lock().iter().map(|lease| lease.held()).sum()
    }
}

impl Link {
    /// Extends `leases`; returns the ones that are gone.
    pub(crate) async fn extend(&self, leases: &[u64]) -> Result<Vec<u64>> {
        let script = &self.scripts.extend;
        let mut call = Self::script_call(script, &[&self.keys.active]);
        call.arg(millis(self.config.lease)).arg(leases);
        array(self.invoke("extending leases", script, &call).await?)?
            .iter()
            .map(uint)
            .collect()
    }

    /// Gives jobs whose deliveries were dropped unsettled a lease of their own that
    /// nobody extends (see `abandon.lua`); returns how many were moved.
    pub(crate) async fn abandon(&self, items: &[(u64, u32)]) -> Result<u64> {
        let keys = &self.keys;
        let script = &self.scripts.abandon;
        let mut call = Self::script_call(
            script,
            &[&keys.leased, &keys.active, &keys.leases, &keys.fence],
        );
        for &(lease, index) in items {
            write_field(&mut call, lease, index);
        }
        uint(
            &self
                .invoke("moving dropped deliveries", script, &call)
                .await?,
        )
    }
}

/// Moves the jobs of deliveries dropped unsettled to leases of their own; on failure
/// they stay in their old lease and come back with it.
pub(crate) async fn abandon_batch(link: &Link, abandoned: &mut Vec<(u64, u32)>) {
    match link.abandon(abandoned).await {
        Ok(moved) => {
            tracing::debug!(queue = %link.config.queue, moved, "deliveries dropped unsettled will come back when their own lease expires");
        }
        Err(error) => {
            Counters::add(&link.counters.redis_errors, 1);
            tracing::warn!(queue = %link.config.queue, error = %Chain(&error), jobs = abandoned.len(), "could not give dropped deliveries their own lease; they come back when their fetch's lease expires");
        }
    }
    abandoned.clear();
}

/// Every heartbeat interval, extends the lease of every job this process holds.
pub(crate) async fn run_heartbeat(link: Arc<Link>, mut stop: watch::Receiver<()>) {
    let mut ticker = tokio::time::interval(link.config.heartbeat_interval());
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            // Only an error is possible: the sender is never used to send.
            _ = stop.changed() => return,
        }
        if let Err(error) = extend_leases(&link).await {
            Counters::add(&link.counters.redis_errors, 1);
            tracing::warn!(queue = %link.config.queue, error = %Chain(&error), "heartbeat failed; retrying at the next tick");
        }
    }
}

/// One heartbeat round; returns how many held deliveries were found lost.
pub(crate) async fn extend_leases(link: &Link) -> Result<usize> {
    let held = link.leases.held_ids();
    if held.is_empty() {
        return Ok(0);
    }
    let mut lost_count = 0;
    for ids in held.chunks(EXTEND_BATCH) {
        let lost = link.extend(ids).await?;
        if lost.is_empty() {
            continue;
        }
        // A lease emptied by settlements that raced this heartbeat is gone too, but
        // then none of its deliveries is held any more: only held ones count.
        let lost = link.leases.drop_lost(&lost);
        if lost > 0 {
            tracing::warn!(queue = %link.config.queue, lost, "leases lost: their jobs were taken back; settling them will fail");
            lost_count += lost;
        }
    }
    Counters::add(&link.counters.heartbeats, 1);
    Counters::add(&link.counters.leases_lost, lost_count);
    Ok(lost_count)
}
