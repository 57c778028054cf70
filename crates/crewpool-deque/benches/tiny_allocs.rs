//! Heap allocations per job on the "tiny" workload, for every system of the `tiny`
//! bench, under a counting global allocator.
//!
//! ```text
//! cargo bench -p crewpool-deque --bench tiny_allocs [-- --jobs N --capacity C]
//! ```
//!
//! Counts every allocation in the process during one run of a system, the producer's
//! and the workers', divided by the number of jobs. That includes building the pool
//! and its threads: a fixed cost of a few hundred allocations, under 0.001 per job
//! at 1,000,000 jobs.

#[path = "tiny/systems.rs"]
mod systems;

use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use std::alloc::System;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let jobs: u64 = arg(&args, "--jobs").map_or(1_000_000, |v| v.parse().unwrap());
    let capacity: usize = arg(&args, "--capacity").map_or(1024, |v| v.parse().unwrap());
    println!("| system | allocations per job | bytes allocated per job |");
    println!("|---|---|---|");
    for system in systems::SYSTEMS {
        // A short warm-up run, so one-time allocations (thread-locals, lazy statics)
        // are not charged to the measured run.
        systems::run(system, 1000, capacity);
        let region = Region::new(GLOBAL);
        systems::run(system, jobs, capacity);
        let change = region.change();
        println!(
            "| {system} | {:.4} | {:.1} |",
            change.allocations as f64 / jobs as f64,
            change.bytes_allocated as f64 / jobs as f64,
        );
    }
}
