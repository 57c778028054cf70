//! The synchronisation types the runtime's shutdown and accounting use: `std`'s
//! normally, [loom](https://docs.rs/loom)'s under `--cfg crewpool_loom`, so the models
//! in `src/tests/loom_*.rs` explore every interleaving of the real code.
//!
//! Everything the models cover must take its atomics, locks and `Arc` from here, and
//! must stay free of tokio types. Never use the bare `--cfg loom`: tokio drops its net
//! module under it.

#[cfg(not(crewpool_loom))]
pub(crate) use std::sync::{
    Arc, Mutex, MutexGuard,
    atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering},
};

#[cfg(crewpool_loom)]
pub(crate) use loom::sync::{
    Arc, Mutex, MutexGuard,
    atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering},
};

/// Locks a mutex, ignoring poisoning: every critical section in this crate leaves its
/// data consistent at each step, so a panic elsewhere does not corrupt it.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // loom's `lock` returns std's `LockResult` too.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
