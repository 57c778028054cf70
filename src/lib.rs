//! crewpool: placeholder facade, filled in below.
pub use crewpool_core as core;
