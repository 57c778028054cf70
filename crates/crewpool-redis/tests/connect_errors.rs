//! Connecting: a worker started before Redis waits for it (when asked to), errors name
//! the URL they were connecting to (password hidden) and what failed, and a server
//! that accepts connections but never answers fails with a time-out that says so.

mod support;

use std::error::Error as _;
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crewpool_redis::testing::{RedisServer, free_port};
use crewpool_redis::{Error, RedisConfig, RedisQueue};
use support::{Captured, HANG_GUARD};

const SECRET: &str = "Sup3r-s3cret";

/// The error and its sources, `: `-separated, as an application would print them.
fn chain(error: &Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[tokio::test]
async fn a_worker_started_before_redis_connects_once_redis_is_up() {
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing_subscriber::filter::LevelFilter::WARN)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    // A current-thread runtime: `connect` runs on this thread, under this guard.
    let _guard = tracing::subscriber::set_default(subscriber);

    let port = free_port();
    let config = RedisConfig::new(format!("redis://127.0.0.1:{port}"), "early")
        .connect_retry_for(HANG_GUARD);
    let mut connecting = std::pin::pin!(RedisQueue::<u64>::connect(config));
    // Redis starts only once the worker has tried, failed and said it keeps trying.
    let server = tokio::select! {
        result = &mut connecting => {
            panic!("connect returned before Redis was up: {:?}", result.map(|_| ()))
        }
        () = logs.warned() => {
            tokio::task::spawn_blocking(move || RedisServer::builder().port(port).start())
                .await
                .unwrap()
        }
        () = tokio::time::sleep(HANG_GUARD) => panic!("hang guard: no warning"),
    };
    let queue = tokio::time::timeout(HANG_GUARD, connecting)
        .await
        .expect("hang guard");
    let queue = queue.expect("connected once Redis was up");
    queue.enqueue(&1).await.unwrap();
    assert_eq!(
        server.cli(&["LLEN", "crewpool:{early}:pending"]).trim(),
        "1"
    );
    let logs = logs.text();
    assert!(
        logs.contains("Redis cannot be reached; retrying")
            && logs.contains(&format!("redis://127.0.0.1:{port}")),
        "the wait was logged with the URL:\n{logs}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_never_answers_times_out_saying_what_timed_out() {
    // Accepts connections and never writes a byte.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&accepted);
    std::thread::spawn(move || {
        let mut open = Vec::new();
        for stream in listener.incoming() {
            count.fetch_add(1, Ordering::SeqCst);
            open.push(stream);
        }
    });

    let url = format!("redis://crew:{SECRET}@127.0.0.1:{port}");
    let error = RedisQueue::<u64>::connect(RedisConfig::new(url.as_str(), "mute"))
        .await
        .unwrap_err();
    let text = chain(&error);
    println!("{text}");
    assert!(matches!(error, Error::Connect { .. }), "{error:?}");
    assert!(error.is_timeout() && error.is_connection(), "{error:?}");
    assert!(
        text.starts_with(&format!(
            "could not connect to Redis at redis://crew:***@127.0.0.1:{port}: no connection within"
        )) && text.contains("`RedisConfig::connect_timeout`"),
        "{text}"
    );
    assert!(!text.contains(SECRET) && !format!("{error:?}").contains(SECRET));
    // One attempt, bounded by the connect timeout (2 s): not a series of them.
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_connection_names_the_url() {
    let port = free_port();
    let error = RedisQueue::<u64>::connect(RedisConfig::new(
        format!("redis://crew:{SECRET}@127.0.0.1:{port}/3"),
        "refused",
    ))
    .await
    .unwrap_err();
    let text = chain(&error);
    println!("{text}");
    assert!(error.is_connection() && !error.is_timeout() && !error.is_auth());
    assert_eq!(
        error.to_string(),
        format!("could not connect to Redis at redis://crew:***@127.0.0.1:{port}/3")
    );
    assert!(text.to_lowercase().contains("refused"), "{text}");
    assert!(!text.contains(SECRET));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_call_names_the_url_and_the_call_once() {
    let mut server = RedisServer::start();
    let queue = RedisQueue::<u64>::connect(RedisConfig::new(server.url(), "calls"))
        .await
        .unwrap();
    server.kill();
    let error = queue.enqueue(&1).await.unwrap_err();
    let text = chain(&error);
    println!("{text}");
    assert!(error.is_connection(), "{error:?}");
    assert!(
        text.starts_with(&format!("Redis at {}: enqueueing failed: ", server.url())),
        "{text}"
    );
    let parts: Vec<&str> = text.split(": ").collect();
    for (n, part) in parts.iter().enumerate() {
        assert!(
            parts[n + 1..].iter().all(|later| !later.contains(part)),
            "{part:?} repeated in {text:?}"
        );
    }
}
