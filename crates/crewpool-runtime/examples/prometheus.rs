//! A pool's metrics exported as Prometheus text.
//!
//! ```text
//! cargo run -p crewpool-runtime --example prometheus
//! ```
//!
//! Installs the Prometheus recorder for the `metrics` facade, runs a pool with
//! `.metrics()` on (some jobs fail, one panics, one times out and is retried), and prints
//! what a `/metrics` endpoint would serve. The pool's warnings about those jobs go to
//! standard error (`RUST_LOG` chooses more or less). In a service, expose the same text
//! over HTTP (e.g. with the exporter's own listener, `PrometheusBuilder::install`).

use std::time::Duration;

use crewpool_flume::FlumeQueue;
use crewpool_runtime::{PoolBuilder, RetryPolicy};
use metrics_exporter_prometheus::PrometheusBuilder;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// Prints the library's log on standard error: `RUST_LOG` directives (`target=level`,
/// e.g. `RUST_LOG=debug`), by default warnings and errors.
fn init_logging() {
    let warnings = || Targets::new().with_default(LevelFilter::WARN);
    let filter = match std::env::var("RUST_LOG") {
        Ok(directives) => directives.parse::<Targets>().unwrap_or_else(|error| {
            eprintln!("ignoring RUST_LOG={directives:?} ({error}); showing warnings");
            warnings()
        }),
        Err(_) => warnings(),
    };
    tracing_subscriber::fmt()
        .with_max_level(LevelFilter::TRACE)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .finish()
        .with(filter)
        .init();
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    init_logging();
    // Quiet the expected panic below.
    std::panic::set_hook(Box::new(|_| {}));
    let prometheus = PrometheusBuilder::new().install_recorder()?;

    let pool = PoolBuilder::new()
        .name("reports")
        .workers(4)
        .queue(FlumeQueue::bounded(64))
        .metrics()
        .timeout(Duration::from_millis(200))
        .retry(
            RetryPolicy::exponential(2)
                .base_delay(Duration::from_millis(10))
                .jitter(false),
        )
        .build(|n: u64| async move {
            tokio::time::sleep(Duration::from_millis(n % 7)).await;
            match n {
                13 => panic!("unlucky report"),
                99 => {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    Ok(n)
                }
                n if n % 25 == 0 => Err(format!("report {n} has no data")),
                n => Ok(n),
            }
        })?;
    for n in 0..100 {
        pool.spawn(n).await?;
    }
    let report = pool.shutdown().await;
    println!("# pool: {}\n", report.stats);
    print!("{}", prometheus.render());
    Ok(())
}
