//! Helpers shared by the integration tests: worker processes, hang guards, captured
//! logs.

#![allow(dead_code)] // Each test file uses a subset.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

/// Turns a hang into a clear failure.
pub(crate) const HANG_GUARD: Duration = Duration::from_secs(60);

/// A `crewpool-redis-test-worker` process and the lines it prints.
pub(crate) struct WorkerProcess {
    child: Child,
    lines: mpsc::Receiver<String>,
    /// Every delivery it reported (`delivered ...` lines), kept apart from `lines`.
    ledger: Arc<Mutex<Vec<Delivered>>>,
}

/// One delivery a worker process reported: job id, attempt, fencing token and the
/// job's place in the token's lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Delivered {
    pub(crate) id: u64,
    pub(crate) attempt: u32,
    pub(crate) token: u64,
    pub(crate) index: u32,
}

impl Delivered {
    /// Reads a `delivered <id> <attempt> <token> <index>` line.
    fn parse(line: &str) -> Option<Self> {
        let mut parts = line.strip_prefix("delivered ")?.split_whitespace();
        let mut next = || parts.next()?.parse::<u64>().ok();
        Some(Delivered {
            id: next()?,
            attempt: u32::try_from(next()?).ok()?,
            token: next()?,
            index: u32::try_from(next()?).ok()?,
        })
    }
}

impl WorkerProcess {
    /// Starts a worker process on `url`/`queue`; `mode` is `normal` or `hang-first`.
    pub(crate) fn spawn(url: &str, queue: &str, workers: usize, lease_ms: u64, mode: &str) -> Self {
        Self::spawn_with(url, queue, workers, lease_ms, mode, &[])
    }

    /// As [`spawn`](Self::spawn), with more environment variables (e.g.
    /// `CREWPOOL_TEST_WEIGHTS`).
    pub(crate) fn spawn_with(
        url: &str,
        queue: &str,
        workers: usize,
        lease_ms: u64,
        mode: &str,
        env: &[(&str, &str)],
    ) -> Self {
        Self::spawn_command(
            Command::new(env!("CARGO_BIN_EXE_crewpool-redis-test-worker")),
            url,
            queue,
            workers,
            lease_ms,
            mode,
            env,
        )
    }

    /// As [`spawn_with`](Self::spawn_with), inside a network namespace.
    pub(crate) fn spawn_in(
        netns: &crewpool_redis::testing::net::Netns,
        url: &str,
        queue: &str,
        workers: usize,
        lease_ms: u64,
        env: &[(&str, &str)],
    ) -> Self {
        let command = netns.command(env!("CARGO_BIN_EXE_crewpool-redis-test-worker"));
        Self::spawn_command(command, url, queue, workers, lease_ms, "normal", env)
    }

    fn spawn_command(
        mut command: Command,
        url: &str,
        queue: &str,
        workers: usize,
        lease_ms: u64,
        mode: &str,
        env: &[(&str, &str)],
    ) -> Self {
        let mut child = command
            .envs(env.iter().copied())
            .env("CREWPOOL_TEST_URL", url)
            .env("CREWPOOL_TEST_QUEUE", queue)
            .env("CREWPOOL_TEST_WORKERS", workers.to_string())
            .env("CREWPOOL_TEST_LEASE_MS", lease_ms.to_string())
            .env("CREWPOOL_TEST_MODE", mode)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting the test worker process");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        let ledger = Arc::new(Mutex::new(Vec::new()));
        let recorded = Arc::clone(&ledger);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line.starts_with("delivered ") {
                    let delivered = Delivered::parse(&line)
                        .unwrap_or_else(|| panic!("a malformed ledger line: {line:?}"));
                    recorded.lock().unwrap().push(delivered);
                    continue;
                }
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        WorkerProcess {
            child,
            lines,
            ledger,
        }
    }

    /// Every delivery this process reported so far.
    pub(crate) fn deliveries(&self) -> Vec<Delivered> {
        self.ledger.lock().unwrap().clone()
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

    /// Forgets every line printed so far.
    pub(crate) fn drain(&self) {
        while self.lines.try_recv().is_ok() {}
    }

    /// Sends SIGTERM (a graceful stop) and returns the `stopped ...` line it prints.
    pub(crate) fn terminate(&mut self) -> String {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        self.wait_for("stopped", |line| line.starts_with("stopped"))
    }

    /// Sends SIGKILL and reaps the process.
    pub(crate) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A queue's configuration with [`AckMode::Confirmed`](crewpool_redis::AckMode): for
/// tests that read the queue right after an acknowledgement, or look at its outcome.
pub(crate) fn confirmed(
    url: impl Into<crewpool_redis::RedisUrl>,
    queue: impl Into<String>,
) -> crewpool_redis::RedisConfig {
    crewpool_redis::RedisConfig::new(url, queue).ack_mode(crewpool_redis::AckMode::Confirmed)
}

/// Redis's clock, in ms since the Unix epoch.
pub(crate) fn redis_now(server: &crewpool_redis::testing::RedisServer) -> u64 {
    redis_micros(server) / 1000
}

/// Redis's clock, in µs since the Unix epoch.
pub(crate) fn redis_micros(server: &crewpool_redis::testing::RedisServer) -> u64 {
    let time = server.cli(&["TIME"]);
    let mut parts = time
        .split_whitespace()
        .map(|part| part.parse::<u64>().unwrap());
    let (seconds, micros) = (parts.next().unwrap(), parts.next().unwrap());
    seconds * 1_000_000 + micros
}

/// Polls `check` every 10 ms until it holds; panics with `what` after the hang guard.
pub(crate) async fn until(what: &str, mut check: impl FnMut() -> bool) {
    until_ok(what, || if check() { Ok(()) } else { Err(String::new()) }).await;
}

/// [`until`] for a check that says what is still missing (`Err`): the panic after the
/// hang guard quotes its last answer.
pub(crate) async fn until_ok(what: &str, mut check: impl FnMut() -> Result<(), String>) {
    let deadline = std::time::Instant::now() + HANG_GUARD;
    while let Err(missing) = check() {
        assert!(
            std::time::Instant::now() < deadline,
            "{what} did not happen within {HANG_GUARD:?}{}{missing}",
            if missing.is_empty() { "" } else { ": " }
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Everything a `tracing_subscriber` writes to it, and a notification per warning.
#[derive(Clone, Default)]
pub(crate) struct Captured(Arc<(Mutex<Vec<u8>>, tokio::sync::Notify)>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.0.lock().unwrap().extend_from_slice(bytes);
        if String::from_utf8_lossy(bytes).contains("WARN") {
            self.0.1.notify_one();
        }
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    /// What was written so far.
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.0.lock().unwrap()).into_owned()
    }

    /// Completes at the next warning written (or at once if one came since the last
    /// call).
    pub(crate) async fn warned(&self) {
        self.0.1.notified().await;
    }
}

/// What the worker processes recorded on `recorder` for `queue`: job → runs.
pub(crate) fn runs(
    recorder: &crewpool_redis::testing::RedisServer,
    queue: &str,
) -> std::collections::HashMap<u64, u64> {
    let flat = recorder.cli(&["HGETALL", &format!("{queue}:test:runs")]);
    // An empty hash prints an empty line.
    let values: Vec<u64> = flat
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(|line| line.parse().unwrap())
        .collect();
    values.chunks(2).map(|pair| (pair[0], pair[1])).collect()
}

/// What [`audit_tokens`] found.
#[derive(Debug)]
pub(crate) struct TokenAudit {
    /// Deliveries reported, by all processes.
    pub(crate) deliveries: usize,
    /// Distinct tokens (leases) among them.
    pub(crate) tokens: usize,
    /// Job ids delivered under more than one token: a job delivered again, or two
    /// jobs with one id (a promoted replica that lacked the id counter's last
    /// increments gives ids out again).
    pub(crate) ids_under_several_tokens: usize,
}

/// Checks the deliveries the worker processes of one queue reported (tokens are per
/// queue): no token was issued twice.
/// A token names one lease, taken by one fetch in one process, and `<token>:<index>`
/// one delivery: so no token may show up in two processes, no `(token, index)` in two
/// deliveries, and no job may get the same token twice. Panics with the offending
/// deliveries otherwise.
pub(crate) fn audit_tokens(workers: &[&WorkerProcess]) -> TokenAudit {
    use std::collections::{HashMap, HashSet};
    let mut places: HashMap<(u64, u32), (usize, Delivered)> = HashMap::new();
    let mut owner: HashMap<u64, usize> = HashMap::new();
    let mut per_job: HashMap<u64, HashSet<u64>> = HashMap::new();
    let mut deliveries = 0;
    for (process, worker) in workers.iter().enumerate() {
        for delivered in worker.deliveries() {
            deliveries += 1;
            if let Some((other, first)) =
                places.insert((delivered.token, delivered.index), (process, delivered))
            {
                panic!(
                    "token {}:{} handed out twice: {first:?} (process {other}) and {delivered:?} (process {process})",
                    delivered.token, delivered.index
                );
            }
            let first = *owner.entry(delivered.token).or_insert(process);
            assert_eq!(
                first, process,
                "token {} issued to two processes ({first} and {process}): {delivered:?}",
                delivered.token
            );
            assert!(
                per_job
                    .entry(delivered.id)
                    .or_default()
                    .insert(delivered.token),
                "job {} delivered twice under token {}",
                delivered.id,
                delivered.token
            );
        }
    }
    TokenAudit {
        deliveries,
        tokens: owner.len(),
        ids_under_several_tokens: per_job.values().filter(|tokens| tokens.len() > 1).count(),
    }
}

/// The job ids the worker processes of `queue` ran for more than one job (from the
/// `<id>:<job>` pairs they recorded on `recorder` as each job started): each with the
/// jobs it named. Empty when no id was given to two jobs.
pub(crate) fn ids_of_several_jobs(
    recorder: &crewpool_redis::testing::RedisServer,
    queue: &str,
) -> std::collections::BTreeMap<u64, std::collections::BTreeSet<u64>> {
    let fields = recorder.cli(&["HKEYS", &format!("{queue}:test:pairs")]);
    let mut jobs: std::collections::BTreeMap<u64, std::collections::BTreeSet<u64>> =
        std::collections::BTreeMap::new();
    for field in fields
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
    {
        let (id, job) = field
            .split_once(':')
            .unwrap_or_else(|| panic!("a malformed pair: {field:?}"));
        jobs.entry(id.parse().unwrap())
            .or_default()
            .insert(job.parse().unwrap());
    }
    jobs.retain(|_, jobs| jobs.len() > 1);
    jobs
}
