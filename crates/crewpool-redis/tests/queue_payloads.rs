//! Payload limits, bulk enqueue, and envelopes that do not decode.

mod support;

use crewpool_core::{Consumer, Delivery, Envelope, PushError, Queue};
use crewpool_redis::testing::RedisServer;
use crewpool_redis::{Error, RedisQueue};
use support::confirmed;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_jobs_are_refused_with_a_clear_error_and_nothing_stored() {
    let server = RedisServer::start();
    let queue =
        RedisQueue::<String>::connect(confirmed(server.url(), "payloads").max_payload(1024))
            .await
            .unwrap();
    let big = "x".repeat(2000);
    // {"v":1,"at":<13 digits>,"job":"<2000 x>"}: 2,035 bytes.
    let error = queue.enqueue(&big).await.unwrap_err();
    assert!(
        matches!(
            error,
            Error::PayloadTooLarge {
                size: 2035,
                max: 1024
            }
        ),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        "the encoded job is 2035 bytes, over the limit of 1024 bytes (raise it with \
         `RedisConfig::max_payload`)"
    );
    // Bulk: one oversized job refuses the whole call before anything is sent.
    let error = queue
        .enqueue_bulk(["small".to_owned(), big.clone()])
        .await
        .unwrap_err();
    assert!(matches!(error, Error::PayloadTooLarge { .. }));
    // Through the Queue trait, the job comes back.
    match queue.push(Envelope::new(big.clone())).await {
        Err(PushError::Backend { item, .. }) => assert_eq!(item.job, big),
        other => panic!("expected a backend error, got {other:?}"),
    }
    assert_eq!(queue.len().await.unwrap(), 0);
    assert_eq!(
        server
            .cli(&["EXISTS", "crewpool:{payloads}:pending"])
            .trim(),
        "0"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undecodable_envelope_is_dead_lettered_and_the_worker_goes_on() {
    let server = RedisServer::start();
    let queue = RedisQueue::<u64>::connect(confirmed(server.url(), "payloads"))
        .await
        .unwrap();
    // A producer in another language writes garbage, then a wrong type, then a
    // future envelope version, then a record without its header, then a good job.
    for record in [
        "101|1|{not json",
        r#"102|1|{"v":1,"job":"a string"}"#,
        r#"103|1|{"v":2,"job":5}"#,
        r#"{"v":1,"job":6}"#,
    ] {
        server.cli(&["LPUSH", "crewpool:{payloads}:pending", record]);
    }
    let good = queue.enqueue(&42).await.unwrap();
    let mut consumer = queue.consumer().unwrap();
    let received = consumer.next().await.unwrap();
    assert_eq!((received.envelope.id, received.envelope.job), (good, 42));
    received.delivery.ack().await.unwrap();

    let dead = queue.dead_letters(10).await.unwrap();
    let mut reasons: Vec<_> = dead.iter().map(|d| (d.id.0, d.reason.clone())).collect();
    reasons.sort();
    assert_eq!(reasons.len(), 4, "{reasons:?}");
    assert!(
        reasons[0].0 == 0 && reasons[0].1.starts_with("malformed job record"),
        "{reasons:?}"
    );
    assert!(
        reasons[1].1.starts_with("undecodable envelope"),
        "{reasons:?}"
    );
    assert!(
        reasons[2]
            .1
            .starts_with("undecodable envelope: invalid type"),
        "{reasons:?}"
    );
    assert!(
        reasons[3].1.contains("unsupported envelope version 2"),
        "{reasons:?}"
    );
    assert!(dead.iter().all(|d| d.job.is_err()));
    assert_eq!(queue.counters().undecodable, 4);
    let stats = queue.stats().await.unwrap();
    assert_eq!((stats.pending, stats.active, stats.dead), (0, 0, 4));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_enqueue_numbers_jobs_in_order_and_keeps_fifo() {
    let server = RedisServer::start();
    let queue = RedisQueue::<u64>::connect(confirmed(server.url(), "bulk").prefetch(200))
        .await
        .unwrap();
    let first = queue.enqueue(&0).await.unwrap();
    let ids = queue.enqueue_bulk(1..=5_000_u64).await.unwrap();
    assert_eq!(ids.len(), 5_000);
    // After the first; in a row (one reservation covers up to 8,000 jobs).
    assert!(ids[0] > first, "{:?} after {first:?}", ids[0]);
    for (n, id) in ids.iter().enumerate() {
        assert_eq!(id.0, ids[0].0 + n as u64);
    }
    assert_eq!(queue.len().await.unwrap(), 5_001);
    let mut consumer = queue.consumer().unwrap();
    for expected in 0..=5_000_u64 {
        let received = consumer.next().await.unwrap();
        assert_eq!(received.envelope.job, expected, "FIFO");
        received.delivery.ack().await.unwrap();
    }
    assert_eq!(queue.stats().await.unwrap(), Default::default());
}

/// Records from other producers are held to the documented format by the worker:
/// ids 1 to 2^53 - 1, attempts from 1, envelopes within `max_payload`. A record that
/// breaks it is dead-lettered with the reason and never decoded or run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_that_break_the_documented_format_are_dead_lettered_unrun() {
    let server = RedisServer::start();
    let queue = RedisQueue::<u64>::connect(confirmed(server.url(), "format").max_payload(1024))
        .await
        .unwrap();
    // An envelope that would decode (unknown fields are ignored) but is too large.
    let oversized = format!(r#"14|1|{{"v":1,"job":5,"pad":"{}"}}"#, "x".repeat(2000));
    let refused = [
        (
            "0|1|{\"v\":1,\"job\":1}",
            "invalid job id 0 (ids are 1 to 2^53 - 1)",
        ),
        (
            "9007199254740992|1|{\"v\":1,\"job\":2}",
            "invalid job id 9007199254740992 (ids are 1 to 2^53 - 1)",
        ),
        (
            "12|0|{\"v\":1,\"job\":3}",
            "invalid attempt 0 (attempts are 1 to 2^32 - 1)",
        ),
        (
            "13|99999999999|{\"v\":1,\"job\":4}",
            "invalid attempt 99999999999 (attempts are 1 to 2^32 - 1)",
        ),
        (
            oversized.as_str(),
            "the envelope is 2024 bytes, over this worker's limit of 1024 bytes (`RedisConfig::max_payload`)",
        ),
    ];
    for (record, _) in &refused {
        server.cli(&["LPUSH", "crewpool:{format}:pending", record]);
    }
    server.cli(&[
        "LPUSH",
        "crewpool:{format}:pending",
        "9007199254740991|4294967295|{\"v\":1,\"job\":6}",
    ]);
    let good = queue.enqueue(&42).await.unwrap();

    // Only the two valid jobs run, in order.
    let mut consumer = queue.consumer().unwrap();
    let largest = consumer.next().await.unwrap();
    assert_eq!(
        (
            largest.envelope.id.0,
            largest.envelope.attempt,
            largest.envelope.job
        ),
        ((1 << 53) - 1, u32::MAX, 6)
    );
    largest.delivery.ack().await.unwrap();
    let last = consumer.next().await.unwrap();
    assert_eq!((last.envelope.id, last.envelope.job), (good, 42));
    last.delivery.ack().await.unwrap();

    let dead = queue.dead_letters(10).await.unwrap();
    let reasons: Vec<&str> = dead.iter().rev().map(|d| d.reason.as_str()).collect();
    let expected: Vec<&str> = refused.iter().map(|(_, reason)| *reason).collect();
    assert_eq!(reasons, expected);
    // Listed with what each has: the id when it is in range, no attempt for a record
    // that broke the format.
    let ids: Vec<u64> = dead.iter().rev().map(|d| d.id.0).collect();
    assert_eq!(ids, [0, 0, 12, 13, 14]);
    assert!(dead.iter().all(|d| d.attempt == 0 && d.at_ms > 0));
    let counters = queue.counters();
    assert_eq!((counters.undecodable, counters.dead_lettered), (5, 5));
    let stats = queue.stats().await.unwrap();
    assert_eq!((stats.pending, stats.active, stats.dead), (0, 0, 5));
}

/// One odd entry in the dead-letter list (an attempt out of range, a foreign tool's
/// entry, plain garbage) does not break the listing: every entry is listed with what
/// it has.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_odd_dead_letter_does_not_break_the_listing() {
    let server = RedisServer::start();
    let queue = RedisQueue::<u64>::connect(confirmed(server.url(), "odd"))
        .await
        .unwrap();
    // A record with an attempt no u32 holds, pushed while a worker runs.
    server.cli(&[
        "LPUSH",
        "crewpool:{odd}:pending",
        r#"903|99999999999|{"v":1,"job":5}"#,
    ]);
    let good = queue.enqueue(&42).await.unwrap();
    let mut consumer = queue.consumer().unwrap();
    let received = consumer.next().await.unwrap();
    assert_eq!(received.envelope.id, good);
    received.delivery.ack().await.unwrap();
    // Entries another tool (or an older version) may have left.
    for entry in [
        r#"{"record":"77|1|{\"v\":1,\"job\":7}","attempt":99999999999,"reason":"odd","at":1}"#,
        r#"{"reason":"no record"}"#,
        "[1,2,3]",
        "not json at all",
    ] {
        server.cli(&["LPUSH", "crewpool:{odd}:dead", entry]);
    }

    let dead = queue.dead_letters(10).await.unwrap();
    let listed: Vec<_> = dead
        .iter()
        .map(|d| (d.id.0, d.job.as_ref().ok().copied(), d.attempt, d.at_ms))
        .collect();
    assert_eq!(
        listed,
        [
            (0, None, 0, 0),
            (0, None, 0, 0),
            (0, None, 0, 0),
            (77, Some(7), 0, 1),
            (903, Some(5), 0, dead[4].at_ms),
        ]
    );
    assert_eq!(
        dead[0].reason,
        r#"unreadable dead-letter entry: "not json at all""#
    );
    assert_eq!(dead[2].reason, "no record");
    assert_eq!(dead[3].reason, "odd");
    // An operator's listing shows every entry too, with the same reasons.
    let admin = crewpool_redis::Admin::connect(server.url(), "crewpool")
        .await
        .unwrap();
    let page = admin
        .queue("odd")
        .unwrap()
        .jobs(crewpool_redis::JobState::Dead, 0, 10)
        .await
        .unwrap();
    let reasons: Vec<_> = page
        .jobs
        .iter()
        .map(|job| job.death.as_ref().map(|death| death.reason.clone()))
        .collect();
    let expected: Vec<_> = dead.iter().map(|d| Some(d.reason.clone())).collect();
    assert_eq!(reasons, expected);
    assert_eq!(page.jobs[3].id.0, 77);
    assert_eq!(
        dead[4].reason,
        "invalid attempt 99999999999 (attempts are 1 to 2^32 - 1)"
    );
    // The refused record's dead letter stores no attempt it could not have had.
    let stored = server.cli(&["LINDEX", "crewpool:{odd}:dead", "4"]);
    assert!(!stored.contains("\"attempt\""), "{stored}");
    // And it can be requeued as a fresh job.
    assert_eq!(
        queue
            .requeue_dead(&[crewpool_core::JobId(903)])
            .await
            .unwrap(),
        1
    );
    let again = consumer.next().await.unwrap();
    assert_eq!(
        (
            again.envelope.id.0,
            again.envelope.attempt,
            again.envelope.job
        ),
        (903, 1, 5)
    );
    again.delivery.ack().await.unwrap();
}
