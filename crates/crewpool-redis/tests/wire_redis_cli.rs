//! The documented wire format, exercised exactly as the crate docs tell a producer in
//! another language to do it, with `redis-cli`; a worker of this crate runs the jobs.

mod support;

use std::io::Write;
use std::process::{Command, Stdio};

use crewpool_core::{Consumer, Delivery, Queue};
use crewpool_redis::RedisQueue;
use crewpool_redis::testing::RedisServer;
use serde::{Deserialize, Serialize};
use support::{confirmed, redis_micros};

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Email {
    to: String,
    subject: String,
}

/// A shipped script as the crate docs tell producers in other languages to load it:
/// `lua/ids.lua` (the job-id helpers), then `lua/<name>`.
fn shipped(name: &str) -> String {
    let lua = concat!(env!("CARGO_MANIFEST_DIR"), "/lua/");
    let helpers = std::fs::read_to_string(format!("{lua}ids.lua")).unwrap();
    let script = std::fs::read_to_string(format!("{lua}{name}")).unwrap();
    helpers + &script
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

    // 1. One script call: EVAL the shipped ids.lua + enqueue.lua with its two keys.
    let script = shipped("enqueue.lua");
    let before = redis_micros(&server);
    let reply = server.cli(&[
        "EVAL",
        &script,
        "2",
        "crewpool:{emails}:seq",
        "crewpool:{emails}:pending",
        r#"{"v":1,"job":{"to":"a@example.com","subject":"from a script"}}"#,
    ]);
    let reply: Vec<u64> = reply.lines().map(|line| line.parse().unwrap()).collect();
    // The first id is Redis's clock in microseconds (the counter was empty); 1 pending.
    let first_id = reply[0];
    assert!(first_id >= before && first_id < 1 << 53, "{reply:?}");
    assert_eq!(reply[1], 1, "1 pending");

    // 2. Take an id with the shipped ids.lua + reserve.lua, then LPUSH the record
    // '<id>|1|<envelope>' with a plain command.
    let reserve = shipped("reserve.lua");
    let id = server
        .cli(&["EVAL", &reserve, "1", "crewpool:{emails}:seq", "1"])
        .trim()
        .to_owned();
    let second_id: u64 = id.parse().unwrap();
    assert!(second_id > first_id, "{second_id} after {first_id}");
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
    let queue = RedisQueue::<Email>::connect(confirmed(server.url(), "emails"))
        .await
        .unwrap();
    let mut consumer = queue.consumer().unwrap();
    let first = consumer.next().await.unwrap();
    assert_eq!(first.envelope.id.0, first_id);
    assert_eq!(first.envelope.job, email("a@example.com", "from a script"));
    first.delivery.ack().await.unwrap();
    let second = consumer.next().await.unwrap();
    assert_eq!(second.envelope.id.0, second_id);
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
    assert!(id.0 > second_id);
    // `<id>|1|{"v":1,"at":<enqueued, ms since the epoch>,"job":<the job>}`.
    let record = server.cli(&["LRANGE", "crewpool:{emails}:pending", "0", "-1"]);
    let at = record
        .trim()
        .strip_prefix(&format!(r#"{}|1|{{"v":1,"at":"#, id.0))
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
    let queue = RedisQueue::<u64>::connect(confirmed(server.url(), "noscript"))
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

/// One call of the shipped `push.lua` with `redis-cli` on the queue `emails`: `list` is
/// the level's list, `options` the level, the due time, the start deadline and the
/// uniqueness TTL, then the jobs (each envelope after its key when the TTL is set).
fn push_lua(server: &RedisServer, list: &str, options: [&str; 4], jobs: &[&str]) -> String {
    let script = shipped("push.lua");
    // KEYS: seq, pending, the level's list, scheduled, levels, unique, unique:ttl.
    let mut args = vec![
        "EVAL",
        script.as_str(),
        "7",
        "crewpool:{emails}:seq",
        "crewpool:{emails}:pending",
        list,
        "crewpool:{emails}:scheduled",
        "crewpool:{emails}:levels",
        "crewpool:{emails}:unique",
        "crewpool:{emails}:unique:ttl",
    ];
    args.extend_from_slice(&options);
    args.extend_from_slice(jobs);
    server.cli(&args)
}

/// `push.lua` leaves the id counter at the last id it gave: a job whose uniqueness key
/// is held takes none, and a call refused for a bad envelope keeps the ids of the jobs
/// before it taken (their uniqueness keys name them), so the next call gives new ones.
#[test]
fn push_lua_leaves_the_id_counter_at_the_last_id_it_gave() {
    let server = RedisServer::start();
    let push = |jobs: &[&str]| {
        push_lua(
            &server,
            "crewpool:{emails}:pending",
            ["0", "", "", "3600000"],
            jobs,
        )
    };
    let number = |reply: &str| -> i64 { reply.trim().parse().unwrap() };
    let seq = || number(&server.cli(&["GET", "crewpool:{emails}:seq"]));

    // Four jobs, the third with the first's key: three ids in a row.
    let reply = push(&["k1", "{}", "k2", "{}", "k1", "{}", "k3", "{}"]);
    let ids: Vec<i64> = reply.lines().map(number).collect();
    let first = ids[0];
    assert_eq!(ids, [first, first + 1, -first, first + 2], "{reply}");
    assert_eq!(seq(), first + 2);

    // A new job, then an envelope that is not a JSON object: the call is refused, and
    // the new job's id, which its key names, stays taken.
    let reply = push(&["k4", "{}", "k5", "[]"]);
    assert!(
        reply.contains("an envelope must be a JSON object"),
        "{reply}"
    );
    let holder = number(&server.cli(&["HGET", "crewpool:{emails}:unique", "k4"]));
    assert!(holder > first + 2, "{holder} after {first}");
    assert_eq!(seq(), holder);
    let next = push(&["k6", "{}"]);
    assert!(number(&next) > holder, "{next} after {holder}");
}

/// Scheduled, unique and prioritised jobs and a deadline, enqueued with `redis-cli`
/// and the shipped `push.lua` only, as the crate docs tell producers in other
/// languages; a worker of this crate runs them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_and_unique_jobs_enqueued_with_redis_cli_are_processed() {
    let server = RedisServer::start();
    let push = |level: &str, list: &str, due: &str, deadline: &str, ttl: &str, jobs: &[&str]| {
        push_lua(&server, list, [level, due, deadline, ttl], jobs)
    };
    let envelope = |to: &str| format!(r#"{{"v":1,"job":{{"to":"{to}","subject":"s"}}}}"#);

    let id = |reply: String| -> i64 { reply.trim().parse().unwrap() };
    // Two jobs due in 300 ms (Redis's clock): two ids in a row, scheduled.
    let (a, b) = (envelope("a@example.com"), envelope("b@example.com"));
    let reply = push(
        "0",
        "crewpool:{emails}:pending",
        "in:300",
        "",
        "",
        &[&a, &b],
    );
    let ids: Vec<i64> = reply.lines().map(|line| line.parse().unwrap()).collect();
    assert_eq!(ids.len(), 2);
    let (id_a, id_b) = (ids[0], ids[1]);
    assert_eq!(id_b, id_a + 1);
    assert_eq!(
        server.cli(&["ZCARD", "crewpool:{emails}:scheduled"]).trim(),
        "2"
    );

    // A unique job (key "welcome:c", TTL an hour), twice: the second returns the id of
    // the first, negated.
    let c = envelope("c@example.com");
    let unique = |job: &str| {
        push(
            "0",
            "crewpool:{emails}:pending",
            "",
            "",
            "3600000",
            &["welcome:c", job],
        )
    };
    let id_c = id(unique(&c));
    assert!(id_c > id_b);
    assert_eq!(id(unique(&c)), -id_c);

    // An urgent job (level 7, its own list), and one whose deadline has passed.
    let d = envelope("d@example.com");
    let e = envelope("e@example.com");
    let id_d = id(push("7", "crewpool:{emails}:pending:7", "", "", "", &[&d]));
    let id_e = id(push(
        "0",
        "crewpool:{emails}:pending",
        "",
        "by:1000",
        "",
        &[&e],
    ));
    assert!(id_c < id_d && id_d < id_e);

    let queue = RedisQueue::<Email>::connect(confirmed(server.url(), "emails"))
        .await
        .unwrap();
    let stats = queue.stats().await.unwrap();
    assert_eq!((stats.pending, stats.scheduled), (3, 2), "{stats:?}");
    let mut consumer = queue.consumer().unwrap();
    // The urgent one first (level 7 before level 0, whenever the scheduled pair
    // falls due), then the unique one and the scheduled pair; the expired one never
    // runs.
    let mut order = Vec::new();
    for _ in 0..4 {
        let received = consumer.next().await.unwrap();
        order.push((received.envelope.id.0, received.envelope.job.to.clone()));
        received.delivery.ack().await.unwrap();
    }
    assert_eq!(order[0], (id_d as u64, "d@example.com".to_owned()));
    let mut later: Vec<u64> = order[1..].iter().map(|(id, _)| *id).collect();
    later.sort();
    assert_eq!(later, [id_a as u64, id_b as u64, id_c as u64], "{order:?}");
    let dead = queue.dead_letters(10).await.unwrap();
    assert_eq!(
        (dead[0].id.0, dead[0].reason.as_str()),
        (id_e as u64, "expired")
    );
    // The unique job's acknowledgement released its key.
    assert!(id(unique(&c)) > id_e);
}
