//! What a bench measured, as values: the figures every bench returns, their targets,
//! and the one table `hubgate bench all` prints.

use serde::{Deserialize, Serialize};

/// A bound a figure must meet.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Target {
    /// value ≥ bound (throughputs).
    AtLeast(f64),
    /// value ≤ bound (seconds).
    AtMost(f64),
    /// value < bound (memory, latency).
    Below(f64),
}

impl Target {
    pub fn met(self, value: f64) -> bool {
        match self {
            Target::AtLeast(b) => value >= b,
            Target::AtMost(b) => value <= b,
            Target::Below(b) => value < b,
        }
    }

    fn label(self) -> String {
        match self {
            Target::AtLeast(b) => format!("≥ {}", number(b)),
            Target::AtMost(b) => format!("≤ {}", number(b)),
            Target::Below(b) => format!("< {}", number(b)),
        }
    }
}

/// One measured figure of one bench on one database.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Figure {
    pub bench: String,
    /// sqlite, postgres, or "-" for a bench without a database.
    pub database: String,
    pub value: f64,
    pub unit: String,
    pub target: Option<Target>,
    /// What else the reader needs to judge the figure (sizes, p99, …).
    pub note: String,
}

impl Figure {
    pub fn new(bench: impl Into<String>, database: &str, value: f64, unit: &str) -> Self {
        Figure {
            bench: bench.into(),
            database: database.into(),
            value,
            unit: unit.into(),
            target: None,
            note: String::new(),
        }
    }

    pub fn target(mut self, t: Target) -> Self {
        self.target = Some(t);
        self
    }

    pub fn note(mut self, note: impl Into<String>) -> Self {
        self.note = note.into();
        self
    }

    /// "met", "not met", or "-" when the figure has no target.
    pub fn verdict(&self) -> &'static str {
        match self.target {
            Some(t) if t.met(self.value) => "met",
            Some(_) => "not met",
            None => "-",
        }
    }
}

/// The label of a database from a bench's `pg_admin` option.
pub fn database(pg_admin: Option<&str>) -> &'static str {
    if pg_admin.is_some() { "postgres" } else { "sqlite" }
}

/// A figure as people read it: thousands grouped, decimals only where they matter.
fn number(v: f64) -> String {
    if !v.is_finite() {
        return "-".into();
    }
    if v.abs() >= 100.0 {
        let digits = format!("{:.0}", v.abs());
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                out.push(',');
            }
            out.push(c);
        }
        if v < 0.0 { format!("-{out}") } else { out }
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// The table: one row per figure, its target beside it and whether it is met.
pub fn table(figures: &[Figure]) -> String {
    let head = ["bench", "database", "figure", "unit", "target", "", "note"];
    let rows: Vec<[String; 7]> = figures
        .iter()
        .map(|f| {
            [
                f.bench.clone(),
                f.database.clone(),
                number(f.value),
                f.unit.clone(),
                f.target.map(Target::label).unwrap_or_else(|| "-".into()),
                f.verdict().into(),
                f.note.clone(),
            ]
        })
        .collect();
    let width = |i: usize| {
        rows.iter().map(|r| r[i].chars().count()).chain(std::iter::once(head[i].chars().count())).max().unwrap_or(0)
    };
    let widths: Vec<usize> = (0..head.len()).map(width).collect();
    let line = |cells: [&str; 7]| {
        let mut s = String::new();
        for (i, cell) in cells.iter().enumerate() {
            let pad = widths[i].saturating_sub(cell.chars().count());
            // Text left, figures right.
            if i == 2 {
                s.push_str(&" ".repeat(pad));
                s.push_str(cell);
            } else if i + 1 < cells.len() {
                s.push_str(cell);
                s.push_str(&" ".repeat(pad));
            } else {
                s.push_str(cell);
            }
            if i + 1 < cells.len() {
                s.push_str("  ");
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = line(head);
    for r in &rows {
        out.push_str(&line([&r[0], &r[1], &r[2], &r[3], &r[4], &r[5], &r[6]]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_tell_met_from_not_met() {
        let mail = Figure::new("mail ingest", "postgres", 1_999.0, "messages/s").target(Target::AtLeast(2_000.0));
        assert_eq!(mail.verdict(), "not met");
        let mail = Figure { value: 2_000.0, ..mail };
        assert_eq!(mail.verdict(), "met");
        let secs = Figure::new("month workbook", "-", 6.0, "s").target(Target::AtMost(6.0));
        assert_eq!(secs.verdict(), "met");
        assert_eq!(Figure { value: 6.01, ..secs }.verdict(), "not met");
        // "< 100 MB": exactly 100 MB is over.
        let mem = Figure::new("month workbook", "-", 100.0, "MB peak").target(Target::Below(100.0));
        assert_eq!(mem.verdict(), "not met");
        assert_eq!(Figure::new("sync", "sqlite", 5.0, "tx/s").verdict(), "-");
    }

    #[test]
    fn the_table_lines_up_every_row_with_its_target() {
        let t = table(&[
            Figure::new("queue, pipelined", "sqlite", 31_512.4, "jobs/s")
                .target(Target::AtLeast(50_000.0))
                .note("20,000 jobs"),
            Figure::new("reconciliation", "-", 2.456, "s").target(Target::AtMost(3.0)),
        ]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("bench"));
        assert!(lines[1].contains("31,512  jobs/s  ≥ 50,000  not met  20,000 jobs"), "{t}");
        assert!(lines[2].contains("2.46  s       ≤ 3.00    met"), "{t}");
        // The figure column ends at the same place on every row.
        let end = |l: &str, f: &str| l.find(f).map(|i| l[..i + f.len()].chars().count());
        assert_eq!(end(lines[1], "31,512"), end(lines[2], "2.46"));
    }
}
