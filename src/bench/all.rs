//! `hubgate bench all`: every bench in one run on this machine, each in a process of
//! its own (peak memory is per process, so a bench's figure must not carry another's
//! peak), their figures gathered into one table.

use std::process::Command;

use anyhow::Context;

use super::figures::{Figure, Target};

/// The benches and their arguments, full size or `quick`.
fn plan(quick: bool) -> Vec<(&'static str, Vec<&'static str>)> {
    let full = [
        ("web", vec!["--requests", "100000", "--transactions", "1000000", "--mails", "2000", "--seconds", "8"]),
        ("mail", vec!["--count", "10000"]),
        ("queue", vec!["--jobs", "20000", "--mails", "2000"]),
        ("sync", vec!["--transactions", "100000"]),
        ("notify", vec!["--rate", "200", "--seconds", "30"]),
        ("report", vec!["--rows", "1000000"]),
        ("reconcile", vec!["--rows", "1000000"]),
        ("statement", vec!["--rows", "200000"]),
    ];
    let quick_sizes = [
        ("web", vec!["--requests", "2000", "--transactions", "20000", "--mails", "200", "--seconds", "3"]),
        ("mail", vec!["--count", "2000"]),
        ("queue", vec!["--jobs", "5000", "--mails", "500"]),
        ("sync", vec!["--transactions", "20000"]),
        ("notify", vec!["--rate", "100", "--seconds", "5"]),
        ("report", vec!["--rows", "100000"]),
        ("reconcile", vec!["--rows", "100000"]),
        ("statement", vec!["--rows", "50000"]),
    ];
    if quick { quick_sizes.into() } else { full.into() }
}

/// Which benches take `--pg`.
fn has_database(bench: &str) -> bool {
    matches!(bench, "web" | "mail" | "queue" | "sync" | "notify" | "report" | "reconcile")
}

/// Runs every bench as `hubgate bench <name> …` (this same binary) and gathers their
/// figures; a bench that fails is a row saying so, and the others still run.
pub fn run(pg: Option<&str>, quick: bool) -> anyhow::Result<Vec<Figure>> {
    let exe = std::env::current_exe().context("bench all: cannot find its own binary")?;
    let dir = tempfile::tempdir()?;
    let mut figures = Vec::new();
    for (bench, args) in plan(quick) {
        let out = dir.path().join(format!("{bench}.json"));
        let mut cmd = Command::new(&exe);
        cmd.args(["bench", bench]).args(&args).arg("--figures-out").arg(&out);
        // Each child is told the database explicitly: none when `all` runs without one,
        // whatever HUBGATE_TEST_PG says.
        cmd.env_remove("HUBGATE_TEST_PG");
        if let (Some(url), true) = (pg, has_database(bench)) {
            cmd.args(["--pg", url]);
        }
        eprintln!("bench all: {bench} {}", args.join(" "));
        let status = cmd.status().with_context(|| format!("bench all: cannot start the {bench} bench"))?;
        let read = std::fs::read(&out).ok().and_then(|b| serde_json::from_slice::<Vec<Figure>>(&b).ok());
        match (status.success(), read) {
            (true, Some(f)) => figures.extend(f),
            _ => figures.push(failed(bench, &status.to_string())),
        }
    }
    Ok(figures)
}

/// The row of a bench that gave no figures: never "met".
fn failed(bench: &str, why: &str) -> Figure {
    Figure::new(bench, "-", f64::NAN, "").target(Target::AtLeast(0.0)).note(format!("the bench failed: {why}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_bench_is_a_row_that_is_not_met() {
        let f = failed("queue", "exit status: 1");
        assert_eq!(f.verdict(), "not met");
        let table = super::super::figures::table(&[f]);
        let row = table.lines().nth(1).unwrap_or_default();
        assert!(row.starts_with("queue") && row.contains("not met  the bench failed: exit status: 1"), "{table}");
    }

    #[test]
    fn every_bench_of_the_issue_is_run_at_both_sizes() {
        for quick in [false, true] {
            let names: Vec<&str> = plan(quick).into_iter().map(|(b, _)| b).collect();
            assert_eq!(names, ["web", "mail", "queue", "sync", "notify", "report", "reconcile", "statement"]);
        }
    }
}
