//! The `crewpool` binary against a real redis-server: every one-shot command, its
//! tables and JSON, its exit codes, and no password in its output.

mod support;

use crewpool_redis::testing::RedisServer;
use serde_json::Value;
use support::{fill, run, stderr, stdout};

fn json(output: &std::process::Output) -> Value {
    assert!(
        output.status.success(),
        "crewpool failed: {}",
        stderr(output)
    );
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", stdout(output)))
}

fn code(output: &std::process::Output) -> i32 {
    output.status.code().expect("an exit code")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queues_stats_peek_and_dead_show_every_state() {
    let server = RedisServer::start();
    let url = server.url();
    let (_queue, ids) = fill(&url, "mailer").await;

    let queues = run(&url, &["queues"]);
    assert!(queues.status.success(), "{}", stderr(&queues));
    let table = stdout(&queues);
    let mut lines = table.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "QUEUE",
            "STATE",
            "PENDING",
            "SCHEDULED",
            "DELAYED",
            "LEASED",
            "DEAD",
            "PROCESSED",
            "FAILED",
            "EXPIRED",
            "OLDEST",
            "CONNECTED"
        ]
    );
    let row: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        row[..10],
        ["mailer", "running", "3", "1", "1", "0", "2", "5", "3", "0"]
    );

    let listed = json(&run(&url, &["--json", "queues"]));
    assert_eq!(listed[0]["name"], "mailer");
    assert_eq!(listed[0]["pending"], 3);
    assert!(listed[0]["last_connect_ms"].as_u64().is_some());

    let stats = json(&run(&url, &["stats", "mailer", "--json"]));
    for (field, value) in [
        ("pending", 3),
        ("scheduled", 1),
        ("delayed", 1),
        ("leased", 0),
        ("dead", 2),
        ("processed", 5),
        ("succeeded", 2),
        ("failed", 3),
        ("lease_expired", 0),
        ("missed_deadline", 0),
        ("unique_keys", 1),
        ("schedules", 1),
    ] {
        assert_eq!(stats[field], value, "{field} in {stats}");
    }
    assert!(stats["oldest_pending_age_ms"].as_u64().is_some());
    let human = stdout(&run(&url, &["stats", "mailer"]));
    assert!(
        human
            .lines()
            .any(|line| line.starts_with("failure rate ") && line.ends_with("  60.00%")),
        "{human}"
    );
    assert!(human.contains("pending by level  0: 3\n"), "{human}");

    let pending = json(&run(&url, &["peek", "mailer", "-n", "2", "--json"]));
    assert_eq!(pending["total"], 3);
    assert_eq!(pending["jobs"].as_array().unwrap().len(), 2);
    assert_eq!(pending["jobs"][0]["job"]["n"], 6, "the next in line first");
    let delayed = json(&run(
        &url,
        &["peek", "mailer", "--state", "delayed", "--json"],
    ));
    assert_eq!(delayed["jobs"][0]["attempt"], 2);
    assert!(
        delayed["jobs"][0]["due_at_ms"].as_u64().unwrap() > delayed["now_ms"].as_u64().unwrap()
    );

    let scheduled = json(&run(
        &url,
        &["peek", "mailer", "--state", "scheduled", "--json"],
    ));
    assert_eq!(scheduled["total"], 1);
    let job = &scheduled["jobs"][0];
    assert_eq!(job["id"], ids.scheduled);
    assert_eq!(
        (job["priority"].as_u64(), job["unique_key"].as_str()),
        (Some(2), Some("digest:daily"))
    );
    assert!(job["due_at_ms"].as_u64().unwrap() > scheduled["now_ms"].as_u64().unwrap() + 3_500_000);
    let table = stdout(&run(&url, &["peek", "mailer", "--state", "scheduled"]));
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["ID", "LEVEL", "DUE", "UNIQUE", "JOB"]);
    assert!(
        table.contains("digest:daily") && table.contains("in 59m"),
        "{table}"
    );

    let schedules = stdout(&run(&url, &["schedules", "mailer"]));
    let mut lines = schedules.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["NAME", "WHEN", "LEVEL", "MISSED", "LAST", "NEXT", "JOB"]
    );
    let row = lines.next().unwrap();
    assert!(
        row.starts_with("nightly-digest  cron 0 8 * * *"),
        "{schedules}"
    );
    assert!(
        row.contains("fire latest") && row.contains(r#"{"digest":"nightly"}"#),
        "{row}"
    );
    let listed = json(&run(&url, &["schedules", "mailer", "--json"]));
    assert_eq!(listed[0]["name"], "nightly-digest");
    assert_eq!(listed[0]["cron"], "0 8 * * *");
    assert!(listed[0]["next_tick_ms"].as_u64().is_some());

    let dead = stdout(&run(&url, &["dead", "mailer"]));
    assert!(dead.starts_with("ID"), "{dead}");
    for id in [ids.dead, ids.dead_too] {
        let line = dead
            .lines()
            .find(|line| line.split_whitespace().next() == Some(&id.to_string()))
            .unwrap_or_else(|| panic!("no dead letter {id} in\n{dead}"));
        assert!(line.contains("invalid address: no MX record"), "{line}");
        assert!(line.contains(" ago"), "{line}");
    }
    assert!(dead.contains("2 of 2 dead jobs shown"), "{dead}");

    let leased = stdout(&run(&url, &["peek", "mailer", "--state", "leased"]));
    assert!(leased.contains("0 of 0 leased jobs"), "{leased}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repairs_report_what_they_did_and_exit_codes_mean_something() {
    let server = RedisServer::start();
    let url = server.url();
    let (_queue, ids) = fill(&url, "mailer").await;

    // Requeue one dead letter by id: it is pending again, as a fresh job.
    let requeued = run(&url, &["requeue", "mailer", &ids.dead.to_string()]);
    assert!(requeued.status.success(), "{}", stderr(&requeued));
    assert_eq!(stdout(&requeued), "requeued: 1 job of mailer\n");
    let pending = json(&run(&url, &["peek", "mailer", "--json", "-n", "10"]));
    let back = pending["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|job| job["id"] == ids.dead)
        .expect("the requeued job is pending");
    assert_eq!(back["attempt"], 1);

    // An id that is not a dead letter: exit 4, and the count says so.
    let missing = run(&url, &["requeue", "mailer", "999999"]);
    assert_eq!(code(&missing), 4, "{}", stderr(&missing));
    assert!(stderr(&missing).contains("1 of the 1 ids matched nothing"));

    // Delete the other dead letter; JSON reports it.
    let deleted = json(&run(
        &url,
        &["delete", "mailer", &ids.dead_too.to_string(), "--json"],
    ));
    assert_eq!(deleted["done"], 1);
    assert_eq!(deleted["requested"], 1);
    assert_eq!(json(&run(&url, &["stats", "mailer", "--json"]))["dead"], 0);
    // Deleting a pending job by id.
    let deleted = run(
        &url,
        &[
            "delete",
            "mailer",
            &ids.dead.to_string(),
            "--state",
            "pending",
        ],
    );
    assert!(deleted.status.success(), "{}", stderr(&deleted));

    // Enqueue: a JSON job, its id printed; not JSON is a usage error.
    let enqueued = json(&run(
        &url,
        &["enqueue", "mailer", r#"{"to":"new@example.com"}"#, "--json"],
    ));
    assert!(enqueued["id"].as_u64().unwrap() > 8);
    assert_eq!(code(&run(&url, &["enqueue", "mailer", "{not json"])), 2);
    let head = json(&run(&url, &["peek", "mailer", "--json", "--offset", "3"]));
    assert_eq!(head["jobs"][0]["job"]["to"], "new@example.com");

    // Unknown queues: exit 4. Bad arguments: exit 2.
    let unknown = run(&url, &["stats", "no-such-queue"]);
    assert_eq!(code(&unknown), 4);
    assert!(stderr(&unknown).contains("no queue \"no-such-queue\""));
    assert_eq!(
        code(&run(&url, &["peek", "mailer", "--state", "running"])),
        2
    );
    assert_eq!(code(&run(&url, &["requeue", "mailer"])), 2, "ids or --all");

    // Purge needs --yes; then the queue is gone, registry entry included.
    let refused = run(&url, &["purge", "mailer"]);
    assert_eq!(code(&refused), 2);
    // 3 pending at first, 1 requeued then deleted, 1 enqueued.
    assert_eq!(
        json(&run(&url, &["stats", "mailer", "--json"]))["pending"],
        4
    );
    let purged = run(&url, &["purge", "mailer", "--yes"]);
    assert!(purged.status.success(), "{}", stderr(&purged));
    assert_eq!(stdout(&run(&url, &["--json", "queues"])).trim(), "[]");
    assert_eq!(code(&run(&url, &["stats", "mailer"])), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requeue_all_moves_every_dead_letter() {
    let server = RedisServer::start();
    let url = server.url();
    fill(&url, "mailer").await;
    let requeued = json(&run(&url, &["requeue", "mailer", "--all", "--json"]));
    assert_eq!(requeued["done"], 2);
    let stats = json(&run(&url, &["stats", "mailer", "--json"]));
    assert_eq!(
        (stats["pending"].as_u64(), stats["dead"].as_u64()),
        (Some(5), Some(0))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_refreshes_with_rates_and_stops_after_its_iterations() {
    let server = RedisServer::start();
    let url = server.url();
    fill(&url, "mailer").await;
    let output = run(
        &url,
        &["watch", "--interval", "0.2", "--iterations", "3", "--json"],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    let refreshes: Vec<Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(refreshes.len(), 3, "{text}");
    assert_eq!(refreshes[0][0]["name"], "mailer");
    assert!(
        refreshes[0][0]["processed_per_s"].is_null(),
        "no rate before a second sample"
    );
    // Nothing runs, so the rate is a measured zero.
    assert_eq!(refreshes[2][0]["processed_per_s"], 0.0);

    let table = stdout(&run(
        &url,
        &["watch", "--interval", "0.2", "--iterations", "2"],
    ));
    assert_eq!(table.matches("PROCESSED/S").count(), 2, "{table}");
    assert!(table.contains("mailer"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_password_is_never_printed() {
    let server = RedisServer::builder()
        .user("ops", "s3cret-pass")
        .default_user_off()
        .start();
    let url = server.url_for("ops", "s3cret-pass");
    fill(&url, "mailer").await;
    for args in [
        &["queues"][..],
        &["--json", "queues"],
        &["stats", "mailer"],
        &["dead", "mailer", "--json"],
        &["watch", "--iterations", "1"],
    ] {
        let output = run(&url, args);
        assert!(output.status.success(), "{args:?}: {}", stderr(&output));
        assert!(!stdout(&output).contains("s3cret"), "{args:?}");
        assert!(!stderr(&output).contains("s3cret"), "{args:?}");
    }
    // Wrong password: exit 3, and the message hides what was given.
    let wrong = run(&server.url_for("ops", "wrong-pass"), &["queues"]);
    assert_eq!(code(&wrong), 3, "{}", stderr(&wrong));
    assert!(!stderr(&wrong).contains("wrong-pass"), "{}", stderr(&wrong));
    assert!(stderr(&wrong).contains("ops:***@"), "{}", stderr(&wrong));
    // --help shows that REDIS_URL is read, never its value.
    let help = support::crewpool()
        .env("REDIS_URL", &url)
        .arg("--help")
        .output()
        .unwrap();
    assert!(stdout(&help).contains("REDIS_URL"));
    assert!(!stdout(&help).contains("s3cret"));
}

/// `pause` and `resume` change the state every worker process obeys, say whether
/// they changed it, and `queues` and `stats` show it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_and_resume_show_in_queues_and_stats() {
    let server = RedisServer::start();
    let url = server.url();
    let (queue, _) = fill(&url, "mailer").await;

    let paused = run(&url, &["pause", "mailer"]);
    assert!(paused.status.success(), "{}", stderr(&paused));
    assert_eq!(
        stdout(&paused),
        "paused mailer: workers take no job until it is resumed\n"
    );
    assert!(queue.stats().await.unwrap().paused, "paused in Redis");
    assert_eq!(
        stdout(&run(&url, &["pause", "mailer"])),
        "mailer was paused already\n"
    );
    let table = stdout(&run(&url, &["queues"]));
    let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(row[..2], ["mailer", "paused"], "{table}");
    let human = stdout(&run(&url, &["stats", "mailer"]));
    assert!(
        human
            .lines()
            .any(|line| line.starts_with("state") && line.contains("paused (")),
        "{human}"
    );
    let stats = json(&run(&url, &["stats", "mailer", "--json"]));
    assert_eq!(stats["paused"], true);
    assert!(stats["paused_since_ms"].as_u64().is_some());

    let resumed = json(&run(&url, &["resume", "mailer", "--json"]));
    assert_eq!(resumed["state"], "running");
    assert_eq!(resumed["changed"], true);
    assert!(!queue.stats().await.unwrap().paused, "resumed in Redis");
    assert_eq!(
        stdout(&run(&url, &["resume", "mailer"])),
        "mailer was not paused\n"
    );
    let stats = json(&run(&url, &["stats", "mailer", "--json"]));
    assert_eq!(stats["paused"], false);
    // An unknown queue: exit 4, nothing written.
    assert_eq!(code(&run(&url, &["pause", "no-such"])), 4);
}

#[test]
fn help_documents_every_command_and_the_exit_codes() {
    let help = stdout(&support::crewpool().arg("--help").output().unwrap());
    for command in [
        "queues",
        "stats",
        "peek",
        "dead",
        "schedules",
        "requeue",
        "delete",
        "purge",
        "pause",
        "resume",
        "enqueue",
        "watch",
        "dashboard",
        "exporter",
    ] {
        assert!(
            help.lines()
                .any(|line| line.trim_start().starts_with(command)),
            "{command} missing from\n{help}"
        );
    }
    assert!(help.contains("Exit codes:"));
    assert!(help.contains("3  Redis could not be reached"));
}
