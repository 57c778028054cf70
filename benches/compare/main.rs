//! The comparison report: every system on every workload, one fresh process per
//! measurement, a table, `report.md`, `report.json` and an SVG chart.
//!
//! `cargo xtask bench` runs this; by hand:
//!
//! ```text
//! cargo bench -p crewpool-benches --bench compare -- [--quick] [--runs N] [--workload W[,W]] [--system S[,S]]
//!                                [--out DIR] [--allocs FILE] [--plan]
//! ```
//!
//! `--plan` prints the (workload, system) pairs the selection runs, and stops.
//!
//! Each measurement runs in a process of its own (this binary, re-executed with
//! `--measure WORKLOAD SYSTEM`), because peak RSS (`VmHWM`) is a high-water mark of a
//! whole process. Every row runs `--runs` times (1 with `--quick`, else 5), round by
//! round, and reports the median time and the highest peak RSS. `--allocs FILE` merges
//! the allocation counts written by `cargo bench -p crewpool-benches --bench allocs`.
//!
//! The `tiny` rows (but thread-per-job) also run once under callgrind
//! (`valgrind --tool=callgrind`), whose count of instructions executed by the whole
//! process, divided by the jobs, is the report's "instr/job": unlike times, it does
//! not depend on what else the machine is doing. Without valgrind on the `PATH` the
//! column says so (`apt-get install valgrind`); `--no-callgrind` skips it.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

#[allow(dead_code)] // shared by the bench targets; each uses its own part
#[path = "../driver/mod.rs"]
mod driver;
mod machine;
mod report;
mod svg;

use driver::select::Selection;
use driver::{System, Workload};

/// Runs per row without `--quick`.
const FULL_RUNS: usize = 5;

/// The line a `--measure` child prints, for the parent to parse.
const RESULT_TAG: &str = "crewpool-bench-result";

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(message) => {
            eprintln!("compare: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<ExitCode, String> {
    // `cargo bench` passes `--bench` to harness-less bench binaries.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    if let [flag, workload, system] = args.as_slice()
        && flag == "--measure"
    {
        measure(Workload::parse(workload)?, System::parse(system)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    let (selection, rest) = Selection::parse(args)?;
    let mut options = Options {
        runs: FULL_RUNS,
        quick: false,
        out: default_out()?,
        allocs: None,
        plan_only: false,
        callgrind: true,
    };
    let mut rest = rest.into_iter();
    while let Some(arg) = rest.next() {
        let mut value = |name: &str| rest.next().ok_or_else(|| format!("`{name}` needs a value"));
        match arg.as_str() {
            "--quick" => {
                options.quick = true;
                options.runs = 1;
            }
            "--runs" => {
                options.runs = value("--runs")?
                    .parse()
                    .ok()
                    .filter(|&runs| runs > 0)
                    .ok_or("`--runs` needs a positive number")?;
            }
            "--out" => options.out = PathBuf::from(value("--out")?),
            "--allocs" => options.allocs = Some(PathBuf::from(value("--allocs")?)),
            "--plan" => options.plan_only = true,
            "--no-callgrind" => options.callgrind = false,
            "-h" | "--help" => {
                println!("{}", usage());
                return Ok(ExitCode::SUCCESS);
            }
            other => return Err(format!("unknown argument `{other}`\n{}", usage())),
        }
    }
    let plan = selection.plan()?;
    if options.plan_only {
        for (workload, system) in &plan.rows {
            println!("{workload} {system}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let allocations = match &options.allocs {
        Some(path) => report::read_allocations(path)?,
        None => Vec::new(),
    };
    let machine = machine::describe();
    eprintln!(
        "compare: {} rows x {} run(s), one process each; {}",
        plan.rows.len(),
        options.runs,
        machine::one_line(&machine)
    );
    let began = Instant::now();
    let mut rows = run_rounds(&plan.rows, options.runs, &allocations);
    if options.callgrind {
        count_instructions(&mut rows);
    }
    let report = report::Report {
        machine,
        command: command_line(&options),
        runs: options.runs,
        rows,
    };
    std::fs::create_dir_all(&options.out)
        .map_err(|e| format!("creating {}: {e}", options.out.display()))?;
    let markdown = report.markdown();
    write(&options.out.join("report.md"), &markdown)?;
    write(&options.out.join("report.json"), &report.json())?;
    write(&options.out.join("chart.svg"), &svg::chart(&report))?;
    println!("{markdown}");
    eprintln!(
        "compare: done in {:.0?}; wrote report.md, report.json and chart.svg to {}",
        began.elapsed(),
        options.out.display()
    );
    let failed = report.rows.iter().filter(|row| row.error.is_some()).count();
    if failed > 0 {
        eprintln!("compare: {failed} row(s) failed; see the report");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

struct Options {
    runs: usize,
    quick: bool,
    out: PathBuf,
    allocs: Option<PathBuf>,
    /// Print the (workload, system) pairs that would run, and stop.
    plan_only: bool,
    /// Count instructions per job of the `tiny` rows under callgrind.
    callgrind: bool,
}

fn usage() -> &'static str {
    "usage: compare [--quick] [--runs N] [--workload W[,W]]... [--system S[,S]]... \
     [--out DIR] [--allocs FILE] [--plan] [--no-callgrind]"
}

/// How to run this again, for the report.
fn command_line(options: &Options) -> String {
    let mut command = "cargo xtask bench".to_owned();
    if options.quick {
        command.push_str(" --quick");
    }
    command
}

/// `<target dir>/crewpool-bench`: this binary lives in `<target dir>/<profile>/deps/`.
fn default_out() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("finding this binary: {e}"))?;
    exe.ancestors()
        .nth(3)
        .map(|target| target.join("crewpool-bench"))
        .ok_or_else(|| format!("cannot find the target directory above {}", exe.display()))
}

fn write(path: &std::path::Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("writing {}: {e}", path.display()))
}

/// The child: one measurement, one result line.
fn measure(workload: Workload, system: System) -> Result<(), String> {
    let measured = driver::run(workload, system)?;
    let peak = driver::proc_status::peak_rss_kb().ok_or("cannot read VmHWM")?;
    println!(
        "{RESULT_TAG} jobs={} elapsed_ns={} peak_rss_kb={peak} held_kb={}",
        measured.jobs,
        measured.elapsed.as_nanos(),
        measured
            .held_kb
            .map_or_else(|| "-".to_owned(), |kb| kb.to_string()),
    );
    Ok(())
}

/// One run's numbers, parsed from a child's result line.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RunResult {
    jobs: u64,
    elapsed: Duration,
    peak_rss_kb: u64,
    held_kb: Option<u64>,
}

impl RunResult {
    fn jobs_per_s(&self) -> f64 {
        self.jobs as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    fn ns_per_job(&self) -> f64 {
        self.elapsed.as_nanos() as f64 / self.jobs.max(1) as f64
    }
}

fn parse_result(stdout: &str) -> Option<RunResult> {
    let line = stdout.lines().find(|line| line.starts_with(RESULT_TAG))?;
    let field = |name: &str| {
        line.split_whitespace()
            .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
    };
    Some(RunResult {
        jobs: field("jobs")?.parse().ok()?,
        elapsed: Duration::from_nanos(field("elapsed_ns")?.parse().ok()?),
        peak_rss_kb: field("peak_rss_kb")?.parse().ok()?,
        held_kb: field("held_kb")?.parse().ok(),
    })
}

/// Runs every row `runs` times, each run in a fresh process, showing progress.
///
/// Round by round (every row once, then every row again), not row by row, so a
/// burst of load from elsewhere on the machine lands on one run of many rows rather
/// than on every run of one row; each row reports its median. A row that fails is
/// not run again.
fn run_rounds(
    plan: &[(Workload, System)],
    runs: usize,
    allocations: &[report::Allocations],
) -> Vec<report::Row> {
    let mut results: Vec<Vec<RunResult>> = vec![Vec::with_capacity(runs); plan.len()];
    let mut errors: Vec<Option<String>> = vec![None; plan.len()];
    let live = std::io::stderr().is_terminal();
    let back = if live { "\r" } else { "" };
    for round in 1..=runs {
        for (index, &(workload, system)) in plan.iter().enumerate() {
            if errors[index].is_some() {
                continue;
            }
            let label = format!(
                "[run {round}/{runs}] [{:>2}/{}] {:<15} {:<15}",
                index + 1,
                plan.len(),
                workload.name(),
                system.name()
            );
            if live {
                eprint!("{label} ...");
            }
            match run_child(&[], workload, system) {
                Ok((result, _)) => {
                    eprintln!(
                        "{back}{label} {:>12} jobs/s {:>8.0} ns/job  peak RSS {:>9}",
                        report::si(result.jobs_per_s()),
                        result.ns_per_job(),
                        report::kib(result.peak_rss_kb),
                    );
                    results[index].push(result);
                }
                Err(message) => {
                    eprintln!("{back}{label} FAILED: {message}");
                    errors[index] = Some(message);
                }
            }
        }
    }
    plan.iter()
        .zip(results)
        .zip(errors)
        .map(|((&(workload, system), results), error)| {
            report::Row::new(workload, system, &results, error, allocations)
        })
        .collect()
}

/// How long one measurement may run before it is killed. A hang guard only: the
/// slowest healthy measurement takes a few seconds.
const CHILD_LIMIT: Duration = Duration::from_secs(600);

/// The `tiny` rows whose instructions per job are counted (thread-per-job starts
/// a thread per job, which callgrind makes very slow, and is no contender).
fn counts_instructions(workload: Workload, system: System) -> bool {
    workload == Workload::Tiny && system != System::ThreadPerJob
}

/// Runs each row that [`counts_instructions`] once more under callgrind and records
/// its instructions per job, or why there are none.
fn count_instructions(rows: &mut [report::Row]) {
    for row in rows.iter_mut() {
        if row.error.is_some() || !counts_instructions(row.workload, row.system) {
            continue;
        }
        eprint!(
            "[callgrind] {:<15} {:<15} ...",
            row.workload.name(),
            row.system.name()
        );
        let counted = callgrind(row.workload, row.system);
        match &counted {
            Ok(per_job) => eprintln!(" {per_job:.0} instr/job"),
            Err(why) => eprintln!(" {why}"),
        }
        row.instructions = Some(counted);
    }
}

/// One measurement under callgrind: the instructions the whole process executed,
/// per job.
fn callgrind(workload: Workload, system: System) -> Result<f64, String> {
    let found = Command::new("valgrind")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !found {
        return Err("valgrind not found (apt-get install valgrind)".to_owned());
    }
    let (result, stderr) = run_child(
        &[
            "valgrind",
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
        ],
        workload,
        system,
    )?;
    // valgrind's summary: `==pid== Collected : 1234567`.
    let collected = stderr
        .lines()
        .find_map(|line| line.split_once("Collected :").map(|(_, n)| n.trim()))
        .and_then(|n| n.parse::<u64>().ok())
        .ok_or("no instruction count in callgrind's output")?;
    Ok(collected as f64 / result.jobs.max(1) as f64)
}

/// Runs one measurement in a child process, `wrapper` (a program and its arguments)
/// in front of it if not empty; returns its result and its stderr.
fn run_child(
    wrapper: &[&str],
    workload: Workload,
    system: System,
) -> Result<(RunResult, String), String> {
    let exe = std::env::current_exe().map_err(|e| format!("finding this binary: {e}"))?;
    let mut command = match wrapper.split_first() {
        Some((program, args)) => {
            let mut command = Command::new(program);
            command.args(args).arg(exe);
            command
        }
        None => Command::new(exe),
    };
    let child = command
        .args(["--measure", workload.name(), system.name()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("starting a measurement: {e}"))?;
    let pid = child.id();
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = sender.send(child.wait_with_output());
    });
    let output = match receiver.recv_timeout(CHILD_LIMIT) {
        Ok(output) => output.map_err(|e| format!("waiting for a measurement: {e}"))?,
        Err(_) => {
            // Our own child, by its pid.
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            return Err(format!("killed after {CHILD_LIMIT:?} (hung?)"));
        }
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        let why = stderr
            .lines()
            .last()
            .unwrap_or("no message")
            .trim()
            .to_owned();
        return Err(format!("measurement failed ({}): {why}", output.status));
    }
    let result =
        parse_result(&stdout).ok_or_else(|| format!("no result line in the output: {stdout}"))?;
    Ok((result, stderr.into_owned()))
}
