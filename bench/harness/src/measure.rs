//! The measurement loop: one round of one workload on one implementation
//! (setup, settings check, warm-up, timed operations, teardown) and the
//! statistics of that round. The runner (in-process implementations) and every
//! peer binary run this same code.

use std::path::PathBuf;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::data::Dataset;
use crate::implementation::{BenchResult, Implementation, Setup, Target};
use crate::workload::Workload;

/// Where the databases of a run live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// A database file in a fresh temporary directory, WAL, `synchronous=NORMAL`.
    File,
    /// `:memory:`, same pragmas (journal mode reads back as `memory`).
    Memory,
}

impl Mode {
    /// `file` or `memory`.
    pub fn name(self) -> &'static str {
        match self {
            Mode::File => "file",
            Mode::Memory => "memory",
        }
    }

    /// The mode named `file` or `memory`.
    pub fn from_name(name: &str) -> Option<Mode> {
        match name {
            "file" => Some(Mode::File),
            "memory" => Some(Mode::Memory),
            _ => None,
        }
    }
}

/// One round to run: which workload, where, and how many operations.
#[derive(Debug, Clone)]
pub struct RunSpec {
    /// The workload.
    pub workload: Workload,
    /// File or memory database.
    pub mode: Mode,
    /// An existing, empty directory for the database file (file mode).
    pub dir: PathBuf,
    /// Untimed operations before the timed ones.
    pub warmup: u64,
    /// Timed operations.
    pub iterations: u64,
}

/// The outcome of one round; also the JSON line a peer prints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoundResult {
    /// The implementation's name.
    pub implementation: String,
    /// The workload's stable name.
    pub workload: String,
    /// `file` or `memory`.
    pub mode: Mode,
    /// `sqlite_version()` through the implementation's connection.
    pub sqlite_version: String,
    /// Timed operations.
    pub iterations: u64,
    /// Sum of the timed operations' latencies, in nanoseconds.
    pub total_ns: u64,
    /// `iterations × rows_per_op / total`: operations per second (rows per
    /// second for `bulk_insert_100k`).
    pub ops_per_sec: f64,
    /// Median latency of one operation, in microseconds.
    pub p50_us: f64,
    /// 99th percentile latency of one operation, in microseconds.
    pub p99_us: f64,
}

/// The `q`-quantile (0 < q ≤ 1) of sorted nanosecond samples, by nearest rank.
pub fn quantile_ns(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Runs one round of `spec` on `imp` and returns its statistics.
///
/// Every operation's checksum is compared with the workload's expectation
/// (warm-up included); a mismatch, a wrong pragma or any error aborts the
/// round with a message naming the implementation.
pub fn run_round(imp: &mut dyn Implementation, spec: &RunSpec) -> BenchResult<RoundResult> {
    let name = imp.name();
    let dataset = Dataset::for_workload(spec.workload);
    let db_path = spec.dir.join("bench.sqlite");
    let target = match spec.mode {
        Mode::File => Target::File(&db_path),
        Mode::Memory => Target::Memory,
    };
    imp.setup(&Setup {
        workload: spec.workload,
        target,
        dataset: &dataset,
    })
    .map_err(|e| format!("{name}: setup of {} failed: {e}", spec.workload.name()))?;
    let result = measure(imp, spec, &dataset, &name);
    let closed = imp.teardown();
    let result = result?;
    closed.map_err(|e| format!("{name}: teardown failed: {e}"))?;
    Ok(result)
}

fn measure(
    imp: &mut dyn Implementation,
    spec: &RunSpec,
    dataset: &Dataset,
    name: &str,
) -> BenchResult<RoundResult> {
    let w = spec.workload;
    let env = imp
        .environment()
        .map_err(|e| format!("{name}: environment query failed: {e}"))?;
    let journal_ok = match spec.mode {
        Mode::File => env.journal_mode.eq_ignore_ascii_case("wal"),
        Mode::Memory => env.journal_mode.eq_ignore_ascii_case("memory"),
    };
    if !journal_ok || env.synchronous != 1 {
        return Err(format!(
            "{name}: wrong settings in {} mode: journal_mode={}, synchronous={} (want {}, 1)",
            spec.mode.name(),
            env.journal_mode,
            env.synchronous,
            if spec.mode == Mode::File {
                "wal"
            } else {
                "memory"
            },
        )
        .into());
    }

    let check = |i: u64, got: u64| -> BenchResult<()> {
        let want = w.expected(i);
        if got == want {
            Ok(())
        } else {
            Err(format!(
                "{name}: {} operation {i} returned checksum {got}, expected {want}",
                w.name()
            )
            .into())
        }
    };
    let reset = |imp: &mut dyn Implementation| -> BenchResult<()> {
        match w.reset_sql() {
            Some(sql) => imp.execute(sql),
            None => Ok(()),
        }
    };

    for i in 0..spec.warmup {
        reset(imp)?;
        check(i, imp.run(w.op(dataset, i))?)?;
    }

    let n = spec.iterations;
    let mut latencies: Vec<u64> = Vec::with_capacity(n as usize);
    if w.reset_sql().is_some() {
        // Untimed reset between operations: stamp each operation on its own.
        for i in spec.warmup..spec.warmup + n {
            reset(imp)?;
            settle_writes();
            let op = w.op(dataset, i);
            let start = Instant::now();
            let got = imp.run(op)?;
            latencies.push(start.elapsed().as_nanos() as u64);
            check(i, got)?;
        }
    } else {
        // Back-to-back operations: one clock read per operation, each
        // latency runs from the previous stamp to the next.
        let mut checksums: Vec<u64> = Vec::with_capacity(n as usize);
        settle_writes();
        let mut last = Instant::now();
        for i in spec.warmup..spec.warmup + n {
            let got = imp.run(w.op(dataset, i))?;
            let now = Instant::now();
            latencies.push(now.duration_since(last).as_nanos() as u64);
            checksums.push(got);
            last = now;
        }
        for (k, got) in checksums.into_iter().enumerate() {
            check(spec.warmup + k as u64, got)?;
        }
    }

    let total_ns: u64 = latencies.iter().sum::<u64>().max(1);
    latencies.sort_unstable();
    Ok(RoundResult {
        implementation: name.to_owned(),
        workload: w.name().to_owned(),
        mode: spec.mode,
        sqlite_version: env.sqlite_version,
        iterations: n,
        total_ns,
        ops_per_sec: (n * w.rows_per_op()) as f64 / (total_ns as f64 / 1e9),
        p50_us: quantile_ns(&latencies, 0.50) as f64 / 1e3,
        p99_us: quantile_ns(&latencies, 0.99) as f64 / 1e3,
    })
}

/// Flushes the operating system's dirty pages before a timed section, so an
/// implementation never pays for the write-back of the one measured before
/// it (`synchronous=NORMAL` leaves tens of megabytes unwritten after a bulk
/// insert). Untimed; a failure to run `sync` only costs fairness, not results.
fn settle_writes() {
    let _ = std::process::Command::new("sync").status();
}

#[cfg(test)]
mod tests {
    use super::quantile_ns;

    #[test]
    fn nearest_rank_quantiles() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(quantile_ns(&v, 0.5), 50);
        assert_eq!(quantile_ns(&v, 0.99), 99);
        assert_eq!(quantile_ns(&[7], 0.99), 7);
        assert_eq!(quantile_ns(&[], 0.5), 0);
    }
}
