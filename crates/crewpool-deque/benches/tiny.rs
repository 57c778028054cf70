//! The "tiny" workload comparison (issue 3): crewpool-deque against crewpool-flume,
//! `rayon::spawn`, `tokio::spawn` and a hand-written crossbeam-channel pool, in one run.
//!
//! ```text
//! cargo bench -p crewpool-deque --bench tiny [-- --jobs N --rounds R --capacity C]
//! ```
//!
//! Each measurement runs in a fresh child process (this binary, re-run with
//! `--system NAME`), so one system's threads, heap and page faults cannot skew
//! another's, and each child's peak RSS (`VmHWM`) is its own. Systems are interleaved
//! round by round; the table shows the median wall time per system and its ratio to
//! the baselines. Heap allocations per job are measured by the `tiny_allocs` bench,
//! under a counting allocator that would slow the systems that allocate per job here.

#[path = "tiny/systems.rs"]
mod systems;

use std::process::Command;
use std::time::Duration;

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let jobs: u64 = arg(&args, "--jobs").map_or(1_000_000, |v| v.parse().unwrap());
    let capacity: usize = arg(&args, "--capacity").map_or(1024, |v| v.parse().unwrap());
    if let Some(system) = arg(&args, "--system") {
        let elapsed = systems::run(&system, jobs, capacity);
        println!("{} {}", elapsed.as_nanos(), peak_rss_kib());
        return;
    }
    let rounds: usize = arg(&args, "--rounds").map_or(5, |v| v.parse().unwrap());
    let exe = std::env::current_exe().unwrap();
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); systems::SYSTEMS.len()];
    let mut rss: Vec<u64> = vec![0; systems::SYSTEMS.len()];
    eprintln!(
        "tiny: {jobs} jobs, {} workers, capacity {capacity}, {rounds} rounds",
        systems::WORKERS
    );
    for round in 0..rounds {
        for (i, system) in systems::SYSTEMS.iter().enumerate() {
            let out = Command::new(&exe)
                .args(["--system", system, "--jobs", &jobs.to_string()])
                .args(["--capacity", &capacity.to_string()])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{system}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let line = String::from_utf8(out.stdout).unwrap();
            let mut fields = line.split_whitespace().map(|f| f.parse::<u64>().unwrap());
            let nanos = fields.next().unwrap();
            let kib = fields.next().unwrap();
            times[i].push(Duration::from_nanos(nanos));
            rss[i] = rss[i].max(kib);
            eprintln!(
                "round {round}: {system:<30} {:>8.1} ms  {kib} KiB",
                nanos as f64 / 1e6
            );
        }
    }
    let median = |t: &Vec<Duration>| {
        let mut t = t.clone();
        t.sort();
        t[t.len() / 2]
    };
    let medians: Vec<Duration> = times.iter().map(median).collect();
    let best: Vec<Duration> = times.iter().map(|t| *t.iter().min().unwrap()).collect();
    let index = |name: &str| systems::SYSTEMS.iter().position(|s| *s == name).unwrap();
    let by_hand = medians[index("crossbeam-channel by hand")];
    let rayon = medians[index("rayon::spawn")];
    println!(
        "| system | median wall time | best | jobs/s (median) | vs crossbeam by hand | vs rayon::spawn | peak RSS |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (i, system) in systems::SYSTEMS.iter().enumerate() {
        let t = medians[i];
        println!(
            "| {system} | {:.1} ms | {:.1} ms | {:.2} M | {:.2}× | {:.2}× | {:.1} MiB |",
            t.as_secs_f64() * 1e3,
            best[i].as_secs_f64() * 1e3,
            jobs as f64 / t.as_secs_f64() / 1e6,
            by_hand.as_secs_f64() / t.as_secs_f64(),
            rayon.as_secs_f64() / t.as_secs_f64(),
            rss[i] as f64 / 1024.0,
        );
    }
    println!(
        "(ratios are of median speeds: >1 means faster than the baseline; {rounds} rounds; best = fastest round)"
    );
}
