//! The benchmark driver shared by the criterion suite (`benches/workloads.rs`), the
//! comparison report (`benches/compare/`) and the allocation count
//! (`benches/allocs.rs`).
//!
//! Every system runs the same [`Workload`]s: the crewpool backends through one generic
//! function over the [`Queue`](crewpool::Queue) trait ([`crewpool_systems`]), so adding
//! a backend is one [`BenchQueue`](crewpool_systems::BenchQueue) impl and one match
//! arm, and the baselines ([`baseline`]) through hand-written equivalents of the same
//! loops.
//!
//! # What is timed
//!
//! From the first submit to the last completion, for every system alike: the clock
//! starts just before the first job is handed to the system (pools, threads and
//! runtimes are already built) and stops inside the job that brings the shared
//! [`Completion`] counter to zero. Every job of every system ends with the same
//! `Completion::finish_one` (one relaxed decrement of a shared counter), so that cost
//! is common to all. Tearing the system down afterwards (a pool's `shutdown`, joining
//! threads) is not timed, but it is checked: a crewpool pool must report every job
//! completed.

pub(crate) mod baseline;
pub(crate) mod completion;
pub(crate) mod crewpool_systems;
pub(crate) mod proc_status;
pub(crate) mod redis_systems;
pub(crate) mod select;
pub(crate) mod system;
pub(crate) mod workload;

use std::time::Duration;

pub(crate) use completion::Completion;
pub(crate) use system::System;
pub(crate) use workload::Workload;

/// What one run of one workload on one system measured.
#[derive(Clone, Debug)]
pub(crate) struct Measurement {
    /// Jobs run in the timed window.
    pub(crate) jobs: u64,
    /// First submit to last completion.
    pub(crate) elapsed: Duration,
    /// Heap allocations (and reallocations) in the timed window, when the binary has
    /// a counting allocator (see [`completion::set_allocation_counter`]).
    pub(crate) allocations: Option<u64>,
    /// For the memory workloads, in KiB: how much the resident set grew to hold the
    /// state measured: the queued jobs (`queued-1m`: from just before the first submit
    /// to the moment all are queued) or the idle workers (`idle-10k`: from before the
    /// pool was built to when all its workers are idle).
    pub(crate) held_kb: Option<u64>,
}

/// Runs `workload` once on `system`.
///
/// # Errors
///
/// A message when the system cannot run the workload (not built, not applicable, no
/// `redis-server`) or the run went wrong (a job failed, a count did not add up, the
/// hang guard fired).
pub(crate) fn run(workload: Workload, system: System) -> Result<Measurement, String> {
    if !workload.systems().contains(&system) {
        return Err(format!(
            "{} does not run the {} workload",
            system.name(),
            workload.name()
        ));
    }
    match system {
        System::CrewpoolDeque => {
            crewpool_systems::run::<crewpool::deque::DequeQueue<u64>>(workload)
        }
        System::CrewpoolDequeBatch => {
            crewpool_systems::run_batched::<crewpool::deque::DequeQueue<u64>>(workload)
        }
        System::CrewpoolFlume => {
            crewpool_systems::run::<crewpool::flume::FlumeQueue<u64>>(workload)
        }
        System::CrewpoolRedis => redis_systems::run(workload),
        System::RayonSpawn => baseline::rayon_spawn(workload),
        System::TokioSpawn => baseline::tokio_spawn(workload),
        System::StdMpscPool => baseline::hand_pool(baseline::Flavor::StdMpsc, workload),
        System::CrossbeamPool => baseline::hand_pool(baseline::Flavor::Crossbeam, workload),
        System::FlumePool => baseline::hand_pool(baseline::Flavor::Flume, workload),
        System::ThreadPerJob => baseline::thread_per_job(workload),
    }
}

/// A driver error as the message the report shows.
pub(crate) fn err(error: impl std::fmt::Display) -> String {
    error.to_string()
}

/// A multi-threaded tokio runtime with the workloads' worker count.
pub(crate) fn tokio_runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workload::WORKERS)
        .enable_all()
        .build()
        .map_err(err)
}

/// Waits for `done` and reports `jobs` timed from `start`.
pub(crate) fn measurement(
    jobs: u64,
    done: &Completion,
    start: completion::Start,
) -> Result<Measurement, String> {
    let (elapsed, allocations) = done.wait(start)?;
    Ok(Measurement {
        jobs,
        elapsed,
        allocations,
        held_kb: None,
    })
}
