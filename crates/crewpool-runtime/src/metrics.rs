//! The pool's metrics through the [`metrics`] facade, labelled by pool name.
//!
//! Off unless [`PoolBuilder::metrics`](crate::PoolBuilder::metrics) turns them on;
//! handles are registered once per pool, so recording is a lookup-free call into
//! whatever recorder the application installed (none: a no-op).
//!
//! The names and meanings are listed in the crate docs ("Metrics").

use std::time::{Duration, Instant};

use metrics::{Counter, Gauge, Histogram, counter, gauge, histogram};

use crate::stats::Finish;

#[derive(Debug)]
pub(crate) struct PoolMetrics {
    pub(crate) submitted: Counter,
    pub(crate) completed: Counter,
    pub(crate) failed: Counter,
    pub(crate) panicked: Counter,
    pub(crate) timed_out: Counter,
    pub(crate) retried: Counter,
    pub(crate) cancelled: Counter,
    pub(crate) queue_depth: Gauge,
    pub(crate) running: Gauge,
    pub(crate) workers: Gauge,
    pub(crate) wait: Histogram,
    pub(crate) run: Histogram,
}

impl PoolMetrics {
    pub(crate) fn new(pool: &str) -> Self {
        let label = [("pool", pool.to_owned())];
        PoolMetrics {
            submitted: counter!("crewpool_jobs_submitted_total", &label),
            completed: counter!("crewpool_jobs_completed_total", &label),
            failed: counter!("crewpool_jobs_failed_total", &label),
            panicked: counter!("crewpool_jobs_panicked_total", &label),
            timed_out: counter!("crewpool_jobs_timed_out_total", &label),
            retried: counter!("crewpool_jobs_retried_total", &label),
            cancelled: counter!("crewpool_jobs_cancelled_total", &label),
            queue_depth: gauge!("crewpool_queue_depth", &label),
            running: gauge!("crewpool_jobs_running", &label),
            workers: gauge!("crewpool_workers", &label),
            wait: histogram!("crewpool_job_wait_seconds", &label),
            run: histogram!("crewpool_job_run_seconds", &label),
        }
    }

    pub(crate) fn record_wait(&self, wait: Duration) {
        self.wait.record(wait.as_secs_f64());
    }

    pub(crate) fn record_run(&self, run: Duration) {
        self.run.record(run.as_secs_f64());
    }

    /// A job's books were closed with `finish`; its final attempt started at `started`.
    pub(crate) fn finished(&self, finish: Finish, started: Option<Instant>) {
        let counter = match finish {
            Finish::Completed => Some(&self.completed),
            Finish::Failed => Some(&self.failed),
            Finish::Panicked => Some(&self.panicked),
            Finish::TimedOut => Some(&self.timed_out),
            Finish::Cancelled => Some(&self.cancelled),
            Finish::Interrupted | Finish::Retried => None,
        };
        if let Some(counter) = counter {
            counter.increment(1);
        }
        if let Some(started) = started {
            self.record_run(started.elapsed());
        }
    }
}
