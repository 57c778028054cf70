//! `chart.svg`: one panel per workload, one bar per system, hand-written SVG.

use std::fmt::Write as _;

use crate::machine;
use crate::report::{Report, Row, kib, si};

const WIDTH: f64 = 980.0;
const LABEL_W: f64 = 150.0;
const BAR_MAX: f64 = 520.0;
const BAR_H: f64 = 18.0;
const GAP: f64 = 6.0;
const CREWPOOL: &str = "#1b7f6b";
const BASELINE: &str = "#9a9a9a";

/// Draws the report: throughput panels (jobs/s, longer is better), then memory panels
/// (resident set held, shorter is better).
pub(crate) fn chart(report: &Report) -> String {
    let mut body = String::new();
    let mut y = 84.0;
    for workload in report.workloads() {
        let rows: Vec<&Row> = report.rows_of(workload).collect();
        let memory = workload.is_memory();
        let value = |row: &Row| -> f64 {
            if row.error.is_some() {
                0.0
            } else if memory {
                row.held_kb.unwrap_or(0) as f64
            } else {
                row.jobs_per_s
            }
        };
        let max = rows.iter().map(|r| value(r)).fold(0.0, f64::max).max(1e-9);
        let title = if memory {
            format!("{workload}: resident memory held (shorter is better)")
        } else {
            format!("{workload}: jobs/s (longer is better)")
        };
        let _ = writeln!(
            body,
            r#"<text x="10" y="{y}" font-size="15" font-weight="bold">{}</text>"#,
            escape(&title)
        );
        y += 10.0;
        for row in rows {
            let width = value(row) / max * BAR_MAX;
            let colour = if row.system.is_crewpool() {
                CREWPOOL
            } else {
                BASELINE
            };
            let label = match (&row.error, memory) {
                (Some(_), _) => "failed".to_owned(),
                (None, false) => {
                    format!("{} jobs/s{}", si(row.jobs_per_s), ratio(report.ratio(row)))
                }
                (None, true) => format!(
                    "{} held, peak {}{}",
                    row.held_kb.map_or("–".to_owned(), kib),
                    kib(row.peak_rss_kb),
                    ratio(report.ratio(row))
                ),
            };
            let text_y = y + BAR_H * 0.75;
            let _ = writeln!(
                body,
                r#"<text x="{:.0}" y="{text_y:.0}" text-anchor="end">{}</text>"#,
                LABEL_W - 8.0,
                escape(row.system.name())
            );
            let _ = writeln!(
                body,
                r#"<rect x="{LABEL_W}" y="{y:.0}" width="{width:.1}" height="{BAR_H}" fill="{colour}"/>"#
            );
            let _ = writeln!(
                body,
                r#"<text x="{:.0}" y="{text_y:.0}">{}</text>"#,
                LABEL_W + width + 6.0,
                escape(&label)
            );
            y += BAR_H + GAP;
        }
        y += 28.0;
    }
    let height = y;
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height:.0}" viewBox="0 0 {WIDTH} {height:.0}" font-family="Helvetica, Arial, sans-serif" font-size="12">"#
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r#"<text x="10" y="22" font-size="17" font-weight="bold">crewpool vs baselines — {}</text>"#,
        escape(&report.command)
    );
    let _ = writeln!(
        svg,
        r##"<text x="10" y="42" fill="#555">{}</text>"##,
        escape(&machine::one_line(&report.machine))
    );
    let _ = writeln!(
        svg,
        r##"<text x="10" y="60" fill="#555">green: crewpool, grey: baselines; (×) against the best baseline of the same workload in this run</text>"##
    );
    svg.push_str(&body);
    svg.push_str("</svg>\n");
    svg
}

fn ratio(ratio: Option<f64>) -> String {
    ratio.map_or(String::new(), |r| format!("  ({r:.2}×)"))
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
