//! The peer protocol: how the runner talks to a peer binary (a process built in
//! its own Cargo workspace because it links another `libsqlite3-sys`).
//!
//! ```text
//! peer --list
//!     one JSON line per implementation:
//!     {"implementation":"sqlx","baseline":"rusqlite@3.50.4"}
//! peer --run --implementation NAME --workload W --mode file|memory
//!      --dir DIR --warmup N --iterations N
//!     one JSON line, a RoundResult:
//!     {"implementation":"sqlx","workload":"trivial_query_1","mode":"file",
//!      "sqlite_version":"3.50.4","iterations":2000,"total_ns":…,
//!      "ops_per_sec":…,"p50_us":…,"p99_us":…}
//! ```
//!
//! Exit status 0 on success; on failure a message on stderr and status 1.
//! Anything else a peer prints goes to stderr. `bench/README.md` documents the
//! same protocol.

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use serde::{Deserialize, Serialize};

use crate::implementation::{BenchResult, Implementation};
use crate::measure::{Mode, RunSpec, run_round};
use crate::workload::Workload;

/// Prefix of the raw-rusqlite baseline's name inside a peer: `rusqlite@<sqlite version>`.
pub const BASELINE_PREFIX: &str = "rusqlite@";

/// One line of `--list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListEntry {
    /// The implementation's name.
    pub implementation: String,
    /// The name of the raw-rusqlite implementation it is compared with (built
    /// against the same `libsqlite3-sys`); equal to `implementation` for the
    /// baseline itself.
    pub baseline: String,
    /// The workloads it does not run (see `Implementation::supports`).
    #[serde(default)]
    pub unsupported: Vec<String>,
}

/// Parses `--key value` pairs and bare `--flag`s after the program name.
/// Returns the map (flags map to an empty string) or a message.
pub fn parse_flags(args: &[String]) -> Result<HashMap<String, String>, String> {
    let mut map = HashMap::new();
    let mut i = 0;
    while i < args.len() {
        let key = args[i]
            .strip_prefix("--")
            .ok_or_else(|| format!("unexpected argument `{}`", args[i]))?;
        let value = match args.get(i + 1) {
            Some(v) if !v.starts_with("--") => {
                i += 1;
                v.clone()
            }
            _ => String::new(),
        };
        map.insert(key.to_owned(), value);
        i += 1;
    }
    Ok(map)
}

fn required<'a>(flags: &'a HashMap<String, String>, key: &str) -> Result<&'a str, String> {
    match flags.get(key) {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(format!("missing --{key} VALUE")),
    }
}

fn number(flags: &HashMap<String, String>, key: &str) -> Result<u64, String> {
    required(flags, key)?
        .parse()
        .map_err(|_| format!("--{key} takes a whole number"))
}

/// The whole `main` of a peer binary: serves `--list` and `--run` over
/// `implementations`. Exactly one of them must be the raw-rusqlite baseline,
/// named `rusqlite@<sqlite version>`; it is the baseline of all the others.
pub fn peer_main(implementations: Vec<Box<dyn Implementation>>) -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match serve(implementations, &args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn serve(mut implementations: Vec<Box<dyn Implementation>>, args: &[String]) -> BenchResult<()> {
    let flags = parse_flags(args)?;
    let baseline = implementations
        .iter()
        .map(|i| i.name())
        .find(|n| n.starts_with(BASELINE_PREFIX))
        .ok_or("peer has no rusqlite@<version> baseline")?;
    let mut out = std::io::stdout().lock();
    if flags.contains_key("list") {
        for imp in &implementations {
            let entry = ListEntry {
                implementation: imp.name(),
                baseline: baseline.clone(),
                unsupported: Workload::ALL
                    .into_iter()
                    .filter(|w| !imp.supports(*w))
                    .map(|w| w.name().to_owned())
                    .collect(),
            };
            writeln!(out, "{}", serde_json::to_string(&entry)?)?;
        }
        return Ok(());
    }
    if !flags.contains_key("run") {
        return Err("usage: --list | --run --implementation NAME --workload W \
                    --mode file|memory --dir DIR --warmup N --iterations N"
            .into());
    }
    let name = required(&flags, "implementation")?;
    let workload = required(&flags, "workload")?;
    let mode = required(&flags, "mode")?;
    let spec = RunSpec {
        workload: Workload::from_name(workload)
            .ok_or_else(|| format!("unknown workload `{workload}`"))?,
        mode: Mode::from_name(mode).ok_or_else(|| format!("unknown mode `{mode}`"))?,
        dir: PathBuf::from(required(&flags, "dir")?),
        warmup: number(&flags, "warmup")?,
        iterations: number(&flags, "iterations")?,
    };
    let imp = implementations
        .iter_mut()
        .find(|i| i.name() == name)
        .ok_or_else(|| format!("this peer has no implementation `{name}`"))?;
    let result = run_round(imp.as_mut(), &spec)?;
    writeln!(out, "{}", serde_json::to_string(&result)?)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_flags;

    #[test]
    fn flags_and_values() {
        let args: Vec<String> = ["--run", "--mode", "file", "--list"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let f = parse_flags(&args).unwrap();
        assert_eq!(f["run"], "");
        assert_eq!(f["mode"], "file");
        assert_eq!(f["list"], "");
        assert!(parse_flags(&["x".to_string()]).is_err());
    }
}
