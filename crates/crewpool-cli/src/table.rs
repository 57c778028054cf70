//! Plain-text tables and human durations for the terminal.

use std::fmt::Write as _;

/// A table: a header row, then rows; numbers are right-aligned, text left-aligned.
#[derive(Debug, Default)]
pub(crate) struct Table {
    header: Vec<&'static str>,
    rows: Vec<Vec<Cell>>,
}

/// One cell.
#[derive(Debug)]
pub(crate) enum Cell {
    /// Right-aligned.
    Num(String),
    /// Left-aligned.
    Text(String),
}

impl Cell {
    fn text(&self) -> &str {
        match self {
            Cell::Num(text) | Cell::Text(text) => text,
        }
    }
}

impl Table {
    pub(crate) fn new(header: &[&'static str]) -> Self {
        Table {
            header: header.to_vec(),
            rows: Vec::new(),
        }
    }

    pub(crate) fn row(&mut self, cells: Vec<Cell>) {
        self.rows.push(cells);
    }

    /// The table, every line ending in a newline; the last column is not padded.
    pub(crate) fn render(&self) -> String {
        let columns = self.header.len();
        let mut widths: Vec<usize> = self.header.iter().map(|h| width(h)).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate().take(columns) {
                widths[i] = widths[i].max(width(cell.text()));
            }
        }
        let mut out = String::new();
        let header: Vec<Cell> = self
            .header
            .iter()
            .map(|h| Cell::Text((*h).to_owned()))
            .collect();
        for row in std::iter::once(&header).chain(&self.rows) {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate().take(columns) {
                let pad = widths[i].saturating_sub(width(cell.text()));
                let last = i + 1 == columns;
                if i > 0 {
                    line.push_str("  ");
                }
                match cell {
                    Cell::Num(text) => {
                        line.push_str(&" ".repeat(pad));
                        line.push_str(text);
                    }
                    Cell::Text(text) => {
                        line.push_str(text);
                        if !last {
                            line.push_str(&" ".repeat(pad));
                        }
                    }
                }
            }
            let _ = writeln!(out, "{}", line.trim_end());
        }
        out
    }
}

fn width(text: &str) -> usize {
    text.chars().count()
}

/// A number cell.
pub(crate) fn num(n: impl ToString) -> Cell {
    Cell::Num(n.to_string())
}

/// A text cell.
pub(crate) fn text(text: impl Into<String>) -> Cell {
    Cell::Text(text.into())
}

/// `850ms`, `12.3s`, `4m05s`, `3h12m`, `2d04h`.
pub(crate) fn duration_ms(ms: u64) -> String {
    let seconds = ms / 1000;
    match ms {
        0..1_000 => format!("{ms}ms"),
        1_000..60_000 => format!("{:.1}s", ms as f64 / 1000.0),
        60_000..3_600_000 => format!("{}m{:02}s", seconds / 60, seconds % 60),
        3_600_000..86_400_000 => format!("{}h{:02}m", seconds / 3600, seconds / 60 % 60),
        _ => format!("{}d{:02}h", seconds / 86_400, seconds / 3600 % 24),
    }
}

/// How long before `now_ms` `at_ms` was, as `4m05s ago` (or `in 3s` for the future).
pub(crate) fn ago(at_ms: u64, now_ms: u64) -> String {
    if at_ms <= now_ms {
        format!("{} ago", duration_ms(now_ms - at_ms))
    } else {
        format!("in {}", duration_ms(at_ms - now_ms))
    }
}

/// How long after `now_ms` `at_ms` is, as `in 3s` (or `4m05s ago` when past).
pub(crate) fn until(at_ms: u64, now_ms: u64) -> String {
    ago(at_ms, now_ms)
}

/// `text` cut to `max` characters, with `…` when cut.
pub(crate) fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligns_numbers_right_and_text_left() {
        let mut table = Table::new(&["QUEUE", "PENDING", "NOTE"]);
        table.row(vec![text("emails"), num(1200), text("ok")]);
        table.row(vec![text("a"), num(3), text("")]);
        assert_eq!(
            table.render(),
            "QUEUE   PENDING  NOTE\nemails     1200  ok\na             3\n"
        );
    }

    #[test]
    fn durations_read_like_a_person_writes_them() {
        assert_eq!(duration_ms(850), "850ms");
        assert_eq!(duration_ms(12_340), "12.3s");
        assert_eq!(duration_ms(245_000), "4m05s");
        assert_eq!(duration_ms(3 * 3_600_000 + 12 * 60_000), "3h12m");
        assert_eq!(duration_ms(2 * 86_400_000 + 4 * 3_600_000), "2d04h");
        assert_eq!(ago(1_000, 6_000), "5.0s ago");
        assert_eq!(until(9_000, 6_000), "in 3.0s");
        assert_eq!(shorten("abcdef", 4), "abc…");
    }
}
