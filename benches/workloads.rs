//! The criterion suite: every system on the same throughput workloads, one group per
//! workload, one `BenchmarkId::new(system, size)` per system.
//!
//! ```text
//! cargo bench -p crewpool-benches --bench workloads                      # everything
//! cargo bench -p crewpool-benches --bench workloads -- tiny/             # one workload
//! cargo bench -p crewpool-benches --bench workloads -- crewpool-flume    # one system
//! ```
//!
//! Each iteration builds the system, then times first submit to last completion (see
//! `driver`); criterion's throughput is jobs/s. The memory workloads (`queued-1m`,
//! `idle-10k`) need a process per measurement and live in the comparison report
//! (`cargo xtask bench`) only.

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput};

#[allow(dead_code)] // shared by the bench targets; each uses its own part
mod driver;

use driver::{System, Workload};

fn main() {
    let mut criterion = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
        .configure_from_args();
    for workload in Workload::ALL.into_iter().filter(|w| !w.is_memory()) {
        bench(&mut criterion, workload);
    }
    criterion.final_summary();
}

fn bench(criterion: &mut Criterion, workload: Workload) {
    let systems: &[System] = workload.systems();
    let mut group = criterion.benchmark_group(workload.name());
    // Each iteration is a whole workload (a tenth of a second to a few seconds).
    group.sampling_mode(SamplingMode::Flat);
    for &system in systems {
        group.throughput(Throughput::Elements(workload.jobs(system)));
        group.bench_function(BenchmarkId::new(system.name(), workload.param()), |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| match driver::run(workload, system) {
                        Ok(measured) => measured.elapsed,
                        Err(message) => panic!("{workload} on {system}: {message}"),
                    })
                    .sum()
            });
        });
    }
    group.finish();
}
