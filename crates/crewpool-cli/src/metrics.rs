//! The Prometheus text exposition (format 0.0.4) of every registered queue, read from
//! Redis on each scrape: it needs no worker running.

use std::fmt::Write as _;
use std::time::Instant;

use crewpool_redis::{Admin, JobState};

use crate::commands::{QueueRow, rows};

/// The `Content-Type` of the exposition.
pub(crate) const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Every metric: name, type, help. Their samples carry `prefix` and `queue` labels
/// (`crewpool_queue_jobs` also `state`).
const METRICS: &[(&str, &str, &str)] = &[
    (
        "crewpool_queue_jobs",
        "gauge",
        "Jobs in the queue by state: pending (waiting), scheduled (waiting for the time they were enqueued for), delayed (waiting for a retry's backoff), leased (held by a worker), dead (dead letters kept).",
    ),
    (
        "crewpool_queue_oldest_pending_age_seconds",
        "gauge",
        "How long ago the next job in line was enqueued (0 when nothing is pending).",
    ),
    (
        "crewpool_queue_processed_total",
        "counter",
        "Attempts that finished, successfully or not.",
    ),
    (
        "crewpool_queue_failed_total",
        "counter",
        "Attempts that failed (retried or dead-lettered by a worker).",
    ),
    (
        "crewpool_queue_lease_expired_total",
        "counter",
        "Jobs whose lease ran out (their worker died, stalled or dropped them).",
    ),
    (
        "crewpool_queue_missed_deadline_total",
        "counter",
        "Jobs dead-lettered as expired: not started by their deadline.",
    ),
    (
        "crewpool_queue_paused",
        "gauge",
        "Whether the queue is paused (1): no worker takes a job until it is resumed.",
    ),
    (
        "crewpool_queue_schedules",
        "gauge",
        "Periodic schedules of the queue.",
    ),
    (
        "crewpool_queue_last_connect_timestamp_seconds",
        "gauge",
        "When a process last connected to the queue (Unix time).",
    ),
];

/// The exposition of every registered queue under `admin`'s prefix.
pub(crate) async fn render(admin: &Admin) -> String {
    let started = Instant::now();
    let result = rows(admin, &[]).await;
    let mut out = String::new();
    let prefix = admin.prefix();
    let up = match &result {
        Ok(rows) => {
            write_queues(&mut out, prefix, rows);
            1
        }
        Err(error) => {
            tracing::warn!(%error, "scrape: reading the queues from Redis failed");
            0
        }
    };
    let labels = format!("prefix=\"{}\"", escape(prefix));
    let _ = writeln!(
        out,
        "# HELP crewpool_up Whether Redis answered this scrape (1) or not (0).\n\
         # TYPE crewpool_up gauge\ncrewpool_up{{{labels}}} {up}"
    );
    let _ = writeln!(
        out,
        "# HELP crewpool_scrape_duration_seconds How long reading the queues took.\n\
         # TYPE crewpool_scrape_duration_seconds gauge\n\
         crewpool_scrape_duration_seconds{{{labels}}} {}",
        started.elapsed().as_secs_f64()
    );
    out
}

fn write_queues(out: &mut String, prefix: &str, rows: &[QueueRow]) {
    for &(name, kind, help) in METRICS {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for row in rows {
            let o = &row.overview;
            let labels = format!(
                "prefix=\"{}\",queue=\"{}\"",
                escape(prefix),
                escape(&o.name)
            );
            match name {
                "crewpool_queue_jobs" => {
                    for state in JobState::ALL {
                        let _ = writeln!(
                            out,
                            "{name}{{{labels},state=\"{state}\"}} {}",
                            o.count(state)
                        );
                    }
                }
                "crewpool_queue_oldest_pending_age_seconds" => {
                    let age = o.oldest_pending_age_ms.unwrap_or(0) as f64 / 1000.0;
                    let _ = writeln!(out, "{name}{{{labels}}} {age}");
                }
                "crewpool_queue_processed_total" => {
                    let _ = writeln!(out, "{name}{{{labels}}} {}", o.processed);
                }
                "crewpool_queue_failed_total" => {
                    let _ = writeln!(out, "{name}{{{labels}}} {}", o.failed);
                }
                "crewpool_queue_lease_expired_total" => {
                    let _ = writeln!(out, "{name}{{{labels}}} {}", o.lease_expired);
                }
                "crewpool_queue_missed_deadline_total" => {
                    let _ = writeln!(out, "{name}{{{labels}}} {}", o.missed_deadline);
                }
                "crewpool_queue_paused" => {
                    let _ = writeln!(out, "{name}{{{labels}}} {}", u8::from(o.paused));
                }
                "crewpool_queue_schedules" => {
                    let _ = writeln!(out, "{name}{{{labels}}} {}", o.schedules);
                }
                _ => {
                    if let Some(at) = row.last_connect_ms {
                        let _ = writeln!(out, "{name}{{{labels}}} {}", at as f64 / 1000.0);
                    }
                }
            }
        }
    }
}

/// Escapes a label value: backslash, double quote and newline.
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn label_values_are_escaped() {
        assert_eq!(super::escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
