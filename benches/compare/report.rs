//! The report: rows, ratios against the best baseline, targets, and the markdown and
//! JSON renderings.

use std::fmt::Write as _;
use std::path::Path;

use crate::RunResult;
use crate::driver::workload::{IDLE_WORKERS, QUEUED_JOBS, RESIZES, THREAD_PER_JOB_JOBS};
use crate::driver::{System, Workload};
use crate::machine::{self, Machine};

/// Allocations counted by `cargo bench -p crewpool-benches --bench allocs` for one row.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Allocations {
    workload: Workload,
    system: System,
    jobs: u64,
    allocations: u64,
}

/// Reads the file `allocs` writes: `workload system jobs allocations` per line.
pub(crate) fn read_allocations(path: &Path) -> Result<Vec<Allocations>, String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    text.lines()
        .filter(|line| !line.trim().is_empty() && !line.starts_with('#'))
        .map(|line| {
            let bad = || format!("{}: malformed line `{line}`", path.display());
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [workload, system, jobs, allocations] = fields.as_slice() else {
                return Err(bad());
            };
            Ok(Allocations {
                workload: Workload::parse(workload)?,
                system: System::parse(system)?,
                jobs: jobs.parse().map_err(|_| bad())?,
                allocations: allocations.parse().map_err(|_| bad())?,
            })
        })
        .collect()
}

/// One (workload, system) row: the median of its runs.
#[derive(Clone, Debug)]
pub(crate) struct Row {
    pub(crate) workload: Workload,
    pub(crate) system: System,
    pub(crate) jobs: u64,
    pub(crate) jobs_per_s: f64,
    pub(crate) ns_per_job: f64,
    /// The highest peak RSS of the runs.
    pub(crate) peak_rss_kb: u64,
    /// Memory workloads: resident set grown to hold the queued jobs or idle workers.
    pub(crate) held_kb: Option<u64>,
    pub(crate) allocs_per_job: Option<f64>,
    /// Instructions per job under callgrind (`tiny`), or why there is no count.
    pub(crate) instructions: Option<Result<f64, String>>,
    /// Every run's jobs/s, in run order.
    pub(crate) runs: Vec<f64>,
    pub(crate) error: Option<String>,
}

impl Row {
    pub(crate) fn new(
        workload: Workload,
        system: System,
        results: &[RunResult],
        error: Option<String>,
        allocations: &[Allocations],
    ) -> Self {
        let mut sorted: Vec<&RunResult> = results.iter().collect();
        sorted.sort_by_key(|r| r.elapsed);
        let median = sorted.get(sorted.len() / 2).copied();
        let allocs_per_job = allocations
            .iter()
            .find(|a| a.workload == workload && a.system == system && a.jobs > 0)
            .map(|a| a.allocations as f64 / a.jobs as f64);
        Row {
            workload,
            system,
            jobs: median.map_or(0, |r| r.jobs),
            jobs_per_s: median.map_or(0.0, RunResult::jobs_per_s),
            ns_per_job: median.map_or(0.0, RunResult::ns_per_job),
            peak_rss_kb: results.iter().map(|r| r.peak_rss_kb).max().unwrap_or(0),
            held_kb: median.and_then(|r| r.held_kb),
            allocs_per_job,
            instructions: None,
            runs: results.iter().map(RunResult::jobs_per_s).collect(),
            error: error.or_else(|| results.is_empty().then(|| "no runs".to_owned())),
        }
    }

    fn ok(&self) -> bool {
        self.error.is_none()
    }
}

/// A whole comparison run.
#[derive(Debug)]
pub(crate) struct Report {
    pub(crate) machine: Machine,
    pub(crate) command: String,
    pub(crate) runs: usize,
    pub(crate) rows: Vec<Row>,
}

impl Report {
    /// The workloads that have rows, in report order.
    pub(crate) fn workloads(&self) -> Vec<Workload> {
        let mut workloads: Vec<Workload> = self.rows.iter().map(|r| r.workload).collect();
        workloads.sort();
        workloads.dedup();
        workloads
    }

    pub(crate) fn rows_of(&self, workload: Workload) -> impl Iterator<Item = &Row> {
        self.rows.iter().filter(move |r| r.workload == workload)
    }

    fn row(&self, workload: Workload, system: System) -> Option<&Row> {
        self.rows_of(workload)
            .find(|r| r.system == system && r.ok())
    }

    /// The best baseline of a workload: most jobs/s, or for memory workloads the
    /// least memory held.
    fn best_baseline(&self, workload: Workload) -> Option<&Row> {
        let baselines = self
            .rows_of(workload)
            .filter(|r| r.ok() && !r.system.is_crewpool());
        if workload.is_memory() {
            baselines
                .filter(|r| r.held_kb.is_some())
                .min_by_key(|r| r.held_kb)
        } else {
            baselines.max_by(|a, b| a.jobs_per_s.total_cmp(&b.jobs_per_s))
        }
    }

    /// A row against its workload's best baseline: jobs/s ratio (higher is better),
    /// or for memory workloads memory held ratio (lower is better).
    pub(crate) fn ratio(&self, row: &Row) -> Option<f64> {
        if !row.ok() {
            return None;
        }
        let best = self.best_baseline(row.workload)?;
        if row.workload.is_memory() {
            let (mine, theirs) = (row.held_kb?, best.held_kb?);
            (theirs > 0).then(|| mine as f64 / theirs as f64)
        } else {
            (best.jobs_per_s > 0.0).then(|| row.jobs_per_s / best.jobs_per_s)
        }
    }

    /// `report.md`.
    pub(crate) fn markdown(&self) -> String {
        let mut md = String::new();
        let _ = writeln!(md, "# crewpool benchmark report\n");
        let _ = writeln!(md, "- Machine: {}", machine::one_line(&self.machine));
        let _ = writeln!(
            md,
            "- Command: `{}` ({} run(s) per row, round by round, each in a fresh process; \
             median time, highest peak RSS)",
            self.command, self.runs
        );
        let _ = writeln!(
            md,
            "- Timing: first submit to last completion. Pools, threads and runtimes are \
             built before the clock starts; the job that brings a shared completion \
             counter to zero stops it, and every system's jobs end with that same \
             counter decrement. Teardown is not timed."
        );
        let _ = writeln!(
            md,
            "- Ratios (×) are against the best baseline of the same workload in this \
             run. Baselines: rayon-spawn, tokio-spawn, std-mpsc-pool, crossbeam-pool, \
             flume-pool, thread-per-job ({THREAD_PER_JOB_JOBS} jobs where the others run \
             more)."
        );
        let _ = writeln!(
            md,
            "- instr/job (`tiny`): instructions the whole measuring process executed \
             under callgrind (one run), divided by the jobs: the job itself, the \
             producer and the workers, start-up included. Repeatable where times are \
             not.\n"
        );
        let _ = writeln!(md, "## Throughput\n");
        for workload in self.workloads().into_iter().filter(|w| !w.is_memory()) {
            let _ = writeln!(md, "### {workload}\n\n{}.\n", workload.describe());
            let counted = self.rows_of(workload).any(|row| row.instructions.is_some());
            let (extra, extra_rule) = if counted {
                (" instr/job |", "---:|")
            } else {
                ("", "")
            };
            let _ = writeln!(
                md,
                "| system | jobs | jobs/s | ns/job | peak RSS | × best baseline | allocs/job |{extra}"
            );
            let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|---:|{extra_rule}");
            for row in self.rows_of(workload) {
                if let Some(error) = &row.error {
                    let _ = writeln!(md, "| {} | failed: {error} | | | | | |", row.system);
                    continue;
                }
                let instructions = match &row.instructions {
                    _ if !counted => String::new(),
                    Some(Ok(per_job)) => format!(" {} |", thousands(per_job.round() as u64)),
                    Some(Err(why)) => format!(" – ({why}) |"),
                    None => " – |".to_owned(),
                };
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {:.0} | {} | {} | {} |{instructions}",
                    row.system,
                    thousands(row.jobs),
                    si(row.jobs_per_s),
                    row.ns_per_job,
                    kib(row.peak_rss_kb),
                    self.ratio(row)
                        .map_or("–".to_owned(), |r| format!("{r:.2}×")),
                    allocs(row.allocs_per_job),
                );
            }
            let _ = writeln!(md);
        }
        let memory: Vec<Workload> = self
            .workloads()
            .into_iter()
            .filter(|w| w.is_memory())
            .collect();
        if !memory.is_empty() {
            let _ = writeln!(md, "## Memory\n");
            let _ = writeln!(
                md,
                "\"Held\" is how much the resident set grew to hold the state: the queued \
                 jobs, or the idle workers; for `resize-10k`, over the resizes. Ratios compare it with the baseline that \
                 holds least (lower is better). Peak RSS is the whole process's \
                 high-water mark (`VmHWM`).\n"
            );
        }
        for workload in memory {
            let per = match workload {
                Workload::Queued => ("bytes/job", QUEUED_JOBS as f64, 1024.0),
                Workload::Resize => ("bytes/resize", RESIZES as f64, 1024.0),
                _ => ("KiB/worker", IDLE_WORKERS as f64, 1.0),
            };
            let _ = writeln!(md, "### {workload}\n\n{}.\n", workload.describe());
            let _ = writeln!(
                md,
                "| system | peak RSS | held | {} | × best baseline (held) | time |",
                per.0
            );
            let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|");
            for row in self.rows_of(workload) {
                if let Some(error) = &row.error {
                    let _ = writeln!(md, "| {} | failed: {error} | | | | |", row.system);
                    continue;
                }
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {} | {} | {:.0} ms |",
                    row.system,
                    kib(row.peak_rss_kb),
                    row.held_kb.map_or("–".to_owned(), kib),
                    row.held_kb.map_or("–".to_owned(), |h| format!(
                        "{:.1}",
                        h as f64 * per.2 / per.1
                    )),
                    self.ratio(row)
                        .map_or("–".to_owned(), |r| format!("{r:.2}×")),
                    row.jobs as f64 / row.jobs_per_s.max(1e-9) * 1e3,
                );
            }
            let _ = writeln!(md);
        }
        let _ = writeln!(md, "## Targets\n");
        let _ = writeln!(md, "| target | measured | verdict |");
        let _ = writeln!(md, "|---|---:|---|");
        for target in self.targets() {
            let _ = writeln!(
                md,
                "| {} | {} | {} |",
                target.what, target.measured, target.verdict
            );
        }
        let _ = writeln!(md);
        md
    }

    /// `report.json`.
    pub(crate) fn json(&self) -> String {
        let results: Vec<serde_json::Value> = self
            .rows
            .iter()
            .map(|row| {
                let mut value = serde_json::json!({
                    "workload": row.workload.name(),
                    "system": row.system.name(),
                    "jobs": row.jobs,
                    "jobs_per_s": row.jobs_per_s.round(),
                    "ns_per_job": (row.ns_per_job * 10.0).round() / 10.0,
                    "peak_rss_kb": row.peak_rss_kb,
                    "held_rss_kb": row.held_kb,
                    "allocs_per_job": row.allocs_per_job,
                    "instructions_per_job": row
                        .instructions
                        .as_ref()
                        .and_then(|counted| counted.as_ref().ok())
                        .map(|per_job| per_job.round()),
                    "ratio_to_best_baseline": self.ratio(row),
                    "runs_jobs_per_s": row.runs.iter().map(|r| r.round()).collect::<Vec<_>>(),
                });
                if let Some(error) = &row.error {
                    value["error"] = serde_json::Value::String(error.clone());
                }
                value
            })
            .collect();
        let targets: Vec<serde_json::Value> = self
            .targets()
            .into_iter()
            .map(|t| serde_json::json!({"target": t.what, "measured": t.measured, "verdict": t.verdict}))
            .collect();
        let report = serde_json::json!({
            "machine": self.machine.json(),
            "command": self.command,
            "runs_per_row": self.runs,
            "timing": "first submit to last completion",
            "results": results,
            "targets": targets,
        });
        serde_json::to_string_pretty(&report).unwrap_or_default() + "\n"
    }

    /// The issue targets, computed from this run's rows.
    pub(crate) fn targets(&self) -> Vec<Target> {
        let mut targets = Vec::new();
        let deque = System::CrewpoolDeque;
        let ratio_target = |what: String, a: Option<&Row>, b: Option<&Row>, min: f64| match (a, b) {
            (Some(a), Some(b)) if b.jobs_per_s > 0.0 => {
                let ratio = a.jobs_per_s / b.jobs_per_s;
                Target::new(what, format!("{ratio:.2}×"), ratio >= min)
            }
            _ => Target::not_measured(what),
        };
        for (what, workload, mine, theirs, min) in [
            (
                "tiny: crewpool-deque ≥ 1.0× crossbeam-pool",
                Workload::Tiny,
                deque,
                System::CrossbeamPool,
                1.0,
            ),
            (
                "tiny: crewpool-deque ≥ 1.3× rayon-spawn",
                Workload::Tiny,
                deque,
                System::RayonSpawn,
                1.3,
            ),
            (
                "multi-producer: crewpool-deque ≥ 1.0× crossbeam-pool",
                Workload::MultiProducer,
                deque,
                System::CrossbeamPool,
                1.0,
            ),
            (
                "fork-join: crewpool-deque ≥ 1.0× rayon-spawn",
                Workload::ForkJoin,
                deque,
                System::RayonSpawn,
                1.0,
            ),
            (
                "tiny: crewpool-flume ≥ 0.9× flume-pool",
                Workload::Tiny,
                System::CrewpoolFlume,
                System::FlumePool,
                0.9,
            ),
            (
                "multi-producer: crewpool-flume ≥ 0.9× flume-pool",
                Workload::MultiProducer,
                System::CrewpoolFlume,
                System::FlumePool,
                0.9,
            ),
        ] {
            targets.push(ratio_target(
                what.to_owned(),
                self.row(workload, mine),
                self.row(workload, theirs),
                min,
            ));
        }
        let what = "tiny: crewpool-deque ≤ 1.5× crossbeam-pool's instructions per job".to_owned();
        let counted = |system| {
            self.row(Workload::Tiny, system)
                .and_then(|row| row.instructions.as_ref()?.as_ref().ok().copied())
        };
        targets.push(match (counted(deque), counted(System::CrossbeamPool)) {
            (Some(mine), Some(theirs)) if theirs > 0.0 => {
                let ratio = mine / theirs;
                Target::new(
                    what,
                    format!("{mine:.0} / {theirs:.0} = {ratio:.2}×"),
                    ratio <= 1.5,
                )
            }
            _ => Target::not_measured(what),
        });
        for system in [deque, System::CrewpoolFlume] {
            let what = format!("resize-10k: {system} resident set flat (≤ 16 bytes per resize)");
            targets.push(
                match self
                    .row(Workload::Resize, system)
                    .and_then(|row| row.held_kb)
                {
                    Some(held) => {
                        let per = held as f64 * 1024.0 / RESIZES as f64;
                        Target::new(what, format!("{per:.1} bytes/resize"), per <= 16.0)
                    }
                    None => Target::not_measured(what),
                },
            );
        }
        let what = "tiny: crewpool-deque 0 heap allocations/job (fire and forget)".to_owned();
        targets.push(
            match self
                .row(Workload::Tiny, deque)
                .and_then(|r| r.allocs_per_job)
            {
                // Below one allocation per thousand jobs is amortised growth, not per job.
                Some(a) => Target::new(what, allocs(Some(a)), a < 0.001),
                None => Target::not_measured(what),
            },
        );
        let what = "tiny: crewpool-deque peak RSS < 8 MiB (bounded queue)".to_owned();
        targets.push(match self.row(Workload::Tiny, deque) {
            Some(r) => Target::new(what, kib(r.peak_rss_kb), r.peak_rss_kb < 8 * 1024),
            None => Target::not_measured(what),
        });
        let rate_target = |what: &str, workload: Workload, min: f64| match self
            .row(workload, System::CrewpoolRedis)
        {
            Some(r) => Target::new(
                what.to_owned(),
                format!("{} jobs/s", si(r.jobs_per_s)),
                r.jobs_per_s >= min,
            ),
            None => Target::not_measured(what.to_owned()),
        };
        targets.push(rate_target(
            "redis-noop: crewpool-redis ≥ 150,000 jobs/s processed",
            Workload::RedisNoop,
            150_000.0,
        ));
        targets.push(rate_target(
            "redis-enqueue: crewpool-redis ≥ 600,000 jobs/s enqueued in batches",
            Workload::RedisEnqueue,
            600_000.0,
        ));
        targets
    }
}

/// One issue target and how this run did against it.
#[derive(Debug)]
pub(crate) struct Target {
    what: String,
    measured: String,
    verdict: &'static str,
}

impl Target {
    fn new(what: String, measured: String, met: bool) -> Self {
        Target {
            what,
            measured,
            verdict: if met { "met" } else { "missed" },
        }
    }

    fn not_measured(what: String) -> Self {
        Target {
            what,
            measured: "–".to_owned(),
            verdict: "not measured in this run",
        }
    }
}

/// `3.21 M`, `512 k`, `950`.
pub(crate) fn si(value: f64) -> String {
    if value >= 1e6 {
        format!("{:.2} M", value / 1e6)
    } else if value >= 1e3 {
        format!("{:.1} k", value / 1e3)
    } else {
        format!("{value:.0}")
    }
}

/// `4.1 MiB`, `812 KiB`.
pub(crate) fn kib(kb: u64) -> String {
    if kb >= 1024 {
        format!("{:.1} MiB", kb as f64 / 1024.0)
    } else {
        format!("{kb} KiB")
    }
}

fn allocs(per_job: Option<f64>) -> String {
    per_job.map_or("–".to_owned(), |a| format!("{a:.3}"))
}

fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
