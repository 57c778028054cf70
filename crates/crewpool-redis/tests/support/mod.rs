//! Helpers shared by the integration tests: worker processes and hang guards.

#![allow(dead_code)] // Each test file uses a subset.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Turns a hang into a clear failure.
pub(crate) const HANG_GUARD: Duration = Duration::from_secs(60);

/// A `crewpool-redis-test-worker` process and the lines it prints.
pub(crate) struct WorkerProcess {
    pub(crate) child: Child,
    lines: mpsc::Receiver<String>,
    _stdin: Option<ChildStdin>,
}

impl WorkerProcess {
    /// Starts a worker process on `url`/`queue`; `mode` is `normal` or `hang-first`.
    pub(crate) fn spawn(url: &str, queue: &str, workers: usize, lease_ms: u64, mode: &str) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_crewpool-redis-test-worker"))
            .env("CREWPOOL_TEST_URL", url)
            .env("CREWPOOL_TEST_QUEUE", queue)
            .env("CREWPOOL_TEST_WORKERS", workers.to_string())
            .env("CREWPOOL_TEST_LEASE_MS", lease_ms.to_string())
            .env("CREWPOOL_TEST_MODE", mode)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting the test worker process");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stdin = child.stdin.take();
        WorkerProcess {
            child,
            lines,
            _stdin: stdin,
        }
    }

    /// Waits for the first line that satisfies `matches` (skipping others); panics
    /// after the hang guard or when the process's output ends.
    pub(crate) fn wait_for(&self, what: &str, matches: impl Fn(&str) -> bool) -> String {
        let deadline = std::time::Instant::now() + HANG_GUARD;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if matches(&line) => return line,
                Ok(_) => {}
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    panic!("worker process did not print {what} within {HANG_GUARD:?}")
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    panic!("worker process exited before printing {what}")
                }
            }
        }
    }

    /// Sends SIGKILL and reaps the process.
    pub(crate) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends a signal by name with `kill(1)` (no unsafe code here).
    pub(crate) fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("running kill");
        assert!(status.success(), "kill -{name} failed");
    }

    pub(crate) fn write_line(&mut self, line: &str) {
        if let Some(stdin) = &mut self._stdin {
            let _ = writeln!(stdin, "{line}");
        }
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
