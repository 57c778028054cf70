//! The process's resident set, from `/proc/self/status` (Linux).

/// Peak resident set size so far (`VmHWM`), in KiB.
pub(crate) fn peak_rss_kb() -> Option<u64> {
    field("VmHWM:")
}

/// Current resident set size (`VmRSS`), in KiB.
pub(crate) fn rss_kb() -> Option<u64> {
    field("VmRSS:")
}

fn field(name: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with(name))?;
    line[name.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}
