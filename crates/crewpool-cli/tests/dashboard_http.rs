//! The dashboard and the exporter over HTTP against a real redis-server: the JSON API,
//! the guards on changes (CSRF token, same origin, read-only), the loopback and token
//! rules, the Prometheus exposition (checked with a Prometheus text parser), and no
//! password in anything served.

mod support;

use crewpool_redis::testing::RedisServer;
use crewpool_redis::{Admin, JobState};
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{Served, fill};

async fn get(url: &str) -> (StatusCode, Value) {
    let response = reqwest::get(url).await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn csrf(base: &str) -> String {
    let (_, session) = get(&format!("{base}/api/session")).await;
    session["csrf"].as_str().unwrap().to_owned()
}

async fn pending_ids(url: &str, queue: &str) -> Vec<u64> {
    let admin = Admin::connect(url, "crewpool").await.unwrap();
    let page = admin
        .queue(queue)
        .unwrap()
        .jobs(JobState::Pending, 0, 100)
        .await
        .unwrap();
    page.jobs.iter().map(|job| job.id.0).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_serves_queues_and_pages_and_the_page_its_guards() {
    let server = RedisServer::start();
    let url = server.url();
    let (_queue, ids) = fill(&url, "mailer").await;
    let dashboard = Served::start(&url, &["dashboard"]);
    let base = &dashboard.base;

    let page = reqwest::get(format!("{base}/")).await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let headers = page.headers();
    assert!(
        headers["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("script-src 'self'")
    );
    assert_eq!(headers["x-frame-options"], "DENY");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert!(page.text().await.unwrap().contains("/assets/app.js"));
    let script = reqwest::get(format!("{base}/assets/app.js")).await.unwrap();
    assert!(
        script.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );

    let (status, queues) = get(&format!("{base}/api/queues")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(queues[0]["name"], "mailer");
    assert_eq!(
        (
            &queues[0]["pending"],
            &queues[0]["delayed"],
            &queues[0]["dead"]
        ),
        (&json!(3), &json!(1), &json!(2))
    );
    assert_eq!(
        (&queues[0]["scheduled"], &queues[0]["schedules"]),
        (&json!(1), &json!(1))
    );
    let (_, scheduled) = get(&format!("{base}/api/queues/mailer/jobs?state=scheduled")).await;
    assert_eq!(scheduled["jobs"][0]["id"], ids.scheduled);
    assert_eq!(scheduled["jobs"][0]["unique_key"], "digest:daily");
    let (status, schedules) = get(&format!("{base}/api/queues/mailer/schedules")).await;
    assert_eq!(status, StatusCode::OK, "{schedules}");
    assert_eq!(schedules["schedules"][0]["name"], "nightly-digest");
    assert_eq!(schedules["schedules"][0]["cron"], "0 8 * * *");
    assert!(
        schedules["schedules"][0]["next_tick_ms"].as_u64().unwrap()
            > schedules["now_ms"].as_u64().unwrap()
    );
    assert_eq!(schedules["fired"], json!([]));
    let (_, dead) = get(&format!("{base}/api/queues/mailer/jobs?state=dead")).await;
    assert_eq!(dead["total"], 2);
    assert_eq!(
        dead["jobs"][0]["death"]["reason"],
        "invalid address: no MX record"
    );
    let (status, _) = get(&format!("{base}/api/queues/no-such/")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = get(&format!("{base}/api/queues/no-such")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = get(&format!("{base}/api/queues/mailer/jobs?state=running")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    // Changes: refused without the CSRF token, from another origin, or cross-site.
    let client = reqwest::Client::new();
    let requeue = format!("{base}/api/queues/mailer/requeue");
    let token = csrf(base).await;
    let body = json!({ "ids": [ids.dead] });
    for (name, value) in [
        ("x-crewpool-csrf", "wrong"),
        ("origin", "http://evil.example"),
        ("sec-fetch-site", "cross-site"),
    ] {
        let mut request = client.post(&requeue).json(&body);
        if name != "x-crewpool-csrf" {
            request = request.header("x-crewpool-csrf", &token);
        }
        let response = request.header(name, value).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{name}: {value}");
    }
    // A GET cannot change anything.
    let response = client.get(&requeue).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert!(!pending_ids(&url, "mailer").await.contains(&ids.dead));

    // From the page itself: accepted, and the job is pending again.
    let response = client
        .post(&requeue)
        .header("x-crewpool-csrf", &token)
        .header("origin", base.as_str())
        .header("sec-fetch-site", "same-origin")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.json::<Value>().await.unwrap()["done"], 1);
    assert!(pending_ids(&url, "mailer").await.contains(&ids.dead));
    let response = client
        .post(format!("{base}/api/queues/mailer/delete"))
        .header("x-crewpool-csrf", &token)
        .json(&json!({ "state": "dead", "ids": [ids.dead_too] }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.json::<Value>().await.unwrap()["done"], 1);

    // Pause and resume: guarded like every change, and the overview says so.
    let pause = format!("{base}/api/queues/mailer/pause");
    let response = client.post(&pause).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN, "no CSRF token");
    let (_, queue) = get(&format!("{base}/api/queues/mailer")).await;
    assert_eq!(queue["paused"], false);
    let response = client
        .post(&pause)
        .header("x-crewpool-csrf", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.json::<Value>().await.unwrap()["changed"], true);
    let (_, queue) = get(&format!("{base}/api/queues/mailer")).await;
    assert_eq!(queue["paused"], true);
    let (_, queues) = get(&format!("{base}/api/queues")).await;
    assert_eq!(queues[0]["paused"], true);
    let response = client
        .post(format!("{base}/api/queues/mailer/resume"))
        .header("x-crewpool-csrf", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.json::<Value>().await.unwrap()["changed"], true);
    let (_, queue) = get(&format!("{base}/api/queues/mailer")).await;
    assert_eq!(queue["paused"], false);

    // Another Host (DNS rebinding) is refused when no token is set.
    let response = client
        .get(format!("{base}/api/queues"))
        .header("host", "evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_refuses_every_change() {
    let server = RedisServer::start();
    let url = server.url();
    let (_queue, ids) = fill(&url, "mailer").await;
    let dashboard = Served::start(&url, &["dashboard", "--read-only"]);
    let base = &dashboard.base;
    let (_, session) = get(&format!("{base}/api/session")).await;
    assert_eq!(session["read_only"], true);
    let response = reqwest::Client::new()
        .post(format!("{base}/api/queues/mailer/requeue"))
        .header("x-crewpool-csrf", csrf(base).await)
        .json(&json!({ "ids": [ids.dead] }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(!pending_ids(&url, "mailer").await.contains(&ids.dead));
    let response = reqwest::Client::new()
        .post(format!("{base}/api/queues/mailer/pause"))
        .header("x-crewpool-csrf", csrf(base).await)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let (_, queue) = get(&format!("{base}/api/queues/mailer")).await;
    assert_eq!(queue["paused"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_is_required_everywhere_once_set_and_off_loopback() {
    let server = RedisServer::start();
    let url = server.url();
    // Off loopback without a token: refused before listening (exit 2).
    let refused = support::run(&url, &["dashboard", "--listen", "0.0.0.0:0"]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(support::stderr(&refused).contains("without a token"));

    let dashboard = Served::start(&url, &["dashboard", "--token", "t0ken-value"]);
    let base = &dashboard.base;
    let client = reqwest::Client::new();
    let response = client
        .get(format!("{base}/api/queues"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(
        response.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Basic")
    );
    let response = client
        .get(format!("{base}/api/queues"))
        .basic_auth("anyone", Some("t0ken-value"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let response = client
        .get(format!("{base}/metrics"))
        .bearer_auth("t0ken-value")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let response = client
        .get(format!("{base}/metrics"))
        .bearer_auth("t0ken-valu")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_page_or_answer_carries_the_redis_password() {
    let server = RedisServer::builder()
        .user("ops", "s3cret-pass")
        .default_user_off()
        .start();
    let url = server.url_for("ops", "s3cret-pass");
    fill(&url, "mailer").await;
    let dashboard = Served::start(&url, &["dashboard"]);
    let base = &dashboard.base;
    for path in [
        "/",
        "/assets/app.js",
        "/api/session",
        "/api/queues",
        "/api/queues/mailer",
        "/api/queues/mailer/jobs?state=dead",
        "/api/throughput",
        "/metrics",
    ] {
        let text = reqwest::get(format!("{base}{path}"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(!text.contains("s3cret"), "{path} shows the password");
    }
    let (_, session) = get(&format!("{base}/api/session")).await;
    assert_eq!(
        session["redis"],
        format!("redis://ops:***@127.0.0.1:{}", server.port())
    );
}

/// Parses an exposition with the Prometheus text parser and returns `name{queue}` →
/// value (plus `state` for the job gauge).
fn parse(text: &str) -> std::collections::HashMap<String, f64> {
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))
        .expect("a valid Prometheus exposition");
    scrape
        .samples
        .into_iter()
        .map(|sample| {
            let value = match sample.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                other => panic!("unexpected sample type {other:?}"),
            };
            let mut key = sample.metric.clone();
            for label in ["queue", "state"] {
                if let Some(v) = sample.labels.get(label) {
                    key.push_str(&format!(" {v}"));
                }
            }
            (key, value)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_as_prometheus_with_no_worker_running() {
    let mut server = RedisServer::start();
    let url = server.url();
    let (queue, _) = fill(&url, "mailer").await;
    queue.pause().await.unwrap();
    drop(queue); // no worker: the numbers come from Redis alone
    let dashboard = Served::start(&url, &["dashboard"]);
    let exporter = Served::start(&url, &["exporter"]);
    for base in [&dashboard.base, &exporter.base] {
        let response = reqwest::get(format!("{base}/metrics")).await.unwrap();
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/plain; version=0.0.4")
        );
        let text = response.text().await.unwrap();
        assert!(text.contains("# TYPE crewpool_queue_processed_total counter\n"));
        let metrics = parse(&text);
        for (key, value) in [
            ("crewpool_queue_jobs mailer pending", 3.0),
            ("crewpool_queue_jobs mailer scheduled", 1.0),
            ("crewpool_queue_jobs mailer delayed", 1.0),
            ("crewpool_queue_jobs mailer leased", 0.0),
            ("crewpool_queue_jobs mailer dead", 2.0),
            ("crewpool_queue_processed_total mailer", 5.0),
            ("crewpool_queue_failed_total mailer", 3.0),
            ("crewpool_queue_lease_expired_total mailer", 0.0),
            ("crewpool_queue_missed_deadline_total mailer", 0.0),
            ("crewpool_queue_schedules mailer", 1.0),
            ("crewpool_queue_paused mailer", 1.0),
            ("crewpool_up", 1.0),
        ] {
            assert_eq!(metrics.get(key), Some(&value), "{key} in\n{text}");
        }
        assert!(metrics["crewpool_queue_oldest_pending_age_seconds mailer"] >= 0.0);
        assert!(metrics["crewpool_queue_last_connect_timestamp_seconds mailer"] > 1.7e9);
    }
    // Redis gone: the scrape still answers, with crewpool_up 0.
    server.kill();
    let text = reqwest::get(format!("{}/metrics", exporter.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(parse(&text).get("crewpool_up"), Some(&0.0), "{text}");
}
