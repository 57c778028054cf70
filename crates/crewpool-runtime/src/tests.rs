//! Loom models of the runtime's shutdown and accounting (`--cfg crewpool_loom`).
//!
//! Each model drives the real worker loop (`worker::run`), the real lifecycle and the
//! real shutdown report (`Shared::finish`) over a small queue made of loom types, so
//! loom explores every interleaving of the synchronisation the pool relies on. Run
//! them with `cargo xtask loom`.

mod loom_deadline;
mod loom_panic;
mod loom_shutdown;
mod model_queue;
