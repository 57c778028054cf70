//! What `RedisQueue::connect` checks on the server: an evicting `maxmemory-policy` may
//! delete queued jobs, so it is reported by a warning naming the fix; `noeviction`
//! (Redis's default) connects quietly.

mod support;

use crewpool_redis::testing::RedisServer;
use crewpool_redis::{RedisConfig, RedisQueue};
use support::Captured;

/// Connects to `server` with a subscriber capturing this thread's logs; returns the
/// queue's view of the server's policy and what was logged.
async fn connect_and_capture(server: &RedisServer) -> (String, bool, String) {
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing_subscriber::filter::LevelFilter::WARN)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    // A current-thread test runtime: `connect` runs on this thread, under this guard.
    let _guard = tracing::subscriber::set_default(subscriber);
    let queue = RedisQueue::<u64>::connect(RedisConfig::new(server.url(), "checks"))
        .await
        .unwrap();
    let info = queue.server();
    (
        info.maxmemory_policy.clone(),
        info.is_noeviction(),
        logs.text(),
    )
}

#[tokio::test]
async fn an_evicting_server_is_reported_with_the_fix() {
    let server = RedisServer::builder()
        .arg("--maxmemory-policy")
        .arg("allkeys-lru")
        .start();
    let (policy, noeviction, logs) = connect_and_capture(&server).await;
    assert_eq!(policy, "allkeys-lru");
    assert!(!noeviction);
    assert!(
        logs.contains("WARN") && logs.contains("set `maxmemory-policy noeviction`"),
        "no warning naming the fix; logged:\n{logs}"
    );
    assert!(
        logs.contains("allkeys-lru"),
        "the warning names the policy found"
    );
}

#[tokio::test]
async fn a_noeviction_server_connects_quietly() {
    let server = RedisServer::start();
    let (policy, noeviction, logs) = connect_and_capture(&server).await;
    assert_eq!(policy, "noeviction");
    assert!(noeviction);
    assert!(!logs.contains("WARN"), "an unexpected warning:\n{logs}");
}
