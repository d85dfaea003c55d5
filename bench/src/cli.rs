//! The runner's command line: parsing `--quick`, `--memory`, `--mode`,
//! `--rounds`, `--only`, `--workloads`, `--no-build` into [`Options`].

use driftwood_bench_harness::protocol::parse_flags;
use driftwood_bench_harness::{Mode, Workload};

/// Usage text printed by `--help` and after a bad argument.
pub const USAGE: &str = "\
driftwood-bench: every implementation on the same workloads, interleaved rounds.

usage: cargo run --release -p driftwood-bench -- [options]

  --quick              fewer operations per round (a few minutes in all)
  --memory             in-memory databases only (same as --mode memory)
  --mode M             file (default), memory, or both
  --rounds N           interleaved rounds; medians are reported (default 3)
  --only A,B           implementations to run (their raw-rusqlite baselines
                       are always added), e.g. --only sqlx,diesel
  --workloads W,X      workloads to run, e.g. --workloads trivial_query_1
  --no-build           use the peer binaries already built
  --help               this text

Results: a table on stdout and target/bench/results.json.";

/// What the user asked for.
#[derive(Debug, Clone)]
pub struct Options {
    /// `--quick`: the quick operation counts of [`Workload::plan`].
    pub quick: bool,
    /// Modes to run, in order.
    pub modes: Vec<Mode>,
    /// Interleaved rounds per mode.
    pub rounds: usize,
    /// `--only`: implementation names to run; `None` runs all.
    pub only: Option<Vec<String>>,
    /// Workloads to run, in order.
    pub workloads: Vec<Workload>,
    /// Build the peers before running (off with `--no-build`).
    pub build: bool,
}

impl Options {
    /// Parses the arguments after the program name. `Ok(None)` means `--help`.
    pub fn parse(args: &[String]) -> Result<Option<Options>, String> {
        let flags = parse_flags(args)?;
        const KNOWN: &[&str] = &[
            "quick",
            "memory",
            "mode",
            "rounds",
            "only",
            "workloads",
            "no-build",
            "help",
        ];
        if let Some(unknown) = flags.keys().find(|k| !KNOWN.contains(&k.as_str())) {
            return Err(format!("unknown option --{unknown}"));
        }
        if flags.contains_key("help") {
            return Ok(None);
        }
        let modes = match flags.get("mode").map(String::as_str) {
            _ if flags.contains_key("memory") => vec![Mode::Memory],
            None | Some("file") => vec![Mode::File],
            Some("memory") => vec![Mode::Memory],
            Some("both") => vec![Mode::File, Mode::Memory],
            Some(other) => return Err(format!("--mode takes file, memory or both, not `{other}`")),
        };
        let rounds = match flags.get("rounds") {
            None => 3,
            Some(n) => n
                .parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or("--rounds takes a positive whole number")?,
        };
        let list = |key: &str| -> Option<Vec<String>> {
            flags.get(key).map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
        };
        let workloads = match list("workloads") {
            None => Workload::ALL.to_vec(),
            Some(names) => names
                .iter()
                .map(|n| Workload::from_name(n).ok_or_else(|| format!("unknown workload `{n}`")))
                .collect::<Result<Vec<_>, _>>()?,
        };
        if workloads.is_empty() {
            return Err("--workloads names no workload".into());
        }
        Ok(Some(Options {
            quick: flags.contains_key("quick"),
            modes,
            rounds,
            only: list("only"),
            workloads,
            build: !flags.contains_key("no-build"),
        }))
    }

    /// Whether `--only` selects the implementation `name`.
    pub fn selects(&self, name: &str) -> bool {
        self.only
            .as_ref()
            .is_none_or(|only| only.iter().any(|o| o == name))
    }
}
