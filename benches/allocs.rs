//! Heap allocations per job: every selected (workload, system) once, in this process,
//! under a counting global allocator.
//!
//! ```text
//! cargo bench -p crewpool-benches --bench allocs -- [--workload W[,W]] [--system S[,S]] [--out FILE]
//! ```
//!
//! Allocations (and reallocations) are counted in the timed window only, from the
//! first submit to the last completion, on every thread. This is a binary of its own
//! because the counter (`stats_alloc`, shared atomics) slows allocating systems down:
//! the comparison's timings come from `compare`, which has the plain allocator. With
//! `--out`, writes `workload system jobs allocations` lines for
//! `compare --allocs FILE`.

use std::alloc::System as SystemAlloc;
use std::fmt::Write as _;
use std::process::ExitCode;

use stats_alloc::{INSTRUMENTED_SYSTEM, StatsAlloc};

#[allow(dead_code)] // shared by the bench targets; each uses its own part
mod driver;

#[global_allocator]
static GLOBAL: &StatsAlloc<SystemAlloc> = &INSTRUMENTED_SYSTEM;

fn allocations() -> u64 {
    let stats = GLOBAL.stats();
    (stats.allocations + stats.reallocations) as u64
}

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(message) => {
            eprintln!("allocs: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<ExitCode, String> {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let (selection, rest) = driver::select::Selection::parse(args)?;
    let mut out = None;
    let mut rest = rest.into_iter();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--out" => out = Some(rest.next().ok_or("`--out` needs a value")?),
            // Accepted so the same flags work for `compare` and `allocs`.
            "--quick" => {}
            other => {
                return Err(format!(
                    "unknown argument `{other}`; usage: allocs [--workload W[,W]] \
                     [--system S[,S]] [--out FILE]"
                ));
            }
        }
    }
    let plan = selection.plan()?;
    driver::completion::set_allocation_counter(allocations);
    let mut lines = String::from(
        "# workload system jobs allocations (cargo bench -p crewpool-benches --bench allocs)\n",
    );
    let mut failed = 0;
    for (index, &(workload, system)) in plan.rows.iter().enumerate() {
        let label = format!(
            "[{:>2}/{}] {:<15} {:<15}",
            index + 1,
            plan.rows.len(),
            workload.name(),
            system.name()
        );
        eprint!("{label} counting ...");
        match driver::run(workload, system) {
            Ok(measured) => {
                let count = measured
                    .allocations
                    .ok_or("the allocation counter is not installed")?;
                eprintln!(
                    "\r{label} {:>10.3} allocations/job ({count} for {} jobs)",
                    count as f64 / measured.jobs.max(1) as f64,
                    measured.jobs
                );
                let _ = writeln!(lines, "{workload} {system} {} {count}", measured.jobs);
            }
            Err(message) => {
                failed += 1;
                eprintln!("\r{label} FAILED: {message}");
            }
        }
    }
    if let Some(out) = out {
        std::fs::write(&out, lines).map_err(|e| format!("writing {out}: {e}"))?;
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
