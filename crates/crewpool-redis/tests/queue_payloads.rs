//! Payload limits, bulk enqueue, and envelopes that do not decode.

use crewpool_core::{Consumer, Delivery, Envelope, PushError, Queue};
use crewpool_redis::testing::RedisServer;
use crewpool_redis::{Error, RedisConfig, RedisQueue};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_jobs_are_refused_with_a_clear_error_and_nothing_stored() {
    let server = RedisServer::start();
    let queue =
        RedisQueue::<String>::connect(RedisConfig::new(server.url(), "payloads").max_payload(1024))
            .await
            .unwrap();
    let big = "x".repeat(2000);
    let error = queue.enqueue(&big).await.unwrap_err();
    assert!(
        matches!(
            error,
            Error::PayloadTooLarge {
                size: 2016,
                max: 1024
            }
        ),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        "the encoded job is 2016 bytes, over the limit of 1024 bytes (raise it with \
         RedisConfig::max_payload)"
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
    let queue = RedisQueue::<u64>::connect(RedisConfig::new(server.url(), "payloads"))
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
    let queue = RedisQueue::<u64>::connect(RedisConfig::new(server.url(), "bulk").prefetch(200))
        .await
        .unwrap();
    let first = queue.enqueue(&0).await.unwrap();
    let ids = queue.enqueue_bulk(1..=5_000_u64).await.unwrap();
    assert_eq!(ids.len(), 5_000);
    for (n, id) in ids.iter().enumerate() {
        assert_eq!(id.0, first.0 + 1 + n as u64);
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
