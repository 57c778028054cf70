//! `cargo xtask ci`: exactly what `.ci/run` runs after installing prerequisites:
//! formatting, clippy, the README's test command, the Redis backend's TLS test (its
//! `tls` feature is off in the plain test run), the loom models, the Redis backend's
//! million-job backlog in release, two short chaos runs (on loopback, and with
//! `--net` on network namespaces with a partition), and the packaging check
//! (`cargo xtask package`).

use crate::util::{Result, run, workspace_root};

/// The test command the README's set-up section gives a new user; `ci` checks the
/// README still says so, then runs it.
const TEST_COMMAND: &str = "cargo test --workspace";

pub(crate) fn task(args: &[String]) -> Result {
    if let Some(extra) = args.first() {
        return Err(format!("`ci` takes no arguments (got `{extra}`)"));
    }
    let readme = std::fs::read_to_string(workspace_root()?.join("README.md"))
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
    let words: Vec<&str> = TEST_COMMAND.split_whitespace().collect();
    run(words[0], &words[1..])?;
    // `rediss://` against a TLS-only port of a private redis-server, with a private CA.
    run(
        "cargo",
        &[
            "test",
            "-p",
            "crewpool-redis",
            "--features",
            "tls",
            "--test",
            "security_tls",
        ],
    )?;
    crate::loom::task(&[])?;
    // The Redis backend's 1,000,000-job backlog, ignored in the debug test run (minutes
    // there), in release: a backlog that size must drain with every job completed.
    run(
        "cargo",
        &[
            "test",
            "--release",
            "-p",
            "crewpool-redis",
            "--test",
            "backlog_million",
            "--",
            "--ignored",
        ],
    )?;
    crate::chaos::task(&["--short".to_owned()])?;
    // The same with Redis and the workers on separate network namespaces and a
    // partition (needs root and iproute2, which `.ci/run` installs).
    crate::chaos::task(&["--short".to_owned(), "--net".to_owned()])?;
    crate::package::task(&[])?;
    println!("xtask ci: all green");
    Ok(())
}
