//! Loom models of the backend's synchronisation (`--cfg crewpool_loom`).
//!
//! Each model drives the real `DequeQueue` and `DequeConsumer` (their ledger, wait
//! lists, registry and slots all use loom types through `crewpool_core::sync`) over the loom
//! stand-in deques of `crate::deques`, with at most three threads. Run them with
//!
//! ```text
//! RUSTFLAGS="--cfg crewpool_loom" LOOM_MAX_PREEMPTIONS=2 \
//!     cargo test --release -p crewpool-deque --lib loom_
//! ```

// A model's job is to panic with a message when a property breaks.
#![allow(clippy::expect_used)]

mod loom_batch;
mod loom_capacity;
mod loom_park;
mod loom_steal;
