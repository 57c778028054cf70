//! crewpool's benchmarks live in this package's bench targets: `workloads` (criterion),
//! `compare` (the report `cargo xtask bench` writes) and `allocs` (allocations per job).
//! The shared driver is `driver/`. This library is empty.
