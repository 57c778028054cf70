//! `cargo xtask package`: the crates can be depended on.
//!
//! 1. `cargo package` of every published crate (the libraries and the `crewpool`
//!    command line), with its verification build: each crate
//!    packaged alone (only the files its manifest includes) builds against the others
//!    as packaged.
//! 2. The README's Install section, followed by a new user: a scratch application
//!    outside the workspace whose `[dependencies]` are the lines of that section's
//!    first block, verbatim, with the crates taken from this checkout
//!    (`[patch.crates-io]`), and whose `main.rs` is the README's first example; it
//!    must build and run. Then the same with the section's later blocks applied on top
//!    (the Redis feature and serde): it must build.

use std::path::Path;

use crate::util::{Result, run, run_with_env, target_dir, workspace_root};

/// The published crates, in the order their dependencies need.
const CRATES: [&str; 7] = [
    "crewpool-core",
    "crewpool-runtime",
    "crewpool-deque",
    "crewpool-flume",
    "crewpool-redis",
    "crewpool",
    "crewpool-cli",
];

pub(crate) fn task(args: &[String]) -> Result {
    if let Some(extra) = args.first() {
        return Err(format!("`package` takes no arguments (got `{extra}`)"));
    }
    forget_earlier_packages()?;
    // And what the earlier verification built of them: Cargo takes a registry crate
    // of the same name and version as unchanged.
    let mut clean = vec!["clean"];
    for name in CRATES {
        clean.extend(["-p", name]);
    }
    run("cargo", &clean)?;
    let mut package = vec!["package", "--allow-dirty"];
    for name in CRATES {
        package.extend(["-p", name]);
    }
    run("cargo", &package)?;
    install_check()
}

/// Removes what an earlier `cargo package` run extracted of our crates. Cargo verifies
/// each package against the others through a temporary local registry, and extracts
/// each crate from it into `$CARGO_HOME/registry/src/<that registry>/` once per name
/// and version, then reuses the extraction: a later run of changed sources, at the
/// same version, would build against the first run's copies. (crates.io's own
/// extractions, under `index.crates.io-*`, are left alone.)
fn forget_earlier_packages() -> Result {
    let home = match std::env::var_os("CARGO_HOME") {
        Some(home) => std::path::PathBuf::from(home),
        None => match std::env::var_os("HOME") {
            Some(home) => std::path::PathBuf::from(home).join(".cargo"),
            None => return Ok(()),
        },
    };
    let Ok(registries) = std::fs::read_dir(home.join("registry").join("src")) else {
        return Ok(());
    };
    for registry in registries.flatten() {
        if registry.file_name().to_string_lossy().starts_with("index.") {
            continue;
        }
        let Ok(extracted) = std::fs::read_dir(registry.path()) else {
            continue;
        };
        for entry in extracted.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if CRATES.iter().any(|krate| {
                name.strip_prefix(krate)
                    .and_then(|rest| rest.strip_prefix('-'))
                    .is_some_and(|version| version.starts_with(|c: char| c.is_ascii_digit()))
            }) {
                std::fs::remove_dir_all(entry.path())
                    .map_err(|e| format!("removing {}: {e}", entry.path().display()))?;
            }
        }
    }
    Ok(())
}

/// Builds (and runs) the README's first example in a scratch application that depends
/// on crewpool exactly as the README's Install section says.
fn install_check() -> Result {
    let root = workspace_root()?;
    let readme = std::fs::read_to_string(root.join("README.md"))
        .map_err(|e| format!("reading README.md: {e}"))?;
    let blocks = install_blocks(&readme)?;
    let example =
        first_block(&readme, "```rust\n").ok_or("README.md has no ```rust example to build")?;
    build_app(&root, &dependencies(&blocks, 0), &example, true)?;
    if blocks.len() > 1 {
        build_app(
            &root,
            &dependencies(&blocks, blocks.len() - 1),
            &example,
            false,
        )?;
    }
    Ok(())
}

/// Writes the scratch app and builds it (and runs it, if `execute`).
fn build_app(root: &Path, dependencies: &str, example: &str, execute: bool) -> Result {
    let app = target_dir()?.join("install-check");
    std::fs::create_dir_all(app.join("src"))
        .map_err(|e| format!("creating {}: {e}", app.display()))?;
    let mut manifest = String::from(
        "# Made by `cargo xtask package`: the README's Install section, verbatim.\n\
         [package]\nname = \"crewpool-install-check\"\nversion = \"0.0.0\"\nedition = \"2024\"\npublish = false\n\n\
         # Not a member of the crewpool workspace it sits in.\n[workspace]\n\n",
    );
    manifest.push_str(dependencies);
    manifest
        .push_str("\n# This checkout's crates, in place of the registry's.\n[patch.crates-io]\n");
    for name in CRATES {
        let dir = if name == "crewpool" {
            root.to_path_buf()
        } else {
            root.join("crates").join(name)
        };
        manifest.push_str(&format!("{name} = {{ path = {:?} }}\n", path_str(&dir)?));
    }
    write(&app.join("Cargo.toml"), &manifest)?;
    write(&app.join("src/main.rs"), example)?;
    // The workspace's lock file pins what CI tested; the app adds what it lacks.
    std::fs::copy(root.join("Cargo.lock"), app.join("Cargo.lock"))
        .map_err(|e| format!("copying Cargo.lock: {e}"))?;
    let manifest_path = path_str(&app.join("Cargo.toml"))?;
    // Its own target directory: the app is built as a user would build it.
    let target = path_str(&app.join("target"))?;
    let verb = if execute { "run" } else { "build" };
    run_with_env(
        "cargo",
        &[verb, "--quiet", "--manifest-path", &manifest_path],
        &[("CARGO_TARGET_DIR", &target)],
    )
}

/// The ```toml blocks of the README's Install section, in order.
fn install_blocks(readme: &str) -> Result<Vec<String>> {
    let section = readme
        .split("\n## ")
        .find(|section| section.starts_with("Install"))
        .ok_or("README.md has no `## Install` section")?;
    let blocks: Vec<String> = section
        .split("```toml\n")
        .skip(1)
        .filter_map(|rest| rest.split("```").next().map(str::to_owned))
        .collect();
    if blocks.is_empty() {
        return Err("the README's Install section has no ```toml block".to_owned());
    }
    Ok(blocks)
}

/// The `[dependencies]` of the Install section's blocks, from the first up to `upto`
/// (a later line replaces an earlier one for the same crate).
fn dependencies(blocks: &[String], upto: usize) -> String {
    let mut lines: Vec<(String, String)> = Vec::new();
    for block in &blocks[..=upto] {
        for line in block.lines().filter(|line| line.trim() != "[dependencies]") {
            let key = line.split('=').next().unwrap_or("").trim().to_owned();
            match lines.iter_mut().find(|(k, _)| !key.is_empty() && *k == key) {
                Some(entry) => entry.1 = line.to_owned(),
                None => lines.push((key, line.to_owned())),
            }
        }
    }
    let body: String = lines.into_iter().map(|(_, line)| line + "\n").collect();
    format!("[dependencies]\n{body}")
}

/// The body of the first fenced block opened by `fence` (e.g. "```rust\n").
fn first_block(text: &str, fence: &str) -> Option<String> {
    let start = text.find(fence)? + fence.len();
    let end = text[start..].find("```")?;
    Some(text[start..start + end].to_owned())
}

fn write(path: &Path, contents: &str) -> Result {
    std::fs::write(path, contents).map_err(|e| format!("writing {}: {e}", path.display()))
}

fn path_str(path: &Path) -> Result<String> {
    path.to_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("{} is not valid UTF-8", path.display()))
}
