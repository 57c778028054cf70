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

/// The workspace root (the parent of this crate's directory).
pub(crate) fn workspace_root() -> Result<PathBuf> {
    let manifest_dir =
        env::var("CARGO_MANIFEST_DIR").map_err(|_| "run this through `cargo xtask`".to_owned())?;
    Path::new(&manifest_dir)
        .parent()
        .map(Path::to_path_buf)
        .ok_or_else(|| "xtask has no parent directory".to_owned())
}
