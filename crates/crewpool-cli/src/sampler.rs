//! Throughput over time: the dashboard samples every queue's totals at an interval
//! and keeps the last minutes, from which it serves rates per interval.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crewpool_redis::Admin;
use serde::Serialize;

use crate::commands::rows;

/// How much history the chart shows.
const HISTORY: Duration = Duration::from_secs(15 * 60);

/// One queue's totals at one moment.
#[derive(Debug, Clone, Copy)]
struct Totals {
    processed: u64,
    failed: u64,
}

/// Every queue's totals at one moment (Redis clock).
#[derive(Debug, Clone)]
struct Sample {
    at_ms: u64,
    queues: HashMap<String, Totals>,
}

/// The samples of the last minutes, shared by the sampling task and the handlers.
#[derive(Debug, Clone)]
pub(crate) struct Samples {
    inner: Arc<Mutex<VecDeque<Sample>>>,
    interval: Duration,
}

/// One point of a queue's throughput: the rates over the interval ending at `at_ms`.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub(crate) struct Point {
    pub(crate) at_ms: u64,
    pub(crate) processed_per_s: f64,
    pub(crate) failed_per_s: f64,
}

/// What `/api/throughput` serves.
#[derive(Debug, Serialize)]
pub(crate) struct Throughput {
    pub(crate) interval_ms: u64,
    pub(crate) history_ms: u64,
    pub(crate) series: HashMap<String, Vec<Point>>,
}

/// Per-second rate of a counter between two readings; `None` when it went down (the
/// queue was purged) or no time passed.
pub(crate) fn rate(before: u64, after: u64, elapsed_ms: u64) -> Option<f64> {
    (after >= before && elapsed_ms > 0)
        .then(|| (after - before) as f64 * 1000.0 / elapsed_ms as f64)
}

impl Samples {
    pub(crate) fn new(interval: Duration) -> Self {
        Samples {
            inner: Arc::new(Mutex::new(VecDeque::new())),
            interval,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Sample>> {
        // Every critical section is a push, a pop or a read: a panic cannot leave it
        // half-done.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Samples every registered queue each interval, until the process ends. A failed
    /// read is logged and skipped (the chart shows a gap).
    pub(crate) async fn run(self, admin: Admin) {
        let keep = (HISTORY.as_millis() / self.interval.as_millis().max(1)) as usize + 1;
        let mut ticker = tokio::time::interval(self.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            match rows(&admin, &[]).await {
                Ok(rows) => {
                    let Some(at_ms) = rows.first().map(|row| row.overview.now_ms) else {
                        continue;
                    };
                    let queues = rows
                        .into_iter()
                        .map(|row| {
                            let totals = Totals {
                                processed: row.overview.processed,
                                failed: row.overview.failed,
                            };
                            (row.overview.name, totals)
                        })
                        .collect();
                    let mut samples = self.lock();
                    samples.push_back(Sample { at_ms, queues });
                    while samples.len() > keep {
                        samples.pop_front();
                    }
                }
                Err(error) => tracing::warn!(%error, "sampling the queues failed"),
            }
        }
    }

    /// The rates per interval of every queue sampled.
    pub(crate) fn throughput(&self) -> Throughput {
        let samples = self.lock();
        let mut series: HashMap<String, Vec<Point>> = HashMap::new();
        for (before, after) in samples.iter().zip(samples.iter().skip(1)) {
            let elapsed = after.at_ms.saturating_sub(before.at_ms);
            for (name, now) in &after.queues {
                let Some(then) = before.queues.get(name) else {
                    continue;
                };
                if let (Some(processed_per_s), Some(failed_per_s)) = (
                    rate(then.processed, now.processed, elapsed),
                    rate(then.failed, now.failed, elapsed),
                ) {
                    series.entry(name.clone()).or_default().push(Point {
                        at_ms: after.at_ms,
                        processed_per_s,
                        failed_per_s,
                    });
                }
            }
        }
        Throughput {
            interval_ms: self.interval.as_millis() as u64,
            history_ms: HISTORY.as_millis() as u64,
            series,
        }
    }

    #[cfg(test)]
    fn push(&self, at_ms: u64, queue: &str, processed: u64, failed: u64) {
        let mut queues = HashMap::new();
        queues.insert(queue.to_owned(), Totals { processed, failed });
        self.lock().push_back(Sample { at_ms, queues });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_per_second_between_samples_and_skip_resets() {
        let samples = Samples::new(Duration::from_secs(5));
        samples.push(10_000, "q", 100, 10);
        samples.push(15_000, "q", 600, 20);
        samples.push(20_000, "q", 0, 0); // purged: no point
        samples.push(25_000, "q", 50, 0);
        let series = &samples.throughput().series["q"];
        assert_eq!(
            series,
            &[
                Point {
                    at_ms: 15_000,
                    processed_per_s: 100.0,
                    failed_per_s: 2.0
                },
                Point {
                    at_ms: 25_000,
                    processed_per_s: 10.0,
                    failed_per_s: 0.0
                },
            ]
        );
    }
}
