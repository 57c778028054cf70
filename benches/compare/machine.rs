//! What machine the report was measured on.

use std::process::Command;

/// The machine, as the report names it.
#[derive(Clone, Debug)]
pub(crate) struct Machine {
    pub(crate) cpu: String,
    pub(crate) logical_cpus: usize,
    pub(crate) memory_kb: u64,
    pub(crate) os: String,
    pub(crate) kernel: String,
    pub(crate) rustc: String,
}

/// Reads `/proc/cpuinfo`, `/proc/meminfo`, `/etc/os-release` and `rustc --version`.
pub(crate) fn describe() -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|line| {
            let (key, value) = line.split_once(':')?;
            (key.trim() == "model name").then(|| value.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let logical_cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let memory_kb = crate::driver::proc_status::kb_field("/proc/meminfo", "MemTotal:").unwrap_or(0);
    let os = std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|release| {
            let line = release.lines().find(|l| l.starts_with("PRETTY_NAME="))?;
            Some(line["PRETTY_NAME=".len()..].trim_matches('"').to_owned())
        })
        .unwrap_or_else(|| std::env::consts::OS.to_owned());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|k| k.trim().to_owned())
        .unwrap_or_default();
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    let rustc = Command::new(rustc)
        .arg("--version")
        .output()
        .ok()
        .filter(|output| output.status.success())
        .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned())
        .unwrap_or_else(|| "rustc (version unknown)".to_owned());
    Machine {
        cpu,
        logical_cpus,
        memory_kb,
        os,
        kernel,
        rustc,
    }
}

/// One line for logs and the report header.
pub(crate) fn one_line(machine: &Machine) -> String {
    format!(
        "{}, {} logical CPUs, {:.1} GiB RAM, {} (Linux {}), {}",
        machine.cpu,
        machine.logical_cpus,
        machine.memory_kb as f64 / (1024.0 * 1024.0),
        machine.os,
        machine.kernel,
        machine.rustc
    )
}

impl Machine {
    /// The `machine` object of `report.json`.
    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "cpu": self.cpu,
            "logical_cpus": self.logical_cpus,
            "memory_kb": self.memory_kb,
            "os": self.os,
            "kernel": self.kernel,
            "rustc": self.rustc,
        })
    }
}
