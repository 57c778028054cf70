//! The worker-pool pattern, end to end: 1,000 jobs, 10 workers, a bounded queue,
//! results gathered, queue depth shown while it runs, graceful shutdown, a summary.
//!
//! ```text
//! cargo run --release --example quickstart
//! ```
//!
//! The library's warnings go to standard error (`RUST_LOG` chooses more or less).

#[path = "logging/mod.rs"]
mod logging;

use std::time::{Duration, Instant};

use crewpool::flume::FlumeQueue;
use crewpool::{JobError, PoolBuilder};

const JOBS: u64 = 1_000;
const WORKERS: usize = 10;
const QUEUE_CAPACITY: usize = 100;

/// A job: check one "order". Each takes a few milliseconds of (simulated) I/O; one in
/// a hundred is rejected, to show failures being collected too.
async fn check_order(order: u64) -> Result<u64, String> {
    tokio::time::sleep(Duration::from_millis(2 + order % 5)).await;
    if order % 100 == 42 {
        return Err(format!("order {order} failed validation"));
    }
    Ok(order * 3)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    logging::init();
    let pool = PoolBuilder::new()
        .name("orders")
        .workers(WORKERS)
        .queue(FlumeQueue::bounded(QUEUE_CAPACITY))
        .results()
        .build(check_order)?;
    let mut results = pool.take_results().expect("built with results()");
    println!("{WORKERS} workers, queue capacity {QUEUE_CAPACITY}, {JOBS} jobs");

    let started = Instant::now();
    // Gather results as they come, from the pool-wide results stream.
    let collector = tokio::spawn(async move {
        let (mut ok, mut failed, mut total) = (0_u64, Vec::new(), 0_u64);
        while let Some(result) = results.recv().await {
            match result.outcome {
                Ok(value) => {
                    ok += 1;
                    total += value;
                }
                Err(JobError::Failed(reason)) => failed.push(reason),
                Err(other) => failed.push(other.to_string()),
            }
        }
        (ok, failed, total)
    });

    let monitor_pool = &pool;
    let monitor = async {
        let mut tick = tokio::time::interval(Duration::from_millis(50));
        loop {
            tick.tick().await;
            let stats = monitor_pool.stats();
            println!(
                "  {:>5.0} ms  queued {:>3}  running {:>2}  done {:>4}",
                started.elapsed().as_secs_f64() * 1e3,
                stats.queued,
                stats.running,
                stats.finished()
            );
            if stats.workers == 0 {
                break;
            }
        }
    };
    let produce = async {
        for order in 0..JOBS {
            // Waits whenever the queue is full: backpressure.
            pool.spawn(order).await?;
        }
        let report = pool.shutdown().await;
        anyhow::Ok(report)
    };
    let (report, ()) = tokio::join!(produce, monitor);
    let report = report?;
    let (ok, failed, total) = collector.await?;

    let elapsed = started.elapsed();
    println!(
        "\ndone in {:.0} ms ({:.0} jobs/s): {ok} ok, {} failed, sum of results {total}",
        elapsed.as_secs_f64() * 1e3,
        JOBS as f64 / elapsed.as_secs_f64(),
        failed.len()
    );
    for reason in &failed {
        println!("  failed: {reason}");
    }
    println!("shutdown: {report}");
    anyhow::ensure!(report.is_complete(), "graceful shutdown left jobs behind");
    anyhow::ensure!(
        ok + failed.len() as u64 == JOBS,
        "every job reports exactly once"
    );
    Ok(())
}
