//! ACL user name and password from the URL; the password never appears in `Debug`,
//! `Display`, errors or logs.

mod support;

use std::time::Duration;

use crewpool_core::{Consumer, Delivery, Queue};
use crewpool_redis::testing::{RedisServer, free_port};
use crewpool_redis::{RedisConfig, RedisQueue};
use support::Captured;

const PASSWORD: &str = "Sup3r-s3cret-pa55word";
const WRONG: &str = "Wr0ng-guess-pa55word";

fn assert_hidden(what: &str, text: &str) {
    assert!(
        !text.contains(PASSWORD),
        "{what} shows the password: {text}"
    );
    assert!(
        !text.contains(WRONG),
        "{what} shows the (wrong) password: {text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_password_never_shows() {
    let logs = Captured::default();
    let writer = logs.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing_subscriber::filter::LevelFilter::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();

    let mut server = RedisServer::builder()
        .user("crew", PASSWORD)
        .default_user_off()
        .start();
    let url = server.url_for("crew", PASSWORD);
    let config = RedisConfig::new(url.as_str(), "secure").lease(Duration::from_millis(500));
    assert_hidden("RedisConfig Debug", &format!("{config:?}"));
    assert_hidden("RedisUrl Display", &config.url().to_string());
    assert!(config.url().to_string().contains("crew:***@"));

    // The ACL user from the URL works.
    let queue = RedisQueue::<u64>::connect(config.clone()).await.unwrap();
    queue.enqueue(&1).await.unwrap();
    let mut consumer = queue.consumer().unwrap();
    let received = consumer.next().await.unwrap();
    assert_hidden("RedisQueue Debug", &format!("{queue:?}"));
    assert_hidden("RedisConsumer Debug", &format!("{consumer:?}"));
    assert_hidden("Delivery Debug", &format!("{:?}", received.delivery));
    received.delivery.ack().await.unwrap();

    // A wrong password is refused without echoing it, and is not worth retrying: even
    // with a long connect wait, connect gives up at once.
    let wrong = RedisConfig::new(server.url_for("crew", WRONG), "secure")
        .connect_retry_for(Duration::from_secs(600));
    let error = tokio::time::timeout(Duration::from_secs(30), RedisQueue::<u64>::connect(wrong))
        .await
        .expect("a refused password was retried")
        .unwrap_err();
    let source = std::error::Error::source(&error).map(ToString::to_string);
    assert_hidden("auth error Display", &format!("{error}: {source:?}"));
    assert_hidden("auth error Debug", &format!("{error:?}"));
    assert!(error.is_auth() && !error.is_connection(), "{error:?}");
    assert!(
        !logs.text().contains("cannot be reached"),
        "a refused password is not an unreachable server"
    );
    println!("wrong password: {error}: {source:?}");

    // Without the URL's user, the default user is off: refused.
    let anonymous = RedisQueue::<u64>::connect(RedisConfig::new(server.url(), "secure")).await;
    assert!(anonymous.is_err());

    // Redis going away: errors and the background tasks' logs stay clean.
    server.kill();
    let error = queue.enqueue(&2).await.unwrap_err();
    assert_hidden("connection error Display", &error.to_string());
    assert_hidden("connection error Debug", &format!("{error:?}"));
    // A fetch attempt while Redis is down (the consumer's demand starts one) logs a
    // warning, which must not carry the password either.
    tokio::select! {
        _ = consumer.next() => panic!("a job while Redis is down"),
        () = logs.warned() => {}
        () = tokio::time::sleep(Duration::from_secs(30)) => panic!("hang guard: no warning"),
    }
    server.restart();
    queue.enqueue(&3).await.unwrap();
    let received = tokio::time::timeout(Duration::from_secs(30), consumer.next())
        .await
        .expect("hang guard")
        .unwrap();
    received.delivery.ack().await.unwrap();

    // A refused connection to a closed port, with the password in the URL.
    let closed_port = free_port();
    let refused = RedisQueue::<u64>::connect(RedisConfig::new(
        format!("redis://crew:{PASSWORD}@127.0.0.1:{closed_port}"),
        "secure",
    ))
    .await
    .unwrap_err();
    assert_hidden("refused error", &format!("{refused} {refused:?}"));

    drop(consumer);
    drop(queue);
    let logs = logs.text();
    assert!(logs.contains("WARN"), "the outage was logged:\n{logs}");
    assert_hidden("logs", &logs);
}
