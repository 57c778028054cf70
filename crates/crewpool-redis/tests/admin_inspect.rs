//! The operator's view ([`Admin`]): the queue registry, counts and totals the scripts
//! keep, the jobs of each state page by page, and the repairs, against a real
//! redis-server.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crewpool_core::{Consumer, Delivery, JobId, Queue};
use crewpool_redis::testing::RedisServer;
use crewpool_redis::{Admin, JobState, RedisConfig, RedisQueue, RetryPolicy};
use serde_json::json;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn ids(page: &crewpool_redis::JobPage) -> Vec<u64> {
    page.jobs.iter().map(|job| job.id.0).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connecting_registers_the_queue_under_its_prefix() {
    let server = RedisServer::start();
    let before = now_ms();
    let _b = RedisQueue::<u64>::connect(RedisConfig::new(server.url(), "beta"))
        .await
        .unwrap();
    let _a = RedisQueue::<u64>::connect(RedisConfig::new(server.url(), "alpha"))
        .await
        .unwrap();
    let _other = RedisQueue::<u64>::connect(RedisConfig::new(server.url(), "gamma").prefix("app"))
        .await
        .unwrap();

    let admin = Admin::connect(server.url(), "crewpool").await.unwrap();
    let queues = admin.queues().await.unwrap();
    let names: Vec<&str> = queues.iter().map(|q| q.name.as_str()).collect();
    assert_eq!(names, ["alpha", "beta"], "sorted by name, this prefix only");
    for queue in &queues {
        assert!(
            (before..=now_ms()).contains(&queue.last_connect_ms),
            "{queue:?} not stamped with the connect time"
        );
    }
    let app = Admin::connect(server.url(), "app").await.unwrap();
    assert_eq!(app.queues().await.unwrap()[0].name, "gamma");
    // The registry is one sorted set per prefix, as the crate docs say.
    let mut registered: Vec<String> = server
        .cli(&["ZRANGE", "crewpool:queues", "0", "-1"])
        .lines()
        .map(str::to_owned)
        .collect();
    registered.sort();
    assert_eq!(registered, ["alpha", "beta"]);
    // Inspecting a queue does not register it.
    admin.queue("typo").unwrap().overview().await.unwrap();
    assert_eq!(admin.queues().await.unwrap().len(), 2);
    assert!(admin.queue("a{b}").is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overview_counts_every_state_and_the_scripts_keep_totals() {
    let server = RedisServer::start();
    let policy = RetryPolicy::exponential(5)
        .base_delay(Duration::from_secs(60))
        .max_delay(Duration::from_secs(60))
        .jitter(false);
    // A long heartbeat: the test expires a lease by hand below, and no heartbeat may
    // extend it meanwhile.
    let config = RedisConfig::new(server.url(), "mixed")
        .retry(policy)
        .lease(Duration::from_secs(30))
        .heartbeat(Duration::from_secs(29));
    let queue = RedisQueue::<String>::connect(config).await.unwrap();
    let admin = Admin::connect(server.url(), "crewpool").await.unwrap();
    let mixed = admin.queue("mixed").unwrap();

    let empty = mixed.overview().await.unwrap();
    assert!(!empty.exists);
    assert_eq!(empty.oldest_pending_age_ms, None);

    let before = now_ms();
    for name in ["ok-1", "ok-2", "retry", "bury", "held", "waiting"] {
        queue.enqueue(&name.to_owned()).await.unwrap();
    }
    let mut consumer = queue.consumer().unwrap();
    let mut next = async || consumer.next().await.unwrap();
    let ok1 = next().await;
    let ok2 = next().await;
    ok1.delivery.ack().await.unwrap();
    ok2.delivery.ack().await.unwrap();
    next().await.delivery.fail("flaky network").await.unwrap();
    next()
        .await
        .delivery
        .dead_letter("bad input")
        .await
        .unwrap();
    let held = next().await;
    assert_eq!(held.envelope.job, "held");

    let overview = mixed.overview().await.unwrap();
    assert!(overview.exists);
    assert_eq!(
        (
            overview.pending,
            overview.delayed,
            overview.leased,
            overview.dead
        ),
        (1, 1, 1, 1)
    );
    assert_eq!(
        (
            overview.succeeded,
            overview.failed,
            overview.processed,
            overview.lease_expired
        ),
        (2, 2, 4, 0)
    );
    let age = overview
        .oldest_pending_age_ms
        .expect("an age for \"waiting\"");
    assert!(
        age <= overview.now_ms.saturating_sub(before) + 1000,
        "age {age} ms"
    );

    // The held job's lease runs out (its deadline moved to the past by hand, as if
    // its worker had stalled), and a fetch's housekeeping takes it back.
    let page = mixed.jobs(JobState::Leased, 0, 10).await.unwrap();
    let token = page.jobs[0].lease.as_ref().unwrap().token.clone();
    let lease = token.split(':').next().unwrap();
    server.cli(&["ZADD", "crewpool:{mixed}:active", "1", lease]);
    assert_eq!(queue.recover_expired().await.unwrap(), (1, 0));
    let overview = mixed.overview().await.unwrap();
    assert_eq!((overview.pending, overview.leased), (2, 0));
    assert_eq!(overview.lease_expired, 1);
    drop(held);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_show_each_state_in_its_order_with_its_details() {
    let server = RedisServer::start();
    let policy = RetryPolicy::exponential(5)
        .base_delay(Duration::from_secs(60))
        .max_delay(Duration::from_secs(60))
        .jitter(false);
    let queue = RedisQueue::<serde_json::Value>::connect(
        RedisConfig::new(server.url(), "pages").retry(policy),
    )
    .await
    .unwrap();
    let admin = Admin::connect(server.url(), "crewpool").await.unwrap();
    let pages = admin.queue("pages").unwrap();
    let enqueued: Vec<u64> = queue
        .enqueue_bulk((0..10).map(|n| json!({ "n": n })))
        .await
        .unwrap()
        .into_iter()
        .map(|id| id.0)
        .collect();

    // Pending: the next in line first, paged.
    let first = pages.jobs(JobState::Pending, 0, 4).await.unwrap();
    assert_eq!(first.total, 10);
    assert_eq!(ids(&first), enqueued[..4]);
    assert_eq!(first.jobs[0].job, Some(json!({ "n": 0 })));
    assert_eq!(first.jobs[0].attempt, 1);
    assert!(first.jobs[0].enqueued_at_ms.is_some());
    let last = pages.jobs(JobState::Pending, 8, 4).await.unwrap();
    assert_eq!(ids(&last), enqueued[8..]);
    assert!(
        pages
            .jobs(JobState::Pending, 10, 4)
            .await
            .unwrap()
            .jobs
            .is_empty()
    );

    // One job fails (delayed a minute), one dies, two are leased.
    let mut consumer = queue.consumer().unwrap();
    let failing = consumer.next().await.unwrap();
    failing.delivery.fail("timeout").await.unwrap();
    let dying = consumer.next().await.unwrap();
    dying.delivery.dead_letter("invalid input").await.unwrap();
    let held_a = consumer.next().await.unwrap();
    let held_b = consumer.next().await.unwrap();

    let delayed = pages.jobs(JobState::Delayed, 0, 10).await.unwrap();
    assert_eq!(ids(&delayed), [enqueued[0]]);
    assert_eq!(delayed.jobs[0].attempt, 2, "the next delivery");
    let due = delayed.jobs[0].due_at_ms.unwrap();
    assert!(
        due > delayed.now_ms + 50_000,
        "due {due}, now {}",
        delayed.now_ms
    );

    let dead = pages.jobs(JobState::Dead, 0, 10).await.unwrap();
    assert_eq!(ids(&dead), [enqueued[1]]);
    let death = dead.jobs[0].death.as_ref().unwrap();
    assert_eq!(death.reason, "invalid input");
    assert!(death.at_ms <= dead.now_ms);
    assert_eq!(dead.jobs[0].attempt, 1);
    assert_eq!(dead.jobs[0].job, Some(json!({ "n": 1 })));

    let leased = pages.jobs(JobState::Leased, 0, 10).await.unwrap();
    assert_eq!(leased.total, 2);
    let mut leased_ids = ids(&leased);
    leased_ids.sort_unstable();
    assert_eq!(leased_ids, enqueued[2..4]);
    for job in &leased.jobs {
        let lease = job.lease.as_ref().unwrap();
        let taken = lease.leased_at_ms.expect("the fetch time");
        assert!(taken <= leased.now_ms && lease.deadline_ms > leased.now_ms);
        assert_eq!(job.attempt, 1);
    }
    let second = pages.jobs(JobState::Leased, 1, 10).await.unwrap();
    assert_eq!(ids(&second), ids(&leased)[1..]);
    held_a.delivery.ack().await.unwrap();
    held_b.delivery.ack().await.unwrap();

    // A record another producer wrote badly is listed with the reason.
    server.cli(&["RPUSH", "crewpool:{pages}:pending", "99|1|{not json"]);
    let head = pages.jobs(JobState::Pending, 0, 1).await.unwrap();
    assert_eq!(head.jobs[0].id, JobId(99));
    assert!(
        head.jobs[0]
            .error
            .as_deref()
            .unwrap()
            .contains("undecodable")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repairs_requeue_delete_and_purge() {
    let server = RedisServer::start();
    let policy = RetryPolicy::exponential(1)
        .base_delay(Duration::from_secs(60))
        .max_delay(Duration::from_secs(60))
        .jitter(false);
    let queue =
        RedisQueue::<u64>::connect(RedisConfig::new(server.url(), "fix").retry(policy.clone()))
            .await
            .unwrap();
    let admin = Admin::connect(server.url(), "crewpool").await.unwrap();
    let fix = admin.queue("fix").unwrap();
    let all = queue.enqueue_bulk(0..6_u64).await.unwrap();
    let mut consumer = queue.consumer().unwrap();
    for _ in 0..4 {
        let received = consumer.next().await.unwrap();
        received.delivery.fail("broken").await.unwrap();
    }
    let dead = fix.jobs(JobState::Dead, 0, 10).await.unwrap();
    assert_eq!(dead.total, 4);

    // One dead letter back by id (an unknown id is skipped), then all the others.
    assert_eq!(fix.requeue_dead(&[all[0], JobId(12345)]).await.unwrap(), 1);
    let pending = fix.jobs(JobState::Pending, 0, 10).await.unwrap();
    assert_eq!(ids(&pending), [all[4].0, all[5].0, all[0].0]);
    assert_eq!(pending.jobs[2].attempt, 1, "a fresh job again");
    assert_eq!(fix.requeue_all_dead().await.unwrap(), 3);
    assert_eq!(fix.overview().await.unwrap().dead, 0);

    // Delete: pending by id; dead by id; a leased job is refused.
    assert_eq!(
        fix.delete(JobState::Pending, &[all[4], all[5]])
            .await
            .unwrap(),
        2
    );
    let received = consumer.next().await.unwrap();
    received.delivery.fail("again").await.unwrap();
    let dead_id = fix.jobs(JobState::Dead, 0, 1).await.unwrap().jobs[0].id;
    assert_eq!(fix.delete(JobState::Dead, &[dead_id]).await.unwrap(), 1);
    assert_eq!(fix.delete(JobState::Dead, &[dead_id]).await.unwrap(), 0);
    assert!(fix.delete(JobState::Leased, &[all[1]]).await.is_err());
    let overview = fix.overview().await.unwrap();
    assert_eq!((overview.pending, overview.dead), (3, 0));

    // Delayed jobs are deleted by id too.
    let retrying = RedisQueue::<u64>::connect(
        RedisConfig::new(server.url(), "fix").retry(policy.max_attempts(3)),
    )
    .await
    .unwrap();
    let mut retrying_consumer = retrying.consumer().unwrap();
    let received = retrying_consumer.next().await.unwrap();
    let id = received.envelope.id;
    received.delivery.fail("later").await.unwrap();
    assert_eq!(fix.overview().await.unwrap().delayed, 1);
    assert_eq!(fix.delete(JobState::Delayed, &[id]).await.unwrap(), 1);
    assert_eq!(fix.overview().await.unwrap().delayed, 0);

    // Purge: every key and the registry entry.
    fix.purge().await.unwrap();
    assert_eq!(server.cli(&["KEYS", "crewpool:{fix}:*"]).trim(), "");
    assert!(admin.queues().await.unwrap().is_empty());
    retrying.close();
    queue.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_never_shows_the_password() {
    let server = RedisServer::builder()
        .user("ops", "hunter2-secret")
        .default_user_off()
        .start();
    let admin = Admin::connect(server.url_for("ops", "hunter2-secret"), "crewpool")
        .await
        .unwrap();
    assert!(!format!("{admin:?}").contains("hunter2"));
    assert!(!admin.url().to_string().contains("hunter2"));
    let error = Admin::connect(server.url_for("ops", "wrong-secret"), "crewpool")
        .await
        .unwrap_err();
    assert!(!error.to_string().contains("wrong-secret"), "{error}");
}
