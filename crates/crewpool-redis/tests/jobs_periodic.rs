//! Periodic jobs: every tick fires once across several worker processes (no leader),
//! schedules are listed, changed (at once, in running workers) and removed, and ticks
//! missed while no worker ran follow the documented policy.

mod support;

use std::time::Duration;

use crewpool_core::Queue;
use crewpool_redis::testing::RedisServer;
use crewpool_redis::{
    Admin, FiredTick, MissedTicks, QueueAdmin, RedisConfig, RedisQueue, Schedule,
};
use support::{HANG_GUARD, WorkerProcess, redis_now};

/// Polls `check` (an async read of Redis) every 20 ms until it returns `Some`; panics
/// with `what` after the hang guard.
async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = std::time::Instant::now() + HANG_GUARD;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{what} did not happen within {HANG_GUARD:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn admin(server: &RedisServer, queue: &str) -> QueueAdmin {
    Admin::connect(server.url(), "crewpool")
        .await
        .unwrap()
        .queue(queue)
        .unwrap()
}

/// The fired ticks, oldest first.
async fn fired(view: &QueueAdmin) -> Vec<FiredTick> {
    let mut ticks = view.fired_ticks(1000).await.unwrap();
    ticks.reverse();
    ticks
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_tick_fires_once_across_worker_processes() {
    let server = RedisServer::start();
    let url = server.url();
    let workers: Vec<WorkerProcess> = (0..3)
        .map(|_| WorkerProcess::spawn(&url, "cron", 2, 1000, "normal"))
        .collect();
    for worker in &workers {
        worker.wait_for("ready", |line| line == "ready");
    }
    let producer = RedisQueue::<u64>::connect(RedisConfig::new(url.as_str(), "cron"))
        .await
        .unwrap();
    let version = producer
        .set_schedule("beat", &Schedule::every(Duration::from_millis(300)), &42)
        .await
        .unwrap();
    assert_eq!(version, 1);
    let view = admin(&server, "cron").await;
    let since = view.schedules().await.unwrap()[0].since_ms;
    let ticks = eventually("eight ticks", || async {
        let ticks = fired(&view).await;
        (ticks.len() >= 8).then_some(ticks)
    })
    .await;
    // One job per tick, ticks in order and none skipped, each job run once.
    for (n, tick) in ticks.iter().enumerate() {
        assert_eq!(tick.schedule, "beat");
        assert_eq!(tick.tick_ms, since + 300 * (n as u64 + 1), "{ticks:?}");
        assert!(
            tick.at_ms >= tick.tick_ms,
            "fired before its tick: {tick:?}"
        );
    }
    let ids: std::collections::HashSet<u64> = ticks.iter().map(|t| t.id.0).collect();
    assert_eq!(ids.len(), ticks.len(), "a job per tick: {ticks:?}");
    for tick in &ticks {
        let runs = eventually("the tick's job to run", || async {
            let runs = server.cli(&["HGET", "cron:test:ids", &tick.id.0.to_string()]);
            (!runs.trim().is_empty()).then_some(runs)
        })
        .await;
        assert_eq!(runs.trim(), "1", "job {} ran {runs} times", tick.id.0);
    }
    producer.remove_schedule("beat").await.unwrap();
    drop(workers);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedules_are_listed_changed_and_removed() {
    let server = RedisServer::start();
    let queue = RedisQueue::<String>::connect(RedisConfig::new(server.url(), "list"))
        .await
        .unwrap();
    let hourly = Schedule::every(Duration::from_secs(3600)).priority(3);
    queue
        .set_schedule("report", &hourly, &"hourly".to_owned())
        .await
        .unwrap();
    let nightly = Schedule::cron("30 2 * * *")
        .unwrap()
        .missed(MissedTicks::SkipAfter(Duration::from_secs(600)));
    queue
        .set_schedule("backup", &nightly, &"nightly".to_owned())
        .await
        .unwrap();

    let listed = queue.schedules().await.unwrap();
    let names: Vec<&str> = listed.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["backup", "report"]);
    assert_eq!(listed[1].schedule.as_ref().unwrap(), &hourly);
    assert_eq!(listed[1].job.as_deref().unwrap(), "hourly");
    assert_eq!(
        listed[1].next_tick_ms,
        Some(listed[1].last_tick_ms + 3_600_000)
    );
    assert_eq!(listed[0].schedule.as_ref().unwrap(), &nightly);

    let view = admin(&server, "list").await;
    let schedules = view.schedules().await.unwrap();
    assert_eq!(schedules[1].every_ms, Some(3_600_000));
    assert_eq!(schedules[1].priority, 3);
    assert_eq!(schedules[0].cron.as_deref(), Some("30 2 * * *"));
    assert_eq!(
        (schedules[0].missed.as_str(), schedules[0].grace_ms),
        ("skip", Some(600_000))
    );
    assert_eq!(schedules[0].job, Some(serde_json::json!("nightly")));
    assert_eq!(view.overview().await.unwrap().schedules, 2);

    // A change: a new version.
    let version = queue
        .set_schedule(
            "report",
            &Schedule::every(Duration::from_secs(60)),
            &"x".to_owned(),
        )
        .await
        .unwrap();
    assert!(version > schedules[1].version);
    let changed = view.schedules().await.unwrap();
    assert_eq!(
        (changed[1].every_ms, changed[1].version),
        (Some(60_000), version)
    );

    assert!(queue.remove_schedule("report").await.unwrap());
    assert!(!queue.remove_schedule("report").await.unwrap());
    assert_eq!(view.schedules().await.unwrap().len(), 1);
    assert!(
        queue
            .set_schedule("", &hourly, &"x".to_owned())
            .await
            .is_err()
    );
}

/// A running worker picks a change up at once: an hourly schedule changed to every
/// 200 ms fires within the hang guard (a minute; the worker's own wait is ten).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_reaches_running_workers_at_once() {
    let server = RedisServer::start();
    let config = RedisConfig::new(server.url(), "change").max_block(Duration::from_secs(600));
    let worker = RedisQueue::<u64>::connect(config).await.unwrap();
    worker
        .set_schedule("s", &Schedule::every(Duration::from_secs(3600)), &1)
        .await
        .unwrap();
    // A worker waiting for a job: the fetcher blocks in Redis, the runner sleeps.
    let mut consumer = worker.consumer().unwrap();
    let _waiting = tokio::spawn(async move {
        use crewpool_core::Consumer as _;
        let _ = consumer.next().await;
    });
    let view = admin(&server, "change").await;
    eventually("the fetcher blocking", || async {
        server
            .cli(&["INFO", "clients"])
            .contains("blocked_clients:1")
            .then_some(())
    })
    .await;
    let producer = RedisQueue::<u64>::connect(RedisConfig::new(server.url(), "change"))
        .await
        .unwrap();
    producer
        .set_schedule("s", &Schedule::every(Duration::from_millis(200)), &2)
        .await
        .unwrap();
    let ticks = eventually("a tick of the changed schedule", || async {
        let ticks = fired(&view).await;
        (!ticks.is_empty()).then_some(ticks)
    })
    .await;
    assert_eq!(ticks[0].schedule, "s");
    assert!(worker.counters().ticks_fired >= 1);
}

/// Ticks missed while no worker ran: with `FireLatest` only the most recent fires,
/// once; the older ones never do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missed_ticks_fire_the_latest_once() {
    let server = RedisServer::start();
    let producer = RedisQueue::<u64>::connect(RedisConfig::new(server.url(), "latest"))
        .await
        .unwrap();
    producer
        .set_schedule("s", &Schedule::every(Duration::from_millis(300)), &1)
        .await
        .unwrap();
    let view = admin(&server, "latest").await;
    let since = view.schedules().await.unwrap()[0].since_ms;
    // No worker while five ticks pass.
    eventually("five ticks to pass", || async {
        (redis_now(&server) > since + 1500 + 50).then_some(())
    })
    .await;
    let started = redis_now(&server);
    let worker = RedisQueue::<u64>::connect(RedisConfig::new(server.url(), "latest"))
        .await
        .unwrap();
    let _consumer = worker.consumer().unwrap();
    let ticks = eventually("the missed tick", || async {
        let ticks = fired(&view).await;
        (!ticks.is_empty()).then_some(ticks)
    })
    .await;
    // The latest tick before the worker started (or a later one if it took a while).
    let latest = since + (started - since) / 300 * 300;
    assert!(
        ticks[0].tick_ms >= latest,
        "fired an old tick: {ticks:?}, started {started}"
    );
    assert!(ticks.iter().all(|t| t.tick_ms >= latest));
}

/// With `SkipAfter`, a tick missed by more than the grace is passed without a job,
/// and the schedule goes on with its next tick.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missed_ticks_past_their_grace_are_skipped() {
    let server = RedisServer::start();
    let producer = RedisQueue::<u64>::connect(RedisConfig::new(server.url(), "skip"))
        .await
        .unwrap();
    let schedule = Schedule::every(Duration::from_millis(1500))
        .missed(MissedTicks::SkipAfter(Duration::from_millis(500)));
    producer.set_schedule("s", &schedule, &1).await.unwrap();
    let view = admin(&server, "skip").await;
    let since = view.schedules().await.unwrap()[0].since_ms;
    let first = since + 1500;
    eventually(
        "the first tick to be missed by more than its grace",
        || async { (redis_now(&server) > first + 800).then_some(()) },
    )
    .await;
    let worker = RedisQueue::<u64>::connect(RedisConfig::new(server.url(), "skip"))
        .await
        .unwrap();
    let _consumer = worker.consumer().unwrap();
    eventually("the missed tick to be passed", || async {
        (view.schedules().await.unwrap()[0].last_tick_ms == first).then_some(())
    })
    .await;
    assert!(fired(&view).await.is_empty(), "the missed tick fired");
    let ticks = eventually("the next tick", || async {
        let ticks = fired(&view).await;
        (!ticks.is_empty()).then_some(ticks)
    })
    .await;
    assert_eq!(ticks[0].tick_ms, first + 1500);
}
