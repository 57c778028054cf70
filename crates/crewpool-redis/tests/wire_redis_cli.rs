//! The documented wire format, exercised exactly as the crate docs tell a producer in
//! another language to do it, with `redis-cli`; a worker of this crate runs the jobs.

use std::io::Write;
use std::process::{Command, Stdio};

use crewpool_core::{Consumer, Delivery, Queue};
use crewpool_redis::testing::RedisServer;
use crewpool_redis::{RedisConfig, RedisQueue};
use serde::{Deserialize, Serialize};

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Email {
    to: String,
    subject: String,
}

fn email(to: &str, subject: &str) -> Email {
    Email {
        to: to.to_owned(),
        subject: subject.to_owned(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_enqueued_with_redis_cli_as_documented_are_processed() {
    let server = RedisServer::start();

    // 1. One script call: EVAL the shipped enqueue.lua with its three keys.
    let script =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/lua/enqueue.lua")).unwrap();
    let reply = server.cli(&[
        "EVAL",
        &script,
        "2",
        "crewpool:{emails}:seq",
        "crewpool:{emails}:pending",
        r#"{"v":1,"job":{"to":"a@example.com","subject":"from a script"}}"#,
    ]);
    assert_eq!(
        reply.lines().collect::<Vec<_>>(),
        ["1", "1"],
        "first id 1, 1 pending"
    );

    // 2. Plain commands: INCR for an id, then LPUSH the record '<id>|1|<envelope>'.
    let id = server
        .cli(&["INCR", "crewpool:{emails}:seq"])
        .trim()
        .to_owned();
    assert_eq!(id, "2");
    let commands = format!(
        "LPUSH crewpool:{{emails}}:pending '{id}|1|{{\"v\":1,\"job\":{{\"to\":\"b@example.com\",\"subject\":\"from plain commands\"}}}}'\n"
    );
    let mut cli = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &server.port().to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("redis-cli");
    cli.stdin
        .take()
        .unwrap()
        .write_all(commands.as_bytes())
        .unwrap();
    let output = cli.wait_with_output().unwrap();
    assert!(output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(text, "2\n", "two jobs pending");

    // A worker of this crate takes both, in order, with the ids Redis gave them.
    let queue = RedisQueue::<Email>::connect(RedisConfig::new(server.url(), "emails"))
        .await
        .unwrap();
    let mut consumer = queue.consumer().unwrap();
    let first = consumer.next().await.unwrap();
    assert_eq!(first.envelope.id.0, 1);
    assert_eq!(first.envelope.job, email("a@example.com", "from a script"));
    first.delivery.ack().await.unwrap();
    let second = consumer.next().await.unwrap();
    assert_eq!(second.envelope.id.0, 2);
    assert_eq!(
        second.envelope.job,
        email("b@example.com", "from plain commands")
    );
    second.delivery.ack().await.unwrap();

    // And what this crate enqueues reads back as documented.
    let id = queue
        .enqueue(&email("c@example.com", "from Rust"))
        .await
        .unwrap();
    assert_eq!(id.0, 3);
    // `<id>|1|{"v":1,"at":<enqueued, ms since the epoch>,"job":<the job>}`.
    let record = server.cli(&["LRANGE", "crewpool:{emails}:pending", "0", "-1"]);
    let at = record
        .trim()
        .strip_prefix(r#"3|1|{"v":1,"at":"#)
        .and_then(|rest| {
            rest.strip_suffix(r#","job":{"to":"c@example.com","subject":"from Rust"}}"#)
        })
        .unwrap_or_else(|| panic!("unexpected record {record:?}"));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let at: u64 = at.parse().unwrap();
    assert!(
        at <= now && now - at < 600_000,
        "enqueued at {at}, now {now}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripts_are_reloaded_after_the_script_cache_is_flushed() {
    let server = RedisServer::start();
    let queue = RedisQueue::<u64>::connect(RedisConfig::new(server.url(), "noscript"))
        .await
        .unwrap();
    queue.enqueue(&1).await.unwrap();
    // What a restarted or failed-over server looks like to EVALSHA: NOSCRIPT.
    server.cli(&["SCRIPT", "FLUSH"]);
    queue.enqueue_bulk(2..=3_u64).await.unwrap();
    server.cli(&["SCRIPT", "FLUSH"]);
    queue.enqueue_bulk(4..=3000_u64).await.unwrap();
    server.cli(&["SCRIPT", "FLUSH"]);
    let mut consumer = queue.consumer().unwrap();
    for expected in 1..=3000_u64 {
        let received = consumer.next().await.unwrap();
        assert_eq!(received.envelope.job, expected);
        if expected == 1 {
            server.cli(&["SCRIPT", "FLUSH"]);
        }
        received.delivery.ack().await.unwrap();
    }
    assert_eq!(queue.stats().await.unwrap(), Default::default());
}
