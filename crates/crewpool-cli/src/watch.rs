//! `crewpool watch`: the queues table, refreshed, with rates since the last refresh.

use std::collections::HashMap;
use std::io::{IsTerminal as _, Write as _};
use std::time::Duration;

use crewpool_redis::Admin;
use serde::Serialize;

use crate::commands::{QueueRow, rows};
use crate::error::Result;
use crate::sampler::rate;
use crate::table::{self, Table, num, text};

/// One queue in one refresh, for `--json`.
#[derive(Debug, Serialize)]
struct WatchRow<'a> {
    #[serde(flatten)]
    row: &'a QueueRow,
    /// Attempts finished per second since the last refresh (absent on the first).
    processed_per_s: Option<f64>,
    /// Failed attempts per second since the last refresh.
    failed_per_s: Option<f64>,
}

/// Refreshes every `interval` until Ctrl-C, or `iterations` refreshes.
pub(crate) async fn run(
    admin: &Admin,
    only: &[String],
    interval: Duration,
    iterations: Option<u64>,
    json: bool,
) -> Result<()> {
    let terminal = std::io::stdout().is_terminal() && !json;
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut previous: HashMap<String, (u64, u64, u64)> = HashMap::new();
    let mut done = 0_u64;
    while iterations.is_none_or(|n| done < n) {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
        let rows = rows(admin, only).await?;
        let rates: Vec<(Option<f64>, Option<f64>)> = rows
            .iter()
            .map(|row| {
                let o = &row.overview;
                previous
                    .get(&o.name)
                    .map_or((None, None), |&(at, processed, failed)| {
                        let elapsed = o.now_ms.saturating_sub(at);
                        (
                            rate(processed, o.processed, elapsed),
                            rate(failed, o.failed, elapsed),
                        )
                    })
            })
            .collect();
        previous = rows
            .iter()
            .map(|row| {
                let o = &row.overview;
                (o.name.clone(), (o.now_ms, o.processed, o.failed))
            })
            .collect();
        let mut out = std::io::stdout().lock();
        if json {
            let rows: Vec<WatchRow<'_>> = rows
                .iter()
                .zip(&rates)
                .map(|(row, &(processed_per_s, failed_per_s))| WatchRow {
                    row,
                    processed_per_s,
                    failed_per_s,
                })
                .collect();
            serde_json::to_writer(&mut out, &rows).map_err(std::io::Error::other)?;
            writeln!(out)?;
        } else {
            if terminal {
                // Home, then clear the screen: the table stays in place.
                write!(out, "\x1b[H\x1b[2J")?;
            } else if done > 0 {
                writeln!(out)?;
            }
            writeln!(
                out,
                "crewpool watch: {} on {} every {:?}",
                admin.prefix(),
                admin.url(),
                interval
            )?;
            out.write_all(render(&rows, &rates).as_bytes())?;
        }
        out.flush()?;
        done += 1;
    }
    Ok(())
}

fn per_second(rate: Option<f64>) -> String {
    rate.map_or_else(|| "-".to_owned(), |rate| format!("{rate:.1}"))
}

fn render(rows: &[QueueRow], rates: &[(Option<f64>, Option<f64>)]) -> String {
    let mut table = Table::new(&[
        "QUEUE",
        "PENDING",
        "SCHEDULED",
        "DELAYED",
        "LEASED",
        "DEAD",
        "OLDEST",
        "PROCESSED/S",
        "FAILED/S",
        "PROCESSED",
        "FAILED",
    ]);
    for (row, &(processed, failed)) in rows.iter().zip(rates) {
        let o = &row.overview;
        table.row(vec![
            text(&o.name),
            num(o.pending),
            num(o.scheduled),
            num(o.delayed),
            num(o.leased),
            num(o.dead),
            table::Cell::Num(
                o.oldest_pending_age_ms
                    .map_or_else(|| "-".to_owned(), table::duration_ms),
            ),
            table::Cell::Num(per_second(processed)),
            table::Cell::Num(per_second(failed)),
            num(o.processed),
            num(o.failed),
        ]);
    }
    table.render()
}
