//! The runner's side of the peer protocol: building each peer workspace under
//! `bench/peers/<name>/`, asking it for its implementations (`--list`), and
//! running one round in a peer process (`--run`), parsing the JSON line it
//! prints. The peer side lives in `driftwood_bench_harness::protocol`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use driftwood_bench_harness::{BenchResult, ListEntry, RoundResult, RunSpec};

/// The peer workspaces: directory name under `bench/peers/` (also the name of
/// its main implementation) and the binary it builds.
pub const PEERS: &[(&str, &str)] = &[
    ("sqlx", "peer-sqlx"),
    ("diesel", "peer-diesel"),
    ("tokio-rusqlite", "peer-tokio-rusqlite"),
];

/// A peer workspace and where its binary is built.
#[derive(Debug, Clone)]
pub struct Peer {
    /// Directory name under `bench/peers/`.
    pub name: String,
    /// `bench/peers/<name>/Cargo.toml`.
    pub manifest: PathBuf,
    /// `target/bench-peers/<name>`.
    pub target_dir: PathBuf,
    /// `target/bench-peers/<name>/release/<binary>`.
    pub binary: PathBuf,
}

impl Peer {
    /// The peer `name` building `binary`, relative to the workspace `root`.
    pub fn new(root: &Path, name: &str, binary: &str) -> Peer {
        let target_dir = root.join("target").join("bench-peers").join(name);
        Peer {
            name: name.to_owned(),
            manifest: root
                .join("bench")
                .join("peers")
                .join(name)
                .join("Cargo.toml"),
            binary: target_dir
                .join("release")
                .join(format!("{binary}{}", std::env::consts::EXE_SUFFIX)),
            target_dir,
        }
    }

    /// `cargo build --release -j 2` of the peer's own workspace, cargo's
    /// progress going to stderr. Returns the wall time.
    pub fn build(&self) -> BenchResult<Duration> {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let start = Instant::now();
        let status = Command::new(cargo)
            .args(["build", "--release", "-j", "2", "--manifest-path"])
            .arg(&self.manifest)
            .arg("--target-dir")
            .arg(&self.target_dir)
            .stdout(Stdio::inherit())
            .stderr(Stdio::inherit())
            .status()?;
        if !status.success() {
            return Err(format!("building peer {} failed ({status})", self.name).into());
        }
        Ok(start.elapsed())
    }

    /// The implementations the peer binary offers (`--list`).
    pub fn list(&self) -> BenchResult<Vec<ListEntry>> {
        let stdout = self.call(&["--list".to_owned()])?;
        stdout
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str(l)
                    .map_err(|e| format!("peer {}: bad --list line `{l}`: {e}", self.name).into())
            })
            .collect()
    }

    /// Runs one round of `spec` for `implementation` in a fresh peer process.
    pub fn run(&self, implementation: &str, spec: &RunSpec) -> BenchResult<RoundResult> {
        let args = vec![
            "--run".to_owned(),
            "--implementation".to_owned(),
            implementation.to_owned(),
            "--workload".to_owned(),
            spec.workload.name().to_owned(),
            "--mode".to_owned(),
            spec.mode.name().to_owned(),
            "--dir".to_owned(),
            spec.dir.display().to_string(),
            "--warmup".to_owned(),
            spec.warmup.to_string(),
            "--iterations".to_owned(),
            spec.iterations.to_string(),
        ];
        let stdout = self.call(&args)?;
        let line = stdout
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .ok_or_else(|| format!("peer {} printed no result", self.name))?;
        Ok(serde_json::from_str(line)
            .map_err(|e| format!("peer {}: bad result line `{line}`: {e}", self.name))?)
    }

    fn call(&self, args: &[String]) -> BenchResult<String> {
        let out = Command::new(&self.binary)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot start {}: {e}", self.binary.display()))?;
        if !out.status.success() {
            return Err(format!(
                "peer {} failed ({}): {}",
                self.name,
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )
            .into());
        }
        Ok(String::from_utf8(out.stdout)?)
    }
}
