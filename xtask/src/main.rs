//! Project automation. Std-only on purpose (like rust-analyzer's xtask): heavy work
//! lives in the bench and example binaries this invokes.
//!
//! ```text
//! cargo xtask ci      # what .ci/run runs: fmt, clippy, tests, loom, 1M Redis backlog, short chaos, package
//! cargo xtask loom    # the loom models
//! cargo xtask bench   # backends vs baselines: target/crewpool-bench/report.md
//! cargo xtask chaos   # Redis workers SIGKILLed, Redis restarted; then every job audited
//! cargo xtask package # every crate packaged and verified; the README's Install section built
//! ```
//!
//! Each task lives in its own module with a `task(args)` entry point; `main` only
//! dispatches.

mod bench;
mod chaos;
mod ci;
mod loom;
mod package;
mod util;

use std::env;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let (task, rest) = match args.split_first() {
        Some((task, rest)) => (task.as_str(), rest),
        None => ("help", &[][..]),
    };
    let result = match task {
        "ci" => ci::task(rest),
        "bench" => bench::task(rest),
        "chaos" => chaos::task(rest),
        "loom" => loom::task(rest),
        "package" => package::task(rest),
        "help" | "--help" | "-h" => {
            print_help();
            Ok(())
        }
        other => Err(format!("unknown task `{other}`; see `cargo xtask help`")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

fn print_help() {
    println!(
        "cargo xtask <task>\n\n\
         tasks:\n  \
         ci      fmt --check, clippy (all targets, -D warnings), the README's test command, the loom models,\n          \
                 the 1,000,000-job Redis backlog (release), a short chaos run, `package`\n  \
         loom    the loom models (release, --cfg crewpool_loom, LOOM_MAX_PREEMPTIONS=2)\n  \
         bench   backends vs baselines; writes target/crewpool-bench/ (see `cargo xtask bench --help`)\n  \
         chaos   Redis worker processes SIGKILLed and Redis restarted mid-run, then every job audited (`--short` in CI)\n  \
         package every library crate packaged and built alone (cargo package), and a scratch app built from\n          \
                 the README's Install section and first example"
    );
}
