//! Helpers shared by the tasks.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A task's result: an error is a message for the user.
pub(crate) type Result<T = ()> = std::result::Result<T, String>;

/// Runs a command in the workspace root, echoing it; fails if it fails.
pub(crate) fn run(program: &str, args: &[&str]) -> Result {
    run_with_env(program, args, &[])
}

/// Like [`run`], with extra environment variables.
pub(crate) fn run_with_env(program: &str, args: &[&str], vars: &[(&str, &str)]) -> Result {
    let shown: Vec<String> = vars.iter().map(|(k, v)| format!("{k}={v} ")).collect();
    println!("$ {}{program} {}", shown.concat(), args.join(" "));
    let status = Command::new(program)
        .args(args)
        .envs(vars.iter().copied())
        .current_dir(workspace_root()?)
        .status()
        .map_err(|e| format!("could not start `{program}`: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{program} {}` failed: {status}", args.join(" ")))
    }
}

/// Like [`run_with_env`], but kills the command if it is still running after
/// `limit`: a hang becomes a clear failure instead of a stuck CI run.
pub(crate) fn run_with_limit(
    program: &str,
    args: &[&str],
    vars: &[(&str, &str)],
    limit: std::time::Duration,
) -> Result {
    let shown: Vec<String> = vars.iter().map(|(k, v)| format!("{k}={v} ")).collect();
    println!("$ {}{program} {}", shown.concat(), args.join(" "));
    let mut child = Command::new(program)
        .args(args)
        .envs(vars.iter().copied())
        .current_dir(workspace_root()?)
        .spawn()
        .map_err(|e| format!("could not start `{program}`: {e}"))?;
    let started = std::time::Instant::now();
    loop {
        // A watchdog, not synchronisation: check once a second until it ends.
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => {
                return Err(format!("`{program} {}` failed: {status}", args.join(" ")));
            }
            Ok(None) if started.elapsed() > limit => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "`{program} {}` still ran after {limit:?}; killed it",
                    args.join(" ")
                ));
            }
            Ok(None) => std::thread::sleep(std::time::Duration::from_secs(1)),
            Err(e) => return Err(format!("waiting for `{program}`: {e}")),
        }
    }
}

/// The workspace root (the parent of this crate's directory).
pub(crate) fn workspace_root() -> Result<PathBuf> {
    let manifest_dir =
        env::var("CARGO_MANIFEST_DIR").map_err(|_| "run this through `cargo xtask`".to_owned())?;
    Path::new(&manifest_dir)
        .parent()
        .map(Path::to_path_buf)
        .ok_or_else(|| "xtask has no parent directory".to_owned())
}

/// Where cargo puts build output: `CARGO_TARGET_DIR` (relative to the workspace, where
/// [`run`] runs cargo), else `<workspace>/target`.
pub(crate) fn target_dir() -> Result<PathBuf> {
    let root = workspace_root()?;
    Ok(match env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => root.join(dir),
        None => root.join("target"),
    })
}
