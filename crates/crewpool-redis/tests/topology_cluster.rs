//! A Redis Cluster of 3 masters and 3 replicas on loopback, started by the test: the
//! conformance suite, retries and dead letters, fencing, queues spread over the
//! masters, and worker processes on several queues across a slot migration (`ASK`,
//! then `MOVED`) and a master kill, audited.

mod support;

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use crewpool_core::{Consumer, Delivery, Queue, testkit};
use crewpool_redis::testing::{RedisCluster, RedisServer};
use crewpool_redis::{RedisConfig, RedisQueue, RetryPolicy};
use support::{HANG_GUARD, WorkerProcess, audit_tokens, confirmed, ids_of_several_jobs, runs};

async fn queue(cluster: &RedisCluster, name: &str) -> RedisQueue<u64> {
    RedisQueue::connect(RedisConfig::new(cluster.url(), name))
        .await
        .expect("connect to the cluster")
}

fn pending_key(queue: &str) -> String {
    format!("crewpool:{{{queue}}}:pending")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_passes_conformance_retries_and_fencing() {
    let cluster = RedisCluster::start(3, 1);

    // Queues hash to their own slots, spread over the masters.
    let masters: BTreeSet<u16> = ["emails", "thumbnails", "reports", "billing", "search"]
        .iter()
        .map(|name| cluster.master_of(&pending_key(name)))
        .collect();
    assert!(
        masters.len() >= 2,
        "five queues all on one master: {masters:?}"
    );

    // One of its jobs carries a reply: a queue with a result type takes it.
    testkit::delivers_what_was_pushed(
        queue(&cluster, "delivers")
            .await
            .with_results::<u64, String>(),
    )
    .await;
    // Results come back on a Cluster: a job's result and its producer's reply channel
    // are keys of the queue's slot.
    let results = queue(&cluster, "results")
        .await
        .with_results::<u64, String>();
    let pool = crewpool_runtime::PoolBuilder::new()
        .workers(2)
        .queue(results)
        .build(|n: u64| async move { Ok::<_, String>(3 * n) })
        .unwrap();
    for n in 0..10 {
        let handle = pool.submit(n).await.unwrap();
        let result = tokio::time::timeout(HANG_GUARD, handle).await.unwrap();
        assert_eq!(result.unwrap(), 3 * n);
    }
    pool.shutdown().await;
    testkit::close_and_drain(queue(&cluster, "drain").await).await;
    assert_eq!(queue(&cluster, "drain").await.len().await.unwrap(), 64);
    testkit::next_is_cancel_safe(queue(&cluster, "cancel").await).await;
    testkit::dropping_a_consumer_loses_nothing(queue(&cluster, "dropping").await).await;
    testkit::nothing_lost_or_duplicated(queue(&cluster, "concurrent").await, 3, 4, 500).await;
    testkit::settle(queue(&cluster, "settle").await).await;

    // Bulk enqueue (one MULTI/EXEC in the queue's slot) and scheduled jobs work too.
    let bulk = queue(&cluster, "bulk").await;
    let ids = bulk.enqueue_bulk(0..2500_u64).await.unwrap();
    assert_eq!(ids.len(), 2500);
    assert_eq!(bulk.len().await.unwrap(), 2500);

    // Retries back off through the delayed set, then dead-letter; requeue works.
    let policy = RetryPolicy::exponential(2).base_delay(Duration::from_millis(50));
    let retry = RedisQueue::<u64>::connect(RedisConfig::new(cluster.url(), "retry").retry(policy))
        .await
        .unwrap();
    let id = retry.enqueue(&1).await.unwrap();
    let mut consumer = retry.consumer().unwrap();
    for attempt in 1..=2_u32 {
        let received = consumer.next().await.unwrap();
        assert_eq!(
            (received.envelope.id, received.envelope.attempt),
            (id, attempt)
        );
        received.delivery.fail("boom").await.unwrap();
    }
    let stats = retry.stats().await.unwrap();
    assert_eq!(
        (stats.pending, stats.active, stats.delayed, stats.dead),
        (0, 0, 0, 1)
    );
    assert_eq!(retry.requeue_dead(&[id]).await.unwrap(), 1);
    let again = consumer.next().await.unwrap();
    assert_eq!((again.envelope.id, again.envelope.attempt), (id, 1));
    again.delivery.ack().await.unwrap();

    // Fencing: a delivery whose lease expired cannot settle the job someone else took.
    let config = confirmed(cluster.url(), "fencing")
        .lease(Duration::from_secs(60))
        .heartbeat(Duration::from_secs(50));
    let zombie = RedisQueue::<u64>::connect(config.clone()).await.unwrap();
    let rescuer = RedisQueue::<u64>::connect(config).await.unwrap();
    let id = zombie.enqueue(&5).await.unwrap();
    let mut zombie_consumer = zombie.consumer().unwrap();
    let stale = zombie_consumer.next().await.unwrap();
    cluster.cli_any(&[
        "ZADD",
        "crewpool:{fencing}:active",
        "XX",
        "0",
        &stale.delivery.token().to_string(),
    ]);
    let mut rescuer_consumer = rescuer.consumer().unwrap();
    let fresh = rescuer_consumer.next().await.unwrap();
    assert_eq!((fresh.envelope.id, fresh.envelope.attempt), (id, 2));
    assert_ne!(stale.delivery.token(), fresh.delivery.token());
    assert!(
        stale.delivery.ack().await.is_err(),
        "a zombie's ack is refused"
    );
    fresh.delivery.ack().await.unwrap();
    assert_eq!(zombie.counters().stale, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_processes_on_several_queues_across_a_migration_and_a_master_kill() {
    let mut cluster = RedisCluster::start(3, 1);
    let recorder = RedisServer::start();
    let record_url = recorder.url();
    const LEASE_MS: u64 = 1000;
    const JOBS: u64 = 400;
    let names = ["alpha", "beta", "gamma"];
    let url = cluster.url();
    let mut workers = Vec::new();
    for name in names {
        for _ in 0..2 {
            workers.push(WorkerProcess::spawn_with(
                &url,
                name,
                2,
                LEASE_MS,
                "normal",
                &[("CREWPOOL_TEST_RECORD_URL", &record_url)],
            ));
        }
    }
    for worker in &workers {
        worker.wait_for("ready", |line| line == "ready");
    }
    let mut queues = Vec::new();
    for name in names {
        queues.push(queue(&cluster, name).await);
    }

    // Steady enqueueing: job n of every queue, one at a time; the faults strike mid-run.
    let migrated_slot = cluster.slot(&pending_key("alpha"));
    let killed_key = pending_key("beta");
    let mut accepted: HashMap<&str, Vec<u64>> = HashMap::new();
    let mut enqueue_errors = 0_u64;
    let mut killed = None;
    let mut kill_at: Option<Instant> = None;
    let mut recovered = None;
    for job in 0..JOBS {
        for (name, queue) in names.iter().zip(&queues) {
            // A producer that retries a failed enqueue (one that landed unanswered
            // is enqueued twice: at-least-once).
            let give_up = Instant::now() + HANG_GUARD;
            while let Err(error) = queue.enqueue(&job).await {
                enqueue_errors += 1;
                assert!(
                    Instant::now() < give_up,
                    "enqueueing keeps failing: {error}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            accepted.entry(name).or_default().push(job);
            if *name == "beta" && recovered.is_none() {
                recovered = kill_at.map(|at| at.elapsed());
            }
        }
        if job == JOBS / 4 {
            let from = cluster.master_of_slot(migrated_slot);
            let to = cluster
                .masters()
                .into_iter()
                .find(|&port| port != from)
                .unwrap();
            cluster.migrate_slot(migrated_slot, to);
            assert_eq!(cluster.master_of_slot(migrated_slot), to);
            println!("migrated alpha's slot {migrated_slot} from :{from} to :{to} at job {job}");
        }
        if job == JOBS / 2 {
            let port = cluster.master_of(&killed_key);
            cluster.kill(port);
            killed = Some(port);
            kill_at = Some(Instant::now());
            println!("killed beta's master :{port} at job {job}");
        }
    }

    // Audit: wait until every accepted job ran (or the hang guard passes).
    let deadline = Instant::now() + HANG_GUARD;
    loop {
        let mut done = true;
        for (name, queue) in names.iter().zip(&queues) {
            let ran = runs(&recorder, name);
            let all_ran = accepted[name].iter().all(|job| ran.contains_key(job));
            // A job lost in the failover never runs: then wait for the queue to empty.
            let empty = queue
                .stats()
                .await
                .is_ok_and(|stats| stats.pending + stats.active + stats.delayed == 0);
            done &= all_ran || (*name == "beta" && empty);
        }
        if done || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut report = Vec::new();
    for name in names {
        let ran = runs(&recorder, name);
        let lost: Vec<u64> = accepted[name]
            .iter()
            .copied()
            .filter(|job| !ran.contains_key(job))
            .collect();
        let reruns: u64 = ran.values().map(|n| n.saturating_sub(1)).sum();
        report.push(format!(
            "{name}: accepted {} lost {} reruns {}",
            accepted[name].len(),
            lost.len(),
            reruns
        ));
        if name != "beta" {
            // Untouched by the kill: a migration loses nothing.
            assert!(lost.is_empty(), "{name} lost {lost:?}");
        }
    }
    // No fencing token was issued twice, across the migration and the failover: every
    // delivery the worker processes of each queue got (tokens are per queue; the
    // workers were started two per queue, in the order of `names`).
    for (name, pair) in names.iter().zip(workers.chunks(2)) {
        let tokens = audit_tokens(&pair.iter().collect::<Vec<_>>());
        assert!(tokens.deliveries as u64 >= JOBS, "{name}: {tokens:?}");
        report.push(format!("{name} tokens: {tokens:?}"));
    }
    // No job id was given twice either: the promoted replica may lack the id
    // counter's last increments, yet no id names two jobs.
    for name in names {
        let reused = ids_of_several_jobs(&recorder, name);
        assert!(
            reused.is_empty(),
            "{name}: {} ids were given to more than one job, e.g. {:?}",
            reused.len(),
            reused.iter().take(3).collect::<Vec<_>>()
        );
    }
    println!(
        "cluster audit ({JOBS} jobs per queue, enqueue errors {enqueue_errors}, killed :{killed:?}, beta enqueues again {recovered:?} after the kill): {}; no token issued twice, no id given to two jobs",
        report.join("; ")
    );
    drop(workers);
}
