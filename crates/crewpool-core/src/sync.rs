//! The synchronisation types crewpool's in-memory crates build on: `std`'s normally,
//! [loom](https://docs.rs/loom)'s under `--cfg crewpool_loom`, so the loom models
//! (`src/tests/loom_*.rs` in crewpool-runtime and crewpool-deque, run by
//! `cargo xtask loom`) explore every interleaving of the real code.
//!
//! Everything the models cover takes its atomics, fences, locks and `Arc` from here,
//! and locks through [`lock`]. Never use the bare `--cfg loom`: tokio drops its net
//! module under it.
//!
//! For crewpool's own crates; not part of the stable API.

#[cfg(not(crewpool_loom))]
pub use std::sync::{
    Arc, Mutex, MutexGuard,
    atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering, fence},
};

#[cfg(crewpool_loom)]
pub use loom::sync::{
    Arc, Mutex, MutexGuard,
    atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering, fence},
};

/// Locks a mutex, ignoring poisoning: every critical section in crewpool leaves its
/// data consistent at each step, so a panic elsewhere does not corrupt it.
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // loom's `lock` returns std's `LockResult` too.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Backs off in a retry loop: a CPU hint normally, a yield to the other model threads
/// under loom (which must see spinning threads yield).
pub fn spin() {
    #[cfg(not(crewpool_loom))]
    std::hint::spin_loop();
    #[cfg(crewpool_loom)]
    loom::thread::yield_now();
}
