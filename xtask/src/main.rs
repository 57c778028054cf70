//! Project automation. Std-only on purpose: heavy work lives in the bench and example
//! binaries this invokes.
//!
//! ```text
//! cargo xtask ci      # what .ci/run runs: fmt, clippy, the README's test command
//! ```

use std::env;
use std::process::{Command, ExitCode};

type Result<T = ()> = std::result::Result<T, String>;

/// The test command the README's set-up section tells a new user to run; `ci` checks
/// that the README still says so, then runs it.
const TEST_COMMAND: &str = "cargo test --workspace";

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("ci") => ci(),
        Some("help" | "--help" | "-h") | None => {
            print_help();
            Ok(())
        }
        Some(other) => Err(format!("unknown task `{other}`; see `cargo xtask help`")),
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
         ci     cargo fmt --check, cargo clippy (all targets, -D warnings), and the README's test command"
    );
}

fn ci() -> Result {
    let root = workspace_root()?;
    let readme = std::fs::read_to_string(root.join("README.md"))
        .map_err(|e| format!("reading README.md: {e}"))?;
    if !readme.contains(TEST_COMMAND) {
        return Err(format!(
            "README.md no longer shows `{TEST_COMMAND}`; update xtask's TEST_COMMAND with it"
        ));
    }
    run("cargo", &["fmt", "--all", "--", "--check"])?;
    run(
        "cargo",
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--all-features",
            "--",
            "-D",
            "warnings",
        ],
    )?;
    let mut words = TEST_COMMAND.split_whitespace();
    let program = words.next().unwrap_or("cargo");
    let args: Vec<&str> = words.collect();
    run(program, &args)?;
    println!("xtask ci: all green");
    Ok(())
}

fn run(program: &str, args: &[&str]) -> Result {
    println!("$ {program} {}", args.join(" "));
    let status = Command::new(program)
        .args(args)
        .status()
        .map_err(|e| format!("could not start `{program}`: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{program} {}` failed: {status}", args.join(" ")))
    }
}

fn workspace_root() -> Result<std::path::PathBuf> {
    let manifest_dir =
        env::var("CARGO_MANIFEST_DIR").map_err(|_| "run this through `cargo xtask`".to_owned())?;
    std::path::Path::new(&manifest_dir)
        .parent()
        .map(std::path::Path::to_path_buf)
        .ok_or_else(|| "xtask has no parent directory".to_owned())
}
