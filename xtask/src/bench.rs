//! `cargo xtask bench`: the comparison of crewpool's backends against the baselines.
//!
//! Stays light: it builds and runs two bench binaries of the `crewpool-benches` package
//! (`benches/`) and leaves
//! the measuring and the report to them (see `benches/compare/main.rs`):
//!
//! 1. `cargo bench -p crewpool-benches --bench allocs`: heap allocations per job, under a counting
//!    allocator (written to `allocs.txt`);
//! 2. `cargo bench -p crewpool-benches --bench compare`: one fresh process per measurement, progress on
//!    stderr, the table on stdout, and `report.md`, `report.json` and `chart.svg`.
//!
//! Both go to `target/crewpool-bench/` (under `CARGO_TARGET_DIR` when it is set).

use crate::util::{Result, run, target_dir};

const USAGE: &str = "usage: cargo xtask bench [--quick] [--workload W[,W]]... [--system S[,S]]...\n\n\
    --quick         one run per row instead of five (a few minutes on 2 cores)\n\
    --workload W    only these workloads: tiny, io, fork-join, multi-producer,\n                \
    queued-1m, idle-10k, resize-10k, redis-noop, redis-enqueue\n\
    --system S      only these systems: crewpool-deque, crewpool-flume, crewpool-redis,\n                \
    rayon-spawn, tokio-spawn, std-mpsc-pool, crossbeam-pool, flume-pool,\n                \
    thread-per-job\n\n\
    The tiny rows also run once under callgrind (valgrind) for instructions per job.\n\n\
    Writes target/crewpool-bench/report.md, report.json and chart.svg.";

pub(crate) fn task(args: &[String]) -> Result {
    // Forwarded to both binaries, which check the names (and list the known ones).
    let mut selection: Vec<String> = Vec::new();
    let mut quick = false;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" => quick = true,
            "--workload" | "--system" => {
                let value = args
                    .next()
                    .ok_or_else(|| format!("`{arg}` needs a value\n\n{USAGE}"))?;
                selection.extend([arg.clone(), value.clone()]);
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            other if other.starts_with("--workload=") || other.starts_with("--system=") => {
                selection.push(other.to_owned());
            }
            other => return Err(format!("unknown argument `{other}`\n\n{USAGE}")),
        }
    }
    let out = target_dir()?.join("crewpool-bench");
    std::fs::create_dir_all(&out).map_err(|e| format!("creating {}: {e}", out.display()))?;
    let out_arg = out.display().to_string();
    let allocs = out.join("allocs.txt").display().to_string();

    let build = [
        "bench",
        "-p",
        "crewpool-benches",
        "--bench",
        "allocs",
        "--bench",
        "compare",
    ];
    run("cargo", &[&build[..], &["--no-run"]].concat())?;

    // The names are checked (and the rows listed) before anything is measured.
    let mut plan_args = vec![
        "bench",
        "-q",
        "-p",
        "crewpool-benches",
        "--bench",
        "compare",
        "--",
    ];
    plan_args.extend(selection.iter().map(String::as_str));
    plan_args.push("--plan");
    run("cargo", &plan_args)?;

    let mut allocs_args = vec![
        "bench",
        "-q",
        "-p",
        "crewpool-benches",
        "--bench",
        "allocs",
        "--",
    ];
    allocs_args.extend(selection.iter().map(String::as_str));
    allocs_args.extend(["--out", &allocs]);
    // A failed row there fails again in `compare`, which reports it; go on.
    if let Err(message) = run("cargo", &allocs_args) {
        eprintln!("xtask bench: {message}; going on without those allocation counts");
    }

    let mut compare_args = vec![
        "bench",
        "-q",
        "-p",
        "crewpool-benches",
        "--bench",
        "compare",
        "--",
    ];
    compare_args.extend(selection.iter().map(String::as_str));
    if quick {
        compare_args.push("--quick");
    }
    compare_args.extend(["--out", &out_arg, "--allocs", &allocs]);
    run("cargo", &compare_args)?;
    Ok(())
}
