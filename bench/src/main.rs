//! The benchmark runner (`cargo run --release -p driftwood-bench -- --quick`):
//! builds the peer workspaces, then runs every implementation — in-process
//! ones (raw rusqlite, driftwood) and peer processes (sqlx, diesel,
//! tokio-rusqlite, each with its own raw-rusqlite baseline) — on the same
//! workloads in interleaved rounds, and reports medians with ratios to raw
//! rusqlite at the same SQLite version. See `bench/README.md`.

mod cli;
mod impls;
mod peers;
mod report;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use driftwood_bench_harness::{BenchResult, Implementation, RoundResult, RunSpec, run_round};

use crate::cli::{Options, USAGE};
use crate::peers::{PEERS, Peer};

/// How a participant's rounds are run.
enum Runner {
    /// In this process.
    InProcess(Box<dyn Implementation>),
    /// In a fresh process of this peer binary per round.
    Peer(Peer),
}

/// One implementation taking part in the run.
struct Participant {
    name: String,
    baseline: String,
    runner: Runner,
    /// Workloads it does not run (`Implementation::supports`).
    unsupported: Vec<String>,
}

impl Participant {
    fn run(&mut self, spec: &RunSpec) -> BenchResult<RoundResult> {
        match &mut self.runner {
            Runner::InProcess(imp) => run_round(imp.as_mut(), spec),
            Runner::Peer(peer) => peer.run(&self.name, spec),
        }
    }
}

/// The workspace root (parent of `bench/`).
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("bench/ has a parent")
        .to_path_buf()
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let options = match Options::parse(&args) {
        Ok(Some(o)) => o,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("error: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&options) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Adds `baseline` and everything it is the baseline of, as selected by `--only`.
fn selected(options: &Options, name: &str, baseline: &str, all: &[(String, String)]) -> bool {
    if options.selects(name) {
        return true;
    }
    // A baseline runs whenever something measured against it runs.
    name == baseline
        && all
            .iter()
            .any(|(n, b)| b == baseline && n != baseline && options.selects(n))
}

/// The 1, 5 and 15 minute load averages (Linux), or `?`.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".to_owned())
}

/// Runs everything; `Ok(false)` if some round failed.
fn run(options: &Options) -> BenchResult<bool> {
    let started = Instant::now();
    if cfg!(debug_assertions) {
        eprintln!("warning: the runner is a debug build; use `cargo run --release`");
    }
    let root = workspace_root();
    let mut failures: Vec<String> = Vec::new();

    // In-process implementations: all measured against in-process `rusqlite`.
    let local: Vec<Box<dyn Implementation>> = impls::in_process();
    let local_names: Vec<(String, String)> = local
        .iter()
        .map(|i| (i.name(), impls::BASELINE.to_owned()))
        .collect();
    let mut participants: Vec<Participant> = Vec::new();
    for imp in local {
        let name = imp.name();
        if selected(options, &name, impls::BASELINE, &local_names) {
            let unsupported = driftwood_bench_harness::Workload::ALL
                .into_iter()
                .filter(|w| !imp.supports(*w))
                .map(|w| w.name().to_owned())
                .collect();
            participants.push(Participant {
                name,
                baseline: impls::BASELINE.to_owned(),
                runner: Runner::InProcess(imp),
                unsupported,
            });
        }
    }

    // Peers: build, list, select.
    let mut build_times: Vec<(String, Duration)> = Vec::new();
    for (dir, binary) in PEERS {
        let wanted = match &options.only {
            None => true,
            Some(only) => only
                .iter()
                .any(|o| o == dir || o.starts_with(driftwood_bench_harness::BASELINE_PREFIX)),
        };
        if !wanted {
            continue;
        }
        let peer = Peer::new(&root, dir, binary);
        if options.build {
            eprintln!("== building peer {dir} ({})", peer.manifest.display());
            match peer.build() {
                Ok(t) => build_times.push((dir.to_string(), t)),
                Err(e) => {
                    failures.push(format!("{e}"));
                    continue;
                }
            }
        }
        let entries = match peer.list() {
            Ok(e) => e,
            Err(e) => {
                failures.push(format!("peer {dir}: {e}"));
                continue;
            }
        };
        let all: Vec<(String, String)> = entries
            .iter()
            .map(|e| (e.implementation.clone(), e.baseline.clone()))
            .collect();
        for e in entries {
            if participants.iter().any(|p| p.name == e.implementation) {
                continue; // same baseline (same SQLite build) already provided by an earlier peer
            }
            if selected(options, &e.implementation, &e.baseline, &all) {
                participants.push(Participant {
                    name: e.implementation,
                    baseline: e.baseline,
                    runner: Runner::Peer(peer.clone()),
                    unsupported: e.unsupported,
                });
            }
        }
    }
    if participants.is_empty() {
        return Err("no implementation selected".into());
    }
    for (peer, t) in &build_times {
        eprintln!("build of peer {peer}: {:.1} s", t.as_secs_f64());
    }

    // Display order: each baseline first, followed by what is measured against it.
    let mut order: Vec<String> = Vec::new();
    for p in &participants {
        if !order.contains(&p.baseline) && participants.iter().any(|q| q.name == p.baseline) {
            order.push(p.baseline.clone());
        }
        if !order.contains(&p.name) {
            order.push(p.name.clone());
        }
    }
    participants.sort_by_key(|p| order.iter().position(|n| *n == p.name));
    let baselines: BTreeMap<String, String> = participants
        .iter()
        .map(|p| (p.name.clone(), p.baseline.clone()))
        .collect();

    let tmp_root = std::env::temp_dir().join(format!("driftwood-bench-{}", std::process::id()));
    let mut rounds: Vec<RoundResult> = Vec::new();
    let mut run_no = 0usize;
    let load_before = load_average();
    let measuring = Instant::now();
    for &mode in &options.modes {
        for round in 0..options.rounds {
            for (wi, &workload) in options.workloads.iter().enumerate() {
                let plan = workload.plan(options.quick);
                // Interleave: every implementation once per round, starting
                // from a different one each time.
                let n = participants.len();
                for k in 0..n {
                    let p = &mut participants[(k + round + wi) % n];
                    if p.unsupported.iter().any(|w| w == workload.name()) {
                        continue;
                    }
                    run_no += 1;
                    let dir = tmp_root.join(format!("run-{run_no}"));
                    std::fs::create_dir_all(&dir)?;
                    let spec = RunSpec {
                        workload,
                        mode,
                        dir: dir.clone(),
                        warmup: plan.warmup,
                        iterations: plan.iterations,
                    };
                    let outcome = p.run(&spec);
                    let _ = std::fs::remove_dir_all(&dir);
                    match outcome {
                        Ok(r) => {
                            eprintln!(
                                "[{} round {}/{}] {:<20} {:<18} {:>14.0} {}/s  p50 {:.2} µs",
                                mode.name(),
                                round + 1,
                                options.rounds,
                                workload.name(),
                                p.name,
                                r.ops_per_sec,
                                workload.unit(),
                                r.p50_us
                            );
                            rounds.push(r);
                        }
                        Err(e) => {
                            eprintln!("FAILED {} {} {}: {e}", mode.name(), workload.name(), p.name);
                            failures.push(format!(
                                "{} {} {} round {}: {e}",
                                mode.name(),
                                workload.name(),
                                p.name,
                                round + 1
                            ));
                        }
                    }
                }
            }
        }
    }
    let _ = std::fs::remove_dir_all(&tmp_root);
    let load_after = load_average();

    let records = report::aggregate(&rounds, &baselines, &order);
    let mut versions: BTreeMap<&str, &str> = BTreeMap::new();
    for r in &records {
        versions.insert(&r.implementation, &r.sqlite_version);
    }
    println!("\nSQLite version per implementation:");
    for name in &order {
        if let Some(v) = versions.get(name.as_str()) {
            println!("  {name:<18} {v}  (baseline: {})", baselines[name]);
        }
    }
    print!("{}", report::table(&records));
    let out = root.join("target").join("bench").join("results.json");
    report::write_json(&out, &records)?;
    println!("\nwrote {}", out.display());
    for (peer, t) in &build_times {
        println!("peer build {peer}: {:.1} s", t.as_secs_f64());
    }
    println!(
        "measuring took {:.1} s; total {:.1} s ({} mode, {} rounds)",
        measuring.elapsed().as_secs_f64(),
        started.elapsed().as_secs_f64(),
        if options.quick { "quick" } else { "full" },
        options.rounds
    );
    println!(
        "load average before measuring: {load_before}; after: {load_after} ({} cores)",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    if !failures.is_empty() {
        println!("\nFAILURES:");
        for f in &failures {
            println!("  {f}");
        }
    }
    Ok(failures.is_empty())
}
