//! Helpers the `crewpool` tests share: running the binary, serving the dashboard, and
//! making a queue with jobs in every state.

#![allow(dead_code)] // Each test file uses a subset.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crewpool_core::{Consumer, Delivery, Queue};
use crewpool_redis::{JobOptions, RedisConfig, RedisQueue, RetryPolicy, Schedule};

/// How long a server may take to say where it listens (a hang guard).
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// The `crewpool` binary.
pub(crate) fn crewpool() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_crewpool"));
    command.env_remove("REDIS_URL").env_remove("CREWPOOL_TOKEN");
    command
}

/// Runs `crewpool --redis <url> <args>`.
pub(crate) fn run(url: &str, args: &[&str]) -> Output {
    crewpool()
        .arg("--redis")
        .arg(url)
        .args(args)
        .output()
        .expect("running crewpool")
}

/// Standard output as text.
pub(crate) fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Standard error as text.
pub(crate) fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A `crewpool dashboard` or `crewpool exporter` process; killed when dropped.
pub(crate) struct Served {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub(crate) base: String,
}

impl Served {
    /// Starts `crewpool --redis <url> <args> --listen 127.0.0.1:0` and waits for the
    /// line that says where it listens.
    pub(crate) fn start(url: &str, args: &[&str]) -> Self {
        let mut child = crewpool()
            .arg("--redis")
            .arg(url)
            .args(args)
            .args(["--listen", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting crewpool");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        let line = rx.recv_timeout(START_TIMEOUT).unwrap_or_else(|_| {
            let _ = child.kill();
            panic!("crewpool {args:?} did not say where it listens within {START_TIMEOUT:?}")
        });
        let base = line
            .split_whitespace()
            .find(|word| word.starts_with("http://"))
            .unwrap_or_else(|| panic!("no URL in {line:?}"))
            .to_owned();
        Served { child, base }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The ids of a queue made by [`fill`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Filled {
    /// A dead letter ("invalid address").
    pub(crate) dead: u64,
    /// Another dead letter.
    pub(crate) dead_too: u64,
    /// The scheduled job (due in an hour, level 2, unique key `digest:daily`).
    pub(crate) scheduled: u64,
}

/// Makes queue `name`: 2 jobs done, 2 dead letters, 1 waiting for a retry, 3
/// pending, 1 scheduled (in an hour, level 2, unique), and a periodic schedule
/// `nightly-digest` (cron `0 8 * * *`). Returns the handle (keep it: it owns nothing
/// leased) and the ids.
pub(crate) async fn fill(url: &str, name: &str) -> (RedisQueue<serde_json::Value>, Filled) {
    let policy = RetryPolicy::exponential(3)
        .base_delay(Duration::from_secs(600))
        .max_delay(Duration::from_secs(600))
        .jitter(false);
    let queue = RedisQueue::<serde_json::Value>::connect(RedisConfig::new(url, name).retry(policy))
        .await
        .expect("connecting");
    let jobs: Vec<serde_json::Value> = (1..=8)
        .map(|n| serde_json::json!({ "to": format!("user{n}@example.com"), "n": n }))
        .collect();
    queue.enqueue_bulk(&jobs).await.expect("enqueueing");
    let hour = Duration::from_secs(3600);
    let scheduled = queue
        .enqueue_with(
            &serde_json::json!({ "digest": "daily" }),
            &JobOptions::new()
                .delay(hour)
                .priority(2)
                .unique("digest:daily", hour),
        )
        .await
        .expect("scheduling")
        .id()
        .0;
    queue
        .set_schedule(
            "nightly-digest",
            &Schedule::cron("0 8 * * *").expect("a cron expression"),
            &serde_json::json!({ "digest": "nightly" }),
        )
        .await
        .expect("a schedule");
    let mut consumer = queue.consumer().expect("a consumer");
    let mut ids = Vec::new();
    for step in 0..5 {
        let received = consumer.next().await.expect("a job");
        ids.push(received.envelope.id.0);
        match step {
            0 | 1 => received.delivery.ack().await.expect("ack"),
            2 | 3 => received
                .delivery
                .dead_letter("invalid address: no MX record")
                .await
                .expect("dead-letter"),
            _ => received.delivery.fail("SMTP timeout").await.expect("fail"),
        }
    }
    queue.close();
    (
        queue,
        Filled {
            dead: ids[2],
            dead_too: ids[3],
            scheduled,
        },
    )
}
