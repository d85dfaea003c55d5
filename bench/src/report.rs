//! Turning rounds into results: medians over rounds, ratios to the raw
//! rusqlite baseline at the same SQLite version, the printed table and
//! `target/bench/results.json`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use driftwood_bench_harness::{BenchResult, Mode, RoundResult, Workload};
use serde::Serialize;

/// One line of `results.json`: the medians of one (mode, workload,
/// implementation) over its rounds.
#[derive(Debug, Clone, Serialize)]
pub struct Record {
    /// Workload's stable name.
    pub workload: String,
    /// Implementation's name.
    pub implementation: String,
    /// Median over rounds of operations (rows, for `bulk_insert_100k`) per second.
    pub ops_per_sec: f64,
    /// Median over rounds of each round's median operation latency, µs.
    pub p50_us: f64,
    /// Median over rounds of each round's 99th percentile latency, µs.
    pub p99_us: f64,
    /// `sqlite_version()` through the implementation's own connection.
    pub sqlite_version: String,
    /// `file` or `memory`.
    pub mode: Mode,
    /// The raw rusqlite implementation at the same SQLite version.
    pub baseline: String,
    /// Baseline's `ops_per_sec` ÷ this `ops_per_sec`: how many times slower
    /// than raw rusqlite (1.0 for the baseline; absent if the baseline failed).
    pub ratio_to_raw: Option<f64>,
    /// This `p50_us` ÷ the baseline's `p50_us`: the same comparison on median
    /// latency, which outliers (other processes on the machine) barely move.
    pub p50_ratio_to_raw: Option<f64>,
    /// The lowest and highest `ratio_to_raw` of single rounds (each round's
    /// baseline ÷ this, rounds being interleaved): how far a figure moves
    /// between rounds, to tell a real gap from noise.
    pub ratio_spread: Option<(f64, f64)>,
    /// `ops` or `rows` (the unit of `ops_per_sec`).
    pub unit: String,
    /// Timed operations per round.
    pub iterations: u64,
    /// Each round's `ops_per_sec`, in round order.
    pub rounds_ops_per_sec: Vec<f64>,
}

/// The median (mean of the middle two for an even count).
pub fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Medians and ratios. `baselines` maps implementation → its baseline;
/// `order` is the display order of implementations.
pub fn aggregate(
    rounds: &[RoundResult],
    baselines: &BTreeMap<String, String>,
    order: &[String],
) -> Vec<Record> {
    let mut groups: BTreeMap<(Mode, usize, usize), Vec<&RoundResult>> = BTreeMap::new();
    for r in rounds {
        let w = Workload::from_name(&r.workload).map_or(usize::MAX, |w| w as usize);
        let i = order
            .iter()
            .position(|n| *n == r.implementation)
            .unwrap_or(usize::MAX);
        groups.entry((r.mode, w, i)).or_default().push(r);
    }
    let mut records: Vec<Record> = groups
        .values()
        .map(|rs| {
            let first = rs[0];
            let ops: Vec<f64> = rs.iter().map(|r| r.ops_per_sec).collect();
            let workload = Workload::from_name(&first.workload);
            Record {
                workload: first.workload.clone(),
                implementation: first.implementation.clone(),
                ops_per_sec: median(&ops),
                p50_us: median(&rs.iter().map(|r| r.p50_us).collect::<Vec<_>>()),
                p99_us: median(&rs.iter().map(|r| r.p99_us).collect::<Vec<_>>()),
                sqlite_version: first.sqlite_version.clone(),
                mode: first.mode,
                baseline: baselines
                    .get(&first.implementation)
                    .cloned()
                    .unwrap_or_default(),
                ratio_to_raw: None,
                p50_ratio_to_raw: None,
                ratio_spread: None,
                unit: workload.map_or("ops", |w| w.unit()).to_owned(),
                iterations: first.iterations,
                rounds_ops_per_sec: ops,
            }
        })
        .collect();
    let base: BTreeMap<(Mode, String, String), Record> = records
        .iter()
        .map(|r| {
            let key = (r.mode, r.workload.clone(), r.implementation.clone());
            (key, r.clone())
        })
        .collect();
    for r in &mut records {
        if let Some(baseline) = base.get(&(r.mode, r.workload.clone(), r.baseline.clone())) {
            r.ratio_to_raw = Some(baseline.ops_per_sec / r.ops_per_sec);
            r.p50_ratio_to_raw = Some(r.p50_us / baseline.p50_us);
            r.ratio_spread = spread(&baseline.rounds_ops_per_sec, &r.rounds_ops_per_sec);
        }
    }
    records
}

/// The lowest and highest of the per-round ratios `baseline[i] / this[i]`.
fn spread(baseline: &[f64], this: &[f64]) -> Option<(f64, f64)> {
    let ratios: Vec<f64> = baseline
        .iter()
        .zip(this)
        .map(|(base, ops)| base / ops)
        .collect();
    let low = ratios.iter().copied().reduce(f64::min)?;
    let high = ratios.iter().copied().reduce(f64::max)?;
    Some((low, high))
}

fn rate(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.2} M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.1} k", v / 1e3)
    } else {
        format!("{v:.1}")
    }
}

fn micros(v: f64) -> String {
    if v >= 1e5 {
        format!("{:.0}", v)
    } else if v >= 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// The results table, one block per mode, one line per (workload, implementation).
pub fn table(records: &[Record]) -> String {
    let mut s = String::new();
    let mut mode = None;
    let mut workload = String::new();
    for r in records {
        if mode != Some(r.mode) {
            mode = Some(r.mode);
            workload.clear();
            let _ = writeln!(
                s,
                "\nmode: {} — medians of rounds. `× raw`: raw rusqlite's throughput at the \
                 same SQLite version ÷ this one's (1.00 = the physical limit, 2.00 = half as \
                 fast); `spread`: lowest–highest `× raw` of single rounds; `p50 × raw`: \
                 this p50 ÷ raw's p50",
                r.mode.name()
            );
            let _ = writeln!(
                s,
                "{:<20} {:<18} {:<8} {:>14} {:>11} {:>11} {:>7} {:>11} {:>9}",
                "workload",
                "implementation",
                "sqlite",
                "throughput",
                "p50 µs",
                "p99 µs",
                "× raw",
                "spread",
                "p50 × raw"
            );
        }
        if r.workload != workload {
            workload = r.workload.clone();
            let _ = writeln!(s, "{}", "-".repeat(118));
        }
        let _ = writeln!(
            s,
            "{:<20} {:<18} {:<8} {:>14} {:>11} {:>11} {:>7} {:>11} {:>9}",
            r.workload,
            r.implementation,
            r.sqlite_version,
            format!("{} {}/s", rate(r.ops_per_sec), r.unit),
            micros(r.p50_us),
            micros(r.p99_us),
            r.ratio_to_raw.map_or("-".to_owned(), |x| format!("{x:.2}")),
            r.ratio_spread
                .map_or("-".to_owned(), |(lo, hi)| format!("{lo:.2}–{hi:.2}")),
            r.p50_ratio_to_raw
                .map_or("-".to_owned(), |x| format!("{x:.2}")),
        );
    }
    s
}

/// Writes `records` as a pretty JSON list to `path`, creating its directories.
pub fn write_json(path: &Path, records: &[Record]) -> BenchResult<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, serde_json::to_string_pretty(records)? + "\n")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round(imp: &str, ops: f64) -> RoundResult {
        RoundResult {
            implementation: imp.into(),
            workload: "trivial_query_1".into(),
            mode: Mode::File,
            sqlite_version: "3.0.0".into(),
            iterations: 10,
            total_ns: 1,
            ops_per_sec: ops,
            p50_us: 1.0,
            p99_us: 2.0,
        }
    }

    #[test]
    fn medians_and_ratios() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[1.0, 2.0]), 1.5);
        let rounds = [
            round("rusqlite", 100.0),
            round("rusqlite", 300.0),
            round("rusqlite", 200.0),
            round("x", 50.0),
        ];
        let baselines = BTreeMap::from([
            ("rusqlite".to_owned(), "rusqlite".to_owned()),
            ("x".to_owned(), "rusqlite".to_owned()),
        ]);
        let order = ["rusqlite".to_owned(), "x".to_owned()];
        let recs = aggregate(&rounds, &baselines, &order);
        assert_eq!(recs[0].ops_per_sec, 200.0);
        assert_eq!(recs[0].ratio_to_raw, Some(1.0));
        assert_eq!(recs[1].ratio_to_raw, Some(4.0));
        // One round of x against each of the baseline's rounds in order.
        assert_eq!(recs[1].ratio_spread, Some((2.0, 2.0)));
        assert_eq!(recs[0].ratio_spread, Some((1.0, 1.0)));
        assert_eq!(recs[1].p50_ratio_to_raw, Some(1.0));
    }
}
