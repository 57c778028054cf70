//! The dashboard in a real browser: headless Chromium driven through chromedriver
//! (WebDriver). It opens the overview, reads a queue's counts, opens its dead letters,
//! requeues one by clicking, checks in Redis that the job is pending again, opens the
//! schedules and scheduled tabs, and saves
//! screenshots into the target directory (`target/tmp/crewpool-dashboard-*.png`).
//!
//! Needs Debian's `chromium` and `chromium-driver` (`apt-get install chromium
//! chromium-driver`); without them the test fails and says so.

mod support;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crewpool_core::{Consumer, Delivery, Queue};
use crewpool_redis::testing::{RedisServer, free_port};
use crewpool_redis::{Admin, JobState, RedisConfig, RedisQueue};
use fantoccini::{Client, ClientBuilder, Locator};
use support::{Served, fill};

/// How long the whole test may take (a hang guard).
const TEST_TIMEOUT: Duration = Duration::from_secs(180);
/// How long one thing may take to show up.
const STEP_TIMEOUT: Duration = Duration::from_secs(30);

const INSTALL_HINT: &str = "the dashboard's browser test needs Debian's chromium and \
     chromium-driver: `apt-get install chromium chromium-driver` (.ci/run installs them)";

/// Finds `program` on `PATH`.
fn on_path(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|path| path.is_file())
    })
}

/// chromedriver and the Chromium it starts; both killed when dropped, even when the
/// test fails: chromedriver's process group, then any process still using this test's
/// profile directory.
struct Browser {
    driver: Child,
    profile: PathBuf,
    port: u16,
}

impl Browser {
    fn start() -> Self {
        let chromium = on_path("chromium")
            .unwrap_or_else(|| panic!("chromium not found on PATH; {INSTALL_HINT}"));
        let chromedriver = on_path("chromedriver")
            .unwrap_or_else(|| panic!("chromedriver not found on PATH; {INSTALL_HINT}"));
        assert!(chromium.is_file());
        let profile = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "crewpool-chromium-profile-{}-{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(&profile).expect("creating the browser profile directory");
        let port = free_port();
        let driver = {
            use std::os::unix::process::CommandExt as _;
            Command::new(chromedriver)
                .arg(format!("--port={port}"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                // Its own process group, so the browser it starts can be killed with it.
                .process_group(0)
                .spawn()
                .unwrap_or_else(|e| panic!("could not start chromedriver ({e}); {INSTALL_HINT}"))
        };
        Browser {
            driver,
            profile,
            port,
        }
    }

    fn capabilities(&self) -> fantoccini::wd::Capabilities {
        let chromium = on_path("chromium").expect("checked at start");
        let args = vec![
            "--headless".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-quic".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--window-size=1280,960".to_owned(),
            format!("--user-data-dir={}", self.profile.display()),
        ];
        let capabilities = serde_json::json!({
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": chromium, "args": args },
        });
        match capabilities {
            serde_json::Value::Object(map) => map,
            _ => unreachable!(),
        }
    }

    /// Connects a WebDriver session, retrying while chromedriver starts up.
    async fn session(&self) -> Client {
        let deadline = Instant::now() + STEP_TIMEOUT;
        let mut builder =
            ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new());
        builder.capabilities(self.capabilities());
        loop {
            match builder
                .connect(&format!("http://127.0.0.1:{}", self.port))
                .await
            {
                Ok(client) => return client,
                Err(error) if Instant::now() < deadline => {
                    // chromedriver is not listening yet; poll again.
                    let _ = error;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(error) => {
                    panic!("no WebDriver session within {STEP_TIMEOUT:?}: {error}; {INSTALL_HINT}")
                }
            }
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let group = self.driver.id();
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{group}")])
            .stderr(Stdio::null())
            .status();
        let _ = self.driver.wait();
        // A browser process that left the group still names our profile directory.
        let needle = format!("--user-data-dir={}", self.profile.display());
        if let Ok(entries) = std::fs::read_dir("/proc") {
            for entry in entries.flatten() {
                let pid = entry.file_name().to_string_lossy().into_owned();
                if !pid.bytes().all(|b| b.is_ascii_digit()) {
                    continue;
                }
                let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
                if String::from_utf8_lossy(&cmdline)
                    .replace('\0', " ")
                    .contains(&needle)
                {
                    let _ = Command::new("kill").args(["-KILL", &pid]).status();
                }
            }
        }
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// Polls `check` until it returns `Some`, or panics with `what` after the step timeout.
async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + STEP_TIMEOUT;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "{what} did not happen within {STEP_TIMEOUT:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The text of the element `css`, once it exists.
async fn text(client: &Client, css: &str) -> Option<String> {
    client.find(Locator::Css(css)).await.ok()?.text().await.ok()
}

/// Clicks `css`. The page redraws itself every two seconds, so an element found just
/// before a redraw may be gone when clicked: find it again and retry.
async fn click(client: &Client, css: &str) {
    eventually(&format!("a click on {css}"), || async {
        let element = client.find(Locator::Css(css)).await.ok()?;
        element.click().await.ok()
    })
    .await;
}

/// Keeps a second queue busy so the throughput chart has a line to draw.
async fn traffic(url: String) {
    let queue = RedisQueue::<u64>::connect(RedisConfig::new(url.as_str(), "thumbnails"))
        .await
        .expect("connecting");
    let mut consumer = queue.consumer().expect("a consumer");
    let mut pace = tokio::time::interval(Duration::from_millis(100));
    for round in 0_u64.. {
        pace.tick().await;
        let batch = 5 + round % 7;
        if queue.enqueue_bulk(0..batch).await.is_err() {
            return;
        }
        for _ in 0..batch.saturating_sub(1) {
            match consumer.next().await {
                Some(received) => {
                    let _ = received.delivery.ack().await;
                }
                None => return,
            }
        }
    }
}

async fn save(client: &Client, name: &str) -> PathBuf {
    let png = client.screenshot().await.expect("a screenshot");
    let path =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("crewpool-dashboard-{name}.png"));
    std::fs::write(&path, png).expect("saving the screenshot");
    println!("screenshot: {}", path.display());
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requeue_a_dead_letter_by_clicking_in_chromium() {
    let browser = Browser::start();
    let server = RedisServer::start();
    let url = server.url();
    let (_mailer, ids) = fill(&url, "mailer").await;
    let traffic = tokio::spawn(traffic(url.clone()));
    let dashboard = Served::start(&url, &["dashboard", "--sample-interval", "0.5"]);
    let base = dashboard.base.clone();

    let run = async {
        let client = browser.session().await;
        client
            .goto(&format!("{base}/"))
            .await
            .expect("opening the dashboard");

        // The overview lists the queue with its counts.
        let row = "tr[data-queue='mailer']";
        for (count, expected) in [
            ("pending", "3"),
            ("scheduled", "1"),
            ("delayed", "1"),
            ("leased", "0"),
            ("dead", "2"),
        ] {
            let css = format!("{row} td[data-count='{count}']");
            let seen = eventually(&format!("the {count} count"), || async {
                text(&client, &css).await.filter(|t| t == expected)
            })
            .await;
            assert_eq!(seen, expected);
        }
        // The chart draws the busy queue's throughput (a dozen samples, for the
        // screenshot).
        eventually("a throughput line of 12 points", || async {
            let line = client
                .find(Locator::Css(".chart svg polyline"))
                .await
                .ok()?;
            let points = line.attr("points").await.ok()??;
            (points.split(' ').count() >= 12).then_some(())
        })
        .await;
        save(&client, "overview").await;

        // Open the dead letters from the overview, then requeue one by clicking.
        click(&client, &format!("{row} td[data-count='dead'] a")).await;
        let button = format!(
            "tr[data-job-id='{}'] button[data-action='requeue']",
            ids.dead
        );
        let reason = eventually("the dead letter's reason", || async {
            text(
                &client,
                &format!("tr[data-job-id='{}'] td.reason", ids.dead),
            )
            .await
        })
        .await;
        assert_eq!(reason, "invalid address: no MX record");
        save(&client, "dead-letters").await;
        click(&client, &button).await;

        // Redis has it pending again, as a fresh job; the page shows one dead letter.
        let admin = Admin::connect(url.as_str(), "crewpool")
            .await
            .expect("an admin");
        let mailer = admin.queue("mailer").expect("the queue");
        let job = eventually("the job back in pending", || async {
            let page = mailer.jobs(JobState::Pending, 0, 100).await.ok()?;
            page.jobs.into_iter().find(|job| job.id.0 == ids.dead)
        })
        .await;
        assert_eq!(job.attempt, 1);
        assert_eq!(mailer.overview().await.expect("an overview").dead, 1);
        eventually("the dead tab's count to drop", || async {
            text(&client, "a[data-tab='dead'] .count")
                .await
                .filter(|t| t == "1")
        })
        .await;

        // The schedules tab lists the periodic schedule with its cron expression.
        click(&client, "a[data-tab='schedules']").await;
        let when = eventually("the schedule's row", || async {
            text(
                &client,
                "tr[data-schedule='nightly-digest'] td[data-field='when']",
            )
            .await
        })
        .await;
        assert_eq!(when, "cron 0 8 * * *");
        save(&client, "schedules").await;
        // The scheduled tab shows the job due in an hour with its uniqueness key.
        click(&client, "a[data-tab='scheduled']").await;
        let row = eventually("the scheduled job", || async {
            text(&client, &format!("tr[data-job-id='{}']", ids.scheduled)).await
        })
        .await;
        assert!(
            row.contains("digest:daily") && row.contains("in 59m"),
            "{row}"
        );

        client.close().await.expect("closing the session");
    };
    tokio::time::timeout(TEST_TIMEOUT, run)
        .await
        .expect("the browser test hung");
    traffic.abort();
}
