//! The synchronisation types of the backend: `std`'s normally, [loom]'s under
//! `--cfg crewpool_loom`, so the models in `src/tests/loom_*.rs` explore every
//! interleaving of the real code.
//!
//! Everything the models cover takes its atomics, fences, locks and `Arc` from here:
//! the ledger (count of accepted jobs and the closed flag), the wait lists (sleeping
//! consumers, producers waiting for room), the registry of consumers and each
//! consumer's slot. The deques themselves come from [`crate::deques`], which is
//! crossbeam-deque normally and a loom-visible stand-in under the cfg. None of this
//! code uses tokio types. Never use the bare `--cfg loom`: tokio drops its net module
//! under it.
//!
//! [loom]: https://docs.rs/loom

#[cfg(not(crewpool_loom))]
pub(crate) use std::sync::{
    Arc, Mutex, MutexGuard,
    atomic::{AtomicBool, AtomicUsize, Ordering, fence},
};

#[cfg(crewpool_loom)]
pub(crate) use loom::sync::{
    Arc, Mutex, MutexGuard,
    atomic::{AtomicBool, AtomicUsize, Ordering, fence},
};

/// Locks a mutex, ignoring poisoning: every critical section in this crate leaves its
/// data consistent at each step, so a panic elsewhere does not corrupt it.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // loom's `lock` returns std's `LockResult` too.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Backs off in a retry loop: a CPU hint normally, a yield to the other model threads
/// under loom (which must see spinning threads yield).
pub(crate) fn spin() {
    #[cfg(not(crewpool_loom))]
    std::hint::spin_loop();
    #[cfg(crewpool_loom)]
    loom::thread::yield_now();
}
