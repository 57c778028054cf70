//! The process's resident set, from `/proc/self/status` (Linux), and the other `kB`
//! fields of `/proc` files.

/// Peak resident set size so far (`VmHWM`), in KiB.
pub(crate) fn peak_rss_kb() -> Option<u64> {
    field("VmHWM:")
}

/// Current resident set size (`VmRSS`), in KiB.
pub(crate) fn rss_kb() -> Option<u64> {
    field("VmRSS:")
}

fn field(name: &str) -> Option<u64> {
    kb_field("/proc/self/status", name)
}

/// A `name: <n> kB` line's number from a `/proc` file such as `/proc/meminfo`.
pub(crate) fn kb_field(path: &str, name: &str) -> Option<u64> {
    let status = std::fs::read_to_string(path).ok()?;
    let line = status.lines().find(|line| line.starts_with(name))?;
    line[name.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}
