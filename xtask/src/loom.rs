//! `cargo xtask loom`: the loom models of the runtime's shutdown and the deque's
//! parking, in release mode under `--cfg crewpool_loom`.
//!
//! The models build in their own target directory (`target/loom`), so the cfg change
//! does not invalidate the normal build.

use std::time::Duration;

use crate::util::{Result, run_with_limit, workspace_root};

/// Crates with loom models (`src/tests/loom_*.rs`).
const CRATES: &[&str] = &["crewpool-runtime", "crewpool-deque"];

/// Building and running every model takes a few minutes on 2 cores; past this, a
/// model is stuck (a failing model can hang the test harness while reporting).
const LIMIT: Duration = Duration::from_secs(20 * 60);

pub(crate) fn task(args: &[String]) -> Result {
    if let Some(extra) = args.first() {
        return Err(format!("`loom` takes no arguments (got `{extra}`)"));
    }
    let target_dir = workspace_root()?.join("target").join("loom");
    let target_dir = target_dir
        .to_str()
        .ok_or("the workspace path is not valid UTF-8")?
        .to_owned();
    let preemptions = std::env::var("LOOM_MAX_PREEMPTIONS").unwrap_or_else(|_| "2".to_owned());
    let root = workspace_root()?;
    let mut cargo_args = vec!["test", "--release", "--lib"];
    for krate in CRATES {
        if !root.join("crates").join(krate).is_dir() {
            return Err(format!("crate `{krate}` with loom models is missing"));
        }
        cargo_args.extend(["-p", krate]);
    }
    // No output capture and no backtraces: a model that fails inside a loom
    // coroutine can otherwise deadlock the harness on its capture lock, or overflow
    // the coroutine's stack while capturing a backtrace.
    cargo_args.extend(["loom_", "--", "--nocapture"]);
    run_with_limit(
        "cargo",
        &cargo_args,
        &[
            ("RUSTFLAGS", "--cfg crewpool_loom"),
            ("LOOM_MAX_PREEMPTIONS", &preemptions),
            ("CARGO_TARGET_DIR", &target_dir),
            ("RUST_BACKTRACE", "0"),
        ],
        LIMIT,
    )
}
